/* sqlite_read.c: the SQLite backend's cursors: reads by stream, by position, by id, the outbox */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "sqlite.h"

/* Gives the statement back: a borrowed cached one is reset for the next
 * user (which also ends its read transaction, so an idle exhausted cursor
 * never pins a WAL snapshot); an owned one is finalized. */
static void cursor_release(sqlite_cursor *cur) {
    if (!cur->st) return;
    if (cur->slot >= 0) {
        sqlite3_reset(cur->st);
        sqlite3_clear_bindings(cur->st);
        if (cur->conn) cur->conn->in_use[cur->slot] = 0;
    } else {
        sqlite3_finalize(cur->st);
    }
    cur->st = NULL;
}

/* A JSON text column without the copy sqlite3_column_text makes to add a
 * NUL; NULL only when SQLite ran out of memory (an empty text is ""). */
static const char *json_column(sqlite3_stmt *st, int col, size_t *len) {
    const char *p = (const char *)sqlite3_column_blob(st, col);
    *len = (size_t)sqlite3_column_bytes(st, col);
    if (p) return p;
    return *len == 0 && sqlite3_errcode(sqlite3_db_handle(st)) != SQLITE_NOMEM ? "" : NULL;
}

/* Points ev at the current row's columns; they stay valid until the next
 * sqlite3_step/reset on st, which is exactly the borrowed-row contract. */
static int cursor_row(sqlite_cursor *cur) {
    sqlite3_stmt *st = cur->st;
    es_event *ev = &cur->ev;
    if (cur->streams_only) {
        ev->stream = (const char *)sqlite3_column_text(st, 0);
        ev->revision = sqlite3_column_int64(st, 1);
        return ev->stream ? ES_OK : ES_ENOMEM;
    }
    if (cur->lean_stream) {
        /* state(): id, metadata, position and timestamp stay as cursor
         * setup left them */
        ev->revision = sqlite3_column_int64(st, 0);
        ev->type = (const char *)sqlite3_column_text(st, 1);
        if (!(ev->data = json_column(st, 2, &ev->data_len)) || !ev->type) return ES_ENOMEM;
        return ES_OK;
    }
    ev->position = sqlite3_column_int64(st, 0);
    ev->id = (const char *)sqlite3_column_text(st, 1);
    ev->stream = (const char *)sqlite3_column_text(st, 2);
    ev->revision = sqlite3_column_int64(st, 3);
    ev->type = (const char *)sqlite3_column_text(st, 4);
    /* data and metadata carry their lengths: as blobs they come straight
     * from the page (or the map) instead of a NUL-terminated copy */
    if (!(ev->data = json_column(st, 5, &ev->data_len)) ||
        !(ev->metadata = json_column(st, 6, &ev->metadata_len)))
        return ES_ENOMEM;
    ev->timestamp = sqlite3_column_int64(st, 7);
    /* every column is NOT NULL, so NULL here means SQLite ran out of memory */
    return (ev->id && ev->stream && ev->type) ? ES_OK : ES_ENOMEM;
}

static int sqlite_cursor__next(es_cursor *base, const es_event **ev, es_err *err) {
    sqlite_cursor *cur = (sqlite_cursor *)base;
    int src, rc;
    *ev = NULL;
    if (cur->done) return 0;
    if (!cur->st) return es_err_set(err, ES_EINVALID, "read: the store was closed");
    src = sqlite3_step(cur->st);
    if (src == SQLITE_ROW) {
        if (cursor_row(cur) == ES_OK) {
            *ev = &cur->ev;
            return 1;
        }
        rc = es_err_set(err, ES_ENOMEM, "read: out of memory");
    } else if (src == SQLITE_DONE) {
        cur->done = 1;
        rc = 0;
    } else {
        rc = sqlite_fail(cur->conn, src, err, "read");
    }
    cursor_release(cur);
    return rc;
}

static void sqlite_cursor__close(es_cursor *base) {
    sqlite_cursor *cur = (sqlite_cursor *)base;
    cursor_release(cur);
    if (cur->conn) {
        if (cur->prev) cur->prev->next = cur->next;
        else cur->conn->cursors = cur->next;
        if (cur->next) cur->next->prev = cur->prev;
    }
    es_free(cur);
}

/* Hands the cursor its statement: the cached one when free, else a fresh
 * one it owns (two cursors of the same shape can be open at once). */
static int cursor_stmt(sqlite_conn *c, sqlite_cursor *cur, int slot) {
    int src;
    if (c->in_use[slot]) return sqlite_stmt_prepare(c, slot, 0, &cur->st);   /* cur->slot stays -1 */
    if ((src = sqlite_stmt_get(c, slot, &cur->st)) == SQLITE_OK) {
        c->in_use[slot] = 1;
        cur->slot = slot;
    }
    return src;
}

/* Writes the type filter as a JSON array text for json_each(). */
static int types_json(const es_query *q, es_buf *b) {
    size_t i;
    if (es_buf_add(b, "[", 1) != ES_OK) return ES_ENOMEM;
    for (i = 0; i < q->ntypes; i++) {
        const unsigned char *t = (const unsigned char *)q->types[i];
        if (es_buf_add(b, i ? ",\"" : "\"", i ? 2 : 1) != ES_OK) return ES_ENOMEM;
        for (; *t; t++) {
            char esc[8];
            int k = (*t == '"' || *t == '\\') ? snprintf(esc, sizeof esc, "\\%c", *t)
                    : *t < 0x20 ? snprintf(esc, sizeof esc, "\\u%04x", (unsigned)*t) : 0;
            if (es_buf_add(b, k ? esc : (const char *)t, k ? (size_t)k : 1) != ES_OK) return ES_ENOMEM;
        }
        if (es_buf_add(b, "\"", 1) != ES_OK) return ES_ENOMEM;
    }
    return es_buf_add(b, "]", 1);
}

/* Query strings are bound SQLITE_TRANSIENT: the cursor steps after read()
 * returns, and the query belongs to the caller. */
static int cursor_bind(sqlite_cursor *cur, const es_query *q, int variant) {
    sqlite3_stmt *st = cur->st;
    sqlite3_int64 limit = q->limit > 0 ? q->limit : -1;
    char id[ES_UUID_LEN + 1];
    int src = SQLITE_OK;

    switch (q->kind) {
    case ES_Q_STREAM:
        if ((src = sqlite3_bind_text(st, 1, q->stream, -1, SQLITE_TRANSIENT)) == SQLITE_OK &&
            (src = sqlite3_bind_int64(st, 2, q->from)) == SQLITE_OK &&
            (src = sqlite3_bind_int64(st, 3, q->to)) == SQLITE_OK)
            src = sqlite3_bind_int64(st, 4, limit);
        break;
    case ES_Q_ID:
        sqlite_lower_id(q->id, id);
        src = sqlite_bind_id(st, id);
        break;
    case ES_Q_STREAMS:
        if ((src = sqlite3_bind_int64(st, 1, limit)) == SQLITE_OK && q->category)
            src = sqlite3_bind_text(st, 2, q->category, -1, SQLITE_TRANSIENT);
        break;
    case ES_Q_UNDISPATCHED:
    case ES_Q_ALL:
        if ((src = sqlite3_bind_int64(st, 1, q->after)) == SQLITE_OK &&
            (src = sqlite3_bind_int64(st, 2, limit)) == SQLITE_OK && q->category)
            src = sqlite3_bind_text(st, 3, q->category, -1, SQLITE_TRANSIENT);
        if (src == SQLITE_OK && (variant & ALL_SINCE)) src = sqlite3_bind_int64(st, 4, q->since);
        if (src == SQLITE_OK && (variant & ALL_TYPES)) {
            es_buf b = { NULL, 0, 0 };
            src = types_json(q, &b) == ES_OK
                      ? sqlite3_bind_text(st, 5, b.data, (int)b.len, SQLITE_TRANSIENT) : SQLITE_NOMEM;
            es_buf_free(&b);
        }
        break;
    }
    return src;
}

/* The first position past `after` whose timestamp is at or after since
 * (head + 1 when there is none). Appends keep timestamps from going down
 * along positions, so a binary search over positions finds it in
 * log2(events) point reads, with no index on the timestamp. A position in
 * [mid, row) is never stored, so hi = mid keeps the answer right. */
static int since_start(sqlite_conn *c, int64_t since, int64_t after, int64_t *out, es_err *err) {
    sqlite3_stmt *st;
    int64_t lo = after < 0 ? 1 : after + 1, hi;
    int src;
    if ((src = sqlite_lookup_int64(c, ST_HEAD, NULL, &hi)) != SQLITE_OK) return sqlite_fail(c, src, err, "read");
    hi++;
    if ((src = sqlite_stmt_get(c, ST_TS_AT, &st)) != SQLITE_OK) return sqlite_fail(c, src, err, "read");
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        sqlite3_bind_int64(st, 1, mid);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            int64_t pos = sqlite3_column_int64(st, 0);
            if (sqlite3_column_int64(st, 1) >= since) hi = mid;
            else lo = pos + 1;
        } else if (src == SQLITE_DONE) {
            hi = mid;
        }
        sqlite3_reset(st);
        if (src != SQLITE_ROW && src != SQLITE_DONE) return sqlite_fail(c, src, err, "read");
    }
    *out = lo;
    return ES_OK;
}

int sqlite_backend__read(es_conn *conn, const es_query *q, es_cursor **out, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    sqlite_cursor *cur;
    es_query local;
    int slot, variant, shape, src;

    *out = NULL;
    if (q->kind == ES_Q_ALL && q->since != INT64_MIN && !c->ts_index) {
        int64_t start = 0;
        int rc = since_start(c, q->since, q->after, &start, err);
        if (rc != ES_OK) return rc;
        local = *q;
        if (start - 1 > local.after) local.after = start - 1;
        q = &local;
    }
    /* the read slots are laid out in es_query_shape's order */
    if ((shape = es_query_shape(q)) < 0)
        return es_err_set(err, ES_EINVALID, "read: unknown query kind %d", (int)q->kind);
    slot = q->lean && shape == ES_QS_READ_FWD ? ST_READ_LEAN : ST_READ_FWD + shape;
    variant = shape >= ES_QS_ALL ? shape - ES_QS_ALL : 0;
    if (!(cur = es_malloc(sizeof *cur))) return es_err_set(err, ES_ENOMEM, "read: out of memory");
    memset(cur, 0, sizeof *cur);
    cur->base.next = sqlite_cursor__next;
    cur->base.close = sqlite_cursor__close;
    cur->conn = c;
    cur->slot = -1;
    cur->streams_only = q->kind == ES_Q_STREAMS;
    if (q->lean && q->kind == ES_Q_STREAM) {
        cur->lean_stream = cur->ev.stream = q->stream;
        cur->ev.id = "";
        cur->ev.metadata = "{}";
        cur->ev.metadata_len = 2;
    }
    if (cur->streams_only) {
        /* rows carry stream and revision only; the rest reads as empty */
        cur->ev.id = cur->ev.type = "";
        cur->ev.data = cur->ev.metadata = "{}";
        cur->ev.data_len = cur->ev.metadata_len = 2;
    }
    if ((src = cursor_stmt(c, cur, slot)) != SQLITE_OK || (src = cursor_bind(cur, q, variant)) != SQLITE_OK) {
        int rc = q->kind == ES_Q_STREAM ? sqlite_fail(c, src, err, "read '%s'", q->stream)
                                        : sqlite_fail(c, src, err, "read");
        cursor_release(cur);
        es_free(cur);
        return rc;
    }
    cur->next = c->cursors;
    if (c->cursors) c->cursors->prev = cur;
    c->cursors = cur;
    *out = &cur->base;
    return ES_OK;
}

