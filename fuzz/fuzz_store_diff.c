/* fuzz_store_diff.c: libFuzzer target: the memory and SQLite backends against each other */
/* SPDX-License-Identifier: MIT */
/*
 * The input decodes to up to 24 operations run on a "memory:" store and a
 * "sqlite::memory:" store side by side: appends (stream names and types
 * from a pool of tricky ones: empty, 255/256 bytes, invalid UTF-8, SQL and
 * LIKE characters; given, repeated, upper-case or invalid ids, and given
 * ids that name a position as generated ids do; any expected revision),
 * stream reads (from/to/backward/limit) and read_all (after, limit,
 * category, types). Both backends must return the same code and, on
 * success, the same revisions, positions, counts, idempotent flag, and the
 * same events (id, stream, revision, position, type, data, metadata; not
 * the timestamp). SQLite keeps no index entry for an id that names its own
 * row, so these ids go down both of its lookup paths.
 */
#include <strings.h>

#include "fuzz_common.h"
#include "eventstore.h"

#define MAX_OPS 24
#define MAX_BATCH 4

static const char *const streams[] = {
    "a-1", "a-2", "b-1", "a", "", "a-1\xff", "x'; DROP TABLE es_events; --", "a%-1", "a_-1", "-", "a--", "\xc3\xa9-1",
    NULL, NULL,   /* 255 and 256 bytes, filled in below */
};
#define NSTREAMS (sizeof streams / sizeof *streams)
static const char *const types[] = { "T", "U", "", "\xed\xa0\x80", "T%s", "V" };
static const char *const categories[] = { "a", "b", "a%", "_", "x'; DROP TABLE es_events; --", "" };
static const char *const ids[] = {
    "0d6f3a8e-4b8c-4c1a-9f1e-2d3b4c5d6e7f", "0D6F3A8E-4B8C-4C1A-9F1E-2D3B4C5D6E7F",
    "11111111-2222-4333-8444-555555555555", "not-a-uuid", "0d6f3a8e-4b8c-4c1a-9f1e-2d3b4c5d6e7g",
    /* name positions 1, 2 and 3 (the first 48 bits) */
    "00000000-0001-4abc-8def-000000000001", "00000000-0002-8abc-8def-000000000002",
    "00000000-0003-4ABC-8DEF-000000000003",
};

static char s255[256], s256[257];

static const char *stream_of(fz *f) {
    unsigned k = fz_pick(f, NSTREAMS);
    if (k == NSTREAMS - 2) return s255;
    if (k == NSTREAMS - 1) return s256;
    return streams[k];
}

static int64_t expected_of(fz *f) {
    switch (fz_pick(f, 6)) {
    case 0: return ES_ANY;
    case 1: return ES_NO_STREAM;
    case 2: return ES_STREAM_EXISTS;
    case 3: return (int64_t)fz_pick(f, 8);
    case 4: return INT64_MAX;
    default: return -3 - (int64_t)fz_pick(f, 3);   /* invalid */
    }
}

static json_t *data_of(fz *f) {
    switch (fz_pick(f, 6)) {
    case 0: return NULL;
    case 1: return json_pack("{s:i}", "n", (int)(int8_t)fz_byte(f));
    case 2: return json_pack("{s:s,s:[i,f]}", "s", "x\xc3\xa9", "l", 1, 0.5);
    case 3: return json_pack("{s:{s:n}}", "o", "p");
    case 4: return json_array();   /* not an object: refused */
    default: return json_object();
    }
}

/* The id as compared: a given one (from the pool, stored lower-case) as
 * it is; of a generated one (random bits on each backend) the position it
 * carries and its version, the first 15 characters. */
static const char *id_text(const char *id, char buf[32]) {
    size_t i;
    for (i = 0; i < sizeof ids / sizeof *ids; i++)
        if (strcasecmp(id, ids[i]) == 0) return id;
    snprintf(buf, 32, "generated %.15s", id);
    return buf;
}

static const char *nz(const char *s) { return s ? s : "(null)"; }

/* One event of a cursor, as a line of text, for comparison (stream-list
 * rows carry only stream and revision: the rest is NULL). */
static char *event_text(const es_event *e, int streams_only) {
    size_t n = 256 + strlen(nz(e->stream)) + strlen(nz(e->type)) + e->data_len + e->metadata_len;
    char *s = malloc(n), idbuf[32];
    if (streams_only) {
        snprintf(s, n, "%s|%lld", nz(e->stream), (long long)e->revision);
        return s;
    }
    snprintf(s, n, "%s|%s|%lld|%lld|%s|%.*s|%.*s", e->id ? id_text(e->id, idbuf) : "(null)", nz(e->stream),
             (long long)e->revision, (long long)e->position, nz(e->type), (int)e->data_len,
             e->data ? e->data : "", (int)e->metadata_len, e->metadata ? e->metadata : "");
    return s;
}

/* Runs q on both stores and compares every row. */
static void compare_read(es_store *m, es_store *q_s, const es_query *q) {
    es_cursor *c1 = NULL, *c2 = NULL;
    es_err e1, e2;
    int r1 = es_store_read(m, q, &c1, &e1), r2 = es_store_read(q_s, q, &c2, &e2);
    FZ_CHECK((r1 == ES_OK) == (r2 == ES_OK) && (r1 == ES_OK || r1 == r2), "read kind %d: memory %d (%s), sqlite %d (%s)",
             (int)q->kind, r1, r1 ? e1.msg : "", r2, r2 ? e2.msg : "");
    if (r1 != ES_OK) return;
    for (;;) {
        const es_event *a = NULL, *b = NULL;
        int n1 = es_cursor_next(c1, &a, &e1), n2 = es_cursor_next(c2, &b, &e2);
        FZ_CHECK(n1 == n2, "cursor: memory %d (%s), sqlite %d (%s)", n1, n1 < 0 ? e1.msg : "", n2, n2 < 0 ? e2.msg : "");
        if (n1 != 1) break;
        {
            char *t1 = event_text(a, q->kind == ES_Q_STREAMS), *t2 = event_text(b, q->kind == ES_Q_STREAMS);
            FZ_CHECK(strcmp(t1, t2) == 0, "rows differ:\n memory %s\n sqlite %s", t1, t2);
            free(t1);
            free(t2);
        }
    }
    es_cursor_close(c1);
    es_cursor_close(c2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz f = { data, data + size };
    es_store *m = NULL, *q = NULL;
    es_err err;
    size_t nops = fz_pick(&f, MAX_OPS + 1), op;

    if (!s255[0]) {
        memset(s255, 's', 255);
        memcpy(s255, "long-", 5);
        memset(s256, 's', 256);
    }
    FZ_CHECK(es_store_open("memory:", NULL, &m, &err) == ES_OK, "open memory: %s", err.msg);
    FZ_CHECK(es_store_open("sqlite::memory:", NULL, &q, &err) == ES_OK, "open sqlite: %s", err.msg);

    for (op = 0; op < nops && !fz_done(&f); op++) {
        unsigned kind = fz_pick(&f, 4);
        if (kind <= 1) {
            es_event_in evs[MAX_BATCH];
            json_t *datas[MAX_BATCH];
            es_append_result r1, r2;
            es_err e1, e2;
            const char *stream = stream_of(&f);
            size_t n = 1 + fz_pick(&f, MAX_BATCH), i;
            int64_t expected = expected_of(&f);
            int c1, c2;
            memset(evs, 0, sizeof evs);
            for (i = 0; i < n; i++) {
                unsigned b = fz_byte(&f);
                evs[i].type = types[b % 6];
                /* ids[5..7] on bits 0xC0, so older inputs keep their other ids */
                evs[i].id = (b & 0x18) != 0x18 ? NULL : (b & 0xC0) == 0xC0 ? ids[5 + fz_pick(&f, 3)] : ids[fz_pick(&f, 5)];
                datas[i] = data_of(&f);
                evs[i].data = datas[i];
                evs[i].metadata = (b & 0x20) ? datas[i] : NULL;
            }
            c1 = es_store_append(m, stream, evs, n, expected, &r1, &e1);
            c2 = es_store_append(q, stream, evs, n, expected, &r2, &e2);
            FZ_CHECK(c1 == c2, "append to '%s' (%zu events, expected %lld): memory %d (%s), sqlite %d (%s)", stream, n,
                     (long long)expected, c1, c1 ? e1.msg : "", c2, c2 ? e2.msg : "");
            if (c1 == ES_OK) {
                FZ_CHECK(r1.revision == r2.revision && r1.position == r2.position && r1.count == r2.count &&
                             r1.idempotent == r2.idempotent,
                         "append results differ: memory rev %lld pos %lld count %zu idem %d, sqlite rev %lld pos %lld "
                         "count %zu idem %d",
                         (long long)r1.revision, (long long)r1.position, r1.count, r1.idempotent,
                         (long long)r2.revision, (long long)r2.position, r2.count, r2.idempotent);
            } else if (c1 == ES_ECONFLICT) {
                FZ_CHECK(e1.expected == e2.expected && e1.actual == e2.actual, "conflict details differ");
            }
            for (i = 0; i < n; i++) json_decref(datas[i]);
        } else if (kind == 2) {
            es_query qq;
            es_query_init(&qq, ES_Q_STREAM);
            qq.stream = stream_of(&f);
            qq.from = (int64_t)fz_pick(&f, 5);
            qq.to = fz_byte(&f) & 1 ? INT64_MAX : (int64_t)fz_pick(&f, 8);
            qq.backward = (int)(fz_byte(&f) & 1);
            qq.limit = (int64_t)fz_pick(&f, 4);
            compare_read(m, q, &qq);
        } else {
            es_query qq;
            const char *tlist[2];
            unsigned b = fz_byte(&f);
            es_query_init(&qq, ES_Q_ALL);
            qq.after = (int64_t)fz_pick(&f, 6);
            qq.limit = (int64_t)fz_pick(&f, 5);
            if (b & 1) qq.category = categories[fz_pick(&f, 6)];
            if (b & 2) {
                tlist[0] = types[fz_pick(&f, 6)];
                tlist[1] = types[fz_pick(&f, 6)];
                qq.types = tlist;
                qq.ntypes = 1 + ((b >> 2) & 1);
            }
            compare_read(m, q, &qq);
        }
    }
    /* the whole store, and the stream list, at the end */
    {
        es_query qq;
        es_stats s1, s2;
        es_query_init(&qq, ES_Q_ALL);
        compare_read(m, q, &qq);
        es_query_init(&qq, ES_Q_STREAMS);
        compare_read(m, q, &qq);
        FZ_CHECK(es_store_stats(m, &s1, &err) == ES_OK && es_store_stats(q, &s2, &err) == ES_OK, "stats: %s", err.msg);
        FZ_CHECK(s1.events == s2.events && s1.streams == s2.streams && s1.position == s2.position,
                 "stats differ: memory %lld/%lld/%lld, sqlite %lld/%lld/%lld", (long long)s1.events,
                 (long long)s1.streams, (long long)s1.position, (long long)s2.events, (long long)s2.streams,
                 (long long)s2.position);
    }
    es_store_close(m);
    es_store_close(q);
    return 0;
}
