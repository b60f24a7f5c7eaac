/* lua_store.c: the eventstore.Store handle and its methods */
/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lua_binding.h"

typedef struct lstore {
    es_store *s;     /* NULL once closed (or before open succeeded) */
    lappend_scratch scratch;
    json_t *held;    /* lstore_hold's value */
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

/* idx holds a store the caller has checked (lstore_checkstore): checking
 * it again by its metatable's name was 1.8% of a single append's
 * instructions (callgrind). */
lappend_scratch *lstore_scratch(lua_State *L, int idx, size_t n) {
    lstore *ud = lua_touserdata(L, idx);
    lappend_scratch *sc = &ud->scratch;
    if (sc->busy) return NULL;
    if (n > sc->in_cap) {
        es_event_text *in = es_realloc(sc->in, n * sizeof *in);
        if (!in) luaL_error(L, "not enough memory");
        sc->in = in;
        sc->in_cap = n;
    }
    sc->enc.buf.len = 0;
    sc->enc.ix.len = 0;
    sc->enc.busy = &sc->busy;
    sc->busy = 1;
    return sc;
}

void lstore_hold(lua_State *L, int idx, json_t *v) {
    lstore *ud = lua_touserdata(L, idx);
    json_t *old = ud->held;
    ud->held = v;
    if (old) json_decref(old);
}

void lstore_scratch_done(lappend_scratch *sc) {
    sc->busy = 0;
    if (sc->enc.buf.cap > ((size_t)1 << 20)) es_buf_free(&sc->enc.buf);
    if (sc->enc.ix.cap > ((size_t)1 << 20)) es_buf_free(&sc->enc.ix);
    if (sc->in_cap > 4096) {
        es_free(sc->in);
        sc->in = NULL;
        sc->in_cap = 0;
    }
}

static int lstore_gc(lua_State *L) {                /* also __close and close() */
    lstore *ud = lstore_get(L, 1);
    es_store *s = ud->s;
    ud->s = NULL;
    /* no append is running: no Lua code runs inside one (busy can only
     * be left set by a memory error raised before its pcall) */
    es_buf_free(&ud->scratch.enc.buf);
    es_buf_free(&ud->scratch.enc.ix);
    es_free(ud->scratch.in);
    memset(&ud->scratch, 0, sizeof ud->scratch);
    lstore_hold(L, 1, NULL);
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

void lstore_checkopts(lua_State *L, int idx, const char *fname) {
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
const char *lstore_whatnumber(lua_State *L, int idx) {
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
                       lstore_whatnumber(L, -1));
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
void lstore_checknames(lua_State *L, int idx, const char *fname, const char *const *names) {
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

    lstore_checkopts(L, 2, "open");
    lstore_checknames(L, 2, "open", names);
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
    memset(ud, 0, sizeof *ud);
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

/* ---- reads ---- */

/* Rows wait on the Lua stack, at most LIST_RUN of them, and go into the
 * list after they are built, not one by one into a list made first. Under
 * Lua 5.4's generational collector (the lua5.4 interpreter runs in it)
 * this halved the time spent in major collections: the memory backend's
 * W3 (100-event streams) went from about 700,000 to 775,000 events/s in
 * the bench. */
#define LIST_RUN 1000

/* Moves the n rows on top of the stack into the list at stack index
 * list_at, after its *len rows; the first run makes the list there. */
static void list_take(lua_State *L, int list_at, int *len, int n) {
    int k;
    if (*len == 0) {
        lua_createtable(L, n, 0);
        lua_insert(L, list_at);
    }
    for (k = n; k >= 1; k--) lua_rawseti(L, list_at, *len + k);
    *len += n;
}

/* A read's rows are built in a protected call (build_rows) with Lua 5.4's
 * collector paused. Everything the call allocates is part of its result,
 * so a collection in the middle of it frees nothing of its own: it only
 * traverses the rows built so far, and under the generational collector
 * (the lua5.4 interpreter runs in it) each such collection made those
 * rows older, so that the read's whole result, once dropped, was left to
 * a major collection. Paused, the next collection comes right after the
 * read. Measured in the bench's process (bench/run.lua, memory backend,
 * alternating runs on one CPU): W3 752,000-773,000 -> 785,000-889,000
 * events/s, W4 520,000-571,000 -> 820,000-958,000. Under the incremental
 * collector it made no difference, and neither mode held more memory.
 * Restarting sets the collector's debt to zero, so it takes a step at the
 * next allocation. The call is protected so that an error in the middle
 * (a stored text that is not JSON, no memory) restarts the collector and
 * closes the cursor before it goes on. A collector the program stopped
 * stays stopped; Lua 5.1, 5.3 and LuaJIT, whose collectors are incremental
 * only, are not paused (spec/read_gc_spec.lua). */
typedef struct rows_job {
    es_cursor *cur;
    es_err *err;
    int names_only;
    int rc;                 /* es_cursor_next's last result */
} rows_job;

/* lua_CFunction, argument a rows_job: returns the list of the rows, or
 * nothing when the cursor fails (job->rc < 0, the error in job->err). */
static int build_rows(lua_State *L) {
    rows_job *job = lua_touserdata(L, 1);
    const es_event *ev;
    int len = 0, run = 0, list_at;
    lvalue_reader r;
    lua_pop(L, 1);
    lvalue_reader_init(L, &r);
    list_at = lua_gettop(L) + 1;
    /* a run of rows, and what pushing one row needs above them (a nested
     * value checks for its own slots); list_take brings the stack back */
    luaL_checkstack(L, LIST_RUN + 16, "reading events");
    while ((job->rc = es_cursor_next(job->cur, &ev, job->err)) == 1) {
        if (job->names_only) lua_pushstring(L, ev->stream);
        else lvalue_push_event_r(L, ev, &r);
        if (++run == LIST_RUN) {
            list_take(L, list_at, &len, run);
            run = 0;
        }
    }
    if (job->rc < 0) return 0;
    list_take(L, list_at, &len, run);
    return 1;
}

/* Runs q and returns the rows as a list (events, or names when names_only). */
static int push_query(lua_State *L, es_store *s, const es_query *q, int names_only) {
    lcursor *c;
    es_err err;
    es_query whole;
    rows_job job;
    int rc, status;

    c = lua_newuserdata(L, sizeof *c);
    c->cur = NULL;
    luaL_getmetatable(L, LCURSOR_MT);
    lua_setmetatable(L, -2);
    es_err_clear(&err);
    whole = *q;
    whole.whole = 1;        /* every row is read here, before anything else */
    if ((rc = es_store_read(s, &whole, &c->cur, &err)) != ES_OK) return lerror_fail(L, &err);
    job.cur = c->cur;
    job.err = &err;
    job.names_only = names_only;
    job.rc = 0;
    lua_pushcfunction(L, build_rows);
    lua_pushlightuserdata(L, &job);
    status = compat_pcall_paused(L, 1, 1);
    es_cursor_close(c->cur);    /* now, not at the cursor's __gc: the store is free again */
    c->cur = NULL;
    if (status != 0) return lua_error(L);
    if (job.rc < 0) return lerror_fail(L, &err);
    return 1;
}

static int lstore_read(lua_State *L) {
    static const char *const names[] = { "from", "to", "backward", "limit", NULL };
    es_store *s = lstore_check(L, 1);
    es_query q;
    int empty;
    es_query_init(&q, ES_Q_STREAM);
    q.stream = lstore_checkstream(L, 2);
    lstore_checkopts(L, 3, "read");
    lstore_checknames(L, 3, "read", names);
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
        if (strlen(types[0]) != lua_rawlen(L, -2)) luaL_error(L, "option 'types': a type contains a NUL byte");
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
        if (strlen(types[i]) != lua_rawlen(L, -1))
            luaL_error(L, "option 'types': item %d contains a NUL byte", (int)i + 1);
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
    lstore_checkopts(L, 2, "read_all");
    lstore_checknames(L, 2, "read_all", names);
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
    lstore_checkopts(L, 3, "since");
    lstore_checknames(L, 3, "since", names);
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
    lstore_checkopts(L, 2, "undispatched");
    lstore_checknames(L, 2, "undispatched", names);
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
    lstore_checkopts(L, 2, "streams");
    lstore_checknames(L, 2, "streams", names);
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
    if (lua_rawlen(L, 2) != ES_UUID_LEN || !es_valid_uuid(q.id)) luaL_argerror(L, 2, "id is not a UUID");
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
    lfield_int(L, "events", st.events);
    lfield_int(L, "streams", st.streams);
    lfield_int(L, "snapshots", st.snapshots);
    lfield_int(L, "position", st.position);
    lfield_str(L, "backend", st.backend);
    return 1;
}

/* ---- snapshots, checkpoints, outbox ---- */

/* Writes the snapshot's data; runs under lua_pcall: 1 = buffer, 2 = data. */
static int encode_snapshot(lua_State *L) {
    lencode_object(L, 2, lua_touserdata(L, 1), "save_snapshot: data");
    return 0;
}

static int lstore_save_snapshot(lua_State *L) {
    es_store *s = lstore_check(L, 1);
    es_snapshot snap;
    lencbuf *buf;
    es_err err;
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
    buf = lencode_newbuf(L);
    lua_pushcfunction(L, encode_snapshot);
    lencode_protected(L, buf, 4, buf);
    snap.data = buf->buf.data;
    snap.data_len = buf->buf.len;
    es_err_clear(&err);
    rc = es_store_save_snapshot(s, &snap, &err);
    es_buf_free(&buf->buf);
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
    lstore_checkopts(L, 3, "snapshot");
    lstore_checknames(L, 3, "snapshot", names);
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
        lfield_str(L, "stream", out.stream);
        lfield_int(L, "revision", out.revision);
        lfield_int(L, "version", out.version);
        lfield_int(L, "timestamp", out.timestamp);
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
    size_t namelen;
    const char *name = luaL_checklstring(L, 2, &namelen);
    int64_t pos;
    int found;
    es_err err;
    if (strlen(name) != namelen) luaL_argerror(L, 2, "checkpoint name contains a NUL byte");
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
    if (lua_rawlen(L, 2) != ES_UUID_LEN || !es_valid_uuid(id)) luaL_argerror(L, 2, "event id is not a UUID");
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
    { "is_open", lstore_is_open },
    { "close", lstore_gc },
    { NULL, NULL }
};

/* Sets open and Store (the method table, so the Lua layer can add methods
 * to it) in the module table on top of the stack. */
void lstore_setup(lua_State *L) {

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
