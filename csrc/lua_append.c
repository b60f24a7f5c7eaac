/* lua_append.c: store:append, its committed events, and on_append listeners */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "lua_binding.h"


/* is_event_key below tells the same names apart without this list; were
 * they to differ, check_event_keys still refuses only what this list does. */
static const char *const append_event_keys[] = { "type", "data", "metadata", "id",
    /* fields of a read event, so events read from one store can be appended to another */
    "stream", "revision", "position", "timestamp", NULL };

/* Whether the n bytes at s name a field of append_event_keys: by length,
 * then the bytes. lstore_checknames ran strcmp down the list for every
 * field of every event (3% of a batched append in memory). */
static int is_event_key(const char *s, size_t n) {
    switch (n) {
    case 2: return memcmp(s, "id", 2) == 0;
    case 4: return memcmp(s, "type", 4) == 0 || memcmp(s, "data", 4) == 0;
    case 6: return memcmp(s, "stream", 6) == 0;
    case 8: return memcmp(s, "metadata", 8) == 0 || memcmp(s, "revision", 8) == 0 || memcmp(s, "position", 8) == 0;
    case 9: return memcmp(s, "timestamp", 9) == 0;
    default: return 0;
    }
}

/* An event table holds only the fields of append_event_keys; anything
 * else is refused by name, as lstore_checknames does. */
static void check_event_keys(lua_State *L, int idx) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t n;
        const char *s;
        /* lstore_checknames walks the table anew and raises, naming the field */
        if (lua_type(L, -2) != LUA_TSTRING || (s = lua_tolstring(L, -2, &n), !is_event_key(s, n)))
            lstore_checknames(L, idx, "append: event", append_event_keys);
        lua_pop(L, 1);
    }
}

/* The names append reads are upvalues of store:append and of
 * encode_events (lappend_setup): lua_getfield, lua_setfield and
 * lua_pushliteral look a C string up in Lua's string cache (a strcmp)
 * every time, about 250 instructions each, 10% of a single append. */
enum { EK_TYPE, EK_ID, EK_DATA, EK_METADATA, EK__COUNT,
       UV_EXPECTED = EK__COUNT, UV_REVISION, UV_POSITION, UV_COUNT, UV_ENCODE, UV__COUNT };

static const char *const upvalue_names[UV__COUNT - 1] = {
    "type", "id", "data", "metadata", "expected", "revision", "position", "count" };

#define UPVALUE(i) lua_upvalueindex((i) + 1)

static int push_event_keys(lua_State *L) {
    int keys = lua_gettop(L) + 1, i;
    luaL_checkstack(L, EK__COUNT + 8, "append");
    for (i = 0; i < EK__COUNT; i++) lua_pushvalue(L, UPVALUE(i));
    return keys;
}

/* Fills in from event i, the table at idx (the names it reads at keys);
 * data/metadata are written as JSON text into b, with their lengths in
 * in->data_len/metadata_len (turned into pointers once every event is
 * written: b moves as it grows). */
static void check_event(lua_State *L, int idx, int keys, size_t i, es_event_text *in, lencbuf *b) {
    size_t n, off;
    if (!lua_istable(L, idx)) luaL_error(L, "append: event %d must be a table, got %s", (int)i, luaL_typename(L, idx));
    memset(in, 0, sizeof *in);
    /* Raw reads: the pointers kept below must stay alive as values of the
     * event table itself, which a computed __index value would not. */
    lua_pushvalue(L, keys + EK_TYPE);
    lua_rawget(L, idx);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "append: event %d has no type (a non-empty string)", (int)i);
    in->type = lua_tolstring(L, -1, &n);
    if (n == 0) luaL_error(L, "append: event %d has an empty type", (int)i);
    if (strlen(in->type) != n) luaL_error(L, "append: event %d: type contains a NUL byte", (int)i);
    if (n > ES_MAX_TYPE_LEN) luaL_error(L, "append: event %d: type is longer than %d bytes", (int)i, ES_MAX_TYPE_LEN);
    if (!es_valid_utf8(in->type, n)) luaL_error(L, "append: event %d: type is not valid UTF-8", (int)i);
    lua_pop(L, 1);  /* the table keeps the string alive */
    lua_pushvalue(L, keys + EK_ID);
    lua_rawget(L, idx);
    if (lua_isnil(L, -1)) {
        in->id = NULL;
    } else {
        if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) != ES_UUID_LEN || !es_valid_uuid(lua_tostring(L, -1)))
            luaL_error(L, "append: event %d: id must be a UUID string", (int)i);
        in->id = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, keys + EK_DATA);
    lua_gettable(L, idx);
    off = lencode_data_at(L, -1, b, "append: event %d data", (int)i);
    in->data_len = b->buf.len - off;
    lua_pop(L, 1);
    lua_pushvalue(L, keys + EK_METADATA);
    lua_gettable(L, idx);
    off = lencode_object_at(L, -1, b, "append: event %d metadata", (int)i);
    in->metadata_len = b->buf.len - off;
    lua_pop(L, 1);
    check_event_keys(L, idx);
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
    lstore_checkstore(L, 1);
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

/* t[keys[key]] = value, on the table on top (keys: lvalue_reader's names). */
static void set_str(lua_State *L, int key, const char *v) {
    lua_pushvalue(L, key);
    lua_pushstring(L, v);
    lua_rawset(L, -3);
}

static void set_int(lua_State *L, int key, int64_t v) {
    lua_pushvalue(L, key);
    compat_pushinteger(L, v);
    lua_rawset(L, -3);
}

/* t[keys[key]] = the field of the caller's event table at src, or {}. */
static void set_table(lua_State *L, int key, int src, const char *field) {
    lua_pushvalue(L, key);
    lua_getfield(L, src, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    lua_rawset(L, -3);
}

/* Pushes one committed event: its own fields, and the data and metadata
 * tables of the caller's event table at src ({} where it has none). */
static void push_committed(lua_State *L, int src, int keys, const char *id, const char *stream,
                           int64_t revision, int64_t position, const char *type, int64_t timestamp) {
    lua_createtable(L, 0, LVALUE_EVENT_KEYS);
    set_str(L, keys + 0, id);
    set_str(L, keys + 1, stream);
    set_int(L, keys + 2, revision);
    set_int(L, keys + 3, position);
    set_str(L, keys + 4, type);
    set_int(L, keys + 7, timestamp);
    set_table(L, keys + 5, src, "data");
    set_table(L, keys + 6, src, "metadata");
}

/* __index(res, key): builds res.events once, with the caller's own data and
 * metadata tables (no second conversion), and stores it in res. */
static int committed_index(lua_State *L) {
    const lcommitted *pc;
    const lcommitted_ev *pe;
    const char *t;
    size_t i;
    lvalue_reader r;
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
    lvalue_reader_init(L, &r);
    keys = r.keys;
    lua_createtable(L, (int)pc->count, 0);
    for (i = 0; i < pc->count; i++) {
        if (pc->single) lua_pushvalue(L, 5);
        else lua_rawgeti(L, 5, (int)i + 1);
        push_committed(L, lua_gettop(L), keys, t + pe[i].id_off, t + pc->stream_off, pe[i].revision,
                       pe[i].position, t + pe[i].type_off, pe[i].timestamp);
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

/* ---- single appends: the store's latest ones, kept in a ring ---- */

/* A single-event append keeps what its res.events needs in a slot of a
 * ring that belongs to the store handle (the slot of its position, modulo
 * RING_SLOTS), and its result shares one metatable with every other such
 * result of that handle: no allocation beyond the result table itself.
 * The per-result metatable and packed copy above cost a single append four
 * allocations and about 300 bytes of fresh Lua heap, which made the memory
 * backend's W1 about 40% slower (bench/HISTORY.md). The ring holds the
 * caller's event tables weakly, so it keeps no one's data alive. A result
 * whose slot has been taken by a later append, or whose event table the
 * caller no longer holds, reads its event back from the store, by
 * position: then data and metadata are read back, not the caller's tables. */
#define RING_SLOTS 64
#define RING_TEXT 128           /* the stream and the type, each with its NUL */
/* where the store's uservalue table keeps the ring, the caller's events
 * and the results' metatable (integer keys: no string lookups) */
enum { UV_RING = 1, UV_RING_REFS, UV_RING_MT };

typedef struct lring_slot {
    int64_t position, revision, timestamp;   /* position 0: empty */
    size_t type_off;                         /* the stream at text[0], the type here */
    char id[ES_UUID_LEN + 1];
    char text[RING_TEXT];
} lring_slot;

/* An integer field of t, read raw: 0 when it is missing or not one. */
static int raw_int(lua_State *L, int t, const char *k, int64_t *v) {
    int ok;
    t = lua_absindex(L, t);
    lua_pushstring(L, k);
    lua_rawget(L, t);
    ok = lua_type(L, -1) == LUA_TNUMBER && compat_isintegral(L, -1);
    if (ok) *v = (int64_t)compat_tointeger(L, -1);
    lua_pop(L, 1);
    return ok;
}

/* __index(res, key) of a single append's result; upvalues: 1 the ring, 2
 * the caller's event tables by slot, 3 a weak table holding the store. */
static int ring_index(lua_State *L) {
    const lring_slot *ring = lua_touserdata(L, lua_upvalueindex(1)), *sl;
    int64_t pos, rev, count;
    int k;
    if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "events") != 0) return 0;
    lua_settop(L, 2);
    if (!lua_istable(L, 1) || !raw_int(L, 1, "position", &pos) || !raw_int(L, 1, "revision", &rev) ||
        !raw_int(L, 1, "count", &count) || count != 1 || pos < 1)
        return 0;
    k = (int)(pos % RING_SLOTS);
    sl = &ring[k];
    if (sl->position == pos && sl->revision == rev &&
        (lua_rawgeti(L, lua_upvalueindex(2), k + 1), lua_istable(L, 3))) {   /* 3: the caller's event */
        lvalue_reader r;
        lvalue_reader_init(L, &r);
        lua_createtable(L, 1, 0);
        push_committed(L, 3, r.keys, sl->id, sl->text, sl->revision, sl->position,
                       sl->text + sl->type_off, sl->timestamp);
        lua_rawseti(L, -2, 1);
    } else {
        /* read back: store:read_all({ after = pos - 1, limit = 1 }) */
        int ok;
        lua_settop(L, 2);
        lua_rawgeti(L, lua_upvalueindex(3), 1);
        if (lua_isnil(L, -1))
            return luaL_error(L, "append result: its events are no longer kept, and its store is gone");
        lua_getfield(L, -1, "read_all");
        lua_insert(L, -2);
        lua_createtable(L, 0, 2);
        compat_pushinteger(L, pos - 1);
        lua_setfield(L, -2, "after");
        compat_pushinteger(L, 1);
        lua_setfield(L, -2, "limit");
        /* a raised error leaves one value, a failed read nil and err */
        if (lua_pcall(L, 2, 2, 0) != 0 || lua_isnil(L, -2)) {
            push_message(L, -1);
            return luaL_error(L, "append result: its events are no longer kept, and reading them back "
                              "failed: %s", lua_tostring(L, -1));
        }
        lua_pop(L, 1);
        lua_rawgeti(L, -1, 1);
        ok = lua_istable(L, -1) && raw_int(L, -1, "position", &count) && count == pos &&
             raw_int(L, -1, "revision", &count) && count == rev;
        lua_pop(L, 1);
        if (!ok) {
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)pos);
            return luaL_error(L, "append result: its event at position %s is not in the store", num);
        }
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "events");           /* rawset: the metatable has no __newindex */
    return 1;
}

/* Pushes a metatable of weak values. */
static void push_weak_mt(lua_State *L) {
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
}

/* With the store at 1, the caller's event or list at 3 and the result on
 * top: keeps a single append's committed event in the store's ring and
 * gives the result the ring's metatable. 0 when it does not fit a slot. */
static int ring_keep(lua_State *L, const es_append_result *res, int single) {
    const es_event *ev = &res->events[0];
    size_t sn = strlen(ev->stream) + 1, tn = strlen(ev->type) + 1;
    int uv, k, top = lua_gettop(L);
    lring_slot *ring, *sl;
    if (sn + tn > RING_TEXT || ev->position < 1 || ev->position != res->position) return 0;
    compat_getuservalue(L, 1);
    uv = lua_gettop(L);
    lua_rawgeti(L, uv, UV_RING);                          /* uv + 1 */
    if (lua_isnil(L, -1)) {
        /* made on the first single append of the handle */
        lua_pop(L, 1);
        ring = lua_newuserdata(L, RING_SLOTS * sizeof *ring);
        memset(ring, 0, RING_SLOTS * sizeof *ring);
        lua_pushvalue(L, -1);
        lua_rawseti(L, uv, UV_RING);
        lua_createtable(L, RING_SLOTS, 0);                /* the caller's events, held weakly */
        push_weak_mt(L);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawseti(L, uv, UV_RING_REFS);
        lua_createtable(L, 1, 0);                         /* the store, held weakly */
        push_weak_mt(L);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, 1);
        lua_rawseti(L, -2, 1);
        lua_createtable(L, 0, 1);                         /* the results' metatable */
        lua_insert(L, -4);
        lua_pushcclosure(L, ring_index, 3);
        lua_setfield(L, -2, "__index");
        lua_rawseti(L, uv, UV_RING_MT);
        lua_rawgeti(L, uv, UV_RING);
    }
    ring = lua_touserdata(L, -1);
    k = (int)(ev->position % RING_SLOTS);
    sl = &ring[k];
    sl->position = ev->position;
    sl->revision = ev->revision;
    sl->timestamp = ev->timestamp;
    memcpy(sl->id, ev->id, ES_UUID_LEN + 1);
    memcpy(sl->text, ev->stream, sn);
    sl->type_off = sn;
    memcpy(sl->text + sn, ev->type, tn);
    lua_rawgeti(L, uv, UV_RING_REFS);
    if (single) lua_pushvalue(L, 3);
    else lua_rawgeti(L, 3, 1);
    lua_rawseti(L, -2, k + 1);
    lua_rawgeti(L, uv, UV_RING_MT);
    lua_setmetatable(L, top);
    lua_settop(L, top);
    return 1;
}

typedef struct encode_job {
    es_event_text *in;
    lencbuf *buf;
    size_t n;
    int single;
} encode_job;

/* Checks and writes every event; runs under lua_pcall with 1 = the job and
 * 2 = the event or the list (whose tables keep the strings in alive). */
static int encode_events(lua_State *L) {
    encode_job *j = lua_touserdata(L, 1);
    size_t i;
    int keys;
    lua_settop(L, 2);
    keys = push_event_keys(L);
    if (j->single) {
        check_event(L, 2, keys, 1, &j->in[0], j->buf);
        return 0;
    }
    for (i = 0; i < j->n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        check_event(L, lua_gettop(L), keys, i + 1, &j->in[i], j->buf);
        lua_pop(L, 1);
    }
    return 0;
}

/* The expected revision on top of the stack (popped): nil/"any",
 * "stream_exists", or an integer >= 0. */
static int64_t expected_value(lua_State *L) {
    long long v;
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
                   lstore_whatnumber(L, -1));
    v = compat_tointeger(L, -1);
    if (v < 0) luaL_error(L, "append: option 'expected' must be >= 0, got %d", (int)v);
    lua_pop(L, 1);
    return (int64_t)v;
}

/* The options at idx (nil or a table): "expected" is the only one, read
 * in the same pass that refuses any other name (as lstore_checknames
 * would); an expected that only an __index gives is read as before. */
static int64_t check_options(lua_State *L, int idx) {
    int slot, found = 0;
    if (lua_isnoneornil(L, idx)) return ES_ANY;
    lstore_checkopts(L, idx, "append");
    lua_pushnil(L);                      /* slot: the value found */
    slot = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (!lua_rawequal(L, -2, UPVALUE(UV_EXPECTED))) {
            lua_pop(L, 1);
            luaL_error(L, "append: unknown option '%s'",
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
        }
        found = 1;
        lua_replace(L, slot);
    }
    if (!found) {
        lua_pop(L, 1);
        lua_pushvalue(L, UPVALUE(UV_EXPECTED));
        lua_gettable(L, idx);
    }
    return expected_value(L);
}

/* t[name] = v on the table on top, name an upvalue of store:append. */
static void result_int(lua_State *L, int name, long long v) {
    lua_pushvalue(L, UPVALUE(name));
    compat_pushinteger(L, v);
    lua_rawset(L, -3);
}

static int lstore_append(lua_State *L) {
    es_store *s = lstore_checkstore(L, 1);
    const char *stream = lstore_checkstream(L, 2);
    es_event_text *in;
    es_append_result res;
    es_err err;
    lencbuf *buf;
    lappend_scratch *sc;
    int rc;
    encode_job job;
    size_t n, i;
    int64_t expected = ES_ANY;
    int single;

    luaL_checktype(L, 3, LUA_TTABLE);
    expected = check_options(L, 4);
    /* One event (a table with a type, or with fields but no list items)
     * or a list of them. */
    lua_pushvalue(L, UPVALUE(EK_TYPE));
    lua_gettable(L, 3);
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
    if ((sc = lstore_scratch(L, 1, n)) != NULL) {
        in = sc->in;
        buf = &sc->enc;
    } else {
        in = lua_newuserdata(L, n * sizeof *in);         /* 5: scratch */
        buf = lencode_newbuf(L);                         /* 6: the events' JSON texts */
    }
    job.in = in;
    job.buf = buf;
    job.n = n;
    job.single = single;
    lua_pushvalue(L, UPVALUE(UV_ENCODE));
    lencode_protected(L, &job, 3, buf);
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
    rc = es_store_append_text_ix(s, stream, in, n, (const es_data_ix *)(const void *)buf->ix.data, expected,
                                 &res, &err);
    /* the texts are stored or refused: the scratch is free again (res
     * points into the store, not into it) */
    if (sc) lstore_scratch_done(sc);
    if (rc != ES_OK) return lerror_fail(L, &err);
    lua_createtable(L, 0, 3);
    result_int(L, UV_REVISION, res.revision);
    result_int(L, UV_POSITION, res.position);
    result_int(L, UV_COUNT, (long long)res.count);
    if (res.idempotent) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "idempotent");
    }
    /* res.events is built when first read (on_append listeners read it):
     * most callers never look, and building a table per event was a fifth
     * of a batch append's time. What it needs is kept now, in the ring for
     * a single event, else packed with the result, since res.events is
     * borrowed only until the next call on the store. */
    if (n > 1 || res.idempotent || !ring_keep(L, &res, single)) pack_committed(L, &res, single);
    if (!res.idempotent) publish(L);
    return 1;
}

/* Sets Store.append and Store._listeners in the module table on top. */
void lappend_setup(lua_State *L) {
    luaL_newmetatable(L, LCOMMITTED_MT);
    lua_pop(L, 1);
    lua_getfield(L, -1, "Store");
    {
        int i;
        for (i = 0; i < UV__COUNT - 1; i++) lua_pushstring(L, upvalue_names[i]);
        for (i = 0; i < EK__COUNT; i++) lua_pushvalue(L, -(UV__COUNT - 1));
        lua_pushcclosure(L, encode_events, EK__COUNT);
        lua_pushcclosure(L, lstore_append, UV__COUNT);
    }
    lua_setfield(L, -2, "append");
    lua_pushcfunction(L, lstore_listeners);
    lua_setfield(L, -2, "_listeners");
    lua_pop(L, 1);
}
