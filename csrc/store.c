/* store.c: the store handle: open/close, argument checks, expected-revision rules, appends */
/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "es_internal.h"

struct es_store {
    es_conn *conn;
    es_options opt;
    /* Owned copies of option strings, so opt never points to caller memory. */
    char *schema, *prefix;
    /* The last append's events: es_append_result.events points here until
     * the next call, so the caller can publish what was committed. */
    es_event *last;
    unsigned char *generated;  /* per event of last: 1 where the id was generated */
    size_t last_cap;
    es_buf arena;              /* texts of the last append's events */
    /* The lower-cased id of the last ES_Q_ID query: cursors borrow query
     * strings for their whole life, so it cannot live on the stack. */
    char qid[ES_UUID_LEN + 1];
};

void es_options_init(es_options *o) {
    memset(o, 0, sizeof *o);
    o->synchronous_full = 1;
    o->busy_timeout_ms = 5000;
    o->sqlite_mmap_size = 256 * 1024 * 1024;
    o->create = 1;
}

void es_query_init(es_query *q, es_query_kind kind) {
    memset(q, 0, sizeof *q);
    q->kind = kind;
    q->from = 1;
    q->to = INT64_MAX;
    q->since = INT64_MIN;
}

void es_snapshot_clear(es_snapshot *s) {
    if (!s) return;
    es_free(s->stream);
    es_free(s->fingerprint);
    es_free(s->data);
    memset(s, 0, sizeof *s);
}

int es_backend_check(const es_backend *be, es_err *err) {
    if (!be || be->version == 0 || be->version > ES_BACKEND_VERSION)
        return es_err_set(err, ES_EINVALID, "backend '%s': unsupported interface version %u",
                          be && be->scheme ? be->scheme : "?", be ? be->version : 0);
    if (!be->scheme || !be->open || !be->close || !be->append || !be->read || !be->revision ||
        !be->stats)
        return es_err_set(err, ES_EINVALID, "backend '%s': a required slot is missing",
                          be->scheme ? be->scheme : "?");
    return ES_OK;
}

int es_store_open(const char *url, const es_options *opt, es_store **out, es_err *err) {
    const char *colon;
    const es_backend *be;
    es_store *s = NULL;
    int rc;

    *out = NULL;
    if (!url || !*url) return es_err_set(err, ES_EINVALID, "open: empty URL");
    colon = strchr(url, ':');
    if (!colon) return es_err_set(err, ES_EINVALID, "open: URL has no scheme (expected memory:, sqlite:PATH or postgres://...)");
    be = es_backend_find(url, (size_t)(colon - url));
    if (!be)
        return es_err_set(err, ES_EINVALID, "open: unknown scheme '%.*s'", (int)(colon - url), url);
    if ((rc = es_backend_check(be, err)) != ES_OK) return rc;

    s = es_malloc(sizeof *s);
    if (!s) return es_err_set(err, ES_ENOMEM, "open: out of memory");
    memset(s, 0, sizeof *s);
    if (opt) s->opt = *opt; else es_options_init(&s->opt);
    if (s->opt.snapshot_every < 0 || s->opt.max_snapshots < 0) {
        rc = es_err_set(err, ES_EINVALID, "open: snapshot_every and max_snapshots must be >= 0");
        goto fail;
    }
    if (s->opt.schema && !(s->schema = es_strdup(s->opt.schema))) goto nomem;
    if (s->opt.prefix && !(s->prefix = es_strdup(s->opt.prefix))) goto nomem;
    s->opt.schema = s->schema;
    s->opt.prefix = s->prefix;
    if ((rc = be->open(url, &s->opt, &s->conn, err)) != ES_OK) goto fail;
    /* The store, not each backend, ties a connection to its vtable. */
    s->conn->be = be;
    *out = s;
    return ES_OK;
nomem:
    rc = es_err_set(err, ES_ENOMEM, "open: out of memory");
fail:
    es_store_close(s);
    return rc;
}

void es_store_close(es_store *s) {
    if (!s) return;
    if (s->conn) s->conn->be->close(s->conn);
    es_free(s->schema);
    es_free(s->prefix);
    es_free(s->last);
    es_free(s->generated);
    es_buf_free(&s->arena);
    es_free(s);
}

const char *es_store_backend_name(const es_store *s) { return s->conn->be->scheme; }
const es_options *es_store_options(const es_store *s) { return &s->opt; }

static int check_stream(const char *op, const char *stream, es_err *err) {
    size_t n;
    if (!stream) return es_err_set(err, ES_EINVALID, "%s: stream name is missing", op);
    n = strlen(stream);
    if (n == 0) return es_err_set(err, ES_EINVALID, "%s: stream name is empty", op);
    if (n > ES_MAX_STREAM_LEN)
        return es_err_set(err, ES_EINVALID, "%s: stream name is %zu bytes, the limit is %d", op, n,
                          ES_MAX_STREAM_LEN);
    if (!es_valid_utf8(stream, n))
        return es_err_set(err, ES_EINVALID, "%s: stream name is not valid UTF-8", op);
    return ES_OK;
}

int es_expected_check(const es_append_req *req, int64_t cur, es_err *err) {
    int ok = req->expected == ES_ANY || (req->expected == ES_STREAM_EXISTS && cur > 0) ||
             (req->expected >= 0 && cur == req->expected);
    if (ok) return ES_OK;
    if (req->expected == ES_STREAM_EXISTS)
        es_err_set(err, ES_ECONFLICT, "append to '%s': expected an existing stream, there is none", req->stream);
    else if (req->expected == ES_NO_STREAM)
        es_err_set(err, ES_ECONFLICT, "append to '%s': expected no stream, stream is at %lld", req->stream,
                   (long long)cur);
    else
        es_err_set(err, ES_ECONFLICT, "append to '%s': expected revision %lld, stream is at %lld", req->stream,
                   (long long)req->expected, (long long)cur);
    if (err) {
        err->expected = req->expected;
        err->actual = cur;
    }
    return ES_ECONFLICT;
}

/* A given data/metadata text: an object's, as far as its ends show. */
static int check_text(const char *what, size_t i, const char *json, size_t json_len, es_err *err) {
    if (!json || json_len < 2 || json[0] != '{' || json[json_len - 1] != '}')
        return es_err_set(err, ES_EINVALID, "append: event %zu: %s must be a JSON object", i + 1, what);
    return ES_OK;
}

/* Encodes a data/metadata value (or takes its given text); NULL means {}. */
static int encode_object(const char *what, size_t i, const json_t *v, const char *json, size_t json_len,
                         es_buf *arena, size_t *off, size_t *len, es_err *err) {
    char *text;
    size_t n;
    int rc;
    if (json) {
        if ((rc = check_text(what, i, json, json_len, err)) != ES_OK) return rc;
        *off = arena->len;
        *len = json_len;
        if (es_buf_add(arena, json, json_len) != ES_OK || es_buf_add(arena, "", 1) != ES_OK)
            return es_err_set(err, ES_ENOMEM, "append: out of memory");
        return ES_OK;
    }
    if (!v) {
        *off = arena->len;
        *len = 2;
        return es_buf_add(arena, "{}", 3) == ES_OK ? ES_OK
               : es_err_set(err, ES_ENOMEM, "append: out of memory");
    }
    if (!json_is_object(v))
        return es_err_set(err, ES_EINVALID, "append: event %zu: %s must be an object", i + 1, what);
    if (!(text = es_json_encode(v, &n, err))) return err ? err->code : ES_EINVALID;
    *off = arena->len;
    *len = n;
    rc = es_buf_add(arena, text, n + 1);
    es_free(text);
    return rc == ES_OK ? ES_OK : es_err_set(err, ES_ENOMEM, "append: out of memory");
}

/* Arena offsets of one event's texts; turned into pointers once the arena
 * stops moving. */
typedef struct ev_offs { size_t id, type, data, meta; } ev_offs;

/* ids are stored lower-case so the unique key sees one spelling. */
static void lower_uuid(const char *in, char out[ES_UUID_LEN + 1]) {
    size_t k;
    for (k = 0; k <= ES_UUID_LEN; k++) {
        char c = in[k];
        out[k] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
}


/* One event of either input form, seen the same way by the append. */
#define EV_ID(i)   (evs ? evs[i].id : txt[i].id)
#define EV_TYPE(i) (evs ? evs[i].type : txt[i].type)

static int do_append(es_store *s, const char *stream, const es_event_in *evs, const es_event_text *txt,
                     const es_data_ix *ix, size_t n, int64_t expected, es_append_result *res, es_err *err) {
    es_append_req req;
    es_append_result r;
    ev_offs *offs = NULL;
    int borrow = ix != NULL;      /* es_store_append_text_ix: the texts are the caller's */
    size_t i, j, catlen, stream_off, cat_off;
    int64_t now;
    int rc;

    memset(&r, 0, sizeof r);
    if ((rc = check_stream("append", stream, err)) != ES_OK) return rc;
    if (n == 0) return es_err_set(err, ES_EINVALID, "append to '%s': no events", stream);
    if (expected < ES_STREAM_EXISTS)
        return es_err_set(err, ES_EINVALID, "append to '%s': invalid expected revision %lld", stream,
                          (long long)expected);
    if (s->opt.readonly)
        return es_err_set(err, ES_EREADONLY, "append to '%s': the store is read-only", stream);
    memset(&req, 0, sizeof req);
    for (i = 0; i < n; i++) {
        const char *t = EV_TYPE(i);
        size_t tl;
        if (!t || !*t)
            return es_err_set(err, ES_EINVALID, "append to '%s': event %zu has no type", stream, i + 1);
        tl = strlen(t);
        /* the Lua binding checked its types as it read them */
        if (!borrow && (tl > ES_MAX_TYPE_LEN || !es_valid_utf8(t, tl)))
            return es_err_set(err, ES_EINVALID,
                              "append to '%s': event %zu: type must be valid UTF-8 of at most %d bytes",
                              stream, i + 1, ES_MAX_TYPE_LEN);
        if (EV_ID(i)) {
            if (!es_valid_uuid(EV_ID(i)))
                return es_err_set(err, ES_EINVALID, "append to '%s': event %zu: id is not a UUID",
                                  stream, i + 1);
            for (j = 0; j < i; j++)
                if (EV_ID(j) && strcasecmp(EV_ID(j), EV_ID(i)) == 0)
                    return es_err_set(err, ES_EINVALID,
                                      "append to '%s': events %zu and %zu have the same id", stream,
                                      j + 1, i + 1);
            req.ids_given = 1;
        }
    }
    if (n > SIZE_MAX / sizeof *offs || n > SIZE_MAX / sizeof *s->last)
        return es_err_set(err, ES_ENOMEM, "append: too many events");
    if (n > s->last_cap) {
        es_event *p = es_realloc(s->last, n * sizeof *p);
        unsigned char *g;
        if (!p) return es_err_set(err, ES_ENOMEM, "append: out of memory");
        s->last = p;
        if (!(g = es_realloc(s->generated, n))) return es_err_set(err, ES_ENOMEM, "append: out of memory");
        s->generated = g;
        s->last_cap = n;
    }
    if (!(offs = es_malloc(n * sizeof *offs))) return es_err_set(err, ES_ENOMEM, "append: out of memory");

    /* Everything goes into one arena first; pointers are taken after the
     * last es_buf_add because the arena may move while it grows. */
    s->arena.len = 0;
    stream_off = s->arena.len;
    if (es_buf_add(&s->arena, stream, strlen(stream) + 1) != ES_OK) goto nomem;
    es_category(stream, &catlen);
    cat_off = s->arena.len;
    if (es_buf_add(&s->arena, stream, catlen) != ES_OK || es_buf_add(&s->arena, "", 1) != ES_OK)
        goto nomem;
    for (i = 0; i < n; i++) {
        char idbuf[ES_UUID_LEN + 1];
        if (EV_ID(i)) {
            /* ids are stored lower-case so the unique key sees one spelling */
            lower_uuid(EV_ID(i), idbuf);
        } else {
            es_uuid_v7(idbuf);
        }
        s->generated[i] = !EV_ID(i);
        offs[i].id = s->arena.len;
        if (es_buf_add(&s->arena, idbuf, ES_UUID_LEN + 1) != ES_OK) goto nomem;
        offs[i].type = s->arena.len;
        if (es_buf_add(&s->arena, EV_TYPE(i), strlen(EV_TYPE(i)) + 1) != ES_OK) goto nomem;
        if (borrow) {
            /* the Lua binding's texts: checked, and borrowed for the call
             * (NULL is {}, as for es_store_append_text) */
            es_event *e = &s->last[i];
            e->data = txt[i].data ? txt[i].data : "{}";
            e->data_len = txt[i].data ? txt[i].data_len : 2;
            e->metadata = txt[i].metadata ? txt[i].metadata : "{}";
            e->metadata_len = txt[i].metadata ? txt[i].metadata_len : 2;
            if ((rc = check_text("data", i, e->data, e->data_len, err)) != ES_OK ||
                (rc = check_text("metadata", i, e->metadata, e->metadata_len, err)) != ES_OK)
                goto fail;
            continue;
        }
        if ((rc = encode_object("data", i, evs ? evs[i].data : NULL, evs ? NULL : txt[i].data,
                                evs ? 0 : txt[i].data_len, &s->arena, &offs[i].data,
                                &s->last[i].data_len, err)) != ES_OK)
            goto fail;
        if ((rc = encode_object("metadata", i, evs ? evs[i].metadata : NULL, evs ? NULL : txt[i].metadata,
                                evs ? 0 : txt[i].metadata_len, &s->arena, &offs[i].meta,
                                &s->last[i].metadata_len, err)) != ES_OK)
            goto fail;
    }
    now = es_now_ms();
    for (i = 0; i < n; i++) {
        es_event *e = &s->last[i];
        e->id = s->arena.data + offs[i].id;
        e->stream = s->arena.data + stream_off;
        e->type = s->arena.data + offs[i].type;
        if (!borrow) {
            e->data = s->arena.data + offs[i].data;
            e->metadata = s->arena.data + offs[i].meta;
        }
        e->timestamp = now;
        e->revision = e->position = 0;
        /* the caller's index records, for the backend to copy during the call */
        e->data_ix = ix && ix->ok ? ix : NULL;
        if (ix) ix = es_data_ix_next(ix);
    }
    es_free(offs);
    offs = NULL;

    req.stream = s->arena.data + stream_off;
    req.category = s->arena.data + cat_off;
    req.expected = expected;
    req.count = n;
    req.events = s->last;
    req.outbox = s->opt.outbox;
    req.generated = s->generated;
    if (err) err->expected = err->actual = 0;
    rc = s->conn->be->append(s->conn, &req, &r, err);
    for (i = 0; i < n; i++) s->last[i].data_ix = NULL; /* the caller's, and gone after the call */
    if (rc != ES_OK) return rc;
    r.count = n;
    r.events = s->last;
    if (res) *res = r;
    return ES_OK;
nomem:
    rc = es_err_set(err, ES_ENOMEM, "append to '%s': out of memory", stream);
fail:
    es_free(offs);
    return rc;
}

int es_store_append(es_store *s, const char *stream, const es_event_in *evs, size_t n,
                    int64_t expected, es_append_result *res, es_err *err) {
    if (n && !evs) return es_err_set(err, ES_EINVALID, "append: no events");
    return do_append(s, stream, evs, NULL, NULL, n, expected, res, err);
}

int es_store_append_text(es_store *s, const char *stream, const es_event_text *evs, size_t n,
                         int64_t expected, es_append_result *res, es_err *err) {
    return es_store_append_text_ix(s, stream, evs, n, NULL, expected, res, err);
}

int es_store_append_text_ix(es_store *s, const char *stream, const es_event_text *evs, size_t n,
                            const es_data_ix *ix, int64_t expected, es_append_result *res, es_err *err) {
    if (n && !evs) return es_err_set(err, ES_EINVALID, "append: no events");
    return do_append(s, stream, NULL, evs, ix, n, expected, res, err);
}

int es_store_read(es_store *s, const es_query *q, es_cursor **out, es_err *err) {
    es_query lq;
    int rc;
    size_t i;
    *out = NULL;
    switch (q->kind) {
    case ES_Q_STREAM:
        if ((rc = check_stream("read", q->stream, err)) != ES_OK) return rc;
        break;
    case ES_Q_ID:
        if (!q->id || !es_valid_uuid(q->id))
            return es_err_set(err, ES_EINVALID, "read: id is not a UUID");
        lower_uuid(q->id, s->qid);
        lq = *q;
        lq.id = s->qid;
        return s->conn->be->read(s->conn, &lq, out, err);
    case ES_Q_ALL:
    case ES_Q_STREAMS:
    case ES_Q_UNDISPATCHED:
        break;
    default:
        return es_err_set(err, ES_EINVALID, "read: unknown query kind %d", (int)q->kind);
    }
    if (q->ntypes && !q->types) return es_err_set(err, ES_EINVALID, "read: types list is missing");
    for (i = 0; i < q->ntypes; i++)
        if (!q->types[i]) return es_err_set(err, ES_EINVALID, "read: type %zu is missing", i + 1);
    return s->conn->be->read(s->conn, q, out, err);
}

int es_cursor_next(es_cursor *cur, const es_event **ev, es_err *err) { return cur->next(cur, ev, err); }

void es_cursor_close(es_cursor *cur) {
    if (cur) cur->close(cur);
}

int es_query_shape(const es_query *q) {
    int variant = 0;
    switch (q->kind) {
    case ES_Q_STREAM: return q->backward ? ES_QS_READ_BWD : ES_QS_READ_FWD;
    case ES_Q_ID: return ES_QS_BY_ID;
    case ES_Q_STREAMS: return q->category ? ES_QS_STREAMS_CAT : ES_QS_STREAMS;
    case ES_Q_UNDISPATCHED: return q->category ? ES_QS_OUTBOX_CAT : ES_QS_OUTBOX;
    case ES_Q_ALL:
        if (q->category) variant |= ES_QS_ALL_CATEGORY;
        if (q->since != INT64_MIN) variant |= ES_QS_ALL_SINCE;
        if (q->types && q->ntypes > 0) variant |= ES_QS_ALL_TYPES;
        return ES_QS_ALL + variant;
    default:
        return -1;
    }
}

int es_query_type_ok(const es_query *q, const char *type) {
    size_t i;
    if (!q->types || q->ntypes == 0) return 1;
    for (i = 0; i < q->ntypes; i++)
        if (strcmp(q->types[i], type) == 0) return 1;
    return 0;
}

int es_store_revision(es_store *s, const char *stream, int64_t *out, es_err *err) {
    int rc;
    *out = 0;
    if ((rc = check_stream("revision", stream, err)) != ES_OK) return rc;
    return s->conn->be->revision(s->conn, stream, out, err);
}

int es_store_stats(es_store *s, es_stats *out, es_err *err) {
    memset(out, 0, sizeof *out);
    out->backend = s->conn->be->scheme;
    return s->conn->be->stats(s->conn, out, err);
}

int es_store_save_snapshot(es_store *s, const es_snapshot *snap, es_err *err) {
    int rc;
    if ((rc = check_stream("save_snapshot", snap->stream, err)) != ES_OK) return rc;
    if (snap->revision < 0)
        return es_err_set(err, ES_EINVALID, "save_snapshot '%s': revision must be >= 0", snap->stream);
    if (!snap->data) return es_err_set(err, ES_EINVALID, "save_snapshot '%s': no data", snap->stream);
    if (s->opt.readonly)
        return es_err_set(err, ES_EREADONLY, "save_snapshot '%s': the store is read-only", snap->stream);
    if (!s->conn->be->save_snapshot)
        return es_err_set(err, ES_ENOTSUP, "save_snapshot: not supported by the %s backend",
                          s->conn->be->scheme);
    return s->conn->be->save_snapshot(s->conn, snap, s->opt.max_snapshots, err);
}

int es_store_load_snapshot(es_store *s, const char *stream, int64_t max_revision,
                           const char *fingerprint, es_snapshot *out, es_err *err) {
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = check_stream("snapshot", stream, err)) != ES_OK) return rc;
    if (!s->conn->be->load_snapshot)
        return es_err_set(err, ES_ENOTSUP, "snapshot: not supported by the %s backend",
                          s->conn->be->scheme);
    return s->conn->be->load_snapshot(s->conn, stream, max_revision, fingerprint, out, err);
}

int es_store_has_read_state(const es_store *s) {
    return s->conn->be->version >= 2 && s->conn->be->read_state != NULL;
}

int es_store_read_state(es_store *s, const char *stream, const char *fingerprint, es_snapshot *snap,
                        es_cursor **out, es_err *err) {
    int rc;
    const es_backend *be = s->conn->be;
    memset(snap, 0, sizeof *snap);
    *out = NULL;
    if ((rc = check_stream("state", stream, err)) != ES_OK) return rc;
    if (!es_store_has_read_state(s))
        return es_err_set(err, ES_ENOTSUP, "state: no combined read on the %s backend", be->scheme);
    return be->read_state(s->conn, stream, fingerprint, snap, out, err);
}

static int check_name(const char *op, const char *name, es_err *err) {
    size_t n;
    if (!name || !(n = strlen(name))) return es_err_set(err, ES_EINVALID, "%s: name is empty", op);
    if (n > ES_MAX_STREAM_LEN || !es_valid_utf8(name, n))
        return es_err_set(err, ES_EINVALID, "%s: name must be valid UTF-8 of at most %d bytes", op,
                          ES_MAX_STREAM_LEN);
    return ES_OK;
}

int es_store_checkpoint(es_store *s, const char *name, int64_t *out, int *found, es_err *err) {
    int rc;
    *out = 0;
    *found = 0;
    if ((rc = check_name("checkpoint", name, err)) != ES_OK) return rc;
    if (!s->conn->be->get_checkpoint)
        return es_err_set(err, ES_ENOTSUP, "checkpoint: not supported by the %s backend",
                          s->conn->be->scheme);
    rc = s->conn->be->get_checkpoint(s->conn, name, out, err);
    if (rc == ES_ENOTFOUND) {
        es_err_clear(err);
        *out = 0;
        return ES_OK;
    }
    *found = rc == ES_OK;
    return rc;
}

int es_store_get_checkpoint(es_store *s, const char *name, int64_t *out, es_err *err) {
    int found;
    return es_store_checkpoint(s, name, out, &found, err);
}

int es_store_head(es_store *s, int64_t *out, es_err *err) {
    es_stats st;
    int rc;
    *out = 0;
    if (s->conn->be->head) return s->conn->be->head(s->conn, out, err);
    if ((rc = es_store_stats(s, &st, err)) != ES_OK) return rc;
    *out = st.position;
    return ES_OK;
}

int es_store_set_checkpoint(es_store *s, const char *name, int64_t position, es_err *err) {
    int rc;
    if ((rc = check_name("checkpoint", name, err)) != ES_OK) return rc;
    if (position < 0) return es_err_set(err, ES_EINVALID, "checkpoint '%s': position must be >= 0", name);
    if (!s->conn->be->set_checkpoint)
        return es_err_set(err, ES_ENOTSUP, "checkpoint: not supported by the %s backend",
                          s->conn->be->scheme);
    return s->conn->be->set_checkpoint(s->conn, name, position, err);
}

int es_store_mark_dispatched(es_store *s, const char *id, es_err *err) {
    char idbuf[ES_UUID_LEN + 1];
    if (!id || !es_valid_uuid(id)) return es_err_set(err, ES_EINVALID, "mark_dispatched: id is not a UUID");
    lower_uuid(id, idbuf);
    id = idbuf;
    if (!s->conn->be->mark_dispatched)
        return es_err_set(err, ES_ENOTSUP, "mark_dispatched: not supported by the %s backend",
                          s->conn->be->scheme);
    return s->conn->be->mark_dispatched(s->conn, id, err);
}

/* Is there an event above `after`? One indexed row at most. */
static int has_after(es_store *s, int64_t after, int *yes, es_err *err) {
    es_query q;
    es_cursor *cur = NULL;
    const es_event *ev;
    int rc;
    es_query_init(&q, ES_Q_ALL);
    q.after = after;
    q.limit = 1;
    *yes = 0;
    if ((rc = s->conn->be->read(s->conn, &q, &cur, err)) != ES_OK) return rc;
    rc = es_cursor_next(cur, &ev, err);
    es_cursor_close(cur);
    if (rc < 0) return rc;
    *yes = rc == 1;
    return ES_OK;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0) {}
}

int es_store_wait(es_store *s, int64_t after, int64_t timeout_ms, int *ready, es_err *err) {
    int64_t deadline, interval = 1, now;
    int rc, woken;
    *ready = 0;
    if (timeout_ms < 0) return es_err_set(err, ES_EINVALID, "wait: timeout must be >= 0");
    deadline = es_now_ms() + timeout_ms;
    for (;;) {
        if ((rc = has_after(s, after, ready, err)) != ES_OK || *ready) return rc;
        now = es_now_ms();
        if (now >= deadline) return ES_OK;
        if (s->conn->be->wait) {
            /* a notification may come before the events are visible to this
             * connection: re-check after every wake-up */
            if ((rc = s->conn->be->wait(s->conn, deadline - now, &woken, err)) != ES_OK) return rc;
        } else {
            sleep_ms(interval < deadline - now ? interval : deadline - now);
            if (interval < 50) interval *= 2;
        }
    }
}
