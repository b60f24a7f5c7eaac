/* pg_stream_check.c: PostgreSQL reads whose rows stream in (es_query.whole, libpq's single-row mode) */
/* SPDX-License-Identifier: MIT */
/*
 * Usage: EVENTSTORE_PG_URL=postgresql://... pg_stream_check
 * Exits 0 when every check passed. Works in its own schema (pgs_<pid>),
 * dropped at the end.
 */
#include "pg_check.h"

/* ---- streamed reads (es_query.whole) ---- */

/* A whole read gets its rows as the server sends them (libpq's single-row
 * mode), page after page: it must read exactly what a paged read reads. */
static int same_rows(es_store *s, es_query *q) {
    static row a[3000], b[3000];
    long na, nb, i;
    q->whole = 0;
    na = collect(s, q, a, 3000);
    q->whole = 1;
    nb = collect(s, q, b, 3000);
    q->whole = 0;
    if (na < 0 || na != nb) {
        fprintf(stderr, "pg_check: a paged read gave %ld rows, a whole one %ld\n", na, nb);
        return 0;
    }
    for (i = 0; i < na && i < 3000; i++)
        if (a[i].pos != b[i].pos || a[i].rev != b[i].rev || a[i].n != b[i].n || strcmp(a[i].id, b[i].id) != 0 ||
            strcmp(a[i].stream, b[i].stream) != 0 || strcmp(a[i].type, b[i].type) != 0)
            return 0;
    return na > 0;
}

/* The first n rows of a whole read of big-1, the cursor left open. */
static es_cursor *streamed(es_store *s, int n) {
    es_query q;
    es_cursor *cur = NULL;
    const es_event *ev;
    int i;
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "big-1";
    q.whole = 1;
    if (es_store_read(s, &q, &cur, &E) != ES_OK) return NULL;
    for (i = 0; i < n; i++)
        if (es_cursor_next(cur, &ev, &E) != 1 || ev->revision != i + 1) {
            es_cursor_close(cur);
            return NULL;
        }
    return cur;
}

static void test_streamed_reads(es_store *s) {
    const char *types[1] = { "Odd" };
    es_query q;
    es_cursor *cur;
    const es_event *ev;
    es_append_result res;
    es_options o;
    es_store *s2 = NULL;
    PGconn *pg;
    PGresult *r;
    const char *vals[1];
    char app_url[600];
    int64_t rev;
    int rc, rows;

    es_query_init(&q, ES_Q_STREAM);
    q.stream = "big-1";                                      /* 2,500 events: 3 pages */
    CHECK(same_rows(s, &q));
    q.backward = 1;
    CHECK(same_rows(s, &q));
    q.backward = 0;
    q.from = 700;
    q.to = 2100;
    q.limit = 1200;
    CHECK(same_rows(s, &q));
    es_query_init(&q, ES_Q_ALL);
    CHECK(same_rows(s, &q));
    q.after = 1000;
    q.limit = 1777;
    CHECK(same_rows(s, &q));
    q.category = "big";
    q.types = types;
    q.ntypes = 1;
    CHECK(same_rows(s, &q));

    /* another call on the store before the rows are all read: it runs,
     * and the read ends with an error instead of handing out rows of the
     * other call or leaving the connection busy */
    CHECK((cur = streamed(s, 10)) != NULL);
    OK(es_store_revision(s, "small-1", &rev, &E));
    CHECK(rev == 1);
    if (cur) {
        es_err_clear(&E);
        CHECK(es_cursor_next(cur, &ev, &E) == ES_EBACKEND && strstr(E.msg, "another call"));
        CHECK(es_cursor_next(cur, &ev, &E) == 0);
        es_cursor_close(cur);
    }
    /* closed halfway: the rest is read and dropped */
    CHECK((cur = streamed(s, 5)) != NULL);
    if (cur) es_cursor_close(cur);
    OK(append1(s, "small-1", "Odd", 3, 1, &res));
    CHECK((cur = streamed(s, 2500)) != NULL);
    if (cur) {
        CHECK(es_cursor_next(cur, &ev, &E) == 0);
        es_cursor_close(cur);
    }

    /* the store closed under a streamed read, then its session killed
     * under another: each read ends with an error, never a crash */
    snprintf(app_url, sizeof app_url, "%s%capplication_name=%s_s", url, strchr(url, '?') ? '&' : '?', schema);
    es_options_init(&o);
    o.schema = schema;
    OK(es_store_open(app_url, &o, &s2, &E));
    if (!s2) return;
    CHECK((cur = streamed(s2, 3)) != NULL);
    es_store_close(s2);
    if (cur) {
        CHECK(es_cursor_next(cur, &ev, &E) == ES_EINVALID && strstr(E.msg, "closed"));
        es_cursor_close(cur);
    }
    s2 = NULL;
    OK(es_store_open(app_url, &o, &s2, &E));
    if (!s2) return;
    CHECK((cur = streamed(s2, 1)) != NULL);
    pg = raw_connect();
    snprintf(app_url, sizeof app_url, "%s_s", schema);
    vals[0] = app_url;
    r = PQexecParams(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                     1, NULL, vals, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1);
    PQclear(r);
    PQfinish(pg);
    if (cur) {
        rows = 1;
        while ((rc = es_cursor_next(cur, &ev, &E)) == 1) rows++;
        /* rows already on their way may come first */
        CHECK(rc == ES_EBACKEND && rows < 2500);
        es_cursor_close(cur);
    }
    rc = es_store_revision(s2, "small-1", &rev, &E);
    if (rc != ES_OK) rc = es_store_revision(s2, "small-1", &rev, &E);
    CHECK(rc == ES_OK && rev == 2);
    CHECK((cur = streamed(s2, 2500)) != NULL);
    if (cur) es_cursor_close(cur);
    es_store_close(s2);
}

/* ---- global pages as binary COPY (postgres_read.c, PG_COPY_MIN) ---- */

/* Whether two events are the same, field by field and byte by byte. */
static int same_event(const es_event *a, const es_event *b) {
    return a->position == b->position && a->revision == b->revision && a->timestamp == b->timestamp &&
           strcmp(a->id, b->id) == 0 && strcmp(a->stream, b->stream) == 0 && strcmp(a->type, b->type) == 0 &&
           a->data_len == b->data_len && memcmp(a->data, b->data, a->data_len) == 0 && a->data[a->data_len] == '\0' &&
           a->metadata_len == b->metadata_len && memcmp(a->metadata, b->metadata, a->metadata_len) == 0 &&
           a->metadata[a->metadata_len] == '\0';
}

/* q read whole (pages of >= PG_COPY_MIN rows come as COPY) on s and paged
 * (prepared statements, one PGresult a page) on s2, side by side: the
 * number of events, or -1 at the first difference. */
static long same_copy(es_store *s, es_store *s2, es_query q) {
    es_cursor *a = NULL, *b = NULL;
    const es_event *ea, *eb;
    long n = 0;
    int ra, rb;
    q.whole = 1;
    if (es_store_read(s, &q, &a, &E) != ES_OK) return -1;
    q.whole = 0;
    if (es_store_read(s2, &q, &b, &E) != ES_OK) {
        es_cursor_close(a);
        return -1;
    }
    for (;;) {
        ra = es_cursor_next(a, &ea, &E);
        rb = es_cursor_next(b, &eb, &E);
        if (ra != rb || (ra == 1 && !same_event(ea, eb))) {
            fprintf(stderr, "pg_stream_check: event %ld differs (%d, %d)\n", n + 1, ra, rb);
            n = -1;
            break;
        }
        if (ra != 1) break;
        n++;
    }
    es_cursor_close(a);
    es_cursor_close(b);
    return n;
}

static void test_copy_pages(es_store *s) {
    /* texts with escapes, non-ASCII and \u0000 come back as stored; the
     * category (a quote and a backslash) stays a parameter: a category read
     * keeps its prepared statement */
    static const char *const cat = "co'py\\x";
    es_event_in evs[700];
    es_append_result res;
    es_query q;
    es_cursor *cur;
    const es_event *ev;
    es_store *s2 = NULL;
    es_options o;
    char stream[64], id[ES_UUID_LEN + 1], app_url[600];
    const char *vals[1];
    PGconn *pg;
    PGresult *r;
    json_t *data[700], *meta[700];
    int i, rc, rows;
    int64_t rev;

    for (i = 0; i < 700; i++) {
        memset(&evs[i], 0, sizeof evs[i]);
        evs[i].type = i % 3 ? "Copied" : "Tab\tType";
        data[i] = json_pack("{sI,ss,sf,s[is]}", "n", (json_int_t)i, "t", "caf\u00e9 \"q\" \\ \n", "x", 0.1 * i,
                            "list", i, "b");
        json_object_set_new(data[i], "z", json_stringn("a\0b", 3));
        meta[i] = json_pack("{ss}", "correlationId", "c-1");
        evs[i].data = data[i];
        evs[i].metadata = i % 2 ? meta[i] : NULL;
    }
    es_uuid(id);
    evs[5].id = id;                                  /* a given id, not a generated one */
    for (i = 0; i < 3; i++) {
        snprintf(stream, sizeof stream, "%s-%d", cat, i);
        OK(es_store_append(s, stream, evs, 700, ES_ANY, &res, &E));
        evs[5].id = NULL;
    }
    for (i = 0; i < 700; i++) {
        json_decref(data[i]);
        json_decref(meta[i]);
    }
    es_options_init(&o);
    o.schema = schema;
    OK(es_store_open(url, &o, &s2, &E));
    if (!s2) return;

    es_query_init(&q, ES_Q_ALL);
    CHECK(same_copy(s, s2, q) == stats(s).events);   /* every event of the store */
    q.after = stats(s).position - 2100;              /* the events above */
    CHECK(same_copy(s, s2, q) == 2100);              /* 3 pages: 1,000 + 1,000 + 100 */
    q.limit = 1500;
    CHECK(same_copy(s, s2, q) == 1500);              /* 1,000 by COPY, 500 by COPY */
    q.limit = 1300;
    CHECK(same_copy(s, s2, q) == 1300);              /* the last 300 the prepared way */
    q.limit = 0;
    q.after = stats(s).position - 800;
    CHECK(same_copy(s, s2, q) == 800);
    q.after = stats(s).position;                     /* nothing after the head */
    CHECK(same_copy(s, s2, q) == 0);
    q.after = 0;
    q.category = cat;
    CHECK(same_copy(s, s2, q) == 2100);
    q.category = "co'py";                            /* no such category: nothing */
    CHECK(same_copy(s, s2, q) == 0);
    es_store_close(s2);

    /* the pages of a whole global read are COPY statements indeed */
    snprintf(app_url, sizeof app_url, "%s%capplication_name=%s_c", url, strchr(url, '?') ? '&' : '?', schema);
    s2 = NULL;
    OK(es_store_open(app_url, &o, &s2, &E));
    if (!s2) return;
    es_query_init(&q, ES_Q_ALL);
    q.whole = 1;
    OK(es_store_read(s2, &q, &cur, &E));
    if (cur) {
        CHECK(es_cursor_next(cur, &ev, &E) == 1);
        pg = raw_connect();
        snprintf(app_url, sizeof app_url, "%s_c", schema);
        vals[0] = app_url;
        r = PQexecParams(pg, "SELECT query FROM pg_stat_activity WHERE application_name = $1", 1, NULL, vals, NULL,
                         NULL, 0);
        CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
              strncmp(PQgetvalue(r, 0, 0), "COPY (SELECT", 12) == 0);
        PQclear(r);
        PQfinish(pg);
        es_cursor_close(cur);
    }
    /* the session killed under a COPY page: the read ends with an error,
     * and the store's next call reconnects */
    OK(es_store_read(s2, &q, &cur, &E));
    if (cur) {
        CHECK(es_cursor_next(cur, &ev, &E) == 1);
        pg = raw_connect();
        r = PQexecParams(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                         1, NULL, vals, NULL, NULL, 0);
        CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1);
        PQclear(r);
        PQfinish(pg);
        rows = 1;
        while ((rc = es_cursor_next(cur, &ev, &E)) == 1) rows++;
        CHECK(rc == ES_EBACKEND && rows < stats(s).events);
        es_cursor_close(cur);
    }
    rc = es_store_revision(s2, "small-1", &rev, &E);
    if (rc != ES_OK) rc = es_store_revision(s2, "small-1", &rev, &E);
    CHECK(rc == ES_OK && rev >= 1);
    es_store_close(s2);

    /* another call in the middle of a COPY page: the COPY is read to its
     * end and dropped, the call runs, the read ends with an error */
    es_query_init(&q, ES_Q_ALL);
    q.after = stats(s).position - 2100;
    q.whole = 1;
    OK(es_store_read(s, &q, &cur, &E));
    if (cur) {
        for (i = 0; i < 10; i++) CHECK(es_cursor_next(cur, &ev, &E) == 1);
        OK(es_store_revision(s, "small-1", &rev, &E));
        es_err_clear(&E);
        CHECK(es_cursor_next(cur, &ev, &E) == ES_EBACKEND && strstr(E.msg, "another call"));
        es_cursor_close(cur);
    }
    /* closed halfway: the next call finds the connection free */
    OK(es_store_read(s, &q, &cur, &E));
    if (cur) {
        CHECK(es_cursor_next(cur, &ev, &E) == 1);
        es_cursor_close(cur);
    }
    OK(es_store_revision(s, "small-1", &rev, &E));
    rows = 0;
    OK(es_store_read(s, &q, &cur, &E));
    if (cur) {
        while ((rc = es_cursor_next(cur, &ev, &E)) == 1) rows++;
        CHECK(rc == 0 && rows == 2100);
        es_cursor_close(cur);
    }
}

/* ---- statements the session lost ---- */

/* Makes the store's session drop its prepared statements, as DISCARD ALL
 * or a pooler handing over another session would: a trigger on the events
 * table runs DEALLOCATE ALL in the session of the next append. Returns
 * whether the trigger ran. */
static int lose_statements(es_store *s, PGconn *pg) {
    es_append_result res;
    char sql[200];
    PGresult *r;
    int gone;
    snprintf(sql, sizeof sql, "INSERT INTO \"%s\".lose_flag VALUES (1)", schema);
    raw_exec(pg, sql);
    if (append1(s, "lost-1", "Odd", 1, ES_ANY, &res) != ES_OK) return 0;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".lose_flag", schema);
    r = PQexec(pg, sql);
    gone = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "0") == 0;
    PQclear(r);
    return gone;
}

/* Every kind of call prepares its statement again once and runs it: the
 * first statement of each kind after the loss gets SQLSTATE 26000. */
static void test_statements_lost(es_store *s) {
    static row rows[3000];
    PGconn *pg = raw_connect();
    es_query q;
    es_append_result res;
    int64_t rev = 0;
    long n, i, bad = 0;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE TABLE \"%s\".lose_flag (x int);"
             "CREATE FUNCTION \"%s\".lose() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF EXISTS (SELECT 1 FROM \"%s\".lose_flag) THEN DELETE FROM \"%s\".lose_flag; "
             "EXECUTE 'DEALLOCATE ALL'; END IF; RETURN NULL; END $$;"
             "CREATE TRIGGER lose AFTER INSERT ON \"%s\".es_events FOR EACH STATEMENT "
             "EXECUTE FUNCTION \"%s\".lose();",
             schema, schema, schema, schema, schema, schema);
    raw_exec(pg, sql);

    /* a streamed stream read: the resend before the first row */
    CHECK(lose_statements(s, pg));
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "big-1";
    q.whole = 1;
    n = collect(s, &q, rows, 3000);
    for (i = 0; i < n && i < 3000; i++) bad += rows[i].rev != i + 1 || rows[i].n != i + 1;
    CHECK(n == 2500 && bad == 0);
    /* the same read in pages (pg_run) */
    CHECK(lose_statements(s, pg));
    q.whole = 0;
    CHECK(collect(s, &q, rows, 3000) == 2500 && rows[2499].n == 2500);
    /* a streamed lean read, as state() makes: once to prepare it */
    q.whole = 1;
    q.lean = 1;
    CHECK(collect(s, &q, rows, 3000) == 2500);
    CHECK(lose_statements(s, pg));
    CHECK(collect(s, &q, rows, 3000) == 2500 && rows[0].n == 1 && rows[2499].rev == 2500);
    /* the whole store, streamed */
    CHECK(lose_statements(s, pg));
    es_query_init(&q, ES_Q_ALL);
    q.whole = 1;
    n = collect(s, &q, rows, 3000);
    CHECK(n > 2500 && n == stats(s).events);
    /* a single-row call and an append */
    CHECK(lose_statements(s, pg));
    OK(es_store_revision(s, "big-1", &rev, &E));
    CHECK(rev == 2500);
    CHECK(lose_statements(s, pg));
    OK(append1(s, "lost-1", "Odd", 2, ES_ANY, &res));
    CHECK(res.revision == 7);
    snprintf(sql, sizeof sql, "DROP TRIGGER lose ON \"%s\".es_events", schema);
    raw_exec(pg, sql);
    PQfinish(pg);
}

int main(void) {
    PGconn *pg;
    es_store *s;
    es_append_result res;
    char sql[200];

    check_file = "pg_stream_check";
    url = getenv("EVENTSTORE_PG_URL");
    if (!url || !*url) {
        fprintf(stderr, "pg_stream_check: set EVENTSTORE_PG_URL (scripts/pg.sh start DIR prints one)\n");
        return 2;
    }
    snprintf(schema, sizeof schema, "pgs_%ld", (long)getpid());
    s = open_store();
    fill_big(s);
    OK(append1(s, "small-1", "Odd", 1, ES_ANY, &res));
    test_streamed_reads(s);
    test_copy_pages(s);
    test_statements_lost(s);
    es_store_close(s);
    pg = raw_connect();
    snprintf(sql, sizeof sql, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
    raw_exec(pg, sql);
    PQfinish(pg);
    printf("pg_stream_check: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
