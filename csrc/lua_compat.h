/* lua_compat.h: every Lua version difference the binding needs (5.1/LuaJIT to 5.4) */
/* SPDX-License-Identifier: MIT */
#ifndef ES_LUA_COMPAT_H
#define ES_LUA_COMPAT_H

#include <math.h>

#include <lua.h>
#include <lauxlib.h>

#ifndef LUA_OK
#define LUA_OK 0
#endif

#if LUA_VERSION_NUM >= 504
#define compat_newuserdata(L, n) lua_newuserdatauv((L), (n), 1)
#define compat_setuservalue(L, i) lua_setiuservalue((L), (i), 1)
#define compat_getuservalue(L, i) lua_getiuservalue((L), (i), 1)
#elif LUA_VERSION_NUM >= 502
#define compat_newuserdata(L, n) lua_newuserdata((L), (n))
#define compat_setuservalue(L, i) lua_setuservalue((L), (i))
#define compat_getuservalue(L, i) (lua_getuservalue((L), (i)), lua_type((L), -1))
#else
/* 5.1/LuaJIT: the user value is the userdata's environment table. */
#define compat_newuserdata(L, n) lua_newuserdata((L), (n))
#define compat_setuservalue(L, i) lua_setfenv((L), (i))
#define compat_getuservalue(L, i) (lua_getfenv((L), (i)), lua_type((L), -1))
#endif

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
/* 5.2 functions the binding uses. LuaJIT 2.1 has luaL_setfuncs and
 * luaL_newlib (its lauxlib.h defines luaL_newlibtable); PUC 5.1 has neither. */
static inline int compat_absindex(lua_State *L, int i) {
    return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#define lua_absindex(L, i) compat_absindex((L), (i))
#ifndef luaL_newlibtable
static inline void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name; l++) {
        int i;
        for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, n) compat_setfuncs((L), (l), (n))
/* PUC 5.1 has no luaL_testudata either (LuaJIT 2.1 does) */
static inline void *compat_testudata(lua_State *L, int idx, const char *tname) {
    void *p = lua_touserdata(L, idx);
    int same;
    if (!p || !lua_getmetatable(L, idx)) return NULL;
    luaL_getmetatable(L, tname);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}
#define luaL_testudata(L, i, t) compat_testudata((L), (i), (t))
#endif
#ifndef luaL_newlib
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))
#endif
/* 5.2's luaL_tolstring: __tostring, else "<__name or type>: <address>". */
static inline const char *compat_tolstring(lua_State *L, int idx, size_t *len) {
    idx = compat_absindex(L, idx);
    if (luaL_callmeta(L, idx, "__tostring")) {
        if (!lua_isstring(L, -1)) luaL_error(L, "'__tostring' must return a string");
    } else {
        switch (lua_type(L, idx)) {
        case LUA_TNUMBER:
        case LUA_TSTRING:
            lua_pushvalue(L, idx);
            break;
        case LUA_TBOOLEAN:
            lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
            break;
        case LUA_TNIL:
            lua_pushliteral(L, "nil");
            break;
        default:
            if (luaL_getmetafield(L, idx, "__name")) {       /* pushes it when present */
                if (lua_type(L, -1) == LUA_TSTRING)
                    lua_pushfstring(L, "%s: %p", lua_tostring(L, -1), lua_topointer(L, idx));
                else
                    lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
                lua_remove(L, -2);
            } else {
                lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
            }
            break;
        }
    }
    return lua_tolstring(L, -1, len);
}
#define luaL_tolstring(L, i, n) compat_tolstring((L), (i), (n))
#endif

/* lua_pcall(L, nargs, nresults, 0) with Lua 5.4's collector paused while
 * the call runs and restarted after it, also when it raises; a collector
 * the program stopped stays stopped. Restarting sets the collector's debt
 * to zero, and its next step waits for an allocation it sees running: the
 * caller must allocate something before the call (a read makes its
 * cursor), or a loop of such calls would never collect. 5.1-5.3 and
 * LuaJIT (incremental collectors only): a plain lua_pcall. */
static inline int compat_pcall_paused(lua_State *L, int nargs, int nresults) {
    int status, paused = 0;
#if LUA_VERSION_NUM >= 504
    if (lua_gc(L, LUA_GCISRUNNING, 0) == 1) {
        lua_gc(L, LUA_GCSTOP, 0);
        paused = 1;
    }
#endif
    status = lua_pcall(L, nargs, nresults, 0);
    if (paused) lua_gc(L, LUA_GCRESTART, 0);
    return status;
}

#if LUA_VERSION_NUM >= 503
/* An argument that must be an integer may be given as an integral float
 * (3.0), as luaL_checkinteger allows; stored values keep their subtype. */
static inline int compat_isintegral(lua_State *L, int i) {
    int ok = 0;
    if (lua_type(L, i) != LUA_TNUMBER) return 0;
    (void)lua_tointegerx(L, i, &ok);
    return ok;
}
#define compat_isinteger(L, i) lua_isinteger((L), (i))
#define compat_tointeger(L, i) ((long long)lua_tointeger((L), (i)))
#define compat_pushinteger(L, v) lua_pushinteger((L), (lua_Integer)(v))
#else
/* No integer subtype (5.1, LuaJIT): a number is an integer when it is
 * integral and a "safe" integer, |n| <= 2^53 - 1, where every integer has
 * exactly one double. It is stored as a JSON integer; an integral number
 * beyond that (2^53, 2^63, 1e300) is stored as a JSON real, bit for bit, so
 * it reads back as the same number everywhere. */
#define COMPAT_MAX_SAFE_INTEGER 9007199254740991.0
static inline int compat_isinteger(lua_State *L, int i) {
    lua_Number n;
    if (lua_type(L, i) != LUA_TNUMBER) return 0;
    n = lua_tonumber(L, i);
    /* range first: converting an out-of-range double to long long is UB;
     * -0.0 stays a real, so it keeps its sign bit */
    return n >= -COMPAT_MAX_SAFE_INTEGER && n <= COMPAT_MAX_SAFE_INTEGER && n == (lua_Number)(long long)n
           && !(n == 0 && signbit(n));
}
#define compat_tointeger(L, i) ((long long)lua_tonumber((L), (i)))
#define compat_isintegral(L, i) compat_isinteger((L), (i))
/* A stored int64 beyond +-(2^53 - 1) (written by Lua 5.3/5.4, C or SQL)
 * becomes the nearest double: it may lose its low bits. */
#define compat_pushinteger(L, v) lua_pushnumber((L), (lua_Number)(v))
#endif

#endif
