/* lua_value.c: exact conversion between Lua values and JSON values */
/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lua_binding.h"

/* The box roots a json_t tree while it is built or read, so a Lua error
 * raised halfway (a NaN found deep inside, out of memory) frees it in __gc
 * instead of leaking it. */
static int ljson_box_gc(lua_State *L) {
    ljson_box *b = luaL_checkudata(L, 1, LJSON_MT);
    json_t *v = b->root;
    b->root = NULL;
    if (v) json_decref(v);
    return 0;
}

ljson_box *lvalue_newbox(lua_State *L) {
    ljson_box *b = lua_newuserdata(L, sizeof *b);
    b->root = NULL;
    luaL_getmetatable(L, LJSON_MT);
    lua_setmetatable(L, -2);
    return b;
}

static void box_set(ljson_box *b, json_t *v) {
    json_t *old = b->root;
    b->root = v;
    if (old) json_decref(old);
}

/* One level of the path to the value being converted, for error messages. */
int lconv_error(lconv *cv, const char *fmt, const char *detail) {
    luaL_Buffer b;
    int i;
    char num[32];
    lua_State *L = cv->L;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, lconv_what(cv, num, sizeof num));
    for (i = 1; i <= cv->depth; i++) {
        const lconv_path *p = &cv->path[i];
        /* a deep path shows its first and last levels only */
        if (cv->depth > 12 && i == 7) {
            luaL_addstring(&b, "...");
            i = cv->depth - 5;
            continue;
        }
        if (p->key) {
            /* up to a NUL byte: the message goes through a "%s" below */
            size_t kl = p->keylen > 64 ? 64 : p->keylen;
            const char *nul = memchr(p->key, '\0', kl);
            luaL_addchar(&b, '.');
            luaL_addlstring(&b, p->key, nul ? (size_t)(nul - p->key) : kl);
            if (nul) luaL_addstring(&b, "\\0...");
        } else {
            snprintf(num, sizeof num, "[%lld]", p->index);
            luaL_addstring(&b, num);
        }
    }
    luaL_addstring(&b, ": ");
    luaL_pushresult(&b);
    return luaL_error(L, fmt, lua_tostring(L, -1), detail);
}

static void conv_fill(lconv *cv, int idx, json_t *v);

static void check_attach(lconv *cv, int rc) {
    if (rc != 0) lconv_error(cv, "%snot enough memory%s", "");
}

/* Classifies the table at idx: 1 array, 0 object; raises for keys JSON
 * cannot hold. An empty table is an object unless marked with array(). */
int lconv_table_kind(lconv *cv, int idx) {
    lua_State *L = cv->L;
    size_t nint = 0, nstr = 0;
    long long maxint = 0;
    int marked = 0;

    luaL_checkstack(L, 6, "converting a table");
    if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, LARRAY_MT);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING) {
            nstr++;
        } else if (kt == LUA_TNUMBER && compat_isinteger(L, -2) && compat_tointeger(L, -2) >= 1) {
            long long k = compat_tointeger(L, -2);
            nint++;
            if (k > maxint) maxint = k;
        } else {
            lconv_error(cv, "%skeys must be strings or positive integers, found a %s key",
                       kt != LUA_TNUMBER ? luaL_typename(L, -2)
                       : compat_isinteger(L, -2) ? "zero or negative integer" : "non-integer number");
        }
        lua_pop(L, 1);
    }
    if (nint && nstr) lconv_error(cv, "%stable mixes array items and object keys%s", "");
    if (nint && (size_t)maxint != nint) lconv_error(cv, "%ssparse array (holes between items)%s", "");
    if (marked && nstr) lconv_error(cv, "%stable marked as an array has object keys%s", "");
    return nint || marked;
}

const char *lconv_what(const lconv *cv, char *buf, size_t size) {
    if (cv->what_index < 0) return cv->what;
    snprintf(buf, size, cv->what, cv->what_index);
    return buf;
}

void lconv_init(lconv *cv, lua_State *L, const char *what) {
    cv->L = L;
    cv->what = what;
    cv->what_index = -1;
    cv->depth = 0;
    cv->path = cv->inline_path;
    cv->cap = LCONV_INLINE;
    lua_pushnil(L);
    cv->anchor = lua_gettop(L);
}

/* Enters the table at idx: checks depth and cycles, pushes a path level. */
lconv_path *lconv_enter(lconv *cv, int idx) {
    const void *tp = lua_topointer(cv->L, idx);
    lconv_path *p;
    int i;
    if (cv->depth >= LVALUE_MAX_DEPTH)
        lconv_error(cv, "%stables nested deeper than %s levels", "1000");
    if (cv->depth >= cv->cap) {
        /* the push and the replace leave the stack as it was, so a caller
         * in the middle of lua_next keeps its key on top */
        lconv_path *deep = lua_newuserdata(cv->L, (LVALUE_MAX_DEPTH + 1) * sizeof *deep);
        memcpy(deep, cv->path, (size_t)(cv->depth + 1) * sizeof *deep);
        lua_replace(cv->L, cv->anchor);
        cv->path = deep;
        cv->cap = LVALUE_MAX_DEPTH;
    }
    for (i = 1; i <= cv->depth; i++)
        if (cv->path[i].table == tp) lconv_error(cv, "%scyclic table (it contains itself)%s", "");
    p = &cv->path[++cv->depth];
    p->table = tp;
    p->key = NULL;
    p->index = 0;
    return p;
}

static json_t *conv_new_table(lconv *cv, int idx) {
    json_t *v = lconv_table_kind(cv, idx) ? json_array() : json_object();
    if (!v) lconv_error(cv, "%snot enough memory%s", "");
    return v;
}

void lconv_key(lconv *cv, lconv_path *p, const char *k, size_t kl) {
    p->key = k;
    p->keylen = kl;
    if (!es_valid_utf8(k, kl)) lconv_error(cv, "%skey is not valid UTF-8%s", "");
    /* JSON allows "\u0000" in keys but jansson cannot read it back:
     * refuse it rather than store what cannot be read */
    if (memchr(k, '\0', kl)) lconv_error(cv, "%skey contains a NUL byte%s", "");
}

/* A real JSON can hold, or the error conv_make raises for it. */
static double conv_real(lconv *cv, int idx) {
    double d = (double)lua_tonumber(cv->L, idx);
    if (isnan(d)) lconv_error(cv, "%sNaN cannot be stored%s", "");
    if (isinf(d)) lconv_error(cv, "%sinfinity cannot be stored%s", "");
    return d;
}

int lconv_scalar_ok(lconv *cv, int idx) {
    lua_State *L = cv->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (!es_valid_utf8(s, n)) lconv_error(cv, "%sstring is not valid UTF-8%s", "");
        return 1;
    }
    case LUA_TNUMBER:
        if (!compat_isinteger(L, idx)) conv_real(cv, idx);
        return 1;
    case LUA_TBOOLEAN:
        return 1;
    default:
        return 0;
    }
}

json_t *lvalue_scalar(lua_State *L, int idx) {
    size_t n;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        return json_stringn_nocheck(s, n);
    case LUA_TNUMBER:
        return compat_isinteger(L, idx) ? json_integer((json_int_t)compat_tointeger(L, idx))
                                        : json_real((double)lua_tonumber(L, idx));
    default:
        return lua_toboolean(L, idx) ? json_true() : json_false();
    }
}

/* Returns a new reference for the value at idx: a scalar, or an empty
 * container. The caller attaches it to its parent (which is reachable from
 * the box) before filling it, so a Lua error at any point leaks nothing. */
static json_t *conv_make(lconv *cv, int idx) {
    lua_State *L = cv->L;
    if (lconv_scalar_ok(cv, idx)) {
        json_t *v = lvalue_scalar(L, idx);
        if (!v) lconv_error(cv, "%snot enough memory%s", "");
        return v;
    }
    switch (lua_type(L, idx)) {
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) return json_null();
        lconv_error(cv, "%scannot store a %s", "light userdata");
        return NULL;
    case LUA_TTABLE:
        return conv_new_table(cv, idx);
    default:
        lconv_error(cv, "%scannot store a %s", luaL_typename(L, idx));
        return NULL;
    }
}

/* Converts the child at stack top and attaches it to v, then fills it. */
static void conv_child(lconv *cv, json_t *v, const char *k, size_t kl) {
    lua_State *L = cv->L;
    int top = lua_gettop(L);
    json_t *item = conv_make(cv, top);
    if (json_is_array(v)) check_attach(cv, json_array_append_new(v, item));
    else check_attach(cv, json_object_setn_new_nocheck(v, k, kl, item));
    if (lua_type(L, top) == LUA_TTABLE) conv_fill(cv, top, item);
}

static void conv_fill(lconv *cv, int idx, json_t *v) {
    lua_State *L = cv->L;
    lconv_path *p;
    int level;
    lconv_enter(cv, idx);
    level = cv->depth;
    if (json_is_array(v)) {
        size_t n = lua_rawlen(L, idx), j;
        for (j = 1; j <= n; j++) {
            p = &cv->path[level];          /* a deeper item may have moved the path */
            p->key = NULL;
            p->index = (long long)j;
            lua_rawgeti(L, idx, (int)j);
            conv_child(cv, v, NULL, 0);
            lua_pop(L, 1);
        }
    } else {
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            size_t kl;
            /* conv_new_table checked that every key is a string */
            const char *k = lua_tolstring(L, -2, &kl);
            lconv_key(cv, &cv->path[level], k, kl);
            conv_child(cv, v, k, kl);
            lua_pop(L, 1);
        }
    }
    cv->depth--;
}

json_t *lconv_value(lconv *cv, int idx, json_t *owner) {
    json_t *v;
    idx = lua_absindex(cv->L, idx);
    v = conv_make(cv, idx);
    check_attach(cv, json_array_append_new(owner, v));
    if (lua_type(cv->L, idx) == LUA_TTABLE) conv_fill(cv, idx, v);
    return v;
}

json_t *lvalue_to_json(lua_State *L, int idx, ljson_box *box, const char *what) {
    return lvalue_to_json_at(L, idx, box, what, -1);
}

json_t *lvalue_to_json_at(lua_State *L, int idx, ljson_box *box, const char *what, int what_index) {
    lconv conv, *cv = &conv;
    json_t *v;
    char buf[96];
    idx = lua_absindex(L, idx);
    if (lua_isnoneornil(L, idx)) {
        v = json_object();
        if (!v) luaL_error(L, "not enough memory");
        if (box->root && json_is_array(box->root)) {
            if (json_array_append_new(box->root, v) != 0) luaL_error(L, "not enough memory");
        } else {
            box_set(box, v);
        }
        return v;
    }
    lconv_init(cv, L, what);
    cv->what_index = what_index;
    if (!lua_istable(L, idx))
        luaL_error(L, "%s must be a table, got %s", lconv_what(cv, buf, sizeof buf), luaL_typename(L, idx));
    v = conv_make(cv, idx);
    /* A box whose root is an array holds many values (one per event). */
    if (box->root && json_is_array(box->root)) {
        if (json_array_append_new(box->root, v) != 0) luaL_error(L, "not enough memory");
    } else {
        box_set(box, v);
    }
    if (!json_is_object(v)) luaL_error(L, "%s must be an object, not an array", lconv_what(cv, buf, sizeof buf));
    conv_fill(cv, idx, v);
    lua_pop(L, 1);
    return v;
}

json_t *lvalue_to_json_any(lua_State *L, int idx, ljson_box *box, const char *what) {
    lconv conv, *cv = &conv;
    json_t *v;
    idx = lua_absindex(L, idx);
    lconv_init(cv, L, what);
    v = conv_make(cv, idx);
    box_set(box, v);
    if (lua_type(L, idx) == LUA_TTABLE) conv_fill(cv, idx, v);
    lua_pop(L, 1);
    return v;
}

static void push_json(lua_State *L, const json_t *v, int depth) {
    if (depth > LVALUE_MAX_DEPTH + 100) luaL_error(L, "stored value nested too deep");
    luaL_checkstack(L, 4, "reading a value");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        size_t kl;
        json_t *item;
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_keylen_foreach((json_t *)v, k, kl, item) {
            lua_pushlstring(L, k, kl);
            push_json(L, item, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i, n = json_array_size(v);
        lua_createtable(L, (int)n, 0);
        for (i = 0; i < n; i++) {
            push_json(L, json_array_get(v, i), depth + 1);
            lua_rawseti(L, -2, (int)i + 1);
        }
        if (n == 0) {
            /* keep an empty array an array when written back */
            luaL_getmetatable(L, LARRAY_MT);
            lua_setmetatable(L, -2);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        compat_pushinteger(L, json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushlightuserdata(L, NULL);
        break;
    }
}

void lvalue_push_json(lua_State *L, const json_t *v) { push_json(L, v, 0); }

/* ---- reading: stored JSON text straight into Lua values ----
 * The read path decodes every event, so it builds Lua tables directly from
 * the text instead of going through a jansson tree (no allocation per node).
 * Stored texts were written by es_json_encode, but a PostgreSQL user may
 * have written rows by hand: the parser checks the grammar fully and raises
 * on anything malformed. It holds no C resource, so raising is harmless. */

typedef struct jparse {
    lua_State *L;
    const char *p, *end;
    int depth;
    lvalue_reader *r;       /* NULL: keys are pushed uncached */
} jparse;

static int jfail(jparse *jp, const char *what) {
    return luaL_error(jp->L, "stored value is not valid JSON: %s", what);
}

static void jspace(jparse *jp) {
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\n' || *jp->p == '\r' || *jp->p == '\t')) jp->p++;
}

static int jhex4(jparse *jp, unsigned *out) {
    unsigned v = 0;
    int i;
    if (jp->end - jp->p < 4) return 0;
    for (i = 0; i < 4; i++) {
        char c = jp->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    jp->p += 4;
    *out = v;
    return 1;
}

static void jutf8(luaL_Buffer *b, unsigned cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    luaL_addlstring(b, u, n);
}

/* jp->p is just past the opening quote; pushes the string. */
static void jstring(jparse *jp) {
    const char *start = jp->p, *q = es_json_plain(jp->p, jp->end);
    luaL_Buffer b;
    while (q < jp->end && *q != '"' && *q != '\\') {
        if ((unsigned char)*q < 0x20) jfail(jp, "control character in a string");
        q++;
    }
    if (q >= jp->end) jfail(jp, "unterminated string");
    if (*q == '"') {                       /* the common case: no escapes */
        lua_pushlstring(jp->L, start, (size_t)(q - start));
        jp->p = q + 1;
        return;
    }
    luaL_buffinit(jp->L, &b);
    luaL_addlstring(&b, start, (size_t)(q - start));
    jp->p = q;
    for (;;) {
        char c;
        if (jp->p >= jp->end) jfail(jp, "unterminated string");
        c = *jp->p++;
        if (c == '"') break;
        if ((unsigned char)c < 0x20) jfail(jp, "control character in a string");
        if (c != '\\') {
            luaL_addchar(&b, c);
            continue;
        }
        if (jp->p >= jp->end) jfail(jp, "unterminated escape");
        c = *jp->p++;
        switch (c) {
        case '"': case '\\': case '/': luaL_addchar(&b, c); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp, lo;
            if (!jhex4(jp, &cp)) jfail(jp, "bad \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (jp->end - jp->p < 2 || jp->p[0] != '\\' || jp->p[1] != 'u') jfail(jp, "lone surrogate");
                jp->p += 2;
                if (!jhex4(jp, &lo) || lo < 0xDC00 || lo > 0xDFFF) jfail(jp, "bad surrogate pair");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                jfail(jp, "lone surrogate");
            }
            jutf8(&b, cp);
            break;
        }
        default:
            jfail(jp, "bad escape");
        }
    }
    luaL_pushresult(&b);
}

/* Integers without fraction or exponent that fit int64 stay integers;
 * everything else is a correctly rounded double (es_json_real), so the 17
 * digits es_json_encode writes give back every bit. */
static void jnumber(jparse *jp) {
    const char *start = jp->p;
    int is_int = 1, neg = 0;
    unsigned long long acc = 0;
    int overflow = 0;
    if (jp->p < jp->end && *jp->p == '-') { neg = 1; jp->p++; }
    if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') jfail(jp, "bad number");
    if (*jp->p == '0' && jp->p + 1 < jp->end && jp->p[1] >= '0' && jp->p[1] <= '9') jfail(jp, "leading zero");
    while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
        unsigned d = (unsigned)(*jp->p - '0');
        if (acc > (ULLONG_MAX - d) / 10) overflow = 1;
        else acc = acc * 10 + d;
        jp->p++;
    }
    if (jp->p < jp->end && *jp->p == '.') {
        is_int = 0;
        jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') jfail(jp, "bad fraction");
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') jp->p++;
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        is_int = 0;
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-')) jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') jfail(jp, "bad exponent");
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') jp->p++;
    }
    if (is_int && !overflow && (neg ? acc <= (unsigned long long)LLONG_MAX + 1ULL : acc <= (unsigned long long)LLONG_MAX)) {
        long long v = neg ? (long long)(0ULL - acc) : (long long)acc;
        compat_pushinteger(jp->L, v);
        return;
    }
    {
        double d;
        if (!es_json_real(start, (size_t)(jp->p - start), &d)) jfail(jp, "number too long or too large");
        lua_pushnumber(jp->L, (lua_Number)d);
    }
}

/* An object key: without escapes it goes through the reader's cache. */
static void jkey(jparse *jp) {
    const char *q = jp->p;
    if (jp->r) {
        while (q < jp->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
        if (q < jp->end && *q == '"') {
            lvalue_push_cached(jp->L, jp->r, jp->p, (size_t)(q - jp->p));
            jp->p = q + 1;
            return;
        }
    }
    jstring(jp);
}

static void jvalue(jparse *jp);

static void jcontainer(jparse *jp, char open) {
    lua_State *L = jp->L;
    int n = 0;
    if (++jp->depth > LVALUE_MAX_DEPTH + 100) jfail(jp, "nested too deep");
    luaL_checkstack(L, 4, "reading a value");
    jp->p++;
    if (open == '{') lua_createtable(L, 0, 4);
    else lua_createtable(L, 4, 0);
    jspace(jp);
    if (jp->p < jp->end && *jp->p == (open == '{' ? '}' : ']')) {
        jp->p++;
        if (open == '[') {
            /* keep an empty array an array when written back */
            luaL_getmetatable(L, LARRAY_MT);
            lua_setmetatable(L, -2);
        }
        jp->depth--;
        return;
    }
    for (;;) {
        jspace(jp);
        if (open == '{') {
            if (jp->p >= jp->end || *jp->p != '"') jfail(jp, "expected a key");
            jp->p++;
            jkey(jp);
            jspace(jp);
            if (jp->p >= jp->end || *jp->p != ':') jfail(jp, "expected ':'");
            jp->p++;
            jspace(jp);
            jvalue(jp);
            lua_rawset(L, -3);
        } else {
            jvalue(jp);
            lua_rawseti(L, -2, ++n);
        }
        jspace(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == (open == '{' ? '}' : ']')) {
            jp->p++;
            break;
        }
        jfail(jp, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    jp->depth--;
}

static int jword(jparse *jp, const char *w, size_t n) {
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, w, n) != 0) return 0;
    jp->p += n;
    return 1;
}

static void jvalue(jparse *jp) {
    if (jp->p >= jp->end) jfail(jp, "unexpected end");
    switch (*jp->p) {
    case '{': case '[': jcontainer(jp, *jp->p); break;
    case '"': jp->p++; jstring(jp); break;
    case 't': if (!jword(jp, "true", 4)) jfail(jp, "bad literal"); lua_pushboolean(jp->L, 1); break;
    case 'f': if (!jword(jp, "false", 5)) jfail(jp, "bad literal"); lua_pushboolean(jp->L, 0); break;
    case 'n': if (!jword(jp, "null", 4)) jfail(jp, "bad literal"); lua_pushlightuserdata(jp->L, NULL); break;
    default: jnumber(jp); break;
    }
}

static void push_text_r(lua_State *L, const char *text, size_t len, lvalue_reader *r) {
    jparse jp;
    jp.L = L;
    jp.p = text;
    jp.end = text + len;
    jp.depth = 0;
    jp.r = r;
    jspace(&jp);
    jvalue(&jp);
    jspace(&jp);
    if (jp.p != jp.end) jfail(&jp, "text after the value");
}

void lvalue_push_text(lua_State *L, const char *text, size_t len) { push_text_r(L, text, len, NULL); }

/* An integer the encoder wrote (es_json_format_int): digits, maybe a '-'. */
static int index_int(const char *t, size_t n, long long *out) {
    unsigned long long acc = 0;
    size_t i = n > 0 && t[0] == '-';
    if (i == n || n - i > 19) return 0;
    for (; i < n; i++) {
        if (t[i] < '0' || t[i] > '9') return 0;
        acc = acc * 10 + (unsigned)(t[i] - '0');
    }
    if (t[0] == '-' ? acc > (unsigned long long)LLONG_MAX + 1ULL : acc > (unsigned long long)LLONG_MAX) return 0;
    *out = t[0] == '-' ? (long long)(0ULL - acc) : (long long)acc;
    return 1;
}

/* Whether t (n bytes) is a JSON number: es_json_real reads a prefix. */
static int index_number(const char *t, size_t n) {
    const char *p = t, *e = t + n;
    if (p < e && *p == '-') p++;
    if (p == e || *p < '0' || *p > '9') return 0;
    if (*p == '0') p++;
    else while (p < e && *p >= '0' && *p <= '9') p++;
    if (p < e && *p == '.') {
        if (++p == e || *p < '0' || *p > '9') return 0;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        if (++p < e && (*p == '+' || *p == '-')) p++;
        if (p == e || *p < '0' || *p > '9') return 0;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    return p == e;
}

/* Pushes the data object of ev from its index of members (es_data_ix: the
 * memory backend keeps one for each text the Lua encoder wrote): keys and
 * values are where the index says, so plain strings, integers and reals
 * are pushed without scanning their text, and only other values go
 * through the parser. The record is checked against the text as it goes
 * (every quote, colon and comma where it should be, each value of its
 * shape and ending where the record says, the last at the closing brace);
 * on a mismatch nothing is left on the stack and it returns 0: the caller
 * parses the whole text. A record that cut a nested value short would
 * raise the parser's error, as a corrupt text does. */
static int push_indexed(lua_State *L, const es_event *ev, lvalue_reader *r) {
    const es_data_ix *ix = ev->data_ix;
    const char *p = ev->data, *end = ev->data + ev->data_len;
    int top = lua_gettop(L);
    size_t i;
    if (ev->data_len < 2 || p[0] != '{' || end[-1] != '}') return 0;
    lua_createtable(L, 0, ix->n);
    p++;
    for (i = 0; i < ix->n; i++) {
        const es_member_at *a = &ix->m[i];
        const char *k = p + 1, *v;
        long long iv;
        double d;
        if ((size_t)(end - p) <= 3u + a->klen + a->vlen) goto mismatch;
        v = k + a->klen + 2;
        if (p[0] != '"' || v[-2] != '"' || v[-1] != ':' || v[a->vlen] != (i + 1 == ix->n ? '}' : ','))
            goto mismatch;
        lvalue_push_cached(L, r, k, a->klen);
        switch (a->shape) {
        case ES_V_STRING:
            if (a->vlen < 2 || v[0] != '"' || v[a->vlen - 1] != '"') goto mismatch;
            lua_pushlstring(L, v + 1, a->vlen - 2);
            break;
        case ES_V_INT:
            if (!index_int(v, a->vlen, &iv)) goto mismatch;
            compat_pushinteger(L, iv);
            break;
        case ES_V_REAL:
            if (!index_number(v, a->vlen) || !es_json_real(v, a->vlen, &d)) goto mismatch;
            lua_pushnumber(L, (lua_Number)d);
            break;
        default: {
            jparse jp;
            jp.L = L;
            jp.p = v;
            jp.end = v + a->vlen;
            jp.depth = 1;
            jp.r = r;
            jvalue(&jp);
            if (jp.p != jp.end) goto mismatch;
        }
        }
        lua_rawset(L, -3);
        p = v + a->vlen + 1;
    }
    if (p != end && !(ix->n == 0 && p + 1 == end)) goto mismatch;
    return 1;
mismatch:
    lua_settop(L, top);
    return 0;
}

/* The field names of an event, pushed once per read so that each event's
 * fields are set with lua_pushvalue + lua_rawset: lua_setfield would look
 * each name up in Lua's string cache for every field of every event. */
static const char *const event_keys[LVALUE_EVENT_KEYS] = {
    "id", "stream", "revision", "position", "type", "data", "metadata", "timestamp"
};

/* Pushes the field names, then cache slots (nil) of the reader; 0 slots:
 * no cache (a one-event push). */
static void reader_init(lua_State *L, lvalue_reader *r, int slots) {
    int i;
    luaL_checkstack(L, LVALUE_EVENT_KEYS + slots + 8, "reading events");
    r->keys = lua_gettop(L) + 1;
    for (i = 0; i < LVALUE_EVENT_KEYS; i++) lua_pushstring(L, event_keys[i]);
    r->slots = slots ? lua_gettop(L) + 1 : 0;
    for (i = 0; i < slots; i++) {
        lua_pushnil(L);
        r->c[i].s = NULL;
        r->c[i].len = 0;
    }
    memset(r->older, 0, sizeof r->older);
}

void lvalue_reader_init(lua_State *L, lvalue_reader *r) { reader_init(L, r, LVALUE_CACHE); }

/* Two-way set associative, on the length and the first, middle and last
 * bytes: a hit costs one comparison, a miss replaces the set's older slot. It
 * was direct-mapped on fewer bytes, and the bench's events had two pairs
 * of strings sharing a slot ("price" and "correlationId", "note" and the
 * stream), each evicting the other on every event. */
void lvalue_push_cached(lua_State *L, lvalue_reader *r, const char *s, size_t len) {
    unsigned h, set;
    int i, k;
    if (!r->slots) {                    /* a one-event reader caches nothing */
        lua_pushlstring(L, s, len);
        return;
    }
    h = (unsigned)len * 0x9E3779B1u;
    if (len)
        h ^= (unsigned char)s[0] * 0x85EBCA6Bu ^ (unsigned char)s[len - 1] * 0xC2B2AE35u ^
             (unsigned char)s[len >> 1] * 0x27D4EB2Fu;
    set = (h >> 16) % (LVALUE_CACHE / 2);
    i = (int)set * 2;
    for (k = i; k < i + 2; k++) {
        if (r->c[k].s && r->c[k].len == len && es_same_bytes(r->c[k].s, s, len)) {
            r->older[set] = (unsigned char)(k == i);   /* the other slot is now the older */
            lua_pushvalue(L, r->slots + k);
            return;
        }
    }
    k = i + r->older[set];
    r->older[set] = (unsigned char)(k == i);
    lua_pushlstring(L, s, len);
    lua_pushvalue(L, -1);
    lua_replace(L, r->slots + k);
    r->c[k].s = lua_tostring(L, r->slots + k);
    r->c[k].len = len;
}

void lvalue_push_event_r(lua_State *L, const es_event *ev, lvalue_reader *r) {
    int keys = r->keys;
    lua_createtable(L, 0, LVALUE_EVENT_KEYS);
    lua_pushvalue(L, keys + 0);
    lua_pushlstring(L, ev->id, strlen(ev->id)); /* not lua_pushstring: its string cache compares every new id */
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 1);
    lvalue_push_cached(L, r, ev->stream, strlen(ev->stream));
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 2);
    compat_pushinteger(L, ev->revision);
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 3);
    compat_pushinteger(L, ev->position);
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 4);
    lvalue_push_cached(L, r, ev->type, strlen(ev->type));
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 5);
    if (!ev->data_ix || !ev->data_ix->ok || !push_indexed(L, ev, r))
        push_text_r(L, ev->data, ev->data_len, r);
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 6);
    push_text_r(L, ev->metadata, ev->metadata_len, r);
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + 7);
    compat_pushinteger(L, ev->timestamp);
    lua_rawset(L, -3);
}

void lvalue_push_event(lua_State *L, const es_event *ev) {
    lvalue_reader r;
    int top = lua_gettop(L);
    reader_init(L, &r, 0);
    lvalue_push_event_r(L, ev, &r);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
}

void lvalue_setup(lua_State *L) {
    if (luaL_newmetatable(L, LJSON_MT)) {
        lua_pushcfunction(L, ljson_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, LARRAY_MT)) {
        lua_pushliteral(L, LARRAY_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}
