/* lua_error.c: how core errors reach Lua: nil, err tables or raised strings */
/* SPDX-License-Identifier: MIT */
#include "lua_binding.h"

void lerror_push(lua_State *L, const es_err *err) {
    lua_createtable(L, 0, 4);
    lfield_str(L, "code", es_errname(err->code));
    lfield_str(L, "message", err->msg);
    if (err->code == ES_ECONFLICT && (err->expected || err->actual)) {
        /* the C sentinels read back as the Lua constants */
        if (err->expected == ES_STREAM_EXISTS) lua_pushliteral(L, "stream_exists");
        else if (err->expected == ES_ANY) lua_pushliteral(L, "any");
        else compat_pushinteger(L, err->expected);
        lua_setfield(L, -2, "expected");
        lfield_int(L, "actual", err->actual);
    }
    luaL_getmetatable(L, LERROR_MT);
    lua_setmetatable(L, -2);
}

int lerror_fail(lua_State *L, const es_err *err) {
    switch (err->code) {
    case ES_EINVALID:
    case ES_ENOTSUP:
        return luaL_error(L, "%s", err->msg);
    case ES_ENOMEM:
        return luaL_error(L, "not enough memory (%s)", err->msg);
    default:
        lua_pushnil(L);
        lerror_push(L, err);
        return 2;
    }
}

static int lerror_tostring(lua_State *L) {
    lua_getfield(L, 1, "code");
    lua_pushliteral(L, ": ");
    lua_getfield(L, 1, "message");
    lua_concat(L, 3);
    return 1;
}

void lerror_setup(lua_State *L) {
    if (luaL_newmetatable(L, LERROR_MT)) {
        lua_pushcfunction(L, lerror_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, LERROR_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}
