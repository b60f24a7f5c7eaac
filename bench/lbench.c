/* lbench.c: the bench driver's clock and memory probes, and the floors of a read (its Lua tables) and of an append (its JSON), as a tiny Lua module (esbench) */
/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "common.h"
#include "es_internal.h"
#include "lua_compat.h"

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

/* ---- tables(first_position, n): the floor of a read ----
 *
 * A read returns each event as three Lua tables (the event, its data, its
 * metadata). This builds exactly those tables for events first_position ..
 * first_position + n - 1 of the W2 store (position p is revision
 * (p - 1) % 100 + 1 of stream (p - 1) / 100), with nothing else: no
 * storage, no JSON, and the collector paused while they are built, as the
 * module's reads do. Only the strings that differ from event to event are
 * made per event (the id, the sku and two uuids): every field name and
 * every value the events share (the stream, the type, and the note, which
 * is the same text in every event of the workload) is pushed once per
 * call, as a store that shared equal strings could. The bench times it
 * with the checks of W3 and W4, in the same process and minutes as the
 * store: the fastest any read that returns Lua tables can go there.
 */

#define TABLES_MAX 100000            /* events per call */

enum { K_ID, K_STREAM, K_REVISION, K_POSITION, K_TYPE, K_DATA, K_METADATA, K_TIMESTAMP,
       K_SKU, K_QTY, K_PRICE, K_NOTE, K_CORRELATION, K_CAUSATION, K__COUNT };

static const char *const table_keys[K__COUNT] = {
    "id", "stream", "revision", "position", "type", "data", "metadata", "timestamp",
    "sku", "qty", "price", "note", "correlationId", "causationId",
};

/* The last 12 characters of a uuid text: n in hex, so every event's differ. */
static void put_hex12(char *p, unsigned long long n) {
    static const char hex[] = "0123456789abcdef";
    int i;
    for (i = 11; i >= 0; i--, n >>= 4) p[i] = hex[n & 15];
}

/* "SKU-" and n on 6 digits, as the workload's payloads have it. */
static void put_sku(char *p, long long n) {
    int i;
    memcpy(p, "SKU-", 4);
    for (i = 9; i >= 4; i--, n /= 10) p[i] = (char)('0' + n % 10);
}

/* Pushes the event at position p (the stream's name is at stream_at, the
 * type at type_at, the note at note_at): each field as a read sets it,
 * name, value, rawset. */
static void push_table_event(lua_State *L, int keys, int stream_at, int type_at, int note_at, long long p) {
    char id[] = "0190a6f0-7c1e-8000-8000-000000000000";
    char corr[] = "4a2b8a55-6c5d-4d0b-9c0e-000000000000";
    char caus[] = "7f3c9b21-0d4e-4a6f-8b1c-000000000000";
    char sku[10];
    long long s = (p - 1) / BENCH_REVS, r = (p - 1) % BENCH_REVS + 1;
    put_sku(sku, s * 1000 + r);
    put_hex12(id + 24, (unsigned long long)p);
    put_hex12(corr + 24, (unsigned long long)p);
    put_hex12(caus + 24, (unsigned long long)p);

#define FIELD(k, push) (lua_pushvalue(L, keys + (k)), (push), lua_rawset(L, -3))
    lua_createtable(L, 0, 8);
    FIELD(K_ID, lua_pushlstring(L, id, 36));
    FIELD(K_STREAM, lua_pushvalue(L, stream_at));
    FIELD(K_REVISION, lua_pushinteger(L, (lua_Integer)r));
    FIELD(K_POSITION, lua_pushinteger(L, (lua_Integer)p));
    FIELD(K_TYPE, lua_pushvalue(L, type_at));
    lua_pushvalue(L, keys + K_DATA);
    lua_createtable(L, 0, 4);
    FIELD(K_SKU, lua_pushlstring(L, sku, 10));
    FIELD(K_QTY, lua_pushinteger(L, (lua_Integer)(r % 5 + 1)));
    FIELD(K_PRICE, lua_pushnumber(L, 12.5));
    FIELD(K_NOTE, lua_pushvalue(L, note_at));
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + K_METADATA);
    lua_createtable(L, 0, 2);
    FIELD(K_CORRELATION, lua_pushlstring(L, corr, 36));
    FIELD(K_CAUSATION, lua_pushlstring(L, caus, 36));
    lua_rawset(L, -3);
    FIELD(K_TIMESTAMP, lua_pushinteger(L, (lua_Integer)(1765000000000LL + p)));
#undef FIELD
}

/* lua_CFunction (list, first, n): fills the list as tables() describes. */
static int build_tables(lua_State *L) {
    long long first = (long long)lua_tointeger(L, 2), p, s = -1;
    lua_Integer n = lua_tointeger(L, 3), i;
    int keys, stream_at, type_at, note_at;
    char name[24];
    lua_settop(L, 1);
    luaL_checkstack(L, K__COUNT + 16, "tables");
    keys = 2;
    for (i = 0; i < K__COUNT; i++) lua_pushstring(L, table_keys[i]);
    lua_pushliteral(L, "ItemAdded");
    type_at = lua_gettop(L);
    lua_pushlstring(L, BENCH_FILLER, BENCH_NOTE_LEN);
    note_at = lua_gettop(L);
    lua_pushnil(L);                    /* the current stream's name */
    stream_at = lua_gettop(L);
    for (i = 1, p = first; i <= n; i++, p++) {
        if ((p - 1) / BENCH_REVS != s) {
            s = (p - 1) / BENCH_REVS;
            snprintf(name, sizeof name, "item-%06lld", s);
            lua_pushstring(L, name);
            lua_replace(L, stream_at);
        }
        push_table_event(L, keys, stream_at, type_at, note_at, p);
        lua_rawseti(L, 1, i);
    }
    return 0;
}

/* tables(first_position, n). As a read does (push_query), it allocates
 * its result before it pauses the collector (see compat_pcall_paused), and
 * builds the rows in a protected call, so that an error (no memory)
 * restarts the collector before it goes on. */
static int esbench_tables(lua_State *L) {
    lua_Integer first = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, first >= 1, 1, "positions start at 1");
    luaL_argcheck(L, n >= 0 && n <= TABLES_MAX, 2, "0 to 100000 events");
    lua_settop(L, 0);
    lua_createtable(L, (int)n, 0);
    lua_pushcfunction(L, build_tables);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, first);
    lua_pushinteger(L, n);
    if (compat_pcall_paused(L, 3, 0) != LUA_OK) return lua_error(L);
    return 1;
}

/* ---- json(events[, keep]): the floor of an append ----
 *
 * A store that keeps events as JSON text (ours does, in C, on every
 * backend) must write each event's data and metadata from the caller's
 * tables before it stores anything, and give each event an id: the
 * workload times that as part of an append. This does exactly that for a
 * list of events, and nothing else: each string is checked as UTF-8 (JSON
 * text is UTF-8, and DESIGN.md lets a store refuse other bytes, never
 * alter them), each event gets a version 7 id as the store makes them,
 * and there are no other checks (keys, cycles), no storage and no result,
 * into one buffer reused from event to event. Keys come in lua_next's
 * order, as the store writes them; the UTF-8 check, strings, numbers and
 * ids go through the store's own code (csrc/json_text.c and csrc/uuid.c,
 * built into this module), so the text is the store's, byte for byte.
 * Nested tables and other values are refused: the workload has none. The
 * bench times it over W2's batches, right after W2, in the store's
 * process: no store that writes these texts from these tables appends
 * faster there.
 */

typedef struct {
    char *p;
    size_t len, cap;
} jbuf;

static jbuf floor_buf;               /* reused by every call; the bench is one thread */

/* __gc of the module's sentinel: the buffer goes with the Lua state (a
 * lua_close unloads this module, and valgrind counts a block whose only
 * pointer was in it as lost). */
static int floor_buf_gc(lua_State *L) {
    (void)L;
    free(floor_buf.p);
    floor_buf.p = NULL;
    floor_buf.len = floor_buf.cap = 0;
    return 0;
}

static void jreserve(lua_State *L, jbuf *b, size_t n) {
    size_t cap;
    char *p;
    if (b->cap - b->len >= n) return;
    if (n > SIZE_MAX / 4 - b->len) luaL_error(L, "json: out of memory");
    cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n) cap *= 2;
    if (!(p = realloc(b->p, cap))) luaL_error(L, "json: out of memory");
    b->p = p;
    b->cap = cap;
}

/* s as a JSON string: checked as UTF-8 as the store checks it (its
 * plain ASCII start in the same pass as the scan for escapes, the rest by
 * es_valid_utf8), the plain runs found by the store's own scan
 * (es_json_plain, 16 bytes at a time), the rest escaped as "\u00XX" or
 * with a backslash. */
static void jstring(lua_State *L, jbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const char *p = s, *end = s + n, *ascii = es_json_plain_ascii(s, end);
    if (ascii < end && !es_valid_utf8(ascii, (size_t)(end - ascii)))
        luaL_error(L, "json: a string that is not UTF-8");
    if (n > SIZE_MAX / 8) luaL_error(L, "json: out of memory");
    jreserve(L, b, 6 * n + 2);
    b->p[b->len++] = '"';
    for (;;) {
        const char *q = es_json_plain(p, end);
        unsigned char c;
        memcpy(b->p + b->len, p, (size_t)(q - p));
        b->len += (size_t)(q - p);
        if (q == end) break;
        c = (unsigned char)*q;
        if (c == '"' || c == '\\') {
            b->p[b->len++] = '\\';
            b->p[b->len++] = (char)c;
        } else {
            memcpy(b->p + b->len, "\\u00", 4);
            b->p[b->len + 4] = hex[c >> 4];
            b->p[b->len + 5] = hex[c & 15];
            b->len += 6;
        }
        p = q + 1;
    }
    b->p[b->len++] = '"';
}

/* c at the end of the buffer */
static void jputc(lua_State *L, jbuf *b, char c) {
    jreserve(L, b, 1);
    b->p[b->len++] = c;
}

/* the store's own writer of integers */
static void jinteger(lua_State *L, jbuf *b, lua_Integer v) {
    jreserve(L, b, 24);
    b->len += es_json_format_int((long long)v, b->p + b->len);
}

/* the store's own writer of reals: 12.5 by an exact short path */
static void jreal(lua_State *L, jbuf *b, double d) {
    if (!isfinite(d)) luaL_error(L, "json: a number JSON cannot hold");
    jreserve(L, b, 48);
    b->len += es_json_format_real(d, b->p + b->len);
}

/* The object at stack index idx, one level. */
static void jobject(lua_State *L, jbuf *b, int idx) {
    int first = 1;
    jputc(L, b, '{');
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t n;
        const char *s;
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "json: a key that is not a string");
        s = lua_tolstring(L, -2, &n);
        if (!first) jputc(L, b, ',');
        first = 0;
        jstring(L, b, s, n);
        jputc(L, b, ':');
        switch (lua_type(L, -1)) {
        case LUA_TSTRING:
            s = lua_tolstring(L, -1, &n);
            jstring(L, b, s, n);
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, -1)) jinteger(L, b, lua_tointeger(L, -1));
            else jreal(L, b, (double)lua_tonumber(L, -1));
            break;
        case LUA_TBOOLEAN:
            jreserve(L, b, 5);
            if (lua_toboolean(L, -1)) memcpy(b->p + b->len, "true", 4), b->len += 4;
            else memcpy(b->p + b->len, "false", 5), b->len += 5;
            break;
        default:
            luaL_error(L, "json: a %s value (the floor writes the workload's values only)", luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    jputc(L, b, '}');
}

/* json(events[, keep]) -> bytes written; with keep, also a list of the
 * texts, data and metadata of each event in turn (for the specs). The
 * field names are pushed once per call, as the store's append does. */
static int esbench_json(lua_State *L) {
    static const char *const fields[2] = { "data", "metadata" };
    lua_Integer i, n, bytes = 0;
    int keep = lua_toboolean(L, 2), k, out = 0;
    jbuf *b = &floor_buf;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (keep) lua_newtable(L);                /* 2: the texts, when kept */
    else lua_pushnil(L);
    lua_pushstring(L, fields[0]);             /* 3, 4: the field names */
    lua_pushstring(L, fields[1]);
    n = (lua_Integer)lua_rawlen(L, 1);
    for (i = 1; i <= n; i++) {
        char id[ES_UUID_LEN + 1];
        if (lua_rawgeti(L, 1, i) != LUA_TTABLE) return luaL_error(L, "json: event %d is not a table", (int)i);
        es_uuid_v7(id);
        b->len = 0;
        for (k = 0; k < 2; k++) {
            size_t start = b->len;
            lua_pushvalue(L, 3 + k);
            if (lua_gettable(L, -2) != LUA_TTABLE)
                return luaL_error(L, "json: event %d has no %s table", (int)i, fields[k]);
            jobject(L, b, lua_gettop(L));
            lua_pop(L, 1);
            if (keep) {
                lua_pushlstring(L, b->p + start, b->len - start);
                lua_rawseti(L, 2, ++out);
            }
        }
        bytes += (lua_Integer)b->len;
        lua_pop(L, 1);
    }
    lua_pushinteger(L, bytes);
    if (keep) lua_pushvalue(L, 2);
    return keep ? 2 : 1;
}

int luaopen_esbench(lua_State *L) {
    static const luaL_Reg fns[] = {
        { "now", esbench_now },
        { "tables", esbench_tables },
        { "json", esbench_json },
        { "reset_peak", esbench_reset_peak },
        { "status_kb", esbench_status_kb },
        { NULL, NULL },
    };
    luaL_newlib(L, fns);
    if (luaL_getsubtable(L, LUA_REGISTRYINDEX, "esbench.floor_buf")) {
        lua_pop(L, 1);                       /* loaded before: its sentinel is there */
        return 1;
    }
    lua_newtable(L);
    lua_pushcfunction(L, floor_buf_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);                 /* the registry's table frees the buffer when collected */
    lua_pop(L, 1);
    return 1;
}
