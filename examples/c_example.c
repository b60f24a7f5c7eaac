/* c_example.c: the core used from C alone, with no Lua: append, read, conflict */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventstore.h"

static int fail(const char *what, const es_err *err) {
    fprintf(stderr, "c_example: %s: %s: %s\n", what, es_errname(err->code), err->msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "sqlite::memory:";
    es_store *s = NULL;
    es_err err;
    es_event_in evs[2];
    es_append_result res;
    es_cursor *cur = NULL;
    const es_event *ev;
    es_query q;
    json_t *opened = json_pack("{s:s}", "owner", "ann");
    json_t *deposited = json_pack("{s:i}", "amount", 10);
    int rc, n = 0;

    if (!opened || !deposited) return 1;
    if (es_store_open(url, NULL, &s, &err) != ES_OK) return fail("open", &err);

    memset(evs, 0, sizeof evs);
    evs[0].type = "Opened";
    evs[0].data = opened;
    evs[1].type = "Deposited";
    evs[1].data = deposited;
    if (es_store_append(s, "account-42", evs, 2, ES_NO_STREAM, &res, &err) != ES_OK)
        return fail("append", &err);
    printf("appended %zu events: revision %lld, position %lld\n", res.count, (long long)res.revision,
           (long long)res.position);

    /* A second writer that still believes the stream is new gets a conflict. */
    rc = es_store_append(s, "account-42", evs, 1, ES_NO_STREAM, &res, &err);
    if (rc != ES_ECONFLICT) {
        fprintf(stderr, "c_example: expected a conflict, got %d\n", rc);
        return 1;
    }
    printf("conflict as expected: expected %lld, actual %lld\n", (long long)err.expected,
           (long long)err.actual);

    es_query_init(&q, ES_Q_STREAM);
    q.stream = "account-42";
    if (es_store_read(s, &q, &cur, &err) != ES_OK) return fail("read", &err);
    while ((rc = es_cursor_next(cur, &ev, &err)) == 1) {
        printf("%lld %s %.*s\n", (long long)ev->revision, ev->type, (int)ev->data_len, ev->data);
        n++;
    }
    es_cursor_close(cur);
    if (rc < 0) return fail("read", &err);
    es_store_close(s);
    json_decref(opened);
    json_decref(deposited);
    if (n != 2) {
        fprintf(stderr, "c_example: read %d events, expected 2\n", n);
        return 1;
    }
    printf("ok\n");
    return 0;
}
