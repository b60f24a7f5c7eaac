/* lua_encode.c: Lua values written straight to compact, exact JSON text */
/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_binding.h"
#include "es_internal.h"

/* The append path writes every event's data and metadata: going through a
 * jansson tree (a malloc per node, then a dump) costs more than the
 * storage work itself, so the text is written directly. The rules are
 * those of lvalue_to_json (same checks, same error messages), and the text
 * is what es_json_encode would write: integers as integers, reals with the
 * shortest of 15, 16 or 17 digits that reads back to the same bits, and a
 * ".0" on integral reals so they stay reals. */

#define LBUF_MT "eventstore.Buffer"

static int lbuf_gc(lua_State *L) {
    lencbuf *b = luaL_checkudata(L, 1, LBUF_MT);
    es_buf_free(&b->buf);
    es_buf_free(&b->ix);
    return 0;
}

lencbuf *lencode_newbuf(lua_State *L) {
    lencbuf *b = lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, LBUF_MT);
    lua_setmetatable(L, -2);
    return b;
}

void lencode_protected(lua_State *L, void *ud, int idx, lencbuf *b) {
    idx = lua_absindex(L, idx);
    lua_pushlightuserdata(L, ud);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 2, 0, 0) == LUA_OK) return;
    es_buf_free(&b->buf);
    es_buf_free(&b->ix);
    if (b->busy) *b->busy = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    lua_error(L);
}

typedef struct enc {
    lconv cv;
    es_buf *out;
    es_buf *ix;      /* lencode_data_at: the index record of the top-level object, else NULL */
} enc;

static void put(enc *e, const char *s, size_t n) {
    es_buf *o = e->out;
    if (n < o->cap - o->len) {
        /* room for the bytes and the NUL: no call */
        memcpy(o->data + o->len, s, n);
        o->len += n;
        o->data[o->len] = '\0';
        return;
    }
    if (es_buf_add(o, s, n) != ES_OK) lconv_error(&e->cv, "%snot enough memory%s", "");
}

static void putc_(enc *e, char c) {
    if (e->out->len + 1 < e->out->cap) {
        e->out->data[e->out->len++] = c;
        e->out->data[e->out->len] = '\0';
        return;
    }
    put(e, &c, 1);
}

/* Returns 1 when the string needed no escapes. */
static int put_string(enc *e, const char *s, size_t n, int is_key) {
    static const char hex[] = "0123456789abcdef";
    size_t i = (size_t)(es_json_plain_ascii(s, s + n) - s), run = 0;
    if (i < n) {
        /* past the plain ASCII start: UTF-8 from a character's first byte */
        if (!es_valid_utf8(s + i, n - i))
            lconv_error(&e->cv, is_key ? "%skey is not valid UTF-8%s" : "%sstring is not valid UTF-8%s", "");
        i = (size_t)(es_json_plain(s + i, s + n) - s);
    }
    if (n + 2 >= e->out->cap - e->out->len && es_buf_reserve(e->out, n + 2) != ES_OK)
        lconv_error(&e->cv, "%snot enough memory%s", "");
    if (i == n) {
        /* nothing to escape (most keys and values): one copy into the room
         * just reserved, quotes and the NUL included */
        char *o = e->out->data + e->out->len;
        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        o[n + 2] = '\0';
        e->out->len += n + 2;
        return 1;
    }
    putc_(e, '"');
    /* from the first byte to escape, which es_json_plain found above */
    for (; i < n; i++) {
        unsigned char c;
        char esc[6];
        /* bytes that need no escape, 8 at a time */
        i = (size_t)(es_json_plain(s + i, s + n) - s);
        if (i == n) break;
        c = (unsigned char)s[i];
        if (c == 0 && is_key) lconv_error(&e->cv, "%skey contains a NUL byte%s", "");
        put(e, s + run, i - run);
        run = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; put(e, esc, 2); break;
        case '\\': esc[1] = '\\'; put(e, esc, 2); break;
        case '\n': esc[1] = 'n'; put(e, esc, 2); break;
        case '\r': esc[1] = 'r'; put(e, esc, 2); break;
        case '\t': esc[1] = 't'; put(e, esc, 2); break;
        case '\b': esc[1] = 'b'; put(e, esc, 2); break;
        case '\f': esc[1] = 'f'; put(e, esc, 2); break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            put(e, esc, 6);
        }
    }
    put(e, s + run, n - run);
    putc_(e, '"');
    return 0;
}

static void put_integer(enc *e, long long v) {
    char tmp[24];
    put(e, tmp, es_json_format_int(v, tmp));
}

static void put_real(enc *e, double d) {
    char tmp[48];
    size_t n;
    if (isnan(d)) lconv_error(&e->cv, "%sNaN cannot be stored%s", "");
    if (isinf(d)) lconv_error(&e->cv, "%sinfinity cannot be stored%s", "");
    n = es_json_format_real(d, tmp);
    put(e, tmp, n);
}

static int enc_value(enc *e, int idx);

/* The member just written (a key of kl bytes, plain when written without
 * escapes, then a value of that shape from v on) to the index record at
 * head, which stays usable only while every key is plain and short and
 * every value shorter than 64 KB. */
static void ix_member(enc *e, es_buf *ix, size_t head, size_t kl, int plain, size_t v, int shape) {
    es_data_ix *h = (es_data_ix *)(void *)(ix->data + head);
    es_member_at *a;
    size_t vlen = e->out->len - v;
    if (!h->ok) return;
    if (!plain || kl > UINT8_MAX || vlen > UINT16_MAX || h->n == UINT16_MAX) {
        h->ok = 0;
        return;
    }
    if (ix->len + sizeof *a >= ix->cap) {
        if (es_buf_reserve(ix, sizeof *a) != ES_OK) lconv_error(&e->cv, "%snot enough memory%s", "");
        h = (es_data_ix *)(void *)(ix->data + head);
    }
    a = (es_member_at *)(void *)(ix->data + ix->len);
    a->vlen = (uint16_t)vlen;
    a->klen = (uint8_t)kl;
    a->shape = (uint8_t)shape;
    ix->len += sizeof *a;
    h->n++;
}

/* Adds an index record of no members yet: ES_OK, or ES_ENOMEM. */
static int ix_begin(es_buf *ix) {
    es_data_ix h;
    h.n = 0;
    h.ok = 1;
    return es_buf_add(ix, (const char *)&h, sizeof h);
}

/* An object's members, the first key/value pair already on the stack. A
 * key that is not a string means the table is not an object after all:
 * lconv_table_kind then raises the same error it raises up front. With
 * e->ix, the members go to its record (only the outermost object's:
 * nested ones see no ix). */
static void enc_members(enc *e, int idx) {
    lua_State *L = e->cv.L;
    lconv_path *p;
    int level = e->cv.depth;     /* the object's level: a deeper value may move the path */
    es_buf *ix = e->ix;
    size_t head = ix ? ix->len : 0;
    int first = 1;
    e->ix = NULL;
    if (ix && ix_begin(ix) != ES_OK) lconv_error(&e->cv, "%snot enough memory%s", "");
    putc_(e, '{');
    do {
        size_t kl, v;
        const char *key;
        int plain, shape;
        if (lua_type(L, -2) != LUA_TSTRING) {
            e->cv.depth--;
            lconv_table_kind(&e->cv, idx);
            e->cv.depth++;
        }
        key = lua_tolstring(L, -2, &kl);
        p = &e->cv.path[level];
        p->key = key;
        p->keylen = kl;
        if (!first) putc_(e, ',');
        first = 0;
        plain = put_string(e, key, kl, 1);
        putc_(e, ':');
        v = e->out->len;
        shape = enc_value(e, lua_gettop(L));
        if (ix) ix_member(e, ix, head, kl, plain, v, shape);
        lua_pop(L, 1);
    } while (lua_next(L, idx));
    putc_(e, '}');
}

/* A table as an array or an object. A table without a metatable whose
 * first key is a string is written as an object in one pass; anything else
 * is classified first (lconv_table_kind). object_only: an array is an error
 * (the top level of data and metadata). */
static void enc_table(enc *e, int idx, int object_only) {
    lua_State *L = e->cv.L;
    lconv_path *p;
    int is_array, level;
    luaL_checkstack(L, 6, "converting a table");
    if (!lua_getmetatable(L, idx)) {
        lua_pushnil(L);
        if (!lua_next(L, idx)) {
            lconv_enter(&e->cv, idx);   /* depth and cycle checks, as for any table */
            put(e, "{}", 2);
            e->cv.depth--;
            return;
        }
        if (lua_type(L, -2) == LUA_TSTRING) {
            lconv_enter(&e->cv, idx);
            enc_members(e, idx);
            e->cv.depth--;
            return;
        }
        lua_pop(L, 2);
    } else {
        lua_pop(L, 1);
    }
    is_array = lconv_table_kind(&e->cv, idx);
    if (is_array && object_only) {
        char buf[128];
        luaL_error(L, "%s must be an object, not an array", lconv_what(&e->cv, buf, sizeof buf));
    }
    lconv_enter(&e->cv, idx);
    level = e->cv.depth;
    if (is_array) {
        size_t n = lua_rawlen(L, idx), j;
        putc_(e, '[');
        for (j = 1; j <= n; j++) {
            if (j > 1) putc_(e, ',');
            p = &e->cv.path[level];      /* a deeper item may have moved the path */
            p->key = NULL;
            p->index = (long long)j;
            lua_rawgeti(L, idx, (int)j);
            enc_value(e, lua_gettop(L));
            lua_pop(L, 1);
        }
        putc_(e, ']');
    } else {
        lua_pushnil(L);
        if (lua_next(L, idx)) enc_members(e, idx);
        else put(e, "{}", 2);
    }
    e->cv.depth--;
}

/* Writes the value at idx; returns its shape in the text (es_data_ix). */
static int enc_value(enc *e, int idx) {
    lua_State *L = e->cv.L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return put_string(e, s, n, 0) ? ES_V_STRING : ES_V_OTHER;
    }
    case LUA_TNUMBER:
        if (compat_isinteger(L, idx)) {
            put_integer(e, compat_tointeger(L, idx));
            return ES_V_INT;
        }
        put_real(e, (double)lua_tonumber(L, idx));
        return ES_V_REAL;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) put(e, "true", 4);
        else put(e, "false", 5);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL) lconv_error(&e->cv, "%scannot store a %s", "light userdata");
        put(e, "null", 4);
        break;
    case LUA_TTABLE:
        enc_table(e, idx, 0);
        break;
    default:
        lconv_error(&e->cv, "%scannot store a %s", luaL_typename(L, idx));
    }
    return ES_V_OTHER;
}

static size_t encode_object(lua_State *L, int idx, lencbuf *b, const char *what, int index, es_buf *ix) {
    enc encoder, *e = &encoder;
    size_t start = b->buf.len, head = ix ? ix->len : 0;
    char buf[128];
    idx = lua_absindex(L, idx);
    if (lua_isnoneornil(L, idx)) {
        if (es_buf_add(&b->buf, "{}", 2) != ES_OK) luaL_error(L, "not enough memory");
    } else {
        lconv_init(&e->cv, L, what);
        e->cv.what_index = index;
        if (!lua_istable(L, idx))
            luaL_error(L, "%s must be a table, got %s", lconv_what(&e->cv, buf, sizeof buf),
                       luaL_typename(L, idx));
        e->out = &b->buf;
        e->ix = ix;
        enc_table(e, idx, 1);
        lua_pop(L, 1);
    }
    if (ix && ix->len == head) {
        /* {}: no members (enc_members wrote no record) */
        if (ix_begin(ix) != ES_OK) luaL_error(L, "not enough memory");
    }
    return start;
}

size_t lencode_object(lua_State *L, int idx, lencbuf *b, const char *what) {
    return encode_object(L, idx, b, what, -1, NULL);
}

size_t lencode_object_at(lua_State *L, int idx, lencbuf *b, const char *what, int index) {
    return encode_object(L, idx, b, what, index, NULL);
}

size_t lencode_data_at(lua_State *L, int idx, lencbuf *b, const char *what, int index) {
    return encode_object(L, idx, b, what, index, &b->ix);
}

size_t lencode_value(lua_State *L, int idx, lencbuf *b, const char *what) {
    enc encoder, *e = &encoder;
    size_t start = b->buf.len;
    idx = lua_absindex(L, idx);
    lconv_init(&e->cv, L, what);
    e->out = &b->buf;
    e->ix = NULL;
    enc_value(e, idx);
    lua_pop(L, 1);
    return start;
}

void lencode_setup(lua_State *L) {
    if (luaL_newmetatable(L, LBUF_MT)) {
        lua_pushcfunction(L, lbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}
