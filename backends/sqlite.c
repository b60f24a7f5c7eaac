/* sqlite.c: the SQLite backend: WAL, cached prepared statements, BEGIN IMMEDIATE appends */
/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "sqlite.h"

/* Maps a SQLite result code to an ES_E... code and writes
 * "<what>: <sqlite's text>". The text is taken before any ROLLBACK, which
 * would replace it. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int sqlite_fail(sqlite_conn *c, int src, es_err *err, const char *fmt, ...) {
    char what[300];
    const char *text;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    text = (c->db && (sqlite3_extended_errcode(c->db) == src || sqlite3_errcode(c->db) == src))
               ? sqlite3_errmsg(c->db) : sqlite3_errstr(src);
    /* in WAL, a write cannot start from a snapshot that another connection
     * has moved past; waiting does not help, so there was no wait */
    if (src == SQLITE_BUSY_SNAPSHOT)
        return es_err_set(err, ES_EBUSY, "%s: a cursor still open on this store reads an older snapshot "
                          "(close it, then retry): %s", what, text);
    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return es_err_set(err, ES_EBUSY, "%s: the database stayed locked for %d ms: %s", what,
                          c->busy_timeout_ms, text);
    case SQLITE_CONSTRAINT:
        return es_err_set(err, ES_ECONFLICT, "%s: %s", what, text);
    case SQLITE_READONLY:
        return es_err_set(err, ES_EREADONLY, "%s: %s", what, text);
    case SQLITE_NOMEM:
        return es_err_set(err, ES_ENOMEM, "%s: out of memory", what);
    default:
        return es_err_set(err, ES_EBACKEND, "%s: %s", what, text);
    }
}

/* The cached statement of a slot, prepared on first use. Cursors take it
 * only through cursor_stmt, which marks it in use. */
int sqlite_stmt_get(sqlite_conn *c, int slot, sqlite3_stmt **out) {
    int src = SQLITE_OK;
    if (!c->stmts[slot]) src = sqlite_stmt_prepare(c, slot, SQLITE_PREPARE_PERSISTENT, &c->stmts[slot]);
    *out = c->stmts[slot];
    return src;
}

/* Resets a statement and drops its bindings, so no pointer to the caller's
 * memory outlives the call. */
static void stmt_done(sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no rows, then stmt_done; a SQLite code. */
static int step_done(sqlite3_stmt *st) {
    int src = sqlite3_step(st);
    stmt_done(st);
    return src == SQLITE_DONE ? SQLITE_OK : src;
}

/* Runs a statement that returns no rows (BEGIN, COMMIT, ROLLBACK). */
static int exec_slot(sqlite_conn *c, int slot) {
    sqlite3_stmt *st;
    int src = sqlite_stmt_get(c, slot, &st);
    return src != SQLITE_OK ? src : step_done(st);
}

/* Undoes an open transaction. Nothing to report if that fails: SQLite
 * rolls back by itself when it cannot go on, and close rolls back too. */
static void rollback(sqlite_conn *c) {
    if (!sqlite3_get_autocommit(c->db)) exec_slot(c, ST_ROLLBACK);
}

/* Copies an id in lower case, as store.c stores ids. */
void sqlite_lower_id(const char *id, char out[ES_UUID_LEN + 1]) {
    size_t i;
    for (i = 0; i < ES_UUID_LEN && id[i]; i++)
        out[i] = (id[i] >= 'A' && id[i] <= 'F') ? (char)(id[i] - 'A' + 'a') : id[i];
    out[i] = '\0';
}

int sqlite_bind_id(sqlite3_stmt *st, const char *id) {
    int src = sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return src == SQLITE_OK ? sqlite3_bind_int64(st, 2, es_id_position(id)) : src;
}

/* One integer looked up by one text key (a stream's revision, a
 * checkpoint); 0 when there is no row. Returns a SQLite code. */
int sqlite_lookup_int64(sqlite_conn *c, int slot, const char *key, int64_t *out) {
    sqlite3_stmt *st;
    int src;
    *out = 0;
    if ((src = sqlite_stmt_get(c, slot, &st)) != SQLITE_OK) return src;
    if (key) sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    stmt_done(st);
    return (src == SQLITE_ROW || src == SQLITE_DONE) ? SQLITE_OK : src;
}

/* Looks an id up: 1 with the stored row's position, revision and
 * timestamp in *row and its stream compared against `stream` (*same), 0 when
 * not stored, or a negative ES_E... code. */
static int id_lookup(sqlite_conn *c, const char *id, const char *stream, es_event *row, int *same,
                     const char *op, es_err *err) {
    sqlite3_stmt *st;
    int src, found = 0;
    if ((src = sqlite_stmt_get(c, ST_ID_LOOKUP, &st)) != SQLITE_OK) return sqlite_fail(c, src, err, "%s", op);
    if ((src = sqlite_bind_id(st, id)) == SQLITE_OK) src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 1);
        row->position = sqlite3_column_int64(st, 0);
        row->revision = sqlite3_column_int64(st, 2);
        row->timestamp = sqlite3_column_int64(st, 3);
        *same = s && stream && strcmp(s, stream) == 0;
        found = 1;
    } else if (src != SQLITE_DONE) {
        found = sqlite_fail(c, src, err, "%s", op);
    }
    stmt_done(st);
    return found;
}

/* Rule 1 of es_backend.h. Returns 1 when events[0].id is not stored (the
 * append goes on), ES_OK when the whole batch is already stored at a place
 * the expected revision allows (res filled, nothing to write), or an error. */
static int append_check_ids(sqlite_conn *c, es_append_req *req, es_append_result *res, es_err *err) {
    char op[300];
    es_event row;
    int64_t first = 0;
    size_t i;
    int found, same, stored = 0, src;

    snprintf(op, sizeof op, "append to '%s'", req->stream);
    for (i = 0; i < req->count; i++) {
        es_event *e = &req->events[i];
        found = id_lookup(c, e->id, req->stream, &row, &same, op, err);
        if (found < 0) return found;
        if (i == 0) {
            stored = found;
            first = found ? row.revision : 0;
        }
        if (!stored && !found) continue;
        if (!stored || !found || !same || row.revision != first + (int64_t)i)
            return es_err_set(err, ES_ECONFLICT, "%s: event id %s already stored", op,
                              found ? e->id : req->events[0].id);
        e->revision = row.revision;
        e->position = row.position;
        e->timestamp = row.timestamp;
    }
    if (!stored) return 1;
    if (req->expected >= 0 && req->expected != first - 1)
        return es_err_set(err, ES_ECONFLICT, "%s: event id %s already stored", op, req->events[0].id);
    /* as for a fresh append: the stream's revision now, which later appends
     * may have moved past the batch */
    if ((src = sqlite_lookup_int64(c, ST_STREAM_REV, req->stream, &res->revision)) != SQLITE_OK)
        return sqlite_fail(c, src, err, "%s", op);
    res->position = req->events[req->count - 1].position;
    res->idempotent = 1;
    return ES_OK;
}

/* What every row of an append shares: the stream and category with their
 * lengths. Texts are bound with their lengths, so SQLite does not count
 * their bytes one by one. */
typedef struct append_rows {
    const sqlite_conn *c;
    const es_append_req *req;
    int stream_len, category_len;
} append_rows;

/* Binds event i at row k (0-based) of an insert statement. */
static void bind_event(const append_rows *a, sqlite3_stmt *st, int k, size_t i) {
    const es_event *e = &a->req->events[i];
    int b = k * (a->c->own_id ? 10 : 9);
    sqlite3_bind_int64(st, b + 1, e->position);
    sqlite3_bind_text(st, b + 2, e->id, ES_UUID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, b + 3, a->req->stream, a->stream_len, SQLITE_STATIC);
    sqlite3_bind_text(st, b + 4, a->req->category, a->category_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, b + 5, e->revision);
    sqlite3_bind_text(st, b + 6, e->type, (int)strlen(e->type), SQLITE_STATIC);
    sqlite3_bind_text(st, b + 7, e->data, (int)e->data_len, SQLITE_STATIC);
    sqlite3_bind_text(st, b + 8, e->metadata, (int)e->metadata_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, b + 9, e->timestamp);
    if (a->c->own_id) sqlite3_bind_int(st, b + 10, es_id_names_row(a->req, i));
}

/* Inserts events [i, i + INSERT_ROWS) in one statement. A constraint error
 * backs out this statement only (the transaction stays): the caller then
 * inserts them row by row, which names the id at fault. Returns a SQLite
 * code. */
static int insert_rows(sqlite_conn *c, const append_rows *a, size_t i) {
    sqlite3_stmt *st;
    int src, k;
    if ((src = sqlite_stmt_get(c, ST_INSERT_EVENTS, &st)) != SQLITE_OK) return src;
    for (k = 0; k < INSERT_ROWS; k++) bind_event(a, st, k, i + (size_t)k);
    return step_done(st);
}

/* Rules 2-4 of es_backend.h, inside the BEGIN IMMEDIATE transaction: the
 * write lock is held from the revision read to the commit, so no other
 * writer can slip in between and positions follow commit order. */
static int append_locked(sqlite_conn *c, es_append_req *req, es_append_result *res, es_err *err) {
    sqlite3_stmt *st;
    int64_t cur = 0, last_ts = 0, head = 0, n = (int64_t)req->count;
    append_rows rows = { c, req, (int)strlen(req->stream), (int)strlen(req->category) };
    size_t i;
    int src, rc;

    if (req->ids_given && (rc = append_check_ids(c, req, res, err)) != 1) return rc;
    if ((src = sqlite_stmt_get(c, ST_APPEND_HEAD, &st)) != SQLITE_OK) goto fail;
    sqlite3_bind_text(st, 1, req->stream, rows.stream_len, SQLITE_STATIC);
    if ((src = sqlite3_step(st)) == SQLITE_ROW) {
        cur = sqlite3_column_int64(st, 0);
        last_ts = sqlite3_column_int64(st, 1);
        head = sqlite3_column_int64(st, 2);
        src = SQLITE_OK;
    }
    stmt_done(st);
    if (src != SQLITE_OK) goto fail;

    if ((rc = es_expected_check(req, cur, err)) != ES_OK) return rc;
    /* Timestamps never go down along positions, even when the clock steps
     * back: `since` then finds its first event by a binary search over
     * positions, and no timestamp index is written on every append. */
    for (i = 0; i < req->count; i++)
        if (req->events[i].timestamp < last_ts) req->events[i].timestamp = last_ts;
    if (n > INT64_MAX - cur)
        return es_err_set(err, ES_EINVALID, "append to '%s': revision would overflow", req->stream);
    if (n > INT64_MAX - head)
        return es_err_set(err, ES_EINVALID, "append to '%s': position would overflow", req->stream);
    for (i = 0; i < req->count; i++)
        if (req->events[i].data_len > (size_t)INT32_MAX || req->events[i].metadata_len > (size_t)INT32_MAX)
            return es_err_set(err, ES_EINVALID, "append to '%s': event %zu is too large", req->stream, i + 1);

    /* Positions are the rowids SQLite would choose (max + 1, the write lock
     * held), given explicitly so that generated ids can carry them. */
    for (i = 0; i < req->count; i++) {
        es_event *e = &req->events[i];
        e->revision = cur + 1 + (int64_t)i;
        e->position = head + 1 + (int64_t)i;
        if (req->generated && req->generated[i]) es_id_stamp((char *)e->id, e->position);
    }
    /* whole groups of INSERT_ROWS in one statement each, the rest row by row */
    for (i = 0; i + INSERT_ROWS <= req->count; i += INSERT_ROWS) {
        if ((src = insert_rows(c, &rows, i)) == SQLITE_OK) continue;
        if ((src & 0xff) != SQLITE_CONSTRAINT) goto fail;
        break;
    }
    if ((src = sqlite_stmt_get(c, ST_INSERT_EVENT, &st)) != SQLITE_OK) goto fail;
    for (; i < req->count; i++) {
        es_event *e = &req->events[i];
        bind_event(&rows, st, 0, i);
        if ((src = step_done(st)) != SQLITE_OK) {
            if ((src & 0xff) == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(c->db), "events.id"))
                return es_err_set(err, ES_ECONFLICT, "append to '%s': event id %s already stored",
                                  req->stream, e->id);
            goto fail;
        }
    }
    if (req->outbox) {
        if ((src = sqlite_stmt_get(c, ST_INSERT_OUTBOX, &st)) != SQLITE_OK) goto fail;
        for (i = 0; i < req->count; i++) {
            sqlite3_bind_int64(st, 1, req->events[i].position);
            if ((src = step_done(st)) != SQLITE_OK) goto fail;
        }
    }
    /* The streams table only lists streams (for streams() and stats): it
     * is written when a stream starts, not on every append, so an append
     * touches one B-tree page fewer. The revision is max(revision) on the
     * unique (stream, revision) index. */
    if (cur == 0) {
        if ((src = sqlite_stmt_get(c, ST_NEW_STREAM, &st)) != SQLITE_OK) goto fail;
        sqlite3_bind_text(st, 1, req->stream, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, req->category, -1, SQLITE_STATIC);
        if ((src = step_done(st)) != SQLITE_OK) goto fail;
    }

    res->revision = cur + n;
    res->position = req->events[req->count - 1].position;
    res->idempotent = 0;
    return ES_OK;
fail:
    return sqlite_fail(c, src, err, "append to '%s'", req->stream);
}

static int sqlite_backend__append(es_conn *conn, es_append_req *req, es_append_result *res, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    int src, rc;
    if (c->readonly)
        return es_err_set(err, ES_EREADONLY, "append to '%s': the store is read-only", req->stream);
    if ((src = exec_slot(c, ST_BEGIN)) != SQLITE_OK)
        return sqlite_fail(c, src, err, "append to '%s'", req->stream);
    rc = append_locked(c, req, res, err);
    if (rc == ES_OK && (src = exec_slot(c, ST_COMMIT)) != SQLITE_OK)
        rc = sqlite_fail(c, src, err, "append to '%s': commit", req->stream);
    if (rc != ES_OK) rollback(c);
    return rc;
}

/* ---- single-row calls ---- */

static int sqlite_backend__revision(es_conn *conn, const char *stream, int64_t *out, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    int src = sqlite_lookup_int64(c, ST_STREAM_REV, stream, out);
    return src == SQLITE_OK ? ES_OK : sqlite_fail(c, src, err, "revision '%s'", stream);
}

static int sqlite_backend__stats(es_conn *conn, es_stats *out, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    sqlite3_stmt *st;
    int src;
    if ((src = sqlite_stmt_get(c, ST_STATS, &st)) != SQLITE_OK) return sqlite_fail(c, src, err, "stats");
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        out->events = sqlite3_column_int64(st, 0);
        out->streams = sqlite3_column_int64(st, 1);
        out->snapshots = sqlite3_column_int64(st, 2);
        out->position = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    return src == SQLITE_ROW ? ES_OK : sqlite_fail(c, src, err, "stats");
}

/* Save and prune run in one transaction, so a reader never sees more than
 * `keep` snapshots of the stream, nor the new one missing. */
static int sqlite_backend__save_snapshot(es_conn *conn, const es_snapshot *snap, int64_t keep, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    sqlite3_stmt *st;
    size_t len = snap->data_len ? snap->data_len : strlen(snap->data);
    int src;

    if (c->readonly)
        return es_err_set(err, ES_EREADONLY, "save_snapshot '%s': the store is read-only", snap->stream);
    if (len > (size_t)INT32_MAX)
        return es_err_set(err, ES_EINVALID, "save_snapshot '%s': data is too large", snap->stream);
    if ((src = exec_slot(c, ST_BEGIN)) != SQLITE_OK)
        return sqlite_fail(c, src, err, "save_snapshot '%s'", snap->stream);
    if ((src = sqlite_stmt_get(c, ST_SNAP_SAVE, &st)) != SQLITE_OK) goto fail;
    sqlite3_bind_text(st, 1, snap->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, snap->revision);
    sqlite3_bind_text(st, 3, snap->fingerprint ? snap->fingerprint : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, snap->version);
    sqlite3_bind_text(st, 5, snap->data, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, snap->timestamp ? snap->timestamp : es_now_ms());
    if ((src = step_done(st)) != SQLITE_OK) goto fail;
    if (keep > 0) {
        if ((src = sqlite_stmt_get(c, ST_SNAP_PRUNE, &st)) != SQLITE_OK) goto fail;
        sqlite3_bind_text(st, 1, snap->stream, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, keep);
        if ((src = step_done(st)) != SQLITE_OK) goto fail;
    }
    if ((src = exec_slot(c, ST_COMMIT)) != SQLITE_OK) goto fail;
    return ES_OK;
fail:
    src = sqlite_fail(c, src, err, "save_snapshot '%s'", snap->stream);
    rollback(c);
    return src;
}

static int sqlite_backend__load_snapshot(es_conn *conn, const char *stream, int64_t max_revision,
                                         const char *fingerprint, es_snapshot *out, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    sqlite3_stmt *st;
    int src, rc = ES_OK;

    memset(out, 0, sizeof *out);
    if ((src = sqlite_stmt_get(c, fingerprint ? ST_SNAP_LOAD_FP : ST_SNAP_LOAD_ANY, &st)) != SQLITE_OK)
        return sqlite_fail(c, src, err, "snapshot '%s'", stream);
    sqlite3_bind_text(st, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, max_revision);
    if (fingerprint) sqlite3_bind_text(st, 3, fingerprint, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        const char *fp = (const char *)sqlite3_column_text(st, 2);
        const char *data = (const char *)sqlite3_column_text(st, 4);
        size_t len = (size_t)sqlite3_column_bytes(st, 4);
        out->revision = sqlite3_column_int64(st, 1);
        out->version = sqlite3_column_int64(st, 3);
        out->timestamp = sqlite3_column_int64(st, 5);
        /* a user snapshot (no fingerprint) is stored and returned as "" */
        if (!s || !fp || !data || !(out->stream = es_strdup(s)) || !(out->data = es_strndup(data, len)) ||
            !(out->fingerprint = es_strdup(fp))) {
            es_snapshot_clear(out);
            rc = es_err_set(err, ES_ENOMEM, "snapshot '%s': out of memory", stream);
        } else {
            out->data_len = len;
        }
    } else if (src == SQLITE_DONE) {
        rc = es_err_set(err, ES_ENOTFOUND, "snapshot '%s': none at or below revision %lld", stream,
                        (long long)max_revision);
    } else {
        rc = sqlite_fail(c, src, err, "snapshot '%s'", stream);
    }
    stmt_done(st);
    return rc;
}

static int sqlite_backend__get_checkpoint(es_conn *conn, const char *name, int64_t *out, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    sqlite3_stmt *st;
    int src;
    *out = 0;
    if ((src = sqlite_stmt_get(c, ST_CP_GET, &st)) != SQLITE_OK) return sqlite_fail(c, src, err, "checkpoint '%s'", name);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    stmt_done(st);
    if (src == SQLITE_DONE) return ES_ENOTFOUND;
    return src == SQLITE_ROW ? ES_OK : sqlite_fail(c, src, err, "checkpoint '%s'", name);
}

static int sqlite_backend__head(es_conn *conn, int64_t *out, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    int src = sqlite_lookup_int64(c, ST_HEAD, NULL, out);
    return src == SQLITE_OK ? ES_OK : sqlite_fail(c, src, err, "head");
}

static int sqlite_backend__set_checkpoint(es_conn *conn, const char *name, int64_t position, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    sqlite3_stmt *st;
    int src;
    if (c->readonly)
        return es_err_set(err, ES_EREADONLY, "checkpoint '%s': the store is read-only", name);
    if ((src = sqlite_stmt_get(c, ST_CP_SET, &st)) != SQLITE_OK)
        return sqlite_fail(c, src, err, "checkpoint '%s'", name);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, position);
    src = step_done(st);
    return src == SQLITE_OK ? ES_OK : sqlite_fail(c, src, err, "checkpoint '%s'", name);
}

/* One DELETE does the work; only when it removed nothing do we look the id
 * up, to tell "already dispatched" (ES_OK) from "no such event". */
static int sqlite_backend__mark_dispatched(es_conn *conn, const char *id, es_err *err) {
    sqlite_conn *c = (sqlite_conn *)conn;
    sqlite3_stmt *st;
    char lid[ES_UUID_LEN + 1];
    es_event row;
    int src, same, found;

    sqlite_lower_id(id, lid);
    if (c->readonly)
        return es_err_set(err, ES_EREADONLY, "mark_dispatched '%s': the store is read-only", lid);
    if ((src = sqlite_stmt_get(c, ST_DISPATCH, &st)) != SQLITE_OK)
        return sqlite_fail(c, src, err, "mark_dispatched '%s'", lid);
    if ((src = sqlite_bind_id(st, lid)) != SQLITE_OK || (src = step_done(st)) != SQLITE_OK)
        return sqlite_fail(c, src, err, "mark_dispatched '%s'", lid);
    if (sqlite3_changes(c->db) > 0) return ES_OK;
    found = id_lookup(c, lid, NULL, &row, &same, "mark_dispatched", err);
    if (found < 0) return found;
    return found ? ES_OK : es_err_set(err, ES_ENOTFOUND, "mark_dispatched '%s': no event with this id", lid);
}

/* ---- open and close ---- */

static void sqlite_backend__close(es_conn *conn) {
    sqlite_conn *c = (sqlite_conn *)conn;
    sqlite_cursor *cur;
    int i;
    if (!c) return;
    /* Cursors still open lose their statement now and report the closed
     * store on their next next(); their close() then touches only itself. */
    for (cur = c->cursors; cur; cur = cur->next) {
        if (cur->st && cur->slot < 0) sqlite3_finalize(cur->st);
        cur->st = NULL;
        cur->conn = NULL;
    }
    for (i = 0; i < ST__COUNT; i++) sqlite3_finalize(c->stmts[i]);
    sqlite3_close_v2(c->db);
    es_free(c);
}

static int valid_prefix(const char *p) {
    size_t i, n = strlen(p);
    if (n == 0 || n > SQLITE_MAX_PREFIX) return 0;
    for (i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || ch == '_' || (i > 0 && ch >= '0' && ch <= '9'))) return 0;
    }
    return 1;
}

/* Runs one PRAGMA (which may answer with a row). */
static int exec_pragma(sqlite_conn *c, const char *sql) {
    sqlite3_stmt *st;
    int src = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (src != SQLITE_OK) return src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {}
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? SQLITE_OK : src;
}

static int journal_is_wal(sqlite_conn *c) {
    sqlite3_stmt *st;
    int wal = 0;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK) return 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(st, 0);
        wal = m && strcmp((const char *)m, "wal") == 0;
    }
    sqlite3_finalize(st);
    return wal;
}

/* WAL is a property of the file: it is set only when it is not yet. Two
 * processes creating a store at once may both find it not yet WAL; the one
 * that loses then waits for an exclusive lock that the winner's open
 * connection never gives up, so it waits in short steps and looks again:
 * once the file is WAL there is nothing left to do. */
static int ensure_wal(sqlite_conn *c) {
    const int step_ms = 20;
    int waited = 0, src;
    sqlite3_busy_timeout(c->db, step_ms);
    for (;;) {
        if (journal_is_wal(c)) {
            src = SQLITE_OK;
            break;
        }
        src = exec_pragma(c, "PRAGMA journal_mode = WAL");
        if ((src & 0xff) != SQLITE_BUSY && (src & 0xff) != SQLITE_LOCKED) break;
        if ((waited += step_ms) >= c->busy_timeout_ms) break;
    }
    sqlite3_busy_timeout(c->db, c->busy_timeout_ms > 0 ? c->busy_timeout_ms : 0);
    return src;
}

/* 1 when sql, given ?1 = <prefix><suffix> and ?2 = what, returns a row,
 * 0 when not, or a negative SQLite code. */
static int found_by(sqlite_conn *c, const char *sql, const char *suffix, const char *what) {
    char name[SQLITE_MAX_PREFIX + 32];
    sqlite3_stmt *st;
    int src, found;
    snprintf(name, sizeof name, "%s%s", c->prefix, suffix);
    src = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (src != SQLITE_OK) return -src;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, what, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    found = src == SQLITE_ROW;
    sqlite3_finalize(st);
    return (src == SQLITE_ROW || src == SQLITE_DONE) ? found : -src;
}

/* The table or index <prefix><suffix>: as found_by. */
static int object_present(sqlite_conn *c, const char *type, const char *suffix) {
    return found_by(c, "SELECT 1 FROM sqlite_master WHERE type = ?2 AND name = ?1", suffix, type);
}

/* Creates the tables in one write transaction, so two processes opening a
 * new file at once both see either no schema or all of it. An existing
 * store is only read here: opening must not wait for the write lock that
 * busy writers keep taking. */
static int create_schema(sqlite_conn *c) {
    es_buf b = { NULL, 0, 0 };
    /* the outbox table is the last one the schema creates */
    int src = object_present(c, "table", "outbox");
    if (src < 0) return -src;
    if (src == 1) return SQLITE_OK;
    if (sqlite_sql_schema(c, &b) != ES_OK) {
        es_buf_free(&b);
        return SQLITE_NOMEM;
    }
    /* on failure the transaction stays open for the caller to read the
     * error first; closing the handle then rolls it back */
    src = sqlite3_exec(c->db, b.data, NULL, NULL, NULL);
    es_buf_free(&b);
    return src;
}

/* Opens name into c->db (which c owns from here even when this fails:
 * sqlite3_open_v2 allocates a handle either way). */
static int open_db(sqlite_conn *c, const char *name, int flags) {
    int src = sqlite3_open_v2(name, &c->db, flags | SQLITE_OPEN_NOMUTEX, sqlite_wal_vfs());
    if (!c->db) return SQLITE_NOMEM;
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, c->busy_timeout_ms > 0 ? c->busy_timeout_ms : 0);
    return src;
}

/* A WAL file in a folder we may not write cannot be read normally: SQLite
 * must create the -shm file beside it. No connection has the file open then
 * (an open one keeps its -shm), so we read it as immutable, as it is now. */
static int open_immutable(sqlite_conn *c, const char *path) {
    es_buf b = { NULL, 0, 0 };
    int src = SQLITE_NOMEM;
    if (es_buf_add(&b, "file:", 5) != ES_OK) goto out;
    for (; *path; path++) {
        char esc[4];
        int k = (*path == '%' || *path == '?' || *path == '#')
                    ? snprintf(esc, sizeof esc, "%%%02x", (unsigned)(unsigned char)*path) : 0;
        if (es_buf_add(&b, k ? esc : path, k ? 3 : 1) != ES_OK) goto out;
    }
    if (es_buf_add(&b, "?immutable=1", 12) != ES_OK) goto out;
    sqlite3_close_v2(c->db);
    c->db = NULL;
    src = open_db(c, b.data, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
out:
    es_buf_free(&b);
    return src;
}

/* "sqlite:PATH", "sqlite://PATH" or "sqlite::memory:". */
static int sqlite_backend__open(const char *uri, const es_options *opt, es_conn **out, es_err *err) {
    sqlite_conn *c = NULL;
    const char *path = strchr(uri, ':');
    const char *prefix = opt->prefix ? opt->prefix : "es_", *step = "";
    int memory, src, rc;

    *out = NULL;
    path = path ? path + 1 : uri;
    if (strncmp(path, "//", 2) == 0) path += 2;
    if (!*path)
        return es_err_set(err, ES_EINVALID, "open '%s': no database path (use sqlite:PATH or sqlite::memory:)",
                          uri);
    if (!valid_prefix(prefix))
        return es_err_set(err, ES_EINVALID,
                          "open '%s': table prefix '%.80s' must match [a-z_][a-z0-9_]* and be at most %d bytes",
                          uri, prefix, SQLITE_MAX_PREFIX);
    memory = strcmp(path, ":memory:") == 0;

    if (!(c = es_malloc(sizeof *c))) return es_err_set(err, ES_ENOMEM, "open '%s': out of memory", uri);
    memset(c, 0, sizeof *c);
    c->base.be = &es_sqlite_backend;
    c->busy_timeout_ms = opt->busy_timeout_ms;
    memcpy(c->prefix, prefix, strlen(prefix) + 1);

    if ((src = open_db(c, path, opt->readonly ? SQLITE_OPEN_READONLY
                                              : SQLITE_OPEN_READWRITE | (opt->create ? SQLITE_OPEN_CREATE : 0))))
        goto fail;
    /* A file the process may not write opens read-only even when asked for
     * read-write: treat it as a read-only store rather than fail on use. */
    c->readonly = opt->readonly || sqlite3_db_readonly(c->db, "main") == 1;
    if (c->readonly && !memory && (src = exec_pragma(c, "PRAGMA schema_version")) != SQLITE_OK &&
        /* a read-only mount answers CANTOPEN (no -shm can be made), a
         * read-only file READONLY: both read the file as it is */
        (((src & 0xff) != SQLITE_READONLY && (src & 0xff) != SQLITE_CANTOPEN) ||
         (src = open_immutable(c, path)) != SQLITE_OK))
        goto fail;
    step = ": journal_mode";
    if (!c->readonly && !memory && (src = ensure_wal(c)) != SQLITE_OK) goto fail;
    step = ": synchronous";
    if ((src = exec_pragma(c, opt->synchronous_full ? "PRAGMA synchronous = FULL"
                                                    : "PRAGMA synchronous = NORMAL")) != SQLITE_OK)
        goto fail;
    /* An append writes a WAL frame per B-tree page it touches (the events,
     * their ids, the (stream, revision) and category indexes; the streams
     * table for a new stream). Checkpointing every 10,000 frames instead of
     * 1,000 lets repeated frames of the same hot pages collapse into one
     * write-back and cuts the checkpoints' fsyncs tenfold; the WAL file is
     * truncated back to 64 MB after a checkpoint.
     * The page cache is 8 MB when the database file and the WAL are read
     * through memory maps (mmap_size > 0, see sqlite_wal.c): a page that
     * left the cache comes back with a memcpy, while every page a cache
     * holds is fresh memory the process first faults in (8-14 us per 4 KB
     * page on a VM). 32 MB made a 100-event append 10-12% slower and reads
     * no faster. Without the maps, 32 MB keeps a large store's index pages
     * out of pread. */
    step = ": tuning";
    if (!c->readonly && !memory &&
        ((src = exec_pragma(c, "PRAGMA wal_autocheckpoint = 10000")) != SQLITE_OK ||
         (src = exec_pragma(c, "PRAGMA journal_size_limit = 67108864")) != SQLITE_OK))
        goto fail;
    if ((src = exec_pragma(c, opt->sqlite_mmap_size > 0 ? "PRAGMA cache_size = -8192"
                                                        : "PRAGMA cache_size = -32768")) != SQLITE_OK)
        goto fail;
    /* Reads through a memory map skip a copy per page (about 20% on reads
     * and state()). SQLite documents that an I/O error on a mapped file may
     * crash the process instead of failing the call: mmap_size = 0 turns
     * it off for stores on unreliable media. */
    if (opt->sqlite_mmap_size > 0) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA mmap_size = %lld", (long long)opt->sqlite_mmap_size);
        if ((src = exec_pragma(c, pragma)) != SQLITE_OK) goto fail;
    }
    step = ": create schema";
    if (opt->create && !c->readonly && (src = create_schema(c)) != SQLITE_OK) goto fail;
    if ((src = object_present(c, "index", "events_timestamp")) < 0) {
        src = -src;
        goto fail;
    }
    c->ts_index = src;
    if ((src = found_by(c, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", "events", "own_id")) < 0) {
        src = -src;
        goto fail;
    }
    c->own_id = src;
    src = SQLITE_OK;
    *out = &c->base;
    return ES_OK;
fail:
    rc = sqlite_fail(c, src, err, "open '%s'%s", uri, step);
    sqlite_backend__close(&c->base);
    return rc;
}

/* Designated initializers: slots added by later versions stay NULL. */
const es_backend es_sqlite_backend = {
    .version = ES_BACKEND_VERSION,
    .scheme = "sqlite",
    /* version 1 */
    .open = sqlite_backend__open,
    .close = sqlite_backend__close,
    .append = sqlite_backend__append,
    .read = sqlite_backend__read,
    .revision = sqlite_backend__revision,
    .stats = sqlite_backend__stats,
    .save_snapshot = sqlite_backend__save_snapshot,
    .load_snapshot = sqlite_backend__load_snapshot,
    .get_checkpoint = sqlite_backend__get_checkpoint,
    .set_checkpoint = sqlite_backend__set_checkpoint,
    .mark_dispatched = sqlite_backend__mark_dispatched,
    .head = sqlite_backend__head,
    /* .wait stays NULL: store.c polls, which is what SQLite offers across
     * processes (no notifications) */
    /* version 1 ends here */
};
