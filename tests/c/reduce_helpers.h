/* reduce_helpers.h: what the reducer's C checks share: rule specs in short,
 * JSON from text, and comparing a state with the JSON it should be */
/* SPDX-License-Identifier: MIT */
#ifndef ES_REDUCE_HELPERS_H
#define ES_REDUCE_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"
#include "check.h"

#define R(f, k) .field = f, .kind = ES_RULE_##k
#define N(a) (sizeof(a) / sizeof((a)[0]))

static json_t *J(const char *text) {
    json_t *v = es_json_decode(text, strlen(text), NULL);
    if (!v) fprintf(stderr, "bad JSON in the test: %s\n", text), exit(2);
    return v;
}

static char *show(const json_t *v) {
    static char buf[4][2048];
    static int k;
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s", s ? s : "(null)");
    free(s);
    return buf[k];
}

static void expect(const json_t *got, const char *want, const char *what) {
    json_t *w = J(want);
    CHECK(got && json_equal(got, w), "%s: got %s, want %s", what, got ? show(got) : "NULL", want);
    json_decref(w);
}

static void expect_free(json_t *got, const char *want, const char *what) {
    expect(got, want, what);
    json_decref(got);
}

static es_reducer *mk(const es_rule_spec *specs, size_t n, int64_t version) {
    es_reducer *r = NULL;
    es_err err;
    es_err_clear(&err);
    if (es_reducer_new(specs, n, version, &r, &err) != ES_OK)
        fprintf(stderr, "reducer rejected: %s\n", err.msg), exit(2);
    return r;
}

#endif
