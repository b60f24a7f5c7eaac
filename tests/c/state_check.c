/* state_check.c: checks of es_store_state on memory: and sqlite::memory:
 * (snapshots, initial states, queries, a failing custom rule) and of the
 * data index records es_store_append_text_ix hands to a backend */
/* SPDX-License-Identifier: MIT */
/* Built and run by make test, like every other NAME_check.c here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h" /* es_store_append_text_ix and its index records */
#include "reduce_helpers.h"

/* A custom rule that fails, as a callback of the caller's would. */
static int fail_custom(void *ud, int id, const char *field, json_t **acc, const json_t *value,
                       const es_event *ev, es_err *err) {
    (void)ud, (void)id, (void)acc, (void)value;
    return es_err_set(err, ES_ECALLBACK, "custom '%s' failed on %s", field, ev->type);
}

static void append(es_store *s, const char *stream, const char *type, const char *data) {
    es_event_in in;
    es_err err;
    json_t *d = J(data);
    memset(&in, 0, sizeof in);
    in.type = type, in.data = d;
    if (es_store_append(s, stream, &in, 1, ES_ANY, NULL, &err) != ES_OK)
        fprintf(stderr, "append failed: %s\n", err.msg), exit(2);
    json_decref(d);
}

static void state_is(es_store *s, const char *stream, const es_reducer *r, const json_t *init,
                     const char *want, int64_t want_rev, const char *what) {
    json_t *st = NULL;
    int64_t rev = -1;
    es_err err;
    int rc = es_store_state(s, stream, r, init, NULL, NULL, &st, &rev, &err);
    CHECK(rc == ES_OK && rev == want_rev, "%s: state of '%s': %d %s, revision %lld", what, stream, rc,
          rc ? err.msg : "", (long long)rev);
    expect_free(st, want, what);
}

static void test_state(const char *url) {
    es_rule_spec osiris[] = { { R("*", LAST) }, { R("overtime", SUM) } };
    es_rule_spec other[] = { { R("overtime", MAX) } };
    es_rule_spec company[] = { { R("salary", SUM) }, { R("*", DROP) } };
    es_rule_spec bad[] = { { R("overtime", CUSTOM), .custom_id = 99 } };
    es_reducer *r = mk(osiris, 2, 0), *r2 = mk(other, 1, 0), *rc = mk(company, 2, 0), *rb = mk(bad, 1, 0);
    es_options opt;
    es_store *s = NULL;
    es_snapshot snap;
    es_err err;
    json_t *st, *where = J("{\"company\":\"acme\"}"), *init = J("{\"overtime\":0,\"tags\":[]}");
    int64_t rev, pos;
    int rcode;

    es_options_init(&opt);
    opt.snapshot_every = 3;
    CHECK(es_store_open(url, &opt, &s, &err) == ES_OK, "%s: cannot open: %s", url, err.msg);
    if (!s) goto done;
    append(s, "employee-alice", "EmployeeHired", "{\"name\":\"alice\",\"company\":\"acme\",\"salary\":4000}");
    append(s, "employee-bob", "EmployeeHired", "{\"name\":\"bob\",\"company\":\"acme\",\"salary\":3000}");
    append(s, "employee-bob", "OvertimeWorked", "{\"overtime\":1}");
    append(s, "employee-bob", "OvertimeWorked", "{\"overtime\":3}");
    append(s, "employee-bob", "EmployeeMoved", "{\"company\":\"globex\",\"salary\":3500}");
    state_is(s, "employee-bob", r, NULL, "{\"name\":\"bob\",\"company\":\"globex\",\"salary\":3500,\"overtime\":4}",
             4, "state of bob");
    rcode = es_store_load_snapshot(s, "employee-bob", INT64_MAX, es_reducer_fingerprint(r), &snap, &err);
    CHECK(rcode == ES_OK && snap.revision == 4 && snap.data, "%s: snapshot after 4 folded events: %d %s", url,
          rcode, err.msg);
    es_snapshot_clear(&snap);
    /* a snapshot the reducer made is used: only the events after it fold */
    snap.stream = "employee-bob", snap.revision = 4, snap.fingerprint = (char *)es_reducer_fingerprint(r);
    snap.data = "{\"marker\":1,\"overtime\":10}", snap.data_len = strlen(snap.data);
    CHECK(es_store_save_snapshot(s, &snap, &err) == ES_OK, "%s: save snapshot: %s", url, err.msg);
    append(s, "employee-bob", "OvertimeWorked", "{\"overtime\":2}");
    state_is(s, "employee-bob", r, NULL, "{\"marker\":1,\"overtime\":12}", 5, "state from the snapshot");
    /* other rules, or another initial state, do not use it */
    state_is(s, "employee-bob", r2, NULL, "{\"name\":\"bob\",\"company\":\"globex\",\"salary\":3500,\"overtime\":3}",
             5, "other rules rebuild");
    state_is(s, "employee-bob", r, init,
             "{\"name\":\"bob\",\"company\":\"globex\",\"salary\":3500,\"overtime\":6,\"tags\":[]}", 5,
             "another initial state rebuilds");
    expect(init, "{\"overtime\":0,\"tags\":[]}", "initial state unchanged");
    state_is(s, "employee-nobody", r, init, "{\"overtime\":0,\"tags\":[]}", 0, "a missing stream");
    CHECK(es_store_state(s, "employee-bob", rb, NULL, fail_custom, NULL, &st, &rev, &err) == ES_ECALLBACK && !st,
          "%s: a failing custom rule fails state()", url);
    CHECK(es_store_state_query(s, "employee", where, rc, NULL, NULL, NULL, &st, &pos, &err) == ES_OK,
          "%s: state query: %s", url, err.msg);
    expect(st, "{\"salary\":7000}", "acme salaries across employees");
    CHECK(pos == 2, "%s: last folded position %lld", url, (long long)pos);
    json_decref(st);
    CHECK(es_store_state_query(s, "employee", NULL, rc, NULL, NULL, NULL, &st, &pos, &err) == ES_OK, "query");
    expect_free(st, "{\"salary\":10500}", "all salaries");
done:
    es_store_close(s);
    json_decref(where), json_decref(init);
    es_reducer_free(r), es_reducer_free(r2), es_reducer_free(rc), es_reducer_free(rb);
}

/* es_store_append_text_ix: a backend that keeps the index (memory) hands it
 * back with each event, and state() folds from it; an index that does not
 * fit its text is not trusted (the text is scanned); other backends keep
 * none. The state is the same on every path. */
static void test_index_path(const char *url, int keeps) {
    static const char *const texts[] = {
        "{\"a\":1,\"s\":\"x\",\"r\":0.5}", "{\"a\":2,\"s\":\"yy\"}", "{\"a\":3,\"n\":{\"k\":1}}", "{}",
    };
    /* the second record's first value is 1 byte too long: not the text's */
    static const struct { uint16_t n, ok; es_member_at m[3]; } recs[] = {
        { 3, 1, { { 1, 1, ES_V_INT }, { 3, 1, ES_V_STRING }, { 3, 1, ES_V_REAL } } },
        { 2, 1, { { 2, 1, ES_V_INT }, { 4, 1, ES_V_STRING } } },
        { 2, 1, { { 1, 1, ES_V_INT }, { 7, 1, ES_V_OTHER } } },
        { 0, 1, { { 0, 0, 0 } } },
    };
    es_rule_spec rules[] = { { R("*", LAST) }, { R("a", SUM) } };
    es_event_text in[N(texts)];
    es_buf ix = { NULL, 0, 0 };
    es_reducer *r = mk(rules, N(rules), 0);
    es_options opt;
    es_store *s = NULL;
    es_cursor *cur = NULL;
    const es_event *ev;
    es_query q;
    es_err err;
    json_t *st = NULL;
    int64_t rev = 0;
    size_t i, with_ix = 0;

    memset(in, 0, sizeof in);
    for (i = 0; i < N(texts); i++) {
        in[i].type = "T";
        in[i].data = texts[i];
        in[i].data_len = strlen(texts[i]);
        CHECK(es_buf_add(&ix, (const char *)&recs[i], sizeof(es_data_ix) + recs[i].n * sizeof(es_member_at)) == ES_OK,
              "index: no memory");
    }
    es_options_init(&opt);
    CHECK(es_store_open(url, &opt, &s, &err) == ES_OK, "%s: cannot open: %s", url, err.msg);
    if (!s) goto done;
    CHECK(es_store_append_text_ix(s, "ix-1", in, N(in), (const es_data_ix *)(const void *)ix.data, ES_ANY, NULL,
                                  &err) == ES_OK, "%s: append with an index: %s", url, err.msg);
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "ix-1";
    CHECK(es_store_read(s, &q, &cur, &err) == ES_OK, "%s: read: %s", url, err.msg);
    while (cur && es_cursor_next(cur, &ev, &err) == 1) {
        if (!ev->data_ix) continue;
        with_ix++;
        CHECK(ev->data_ix->n == recs[ev->revision - 1].n && ev->data_ix->m[0].vlen == recs[ev->revision - 1].m[0].vlen,
              "%s: event %lld: not the index it was given", url, (long long)ev->revision);
    }
    es_cursor_close(cur);
    CHECK(with_ix == (keeps ? N(texts) : 0), "%s: %zu events read with an index", url, with_ix);
    CHECK(es_store_state(s, "ix-1", r, NULL, NULL, NULL, &st, &rev, &err) == ES_OK && rev == 4, "%s: state: %s",
          url, err.msg);
    expect_free(st, "{\"a\":6,\"s\":\"yy\",\"r\":0.5,\"n\":{\"k\":1}}", "state from indexed texts");
done:
    if (s) es_store_close(s);
    es_buf_free(&ix);
    es_reducer_free(r);
}

int main(void) {
    test_state("memory:");
    test_state("sqlite::memory:");
    test_index_path("memory:", 1);
    test_index_path("sqlite::memory:", 0);
    printf("state_check: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
