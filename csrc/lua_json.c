/* lua_json.c: eventstore.json_encode / json_decode, exact JSON texts for Lua values */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "lua_binding.h"

/* The text es_json_encode returns is es_malloc'd. It is owned by this box
 * from the moment it exists, so if pushing it into Lua raises (out of
 * memory), __gc still frees it. */
#define LJSON_TEXT_MT "eventstore.JsonText"

typedef struct ljson_text {
    char *text;
} ljson_text;

static int ljson_text_gc(lua_State *L) {
    ljson_text *t = luaL_checkudata(L, 1, LJSON_TEXT_MT);
    char *p = t->text;
    t->text = NULL;
    if (p) es_free(p);
    return 0;
}

/* The core's flags (json.c: compact, any value, 17 significant digits so a
 * double keeps every bit) plus sorted object keys. Lua tables have no key
 * order, so sorting is the only way the same value gives the same text in
 * every process (exports that diff well). */
#define LJSON_SORTED_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17) | JSON_SORT_KEYS)

/* json_encode(value[, { sort_keys = true }]) -> text. Any value JSON can
 * hold: a table (object or array, see eventstore.array), a string, a
 * number, a boolean or eventstore.null. Integers stay integers, floats
 * keep every bit (an integral float is written "3.0"), strings are
 * byte-exact. Raises naming the path for what JSON cannot hold (NaN, a
 * function, a cycle, ...). */
static int ljson_encode(lua_State *L) {
    ljson_box *box;
    ljson_text *t;
    json_t *v;
    es_err err;
    size_t n = 0;
    int sorted = 0;
    luaL_checkany(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "sort_keys");
        sorted = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_settop(L, 1);
    box = lvalue_newbox(L);                          /* 2 */
    v = lvalue_to_json_any(L, 1, box, "json_encode: value");
    if (sorted) {
        /* written straight into a Lua-owned buffer: nothing to free */
        char *buf;
        n = json_dumpb(v, NULL, 0, LJSON_SORTED_FLAGS);
        if (n == 0) return luaL_error(L, "json_encode: value cannot be written as JSON");
        buf = lua_newuserdata(L, n);
        if (json_dumpb(v, buf, n, LJSON_SORTED_FLAGS) != n) return luaL_error(L, "json_encode: value changed");
        lua_pushlstring(L, buf, n);
        return 1;
    }
    t = lua_newuserdata(L, sizeof *t);               /* 3 */
    t->text = NULL;
    luaL_getmetatable(L, LJSON_TEXT_MT);
    lua_setmetatable(L, -2);
    es_err_clear(&err);
    if (!(t->text = es_json_encode(v, &n, &err))) return lerror_fail(L, &err);
    lua_pushlstring(L, t->text, n);
    /* free now rather than at the next collection: exports encode millions */
    es_free(t->text);
    t->text = NULL;
    return 1;
}

/* json_decode(text) -> value, or nil, err (code "invalid", the message
 * naming the position) for a text that is not JSON. Objects become tables,
 * arrays tables with keys 1..n (an empty one marked with eventstore.array),
 * null eventstore.null; integers come back integers, reals floats. */
static int ljson_decode(lua_State *L) {
    size_t n;
    const char *text = luaL_checklstring(L, 1, &n);
    ljson_box *box;
    es_err err;
    lua_settop(L, 1);
    box = lvalue_newbox(L);
    es_err_clear(&err);
    if (!(box->root = es_json_decode(text, n, &err))) {
        lua_pushnil(L);
        lerror_push(L, &err);
        return 2;
    }
    lvalue_push_json(L, box->root);
    return 1;
}

static const luaL_Reg ljson_funcs[] = {
    { "json_encode", ljson_encode },
    { "json_decode", ljson_decode },
    { NULL, NULL }
};

/* Sets json_encode and json_decode in the module table on top of the stack. */
void ljson_setup(lua_State *L) {
    if (luaL_newmetatable(L, LJSON_TEXT_MT)) {
        lua_pushcfunction(L, ljson_text_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, ljson_funcs, 0);
}
