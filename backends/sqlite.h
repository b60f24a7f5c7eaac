/* sqlite.h: what the SQLite backend's files share (private to backends/sqlite*.c) */
/* SPDX-License-Identifier: MIT */
#ifndef ES_SQLITE_H
#define ES_SQLITE_H

#include <sqlite3.h>

#include "../csrc/es_internal.h"

/* Internal: not exported from a shared object built from these files (the
 * Lua module exports luaopen_eventstore_core only), and called directly,
 * not through the PLT. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define SQLITE_MAX_PREFIX 63

extern const es_backend es_sqlite_backend;

/* Statement slots. Every statement is prepared once per connection, on
 * first use, and reset after each use. Slots from ST_READ_FWD on are handed
 * to cursors, which may stay open across other calls, so those carry an
 * "in use" flag. */
enum {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
    ST_STREAM_REV, ST_ID_LOOKUP, ST_INSERT_EVENT, ST_NEW_STREAM, ST_INSERT_OUTBOX,
    ST_STATS, ST_SNAP_SAVE, ST_SNAP_PRUNE, ST_SNAP_LOAD_ANY, ST_SNAP_LOAD_FP,
    ST_CP_GET, ST_CP_SET, ST_DISPATCH, ST_HEAD, ST_APPEND_HEAD, ST_TS_AT,
    ST_READ_FWD, ST_READ_BWD, ST_BY_ID, ST_STREAMS, ST_STREAMS_CAT, ST_OUTBOX, ST_OUTBOX_CAT,
    ST_ALL,                       /* 8 variants: + 1 category, + 2 since, + 4 types */
    ST_INSERT_EVENTS = ST_ALL + 8, /* INSERT_ROWS events in one statement */
    ST_READ_LEAN,                 /* state(): position, revision, type and data of a stream */
    ST__COUNT
};
/* es_query_shape gives the offset from ST_READ_FWD */
typedef char st_shape_order[(ST_ALL - ST_READ_FWD == ES_QS_ALL && ST_STREAMS_CAT - ST_READ_FWD == ES_QS_STREAMS_CAT) ? 1 : -1];

#define ALL_CATEGORY ES_QS_ALL_CATEGORY
#define ALL_SINCE    ES_QS_ALL_SINCE
#define ALL_TYPES    ES_QS_ALL_TYPES

/* Event rows always come in this column order (see cursor_row). */
#define EVENT_COLS "position, id, stream, revision, type, data, metadata, timestamp"
#define EVENT_COLS_E "e.position, e.id, e.stream, e.revision, e.type, e.data, e.metadata, e.timestamp"

/* "{p}" stands for the validated table prefix. */
typedef struct sqlite_cursor sqlite_cursor;

/* Rows per multi-row INSERT of a batch append (8 was as fast as 16 or 32,
 * and 10-15% faster than row by row on W2). */
#define INSERT_ROWS 8

typedef struct sqlite_conn {
    es_conn base;                      /* first: the store sees an es_conn */
    sqlite3 *db;
    int readonly;
    int ts_index;                      /* a store made before 2026-11-28 has a timestamp index */
    int own_id;                        /* the events table has own_id (made after 2026-12-07) */
    int busy_timeout_ms;
    char prefix[SQLITE_MAX_PREFIX + 1];
    sqlite3_stmt *stmts[ST__COUNT];
    unsigned char in_use[ST__COUNT];   /* held by an open cursor */
    sqlite_cursor *cursors;            /* open cursors, so close can detach them */
} sqlite_conn;

struct sqlite_cursor {
    es_cursor base;                    /* first: callers see an es_cursor */
    sqlite_conn *conn;                 /* NULL once the connection closed under it */
    sqlite_cursor *prev, *next;        /* links in conn->cursors */
    sqlite3_stmt *st;                  /* NULL once exhausted or failed */
    int slot;                          /* cached slot it borrows, or -1 if it owns st */
    int streams_only;                  /* ES_Q_STREAMS rows: stream and revision */
    int done;                          /* exhausted: next() keeps returning 0 */
    const char *lean_stream;           /* a lean ES_Q_STREAM read: the stream, others skipped */
    es_event ev;                       /* the current row, pointing into st's columns */
};

/* sqlite.c: statements and errors */
int sqlite_fail(sqlite_conn *c, int src, es_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
int sqlite_stmt_get(sqlite_conn *c, int slot, sqlite3_stmt **out);
int sqlite_lookup_int64(sqlite_conn *c, int slot, const char *key, int64_t *out);
void sqlite_lower_id(const char *id, char out[ES_UUID_LEN + 1]);
/* Binds a lower-case id to a lookup by id (ID_MATCH): ?1 the id, ?2 the
 * position it names. Returns a SQLite code. */
int sqlite_bind_id(sqlite3_stmt *st, const char *id);

/* sqlite_sql.c: a slot's statement, prepared into *out (a SQLite code);
 * the schema of a new store, BEGIN to COMMIT, into b (ES_OK or ES_ENOMEM) */
int sqlite_stmt_prepare(sqlite_conn *c, int slot, unsigned int flags, sqlite3_stmt **out);
int sqlite_sql_schema(const sqlite_conn *c, es_buf *b);

/* sqlite_wal.c: the VFS that writes a transaction's WAL frames at once */
const char *sqlite_wal_vfs(void);
unsigned long sqlite_wal_map_reads(void);

/* sqlite_read.c: cursors */
int sqlite_backend__read(es_conn *conn, const es_query *q, es_cursor **out, es_err *err);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
