/* pg_check.c: the PostgreSQL backend through the public C API, with concurrent writer processes */
/* SPDX-License-Identifier: MIT */
/*
 * Usage: EVENTSTORE_PG_URL=postgresql://... pg_check [bench]
 * Exits 0 when every check passed. Each run works in its own schemas
 * (pgc_<pid>...), dropped at the end. "bench" measures appends instead.
 */
#include "pg_check.h"

/* ---- option validation, connection failures ---- */

static void test_open_errors(void) {
    static const char *const bad_schemas[] = {
        "public; drop table x", "Public", "1abc", "a-b", "a\"b", "", "x y",
        "a123456789a123456789a123456789a123456789a123456789a123456789abcd" /* 64 bytes */
    };
    char pw_url[512];
    const char *at, *colon;
    es_options o;
    es_store *s = NULL;
    size_t i;

    for (i = 0; i < sizeof bad_schemas / sizeof bad_schemas[0]; i++) {
        es_options_init(&o);
        o.schema = bad_schemas[i];
        es_err_clear(&E);
        CHECK(es_store_open(url, &o, &s, &E) == ES_EINVALID && !s && strstr(E.msg, "schema"));
        es_options_init(&o);
        o.prefix = bad_schemas[i];
        es_err_clear(&E);
        CHECK(es_store_open(url, &o, &s, &E) == ES_EINVALID && !s && strstr(E.msg, "prefix"));
    }

    /* a missing store with create = false fails at open */
    es_options_init(&o);
    o.schema = "pgc_nowhere";
    o.create = 0;
    es_err_clear(&E);
    CHECK(es_store_open(url, &o, &s, &E) == ES_EBACKEND && !s);

    /* wrong password: the URL's user with another password */
    at = strchr(url, '@');
    colon = strstr(url, "://");
    colon = colon ? strchr(colon + 3, ':') : NULL;
    if (at && colon && colon < at) {
        snprintf(pw_url, sizeof pw_url, "%.*s:Wr0ng-pAss-9f3k%s", (int)(colon - url), url, at);
        es_err_clear(&E);
        CHECK(es_store_open(pw_url, NULL, &s, &E) == ES_EBACKEND && !s);
        CHECK(strstr(E.msg, "Wr0ng-pAss-9f3k") == NULL && strstr(E.msg, "password") != NULL);
        snprintf(pw_url, sizeof pw_url, "%.*s:Wr0ng%%2DpAss%s", (int)(colon - url), url, at);
        es_err_clear(&E);
        CHECK(es_store_open(pw_url, NULL, &s, &E) == ES_EBACKEND);
        CHECK(strstr(E.msg, "Wr0ng-pAss") == NULL && strstr(E.msg, "Wr0ng%2DpAss") == NULL);
    }
    /* both URI schemes libpq knows */
    if (strncmp(url, "postgresql://", 13) == 0) {
        snprintf(pw_url, sizeof pw_url, "postgres://%s", url + 13);
        es_err_clear(&E);
        OK(es_store_open(pw_url, NULL, &s, &E));
        CHECK(s && strcmp(es_store_backend_name(s), "postgres") == 0);
        es_store_close(s);
        s = NULL;
    }
    /* nothing listens there; and a malformed URL that quotes itself */
    es_err_clear(&E);
    CHECK(es_store_open("postgresql://es:S3cret-Down@127.0.0.1:1/es", NULL, &s, &E) == ES_EBACKEND);
    CHECK(strstr(E.msg, "S3cret-Down") == NULL);
    es_err_clear(&E);
    CHECK(es_store_open("postgres://es:S3cret-Bad@127.0.0.1:notaport/es?sslmode=x", NULL, &s, &E) == ES_EBACKEND);
    CHECK(strstr(E.msg, "S3cret-Bad") == NULL);
    es_err_clear(&E);
    CHECK(es_store_open("postgresql://127.0.0.1:1/es?password=S3cret-Query&user=es", NULL, &s, &E) == ES_EBACKEND);
    CHECK(strstr(E.msg, "S3cret-Query") == NULL);
}

/* ---- appends: expected modes, conflicts, idempotency ---- */

/* The backend reads int8 columns of text rows with its own parser. */
int64_t pg_col_i64(const PGresult *res, int row, int col);

static void test_int8_text(void) {
    PGconn *pg = raw_connect();
    PGresult *r = PQexec(pg, "SELECT '-9223372036854775808'::int8, '9223372036854775807'::int8, 0::int8, "
                             "NULL::int8, '-42'::int8, 1234567890123::int8, '-1'::int8");
    if (!CHECK(PQresultStatus(r) == PGRES_TUPLES_OK)) {
        PQclear(r);
        PQfinish(pg);
        return;
    }
    CHECK(pg_col_i64(r, 0, 0) == INT64_MIN);
    CHECK(pg_col_i64(r, 0, 1) == INT64_MAX);
    CHECK(pg_col_i64(r, 0, 2) == 0);
    CHECK(pg_col_i64(r, 0, 3) == 0);      /* NULL reads as 0, as strtoll("") did */
    CHECK(pg_col_i64(r, 0, 4) == -42);
    CHECK(pg_col_i64(r, 0, 5) == 1234567890123LL);
    CHECK(pg_col_i64(r, 0, 6) == -1);
    PQclear(r);
    PQfinish(pg);
}

static void test_append(es_store *s) {
    es_append_result res;
    es_event_in evs[3];
    es_stats before;
    char id1[ES_UUID_LEN + 1], id2[ES_UUID_LEN + 1], id3[ES_UUID_LEN + 1], up[ES_UUID_LEN + 1];
    int64_t p1, p2, rev;
    size_t i;

    memset(evs, 0, sizeof evs);
    evs[0].type = "Opened";
    evs[1].type = "Deposited";
    es_err_clear(&E);
    OK(es_store_append(s, "account-1", evs, 2, ES_NO_STREAM, &res, &E));
    CHECK(res.revision == 2 && res.count == 2 && !res.idempotent);
    CHECK(res.events[0].revision == 1 && res.events[1].revision == 2);
    CHECK(res.events[1].position == res.events[0].position + 1 && res.position == res.events[1].position);
    p1 = res.position;

    before = stats(s);
    CHECK(append1(s, "account-1", "X", 1, ES_NO_STREAM, &res) == ES_ECONFLICT);
    CHECK(E.expected == ES_NO_STREAM && E.actual == 2);
    CHECK(append1(s, "account-2", "X", 1, ES_STREAM_EXISTS, &res) == ES_ECONFLICT);
    CHECK(E.expected == ES_STREAM_EXISTS && E.actual == 0);
    CHECK(append1(s, "account-1", "X", 1, 5, &res) == ES_ECONFLICT);
    CHECK(E.expected == 5 && E.actual == 2 && strstr(E.msg, "account-1"));
    CHECK(stats(s).events == before.events && stats(s).position == before.position);
    CHECK(es_store_revision(s, "account-2", &rev, &E) == ES_OK && rev == 0);

    OK(append1(s, "account-1", "Deposited", 3, 2, &res));
    CHECK(res.revision == 3 && res.position == p1 + 1);
    OK(append1(s, "account-1", "Deposited", 4, ES_ANY, &res));
    CHECK(res.revision == 4);
    OK(append1(s, "account-1", "Deposited", 5, ES_STREAM_EXISTS, &res));
    CHECK(res.revision == 5);
    OK(append1(s, "account-2", "Opened", 1, ES_ANY, &res));
    CHECK(res.revision == 1);
    CHECK(es_store_revision(s, "account-1", &rev, &E) == ES_OK && rev == 5);

    /* idempotent re-append of caller-given ids */
    es_uuid(id1);
    es_uuid(id2);
    es_uuid(id3);
    memset(evs, 0, sizeof evs);
    evs[0].id = id1;
    evs[0].type = "A";
    evs[1].id = id2;
    evs[1].type = "B";
    OK(es_store_append(s, "idem-1", evs, 2, ES_NO_STREAM, &res, &E));
    p2 = res.position;
    OK(append1(s, "idem-1", "C", 3, 2, &res));
    before = stats(s);
    OK(es_store_append(s, "idem-1", evs, 2, ES_NO_STREAM, &res, &E));
    CHECK(res.idempotent && res.revision == 3 && res.position == p2);
    CHECK(res.events[0].revision == 1 && res.events[1].revision == 2 && res.events[0].position == p2 - 1);
    OK(es_store_append(s, "idem-1", evs, 2, ES_ANY, &res, &E));
    CHECK(res.idempotent);
    OK(es_store_append(s, "idem-1", evs + 1, 1, 1, &res, &E));
    CHECK(res.idempotent && res.events[0].revision == 2);
    for (i = 0; i <= ES_UUID_LEN; i++) up[i] = (char)((id1[i] >= 'a' && id1[i] <= 'f') ? id1[i] - 32 : id1[i]);
    evs[0].id = up;
    OK(es_store_append(s, "idem-1", evs, 2, ES_STREAM_EXISTS, &res, &E));
    CHECK(res.idempotent);
    evs[0].id = id1;
    CHECK(es_store_append(s, "idem-1", evs, 2, 3, &res, &E) == ES_ECONFLICT);
    CHECK(es_store_append(s, "idem-2", evs, 2, ES_ANY, &res, &E) == ES_ECONFLICT && strstr(E.msg, id1));
    evs[0].id = id3;
    CHECK(es_store_append(s, "idem-1", evs, 2, ES_ANY, &res, &E) == ES_ECONFLICT && strstr(E.msg, id2));
    evs[0].id = id2;
    evs[1].id = id1;
    CHECK(es_store_append(s, "idem-1", evs, 2, ES_ANY, &res, &E) == ES_ECONFLICT);
    CHECK(stats(s).events == before.events && stats(s).streams == before.streams);
}

/* ---- values round-trip exactly ---- */

static void test_values(es_store *s) {
    es_append_result res;
    es_event_in ev;
    es_query q;
    es_cursor *cur;
    const es_event *got;
    json_t *data, *meta, *back;
    char *text;
    size_t len;
    const char *str;

    data = json_pack("{sIsIsfsfsfss#sss[iii]s{ss}}", "int", (json_int_t)42, "big", (json_int_t)9007199254740993LL,
                     "two53", 9007199254740992.0, "tenth", 0.1, "three", 3.0, "nul", "a\0b", (size_t)3, "utf8",
                     "\xc3\xbc\xe2\x82\xac\xf0\x9d\x84\x9e", "arr", 1, 2, 3, "obj", "k\0ey", "v");
    meta = json_pack("{ss#}", "correlation_id\0x", "c\0id", (size_t)4);
    CHECK(data && meta);
    text = es_json_encode(data, &len, NULL);
    memset(&ev, 0, sizeof ev);
    ev.type = "Valued";
    ev.data = data;
    ev.metadata = meta;
    OK(es_store_append(s, "values-1", &ev, 1, ES_NO_STREAM, &res, &E));
    es_query_init(&q, ES_Q_ID);
    q.id = res.events[0].id;
    OK(es_store_read(s, &q, &cur, &E));
    CHECK(es_cursor_next(cur, &got, &E) == 1);
    CHECK(got->data_len == len && memcmp(got->data, text, len) == 0);
    back = es_json_decode(got->data, got->data_len, NULL);
    CHECK(back && json_equal(back, data));
    CHECK(json_is_integer(json_object_get(back, "big")) &&
          json_integer_value(json_object_get(back, "big")) == 9007199254740993LL);
    CHECK(json_is_real(json_object_get(back, "two53")) && json_real_value(json_object_get(back, "two53")) == 9007199254740992.0);
    CHECK(json_real_value(json_object_get(back, "tenth")) == 0.1 && json_is_real(json_object_get(back, "three")));
    str = json_string_value(json_object_get(back, "nul"));
    CHECK(str && json_string_length(json_object_get(back, "nul")) == 3 && memcmp(str, "a\0b", 3) == 0);
    json_decref(back);
    back = es_json_decode(got->metadata, got->metadata_len, NULL);
    CHECK(back && json_equal(back, meta));
    json_decref(back);
    CHECK(strcmp(got->type, "Valued") == 0 && strcmp(got->stream, "values-1") == 0 && got->timestamp > 0);
    CHECK(es_cursor_next(cur, &got, &E) == 0);
    es_cursor_close(cur);
    es_free(text);
    json_decref(data);
    json_decref(meta);

    /* SQL-looking names are data */
    OK(append1(s, "x'); drop table es_events; --", "T'\"", 1, ES_NO_STREAM, &res));
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "x'); drop table es_events; --";
    {
        row r[2];
        CHECK(collect(s, &q, r, 2) == 1 && strcmp(r[0].type, "T'\"") == 0);
    }
}

/* ---- reads with every option, paging ---- */

static void test_reads(es_store *s) {
    static row rows[3000];
    const char *types[2] = { "Even", "Odd" };
    es_append_result res;
    es_query q;
    es_stats st;
    int64_t start, i, rev;
    long n;
    int ok;

    st = stats(s);
    start = st.position;
    fill_big(s);
    OK(append1(s, "small-1", "Odd", 1, ES_ANY, &res));
    OK(append1(s, "small-2", "Even", 2, ES_ANY, &res));

    es_query_init(&q, ES_Q_STREAM);
    q.stream = "big-1";
    n = collect(s, &q, rows, 3000);
    for (ok = n == 2500, i = 0; ok && i < n; i++) ok = rows[i].rev == i + 1 && rows[i].n == i + 1 && rows[i].pos == start + i + 1;
    CHECK(ok);
    q.backward = 1;
    n = collect(s, &q, rows, 3000);
    for (ok = n == 2500, i = 0; ok && i < n; i++) ok = rows[i].rev == 2500 - i;
    CHECK(ok);
    q.limit = 1;
    CHECK(collect(s, &q, rows, 1) == 1 && rows[0].rev == 2500);          /* last() */
    q.backward = 0;
    q.from = 999;
    q.to = 2001;
    q.limit = 0;
    n = collect(s, &q, rows, 3000);
    CHECK(n == 1003 && rows[0].rev == 999 && rows[n - 1].rev == 2001);
    q.limit = 1002;
    n = collect(s, &q, rows, 3000);
    CHECK(n == 1002 && rows[n - 1].rev == 2000);
    q.backward = 1;
    q.limit = 3;
    n = collect(s, &q, rows, 3000);
    CHECK(n == 3 && rows[0].rev == 2001 && rows[2].rev == 1999);
    q.stream = "missing-1";
    CHECK(collect(s, &q, rows, 3000) == 0);

    es_query_init(&q, ES_Q_ALL);
    q.after = start;
    n = collect(s, &q, rows, 3000);
    for (ok = n == 2502, i = 1; ok && i < n; i++) ok = rows[i].pos == rows[i - 1].pos + 1;
    CHECK(ok && rows[0].pos == start + 1);
    q.limit = 1500;
    CHECK(collect(s, &q, rows, 3000) == 1500 && rows[1499].pos == start + 1500);
    q.limit = 0;
    q.category = "small";
    n = collect(s, &q, rows, 3000);
    CHECK(n == 2 && strcmp(rows[0].stream, "small-1") == 0 && strcmp(rows[1].stream, "small-2") == 0);
    q.category = NULL;
    q.types = types + 1;
    q.ntypes = 1;
    n = collect(s, &q, rows, 3000);
    for (ok = n == 1251, i = 0; ok && i < n; i++) ok = strcmp(rows[i].type, "Odd") == 0;
    CHECK(ok);
    q.category = "big";
    q.types = types;
    q.ntypes = 2;
    CHECK(collect(s, &q, rows, 3000) == 2500);
    q.category = NULL;
    q.since = es_now_ms() + 60000;
    CHECK(collect(s, &q, rows, 3000) == 0);
    q.since = es_now_ms() - 60000;
    q.types = NULL;
    q.ntypes = 0;
    CHECK(collect(s, &q, rows, 3000) == 2502);

    es_query_init(&q, ES_Q_ID);
    q.id = "00000000-0000-4000-8000-000000000000";
    CHECK(collect(s, &q, rows, 1) == 0);

    es_query_init(&q, ES_Q_STREAMS);
    q.category = "small";
    n = collect(s, &q, rows, 10);
    CHECK(n == 2 && strcmp(rows[0].stream, "small-1") == 0 && rows[1].rev == 1);
    CHECK(es_store_revision(s, "big-1", &rev, &E) == ES_OK && rev == 2500);

    /* more streams than a page: names come back in byte order, once each */
    for (i = 0; i < 1005; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%04d", (int)(1004 - i));
        OK(append1(s, name, "T", i, ES_NO_STREAM, &res));
    }
    q.category = "many";
    n = collect(s, &q, rows, 3000);
    for (ok = n == 1005, i = 1; ok && i < n; i++) ok = strcmp(rows[i - 1].stream, rows[i].stream) < 0;
    CHECK(ok);
    q.category = NULL;
    q.limit = 1003;
    CHECK(collect(s, &q, rows, 3000) == 1003);
    st = stats(s);
    q.limit = 0;
    CHECK(collect(s, &q, rows, 3000) == st.streams && strcmp(st.backend, "postgres") == 0);
    CHECK(st.position >= start + 2502 + 1005 && st.events == st.position);
}

/* ---- snapshots, checkpoints, outbox, read-only ---- */

static void test_snapshots_and_more(es_store *s) {
    static row rows[10];
    es_store *s2, *ob, *ro;
    es_snapshot snap, got;
    es_append_result res;
    es_query q;
    int64_t cp, r, p;
    char id[ES_UUID_LEN + 1];
    es_stats st;

    s2 = open_opts(schema, 0, 2, 0);
    st = stats(s2);
    memset(&snap, 0, sizeof snap);
    snap.stream = "snap-1";
    snap.version = 7;
    for (r = 1; r <= 3; r++) {
        char data[64];
        snprintf(data, sizeof data, "{\"rev\":%d,\"z\":\"a\\u0000b\"}", (int)r);
        snap.revision = r;
        snap.data = data;
        snap.data_len = strlen(data);
        OK(es_store_save_snapshot(s2, &snap, &E));
    }
    CHECK(stats(s2).snapshots == st.snapshots + 2);
    OK(es_store_load_snapshot(s2, "snap-1", INT64_MAX, NULL, &got, &E));
    CHECK(got.revision == 3 && got.version == 7 && strcmp(got.data, "{\"rev\":3,\"z\":\"a\\u0000b\"}") == 0);
    CHECK(got.data_len == strlen(got.data) && strcmp(got.stream, "snap-1") == 0 && got.fingerprint && !*got.fingerprint);
    es_snapshot_clear(&got);
    OK(es_store_load_snapshot(s2, "snap-1", 2, NULL, &got, &E));
    CHECK(got.revision == 2);
    es_snapshot_clear(&got);
    CHECK(es_store_load_snapshot(s2, "snap-1", 1, NULL, &got, &E) == ES_ENOTFOUND);
    snap.revision = 2;
    snap.data = "{\"replaced\":true}";
    snap.data_len = 0;
    OK(es_store_save_snapshot(s2, &snap, &E));
    OK(es_store_load_snapshot(s2, "snap-1", 2, NULL, &got, &E));
    CHECK(strcmp(got.data, "{\"replaced\":true}") == 0);
    es_snapshot_clear(&got);
    snap.revision = 5;
    snap.fingerprint = "fp-1";
    OK(es_store_save_snapshot(s, &snap, &E));
    OK(es_store_load_snapshot(s, "snap-1", INT64_MAX, "fp-1", &got, &E));
    CHECK(got.revision == 5 && strcmp(got.fingerprint, "fp-1") == 0);
    es_snapshot_clear(&got);
    CHECK(es_store_load_snapshot(s, "snap-1", INT64_MAX, "fp-2", &got, &E) == ES_ENOTFOUND);
    CHECK(es_store_load_snapshot(s, "snap-none", INT64_MAX, NULL, &got, &E) == ES_ENOTFOUND);
    snap.data = "{not json";
    CHECK(es_store_save_snapshot(s, &snap, &E) == ES_EINVALID);
    es_store_close(s2);

    OK(es_store_get_checkpoint(s, "sub-1", &cp, &E));
    CHECK(cp == 0);
    OK(es_store_set_checkpoint(s, "sub-1", 5, &E));
    OK(es_store_set_checkpoint(s, "sub-1", 7, &E));
    OK(es_store_get_checkpoint(s, "sub-1", &cp, &E));
    CHECK(cp == 7);
    {
        int found = 1;
        OK(es_store_checkpoint(s, "sub-2", &cp, &found, &E));
        CHECK(!found && cp == 0);
        OK(es_store_set_checkpoint(s, "sub-2", 0, &E));
        OK(es_store_checkpoint(s, "sub-2", &cp, &found, &E));
        CHECK(found && cp == 0);
        OK(es_store_head(s, &cp, &E));
        CHECK(cp == stats(s).position);
    }

    ob = open_opts(schema, 1, 0, 0);
    OK(append1(s, "plain-1", "T", 1, ES_ANY, &res));           /* not in the outbox */
    OK(append1(ob, "order-1", "T", 1, ES_ANY, &res));
    p = res.position;
    snprintf(id, sizeof id, "%s", res.events[0].id);
    OK(append1(ob, "order-2", "T", 2, ES_ANY, &res));
    OK(append1(ob, "other-1", "T", 3, ES_ANY, &res));
    es_query_init(&q, ES_Q_UNDISPATCHED);
    CHECK(collect(ob, &q, rows, 10) == 3 && rows[0].pos == p && rows[1].pos == p + 1 && rows[2].n == 3);
    q.category = "order";
    CHECK(collect(ob, &q, rows, 10) == 2);
    q.after = p;
    CHECK(collect(ob, &q, rows, 10) == 1 && rows[0].pos == p + 1);
    OK(es_store_mark_dispatched(ob, id, &E));
    OK(es_store_mark_dispatched(ob, id, &E));
    CHECK(es_store_mark_dispatched(ob, "00000000-0000-4000-8000-000000000000", &E) == ES_ENOTFOUND);
    q.after = 0;
    CHECK(collect(ob, &q, rows, 10) == 1 && rows[0].pos == p + 1);
    es_store_close(ob);

    ro = open_opts(schema, 0, 0, 1);
    CHECK(append1(ro, "ro-1", "T", 1, ES_ANY, &res) == ES_EREADONLY);
    OK(es_store_revision(ro, "order-1", &r, &E));
    CHECK(r == 1);
    es_store_close(ro);
}

/* ---- NOTIFY, wait, connection loss ---- */

/* es_store_wait times out when nothing comes, and wakes well before its
 * timeout when another process appends. */
static void test_wait(es_store *s) {
    es_append_result res;
    int64_t after = stats(s).position;
    double t0 = now_s();
    int ready = 1, st;
    pid_t pid;

    OK(es_store_wait(s, after, 300, &ready, &E));
    CHECK(!ready && now_s() - t0 >= 0.25);
    if ((pid = fork()) == 0) {
        es_store *w;
        usleep(200000);
        w = open_store();
        st = append1(w, "wake-1", "T", 1, ES_ANY, &res);
        es_store_close(w);
        _exit(st == ES_OK ? 0 : 1);
    }
    t0 = now_s();
    OK(es_store_wait(s, after, 20000, &ready, &E));
    CHECK(ready && now_s() - t0 < 5);
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_notify_and_reconnect(void) {
    PGconn *pg = raw_connect();
    es_append_result res;
    es_stats before;
    es_options o;
    es_store *s = NULL;
    PGnotify *nt;
    PGresult *r;
    char sql[300], want[32], app_url[600];
    const char *vals[1];
    int64_t rev;
    int got = 0, i;

    /* a store of its own, named so that only its session is terminated
     * below (other runs may share the server) */
    snprintf(app_url, sizeof app_url, "%s%capplication_name=%s", url, strchr(url, '?') ? '&' : '?', schema);
    es_options_init(&o);
    o.schema = schema;
    OK(es_store_open(app_url, &o, &s, &E));
    if (!s) return;

    snprintf(sql, sizeof sql, "LISTEN \"%s_es_events\"", schema);
    raw_exec(pg, sql);
    OK(append1(s, "notify-1", "T", 1, ES_ANY, &res));
    snprintf(want, sizeof want, "%lld", (long long)res.position);
    for (i = 0; i < 100 && !got; i++) {
        PQconsumeInput(pg);
        while ((nt = PQnotifies(pg)) != NULL) {
            got |= strcmp(nt->extra, want) == 0;
            PQfreemem(nt);
        }
        if (!got) usleep(10000);
    }
    CHECK(got);
    test_wait(s);

    /* kill the store's session: the next call fails, the one after
     * reconnects */
    before = stats(s);
    vals[0] = schema;
    r = PQexecParams(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                     1, NULL, vals, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1);
    PQclear(r);
    usleep(100000);
    CHECK(append1(s, "reconnect-1", "T", 1, ES_ANY, &res) == ES_EBACKEND && strstr(E.msg, "connection"));
    OK(append1(s, "reconnect-1", "T", 2, ES_ANY, &res));
    CHECK(res.revision == 1 && stats(s).events == before.events + 1);
    OK(es_store_revision(s, "reconnect-1", &rev, &E));
    CHECK(rev == 1);
    test_wait(s);                                           /* LISTEN again after the reconnect */
    es_store_close(s);
    PQfinish(pg);
}

/* ---- concurrency: processes ---- */

/* Each child appends to one stream at every revision 0..n-1 with the exact
 * expected revision and reports, per revision, 1 if it won. */
static void child_same_stream(int fd, int child, int n) {
    es_store *s = open_store();
    es_append_result res;
    int r, rc;
    char won;
    for (r = 0; r < n; r++) {
        rc = append1(s, "race-1", "Raced", child * 1000 + r, r, &res);
        won = rc == ES_OK;
        if (rc != ES_OK && !(rc == ES_ECONFLICT && E.expected == r && E.actual > r)) won = 'x';
        if (write(fd, &won, 1) != 1) _exit(3);
    }
    es_store_close(s);
    _exit(0);
}

static void child_many_streams(int child, int n) {
    es_store *s = open_store();
    es_append_result res;
    char name[32];
    int i;
    for (i = 0; i < n; i++) {
        snprintf(name, sizeof name, "spread-%d", i % 17);
        if (append1(s, name, "Spread", child * 100000 + i, ES_ANY, &res) != ES_OK) _exit(4);
    }
    es_store_close(s);
    _exit(0);
}

static int wait_children(pid_t *pids, int n) {
    int i, st, ok = 1;
    for (i = 0; i < n; i++) {
        waitpid(pids[i], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    return ok;
}

static void test_concurrency(es_store *s) {
    enum { NPROC = 4, NREV = 60, NEACH = 150 };
    static row rows[NPROC * NEACH + 10], seen[NPROC * NEACH + 10];
    int fds[NPROC][2], wins[NREV] = { 0 }, bad = 0, i, r, ok;
    pid_t pids[NPROC];
    char won;
    es_query q;
    es_stats st;
    int64_t after;
    long n, nseen = 0;

    for (i = 0; i < NPROC; i++) {
        if (pipe(fds[i]) != 0) exit(2);
        if ((pids[i] = fork()) == 0) {
            close(fds[i][0]);
            child_same_stream(fds[i][1], i, NREV);
        }
        close(fds[i][1]);
    }
    for (i = 0; i < NPROC; i++) {
        for (r = 0; r < NREV; r++) {
            if (read(fds[i][0], &won, 1) != 1 || won == 'x') bad++;
            else wins[r] += won;
        }
        close(fds[i][0]);
    }
    CHECK(wait_children(pids, NPROC) && bad == 0);
    for (ok = 1, r = 0; r < NREV; r++) ok &= wins[r] == 1;
    CHECK(ok);
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "race-1";
    n = collect(s, &q, rows, NREV + 1);
    for (ok = n == NREV, r = 0; ok && r < n; r++) ok = rows[r].rev == r + 1 && rows[r].n % 1000 == r;
    CHECK(ok);

    /* many streams, with a reader polling read_all{after} all along: it
     * must see every committed event once, in the order of a re-read */
    st = stats(s);
    after = st.position;
    for (i = 0; i < NPROC; i++)
        if ((pids[i] = fork()) == 0) child_many_streams(i, NEACH);
    for (;;) {
        int done = waitpid(-1, NULL, WNOHANG) < 0;   /* ECHILD once all are reaped */
        es_query_init(&q, ES_Q_ALL);
        q.after = nseen ? seen[nseen - 1].pos : after;
        n = collect(s, &q, seen + nseen, (long)(sizeof seen / sizeof seen[0]) - nseen);
        if (n > 0) nseen += n;
        if (done) break;
        usleep(2000);
    }
    es_query_init(&q, ES_Q_ALL);
    q.after = after;
    n = collect(s, &q, rows, (long)(sizeof rows / sizeof rows[0]));
    CHECK(n == NPROC * NEACH && nseen == n);
    for (ok = 1, i = 0; ok && i < n && i < nseen; i++)
        ok = rows[i].pos == seen[i].pos && rows[i].n == seen[i].n && (i == 0 || rows[i].pos == rows[i - 1].pos + 1);
    CHECK(ok);
    for (ok = 1, i = 0; ok && i < 17; i++) {
        char name[32];
        long m, k;
        snprintf(name, sizeof name, "spread-%d", i);
        es_query_init(&q, ES_Q_STREAM);
        q.stream = name;
        m = collect(s, &q, rows, (long)(sizeof rows / sizeof rows[0]));
        for (k = 0; ok && k < m; k++) ok = rows[k].rev == k + 1;
    }
    CHECK(ok);
}

/* One append transaction held open by hand (the store's own append function
 * inside BEGIN): a reader must not see past it, a second writer waits, and
 * both appear in order once it commits. */
static void test_held_transaction(es_store *s) {
    static row rows[10];
    PGconn *pg;
    es_append_result res;
    char sql[600], id[ES_UUID_LEN + 1], go;
    es_query q;
    int64_t after = stats(s).position;
    pid_t pid;
    int st, fds[2];
    PGresult *r;

    /* the second writer is forked before the raw connection exists, so it
     * shares no socket with it, and starts when told */
    if (pipe(fds) != 0) exit(2);
    if ((pid = fork()) == 0) {
        es_store *w;
        close(fds[1]);
        if (read(fds[0], &go, 1) != 1) _exit(2);
        w = open_store();
        st = append1(w, "held-2", "Later", 2, ES_ANY, &res);
        es_store_close(w);
        _exit(st == ES_OK ? 0 : 1);
    }
    close(fds[0]);
    pg = raw_connect();
    es_uuid(id);
    raw_exec(pg, "BEGIN");
    snprintf(sql, sizeof sql,
             "SELECT status FROM \"%s\".es_append_v1('held-1', 'held', -1, ARRAY['%s'], ARRAY['Held'], "
             "ARRAY['{\"n\":1}'], ARRAY['{}'], ARRAY[0]::bigint[], false, false)", schema, id);
    r = PQexec(pg, sql);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "0") == 0);
    PQclear(r);
    go = 1;
    if (write(fds[1], &go, 1) != 1) exit(2);
    close(fds[1]);
    for (st = 0; st < 1000; st++) {                         /* until it waits for the store's lock */
        int waiting;
        r = PQexec(pg, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
        waiting = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) > 0;
        PQclear(r);
        if (waiting) break;
        usleep(10000);
    }
    CHECK(st < 1000);
    es_query_init(&q, ES_Q_ALL);
    q.after = after;
    CHECK(collect(s, &q, rows, 10) == 0);
    CHECK(waitpid(pid, &st, WNOHANG) == 0);                 /* the second writer waits */
    raw_exec(pg, "COMMIT");
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(collect(s, &q, rows, 10) == 2 && rows[0].pos == after + 1 && strcmp(rows[0].stream, "held-1") == 0 &&
          rows[1].pos == after + 2 && strcmp(rows[1].stream, "held-2") == 0);
    PQfinish(pg);
}

/* ---- bench ---- */

static void bench(void) {
    enum { W1 = 4000, W1_STREAMS = 200, W2 = 200, BATCH = 100 };
    static es_event_in evs[BATCH];
    es_store *s;
    es_append_result res;
    char name[32], u1[ES_UUID_LEN + 1], u2[ES_UUID_LEN + 1];
    const char *note = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt "
                       "ut labore et dolore magna aliqua ut enim ad minim veniam quis";
    double t0, t;
    int i, j, k, nproc;

    for (i = 0; i < BATCH; i++) {
        char sku[16];
        snprintf(sku, sizeof sku, "SKU-%06d", i);
        es_uuid(u1);
        es_uuid(u2);
        evs[i].type = "ItemAdded";
        evs[i].data = json_pack("{sss{sssisfss}}", "type", "ItemAdded", "data", "sku", sku, "qty", i % 5 + 1,
                                "price", 12.5, "note", note);
        evs[i].metadata = json_pack("{ssss}", "correlationId", u1, "causationId", u2);
    }
    s = open_store();
    t0 = now_s();
    for (i = 0; i < W1; i++) {
        snprintf(name, sizeof name, "w1-item-%06d", i % W1_STREAMS);
        if (es_store_append(s, name, evs, 1, i / W1_STREAMS, &res, &E) != ES_OK) fprintf(stderr, "%s\n", E.msg);
    }
    t = now_s() - t0;
    printf("W1 single-event appends: %d in %.2f s = %.0f events/s\n", W1, t, W1 / t);
    t0 = now_s();
    for (i = 0; i < W2; i++) {
        snprintf(name, sizeof name, "item-%06d", i);
        if (es_store_append(s, name, evs, BATCH, 0, &res, &E) != ES_OK) fprintf(stderr, "%s\n", E.msg);
    }
    t = now_s() - t0;
    printf("W2 %d-event batches: %d in %.2f s = %.0f events/s\n", BATCH, W2, t, W2 * BATCH / t);
    es_store_close(s);
    for (nproc = 2; nproc <= 4; nproc += 2) {       /* what the store's lock costs under contention */
        pid_t pids[4];
        t0 = now_s();
        for (k = 0; k < nproc; k++)
            if ((pids[k] = fork()) == 0) {
                es_store *w = open_store();
                for (j = 0; j < W1 / nproc; j++) {
                    snprintf(name, sizeof name, "c%d-%d-%d", nproc, k, j % 50);
                    es_store_append(w, name, evs, 1, j / 50, &res, &E);
                }
                es_store_close(w);
                _exit(0);
            }
        wait_children(pids, nproc);
        t = now_s() - t0;
        printf("W1 with %d writer processes: %d in %.2f s = %.0f events/s\n", nproc, W1, t, W1 / t);
    }
    for (i = 0; i < BATCH; i++) {
        json_decref((json_t *)evs[i].data);
        json_decref((json_t *)evs[i].metadata);
    }
}

int main(int argc, char **argv) {
    PGconn *pg;
    es_store *s;
    char sql[200];

    url = getenv("EVENTSTORE_PG_URL");
    if (!url || !*url) {
        fprintf(stderr, "pg_check: set EVENTSTORE_PG_URL (scripts/pg.sh start DIR prints one)\n");
        return 2;
    }
    snprintf(schema, sizeof schema, "pgc_%ld", (long)getpid());
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        bench();
    } else {
        test_open_errors();
        test_int8_text();
        s = open_store();
        test_append(s);
        test_values(s);
        test_reads(s);
        test_snapshots_and_more(s);
        test_held_transaction(s);
        test_concurrency(s);
        test_notify_and_reconnect();
        es_store_close(s);
    }
    pg = raw_connect();
    snprintf(sql, sizeof sql, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
    raw_exec(pg, sql);
    PQfinish(pg);
    if (argc > 1) return 0;
    printf("pg_check: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
