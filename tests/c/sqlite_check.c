/* sqlite_check.c: checks of the SQLite backend through the public es_store_* API */
/* SPDX-License-Identifier: MIT */
#include "sqlite_check.h"

static void test_expected(es_store *s) {
    es_append_result res;
    es_err err;
    int64_t rev, before = total_events(s);

    CHECK_RC(append_n(s, "exp-1", "Opened", 1, 0, ES_NO_STREAM, &res, &err), ES_OK);
    CHECK(res.revision == 1 && res.count == 1 && res.position >= 1 && !res.idempotent);
    CHECK(res.events && res.events[0].revision == 1 && res.events[0].position == res.position);
    CHECK_RC(append_n(s, "exp-1", "Again", 1, 0, ES_NO_STREAM, &res, &err), ES_ECONFLICT);
    CHECK(err.expected == ES_NO_STREAM && err.actual == 1);
    CHECK_RC(append_n(s, "exp-2", "X", 1, 0, ES_STREAM_EXISTS, &res, &err), ES_ECONFLICT);
    CHECK(err.expected == ES_STREAM_EXISTS && err.actual == 0);
    CHECK_RC(es_store_revision(s, "exp-2", &rev, &err), ES_OK);
    CHECK(rev == 0);
    CHECK_RC(append_n(s, "exp-1", "More", 2, 1, ES_STREAM_EXISTS, &res, &err), ES_OK);
    CHECK(res.revision == 3 && res.count == 2);
    CHECK(res.events[0].revision == 2 && res.events[1].revision == 3);
    CHECK(res.events[1].position == res.events[0].position + 1);
    CHECK_RC(append_n(s, "exp-1", "Exact", 1, 3, 3, &res, &err), ES_OK);
    CHECK(res.revision == 4);
    CHECK_RC(append_n(s, "exp-1", "Stale", 3, 4, 3, &res, &err), ES_ECONFLICT);
    CHECK(err.expected == 3 && err.actual == 4);
    CHECK(strstr(err.msg, "append to 'exp-1'") != NULL);
    CHECK_RC(append_n(s, "exp-1", "Any", 1, 4, ES_ANY, &res, &err), ES_OK);
    CHECK(res.revision == 5);
    CHECK_RC(es_store_revision(s, "exp-1", &rev, &err), ES_OK);
    CHECK(rev == 5);
    CHECK(total_events(s) == before + 5);
}

static void test_idempotent(es_store *s) {
    const char *a = "0d8f9a40-57a2-4d3c-9a2e-8f1b6c3d2e01", *b = "0d8f9a40-57a2-4d3c-9a2e-8f1b6c3d2e02";
    const char *fresh = "0d8f9a40-57a2-4d3c-9a2e-8f1b6c3d2e03";
    es_event_in evs[2] = { { a, "Created", NULL, NULL }, { b, "Named", NULL, NULL } };
    es_event_in mixed[2] = { { fresh, "New", NULL, NULL }, { b, "Named", NULL, NULL } };
    es_event_in upper = { "0D8F9A40-57A2-4D3C-9A2E-8F1B6C3D2E02", "Named", NULL, NULL };
    es_append_result res;
    es_err err;
    int64_t p1, p2, before;

    CHECK_RC(es_store_append(s, "idem-1", evs, 2, ES_NO_STREAM, &res, &err), ES_OK);
    p1 = res.events[0].position;
    p2 = res.events[1].position;
    before = total_events(s);
    CHECK_RC(es_store_append(s, "idem-1", evs, 2, ES_NO_STREAM, &res, &err), ES_OK);
    CHECK(res.idempotent == 1 && res.revision == 2 && res.position == p2);
    CHECK(res.events[0].position == p1 && res.events[1].revision == 2);
    CHECK_RC(es_store_append(s, "idem-1", evs, 2, ES_ANY, &res, &err), ES_OK);
    CHECK(res.idempotent == 1);
    CHECK_RC(es_store_append(s, "idem-1", evs + 1, 1, 1, &res, &err), ES_OK);
    CHECK(res.idempotent == 1 && res.position == p2);
    CHECK_RC(es_store_append(s, "idem-1", &upper, 1, ES_STREAM_EXISTS, &res, &err), ES_OK);
    CHECK(res.idempotent == 1);
    /* the same ids at another place, or in another stream, are conflicts */
    CHECK_RC(es_store_append(s, "idem-1", evs, 2, 5, &res, &err), ES_ECONFLICT);
    CHECK_RC(es_store_append(s, "idem-1", evs + 1, 1, 0, &res, &err), ES_ECONFLICT);
    CHECK_RC(es_store_append(s, "idem-2", evs, 1, ES_ANY, &res, &err), ES_ECONFLICT);
    CHECK(strstr(err.msg, "already stored") != NULL);
    CHECK_RC(es_store_append(s, "idem-1", mixed, 2, ES_ANY, &res, &err), ES_ECONFLICT);
    CHECK(total_events(s) == before);
    /* after more appends, the batch is still recognized and the result
     * carries the stream's revision now */
    CHECK_RC(append_n(s, "idem-1", "Later", 1, 0, 2, &res, &err), ES_OK);
    CHECK_RC(es_store_append(s, "idem-1", evs, 2, ES_NO_STREAM, &res, &err), ES_OK);
    CHECK(res.idempotent == 1 && res.revision == 3 && res.position == p2);
}

static void test_reads(es_store *s) {
    es_append_result res;
    es_query q;
    es_err err;
    row rows[32];
    int n, i, ok;

    CHECK_RC(append_n(s, "read-1", "Step", 10, 1, ES_NO_STREAM, &res, &err), ES_OK);
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "read-1";
    n = collect(s, &q, rows, 32, &err);
    CHECK(n == 10);
    for (i = 0, ok = 1; i < n && i < 10; i++)
        ok &= rows[i].revision == i + 1 && strcmp(rows[i].stream, "read-1") == 0 &&
              (i == 0 || rows[i].position == rows[i - 1].position + 1) && strcmp(rows[i].meta, "{}") == 0;
    CHECK(ok);
    CHECK(strcmp(rows[0].data, "{\"i\":1}") == 0 && strcmp(rows[9].data, "{\"i\":10}") == 0);
    CHECK(strcmp(rows[0].type, "Step") == 0 && strlen(rows[0].id) == ES_UUID_LEN);
    CHECK(rows[0].timestamp > 1600000000000LL);
    q.from = 3;
    q.to = 5;
    n = collect(s, &q, rows, 32, &err);
    CHECK(n == 3 && rows[0].revision == 3 && rows[2].revision == 5);
    q.backward = 1;
    n = collect(s, &q, rows, 32, &err);
    CHECK(n == 3 && rows[0].revision == 5 && rows[2].revision == 3);
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "read-1";
    q.backward = 1;
    q.limit = 3;
    n = collect(s, &q, rows, 32, &err);
    CHECK(n == 3 && rows[0].revision == 10 && rows[2].revision == 8);
    q.backward = 0;
    q.limit = 4;
    q.from = 7;
    n = collect(s, &q, rows, 32, &err);
    CHECK(n == 4 && rows[0].revision == 7 && rows[3].revision == 10);
    q.stream = "read-none";
    CHECK(collect(s, &q, rows, 32, &err) == 0);

    /* ids: found in any case, unknown gives no row */
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "read-1";
    q.from = q.to = 4;
    CHECK(collect(s, &q, rows, 1, &err) == 1);
    {
        char up[ES_UUID_LEN + 1], want[ES_UUID_LEN + 1];
        int64_t pos = rows[0].position;
        strcpy(want, rows[0].id);
        for (i = 0; i < ES_UUID_LEN; i++) up[i] = (char)((want[i] >= 'a' && want[i] <= 'f') ? want[i] - 32 : want[i]);
        up[ES_UUID_LEN] = '\0';
        es_query_init(&q, ES_Q_ID);
        q.id = up;
        CHECK(collect(s, &q, rows, 1, &err) == 1);
        CHECK(strcmp(rows[0].id, want) == 0 && rows[0].revision == 4 && rows[0].position == pos);
        q.id = "11111111-2222-4333-8444-555555555555";
        CHECK(collect(s, &q, rows, 1, &err) == 0);
    }
}

/* Two cursors of the same shape at once (the second cannot use the cached
 * statement), an append while a cursor is open, and a cursor outliving its
 * store. */
static void test_cursors(es_store *s) {
    es_cursor *c1, *c2;
    const es_event *e1, *e2;
    es_append_result res;
    es_query q;
    es_err err;
    int n1 = 0, n2 = 0, rc1, rc2;

    CHECK_RC(append_n(s, "cur-1", "A", 5, 0, ES_ANY, &res, &err), ES_OK);
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "cur-1";
    CHECK_RC(es_store_read(s, &q, &c1, &err), ES_OK);
    CHECK_RC(es_store_read(s, &q, &c2, &err), ES_OK);
    do {
        rc1 = es_cursor_next(c1, &e1, &err);
        rc2 = es_cursor_next(c2, &e2, &err);
        if (rc1 == 1) n1++;
        if (rc2 == 1) n2++;
        if (rc1 == 1 && rc2 == 1) CHECK(e1->revision == e2->revision && e1 != e2);
        if (n1 == 2 && rc1 == 1) CHECK_RC(append_n(s, "cur-2", "B", 1, 0, ES_ANY, &res, &err), ES_OK);
    } while (rc1 == 1 || rc2 == 1);
    CHECK(n1 == 5 && n2 == 5 && rc1 == 0 && rc2 == 0);
    CHECK(es_cursor_next(c1, &e1, &err) == 0);
    es_cursor_close(c1);
    es_cursor_close(c2);
}

static void test_read_all(es_store *s) {
    static const char *const two[] = { "Deposited", "Closed" };
    static const char *const odd[] = { "quo\"te\\x" };
    es_append_result res;
    es_query q;
    es_err err;
    row rows[64];
    int64_t start, t0;
    int n, i, ok;

    t0 = es_now_ms();
    es_query_init(&q, ES_Q_ALL);
    n = collect(s, &q, rows, 64, &err);
    CHECK(n >= 0);
    start = n > 0 ? rows[n - 1].position : 0;
    CHECK_RC(append_n(s, "account-1", "Opened", 1, 0, ES_ANY, &res, &err), ES_OK);
    CHECK_RC(append_n(s, "account-2", "Opened", 1, 0, ES_ANY, &res, &err), ES_OK);
    CHECK_RC(append_n(s, "order-1", "Placed", 1, 0, ES_ANY, &res, &err), ES_OK);
    CHECK_RC(append_n(s, "account-1", "Deposited", 3, 0, ES_ANY, &res, &err), ES_OK);
    CHECK_RC(append_n(s, "account-2", "Closed", 1, 0, ES_ANY, &res, &err), ES_OK);
    CHECK_RC(append_n(s, "account", "quo\"te\\x", 1, 0, ES_ANY, &res, &err), ES_OK);

    q.after = start;
    n = collect(s, &q, rows, 64, &err);
    CHECK(n == 8);
    for (i = 1, ok = 1; i < n; i++) ok &= rows[i].position > rows[i - 1].position;
    CHECK(ok && rows[0].position == start + 1);
    q.category = "account";
    n = collect(s, &q, rows, 64, &err);
    CHECK(n == 7);
    for (i = 0, ok = 1; i < n; i++) ok &= strncmp(rows[i].stream, "account", 7) == 0;
    CHECK(ok);
    q.types = two;
    q.ntypes = 2;
    n = collect(s, &q, rows, 64, &err);
    CHECK(n == 4 && strcmp(rows[3].type, "Closed") == 0);
    q.limit = 2;
    n = collect(s, &q, rows, 64, &err);
    CHECK(n == 2 && strcmp(rows[0].type, "Deposited") == 0);
    q.category = NULL;
    q.limit = 0;
    q.types = odd;
    q.ntypes = 1;
    n = collect(s, &q, rows, 64, &err);
    CHECK(n == 1 && strcmp(rows[0].stream, "account") == 0);
    q.types = NULL;
    q.ntypes = 0;
    q.after = rows[0].position - 2;
    n = collect(s, &q, rows, 64, &err);
    CHECK(n == 2);
    es_query_init(&q, ES_Q_ALL);
    q.after = start;
    q.since = t0;
    CHECK(collect(s, &q, rows, 64, &err) == 8);
    q.since = es_now_ms() + 86400000;
    CHECK(collect(s, &q, rows, 64, &err) == 0);
    q.since = t0;
    q.category = "order";
    q.types = two;
    q.ntypes = 1;
    CHECK(collect(s, &q, rows, 64, &err) == 0);
    q.category = "nothing";
    q.types = NULL;
    q.ntypes = 0;
    CHECK(collect(s, &q, rows, 64, &err) == 0);

    /* stream names, sorted, with revisions */
    es_query_init(&q, ES_Q_STREAMS);
    q.category = "account";
    n = collect(s, &q, rows, 64, &err);
    CHECK(n == 3);
    CHECK(strcmp(rows[0].stream, "account") == 0 && rows[0].revision == 1);
    CHECK(strcmp(rows[1].stream, "account-1") == 0 && rows[1].revision == 4);
    CHECK(strcmp(rows[2].stream, "account-2") == 0 && rows[2].revision == 2);
    q.category = NULL;
    n = collect(s, &q, rows, 64, &err);
    for (i = 1, ok = 1; i < n; i++) ok &= strcmp(rows[i - 1].stream, rows[i].stream) < 0;
    CHECK(n >= 4 && ok);
    q.limit = 2;
    CHECK(collect(s, &q, rows, 64, &err) == 2);
}

static void test_stats(es_store *s) {
    es_append_result res;
    es_stats st;
    es_err err;
    CHECK_RC(es_store_stats(s, &st, &err), ES_OK);
    CHECK(st.events == 0 && st.streams == 0 && st.snapshots == 0 && st.position == 0);
    CHECK(strcmp(st.backend, "sqlite") == 0);
    CHECK_RC(append_n(s, "stat-1", "A", 3, 0, ES_ANY, &res, &err), ES_OK);
    CHECK_RC(append_n(s, "stat-2", "A", 2, 0, ES_ANY, &res, &err), ES_OK);
    CHECK_RC(es_store_stats(s, &st, &err), ES_OK);
    CHECK(st.events == 5 && st.streams == 2 && st.position == 5);
}

static void save_snap(es_store *s, const char *stream, int64_t rev, const char *fp, const char *data) {
    es_snapshot snap;
    es_err err;
    memset(&snap, 0, sizeof snap);
    snap.stream = (char *)stream;
    snap.revision = rev;
    snap.version = 1;
    snap.fingerprint = (char *)fp;
    snap.data = (char *)data;
    snap.data_len = strlen(data);
    CHECK_RC(es_store_save_snapshot(s, &snap, &err), ES_OK);
}

/* s keeps max_snapshots = 2 */
static void test_snapshots(es_store *s) {
    es_snapshot out;
    es_stats st;
    es_err err;
    char data[32];
    int i;

    CHECK_RC(es_store_load_snapshot(s, "snap-1", INT64_MAX, NULL, &out, &err), ES_ENOTFOUND);
    for (i = 1; i <= 5; i++) {
        snprintf(data, sizeof data, "{\"n\":%d}", i);
        save_snap(s, "snap-1", i, NULL, data);
    }
    save_snap(s, "snap-2", 1, NULL, "{}");
    CHECK_RC(es_store_stats(s, &st, &err), ES_OK);
    CHECK(st.snapshots == 3);
    CHECK_RC(es_store_load_snapshot(s, "snap-1", INT64_MAX, NULL, &out, &err), ES_OK);
    CHECK(out.revision == 5 && out.version == 1 && out.timestamp > 0 && strcmp(out.stream, "snap-1") == 0);
    CHECK(out.data_len == 7 && strcmp(out.data, "{\"n\":5}") == 0);
    CHECK(!out.fingerprint || !*out.fingerprint);
    es_snapshot_clear(&out);
    CHECK_RC(es_store_load_snapshot(s, "snap-1", 4, NULL, &out, &err), ES_OK);
    CHECK(out.revision == 4);
    es_snapshot_clear(&out);
    CHECK_RC(es_store_load_snapshot(s, "snap-1", 3, NULL, &out, &err), ES_ENOTFOUND);
    /* the same place saved again replaces */
    save_snap(s, "snap-1", 5, NULL, "{\"n\":55}");
    CHECK_RC(es_store_load_snapshot(s, "snap-1", 5, "", &out, &err), ES_OK);
    CHECK(out.revision == 5 && strcmp(out.data, "{\"n\":55}") == 0);
    es_snapshot_clear(&out);
    /* fingerprints: NULL matches any, others only their own */
    save_snap(s, "snap-1", 6, "fp-a", "{\"r\":6}");
    CHECK_RC(es_store_load_snapshot(s, "snap-1", INT64_MAX, NULL, &out, &err), ES_OK);
    CHECK(out.revision == 6 && out.fingerprint && strcmp(out.fingerprint, "fp-a") == 0);
    es_snapshot_clear(&out);
    CHECK_RC(es_store_load_snapshot(s, "snap-1", INT64_MAX, "", &out, &err), ES_OK);
    CHECK(out.revision == 5);
    es_snapshot_clear(&out);
    CHECK_RC(es_store_load_snapshot(s, "snap-1", 5, "fp-a", &out, &err), ES_ENOTFOUND);
    CHECK_RC(es_store_load_snapshot(s, "snap-1", 9, "fp-b", &out, &err), ES_ENOTFOUND);
    CHECK_RC(es_store_stats(s, &st, &err), ES_OK);
    CHECK(st.snapshots == 3);
}

static void test_checkpoints(es_store *s) {
    es_err err;
    int64_t pos = -1;
    CHECK_RC(es_store_get_checkpoint(s, "projector", &pos, &err), ES_OK);
    CHECK(pos == 0);
    CHECK_RC(es_store_set_checkpoint(s, "projector", 5, &err), ES_OK);
    CHECK_RC(es_store_set_checkpoint(s, "other", 9, &err), ES_OK);
    CHECK_RC(es_store_get_checkpoint(s, "projector", &pos, &err), ES_OK);
    CHECK(pos == 5);
    CHECK_RC(es_store_set_checkpoint(s, "projector", 7, &err), ES_OK);
    CHECK_RC(es_store_get_checkpoint(s, "projector", &pos, &err), ES_OK);
    CHECK(pos == 7);
}

/* s was opened with outbox = 1 */
static void test_outbox(es_store *s) {
    es_append_result res;
    es_query q;
    es_err err;
    row rows[16];
    char first[ES_UUID_LEN + 1];
    int n;

    CHECK_RC(append_n(s, "ship-1", "Sent", 2, 0, ES_ANY, &res, &err), ES_OK);
    CHECK_RC(append_n(s, "bill-1", "Billed", 1, 0, ES_ANY, &res, &err), ES_OK);
    es_query_init(&q, ES_Q_UNDISPATCHED);
    n = collect(s, &q, rows, 16, &err);
    CHECK(n == 3 && rows[0].position < rows[1].position && rows[1].position < rows[2].position);
    strcpy(first, rows[0].id);
    q.category = "bill";
    n = collect(s, &q, rows, 16, &err);
    CHECK(n == 1 && strcmp(rows[0].stream, "bill-1") == 0);
    q.category = NULL;
    q.limit = 1;
    CHECK(collect(s, &q, rows, 16, &err) == 1);
    q.limit = 0;
    q.after = rows[0].position;
    CHECK(collect(s, &q, rows, 16, &err) == 2);
    CHECK_RC(es_store_mark_dispatched(s, first, &err), ES_OK);
    CHECK_RC(es_store_mark_dispatched(s, first, &err), ES_OK);
    CHECK_RC(es_store_mark_dispatched(s, "11111111-2222-4333-8444-555555555555", &err), ES_ENOTFOUND);
    es_query_init(&q, ES_Q_UNDISPATCHED);
    n = collect(s, &q, rows, 16, &err);
    CHECK(n == 2 && strcmp(rows[0].id, first) != 0 && strcmp(rows[0].stream, "ship-1") == 0);
}

static void test_memory_db(void) {
    es_options opt;
    es_store *s = NULL, *s2 = NULL;
    es_err err;
    es_options_init(&opt);
    opt.max_snapshots = 2;
    opt.outbox = 1;
    CHECK_RC(es_store_open("sqlite::memory:", &opt, &s, &err), ES_OK);
    CHECK_RC(es_store_open("sqlite::memory:", &opt, &s2, &err), ES_OK);
    if (!s || !s2) return;
    test_stats(s);
    CHECK(total_events(s2) == 0);
    test_expected(s);
    test_idempotent(s);
    test_reads(s);
    test_cursors(s);
    test_read_all(s);
    test_snapshots(s);
    test_checkpoints(s);
    es_store_close(s);
    test_outbox(s2);
    es_store_close(s2);
}

/* A file store keeps everything across reopen, opens read-only, and uses
 * its table prefix. */
static void test_file_db(void) {
    char url[512], url2[600];
    es_options opt;
    es_store *s = NULL;
    es_append_result res;
    es_snapshot snap;
    es_cursor *cur = NULL;
    const es_event *ev;
    es_query q;
    es_err err;
    row rows[8];
    int64_t v;

    es_options_init(&opt);
    opt.outbox = 1;
    db_url("file", url, sizeof url);
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    CHECK_RC(append_n(s, "keep-1", "A", 3, 0, ES_NO_STREAM, &res, &err), ES_OK);
    save_snap(s, "keep-1", 3, "fp", "{\"kept\":true}");
    CHECK_RC(es_store_set_checkpoint(s, "sub", 2, &err), ES_OK);
    /* a cursor left open when the store closes fails cleanly afterwards */
    es_query_init(&q, ES_Q_ALL);
    CHECK_RC(es_store_read(s, &q, &cur, &err), ES_OK);
    CHECK(es_cursor_next(cur, &ev, &err) == 1);
    es_store_close(s);
    CHECK(es_cursor_next(cur, &ev, &err) == ES_EINVALID);
    es_cursor_close(cur);

    /* sqlite://PATH names the same file */
    snprintf(url2, sizeof url2, "sqlite://%s/file.db", dir);
    s = NULL;
    CHECK_RC(es_store_open(url2, &opt, &s, &err), ES_OK);
    if (!s) return;
    CHECK_RC(es_store_revision(s, "keep-1", &v, &err), ES_OK);
    CHECK(v == 3);
    CHECK_RC(es_store_load_snapshot(s, "keep-1", INT64_MAX, "fp", &snap, &err), ES_OK);
    CHECK(snap.revision == 3 && strcmp(snap.data, "{\"kept\":true}") == 0);
    es_snapshot_clear(&snap);
    CHECK_RC(es_store_get_checkpoint(s, "sub", &v, &err), ES_OK);
    CHECK(v == 2);
    es_query_init(&q, ES_Q_UNDISPATCHED);
    CHECK(collect(s, &q, rows, 8, &err) == 3);
    CHECK_RC(append_n(s, "keep-1", "B", 1, 3, 3, &res, &err), ES_OK);
    CHECK(res.revision == 4 && res.position == 4);
    es_store_close(s);

    /* read-only: reads work, every write is refused */
    opt.readonly = 1;
    s = NULL;
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "keep-1";
    CHECK(collect(s, &q, rows, 8, &err) == 4);
    CHECK_RC(append_n(s, "keep-1", "C", 1, 0, ES_ANY, &res, &err), ES_EREADONLY);
    CHECK_RC(es_store_set_checkpoint(s, "sub", 3, &err), ES_EREADONLY);
    CHECK_RC(es_store_mark_dispatched(s, rows[0].id, &err), ES_EREADONLY);
    es_store_close(s);

    /* another prefix is another set of tables in the same file */
    opt.readonly = 0;
    opt.prefix = "tenant2_";
    s = NULL;
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    CHECK(total_events(s) == 0);
    CHECK_RC(append_n(s, "keep-1", "T", 1, 0, ES_NO_STREAM, &res, &err), ES_OK);
    es_store_close(s);
}

static void test_bad_opens(void) {
    char url[512];
    es_options opt;
    es_store *s = NULL;
    es_err err;

    es_options_init(&opt);
    CHECK_RC(es_store_open("sqlite:", &opt, &s, &err), ES_EINVALID);
    CHECK(s == NULL);
    opt.prefix = "Bad-prefix";
    CHECK_RC(es_store_open("sqlite::memory:", &opt, &s, &err), ES_EINVALID);
    opt.prefix = "1abc";
    CHECK_RC(es_store_open("sqlite::memory:", &opt, &s, &err), ES_EINVALID);
    opt.prefix = "a234567890123456789012345678901234567890123456789012345678901234";
    CHECK_RC(es_store_open("sqlite::memory:", &opt, &s, &err), ES_EINVALID);
    opt.prefix = NULL;
    opt.create = 0;
    CHECK_RC(es_store_open(db_url("missing", url, sizeof url), &opt, &s, &err), ES_EBACKEND);
    CHECK(strstr(err.msg, "open 'sqlite:") == err.msg);
    /* no schema and create = 0: the first use says so */
    CHECK_RC(es_store_open("sqlite::memory:", &opt, &s, &err), ES_OK);
    if (s) {
        int64_t rev;
        CHECK_RC(es_store_revision(s, "x", &rev, &err), ES_EBACKEND);
        CHECK(strstr(err.msg, "no such table") != NULL);
        es_store_close(s);
    }
    snprintf(url, sizeof url, "sqlite:%s/no/such/dir/x.db", dir);
    opt.create = 1;
    s = NULL;
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_EBACKEND);
}

/* Another connection holding the write lock past busy_timeout gives
 * ES_EBUSY, and the append wrote nothing. */
static void test_busy(void) {
    char url[512];
    es_options opt;
    es_store *s = NULL;
    es_append_result res;
    es_err err;
    sqlite3 *db = NULL;
    int64_t rev;

    es_options_init(&opt);
    opt.busy_timeout_ms = 50;
    db_url("busy", url, sizeof url);
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    CHECK(sqlite3_open(url + strlen("sqlite:"), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    CHECK_RC(append_n(s, "busy-1", "A", 1, 0, ES_ANY, &res, &err), ES_EBUSY);
    CHECK(strstr(err.msg, "append to 'busy-1'") == err.msg);
    CHECK_RC(es_store_revision(s, "busy-1", &rev, &err), ES_OK);
    CHECK(rev == 0);
    CHECK(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK_RC(append_n(s, "busy-1", "A", 1, 0, ES_NO_STREAM, &res, &err), ES_OK);

    /* a cursor of this store pins an older snapshot while another
     * connection commits: the append cannot upgrade it */
    {
        es_query q;
        es_cursor *cur = NULL;
        const es_event *ev;
        es_query_init(&q, ES_Q_ALL);
        CHECK_RC(append_n(s, "busy-2", "A", 2, 0, ES_ANY, &res, &err), ES_OK);
        CHECK_RC(es_store_read(s, &q, &cur, &err), ES_OK);
        CHECK(es_cursor_next(cur, &ev, &err) == 1);
        CHECK(sqlite3_open(url + strlen("sqlite:"), &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "INSERT INTO es_checkpoints VALUES ('x', 1)", NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(db);
        CHECK_RC(append_n(s, "busy-1", "B", 1, 0, ES_ANY, &res, &err), ES_EBUSY);
        CHECK(strstr(err.msg, "older snapshot") != NULL);
        es_cursor_close(cur);
        CHECK_RC(append_n(s, "busy-1", "B", 1, 0, 1, &res, &err), ES_OK);
    }
    es_store_close(s);
}

/* One writer process: 500 single-event appends to one stream, each with
 * the revision it last saw, retrying on conflict. Exit status 0 = success. */
static int writer(const char *url, int who, int gate) {
    es_options opt;
    es_store *s = NULL;
    es_append_result res;
    es_event_in ev;
    es_err err;
    json_t *data;
    int64_t rev, t0;
    int done = 0, conflicts = 0, rc;
    char c;

    es_options_init(&opt);
    opt.busy_timeout_ms = 10000;
    if (es_store_open(url, &opt, &s, &err) != ES_OK) {
        fprintf(stderr, "writer %d: %s\n", who, err.msg);
        return 1;
    }
    /* both writers start together: the parent closes the gate's write end */
    while (read(gate, &c, 1) > 0) {}
    t0 = es_now_ms();
    data = json_pack("{s:i}", "w", who);
    ev.id = NULL;
    ev.type = who == 1 ? "One" : "Two";
    ev.data = data;
    ev.metadata = NULL;
    while (done < 500) {
        if ((rc = es_store_revision(s, "race-1", &rev, &err)) == ES_OK)
            rc = es_store_append(s, "race-1", &ev, 1, rev, &res, &err);
        if (rc == ES_OK) {
            done++;
            /* a little work between commands, as a real writer has; without
             * it SQLite's sleeping busy handler lets one writer run alone */
            usleep(200);
        } else if (rc == ES_ECONFLICT && err.expected == rev && err.actual > rev) {
            conflicts++;
        } else {
            fprintf(stderr, "writer %d: %s: %s\n", who, es_errname(rc), err.msg);
            break;
        }
    }
    json_decref(data);
    es_store_close(s);
    fprintf(stderr, "writer %d: %d appends, %d conflicts retried, %lld ms\n", who, done, conflicts,
            (long long)(es_now_ms() - t0));
    return done == 500 ? 0 : 1;
}

static void test_two_processes(void) {
    char url[512];
    es_options opt;
    es_store *s = NULL;
    es_query q;
    es_cursor *cur;
    const es_event *ev;
    es_err err;
    pid_t pid[2];
    int gate[2], i, status = 0, n = 0, gaps = 0, ones = 0, twos = 0, switches = 0;
    char prev = 0;
    int64_t rev, last_pos = 0;

    es_options_init(&opt);
    db_url("race", url, sizeof url);
    /* the schema exists before the writers start */
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    es_store_close(s);
    fflush(NULL);
    CHECK(pipe(gate) == 0);
    for (i = 0; i < 2; i++) {
        pid[i] = fork();
        if (pid[i] == 0) {
            close(gate[1]);
            _exit(writer(url, i + 1, gate[0]));
        }
        CHECK(pid[i] > 0);
    }
    close(gate[0]);
    usleep(100000);
    close(gate[1]);
    for (i = 0; i < 2; i++) {
        if (pid[i] <= 0) continue;
        CHECK(waitpid(pid[i], &status, 0) == pid[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    s = NULL;
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    CHECK_RC(es_store_revision(s, "race-1", &rev, &err), ES_OK);
    CHECK(rev == 1000);
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "race-1";
    CHECK_RC(es_store_read(s, &q, &cur, &err), ES_OK);
    while (es_cursor_next(cur, &ev, &err) == 1) {
        n++;
        if (ev->revision != n || ev->position <= last_pos) gaps++;
        last_pos = ev->position;
        if (prev && prev != ev->type[1]) switches++;
        prev = ev->type[1];
        if (strcmp(ev->type, "One") == 0) ones++;
        if (strcmp(ev->type, "Two") == 0) twos++;
    }
    es_cursor_close(cur);
    CHECK(n == 1000 && gaps == 0 && ones == 500 && twos == 500);
    fprintf(stderr, "two writers: the stream switched writer %d times\n", switches);
    CHECK(total_events(s) == 1000);
    es_store_close(s);
}

/* Every allocation of open, append and read fails once in turn: each call
 * either succeeds or reports ES_ENOMEM, and nothing leaks (valgrind). */
static void test_alloc_failures(void) {
    static const es_event_in evs[2] = { { NULL, "A", NULL, NULL }, { NULL, "A", NULL, NULL } };
    long k;
    int saw_nomem = 0;
    for (k = 1; k < 60; k++) {
        es_store *s = NULL;
        es_append_result res;
        es_query q;
        es_err err;
        row rows[4];
        int rc, n;
        es_alloc_fail_after(k);
        rc = es_store_open("sqlite::memory:", NULL, &s, &err);
        /* data NULL keeps jansson out of it: this is about the store and
         * the backend's own allocations */
        if (rc == ES_OK) rc = es_store_append(s, "oom-1", evs, 2, ES_ANY, &res, &err);
        if (rc == ES_OK) {
            es_query_init(&q, ES_Q_ALL);
            q.types = (const char *const[]){ "A" };
            q.ntypes = 1;
            n = collect(s, &q, rows, 4, &err);
            rc = n < 0 ? n : (n == 2 ? ES_OK : ES_EBACKEND);
        }
        es_alloc_fail_after(0);
        CHECK(rc == ES_OK || rc == ES_ENOMEM);
        if (rc != ES_OK && rc != ES_ENOMEM) fprintf(stderr, "  fail after %ld: %s\n", k, err.msg);
        if (rc == ES_ENOMEM) saw_nomem = 1;
        es_store_close(s);
    }
    CHECK(saw_nomem);
}

int main(void) {
    if (!dir_create("sqlite_check")) return 2;
    test_memory_db();
    test_file_db();
    test_bad_opens();
    test_busy();
    test_alloc_failures();
    test_two_processes();
    dir_remove();
    printf("sqlite_check: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
