/* lua_module.c: luaopen_eventstore_core, the C module behind require("eventstore") */
/* SPDX-License-Identifier: MIT */
#include "lua_binding.h"

static int lmodule_uuid(lua_State *L) {
    char buf[ES_UUID_LEN + 1];
    es_uuid(buf);
    lua_pushlstring(L, buf, ES_UUID_LEN);
    return 1;
}

/* array(t): marks t (or a new table) as a JSON array, even when empty. */
static int lmodule_array(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_getmetatable(L, LARRAY_MT);
    lua_setmetatable(L, 1);
    return 1;
}

static int lmodule_is_array(lua_State *L) {
    int r = 0;
    if (lua_istable(L, 1) && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, LARRAY_MT);
        r = lua_rawequal(L, -1, -2);
    }
    lua_pushboolean(L, r);
    return 1;
}

static int lmodule_now(lua_State *L) {
    compat_pushinteger(L, es_now_ms());
    return 1;
}

/* math_type(x): "integer", "float" or nil, as math.type on 5.3+. Lua 5.1 and
 * LuaJIT have no integer subtype: there "integer" means what the store
 * writes as a JSON integer (integral, |x| <= 2^53 - 1), so the Lua layer can
 * validate integer arguments the same way on every version. */
static int lmodule_math_type(lua_State *L) {
    luaL_checkany(L, 1);
    if (lua_type(L, 1) != LUA_TNUMBER) lua_pushnil(L);
    else if (compat_isinteger(L, 1)) lua_pushliteral(L, "integer");
    else lua_pushliteral(L, "float");
    return 1;
}

static const luaL_Reg lmodule_funcs[] = {
    { "uuid", lmodule_uuid },
    { "array", lmodule_array },
    { "is_array", lmodule_is_array },
    { "now", lmodule_now },
    { "math_type", lmodule_math_type },
    { NULL, NULL }
};

int luaopen_eventstore_core(lua_State *L) {
    lerror_setup(L);
    lvalue_setup(L);
    lencode_setup(L);
    luaL_newlib(L, lmodule_funcs);
    lstore_setup(L);
    lappend_setup(L);
    lreducer_setup(L);
    ljson_setup(L);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pushliteral(L, ES_VERSION);
    lua_setfield(L, -2, "version");
    luaL_getmetatable(L, LERROR_MT);
    lua_setfield(L, -2, "Error");
    return 1;
}
