/* lua_store.c: the eventstore.Store handle and its methods */
/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua_binding.h"

typedef struct lstore {
    es_store *s;     /* NULL once closed (or before open succeeded) */
} lstore;

typedef struct lcursor {
    es_cursor *cur;  /* closed by __gc if a Lua error interrupts a read */
} lcursor;

static lstore *lstore_get(lua_State *L, int idx) { return luaL_checkudata(L, idx, LSTORE_MT); }

static es_store *lstore_check(lua_State *L, int idx) {
    lstore *ud = lstore_get(L, idx);
    if (!ud->s) luaL_error(L, "attempt to use a closed store");
    return ud->s;
}

es_store *lstore_checkstore(lua_State *L, int idx) { return lstore_check(L, idx); }

static int lstore_gc(lua_State *L) {                /* also __close and close() */
    lstore *ud = lstore_get(L, 1);
    es_store *s = ud->s;
    ud->s = NULL;
    if (s) es_store_close(s);
    lua_pushboolean(L, 1);
    return 1;
}

static int lstore_tostring(lua_State *L) {
    lstore *ud = lstore_get(L, 1);
    if (ud->s) lua_pushfstring(L, "eventstore.Store (%s): %p", es_store_backend_name(ud->s), (void *)ud);
    else lua_pushfstring(L, "eventstore.Store (closed): %p", (void *)ud);
    return 1;
}

static int lcursor_gc(lua_State *L) {
    lcursor *c = luaL_checkudata(L, 1, LCURSOR_MT);
    es_cursor *cur = c->cur;
    c->cur = NULL;
    if (cur) es_cursor_close(cur);
    return 0;
}

/* ---- argument helpers (they raise: nothing is acquired yet) ---- */

static void check_opts(lua_State *L, int idx, const char *fname) {
    if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx))
        luaL_argerror(L, idx, lua_pushfstring(L, "%s: options must be a table", fname));
}

/* A stream name: a non-empty UTF-8 string of at most 255 bytes, no NUL. */
const char *lstore_checkstream(lua_State *L, int idx) {
    size_t n;
    const char *s = luaL_checklstring(L, idx, &n);
    if (strlen(s) != n) luaL_argerror(L, idx, "stream name contains a NUL byte");
    if (n == 0) luaL_argerror(L, idx, "stream name is empty");
    if (n > ES_MAX_STREAM_LEN)
        luaL_argerror(L, idx, lua_pushfstring(L, "stream name is longer than %d bytes", ES_MAX_STREAM_LEN));
    if (!es_valid_utf8(s, n)) luaL_argerror(L, idx, "stream name is not valid UTF-8");
    return s;
}

/* What is wrong with a value that should be an integer: its type, or, for a
 * number, fractional or too large for an integer (beyond 2^53 on 5.1/LuaJIT). */
static const char *what_number(lua_State *L, int idx) {
    lua_Number n;
    if (lua_type(L, idx) != LUA_TNUMBER) return luaL_typename(L, idx);
    n = lua_tonumber(L, idx);
    return n == floor(n) ? "a number out of the integer range" : "a fractional number";
}

/* Integer option `name` of the options table at idx, or def when absent. */
static long long opt_int(lua_State *L, int idx, const char *name, long long def, long long min) {
    long long v = def;
    if (lua_isnoneornil(L, idx)) return def;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER || !compat_isintegral(L, -1))
            luaL_error(L, "option '%s' must be an integer, got %s", name,
                       what_number(L, -1));
        v = compat_tointeger(L, -1);
        if (v < min) luaL_error(L, "option '%s' must be >= %d", name, (int)min);
    }
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, int idx, const char *name, int def) {
    int v = def;
    if (lua_isnoneornil(L, idx)) return def;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        if (!lua_isboolean(L, -1))
            luaL_error(L, "option '%s' must be a boolean, got %s", name, luaL_typename(L, -1));
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* The string stays on the stack (below the caller's work) so it lives for
 * the whole call: callers leave the stack growing until they return. */
static const char *opt_str(lua_State *L, int idx, const char *name) {
    const char *v = NULL;
    if (lua_isnoneornil(L, idx)) return NULL;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        size_t n;
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "option '%s' must be a string, got %s", name, luaL_typename(L, -1));
        v = lua_tolstring(L, -1, &n);
        if (strlen(v) != n) luaL_error(L, "option '%s' contains a NUL byte", name);
    }
    return v;
}

/* The limit option: 0 = none given; *empty set when an explicit 0 asks for nothing. */
static int64_t opt_limit(lua_State *L, int idx, int *empty) {
    long long v = opt_int(L, idx, "limit", -1, 0);
    *empty = v == 0;
    return v < 0 ? 0 : v;
}

/* Raises for an option name the function does not know (a typo would
 * otherwise be silently ignored). names is NULL-terminated. */
static void check_opt_names(lua_State *L, int idx, const char *fname, const char *const *names) {
    if (lua_isnoneornil(L, idx)) return;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *const *n;
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (n = names; *n && !ok; n++) ok = strcmp(*n, lua_tostring(L, -2)) == 0;
        if (!ok) {
            lua_pop(L, 1);
            luaL_error(L, "%s: unknown option '%s'", fname,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
}

/* ---- open ---- */

static int lstore_open(lua_State *L) {
    static const char *const names[] = { "snapshot_every", "max_snapshots", "synchronous", "busy_timeout",
                                         "create", "readonly", "outbox", "schema", "prefix", "mmap_size", NULL };
    const char *url = luaL_checkstring(L, 1);
    const char *sync;
    es_options opt;
    es_err err;
    lstore *ud;
    int rc;

    check_opts(L, 2, "open");
    check_opt_names(L, 2, "open", names);
    es_options_init(&opt);
    opt.snapshot_every = opt_int(L, 2, "snapshot_every", 0, 0);
    opt.max_snapshots = opt_int(L, 2, "max_snapshots", 0, 0);
    opt.busy_timeout_ms = (int)opt_int(L, 2, "busy_timeout", 5000, 0);
    opt.sqlite_mmap_size = opt_int(L, 2, "mmap_size", opt.sqlite_mmap_size, 0);
    opt.create = opt_bool(L, 2, "create", 1);
    opt.readonly = opt_bool(L, 2, "readonly", 0);
    opt.outbox = opt_bool(L, 2, "outbox", 0);
    opt.schema = opt_str(L, 2, "schema");
    opt.prefix = opt_str(L, 2, "prefix");
    sync = opt_str(L, 2, "synchronous");
    if (sync) {
        if (strcmp(sync, "full") == 0) opt.synchronous_full = 1;
        else if (strcmp(sync, "normal") == 0) opt.synchronous_full = 0;
        else luaL_error(L, "option 'synchronous' must be \"full\" or \"normal\", got \"%s\"", sync);
    }
    if (strlen(url) != lua_rawlen(L, 1)) luaL_argerror(L, 1, "URL contains a NUL byte");

    /* Create the handle closed, then acquire into it (liolib's newprefile). */
    ud = compat_newuserdata(L, sizeof *ud);
    ud->s = NULL;
    luaL_getmetatable(L, LSTORE_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L);                       /* uservalue: listeners and the like */
    compat_setuservalue(L, -2);
    es_err_clear(&err);
    if ((rc = es_store_open(url, &opt, &ud->s, &err)) != ES_OK) {
        if (rc == ES_ENOMEM) return luaL_error(L, "not enough memory (%s)", err.msg);
        lua_pushnil(L);
        lerror_push(L, &err);
        return 2;
    }
    return 1;
}

/* ---- append ---- */

static const char *const append_event_keys[] = { "type", "data", "metadata", "id",
    /* fields of a read event, so events read from one store can be appended to another */
    "stream", "revision", "position", "timestamp", NULL };

/* Fills in from the event table at idx; data/metadata are written as JSON
 * text into b, with their lengths in in->data_len/metadata_len
 * (turned into pointers once every event is written: b moves as it grows). */
static void check_event(lua_State *L, int idx, size_t i, es_event_text *in, lencbuf *b) {
    char what[64];
    size_t n, off;
    if (!lua_istable(L, idx)) luaL_error(L, "append: event %d must be a table, got %s", (int)i, luaL_typename(L, idx));
    memset(in, 0, sizeof *in);
    /* Raw reads: the pointers kept below must stay alive as values of the
     * event table itself, which a computed __index value would not. */
    lua_pushliteral(L, "type");
    lua_rawget(L, idx);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "append: event %d has no type (a non-empty string)", (int)i);
    in->type = lua_tolstring(L, -1, &n);
    if (n == 0) luaL_error(L, "append: event %d has an empty type", (int)i);
    if (strlen(in->type) != n) luaL_error(L, "append: event %d: type contains a NUL byte", (int)i);
    if (n > ES_MAX_TYPE_LEN) luaL_error(L, "append: event %d: type is longer than %d bytes", (int)i, ES_MAX_TYPE_LEN);
    if (!es_valid_utf8(in->type, n)) luaL_error(L, "append: event %d: type is not valid UTF-8", (int)i);
    lua_pop(L, 1);  /* the table keeps the string alive */
    lua_pushliteral(L, "id");
    lua_rawget(L, idx);
    if (lua_isnil(L, -1)) {
        in->id = NULL;
    } else {
        if (lua_type(L, -1) != LUA_TSTRING || !es_valid_uuid(lua_tostring(L, -1)))
            luaL_error(L, "append: event %d: id must be a UUID string", (int)i);
        in->id = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "data");
    snprintf(what, sizeof what, "append: event %d data", (int)i);
    off = lencode_object(L, -1, b, what);
    in->data_len = b->buf.len - off;
    lua_pop(L, 1);
    lua_getfield(L, idx, "metadata");
    snprintf(what, sizeof what, "append: event %d metadata", (int)i);
    off = lencode_object(L, -1, b, what);
    in->metadata_len = b->buf.len - off;
    lua_pop(L, 1);
    check_opt_names(L, idx, "append: event", append_event_keys);
}

/* The message of a raised value: its .message when it is a table with one. */
static void push_message(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "message");
        if (!lua_isnil(L, -1)) {
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            return;
        }
        lua_pop(L, 1);
    }
    luaL_tolstring(L, idx, NULL);
}

/* After a commit that wrote events, with the store at 1 and the result on
 * top: calls each on_append listener (the list in the store's uservalue)
 * with the committed events, under lua_pcall. A listener error never undoes
 * the commit nor stops the others; each is collected in
 * res.publish_errors = { { code = "publish", message, listener, reason } }. */
static void publish(lua_State *L) {
    int res = lua_gettop(L), list, errs = 0;
    size_t n, i;
    compat_getuservalue(L, 1);
    lua_getfield(L, -1, "listeners");
    list = lua_gettop(L);
    if (!lua_istable(L, list) || (n = lua_rawlen(L, list)) == 0) {
        lua_settop(L, res);
        return;
    }
    /* the list is replaced, never changed, by on_append: iterating it while
     * a listener adds or removes listeners is safe */
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, list, (int)i);
        lua_getfield(L, res, "events");
        lua_pushvalue(L, 1);
        if (lua_pcall(L, 2, 0, 0) == LUA_OK) continue;
        if (!errs) {
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, res, "publish_errors");
            lua_insert(L, -2);
            errs = lua_gettop(L) - 1;
        }
        lua_createtable(L, 0, 4);
        lua_pushliteral(L, "publish");
        lua_setfield(L, -2, "code");
        push_message(L, -2);
        lua_setfield(L, -2, "message");
        lua_rawgeti(L, list, (int)i);
        lua_setfield(L, -2, "listener");
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "reason");
        luaL_getmetatable(L, LERROR_MT);
        lua_setmetatable(L, -2);
        lua_rawseti(L, errs, (int)lua_rawlen(L, errs) + 1);
        lua_pop(L, 1);
    }
    lua_settop(L, res);
}

/* store:_listeners() -> the uservalue's list of on_append listeners, which
 * the Lua layer replaces (eventstore.publish). */
static int lstore_listeners(lua_State *L) {
    int set = !lua_isnoneornil(L, 2);
    lstore_check(L, 1);
    if (set) luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    compat_getuservalue(L, 1);                 /* 3 */
    if (set) {
        lua_pushvalue(L, 2);
        lua_setfield(L, 3, "listeners");
        return 0;
    }
    lua_getfield(L, 3, "listeners");
    return 1;
}

/* ---- the committed events of an append, built on demand ---- */

#define LCOMMITTED_MT "eventstore.Committed"

typedef struct lcommitted {
    size_t count;
    int single;          /* the caller passed one event table, not a list */
    size_t stream_off;   /* offsets into text: the stream, then per event id and type */
} lcommitted;

typedef struct lcommitted_ev {
    int64_t revision, position, timestamp;
    size_t id_off, type_off;
} lcommitted_ev;

/* __index(res, key): builds res.events once, with the caller's own data and
 * metadata tables (no second conversion), and stores it in res. */
static int committed_index(lua_State *L) {
    const lcommitted *pc;
    const lcommitted_ev *pe;
    const char *t;
    size_t i;
    int keys;
    if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "events") != 0) return 0;
    lua_settop(L, 2);
    /* the metatable is reachable from Lua: check what it holds */
    if (!lua_istable(L, 1) || !lua_getmetatable(L, 1)) return 0;   /* 3 */
    lua_rawgeti(L, 3, 1);                   /* 4: packed */
    lua_rawgeti(L, 3, 2);                   /* 5: the caller's events */
    pc = luaL_testudata(L, 4, LCOMMITTED_MT);
    if (!pc || !lua_istable(L, 5)) return 0;
    pe = (const lcommitted_ev *)(pc + 1);
    t = (const char *)(pe + pc->count);
    keys = lvalue_push_event_keys(L);
    lua_createtable(L, (int)pc->count, 0);
    for (i = 0; i < pc->count; i++) {
        if (pc->single) lua_pushvalue(L, 5);
        else lua_rawgeti(L, 5, (int)i + 1);
        lua_createtable(L, 0, LVALUE_EVENT_KEYS);
        lua_pushvalue(L, keys + 0);
        lua_pushstring(L, t + pe[i].id_off);
        lua_rawset(L, -3);
        lua_pushvalue(L, keys + 1);
        lua_pushstring(L, t + pc->stream_off);
        lua_rawset(L, -3);
        lua_pushvalue(L, keys + 2);
        compat_pushinteger(L, pe[i].revision);
        lua_rawset(L, -3);
        lua_pushvalue(L, keys + 3);
        compat_pushinteger(L, pe[i].position);
        lua_rawset(L, -3);
        lua_pushvalue(L, keys + 4);
        lua_pushstring(L, t + pe[i].type_off);
        lua_rawset(L, -3);
        lua_pushvalue(L, keys + 7);
        compat_pushinteger(L, pe[i].timestamp);
        lua_rawset(L, -3);
        lua_pushvalue(L, keys + 5);
        lua_getfield(L, -3, "data");
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
        }
        lua_rawset(L, -3);
        lua_pushvalue(L, keys + 6);
        lua_getfield(L, -3, "metadata");
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
        }
        lua_rawset(L, -3);
        lua_remove(L, -2);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "events");           /* rawset: the metatable has no __newindex */
    return 1;
}

/* With the result table on top and the caller's events at 3: sets a
 * per-result metatable whose __index builds res.events. */
static void pack_committed(lua_State *L, const es_append_result *res, int single) {
    size_t n = res->count, i, text = 0;
    lcommitted *pc;
    lcommitted_ev *pe;
    char *t;
    text += strlen(res->events[0].stream) + 1;
    for (i = 0; i < n; i++) text += ES_UUID_LEN + 1 + strlen(res->events[i].type) + 1;
    pc = lua_newuserdata(L, sizeof *pc + n * sizeof *pe + text);
    luaL_getmetatable(L, LCOMMITTED_MT);
    lua_setmetatable(L, -2);
    pe = (lcommitted_ev *)(pc + 1);
    t = (char *)(pe + n);
    pc->count = n;
    pc->single = single;
    pc->stream_off = 0;
    text = strlen(res->events[0].stream) + 1;
    memcpy(t, res->events[0].stream, text);
    for (i = 0; i < n; i++) {
        const es_event *ev = &res->events[i];
        size_t tl = strlen(ev->type) + 1;
        pe[i].revision = ev->revision;
        pe[i].position = ev->position;
        pe[i].timestamp = ev->timestamp;
        pe[i].id_off = text;
        memcpy(t + text, ev->id, ES_UUID_LEN + 1);
        text += ES_UUID_LEN + 1;
        pe[i].type_off = text;
        memcpy(t + text, ev->type, tl);
        text += tl;
    }
    lua_createtable(L, 2, 1);               /* the result's own metatable */
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);                  /* [1] = packed */
    lua_pushvalue(L, 3);
    lua_rawseti(L, -2, 2);                  /* [2] = the caller's events */
    lua_pushcfunction(L, committed_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
}

/* expected: nil/"any", "stream_exists", or an integer >= 0. */
static int64_t check_expected(lua_State *L, int idx) {
    long long v;
    lua_getfield(L, idx, "expected");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return ES_ANY;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        int64_t r = strcmp(s, "any") == 0 ? ES_ANY : strcmp(s, "stream_exists") == 0 ? ES_STREAM_EXISTS : -100;
        if (r == -100) luaL_error(L, "append: option 'expected' must be a revision, ANY, NO_STREAM or STREAM_EXISTS, got \"%s\"", s);
        lua_pop(L, 1);
        return r;
    }
    if (lua_type(L, -1) != LUA_TNUMBER || !compat_isintegral(L, -1))
        luaL_error(L, "append: option 'expected' must be an integer revision, got %s",
                   what_number(L, -1));
    v = compat_tointeger(L, -1);
    if (v < 0) luaL_error(L, "append: option 'expected' must be >= 0, got %d", (int)v);
    lua_pop(L, 1);
    return (int64_t)v;
}

static int lstore_append(lua_State *L) {
    static const char *const names[] = { "expected", NULL };
    es_store *s = lstore_check(L, 1);
    const char *stream = lstore_checkstream(L, 2);
    es_event_text *in;
    es_append_result res;
    es_err err;
    lencbuf *buf;
    size_t n, i;
    int64_t expected = ES_ANY;
    int single;

    luaL_checktype(L, 3, LUA_TTABLE);
    check_opts(L, 4, "append");
    check_opt_names(L, 4, "append", names);
    if (lua_istable(L, 4)) expected = check_expected(L, 4);
    /* One event (a table with a type, or with fields but no list items)
     * or a list of them. */
    lua_getfield(L, 3, "type");
    single = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!single && lua_rawlen(L, 3) == 0) {
        lua_pushnil(L);
        single = lua_next(L, 3) != 0;
        if (single) lua_pop(L, 2);
    }
    n = single ? 1 : lua_rawlen(L, 3);
    if (n == 0) luaL_argerror(L, 3, "no events (an event table or a non-empty list of them)");
    if (n > (size_t)1 << 24) luaL_argerror(L, 3, "more than 16777216 events in one append");
    lua_settop(L, 4);
    in = lua_newuserdata(L, n * sizeof *in);             /* 5: scratch */
    buf = lencode_newbuf(L);                             /* 6: the events' JSON texts */
    if (single) {
        check_event(L, 3, 1, &in[0], buf);
    } else {
        for (i = 0; i < n; i++) {
            lua_rawgeti(L, 3, (int)i + 1);
            /* the list keeps each event table alive after the pop */
            check_event(L, lua_gettop(L), i + 1, &in[i], buf);
            lua_pop(L, 1);
        }
    }
    /* the texts lie back to back in event order: data, then metadata */
    {
        size_t off = 0;
        for (i = 0; i < n; i++) {
            in[i].data = buf->buf.data + off;
            off += in[i].data_len;
            in[i].metadata = buf->buf.data + off;
            off += in[i].metadata_len;
        }
    }
    es_err_clear(&err);
    if (es_store_append_text(s, stream, in, n, expected, &res, &err) != ES_OK) return lerror_fail(L, &err);
    lua_createtable(L, 0, 3);
    compat_pushinteger(L, res.revision);
    lua_setfield(L, -2, "revision");
    compat_pushinteger(L, res.position);
    lua_setfield(L, -2, "position");
    compat_pushinteger(L, (long long)res.count);
    lua_setfield(L, -2, "count");
    if (res.idempotent) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "idempotent");
    }
    /* res.events is built when first read (on_append listeners read it):
     * most callers never look, and building a table per event was a fifth
     * of a batch append's time. What it needs is packed now, since
     * res.events is borrowed only until the next call on the store. */
    pack_committed(L, &res, single);
    if (!res.idempotent) publish(L);
    return 1;
}

/* ---- reads ---- */

/* Runs q and returns the rows as a list (events, or names when names_only). */
static int push_query(lua_State *L, es_store *s, const es_query *q, int names_only) {
    lcursor *c;
    es_err err;
    const es_event *ev;
    int rc, i = 0, keys;

    keys = lvalue_push_event_keys(L);
    c = lua_newuserdata(L, sizeof *c);
    c->cur = NULL;
    luaL_getmetatable(L, LCURSOR_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L);
    es_err_clear(&err);
    if ((rc = es_store_read(s, q, &c->cur, &err)) != ES_OK) return lerror_fail(L, &err);
    while ((rc = es_cursor_next(c->cur, &ev, &err)) == 1) {
        if (names_only) lua_pushstring(L, ev->stream);
        else lvalue_push_event_k(L, ev, keys);
        lua_rawseti(L, -2, ++i);
    }
    es_cursor_close(c->cur);
    c->cur = NULL;
    if (rc < 0) return lerror_fail(L, &err);
    return 1;
}

static int lstore_read(lua_State *L) {
    static const char *const names[] = { "from", "to", "backward", "limit", NULL };
    es_store *s = lstore_check(L, 1);
    es_query q;
    int empty;
    es_query_init(&q, ES_Q_STREAM);
    q.stream = lstore_checkstream(L, 2);
    check_opts(L, 3, "read");
    check_opt_names(L, 3, "read", names);
    q.from = opt_int(L, 3, "from", 1, 0);
    q.to = opt_int(L, 3, "to", INT64_MAX, 0);
    q.backward = opt_bool(L, 3, "backward", 0);
    q.limit = opt_limit(L, 3, &empty);
    if (empty) {
        lua_newtable(L);
        return 1;
    }
    return push_query(L, s, &q, 0);
}

/* types: a string or a list of strings; kept in a scratch userdata. */
static void opt_types(lua_State *L, int idx, es_query *q) {
    const char **types;
    size_t n, i;
    if (lua_isnoneornil(L, idx)) return;
    lua_getfield(L, idx, "types");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, idx, "type");
    }
    if (lua_isnil(L, -1)) return;
    if (lua_type(L, -1) == LUA_TSTRING) {
        types = lua_newuserdata(L, sizeof *types);
        types[0] = lua_tostring(L, -2);
        q->types = types;
        q->ntypes = 1;
        return;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "option 'types' must be a string or a list of strings");
    n = lua_rawlen(L, -1);
    if (n == 0) luaL_error(L, "option 'types' is an empty list");
    types = lua_newuserdata(L, n * sizeof *types);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, -2, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option 'types': item %d is not a string", (int)i + 1);
        types[i] = lua_tostring(L, -1);   /* the list keeps it alive */
        lua_pop(L, 1);
    }
    q->types = types;
    q->ntypes = n;
}

static int lstore_read_all(lua_State *L) {
    static const char *const names[] = { "after", "limit", "category", "types", "type", "since", NULL };
    es_store *s = lstore_check(L, 1);
    es_query q;
    int empty;
    es_query_init(&q, ES_Q_ALL);
    check_opts(L, 2, "read_all");
    check_opt_names(L, 2, "read_all", names);
    q.after = opt_int(L, 2, "after", 0, 0);
    q.limit = opt_limit(L, 2, &empty);
    q.since = opt_int(L, 2, "since", INT64_MIN, INT64_MIN);
    q.category = opt_str(L, 2, "category");
    opt_types(L, 2, &q);
    if (empty) {
        lua_newtable(L);
        return 1;
    }
    return push_query(L, s, &q, 0);
}

static int lstore_since(lua_State *L) {
    static const char *const names[] = { "limit", "category", "types", "type", "after", NULL };
    es_store *s = lstore_check(L, 1);
    es_query q;
    int empty;
    es_query_init(&q, ES_Q_ALL);
    if (lua_type(L, 2) != LUA_TNUMBER || !compat_isintegral(L, 2))
        luaL_argerror(L, 2, "timestamp must be an integer (milliseconds since the epoch)");
    q.since = compat_tointeger(L, 2);
    check_opts(L, 3, "since");
    check_opt_names(L, 3, "since", names);
    q.limit = opt_limit(L, 3, &empty);
    q.after = opt_int(L, 3, "after", 0, 0);
    q.category = opt_str(L, 3, "category");
    opt_types(L, 3, &q);
    if (empty) {
        lua_newtable(L);
        return 1;
    }
    return push_query(L, s, &q, 0);
}

static int lstore_undispatched(lua_State *L) {
    static const char *const names[] = { "limit", "category", "after", NULL };
    es_store *s = lstore_check(L, 1);
    es_query q;
    int empty;
    es_query_init(&q, ES_Q_UNDISPATCHED);
    check_opts(L, 2, "undispatched");
    check_opt_names(L, 2, "undispatched", names);
    q.limit = opt_limit(L, 2, &empty);
    q.after = opt_int(L, 2, "after", 0, 0);
    q.category = opt_str(L, 2, "category");
    if (empty) {
        lua_newtable(L);
        return 1;
    }
    return push_query(L, s, &q, 0);
}

static int lstore_streams(lua_State *L) {
    static const char *const names[] = { "category", NULL };
    es_store *s = lstore_check(L, 1);
    es_query q;
    es_query_init(&q, ES_Q_STREAMS);
    check_opts(L, 2, "streams");
    check_opt_names(L, 2, "streams", names);
    q.category = opt_str(L, 2, "category");
    return push_query(L, s, &q, 1);
}

/* Pushes the single row of q or nil. */
static int push_one(lua_State *L, es_store *s, const es_query *q) {
    int r = push_query(L, s, q, 0);
    if (r != 1) return r;
    lua_rawgeti(L, -1, 1);
    return 1;
}

static int lstore_last(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    es_query q;
    es_query_init(&q, ES_Q_STREAM);
    q.stream = lstore_checkstream(L, 2);
    q.backward = 1;
    q.limit = 1;
    return push_one(L, s, &q);
}

static int lstore_event(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    es_query q;
    es_query_init(&q, ES_Q_ID);
    q.id = luaL_checkstring(L, 2);
    if (!es_valid_uuid(q.id)) luaL_argerror(L, 2, "id is not a UUID");
    return push_one(L, s, &q);
}

static int lstore_revision(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    const char *stream = lstore_checkstream(L, 2);
    int64_t rev;
    es_err err;
    es_err_clear(&err);
    if (es_store_revision(s, stream, &rev, &err) != ES_OK) return lerror_fail(L, &err);
    compat_pushinteger(L, rev);
    return 1;
}

static int lstore_stats(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    es_stats st;
    es_err err;
    es_err_clear(&err);
    if (es_store_stats(s, &st, &err) != ES_OK) return lerror_fail(L, &err);
    lua_createtable(L, 0, 5);
    compat_pushinteger(L, st.events);
    lua_setfield(L, -2, "events");
    compat_pushinteger(L, st.streams);
    lua_setfield(L, -2, "streams");
    compat_pushinteger(L, st.snapshots);
    lua_setfield(L, -2, "snapshots");
    compat_pushinteger(L, st.position);
    lua_setfield(L, -2, "position");
    lua_pushstring(L, st.backend);
    lua_setfield(L, -2, "backend");
    return 1;
}

/* ---- snapshots, checkpoints, outbox ---- */

static int lstore_save_snapshot(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    es_snapshot snap;
    ljson_box *box;
    json_t *v;
    es_err err;
    char *text;
    int rc;
    memset(&snap, 0, sizeof snap);
    snap.stream = (char *)lstore_checkstream(L, 2);
    if (lua_type(L, 3) != LUA_TNUMBER || !compat_isintegral(L, 3) || compat_tointeger(L, 3) < 0)
        luaL_argerror(L, 3, "revision must be an integer >= 0");
    snap.revision = compat_tointeger(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    if (!lua_isnoneornil(L, 5) && (lua_type(L, 5) != LUA_TNUMBER || !compat_isintegral(L, 5)))
        luaL_argerror(L, 5, "version must be an integer");
    snap.version = lua_isnoneornil(L, 5) ? 0 : compat_tointeger(L, 5);
    lua_settop(L, 5);
    box = lvalue_newbox(L);
    v = lvalue_to_json(L, 4, box, "save_snapshot: data");
    es_err_clear(&err);
    if (!(text = es_json_encode(v, &snap.data_len, &err))) return lerror_fail(L, &err);
    snap.data = text;
    rc = es_store_save_snapshot(s, &snap, &err);
    es_free(text);
    if (rc != ES_OK) return lerror_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int lstore_snapshot(lua_State *L) {
    static const char *const names[] = { "max_revision", NULL };
    es_store *s = lstore_check(L, 1);
    const char *stream = lstore_checkstream(L, 2);
    es_snapshot snap;
    es_err err;
    ljson_box *box;
    int rc;
    check_opts(L, 3, "snapshot");
    check_opt_names(L, 3, "snapshot", names);
    lua_settop(L, 3);
    box = lvalue_newbox(L);
    es_err_clear(&err);
    rc = es_store_load_snapshot(s, stream, opt_int(L, 3, "max_revision", INT64_MAX, 0), NULL, &snap, &err);
    if (rc == ES_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != ES_OK) return lerror_fail(L, &err);
    /* snap owns malloc'd memory: keep it in the box's scope by copying into
     * Lua before anything can raise, then free it. */
    {
        json_t *v = es_json_decode(snap.data, snap.data_len, &err);
        es_snapshot out = snap;
        memset(&snap, 0, sizeof snap);
        if (!v) {
            es_snapshot_clear(&out);
            return lerror_fail(L, &err);
        }
        box->root = v;
        lua_createtable(L, 0, 5);
        lua_pushstring(L, out.stream);
        lua_setfield(L, -2, "stream");
        compat_pushinteger(L, out.revision);
        lua_setfield(L, -2, "revision");
        compat_pushinteger(L, out.version);
        lua_setfield(L, -2, "version");
        compat_pushinteger(L, out.timestamp);
        lua_setfield(L, -2, "timestamp");
        es_snapshot_clear(&out);
        lvalue_push_json(L, v);
        lua_setfield(L, -2, "data");
    }
    return 1;
}

/* store:checkpoint(name) -> position, stored (0, false when none is);
 * store:checkpoint(name, position) -> true */
static int lstore_checkpoint(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int64_t pos;
    int found;
    es_err err;
    es_err_clear(&err);
    if (lua_isnoneornil(L, 3)) {
        if (es_store_checkpoint(s, name, &pos, &found, &err) != ES_OK) return lerror_fail(L, &err);
        compat_pushinteger(L, pos);
        lua_pushboolean(L, found);
        return 2;
    }
    if (lua_type(L, 3) != LUA_TNUMBER || !compat_isintegral(L, 3) || compat_tointeger(L, 3) < 0)
        luaL_argerror(L, 3, "position must be an integer >= 0");
    if (es_store_set_checkpoint(s, name, compat_tointeger(L, 3), &err) != ES_OK) return lerror_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int lstore_mark_dispatched(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    const char *id;
    es_err err;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "id");
        lua_replace(L, 2);
    }
    id = luaL_checkstring(L, 2);
    if (!es_valid_uuid(id)) luaL_argerror(L, 2, "event id is not a UUID");
    es_err_clear(&err);
    if (es_store_mark_dispatched(s, id, &err) != ES_OK) return lerror_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* store:position() -> the newest position (0 when empty) */
static int lstore_position(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    int64_t pos;
    es_err err;
    es_err_clear(&err);
    if (es_store_head(s, &pos, &err) != ES_OK) return lerror_fail(L, &err);
    compat_pushinteger(L, pos);
    return 1;
}

/* store:wait(after_position, timeout_ms) -> true when newer events exist */
static int lstore_wait(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    es_err err;
    int ready;
    if (lua_type(L, 2) != LUA_TNUMBER || !compat_isintegral(L, 2) || compat_tointeger(L, 2) < 0)
        luaL_argerror(L, 2, "position must be an integer >= 0");
    if (lua_type(L, 3) != LUA_TNUMBER || !compat_isintegral(L, 3) || compat_tointeger(L, 3) < 0)
        luaL_argerror(L, 3, "timeout must be an integer number of milliseconds >= 0");
    es_err_clear(&err);
    if (es_store_wait(s, compat_tointeger(L, 2), compat_tointeger(L, 3), &ready, &err) != ES_OK)
        return lerror_fail(L, &err);
    lua_pushboolean(L, ready);
    return 1;
}

static int lstore_is_open(lua_State *L) {
    lua_pushboolean(L, lstore_get(L, 1)->s != NULL);
    return 1;
}

static const luaL_Reg lstore_methods[] = {
    { "append", lstore_append },
    { "read", lstore_read },
    { "read_all", lstore_read_all },
    { "since", lstore_since },
    { "streams", lstore_streams },
    { "last", lstore_last },
    { "event", lstore_event },
    { "revision", lstore_revision },
    { "stats", lstore_stats },
    { "save_snapshot", lstore_save_snapshot },
    { "snapshot", lstore_snapshot },
    { "checkpoint", lstore_checkpoint },
    { "undispatched", lstore_undispatched },
    { "mark_dispatched", lstore_mark_dispatched },
    { "wait", lstore_wait },
    { "position", lstore_position },
    { "_listeners", lstore_listeners },
    { "is_open", lstore_is_open },
    { "close", lstore_gc },
    { NULL, NULL }
};

/* Sets open and Store (the method table, so the Lua layer can add methods
 * to it) in the module table on top of the stack. */
void lstore_setup(lua_State *L) {
    luaL_newmetatable(L, LCOMMITTED_MT);
    lua_pop(L, 1);
    luaL_newmetatable(L, LCURSOR_MT);
    lua_pushcfunction(L, lcursor_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, LSTORE_MT);
    lua_pushcfunction(L, lstore_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lstore_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, lstore_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, LSTORE_MT);
    lua_setfield(L, -2, "__name");
    lua_newtable(L);
    luaL_setfuncs(L, lstore_methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -3, "Store");
    lua_pop(L, 1);
    lua_pushcfunction(L, lstore_open);
    lua_setfield(L, -2, "open");
}
