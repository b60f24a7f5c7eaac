/* state.c: a stream's or a context's state from snapshots and folded events */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "es_internal.h"
#include "reduce.h"

int es_reducer_fold_cursor(const es_reducer *r, json_t *state, es_cursor *cur,
                           const json_t *where, es_custom_fn fn, void *ud, int64_t *count,
                           int64_t *last_revision, int64_t *last_position, es_err *err) {
    const es_event *ev;
    int64_t n = 0;
    int rc;

    while ((rc = es_cursor_next(cur, &ev, err)) == 1) {
        json_t *data = NULL;
        if (where && json_object_size(where) > 0) {
            /* decoded once here and handed to the fold, which would decode again */
            data = ev->data && ev->data_len ? es_json_decode(ev->data, ev->data_len, err) : json_object();
            if (!data) {
                rc = es_err_set(err, ES_EINVALID, "state: cannot decode the data of event '%s' at '%s' revision %lld",
                                ev->type, ev->stream, (long long)ev->revision);
                break;
            }
            if (!es_reducer_where_ok(where, data)) {
                json_decref(data);
                continue;
            }
        }
        rc = es_reducer_fold_event(r, state, ev, data, fn, ud, err);
        json_decref(data);
        if (rc != ES_OK) break;
        n++;
        if (last_revision) *last_revision = ev->revision;
        if (last_position) *last_position = ev->position;
    }
    if (count) *count = n;
    return rc < 0 ? rc : ES_OK;
}

/* A fresh state: a deep copy of initial (folding changes the state in
 * place, and initial belongs to the caller), or {}. */
static json_t *initial_state(const json_t *initial, es_err *err) {
    json_t *st;
    if (initial && !json_is_object(initial)) {
        es_err_set(err, ES_EINVALID, "state: the initial state must be an object");
        return NULL;
    }
    st = initial ? json_deep_copy(initial) : json_object();
    if (!st) es_err_set(err, ES_ENOMEM, "state: out of memory");
    return st;
}

/* The newest usable snapshot's state and revision; *state stays NULL when
 * there is none. A snapshot whose text is not an object is skipped: the
 * events it summarizes are still there to fold. */
static int load_snapshot(es_store *s, const char *stream, const char *fp, json_t **state,
                         int64_t *revision, es_err *err) {
    es_snapshot snap;
    int rc;
    *state = NULL;
    *revision = 0;
    rc = es_store_load_snapshot(s, stream, INT64_MAX, fp, &snap, err);
    if (rc == ES_ENOTFOUND || rc == ES_ENOTSUP) {
        es_err_clear(err);
        return ES_OK;
    }
    if (rc != ES_OK) return rc;
    if (snap.data) *state = es_json_decode(snap.data, snap.data_len, NULL);
    if (*state && !json_is_object(*state)) {
        json_decref(*state);
        *state = NULL;
    }
    if (*state) *revision = snap.revision;
    es_snapshot_clear(&snap);
    return ES_OK;
}

static int save_snapshot(es_store *s, const char *stream, const es_reducer *r, const char *fp,
                         const json_t *state, int64_t revision, es_err *err) {
    es_snapshot snap;
    es_err e;
    int rc;
    memset(&snap, 0, sizeof snap);
    if (!(snap.data = es_json_encode(state, &snap.data_len, err))) return err ? err->code : ES_ENOMEM;
    snap.stream = (char *)stream;
    snap.revision = revision;
    snap.version = es_reducer_user_version(r);
    snap.fingerprint = (char *)fp;
    snap.timestamp = es_now_ms();
    es_err_clear(&e);
    rc = es_store_save_snapshot(s, &snap, &e);
    es_free(snap.data);
    /* the state is right without the snapshot: only a real failure of the
     * store is worth reporting */
    if (rc == ES_EREADONLY || rc == ES_ENOTSUP || rc == ES_EBUSY || rc == ES_ECONFLICT) return ES_OK;
    if (rc != ES_OK && err) *err = e;
    return rc;
}

int es_store_state(es_store *s, const char *stream, const es_reducer *r, const json_t *initial,
                   es_custom_fn fn, void *ud, json_t **state_out, int64_t *revision_out,
                   es_err *err) {
    char fp[17];
    json_t *state = NULL;
    int64_t snap_rev, rev, count = 0, every = es_store_options(s)->snapshot_every;
    es_query q;
    es_cursor *cur = NULL;
    int rc;

    *state_out = NULL;
    *revision_out = 0;
    if (initial && !json_is_object(initial))
        return es_err_set(err, ES_EINVALID, "state '%s': the initial state must be an object",
                          stream ? stream : "");
    if ((rc = es_reducer_state_fingerprint(r, initial, fp, err)) != ES_OK) return rc;
    if ((rc = load_snapshot(s, stream, fp, &state, &snap_rev, err)) != ES_OK) return rc;
    if (!state && !(state = initial_state(initial, err))) return err ? err->code : ES_ENOMEM;
    rev = snap_rev;

    es_query_init(&q, ES_Q_STREAM);
    q.stream = stream;
    q.from = snap_rev + 1;
    if ((rc = es_store_read(s, &q, &cur, err)) != ES_OK) goto fail;
    rc = es_reducer_fold_cursor(r, state, cur, NULL, fn, ud, &count, &rev, NULL, err);
    es_cursor_close(cur);
    if (rc != ES_OK) goto fail;
    if (every > 0 && count >= every &&
        (rc = save_snapshot(s, stream, r, fp, state, rev, err)) != ES_OK)
        goto fail;
    *state_out = state;
    *revision_out = rev;
    return ES_OK;
fail:
    json_decref(state);
    return rc;
}

int es_store_state_query(es_store *s, const char *category, const json_t *where,
                         const es_reducer *r, const json_t *initial, es_custom_fn fn, void *ud,
                         json_t **state_out, int64_t *position_out, es_err *err) {
    json_t *state;
    int64_t pos = 0;
    es_query q;
    es_cursor *cur = NULL;
    int rc;

    *state_out = NULL;
    *position_out = 0;
    if (where && !json_is_object(where))
        return es_err_set(err, ES_EINVALID, "state: 'where' must be an object");
    if (!(state = initial_state(initial, err))) return err ? err->code : ES_ENOMEM;
    es_query_init(&q, ES_Q_ALL);
    q.category = category;
    if ((rc = es_store_read(s, &q, &cur, err)) != ES_OK) goto fail;
    rc = es_reducer_fold_cursor(r, state, cur, where, fn, ud, NULL, NULL, &pos, err);
    es_cursor_close(cur);
    if (rc != ES_OK) goto fail;
    *state_out = state;
    *position_out = pos;
    return ES_OK;
fail:
    json_decref(state);
    return rc;
}
