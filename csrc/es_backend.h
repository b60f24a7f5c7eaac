/* es_backend.h: the interface a storage backend implements */
/* SPDX-License-Identifier: MIT */
#ifndef ES_BACKEND_H
#define ES_BACKEND_H

#include "eventstore.h"

#define ES_BACKEND_VERSION 2

typedef struct es_backend es_backend;

/* Backends embed this first in their connection struct. */
typedef struct es_conn {
    const es_backend *be;
} es_conn;

/* One append, prepared by store.c: arguments validated, ids generated or
 * checked, data/metadata encoded, timestamps set. The backend fills each
 * event's revision and position, and res. events[i].id/stream/type/data/
 * metadata are owned by store.c and valid for the call only. */
typedef struct es_append_req {
    const char *stream;
    const char *category;      /* NUL-terminated copy of the stream's category */
    int64_t expected;          /* ES_ANY, ES_NO_STREAM, ES_STREAM_EXISTS or >= 0 */
    size_t count;              /* >= 1 */
    es_event *events;          /* count events; revision and position filled by the backend */
    int ids_given;             /* 1 if any id came from the caller (idempotency check needed) */
    int outbox;                /* record the events as undispatched in the same transaction */
    /* count flags: 1 where store.c generated the id. Such an id is
     * writable, and a backend that knows the event's position before it
     * stores it may stamp the position into it (es_id_stamp); store.c
     * reports the id as the backend left it. */
    const unsigned char *generated;
} es_append_req;

/*
 * The backend vtable (libgit2's odb_backend with SQLite's VFS "open" slot).
 * Return ES_OK or a negative ES_E... code with err set.
 *
 * append rules, the same on every backend, inside one transaction:
 *   1. idempotency (only when req->ids_given): if events[0].id is stored,
 *      then if it is in the same stream and events[0..n-1] are stored there at
 *      consecutive revisions with the same ids, and the expected revision
 *      allows that place (ES_ANY, ES_STREAM_EXISTS, or exact == first rev-1,
 *      ES_NO_STREAM with first rev 1), fill revision/position of each event
 *      from the stored rows, set res->idempotent = 1, write nothing, ES_OK.
 *      Otherwise ES_ECONFLICT ("event id ... already stored"). A later id of
 *      the batch stored anywhere is ES_ECONFLICT too.
 *   2. expected: cur = stream's revision (0 when none).
 *      ES_NO_STREAM: cur == 0; ES_STREAM_EXISTS: cur > 0; exact: cur == expected.
 *      Else es_err_set(err, ES_ECONFLICT, "append to '%s': expected revision
 *      %lld, stream is at %lld") and err->expected = req->expected (as given),
 *      err->actual = cur.
 *   3. write events with revisions cur+1..cur+n and increasing positions;
 *      a unique (stream, revision) violation is ES_ECONFLICT.
 *   4. res->revision = cur + n, res->position = last position.
 * A failed append writes nothing.
 */
struct es_backend {
    unsigned int version;          /* first member; 0 < version <= ES_BACKEND_VERSION */
    const char *scheme;            /* "memory", "sqlite", "postgres" */

    /* version 1 */
    /* uri is the whole URL (scheme included). */
    int  (*open)(const char *uri, const es_options *opt, es_conn **out, es_err *err);
    void (*close)(es_conn *c);     /* frees c and everything it owns; cannot fail */
    int  (*append)(es_conn *c, es_append_req *req, es_append_result *res, es_err *err);
    int  (*read)(es_conn *c, const es_query *q, es_cursor **out, es_err *err);
    int  (*revision)(es_conn *c, const char *stream, int64_t *out, es_err *err);
    int  (*stats)(es_conn *c, es_stats *out, es_err *err);
    /* Optional slots below may be NULL: store.c then returns ES_ENOTSUP. */
    /* Saves snap; then keeps the newest `keep` snapshots of the stream (0 = all). */
    int  (*save_snapshot)(es_conn *c, const es_snapshot *snap, int64_t keep, es_err *err);
    /* Newest snapshot with revision <= max_revision and (fingerprint NULL or
     * equal); data/stream/fingerprint es_malloc'd into out. ES_ENOTFOUND if none. */
    int  (*load_snapshot)(es_conn *c, const char *stream, int64_t max_revision,
                          const char *fingerprint, es_snapshot *out, es_err *err);
    /* *out = the stored position; ES_ENOTFOUND (and *out = 0) when none is. */
    int  (*get_checkpoint)(es_conn *c, const char *name, int64_t *out, es_err *err);
    int  (*set_checkpoint)(es_conn *c, const char *name, int64_t position, es_err *err);
    int  (*mark_dispatched)(es_conn *c, const char *id, es_err *err);
    /* Blocks up to timeout_ms for a sign that something was appended
     * (a notification); *woken = 1 when one came. Spurious wake-ups are
     * fine: the store checks for new events itself. */
    int  (*wait)(es_conn *c, int64_t timeout_ms, int *woken, es_err *err);
    /* The newest position (0 for an empty store), cheaper than stats. */
    int  (*head)(es_conn *c, int64_t *out, es_err *err);
    /* version 1 ends here; later versions append below, never insert */

    /* version 2: optional (NULL, or a version 1 backend: store.c loads the
     * snapshot, then reads). For state(): the newest snapshot of the stream
     * with this fingerprint (snap->data NULL when there is none; owned as
     * load_snapshot's) and a lean cursor (es_query.lean) over the stream's
     * events after it, in one round trip to a server. */
    int  (*read_state)(es_conn *c, const char *stream, const char *fingerprint, es_snapshot *snap,
                       es_cursor **out, es_err *err);
};

/* Step 2 of the append rules: ES_OK when the stream's revision cur meets
 * req->expected, else ES_ECONFLICT with the message, expected and actual
 * set. Every backend calls it inside its transaction. */
int es_expected_check(const es_append_req *req, int64_t cur, es_err *err);

/* The built-in backends (backends/registry.c). */
const es_backend *es_backend_find(const char *scheme, size_t len);
/* Checks version and required slots (store.c uses it when a backend is looked up). */
int es_backend_check(const es_backend *be, es_err *err);

#endif
