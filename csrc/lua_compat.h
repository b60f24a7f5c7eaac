/* lua_compat.h: every Lua version difference the binding needs (5.1/LuaJIT to 5.4) */
/* SPDX-License-Identifier: MIT */
#ifndef ES_LUA_COMPAT_H
#define ES_LUA_COMPAT_H

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
#ifndef luaL_newlib
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))
#endif
#endif

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
/* No integer subtype: an integral double within +-2^53 is an integer. */
static inline int compat_isinteger(lua_State *L, int i) {
    lua_Number n;
    if (lua_type(L, i) != LUA_TNUMBER) return 0;
    n = lua_tonumber(L, i);
    return n == (lua_Number)(long long)n && n >= -9007199254740992.0 && n <= 9007199254740992.0;
}
#define compat_tointeger(L, i) ((long long)lua_tonumber((L), (i)))
#define compat_isintegral(L, i) compat_isinteger((L), (i))
#define compat_pushinteger(L, v) lua_pushnumber((L), (lua_Number)(v))
#endif

#endif
