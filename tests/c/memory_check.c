/* memory_check.c: a memory store past its first arena chunk, on huge-page blocks (backends/memory.c) */
/* SPDX-License-Identifier: MIT */
/* 40,000 events of 300-byte data take the arena, the event array and the
 * id table past 2 MB, where they move to es_huge_alloc'd blocks; every
 * event reads back by stream, by position and by id. Each append first
 * runs with its first allocation failing: it reports ES_ENOMEM and leaves
 * the store as it was, or needed no allocation and succeeded. */
#include "sqlite_check.h"

#define STREAMS 100
#define BATCH 40
#define BATCHES 1000

static void test_large_store(void) {
    es_store *s = NULL;
    es_err err;
    es_append_result res;
    es_query q;
    row rows[BATCH];
    char stream[32], first_id[BATCH][ES_UUID_LEN + 1];
    int b, i, nomem = 0, bad = 0;
    int64_t total = 0;
    CHECK_RC(es_store_open("memory:", NULL, &s, &err), ES_OK);
    if (!s) return;
    for (b = 0; b < BATCHES; b++) {
        es_event_in evs[BATCH];
        json_t *data[BATCH];
        int rc;
        snprintf(stream, sizeof stream, "big-%03d", b % STREAMS);
        for (i = 0; i < BATCH; i++) {
            data[i] = json_pack("{s:i, s:s%}", "i", b * BATCH + i, "pad",
                                "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
                                "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
                                "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp", (size_t)280);
            evs[i].id = NULL;
            evs[i].type = "Big";
            evs[i].data = data[i];
            evs[i].metadata = NULL;
        }
        es_alloc_fail_after(1);
        rc = es_store_append(s, stream, evs, BATCH, (int64_t)(b / STREAMS) * BATCH, &res, &err);
        es_alloc_fail_after(0);
        if (rc == ES_ENOMEM) {
            nomem++;
            bad += total_events(s) != total;
            rc = es_store_append(s, stream, evs, BATCH, (int64_t)(b / STREAMS) * BATCH, &res, &err);
        }
        bad += rc != ES_OK;
        if (rc == ES_OK) {
            total += BATCH;
            if (b == 0)
                for (i = 0; i < BATCH; i++) snprintf(first_id[i], sizeof first_id[i], "%s", res.events[i].id);
        }
        for (i = 0; i < BATCH; i++) json_decref(data[i]);
    }
    CHECK(bad == 0);
    CHECK(nomem > 0);
    CHECK(total_events(s) == (int64_t)BATCHES * BATCH);
    /* stream 7: its last batch, by revision */
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "big-007";
    q.from = (BATCHES / STREAMS - 1) * BATCH + 1;
    CHECK(collect(s, &q, rows, BATCH, &err) == BATCH);
    CHECK(rows[0].revision == q.from && strncmp(rows[0].data, "{\"i\":36280,", 11) == 0);
    CHECK(rows[BATCH - 1].revision == (BATCHES / STREAMS) * BATCH);
    /* the whole store in order */
    es_query_init(&q, ES_Q_ALL);
    q.after = (int64_t)BATCHES * BATCH - BATCH;
    CHECK(collect(s, &q, rows, BATCH, &err) == BATCH && rows[BATCH - 1].position == (int64_t)BATCHES * BATCH);
    /* ids appended first are still found (the id table moved as it grew) */
    for (i = 0; i < BATCH; i += 13) {
        es_query_init(&q, ES_Q_ID);
        q.id = first_id[i];
        CHECK(collect(s, &q, rows, 1, &err) == 1 && rows[0].position == i + 1 && strcmp(rows[0].stream, "big-000") == 0);
    }
    es_store_close(s);
}

int main(void) {
    test_large_store();
    printf("memory_check: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
