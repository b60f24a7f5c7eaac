/* pg_check.h: what the PostgreSQL checks share: the server's URL, CHECK and OK, a store, rows */
/* SPDX-License-Identifier: MIT */
/* Each check program is one file that includes this once. */
#ifndef ES_PG_CHECK_H
#define ES_PG_CHECK_H

#if defined(__GNUC__)
#define PG_CHECK_UNUSED __attribute__((unused))
#else
#define PG_CHECK_UNUSED
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libpq-fe.h>

#include "eventstore.h"

static const char *url;
static const char *check_file = "pg_check";   /* messages name the program */
static char schema[64];
static int checks, failures;
static es_err E;

#define CHECK(cond) check((cond), #cond, __LINE__)
/* A call that must succeed; prints the store's message when it does not. */
#define OK(call) check((call) == ES_OK, #call, __LINE__)

PG_CHECK_UNUSED static int check(int ok, const char *what, int line) {
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "%s:%d: failed: %s", check_file, line, what);
        if (E.code) fprintf(stderr, " [%s: %s]", es_errname(E.code), E.msg);
        fprintf(stderr, "\n");
    }
    return ok;
}

PG_CHECK_UNUSED static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

PG_CHECK_UNUSED static void quiet(void *arg, const char *message) {
    (void)arg, (void)message;
}

PG_CHECK_UNUSED static PGconn *raw_connect(void) {
    PGconn *pg = PQconnectdb(url);
    PQsetNoticeProcessor(pg, quiet, NULL);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "pg_check: cannot connect: %s", PQerrorMessage(pg));
        exit(2);
    }
    return pg;
}

PG_CHECK_UNUSED static void raw_exec(PGconn *pg, const char *sql) {
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "pg_check: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

PG_CHECK_UNUSED static es_store *open_opts(const char *sch, int outbox, int64_t max_snapshots, int readonly) {
    es_options o;
    es_store *s = NULL;
    es_options_init(&o);
    o.schema = sch;
    o.outbox = outbox;
    o.max_snapshots = max_snapshots;
    o.readonly = readonly;
    es_err_clear(&E);
    if (es_store_open(url, &o, &s, &E) != ES_OK) {
        fprintf(stderr, "pg_check: open: %s\n", E.msg);
        exit(2);
    }
    return s;
}

PG_CHECK_UNUSED static es_store *open_store(void) { return open_opts(schema, 0, 0, 0); }

/* Appends one event whose data is {"n": n}. */
PG_CHECK_UNUSED static int append1(es_store *s, const char *stream, const char *type, json_int_t n, int64_t expected,
                   es_append_result *res) {
    es_event_in ev;
    json_t *d = json_pack("{sI}", "n", n);
    int rc;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.data = d;
    es_err_clear(&E);
    rc = es_store_append(s, stream, &ev, 1, expected, res, &E);
    json_decref(d);
    return rc;
}

typedef struct row {
    int64_t pos, rev, n;
    char stream[64], type[32], id[40];
} row;

/* Runs q and copies up to cap rows; returns the row count or -1. */
PG_CHECK_UNUSED static long collect(es_store *s, const es_query *q, row *rows, long cap) {
    es_cursor *cur;
    const es_event *ev;
    long n = 0;
    int rc;
    es_err_clear(&E);
    if (es_store_read(s, q, &cur, &E) != ES_OK) return -1;
    while ((rc = es_cursor_next(cur, &ev, &E)) == 1) {
        if (n < cap) {
            row *r = &rows[n];
            json_t *d;
            memset(r, 0, sizeof *r);
            r->pos = ev->position;
            r->rev = ev->revision;
            snprintf(r->stream, sizeof r->stream, "%s", ev->stream);
            if (q->kind != ES_Q_STREAMS) {
                snprintf(r->type, sizeof r->type, "%s", ev->type);
                snprintf(r->id, sizeof r->id, "%s", ev->id);
                d = es_json_decode(ev->data, ev->data_len, NULL);
                if (d && json_is_integer(json_object_get(d, "n"))) r->n = json_integer_value(json_object_get(d, "n"));
                json_decref(d);
            }
        }
        n++;
    }
    es_cursor_close(cur);
    return rc < 0 ? -1 : n;
}

PG_CHECK_UNUSED static es_stats stats(es_store *s) {
    es_stats st;
    es_err_clear(&E);
    if (es_store_stats(s, &st, &E) != ES_OK) memset(&st, 0, sizeof st);
    return st;
}

/* big-1: 2,500 events in 5 batches of 500, so reads cross pages: types Even
 * and Odd by n, data {"n": 1..2500}. */
PG_CHECK_UNUSED static void fill_big(es_store *s) {
    static es_event_in evs[500];
    static json_t *datas[500];
    static const char *const types[2] = { "Even", "Odd" };
    es_append_result res;
    int b, i;
    memset(evs, 0, sizeof evs);
    for (i = 0; i < 500; i++) datas[i] = json_object();
    for (b = 0; b < 5; b++) {
        for (i = 0; i < 500; i++) {
            json_object_set_new(datas[i], "n", json_integer(b * 500 + i + 1));
            evs[i].type = types[(b * 500 + i + 1) % 2];
            evs[i].data = datas[i];
        }
        OK(es_store_append(s, "big-1", evs, 500, b * 500, &res, &E));
    }
    for (i = 0; i < 500; i++) json_decref(datas[i]);
}

#endif
