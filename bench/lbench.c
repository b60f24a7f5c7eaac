/* lbench.c: the bench driver's clock and memory probes as a tiny Lua module (esbench) */
/* SPDX-License-Identifier: MIT */
#include <lauxlib.h>
#include <lua.h>

#include "common.h"

/* Lua has no monotonic wall clock (os.clock is CPU time, which misses the
 * fsync waits that dominate W1), so the driver borrows the C one. */
static int esbench_now(lua_State *L) {
    lua_pushnumber(L, bench_now());
    return 1;
}

static int esbench_reset_peak(lua_State *L) {
    (void)L;
    bench_reset_peak();
    return 0;
}

/* status_kb("VmHWM") -> kB, or nil when /proc has no such field */
static int esbench_status_kb(lua_State *L) {
    long kb = bench_status_kb(luaL_checkstring(L, 1));
    if (kb < 0) lua_pushnil(L);
    else lua_pushinteger(L, (lua_Integer)kb);
    return 1;
}

int luaopen_esbench(lua_State *L) {
    static const luaL_Reg fns[] = {
        { "now", esbench_now },
        { "reset_peak", esbench_reset_peak },
        { "status_kb", esbench_status_kb },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
