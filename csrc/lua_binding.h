/* lua_binding.h: what the binding files share (only csrc/lua_*.c include it) */
/* SPDX-License-Identifier: MIT */
#ifndef ES_LUA_BINDING_H
#define ES_LUA_BINDING_H

#include "lua_compat.h"
#include "eventstore.h"
#include "es_internal.h"

/* Internal: not exported from a shared object built from these files (the
 * Lua module exports luaopen_eventstore_core only), and called directly,
 * not through the PLT. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define LSTORE_MT  "eventstore.Store"
#define LERROR_MT  "eventstore.Error"
#define LCURSOR_MT "eventstore.Cursor"
#define LJSON_MT   "eventstore.JsonBox"
#define LARRAY_MT  "eventstore.array"

/* Deepest table nesting converted to JSON (cycles are caught before). */
#define LVALUE_MAX_DEPTH 1000

/* Sets t[k] = v in the table on top of the stack. */
static inline void lfield_int(lua_State *L, const char *k, long long v) {
    compat_pushinteger(L, v);
    lua_setfield(L, -2, k);
}
static inline void lfield_str(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* lua_error.c: pushes the error table for err; raises for programmer
 * errors (ES_EINVALID, ES_ENOMEM, ES_ENOTSUP) instead. */
void lerror_push(lua_State *L, const es_err *err);
/* Returns 2 (nil, err) for expected failures; raises for programmer errors. */
int  lerror_fail(lua_State *L, const es_err *err);
void lerror_setup(lua_State *L);

/* lua_value.c: converting Lua values, with the path to the value at hand
 * for error messages ("event 1 data.a[2]: NaN cannot be stored"). */
typedef struct lconv_path {
    const char *key;        /* NULL: index */
    size_t keylen;
    long long index;
    const void *table;      /* the table entered at this level (cycle check) */
} lconv_path;

/* Levels kept inside the lconv itself; a deeper value moves the path into
 * a userdata that replaces the nil lconv_init pushed (so a conversion of
 * ordinary data allocates nothing for its path). */
#define LCONV_INLINE 32

typedef struct lconv {
    lua_State *L;
    const char *what;       /* with what_index >= 0: a format taking it as %d */
    int what_index;
    lconv_path *path;       /* inline, or the deep userdata */
    int depth, cap, anchor;
    lconv_path inline_path[LCONV_INLINE + 1];
} lconv;

/* Starts a conversion: pushes the anchor slot (a nil) that the caller pops
 * once the conversion is done. */
void lconv_init(lconv *cv, lua_State *L, const char *what);
/* cv->what as text (formatted with what_index into buf when it has one). */
const char *lconv_what(const lconv *cv, char *buf, size_t size);

/* Raises "<what><path>: <fmt with detail>"; fmt has two %s: path, detail. */
int lconv_error(lconv *cv, const char *fmt, const char *detail);
/* 1 when the table at idx is an array, 0 an object; raises for bad keys. */
int lconv_table_kind(lconv *cv, int idx);
/* Checks depth and cycles and enters the table at idx; the caller leaves
 * with cv->depth--. */
lconv_path *lconv_enter(lconv *cv, int idx);
/* Sets the path level p to the object key k and checks it as a key JSON
 * can hold (valid UTF-8, no NUL byte), raising as a conversion does. */
void lconv_key(lconv *cv, lconv_path *p, const char *k, size_t kl);
/* 1 when the value at idx is a string, a number or a boolean, checked as
 * a conversion checks it (raising the same errors); 0 for any other type,
 * which is left unchecked. */
int lconv_scalar_ok(lconv *cv, int idx);
/* That string, number or boolean, once checked, as a new JSON value (NULL
 * when out of memory). */
json_t *lvalue_scalar(lua_State *L, int idx);
/* Converts the value at idx (any value JSON can hold) with cv's path in
 * its messages, appended to owner, an array the caller roots in a box, so
 * that a raise halfway leaks nothing; returns it, borrowed from owner. */
json_t *lconv_value(lconv *cv, int idx, json_t *owner);

typedef struct ljson_box { json_t *root; } ljson_box;
/* Pushes a box that owns whatever json_t is put in it (freed by __gc). */
ljson_box *lvalue_newbox(lua_State *L);
/* Converts the table at idx (nil = {}) into a JSON object owned by box;
 * raises naming `what` (e.g. "event 2 data") on a value JSON cannot hold. */
json_t *lvalue_to_json(lua_State *L, int idx, ljson_box *box, const char *what);
/* The same, with what a format taking what_index as %d: formatted only for
 * an error message (a fold converts one event's data after another). */
json_t *lvalue_to_json_at(lua_State *L, int idx, ljson_box *box, const char *what, int what_index);
void lvalue_push_json(lua_State *L, const json_t *v);
/* Decodes a stored JSON text straight into Lua values and pushes them
 * (raises on a malformed text; holds nothing a raise could leak). */
void lvalue_push_text(lua_State *L, const char *text, size_t len);
void lvalue_push_event(lua_State *L, const es_event *ev);
/* For many events: a reader pushes the field names once and keeps a small
 * cache of the strings events repeat (object keys, stream, type) in stack
 * slots, so each is interned once per read instead of once per event (an
 * interning lookup misses the cache when the Lua state holds many strings).
 * lvalue_reader_init pushes keys + slots; they stay until the caller pops. */
#define LVALUE_EVENT_KEYS 8
#define LVALUE_CACHE 32              /* slots: 16 sets of 2 */
typedef struct lvalue_reader {
    int keys;                        /* stack index of the field names */
    int slots;                       /* stack index of the LVALUE_CACHE slots; 0: no cache */
    struct { const char *s; size_t len; } c[LVALUE_CACHE];   /* s: the slot's bytes */
    unsigned char older[LVALUE_CACHE / 2];  /* per set: the slot a miss replaces */
} lvalue_reader;
void lvalue_reader_init(lua_State *L, lvalue_reader *r);
void lvalue_push_event_r(lua_State *L, const es_event *ev, lvalue_reader *r);
/* Pushes s[0..len) through the reader's cache. */
void lvalue_push_cached(lua_State *L, lvalue_reader *r, const char *s, size_t len);
void lvalue_setup(lua_State *L);

/* Converts any Lua value (a table, a string, a number, ...) into the box's root. */
json_t *lvalue_to_json_any(lua_State *L, int idx, ljson_box *box, const char *what);

/* lua_encode.c: Lua values written directly as JSON text into a buffer
 * that a userdata owns (freed by __gc if a conversion raises). */
typedef struct lencbuf {
    es_buf buf;
    es_buf ix;       /* lencode_data's index records (es_data_ix), one per text */
    int *busy;       /* a store's reused buffer: cleared when a conversion raises */
} lencbuf;
lencbuf *lencode_newbuf(lua_State *L);
/* Calls the function on top of the stack (a C function or closure) with
 * (ud, value at idx) under lua_pcall, and pops it. On an error it frees b's
 * text at once (C memory the collector does not count) and raises the
 * message again with the caller's position, as a direct luaL_error would. */
void lencode_protected(lua_State *L, void *ud, int idx, lencbuf *b);
/* Append the text of the table at idx (nil = {}) or of any value; return
 * the offset where it starts (the buffer may move as it grows). */
size_t lencode_object(lua_State *L, int idx, lencbuf *b, const char *what);
/* The same, with what a format given index (%d), formatted only for an
 * error: "append: event %d data" costs nothing per event. */
size_t lencode_object_at(lua_State *L, int idx, lencbuf *b, const char *what, int index);
/* lencode_object_at for an event's data: it also adds the text's index
 * record (es_data_ix) to b->ix. */
size_t lencode_data_at(lua_State *L, int idx, lencbuf *b, const char *what, int index);
size_t lencode_value(lua_State *L, int idx, lencbuf *b, const char *what);
void lencode_setup(lua_State *L);

/* lua_store.c */
void lstore_setup(lua_State *L);
/* What one append needs besides the texts: kept by the store and reused,
 * since two userdata (one with a finalizer) and a growing buffer per call
 * were a sixth of a single-event append. busy while an append uses it. */
typedef struct lappend_scratch {
    lencbuf enc;
    es_event_text *in;
    size_t in_cap;
    int busy;
} lappend_scratch;
/* The scratch of the open store at idx, marked busy with room for n
 * events; NULL when it is busy already (an append from inside an append:
 * the caller then uses fresh userdata). Raises on no memory. */
lappend_scratch *lstore_scratch(lua_State *L, int idx, size_t n);
/* Marks it free again, and lets go of a text buffer past 1 MB. */
void lstore_scratch_done(lappend_scratch *sc);
/* Roots v (a new reference, or NULL) in the open store at idx, which the
 * caller checked, and releases what it held: a value converted to Lua is
 * held there, with no userdata made per call, and one that a raise leaves
 * there goes at the next hold or with the store. */
void lstore_hold(lua_State *L, int idx, json_t *v);
/* The open store at idx (raises "attempt to use a closed store"). */
es_store *lstore_checkstore(lua_State *L, int idx);
/* A valid stream name argument (raises naming the problem). */
const char *lstore_checkstream(lua_State *L, int idx);
/* Argument helpers shared by the Store methods: options must be a table;
 * an option name not in names (NULL-terminated) raises; what is wrong with
 * a value that should be an integer. */
void lstore_checkopts(lua_State *L, int idx, const char *fname);
void lstore_checknames(lua_State *L, int idx, const char *fname, const char *const *names);
const char *lstore_whatnumber(lua_State *L, int idx);

/* lua_append.c */
void lappend_setup(lua_State *L);

/* lua_reducer.c */
void lreducer_setup(lua_State *L);

/* lua_json.c: json_encode/json_decode in the module table on top of the stack */
void ljson_setup(lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
