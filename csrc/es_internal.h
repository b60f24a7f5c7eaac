/* es_internal.h: private helpers shared by the core and the backends (never installed) */
/* SPDX-License-Identifier: MIT */
#ifndef ES_INTERNAL_H
#define ES_INTERNAL_H

#include "eventstore.h"
#include "es_backend.h"

#define ES_UNUSED(x) ((void)(x))

/* Whether n bytes are equal: for short names (keys, types) a loop costs
 * less than a call into memcmp (the reducer's fold, a read's string cache). */
static inline int es_same_bytes(const char *a, const char *b, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* SSE2 is in every x86-64: the byte scanners (es_json_plain,
 * es_valid_utf8) take 16 bytes at a time with it, 8 without. */
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define ES_SSE2 1
#endif

/* Internal: not exported from a shared object built from these files (the
 * Lua module exports luaopen_eventstore_core only), and called directly,
 * not through the PLT. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* n bytes on whole 2 MB huge pages where the kernel gives them (error.c);
 * es_huge_free takes the same n. For large, long-lived blocks only. */
void *es_huge_alloc(size_t n);
void  es_huge_populate(void *p, size_t n);
void  es_huge_free(void *p, size_t n);

/* Generated event ids carry their event's position. es_id_stamp writes a
 * position below ES_ID_STAMP_LIMIT (2^48) into the first 48 bits of a
 * generated id (the 8 and 4 hex digits before the second dash, where a
 * version 7 id has its time) and makes it version 8; the other 74 bits stay
 * random. A SQLite store finds such an id through its position, so its
 * unique index on ids holds only ids that do not name their own row
 * (caller-given ids): one B-tree fewer written per append. The memory
 * backend's id hash table holds only those ids too. es_id_position
 * reads those 48 bits of any UUID text back (-1 when they are not hex). */
#define ES_ID_STAMP_LIMIT ((int64_t)1 << 48)
/* Whether es_id_stamp writes this position into an id. */
static inline int es_id_stampable(int64_t position) { return position > 0 && position < ES_ID_STAMP_LIMIT; }
void    es_id_stamp(char *id, int64_t position);
int64_t es_id_position(const char *id);
/* Whether event i of an append, its position set, has an id that names
 * that position: one the backend stamped (generated, in range) without
 * reading it back, any other by es_id_position. */
static inline int es_id_names_row(const es_append_req *req, size_t i) {
    const es_event *e = &req->events[i];
    return (req->generated && req->generated[i] && es_id_stampable(e->position)) ||
           es_id_position(e->id) == e->position;
}

/* A growable byte buffer on es_malloc; b->data is NUL-terminated when len > 0. */
typedef struct es_buf {
    char *data;
    size_t len, cap;
} es_buf;

int  es_buf_reserve(es_buf *b, size_t extra);
int  es_buf_add(es_buf *b, const char *s, size_t n);
void es_buf_free(es_buf *b);

/* The statement a SQL backend runs for a query, as an offset its statement
 * slots share: read forward, backward, by id, stream names (all or by
 * category), outbox (all or by category), then ES_QS_ALL plus the
 * ES_QS_ALL_* bits of the filters present. -1 for an unknown kind. */
enum {
    ES_QS_READ_FWD, ES_QS_READ_BWD, ES_QS_BY_ID, ES_QS_STREAMS, ES_QS_STREAMS_CAT,
    ES_QS_OUTBOX, ES_QS_OUTBOX_CAT, ES_QS_ALL
};
#define ES_QS_ALL_CATEGORY 1
#define ES_QS_ALL_SINCE    2
#define ES_QS_ALL_TYPES    4
#define ES_QS_COUNT (ES_QS_ALL + 8)
int es_query_shape(const es_query *q);

/* Matches a query's type filter (NULL/0 types = any). */
int es_query_type_ok(const es_query *q, const char *type);
/* A JSON number's text (already checked against JSON's grammar) as a
 * correctly rounded double, whatever the C locale. 0 when the text is too
 * long or the value overflows a double. */
int es_json_real(const char *s, size_t n, double *out);

/* The first byte in [p, end) that ends a plain run of JSON string content:
 * a quote, a backslash or a control byte (end when there is none). Reads 8
 * bytes at a time. */
const char *es_json_plain(const char *p, const char *end);
/* The same, stopping also at any byte >= 0x80: the text before it needs no
 * escape and is valid UTF-8 (one pass where most strings are ASCII). */
const char *es_json_plain_ascii(const char *p, const char *end);

/* A finite double as JSON text that reads back to the same bits, with a
 * "." or an exponent (so it reads back as a real), whatever the locale;
 * out has room for 48 bytes. Returns the length (no NUL is counted). */
size_t es_json_format_real(double d, char out[48]);

/* An integer as JSON text (digits, a leading "-"); out has room for 24
 * bytes. Returns the length (no NUL is counted). */
size_t es_json_format_int(long long v, char out[24]);

/*
 * Where the top-level members of an event's data lie in its text, for a
 * text written by the Lua encoder: compact, valid JSON of the form
 * {"k1":v1,"k2":v2}, each key plain (no escapes, at most 255 bytes), every
 * key once. Member i's key starts 1 byte after the end of member i-1 (or of
 * the '{'), plus its quote; its value 2 bytes after the key ('":'). The
 * memory backend keeps the record beside the text, so state.c folds
 * without scanning the JSON. Records lie back to back, each a header and
 * its members, 4 bytes a member.
 */
enum { ES_V_OTHER, ES_V_STRING, ES_V_INT, ES_V_REAL };  /* ES_V_STRING: without escapes */
typedef struct es_member_at {
    uint16_t vlen;             /* the value's text */
    uint8_t klen, shape;       /* the key's bytes between its quotes; shape: ES_V_* */
} es_member_at;
typedef struct es_data_ix {
    uint16_t n;                /* members */
    uint16_t ok;               /* 0: no index for this text (a fold scans it) */
    es_member_at m[];
} es_data_ix;
static inline size_t es_data_ix_size(const es_data_ix *ix) {
    return sizeof *ix + ix->n * sizeof ix->m[0];
}
static inline const es_data_ix *es_data_ix_next(const es_data_ix *ix) {
    return (const es_data_ix *)(const void *)((const char *)ix + es_data_ix_size(ix));
}
/* es_store_append_text for the Lua binding: one index record per event
 * in ix, and the texts are borrowed, not copied: the result's events'
 * data and metadata point into them (read none after the call). */
int es_store_append_text_ix(es_store *s, const char *stream, const es_event_text *evs, size_t n,
                            const es_data_ix *ix, int64_t expected, es_append_result *res, es_err *err);

/* Whether the backend has a read_state (es_backend.h). */
int es_store_has_read_state(const es_store *s);
/* The backend's read_state (es_backend.h), or ES_ENOTSUP when it has none. */
int es_store_read_state(es_store *s, const char *stream, const char *fingerprint, es_snapshot *snap,
                        es_cursor **out, es_err *err);

/* Matches a stream against a category (NULL = any). */
int es_category_ok(const char *category, const char *stream);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
