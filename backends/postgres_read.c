/* postgres_read.c: the PostgreSQL backend's cursors: keyset pages of reads, and state()'s first page */
/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <uuid/uuid.h>

#include "postgres.h"

/* Points ev at the current row; PQgetvalue's texts live until PQclear,
 * which happens on the next page fetch or close: the borrowed-row contract.
 * Columns: position, id, stream, revision, type, data, metadata, timestamp;
 * a stream read leaves out the stream (ev->stream is the cursor's copy) and
 * a lean read sends position, revision, type and data only (the rest was
 * set once by cursor_new). */
static void cursor_row(postgres_cursor *cur) {
    PGresult *r = cur->res;
    es_event *ev = &cur->ev;
    int i = cur->row, k;
    if (cur->kind == ES_Q_STREAMS) {
        ev->stream = PQgetvalue(r, i, 0);
        ev->revision = pg_col_i64(r, i, 1);
        return;
    }
    if (cur->lean) {
        ev->revision = pg_col_i64(r, i, 0);
        ev->type = PQgetvalue(r, i, 1);
        ev->data = PQgetvalue(r, i, 2);
        ev->data_len = (size_t)PQgetlength(r, i, 2);
        return;
    }
    ev->position = pg_col_i64(r, i, 0);
    ev->id = PQgetvalue(r, i, 1);
    k = 2;
    if (cur->kind != ES_Q_STREAM) ev->stream = PQgetvalue(r, i, k++);
    ev->revision = pg_col_i64(r, i, k);
    ev->type = PQgetvalue(r, i, k + 1);
    ev->data = PQgetvalue(r, i, k + 2);
    ev->data_len = (size_t)PQgetlength(r, i, k + 2);
    ev->metadata = PQgetvalue(r, i, k + 3);
    ev->metadata_len = (size_t)PQgetlength(r, i, k + 3);
    ev->timestamp = pg_col_i64(r, i, k + 4);
}

/* The revision's column in a stream read's rows. */
static int stream_rev_col(const postgres_cursor *cur) {
    return cur->lean ? 0 : 2;
}

/* Moves the keyset past row `row` of cur->res: the next page starts after
 * it. A whole page moves it from its last row (cursor_fetch), state()'s
 * first statement past its snapshot row; a streamed row moves it in next(),
 * from the event cursor_row has read. */
static int move_key(postgres_cursor *cur, int row, es_err *err) {
    switch (cur->kind) {
    case ES_Q_STREAM:
        if (cur->backward) cur->hi = pg_col_i64(cur->res, row, stream_rev_col(cur)) - 1;
        else cur->lo = pg_col_i64(cur->res, row, stream_rev_col(cur)) + 1;
        break;
    case ES_Q_STREAMS:
        cur->last.len = 0;
        if (es_buf_add(&cur->last, PQgetvalue(cur->res, row, 0), (size_t)PQgetlength(cur->res, row, 0)))
            return es_err_set(err, ES_ENOMEM, "read: out of memory");
        break;
    default:
        cur->lo = pg_col_i64(cur->res, row, 0);
    }
    return ES_OK;
}

/* Pages of at least this many rows of the global order that the caller takes
 * at once come as COPY ... TO STDOUT (FORMAT binary): a row is one buffer
 * from libpq, not a PGresult (with a 2 KB block) as in single-row mode,
 * and the numbers and the uuid come as bytes. COPY takes no parameters, so
 * the server plans it on every page: for a stream read of 100 rows that
 * cost more than it saved (a C model: 370,000 against 460,000 rows/s), for
 * pages of 1,000 rows it gave 615,000-637,000 against 517,000-563,000
 * with 1.1 us of client work per row. */
#define PG_COPY_MIN 500

/* Whether a page of cur fits COPY: a read of the whole global order, paged
 * by at least PG_COPY_MIN rows. A category, a time or types would have to
 * be written into COPY's SQL (it takes no parameters), and names go to the
 * server only as parameters: those reads keep their prepared statements. */
static int copy_fits(const postgres_cursor *cur, int64_t page) {
    return cur->kind == ES_Q_ALL && !cur->category && cur->since == INT64_MIN && !cur->types.len &&
           page >= PG_COPY_MIN;
}

/* Moves the keyset past the last row of the current page and runs the
 * next page's query. Pages are separate statements: an event committed
 * between two pages shows up in a later page if it belongs after the key. */
static int cursor_fetch(postgres_cursor *cur, es_err *err) {
    postgres_conn *c = cur->conn;
    const char *vals[5];
    int lens[5] = { 0 }, formats[5] = { 0 }, n = 0;
    char nums[4][32];
    int64_t page = PG_PAGE;
    int rc;

    if (cur->res && cur->nrows > 0 && (rc = move_key(cur, cur->nrows - 1, err)) != ES_OK) return rc;
    PQclear(cur->res);
    cur->res = NULL;
    cur->row = cur->nrows = 0;
    if (cur->limit > 0) {
        if (cur->returned >= cur->limit) {
            cur->done = 1;
            return ES_OK;
        }
        if (cur->limit - cur->returned < page) page = cur->limit - cur->returned;
    }
    cur->copy = 0;                          /* a short last page goes the prepared way */
    if (cur->whole && copy_fits(cur, page)) {
        if ((rc = pg_send_copy(c, cur, page, err)) != ES_OK) return rc;
        cur->copy = 1;
        cur->page = page;
        cur->page_rows = 0;
        return ES_OK;
    }
    switch (cur->kind) {
    case ES_Q_STREAM:
        if (cur->slot == ST_STATE_FIRST) {
            snprintf(nums[0], sizeof nums[0], "%lld", (long long)page);
            vals[0] = cur->stream;
            vals[1] = cur->fp;
            vals[2] = nums[0];
            n = 3;
            break;
        }
        snprintf(nums[0], sizeof nums[0], "%lld", (long long)cur->lo);
        snprintf(nums[1], sizeof nums[1], "%lld", (long long)cur->hi);
        snprintf(nums[2], sizeof nums[2], "%lld", (long long)page);
        vals[0] = cur->stream;
        vals[1] = nums[0];
        vals[2] = nums[1];
        vals[3] = nums[2];
        n = 4;
        break;
    case ES_Q_ID:
        vals[0] = cur->id;
        n = 1;
        break;
    case ES_Q_STREAMS:
        snprintf(nums[0], sizeof nums[0], "%lld", (long long)page);
        vals[0] = cur->last.len ? cur->last.data : "";
        vals[1] = nums[0];
        n = 2;
        if (cur->category) vals[n++] = cur->category;
        break;
    default:
        snprintf(nums[0], sizeof nums[0], "%lld", (long long)cur->lo);
        snprintf(nums[1], sizeof nums[1], "%lld", (long long)page);
        vals[0] = nums[0];
        vals[1] = nums[1];
        n = 2;
        if (cur->category) vals[n++] = cur->category;
        if (cur->kind == ES_Q_ALL && cur->since != INT64_MIN) {
            snprintf(nums[2], sizeof nums[2], "%lld", (long long)cur->since);
            vals[n++] = nums[2];
        }
        if (cur->types.len) {
            vals[n] = cur->types.data;
            lens[n] = (int)cur->types.len;
            formats[n++] = 1;
        }
    }
    if (cur->whole && (cur->kind == ES_Q_STREAM || cur->kind == ES_Q_ALL)) {
        /* the caller takes every row at once: they come in as the server
         * sends them, and the caller's work on one overlaps the server's
         * on the next (stream_next) */
        if ((rc = pg_send(c, cur, n, vals, lens, formats, err, "read",
                          cur->kind == ES_Q_STREAM ? cur->stream : NULL)) != ES_OK)
            return rc;
        cur->page = page;
        cur->page_rows = 0;
        return ES_OK;
    }
    if ((rc = pg_run(c, cur->slot, n, vals, lens, formats, &cur->res, err, "read",
                     cur->kind == ES_Q_STREAM ? cur->stream : NULL)) != ES_OK)
        return rc;
    cur->nrows = PQntuples(cur->res);
    cur->snap_row = 0;
    if (cur->slot == ST_STATE_FIRST) {
        /* the snapshot row (NULL type) is not an event: read_state takes
         * it, next() starts after it; later pages are plain lean reads */
        cur->snap_row = cur->nrows > 0 && PQgetisnull(cur->res, 0, 1);
        cur->row = cur->snap_row;
        cur->slot = ST_READ_LEAN;
    }
    if (cur->kind == ES_Q_ID || cur->nrows - cur->snap_row < page) cur->done = 1;
    return ES_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t be64(const unsigned char *p) {
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* One CopyData message of a binary COPY of EVENT_COLS: 1 with its row in
 * cur->ev (texts NUL-terminated in place, over the length word of the
 * field after them, which is read by then), 0 for the header or the
 * trailer alone, -1 for anything else. The first message of a page starts
 * with the header: the 11-byte signature, flags and an extension. */
static int copy_row(postgres_cursor *cur, char *buf, int n) {
    static const char sig[11] = "PGCOPY\n\377\r\n";
    static const int fixed[8] = { 8, 16, -1, 8, -1, -1, -1, 8 };
    unsigned char *p = (unsigned char *)buf, *end = p + n, *f[8];
    int64_t len[8];
    int i;
    es_event *ev = &cur->ev;
    if (!cur->copy_hdr) {
        uint32_t ext;
        if (n < 19 || memcmp(p, sig, sizeof sig) != 0) return -1;
        ext = be32(p + 15);
        if (ext > (uint32_t)(n - 19)) return -1;
        p += 19 + ext;
        cur->copy_hdr = 1;
        if (p == end) return 0;
    }
    if (end - p < 2) return -1;
    if (p[0] == 0xFF && p[1] == 0xFF) return end - p == 2 ? 0 : -1;   /* the trailer */
    if (p[0] != 0 || p[1] != 8) return -1;
    p += 2;
    for (i = 0; i < 8; i++) {
        if (end - p < 4) return -1;
        len[i] = (int32_t)be32(p);
        p += 4;
        if (len[i] < 0 || len[i] > end - p || (fixed[i] >= 0 && len[i] != fixed[i])) return -1;
        f[i] = p;
        p += len[i];
    }
    if (p != end) return -1;
    ev->position = be64(f[0]);
    uuid_unparse_lower(f[1], cur->idtext);   /* as uuid.c writes generated ids */
    ev->id = cur->idtext;
    ev->revision = be64(f[3]);
    ev->timestamp = be64(f[7]);
    ev->data_len = (size_t)len[5];
    ev->metadata_len = (size_t)len[6];
    for (i = 2; i <= 6; i++)
        if (i != 3) f[i][len[i]] = '\0';
    ev->stream = (const char *)f[2];
    ev->type = (const char *)f[4];
    ev->data = (const char *)f[5];
    ev->metadata = (const char *)f[6];
    return 1;
}

/* The statement's end: the connection is free again, and any notices
 * that came with it are queued. */
static int stream_end(postgres_cursor *cur, int rc) {
    pg_stream_stop(cur->conn);
    cur->stopped = 0;
    cur->resent = 0;
    pg_drain_notifies(cur->conn);
    return rc;
}

/* The next row of a COPY page, as stream_next. */
static int copy_next(postgres_cursor *cur, es_err *err) {
    postgres_conn *c = cur->conn;
    PGresult *r;
    char *buf;
    int n, rc;
    PQfreemem(cur->copybuf);
    cur->copybuf = NULL;
    if (!cur->copy_open) {
        r = pg_next_result(c);
        if (PQresultStatus(r) != PGRES_COPY_OUT) {
            rc = r ? pg_fail(c, r, err, "read", NULL) : es_err_set(err, ES_EBACKEND, "read: the server sent no rows");
            PQclear(r);
            return stream_end(cur, rc);
        }
        PQclear(r);
        cur->copy_open = 1;
    }
    while ((n = pg_copy_data(c, &buf)) > 0) {
        rc = copy_row(cur, buf, n);
        if (rc == 1) {
            cur->copybuf = buf;
            cur->page_rows++;
            return 1;
        }
        PQfreemem(buf);
        if (rc < 0) return stream_end(cur, es_err_set(err, ES_EBACKEND, "read: the server sent a row in an unknown form"));
    }
    r = PQgetResult(c->pg);
    if (n == -1 && PQresultStatus(r) == PGRES_COMMAND_OK) rc = 0;
    else rc = r ? pg_fail(c, r, err, "read", NULL) : es_err_set(err, ES_EBACKEND, "read: the server ended the rows early");
    PQclear(r);
    return stream_end(cur, rc);
}

/* Whether the current page's rows are still coming in. */
static int streaming(const postgres_cursor *cur) { return cur->conn && cur->conn->streaming == cur; }

/* The next row of a streamed page: 1 with it in cur->res (row 0), 0 at the
 * page's end, or an error. A statement the session lost (a pooler's
 * DISCARD ALL) fails before its first row: it is prepared and sent once
 * more, as pg_run does. */
static int stream_next(postgres_cursor *cur, es_err *err) {
    postgres_conn *c = cur->conn;
    PGresult *r;
    ExecStatusType st;
    int rc;
    if (cur->copy) return copy_next(cur, err);
    PQclear(cur->res);
    cur->res = NULL;
    cur->row = cur->nrows = 0;
    r = pg_next_result(c);
    st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_SINGLE_TUPLE) {
        cur->res = r;
        cur->nrows = 1;
        cur->page_rows++;
        return 1;
    }
    if (st == PGRES_TUPLES_OK) {
        PQclear(r);
        rc = 0;
    } else if (pg_statement_lost(r) && cur->page_rows == 0 && !cur->resent) {
        PQclear(r);
        pg_stream_stop(c);
        cur->stopped = 0;
        cur->resent = 1;
        c->prepared &= ~(1UL << cur->slot);
        if ((rc = cursor_fetch(cur, err)) != ES_OK) return rc;
        return stream_next(cur, err);
    } else {
        rc = r ? pg_fail(c, r, err, "read", cur->kind == ES_Q_STREAM ? cur->stream : NULL)
               : es_err_set(err, ES_EBACKEND, "read: the server ended the rows early");
        PQclear(r);
    }
    /* the statement's results end with a NULL; take it (and anything
     * left after an error) so the connection is free again */
    return stream_end(cur, rc);
}

static int postgres_cursor__next(es_cursor *base, const es_event **ev, es_err *err) {
    postgres_cursor *cur = (postgres_cursor *)base;
    int rc, streamed = 0;
    *ev = NULL;
    for (;;) {
        if (cur->stopped) {
            cur->stopped = 0;
            cur->done = 1;
            if (!cur->conn) return es_err_set(err, ES_EINVALID, "read: the store was closed");
            return es_err_set(err, ES_EBACKEND, "read: another call on the store came before this read's rows "
                                                "were all read");
        }
        if (cur->peeked) {
            /* read_state looked at the first row: it is an event */
            cur->peeked = 0;
            streamed = 1;
            break;
        }
        if (streaming(cur)) {
            if ((rc = stream_next(cur, err)) < 0) {
                cur->done = 1;
                return rc;
            }
            if (rc == 1) {
                streamed = 1;
                break;
            }
            if (cur->page_rows < cur->page) cur->done = 1;
            if (cur->slot == ST_STATE_FIRST) cur->slot = ST_READ_LEAN;
        } else if (cur->row < cur->nrows) {
            break;
        }
        if (cur->done) return 0;
        if (!cur->conn) return es_err_set(err, ES_EINVALID, "read: the store was closed");
        if ((rc = cursor_fetch(cur, err)) != ES_OK) {
            cur->done = 1;
            return rc;
        }
        if (!streaming(cur) && cur->nrows == 0) return 0;
    }
    if (!cur->copy) cursor_row(cur);   /* copy_row has filled cur->ev */
    /* a streamed row moves the keyset as it comes, from the numbers
     * cursor_row has just read (streams are stream or global reads) */
    if (streamed) {
        if (cur->kind != ES_Q_STREAM) cur->lo = cur->ev.position;
        else if (cur->backward) cur->hi = cur->ev.revision - 1;
        else cur->lo = cur->ev.revision + 1;
    }
    cur->row++;
    cur->returned++;
    *ev = &cur->ev;
    return 1;
}

static void postgres_cursor__close(es_cursor *base) {
    postgres_cursor *cur = (postgres_cursor *)base;
    if (streaming(cur)) pg_stream_stop(cur->conn);
    if (cur->conn) {
        if (cur->prev) cur->prev->next = cur->next;
        else cur->conn->cursors = cur->next;
        if (cur->next) cur->next->prev = cur->prev;
    }
    PQclear(cur->res);
    PQfreemem(cur->copybuf);
    es_free(cur->stream);
    es_free(cur->category);
    es_free(cur->id);
    es_free(cur->fp);
    es_buf_free(&cur->types);
    es_buf_free(&cur->last);
    es_free(cur);
}

/* A cursor for q, its first page fetched. The query's strings belong to
 * the caller and later pages are fetched after read() returns, so the
 * cursor keeps its own copies. first_slot (0: the query's own statement)
 * and fp serve read_state. */
static int cursor_new(postgres_conn *c, const es_query *q, int first_slot, const char *fp, es_cursor **out,
                      es_err *err) {
    postgres_cursor *cur;
    int slot, variant, shape, rc;
    size_t i;

    *out = NULL;
    /* the read slots are laid out in es_query_shape's order */
    if ((shape = es_query_shape(q)) < 0)
        return es_err_set(err, ES_EINVALID, "read: unknown query kind %d", (int)q->kind);
    slot = first_slot ? first_slot : q->lean && shape == ES_QS_READ_FWD ? ST_READ_LEAN : ST_READ_FWD + shape;
    variant = shape >= ES_QS_ALL ? shape - ES_QS_ALL : 0;
    if (!(cur = es_malloc(sizeof *cur))) return es_err_set(err, ES_ENOMEM, "read: out of memory");
    memset(cur, 0, sizeof *cur);
    cur->base.next = postgres_cursor__next;
    cur->base.close = postgres_cursor__close;
    cur->kind = q->kind;
    cur->slot = slot;
    cur->backward = q->backward;
    cur->limit = q->limit;
    cur->lo = q->kind == ES_Q_STREAM ? q->from : q->after;
    cur->hi = q->to;
    cur->since = q->since;
    cur->lean = slot == ST_READ_LEAN || slot == ST_STATE_FIRST;
    cur->whole = q->whole;
    if (cur->kind == ES_Q_STREAMS || cur->lean) {
        /* the columns a row does not carry read as empty */
        cur->ev.id = cur->ev.type = "";
        cur->ev.data = cur->ev.metadata = "{}";
        cur->ev.data_len = cur->ev.metadata_len = 2;
    }
    if ((fp && !(cur->fp = es_strdup(fp))) || (q->kind == ES_Q_STREAM && !(cur->stream = es_strdup(q->stream))) ||
        (q->kind == ES_Q_ID && !(cur->id = es_strdup(q->id))) ||
        (q->category && q->kind != ES_Q_STREAM && q->kind != ES_Q_ID && !(cur->category = es_strdup(q->category))))
        goto nomem;
    cur->ev.stream = cur->stream; /* stream reads: rows leave it out */
    if (variant & ALL_TYPES) {
        if (es_pg_put_array_head(&cur->types, OID_TEXT, q->ntypes)) goto nomem;
        for (i = 0; i < q->ntypes; i++)
            if (es_pg_put_elem(&cur->types, q->types[i], strlen(q->types[i]))) goto nomem;
    }
    cur->conn = c;
    if ((rc = cursor_fetch(cur, err)) != ES_OK) {
        cur->conn = NULL;
        postgres_cursor__close(&cur->base);
        return rc;
    }
    cur->next = c->cursors;
    if (c->cursors) c->cursors->prev = cur;
    c->cursors = cur;
    *out = &cur->base;
    return ES_OK;
nomem:
    postgres_cursor__close(&cur->base);
    return es_err_set(err, ES_ENOMEM, "read: out of memory");
}

int postgres_backend__read(es_conn *conn, const es_query *q, es_cursor **out, es_err *err) {
    return cursor_new((postgres_conn *)conn, q, 0, NULL, out, err);
}

/* state(): the snapshot and the first page of events after it in one
 * statement (ST_STATE_FIRST), then lean pages as a read would fetch. */
int postgres_backend__read_state(es_conn *conn, const char *stream, const char *fingerprint, es_snapshot *snap,
                                 es_cursor **out, es_err *err) {
    postgres_conn *c = (postgres_conn *)conn;
    postgres_cursor *cur;
    es_cursor *base;
    es_query q;
    const PGresult *r = NULL;
    int rc;
    memset(snap, 0, sizeof *snap);
    *out = NULL;
    es_query_init(&q, ES_Q_STREAM);
    q.stream = stream;
    q.lean = 1;
    /* state() folds every row in C before its next call on the store (no
     * custom rule, which could call back, comes this way): the rows stream
     * in while the fold runs */
    q.whole = 1;
    /* built as a lean read, switched to the combined first statement
     * before its first fetch */
    if ((rc = cursor_new(c, &q, ST_STATE_FIRST, fingerprint, &base, err)) != ES_OK) return rc;
    cur = (postgres_cursor *)base;
    if (streaming(cur)) {
        /* the first row tells whether a snapshot came: taken here, or kept
         * for the first next() when it is an event */
        if ((rc = stream_next(cur, err)) < 0) {
            postgres_cursor__close(base);
            return rc;
        }
        if (rc == 0) {
            cur->done = 1;
        } else if (PQgetisnull(cur->res, 0, 1)) {
            r = cur->res;
            cur->page_rows--;       /* the page's LIMIT counts events only */
            (void)move_key(cur, 0, err);
        } else {
            cur->peeked = 1;
        }
    } else if (cur->snap_row) {
        r = cur->res;
    }
    if (r) {
        snap->revision = pg_col_i64(r, 0, 0);
        snap->data_len = (size_t)PQgetlength(r, 0, 2);
        if (!(snap->stream = es_strdup(stream)) || !(snap->fingerprint = es_strdup(fingerprint)) ||
            !(snap->data = es_strndup(PQgetvalue(r, 0, 2), snap->data_len))) {
            es_snapshot_clear(snap);
            postgres_cursor__close(base);
            return es_err_set(err, ES_ENOMEM, "state '%s': out of memory", stream);
        }
    }
    *out = base;
    return ES_OK;
}
