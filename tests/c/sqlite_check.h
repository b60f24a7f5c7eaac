/* sqlite_check.h: what the SQLite checks share: CHECK macros, a temp folder, helpers */
/* SPDX-License-Identifier: MIT */
#ifndef ES_SQLITE_CHECK_H
#define ES_SQLITE_CHECK_H

#if defined(__GNUC__)
#define ES_CHECK_UNUSED __attribute__((unused))
#else
#define ES_CHECK_UNUSED
#endif

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eventstore.h"
#include "es_backend.h"

/* Build with -DES_TEST_NO_MEMORY_BACKEND while backends/memory.c does not
 * compile: the registry then links against this placeholder, which
 * es_backend_check refuses, so it can never be opened. */
#ifdef ES_TEST_NO_MEMORY_BACKEND
const es_backend es_memory_backend = { .version = 1, .scheme = "memory" };
#endif

static int failures, checks;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        checks++;                                                                   \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* Checks a call's code, printing the error message when it differs. */
#define CHECK_RC(call, want)                                                                  \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        checks++;                                                                             \
        if (rc_ != (want)) {                                                                  \
            fprintf(stderr, "%s:%d: %s returned %s (%s), wanted %s\n", __FILE__, __LINE__, #call, \
                    es_errname(rc_), err.msg, es_errname(want));                              \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

static char dir[256];

/* A fresh temp-file path under the test directory. */
ES_CHECK_UNUSED static const char *db_url(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "sqlite:%s/%s.db", dir, name);
    return buf;
}

/* Appends n events of one type with data {"i": k0 + k}. */
ES_CHECK_UNUSED static int append_n(es_store *s, const char *stream, const char *type, int n, int k0,
                    int64_t expected, es_append_result *res, es_err *err) {
    es_event_in evs[64];
    json_t *data[64];
    int i, rc;
    for (i = 0; i < n; i++) {
        data[i] = json_pack("{s:i}", "i", k0 + i);
        evs[i].id = NULL;
        evs[i].type = type;
        evs[i].data = data[i];
        evs[i].metadata = NULL;
    }
    rc = es_store_append(s, stream, evs, (size_t)n, expected, res, err);
    for (i = 0; i < n; i++) json_decref(data[i]);
    return rc;
}

typedef struct row {
    char id[ES_UUID_LEN + 1], stream[256], type[64], data[128], meta[128];
    int64_t revision, position, timestamp;
} row;

/* Runs a query and copies up to max rows; returns the row count or an error. */
ES_CHECK_UNUSED static int collect(es_store *s, const es_query *q, row *rows, int max, es_err *err) {
    es_cursor *cur;
    const es_event *ev;
    int n = 0, rc;
    if ((rc = es_store_read(s, q, &cur, err)) != ES_OK) return rc;
    while ((rc = es_cursor_next(cur, &ev, err)) == 1) {
        if (n < max) {
            row *r = &rows[n];
            memset(r, 0, sizeof *r);
            snprintf(r->id, sizeof r->id, "%s", ev->id);
            snprintf(r->stream, sizeof r->stream, "%s", ev->stream);
            snprintf(r->type, sizeof r->type, "%s", ev->type);
            snprintf(r->data, sizeof r->data, "%.*s", (int)ev->data_len, ev->data);
            snprintf(r->meta, sizeof r->meta, "%.*s", (int)ev->metadata_len, ev->metadata);
            r->revision = ev->revision;
            r->position = ev->position;
            r->timestamp = ev->timestamp;
        }
        n++;
    }
    es_cursor_close(cur);
    return rc < 0 ? rc : n;
}

ES_CHECK_UNUSED static int64_t total_events(es_store *s) {
    es_stats st;
    es_err err;
    return es_store_stats(s, &st, &err) == ES_OK ? st.events : -1;
}

/* Makes the temp folder /tmp/<prog>.<pid> for db_url; 0 when it cannot. */
ES_CHECK_UNUSED static int dir_create(const char *prog) {
    char cmd[600];
    snprintf(dir, sizeof dir, "/tmp/%s.%ld", prog, (long)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", dir);
        return 0;
    }
    return 1;
}

ES_CHECK_UNUSED static void dir_remove(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

#endif
