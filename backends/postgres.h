/* postgres.h: what the PostgreSQL backend's two files share (private, never installed) */
/* SPDX-License-Identifier: MIT */
#ifndef ES_POSTGRES_H
#define ES_POSTGRES_H

#include <libpq-fe.h>

#include "../csrc/es_internal.h"

/* Internal: not exported from a shared object built from these files (the
 * Lua module exports luaopen_eventstore_core only), and called directly,
 * not through the PLT. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define PG_MAX_IDENT 63
/* The longest name built from the prefix is prefix + "ev_stream_rev" (13
 * bytes); PostgreSQL silently truncates names past 63 bytes, and two
 * truncated names could then collide. */
#define PG_MAX_PREFIX (PG_MAX_IDENT - 13)

/* Statement slots, each prepared on first use in a session (a reconnect
 * starts a new session and forgets them). */
enum {
    ST_APPEND, ST_REVISION, ST_STATS, ST_HEAD, ST_SNAP_SAVE, ST_SNAP_LOAD, ST_CP_GET, ST_CP_SET, ST_DISPATCH,
    ST_READ_FWD, ST_READ_BWD, ST_BY_ID, ST_STREAMS, ST_STREAMS_CAT, ST_OUTBOX, ST_OUTBOX_CAT,
    ST_ALL,                       /* 8 variants: + 1 category, + 2 since, + 4 types */
    ST_READ_LEAN = ST_ALL + 8,    /* a stream read of position, revision, type and data */
    ST_STATE_FIRST,               /* state(): the snapshot row, then ST_READ_LEAN's first page */
    ST_APPEND1,                   /* one event, through append1_v1 (stores made since 2026-12-07) */
    ST__COUNT
};
/* es_query_shape gives the offset from ST_READ_FWD */
typedef char st_shape_order[(ST_ALL - ST_READ_FWD == ES_QS_ALL && ST_STREAMS_CAT - ST_READ_FWD == ES_QS_STREAMS_CAT) ? 1 : -1];

/* ES_Q_ALL variants; their parameters are $1 after, $2 limit, then the
 * present filters in this order. */
#define ALL_CATEGORY ES_QS_ALL_CATEGORY
#define ALL_SINCE    ES_QS_ALL_SINCE
#define ALL_TYPES    ES_QS_ALL_TYPES

/* The names a store's SQL is built from. */
typedef struct es_pg_names {
    char schema[PG_MAX_IDENT + 1];
    char prefix[PG_MAX_PREFIX + 1];
    char channel[PG_MAX_IDENT + 1];    /* NOTIFY channel "<schema>_<prefix>events", cut to 63 bytes */
    long long lock_key;                /* the store's advisory lock key */
    int ts_index;                      /* a store made before 2026-11-28 has a timestamp index */
    int append1;                       /* and one made since 2026-12-07 the single-event function */
} es_pg_names;

/* Validates schema and prefix ([a-z_][a-z0-9_]*, at most PG_MAX_IDENT and
 * PG_MAX_PREFIX bytes) and fills n. ES_EINVALID naming the option. */
int es_pg_names_init(es_pg_names *n, const char *schema, const char *prefix, es_err *err);
/* Appends a slot's statement text to b. ES_OK or ES_ENOMEM. */
int es_pg_sql_statement(const es_pg_names *n, int slot, es_buf *b);
/* Appends a page of the global order as COPY (...) TO STDOUT (FORMAT
 * binary): EVENT_COLS after position `after`, at most `limit` rows. Only
 * numbers go into its text. ES_OK or ES_ENOMEM. */
int es_pg_sql_copy_all(const es_pg_names *n, int64_t after, int64_t limit, es_buf *b);
/* Appends the transaction that creates the store's tables and append
 * function (and the schema when create_schema) to b. ES_OK or ES_ENOMEM. */
int es_pg_sql_schema(const es_pg_names *n, int create_schema, es_buf *b);

/* Binary parameters, in the server's wire format (big-endian): a word, the
 * header of a one-dimensional array of n elements of type oid without
 * NULLs (array_recv), and one element. ES_OK or ES_ENOMEM. */
#define OID_INT8 20
#define OID_TEXT 25
int es_pg_put_u32(es_buf *b, uint32_t v);
int es_pg_put_array_head(es_buf *b, uint32_t oid, size_t n);
int es_pg_put_elem(es_buf *b, const char *p, size_t len);

/* Copies a libpq message into out (cap bytes) as one line in which every
 * non-empty secret is replaced by "***". */
void es_pg_scrub(char *const secrets[3], const char *msg, char *out, size_t cap);
/* Fills secrets with es_malloc'd spellings of the URL's password (NULL
 * where there is none); the caller frees them. ES_OK or ES_ENOMEM. */
int es_pg_collect_secrets(const char *uri, char *secrets[3]);

/* ---- the connection and its cursors (postgres.c, postgres_read.c) ---- */

/* How appends keep the global order safe for readers: see postgres_sql.c.
 * Reads fetch PG_PAGE rows per statement and keep one page in memory. */
#define PG_PAGE 1000

typedef struct postgres_cursor postgres_cursor;

typedef struct postgres_conn {
    es_conn base;                      /* first: the store sees an es_conn */
    PGconn *pg;
    int readonly;
    unsigned long prepared;            /* bit per slot prepared in this session */
    int listening;                     /* LISTEN issued in this session */
    int inbuf_grown;                   /* libpq's input buffer was grown (stream_ready) */
    int notified;                      /* a notification came during another call */
    es_pg_names names;
    char *secrets[3];                  /* spellings of the password, scrubbed from messages */
    es_buf scratch;                    /* append parameters, reused across appends */
    postgres_cursor *cursors;          /* open cursors, so close can detach them */
    postgres_cursor *streaming;        /* the cursor whose rows are still coming in */
} postgres_conn;

struct postgres_cursor {
    es_cursor base;                    /* first: callers see an es_cursor */
    postgres_conn *conn;               /* NULL once the store closed under it */
    postgres_cursor *prev, *next;      /* links in conn->cursors */
    es_query_kind kind;
    int slot, backward, done;          /* done: no page after the current one */
    PGresult *res;                     /* the current page; rows point into it */
    int row, nrows;
    int64_t returned, limit;
    int64_t lo, hi;                    /* ES_Q_STREAM: revisions; ES_Q_ALL/UNDISPATCHED: lo = after */
    int64_t since;
    char *stream, *category, *id;      /* owned copies of the query's strings */
    char *fp;                          /* ST_STATE_FIRST: the snapshot's fingerprint */
    int snap_row;                      /* the current page starts with the snapshot row */
    int lean;                          /* ST_READ_LEAN's columns (ST_STATE_FIRST has them too) */
    es_buf types;                      /* the type filter as a binary text[] */
    es_buf last;                       /* ES_Q_STREAMS: the last name seen (keyset) */
    int whole;                         /* es_query.whole: pages may stream (single-row mode) */
    int resent;                        /* the page was sent again after losing its statement */
    int stopped;                       /* another call on the store ended the streamed rows */
    int peeked;                        /* res holds a streamed row next() has not returned */
    int64_t page, page_rows;           /* a streamed page: rows asked for, rows so far */
    int copy;                          /* pages stream as COPY ... (FORMAT binary) (pg_send_copy) */
    int copy_open;                     /* the page's COPY has started sending rows */
    int copy_hdr;                      /* the page's binary header has been read */
    char *copybuf;                     /* the current COPY row; ev points into it */
    char idtext[ES_UUID_LEN + 1];      /* the current COPY row's id as text */
    es_event ev;
};

/* Runs a slot's statement (prepared on first use in a session); *out is
 * the result of a statement that succeeded. ES_OK or an ES_E... code with
 * err written ("<op> '<name>': <server's text>"). */
int pg_run(postgres_conn *c, int slot, int n, const char *const *vals, const int *lens, const int *formats,
           PGresult **out, es_err *err, const char *op, const char *name);
/* Sends a slot's statement as pg_run does, without waiting: its rows then
 * come one PGresult at a time (libpq's single-row mode), the cursor's to
 * take with PQgetResult. c->streaming is cur until they are all read. */
int pg_send(postgres_conn *c, postgres_cursor *cur, int n, const char *const *vals, const int *lens,
            const int *formats, es_err *err, const char *op, const char *name);
/* PQgetResult for a streamed read, polling the socket only when a read of
 * it found nothing (libpq polls before every read). */
PGresult *pg_next_result(postgres_conn *c);
/* Sends a page of the global order (after cur->lo, at most limit rows) as
 * COPY ... TO STDOUT (FORMAT binary): its rows then come as
 * pg_copy_data gives them, one libpq buffer each. c->streaming is cur. */
int pg_send_copy(postgres_conn *c, postgres_cursor *cur, int64_t limit, es_err *err);
/* PQgetCopyData, waiting as pg_next_result does: a row's length with *buf
 * (PQfreemem it), -1 at the end, -2 on an error. */
int pg_copy_data(postgres_conn *c, char **buf);
/* Reads and drops what is left of a streamed statement's results (a
 * COPY's rows too), so the connection can take the next one; the cursor
 * that was streaming ends with an error on its next row (another call on
 * the store came first). */
void pg_stream_stop(postgres_conn *c);
/* Whether a statement failed because the session no longer has it
 * prepared (DISCARD ALL from a pooler): it did not run, and can be
 * prepared and sent again. */
int pg_statement_lost(const PGresult *res);
/* Drops libpq's queued notifications, noting that some came. */
void pg_drain_notifies(postgres_conn *c);
/* err for a failed result (res may be NULL: the connection's message). */
int pg_fail(postgres_conn *c, const PGresult *res, es_err *err, const char *op, const char *name);
/* A bigint column of a text-format row. */
int64_t pg_col_i64(const PGresult *res, int row, int col);
/* The backend's read and read_state slots (postgres_read.c). */
int postgres_backend__read(es_conn *conn, const es_query *q, es_cursor **out, es_err *err);
int postgres_backend__read_state(es_conn *conn, const char *stream, const char *fingerprint, es_snapshot *snap,
                                 es_cursor **out, es_err *err);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
