/* postgres.c: the PostgreSQL backend on libpq: one-round-trip appends serialized by an advisory lock */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "postgres.h"

extern const es_backend es_postgres_backend;


/* ---- messages ---- */

/* Notices (e.g. "relation already exists, skipping") would go to stderr. */
static void drop_notice(void *arg, const char *message) {
    ES_UNUSED(arg), ES_UNUSED(message);
}

/* Maps a failed result (or a lost connection, res may be NULL) to an
 * ES_E... code and writes "<op> '<name>': <server's text>". */
int pg_fail(postgres_conn *c, const PGresult *res, es_err *err, const char *op, const char *name) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *text = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char where[300], clean[200];
    int code = ES_EBACKEND;

    snprintf(where, sizeof where, name ? "%s '%s'" : "%s", op, name);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        es_pg_scrub(c->secrets, PQerrorMessage(c->pg), clean, sizeof clean);
        return es_err_set(err, ES_EBACKEND, "%s: connection lost: %s", where, clean);
    }
    if (state) {
        if (strcmp(state, "23505") == 0) code = ES_ECONFLICT;
        else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
            code = ES_EBUSY;
        else if (strcmp(state, "25006") == 0) code = ES_EREADONLY;
        else if (strncmp(state, "22", 2) == 0) code = ES_EINVALID;
    }
    if (!text) {
        es_pg_scrub(c->secrets, res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg), clean, sizeof clean);
        text = clean;
    }
    return es_err_set(err, code, "%s: %s", where, text);
}

/* ---- sessions and statements ---- */

/* Settings a new session needs; run after connect and after every reset. */
static int session_setup(postgres_conn *c, es_err *err, const char *op) {
    PGresult *res;
    int rc = ES_OK;
    if (!c->readonly) return ES_OK;
    res = PQexec(c->pg, "SET default_transaction_read_only = on");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) rc = pg_fail(c, res, err, op, NULL);
    PQclear(res);
    return rc;
}

/* A call finds the connection broken when the previous one lost it: try
 * one reconnect, then fail. A new session has no prepared statements. */
static int pg_ready(postgres_conn *c, es_err *err, const char *op, const char *name) {
    char where[300], clean[200];
    if (c->streaming) pg_stream_stop(c);
    if (PQstatus(c->pg) == CONNECTION_OK) return ES_OK;
    PQreset(c->pg);
    c->prepared = 0;
    c->listening = c->notified = 0;
    if (PQstatus(c->pg) != CONNECTION_OK) {
        es_pg_scrub(c->secrets, PQerrorMessage(c->pg), clean, sizeof clean);
        snprintf(where, sizeof where, name ? "%s '%s'" : "%s", op, name);
        return es_err_set(err, ES_EBACKEND, "%s: reconnect failed: %s", where, clean);
    }
    return session_setup(c, err, op);
}

static int pg_prepare(postgres_conn *c, int slot, es_err *err, const char *op, const char *name) {
    es_buf b = { NULL, 0, 0 };
    char sname[16];
    PGresult *res;
    int rc = ES_OK;
    if (c->prepared & (1UL << slot)) return ES_OK;
    if (es_pg_sql_statement(&c->names, slot, &b) != ES_OK) {
        es_buf_free(&b);
        return es_err_set(err, ES_ENOMEM, "%s: out of memory", op);
    }
    snprintf(sname, sizeof sname, "es_%d", slot);
    res = PQprepare(c->pg, sname, b.data, 0, NULL);
    es_buf_free(&b);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) c->prepared |= 1UL << slot;
    else rc = pg_fail(c, res, err, op, name);
    PQclear(res);
    return rc;
}

/* Drops the notifications libpq queued; 1 if there were any. Done after
 * every statement once LISTEN is on, or the queue grows with each append. */
static int drain_notifies(postgres_conn *c) {
    PGnotify *nt;
    int any = 0;
    while ((nt = PQnotifies(c->pg)) != NULL) {
        PQfreemem(nt);
        any = 1;
    }
    return any;
}

int pg_statement_lost(const PGresult *res) {
    const char *state = res && PQresultStatus(res) == PGRES_FATAL_ERROR
                            ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && strcmp(state, "26000") == 0;
}

/* Runs a slot's prepared statement (reconnecting and preparing as needed)
 * and hands the result to *out, which the caller PQclears; on failure *out
 * is NULL. Rows come back as text; formats say which parameters are binary. */
int pg_run(postgres_conn *c, int slot, int n, const char *const *vals, const int *lens, const int *formats,
           PGresult **out, es_err *err, const char *op, const char *name) {
    char sname[16];
    PGresult *res;
    ExecStatusType st;
    int rc;
    *out = NULL;
    if ((rc = pg_ready(c, err, op, name)) != ES_OK || (rc = pg_prepare(c, slot, err, op, name)) != ES_OK)
        return rc;
    snprintf(sname, sizeof sname, "es_%d", slot);
    res = PQexecPrepared(c->pg, sname, n, vals, lens, formats, 0);
    st = PQresultStatus(res);
    if (pg_statement_lost(res)) {
        /* the session lost its prepared statements (DISCARD ALL, a pooler):
         * the statement did not run, so prepare and run it once more */
        PQclear(res);
        c->prepared &= ~(1UL << slot);
        if ((rc = pg_prepare(c, slot, err, op, name)) != ES_OK) return rc;
        res = PQexecPrepared(c->pg, sname, n, vals, lens, formats, 0);
        st = PQresultStatus(res);
    }
    if (c->listening && drain_notifies(c)) c->notified = 1;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *out = res;
        return ES_OK;
    }
    rc = pg_fail(c, res, err, op, name);
    PQclear(res);
    return rc;
}

void pg_drain_notifies(postgres_conn *c) {
    if (c->listening && drain_notifies(c)) c->notified = 1;
}

/* libpq reads the socket into a buffer of 16 KB, and grows it only for a
 * message that does not fit, never shrinking it. A streamed read of 1,000
 * rows (about 430 KB) then took 25 recv() calls, at 4-7 us each on this
 * VM kind. Before its first streamed read, a connection fetches one value
 * of 256 KB, once (a round trip of about a millisecond): later reads get
 * up to the socket's whole backlog per call. If libpq ever sizes its
 * buffer otherwise, this only costs that one statement. */
#define PG_INBUF 262144

/* pg_ready for a statement whose rows will stream in. */
static int stream_ready(postgres_conn *c, es_err *err, const char *op, const char *name) {
    int rc = pg_ready(c, err, op, name);
    if (rc == ES_OK && !c->inbuf_grown) {
        char sql[64];
        c->inbuf_grown = 1;
        snprintf(sql, sizeof sql, "SELECT repeat('x', %d)", PG_INBUF);
        PQclear(PQexec(c->pg, sql));
    }
    return rc;
}

int pg_send(postgres_conn *c, postgres_cursor *cur, int n, const char *const *vals, const int *lens,
            const int *formats, es_err *err, const char *op, const char *name) {
    char sname[16];
    int rc;
    if ((rc = stream_ready(c, err, op, name)) != ES_OK || (rc = pg_prepare(c, cur->slot, err, op, name)) != ES_OK)
        return rc;
    snprintf(sname, sizeof sname, "es_%d", cur->slot);
    if (!PQsendQueryPrepared(c->pg, sname, n, vals, lens, formats, 0)) return pg_fail(c, NULL, err, op, name);
    if (!PQsetSingleRowMode(c->pg)) {
        /* cannot fail right after a send; if it did, the statement's results
         * are read and dropped and the read fails */
        pg_stream_stop(c);
        return es_err_set(err, ES_EBACKEND, "%s: could not stream the rows", op);
    }
    c->streaming = cur;
    return ES_OK;
}

/* Streamed reads wait for their rows here, not in libpq, which polls the
 * socket before every read of it. While the client is the slower side the
 * next rows are already there, and one recv() gets them. On this VM kind
 * a system call costs 4-7 us: a stream read of 100 rows made 3 polls, 3
 * recvs and a send. So input is consumed first, and poll() runs only when
 * a recv() found nothing. The socket is non-blocking (libpq makes it so),
 * so PQconsumeInput never waits. 0 once the socket has data (or EINTR),
 * -1 when it cannot be waited on. */
static int wait_readable(PGconn *pg) {
    struct pollfd pfd;
    pfd.fd = PQsocket(pg);
    pfd.events = POLLIN;
    pfd.revents = 0;
    return pfd.fd < 0 || (poll(&pfd, 1, -1) < 0 && errno != EINTR) ? -1 : 0;
}

/* An error ends the loop, and PQgetResult reports it. */
PGresult *pg_next_result(postgres_conn *c) {
    PGconn *pg = c->pg;
    while (PQisBusy(pg)) {
        if (!PQconsumeInput(pg) || !PQisBusy(pg) || wait_readable(pg) < 0) break;
    }
    return PQgetResult(pg);
}

int pg_copy_data(postgres_conn *c, char **buf) {
    int n;
    for (;;) {
        if ((n = PQgetCopyData(c->pg, buf, 1)) != 0) return n;
        if (!PQconsumeInput(c->pg)) return -2;
        if ((n = PQgetCopyData(c->pg, buf, 1)) != 0) return n;
        if (wait_readable(c->pg) < 0) return -2;
    }
}

int pg_send_copy(postgres_conn *c, postgres_cursor *cur, int64_t limit, es_err *err) {
    es_buf b = { NULL, 0, 0 };
    int rc;
    if ((rc = stream_ready(c, err, "read", NULL)) != ES_OK) return rc;
    if (es_pg_sql_copy_all(&c->names, cur->lo, limit, &b) != ES_OK) {
        es_buf_free(&b);
        return es_err_set(err, ES_ENOMEM, "read: out of memory");
    }
    rc = PQsendQuery(c->pg, b.data);
    es_buf_free(&b);
    if (!rc) return pg_fail(c, NULL, err, "read", NULL);
    cur->copy_open = cur->copy_hdr = 0;
    c->streaming = cur;
    return ES_OK;
}

/* Takes what is left of the streamed statement, so the connection is free
 * again: a COPY's rows must all be read before its result. */
void pg_stream_stop(postgres_conn *c) {
    PGresult *r;
    char *buf;
    postgres_cursor *cur = c->streaming;
    c->streaming = NULL;
    while ((r = PQgetResult(c->pg)) != NULL) {
        int copying = PQresultStatus(r) == PGRES_COPY_OUT;
        PQclear(r);
        if (copying)
            while (PQgetCopyData(c->pg, &buf, 0) > 0) PQfreemem(buf);
    }
    if (cur) cur->stopped = 1;
}

/* The server writes an int8 as an optional '-' and its digits (a NULL
 * column reads as "", 0): parsed inline, strtoll was 2% of a stream read. */
int64_t pg_col_i64(const PGresult *res, int row, int col) {
    const char *s = PQgetvalue(res, row, col);
    uint64_t v = 0;
    int neg = *s == '-';
    for (s += neg; *s >= '0' && *s <= '9'; s++) v = v * 10 + (uint64_t)(*s - '0');
    return neg ? (int64_t)(0 - v) : (int64_t)v;
}

/* ---- append ---- */

/* Which events field an array parameter carries. */
enum { ARR_ID, ARR_TYPE, ARR_DATA, ARR_META, ARR_TS, ARR__COUNT };

static int put_array(es_buf *b, const es_append_req *req, int which) {
    size_t i;
    if (es_pg_put_array_head(b, which == ARR_TS ? OID_INT8 : OID_TEXT, req->count)) return ES_ENOMEM;
    for (i = 0; i < req->count; i++) {
        const es_event *e = &req->events[i];
        int rc = ES_OK;
        switch (which) {
        case ARR_ID: rc = es_pg_put_elem(b, e->id, strlen(e->id)); break;
        case ARR_TYPE: rc = es_pg_put_elem(b, e->type, strlen(e->type)); break;
        case ARR_DATA: rc = es_pg_put_elem(b, e->data, e->data_len); break;
        case ARR_META: rc = es_pg_put_elem(b, e->metadata, e->metadata_len); break;
        case ARR_TS:
            rc = es_pg_put_u32(b, 8) || es_pg_put_u32(b, (uint32_t)((uint64_t)e->timestamp >> 32)) ||
                 es_pg_put_u32(b, (uint32_t)e->timestamp);
            break;
        }
        if (rc) return ES_ENOMEM;
    }
    return ES_OK;
}

/* Reads the next integer of a text array ("{1,2,3}"); NULL when none. */
static const char *next_i64(const char *s, int64_t *v) {
    char *end;
    while (*s == '{' || *s == ',') s++;
    *v = (int64_t)strtoll(s, &end, 10);
    return end == s ? NULL : end;
}

static int postgres_backend__append(es_conn *conn, es_append_req *req, es_append_result *res,
                                    es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    es_buf *b = &c->scratch;
    const char *vals[10];
    int lens[10] = { 0 }, formats[10] = { 0 };
    size_t offs[ARR__COUNT], ends[ARR__COUNT], i, n = req->count;
    char expected[32];
    const char *rv, *pv, *tv;
    PGresult *r;
    int status, a, rc = ES_OK;
    int64_t cur;

    if (c->readonly)
        return es_err_set(err, ES_EREADONLY, "append to '%s': the store is read-only", req->stream);
    /* Lengths travel as int32; the server's own limit (1 GB) is lower. */
    for (i = 0; i < n; i++)
        if (req->events[i].data_len > (size_t)INT32_MAX / 2 || req->events[i].metadata_len > (size_t)INT32_MAX / 2)
            return es_err_set(err, ES_EINVALID, "append to '%s': event %zu is too large", req->stream, i + 1);
    snprintf(expected, sizeof expected, "%lld", (long long)req->expected);
    vals[0] = req->stream;
    vals[1] = req->category;
    vals[2] = expected;
    vals[8] = req->ids_given ? "t" : "f";
    vals[9] = req->outbox ? "t" : "f";
    if (n == 1 && c->names.append1) {
        /* one event: plain parameters; data and metadata go as text's
         * binary form, their bytes with a length (they are not
         * NUL-terminated) */
        const es_event *e = &req->events[0];
        char ts[32];
        snprintf(ts, sizeof ts, "%lld", (long long)e->timestamp);
        vals[3] = e->id;
        vals[4] = e->type;
        vals[5] = e->data;
        lens[5] = (int)e->data_len;
        formats[5] = 1;
        vals[6] = e->metadata;
        lens[6] = (int)e->metadata_len;
        formats[6] = 1;
        vals[7] = ts;
        rc = pg_run(c, ST_APPEND1, 10, vals, lens, formats, &r, err, "append to", req->stream);
        if (rc != ES_OK) goto done;
        goto answer;
    }
    b->len = 0;
    for (a = 0; a < ARR__COUNT; a++) {
        offs[a] = b->len;
        if (put_array(b, req, a) != ES_OK) {
            es_buf_free(b);
            return es_err_set(err, ES_ENOMEM, "append to '%s': out of memory", req->stream);
        }
        ends[a] = b->len;
    }
    if (b->len > (size_t)INT32_MAX)
        return es_err_set(err, ES_EINVALID, "append to '%s': the batch is too large", req->stream);
    /* pointers into b are taken only now: b moved while it grew */
    for (a = 0; a < ARR__COUNT; a++) {
        vals[3 + a] = b->data + offs[a];
        lens[3 + a] = (int)(ends[a] - offs[a]);
        formats[3 + a] = 1;
    }

    if ((rc = pg_run(c, ST_APPEND, 10, vals, lens, formats, &r, err, "append to", req->stream)) != ES_OK)
        goto done;
answer:
    if (PQntuples(r) != 1) {
        rc = es_err_set(err, ES_EBACKEND, "append to '%s': the append function returned no row", req->stream);
        goto done;
    }
    status = atoi(PQgetvalue(r, 0, 0));
    cur = pg_col_i64(r, 0, 1);
    switch (status) {
    case 0: {
        int64_t first = pg_col_i64(r, 0, 2), floor = INT64_MIN;
        /* the newest timestamp before this append: the function stored
         * none below it */
        if (!PQgetisnull(r, 0, 6) && !next_i64(PQgetvalue(r, 0, 6), &floor)) {
            rc = es_err_set(err, ES_EBACKEND, "append to '%s': unreadable timestamp floor", req->stream);
            goto done;
        }
        for (i = 0; i < n; i++) {
            req->events[i].revision = cur + 1 + (int64_t)i;
            req->events[i].position = first + (int64_t)i;
            if (req->events[i].timestamp < floor) req->events[i].timestamp = floor;
        }
        res->revision = cur + (int64_t)n;
        res->position = first + (int64_t)n - 1;
        res->idempotent = 0;
        break;
    }
    case 1:
        /* as for a fresh append the revision is the stream's now, which later
         * appends may have moved past the batch */
        rv = PQgetvalue(r, 0, 4);
        pv = PQgetvalue(r, 0, 5);
        tv = PQgetvalue(r, 0, 6);
        for (i = 0; i < n; i++) {
            es_event *e = &req->events[i];
            if (!(rv = next_i64(rv, &e->revision)) || !(pv = next_i64(pv, &e->position)) ||
                !(tv = next_i64(tv, &e->timestamp))) {
                rc = es_err_set(err, ES_EBACKEND, "append to '%s': unreadable idempotency result", req->stream);
                goto done;
            }
        }
        res->revision = cur;
        res->position = req->events[n - 1].position;
        res->idempotent = 1;
        break;
    case 2:
        rc = es_expected_check(req, cur, err);
        if (rc == ES_OK) rc = es_err_set(err, ES_EBACKEND, "append to '%s': the append function and the "
                                         "core disagree on the expected revision", req->stream);
        break;
    default: {
        long idx = atol(PQgetvalue(r, 0, 3));
        if (idx < 1 || (size_t)idx > n) idx = 1;
        rc = es_err_set(err, ES_ECONFLICT, "append to '%s': event id %s already stored", req->stream,
                        req->events[idx - 1].id);
    }
    }
done:
    PQclear(r);
    /* one huge batch must not pin its buffer for the connection's life */
    if (b->cap > ((size_t)1 << 20)) es_buf_free(b);
    return rc;
}

/* ---- single-row calls ---- */

static int postgres_backend__revision(es_conn *conn, const char *stream, int64_t *out, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    const char *vals[1] = { stream };
    PGresult *r;
    int rc = pg_run(c, ST_REVISION, 1, vals, NULL, NULL, &r, err, "revision", stream);
    *out = 0;
    if (rc != ES_OK) return rc;
    if (PQntuples(r) > 0) *out = pg_col_i64(r, 0, 0);
    PQclear(r);
    return ES_OK;
}

static int postgres_backend__stats(es_conn *conn, es_stats *out, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    PGresult *r;
    int rc = pg_run(c, ST_STATS, 0, NULL, NULL, NULL, &r, err, "stats", NULL);
    if (rc != ES_OK) return rc;
    if (PQntuples(r) == 1) {
        out->events = pg_col_i64(r, 0, 0);
        out->streams = pg_col_i64(r, 0, 1);
        out->snapshots = pg_col_i64(r, 0, 2);
        out->position = pg_col_i64(r, 0, 3);
    }
    PQclear(r);
    return ES_OK;
}

static int postgres_backend__head(es_conn *conn, int64_t *out, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    PGresult *r;
    int rc = pg_run(c, ST_HEAD, 0, NULL, NULL, NULL, &r, err, "head", NULL);
    *out = 0;
    if (rc != ES_OK) return rc;
    if (PQntuples(r) > 0) *out = pg_col_i64(r, 0, 0);
    PQclear(r);
    return ES_OK;
}

static int postgres_backend__save_snapshot(es_conn *conn, const es_snapshot *snap, int64_t keep, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    size_t len = snap->data_len ? snap->data_len : strlen(snap->data);
    char nums[4][32];
    const char *vals[7];
    int lens[7] = { 0 }, formats[7] = { 0 }, rc;
    PGresult *r;

    if (c->readonly)
        return es_err_set(err, ES_EREADONLY, "save_snapshot '%s': the store is read-only", snap->stream);
    if (len > (size_t)INT32_MAX)
        return es_err_set(err, ES_EINVALID, "save_snapshot '%s': data is too large", snap->stream);
    snprintf(nums[0], sizeof nums[0], "%lld", (long long)snap->revision);
    snprintf(nums[1], sizeof nums[1], "%lld", (long long)snap->version);
    snprintf(nums[2], sizeof nums[2], "%lld", (long long)(snap->timestamp ? snap->timestamp : es_now_ms()));
    snprintf(nums[3], sizeof nums[3], "%lld", (long long)keep);
    vals[0] = snap->stream;
    vals[1] = snap->fingerprint ? snap->fingerprint : "";
    vals[2] = nums[0];
    vals[3] = nums[1];
    vals[4] = snap->data;         /* binary json: the text itself, by length */
    lens[4] = (int)len;
    formats[4] = 1;
    vals[5] = nums[2];
    vals[6] = nums[3];
    if ((rc = pg_run(c, ST_SNAP_SAVE, 7, vals, lens, formats, &r, err, "save_snapshot", snap->stream)) != ES_OK)
        return rc;
    PQclear(r);
    return ES_OK;
}

static int postgres_backend__load_snapshot(es_conn *conn, const char *stream, int64_t max_revision,
                                           const char *fingerprint, es_snapshot *out, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    char num[32];
    const char *vals[3];
    PGresult *r;
    int rc = ES_OK;

    memset(out, 0, sizeof *out);
    snprintf(num, sizeof num, "%lld", (long long)max_revision);
    vals[0] = stream;
    vals[1] = num;
    vals[2] = fingerprint;        /* NULL: any fingerprint */
    if ((rc = pg_run(c, ST_SNAP_LOAD, 3, vals, NULL, NULL, &r, err, "snapshot", stream)) != ES_OK)
        return rc;
    if (PQntuples(r) == 0) {
        rc = es_err_set(err, ES_ENOTFOUND, "snapshot '%s': none at or below revision %lld", stream,
                        (long long)max_revision);
    } else {
        /* a user snapshot (no fingerprint) is stored and returned as "" */
        out->revision = pg_col_i64(r, 0, 1);
        out->version = pg_col_i64(r, 0, 3);
        out->timestamp = pg_col_i64(r, 0, 5);
        out->data_len = (size_t)PQgetlength(r, 0, 4);
        if (!(out->stream = es_strdup(PQgetvalue(r, 0, 0))) || !(out->fingerprint = es_strdup(PQgetvalue(r, 0, 2))) ||
            !(out->data = es_strndup(PQgetvalue(r, 0, 4), out->data_len))) {
            es_snapshot_clear(out);
            rc = es_err_set(err, ES_ENOMEM, "snapshot '%s': out of memory", stream);
        }
    }
    PQclear(r);
    return rc;
}

static int postgres_backend__get_checkpoint(es_conn *conn, const char *name, int64_t *out, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    const char *vals[1] = { name };
    PGresult *r;
    int rc = pg_run(c, ST_CP_GET, 1, vals, NULL, NULL, &r, err, "checkpoint", name);
    *out = 0;
    if (rc != ES_OK) return rc;
    if (PQntuples(r) > 0) *out = pg_col_i64(r, 0, 0);
    else rc = es_err_set(err, ES_ENOTFOUND, "checkpoint '%s': none stored", name);
    PQclear(r);
    return rc;
}

static int postgres_backend__set_checkpoint(es_conn *conn, const char *name, int64_t position, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    char num[32];
    const char *vals[2];
    PGresult *r;
    int rc;
    if (c->readonly) return es_err_set(err, ES_EREADONLY, "checkpoint '%s': the store is read-only", name);
    snprintf(num, sizeof num, "%lld", (long long)position);
    vals[0] = name;
    vals[1] = num;
    if ((rc = pg_run(c, ST_CP_SET, 2, vals, NULL, NULL, &r, err, "checkpoint", name)) != ES_OK) return rc;
    PQclear(r);
    return ES_OK;
}

static int postgres_backend__mark_dispatched(es_conn *conn, const char *id, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    const char *vals[1] = { id };
    PGresult *r;
    int found, rc;
    if (c->readonly) return es_err_set(err, ES_EREADONLY, "mark_dispatched '%s': the store is read-only", id);
    if ((rc = pg_run(c, ST_DISPATCH, 1, vals, NULL, NULL, &r, err, "mark_dispatched", id)) != ES_OK) return rc;
    found = PQntuples(r) > 0 && pg_col_i64(r, 0, 0) > 0;
    PQclear(r);
    return found ? ES_OK : es_err_set(err, ES_ENOTFOUND, "mark_dispatched '%s': no event with this id", id);
}

/* LISTEN starts on the first wait of a session. An append may have
 * committed between the caller's last look and LISTEN, so that first call
 * reports a wake-up at once and the caller looks again. Notifications
 * that arrived during other calls were queued by libpq and count too. */
static int postgres_backend__wait(es_conn *conn, int64_t timeout_ms, int *woken, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    char sql[PG_MAX_IDENT + 16];
    struct pollfd pfd;
    PGresult *r;
    int64_t t0;
    int rc, n;

    *woken = 0;
    if ((rc = pg_ready(c, err, "wait", NULL)) != ES_OK) return rc;
    if (!c->listening) {
        snprintf(sql, sizeof sql, "LISTEN \"%s\"", c->names.channel);
        r = PQexec(c->pg, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? ES_OK : pg_fail(c, r, err, "wait", NULL);
        PQclear(r);
        c->listening = rc == ES_OK;
        *woken = rc == ES_OK;
        return rc;
    }
    *woken = c->notified;
    c->notified = 0;
    for (;;) {
        if (!PQconsumeInput(c->pg)) return pg_fail(c, NULL, err, "wait", NULL);
        if (drain_notifies(c)) *woken = 1;
        if (*woken || timeout_ms <= 0) return ES_OK;
        pfd.fd = PQsocket(c->pg);
        pfd.events = POLLIN;
        pfd.revents = 0;
        t0 = es_now_ms();
        n = poll(&pfd, 1, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms);
        if (n < 0 && errno != EINTR) return es_err_set(err, ES_EBACKEND, "wait: %s", strerror(errno));
        if (n == 0) return ES_OK;
        timeout_ms -= es_now_ms() - t0;
    }
}

/* ---- open and close ---- */

static void postgres_backend__close(es_conn *conn) {
    postgres_conn *c = (postgres_conn *)conn;
    postgres_cursor *cur;
    int i;
    if (!c) return;
    /* Cursors still open keep their current page, then report the closed
     * store; their close() then touches only itself. */
    for (cur = c->cursors; cur; cur = cur->next) {
        /* a streaming cursor's rows stop here: the next one reports the
         * closed store */
        if (c->streaming == cur) cur->stopped = 1;
        cur->conn = NULL;
    }
    if (c->pg) PQfinish(c->pg);
    for (i = 0; i < 3; i++) es_free(c->secrets[i]);
    es_buf_free(&c->scratch);
    es_free(c);
}

/* Creates schema, tables and the append function unless the function
 * (created last) is already there. The DDL runs in one transaction under
 * the store's advisory lock, so processes opening a new store at once
 * create it once and see all of it. */
static int create_schema(postgres_conn *c, es_err *err) {
    const char *vals[2];
    char fn[PG_MAX_PREFIX + 16];
    es_buf b = { NULL, 0, 0 };
    PGresult *r;
    int have_schema, rc = ES_OK;

    snprintf(fn, sizeof fn, "%sappend_v1", c->names.prefix);
    vals[0] = c->names.schema;
    vals[1] = fn;
    r = PQexecParams(c->pg,
                     "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), "
                     "EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                     "WHERE n.nspname = $1 AND p.proname = $2)",
                     2, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = pg_fail(c, r, err, "open: create schema", NULL);
        PQclear(r);
        return rc;
    }
    have_schema = PQgetvalue(r, 0, 0)[0] == 't';
    if (PQgetvalue(r, 0, 1)[0] == 't') {
        PQclear(r);
        return ES_OK;
    }
    PQclear(r);
    /* CREATE SCHEMA checks the database privilege even when the schema
     * exists, so it is only sent when the schema is missing. */
    if (es_pg_sql_schema(&c->names, !have_schema, &b) != ES_OK) {
        es_buf_free(&b);
        return es_err_set(err, ES_ENOMEM, "open: out of memory");
    }
    r = PQexec(c->pg, b.data);
    es_buf_free(&b);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = pg_fail(c, r, err, "open: create schema", NULL);
    PQclear(r);
    if (rc != ES_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE) PQclear(PQexec(c->pg, "ROLLBACK"));
    return rc;
}

/* Which layout is the store's? One made before 2026-11-28 has a timestamp
 * index: its since() reads go through it (its timestamps may go down along
 * positions); newer stores' reads search positions. One made since
 * 2026-12-07 has append1_v1, which single-event appends call; older ones
 * append every batch through append_v1. */
static int find_layout(postgres_conn *c, es_err *err) {
    char name[2 * PG_MAX_IDENT + 32], fn[2 * PG_MAX_IDENT + 32];
    const char *vals[2] = { name, fn };
    PGresult *r;
    snprintf(name, sizeof name, "\"%s\".\"%sev_timestamp\"", c->names.schema, c->names.prefix);
    snprintf(fn, sizeof fn, "\"%s\".\"%sappend1_v1\"", c->names.schema, c->names.prefix);
    r = PQexecParams(c->pg, "SELECT to_regclass($1) IS NOT NULL, to_regproc($2) IS NOT NULL", 2, NULL, vals, NULL,
                     NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        int rc = pg_fail(c, r, err, "open: look at the store's layout", NULL);
        PQclear(r);
        return rc;
    }
    c->names.ts_index = PQgetvalue(r, 0, 0)[0] == 't';
    c->names.append1 = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    return ES_OK;
}

/* The URL goes to libpq as it is (it reads postgres:// and postgresql://
 * URIs); client_encoding is forced to UTF8 after it, so texts arrive
 * byte-exact whatever the URL says. */
static int postgres_backend__open(const char *uri, const es_options *opt, es_conn **out, es_err *err) {
    static const char *const keys[] = { "dbname", "client_encoding", "fallback_application_name", NULL };
    static const char missing[] = "open: the store's tables are missing or unusable (create = false?)";
    const char *schema = opt->schema ? opt->schema : "public";
    const char *prefix = opt->prefix ? opt->prefix : "es_";
    const char *values[4];
    es_pg_names names;
    postgres_conn *c;
    char clean[200];
    int rc;

    *out = NULL;
    if ((rc = es_pg_names_init(&names, schema, prefix, err)) != ES_OK) return rc;
    if (!(c = es_malloc(sizeof *c))) return es_err_set(err, ES_ENOMEM, "open: out of memory");
    memset(c, 0, sizeof *c);
    c->base.be = &es_postgres_backend;
    c->readonly = opt->readonly;
    c->names = names;
    if (es_pg_collect_secrets(uri, c->secrets) != ES_OK) {
        rc = es_err_set(err, ES_ENOMEM, "open: out of memory");
        goto fail;
    }
    values[0] = uri;
    values[1] = "UTF8";
    values[2] = "eventstore";
    values[3] = NULL;
    if (!(c->pg = PQconnectdbParams(keys, values, 1))) {
        rc = es_err_set(err, ES_ENOMEM, "open: out of memory");
        goto fail;
    }
    PQsetNoticeProcessor(c->pg, drop_notice, NULL);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        es_pg_scrub(c->secrets, PQerrorMessage(c->pg), clean, sizeof clean);
        rc = es_err_set(err, ES_EBACKEND, "open: cannot connect to PostgreSQL: %s", clean);
        goto fail;
    }
    if ((rc = session_setup(c, err, "open")) != ES_OK) goto fail;
    if (opt->create && !c->readonly && (rc = create_schema(c, err)) != ES_OK) goto fail;
    if ((rc = find_layout(c, err)) != ES_OK) goto fail;
    /* Preparing now proves the tables and the function are there, so a
     * store opened with create = false fails here rather than on first use. */
    if ((!c->readonly && (rc = pg_prepare(c, ST_APPEND, err, missing, NULL)) != ES_OK) ||
        (rc = pg_prepare(c, ST_REVISION, err, missing, NULL)) != ES_OK)
        goto fail;
    *out = &c->base;
    return ES_OK;
fail:
    postgres_backend__close(&c->base);
    return rc;
}

const es_backend es_postgres_backend = {
    .version = ES_BACKEND_VERSION,
    .scheme = "postgres",
    /* version 1 */
    .open = postgres_backend__open,
    .close = postgres_backend__close,
    .append = postgres_backend__append,
    .read = postgres_backend__read,
    .revision = postgres_backend__revision,
    .stats = postgres_backend__stats,
    .save_snapshot = postgres_backend__save_snapshot,
    .load_snapshot = postgres_backend__load_snapshot,
    .get_checkpoint = postgres_backend__get_checkpoint,
    .set_checkpoint = postgres_backend__set_checkpoint,
    .mark_dispatched = postgres_backend__mark_dispatched,
    .wait = postgres_backend__wait,
    .head = postgres_backend__head,
    .read_state = postgres_backend__read_state,
    /* version 1 ends here */
};
