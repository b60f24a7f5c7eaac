/* eventstore.h: the public C API of the event store core (no Lua in it) */
/* SPDX-License-Identifier: MIT */
#ifndef EVENTSTORE_H
#define EVENTSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ES_VERSION "0.1.0"

/* Error codes: ES_OK or a negative ES_E... code (libgit2 style). */
#define ES_OK         0
#define ES_EINVALID  (-1)  /* bad argument or bad value */
#define ES_ECONFLICT (-2)  /* wrong expected revision, duplicate id elsewhere */
#define ES_EBACKEND  (-3)  /* the storage engine failed (I/O, connection, disk full) */
#define ES_EBUSY     (-4)  /* the store stayed locked past the busy timeout */
#define ES_ENOTFOUND (-5)
#define ES_ENOMEM    (-6)
#define ES_ENOTSUP   (-7)  /* the backend has no such operation */
#define ES_ECALLBACK (-8)  /* a caller's callback failed; its error is the caller's to report */
#define ES_EREADONLY (-9)  /* the store was opened read-only */

/* Expected revision for an append. A value >= 0 is an exact revision
 * (0 = ES_NO_STREAM: the stream must not exist yet). */
#define ES_ANY            (-1)
#define ES_NO_STREAM        0
#define ES_STREAM_EXISTS  (-2)

#define ES_MAX_STREAM_LEN 255
#define ES_MAX_TYPE_LEN   255
#define ES_UUID_LEN        36

/* The error every call fills. Owned by the caller, never allocated.
 * expected/actual are set for ES_ECONFLICT on an expected revision. */
typedef struct es_err {
    int code;
    char msg[256];
    int64_t expected, actual;
} es_err;

/* Sets e (NULL tolerated), truncating the message; returns code. */
int es_err_set(es_err *e, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void es_err_clear(es_err *e);
/* The DESIGN.md code names: "conflict", "backend", "busy", "invalid",
 * "not_found", "nomem", "not_supported", "callback", "readonly". */
const char *es_errname(int code);

/* Allocation goes through these so tests can inject failures. */
void *es_malloc(size_t n);
void *es_realloc(void *p, size_t n);
void  es_free(void *p);
char *es_strdup(const char *s);
char *es_strndup(const char *s, size_t n);
/* Test hook: make the n-th allocation from now fail (0 = never). */
void  es_alloc_fail_after(long n);

/* A stored event, as a backend or a cursor returns it. All pointers are
 * borrowed: valid until the next next()/close() of the cursor that gave it
 * (or the next call on the store, for append results). data and metadata are
 * compact JSON object texts (not NUL-terminated in general: use the lengths). */
typedef struct es_event {
    const char *id;          /* 36-char UUID, NUL-terminated */
    const char *stream;      /* NUL-terminated */
    const char *type;        /* NUL-terminated */
    int64_t revision;        /* 1.. within the stream */
    int64_t position;        /* global, strictly increasing in commit order */
    int64_t timestamp;       /* ms since the epoch */
    const char *data;      size_t data_len;
    const char *metadata;  size_t metadata_len;
    /* Internal, NULL unless the backend keeps one: where data's top-level
     * members lie (es_internal.h), so a fold need not scan the text. */
    const struct es_data_ix *data_ix;
} es_event;

/* A new event for es_store_append. data/metadata are borrowed JSON objects
 * (NULL = {}); id NULL means "generate one". */
typedef struct es_event_in {
    const char *id;
    const char *type;
    const json_t *data;
    const json_t *metadata;
} es_event_in;

/* A new event for es_store_append_text, for a caller that already has the
 * compact JSON text of data and metadata (NULL = {}): the store checks each
 * is an object and stores it as it is, so it must be valid JSON written
 * exactly (the Lua binding writes it this way, without a jansson tree). */
typedef struct es_event_text {
    const char *id;
    const char *type;
    const char *data;      size_t data_len;
    const char *metadata;  size_t metadata_len;
} es_event_text;

typedef struct es_append_result {
    int64_t revision;        /* the stream's revision after the append */
    int64_t position;        /* position of the last event appended */
    size_t count;            /* events in the batch */
    int idempotent;          /* 1: the batch was already stored, nothing written */
    const es_event *events;  /* the committed events, borrowed until the next call on the store */
} es_append_result;

/* Options of es_store_open. Fill with es_options_init first. */
typedef struct es_options {
    int synchronous_full;     /* sqlite: 1 = FULL (default), 0 = NORMAL */
    int busy_timeout_ms;      /* sqlite: default 5000 */
    int64_t sqlite_mmap_size; /* sqlite: bytes read through a memory map (default 256 MB; 0 = off) */
    int64_t snapshot_every;   /* state(): auto-snapshot every N folded events (0 = off) */
    int64_t max_snapshots;    /* keep the newest K snapshots per stream (0 = all) */
    int create;               /* create schema/tables when missing (default 1) */
    int readonly;             /* open for reading only */
    int outbox;               /* record appended events as undispatched */
    const char *schema;       /* postgres schema name (default "public") */
    const char *prefix;       /* table name prefix (default "es_") */
} es_options;

void es_options_init(es_options *o);

/* Queries, for es_store_read and es_cursor. */
typedef enum es_query_kind {
    ES_Q_STREAM = 0,   /* one stream's events by revision */
    ES_Q_ALL,          /* every event by position */
    ES_Q_STREAMS,      /* stream names (rows carry stream and revision only) */
    ES_Q_ID,           /* the event with this id (0 or 1 row) */
    ES_Q_UNDISPATCHED  /* outbox: events not yet marked dispatched, by position */
} es_query_kind;

typedef struct es_query {
    es_query_kind kind;
    const char *stream;        /* ES_Q_STREAM */
    const char *id;            /* ES_Q_ID */
    int64_t from, to;          /* ES_Q_STREAM: inclusive revisions; to = INT64_MAX for "no end" */
    int backward;              /* ES_Q_STREAM: newest first */
    int64_t after;             /* ES_Q_ALL/ES_Q_UNDISPATCHED: position > after */
    int64_t since;             /* ES_Q_ALL: timestamp >= since (INT64_MIN = any) */
    int64_t limit;             /* max rows; <= 0 = no limit */
    const char *category;      /* ES_Q_ALL/ES_Q_STREAMS/ES_Q_UNDISPATCHED: NULL = any */
    const char *const *types;  /* ES_Q_ALL: event types to keep; NULL = any */
    size_t ntypes;
    int lean;                  /* the reader needs only revision, type and data (and stream,
                                * which for ES_Q_STREAM is q->stream: keep it alive); a
                                * backend may then leave id/metadata empty and position and
                                * timestamp 0 */
    int whole;                 /* the caller reads every row before its next call on the
                                * store (the Lua binding's read() and read_all() lists): a
                                * backend may then hand rows out as the server sends them */
} es_query;

void es_query_init(es_query *q, es_query_kind kind);

/* A cursor over query results. next() returns 1 with *ev set (borrowed until
 * the next next()/close()), 0 at the end, or a negative ES_E... code. */
typedef struct es_cursor es_cursor;
struct es_cursor {
    int  (*next)(es_cursor *cur, const es_event **ev, es_err *err);
    void (*close)(es_cursor *cur);     /* frees the cursor; cannot fail */
};

typedef struct es_stats {
    int64_t events, streams, snapshots, position;
    const char *backend;       /* static scheme name */
} es_stats;

/* A stored snapshot. load fills data with es_malloc'd text: free with
 * es_snapshot_clear. */
typedef struct es_snapshot {
    char *stream;
    int64_t revision;
    int64_t version;
    char *fingerprint;         /* NULL or "" for user snapshots */
    char *data; size_t data_len;  /* JSON text */
    int64_t timestamp;
} es_snapshot;

void es_snapshot_clear(es_snapshot *s);

typedef struct es_store es_store;

/* Opens a store from a URL: "memory:", "sqlite:PATH", "sqlite::memory:",
 * "postgres://..." / "postgresql://...". opt may be NULL (defaults).
 * On failure *out stays NULL and err says why (the password never appears). */
int  es_store_open(const char *url, const es_options *opt, es_store **out, es_err *err);
/* Closes and frees s (NULL tolerated). */
void es_store_close(es_store *s);
const char *es_store_backend_name(const es_store *s);
const es_options *es_store_options(const es_store *s);

/* Appends n (>= 1) events atomically with an expected revision (ES_ANY,
 * ES_NO_STREAM, ES_STREAM_EXISTS or >= 0). On ES_ECONFLICT nothing is written
 * and err->expected/actual say why. Returns ES_OK, ES_EINVALID, ES_ECONFLICT,
 * ES_EBUSY, ES_EBACKEND, ES_ENOMEM. */
int es_store_append(es_store *s, const char *stream, const es_event_in *evs, size_t n,
                    int64_t expected, es_append_result *res, es_err *err);

/* es_store_append for events whose data is given as JSON text. */
int es_store_append_text(es_store *s, const char *stream, const es_event_text *evs, size_t n,
                         int64_t expected, es_append_result *res, es_err *err);

/* Starts a query; the caller closes *out with es_cursor_close. */
int es_store_read(es_store *s, const es_query *q, es_cursor **out, es_err *err);
int es_cursor_next(es_cursor *cur, const es_event **ev, es_err *err);
void es_cursor_close(es_cursor *cur);

/* The stream's revision, 0 when it does not exist. */
int es_store_revision(es_store *s, const char *stream, int64_t *out, es_err *err);
int es_store_stats(es_store *s, es_stats *out, es_err *err);
/* The newest position in the store (0 when empty). */
int es_store_head(es_store *s, int64_t *out, es_err *err);

/* Snapshots: save keeps the newest max_snapshots per stream; load returns
 * ES_ENOTFOUND when none matches (revision <= max_revision, same fingerprint;
 * fingerprint NULL matches any). */
int es_store_save_snapshot(es_store *s, const es_snapshot *snap, es_err *err);
int es_store_load_snapshot(es_store *s, const char *stream, int64_t max_revision,
                           const char *fingerprint, es_snapshot *out, es_err *err);

/* Subscription checkpoints (0 when never stored; es_store_checkpoint also
 * says whether one is, in *found) and the outbox. */
int es_store_get_checkpoint(es_store *s, const char *name, int64_t *out, es_err *err);
int es_store_checkpoint(es_store *s, const char *name, int64_t *out, int *found, es_err *err);
int es_store_set_checkpoint(es_store *s, const char *name, int64_t position, es_err *err);
int es_store_mark_dispatched(es_store *s, const char *id, es_err *err);

/* Waits until an event with a position above `after` may exist, or
 * timeout_ms passes. *ready = 1 when one does (0 on timeout). A backend with
 * a wait slot (PostgreSQL: LISTEN/NOTIFY) sleeps until notified; the others
 * are polled with a growing interval (1 ms to 50 ms). */
int es_store_wait(es_store *s, int64_t after, int64_t timeout_ms, int *ready, es_err *err);

/* Validation helpers shared by the core and the binding. */
int es_valid_utf8(const char *s, size_t n);
int es_valid_uuid(const char *s);
/* Writes a new random (v4) UUID and a NUL into out[ES_UUID_LEN + 1]. */
void es_uuid(char out[ES_UUID_LEN + 1]);
/* The same with a version 7 (time-ordered) UUID: what generated event ids are. */
void es_uuid_v7(char out[ES_UUID_LEN + 1]);
/* The category of a stream: the part before the first '-'. Writes its
 * length to *len and returns stream. */
const char *es_category(const char *stream, size_t *len);
int64_t es_now_ms(void);

/* JSON values (jansson). Encodes compactly and exactly (integers stay
 * integers, reals keep all 17 digits); returns an es_malloc'd NUL-terminated
 * text or NULL (ES_ENOMEM/ES_EINVALID in err). */
char *es_json_encode(const json_t *v, size_t *len, es_err *err);
/* Decodes a JSON text (strings may contain \u0000); NULL on error. */
json_t *es_json_decode(const char *text, size_t len, es_err *err);

#ifdef __cplusplus
}
#endif
#endif
