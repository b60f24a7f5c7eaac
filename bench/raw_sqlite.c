/* raw_sqlite.c: the C limit for SQLite, W1-W5 of WORKLOAD.md as a plain libsqlite3 loop */
/* SPDX-License-Identifier: MIT */
#include <sqlite3.h>

#include "common.h"

/* Usage: raw_sqlite full|normal W1.db W2.db
 * Both files are created (or must not hold an events table yet). Prints one
 * JSON line per workload. The payload text is prebuilt: this measures the
 * storage work only, which is the ceiling for any store on SQLite. */

static void check(sqlite3 *db, int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        BENCH_FAIL("sqlite %s: %s", what, sqlite3_errmsg(db));
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    check(db, sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL), sql);
    return st;
}

static void exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        BENCH_FAIL("sqlite %s: %s", sql, msg ? msg : "?");
}

static sqlite3 *open_db(const char *path, int full) {
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        BENCH_FAIL("open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec(db, "CREATE TABLE events(position INTEGER PRIMARY KEY, stream TEXT NOT NULL, "
             "revision INTEGER NOT NULL, payload TEXT NOT NULL)");
    exec(db, "CREATE UNIQUE INDEX events_stream_revision ON events(stream, revision)");
    return db;
}

static void insert_row(sqlite3 *db, sqlite3_stmt *ins, const char *stream, int rev, const char *payload) {
    sqlite3_bind_text(ins, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 2, rev);
    sqlite3_bind_text(ins, 3, payload, BENCH_PAYLOAD_LEN, SQLITE_STATIC);
    check(db, sqlite3_step(ins), "insert");
    sqlite3_reset(ins);
}

int main(int argc, char **argv) {
    int full, w1n, w2n, s, r, i;
    char *p1, *p2, backend[64], streams[BENCH_W2_STREAMS][24], w1streams[BENCH_W1_STREAMS][24];
    sqlite3 *db;
    sqlite3_stmt *ins, *begin, *commit, *rd, *page;
    double t0, t;
    long total, violations;
    int *lastrev;

    if (argc != 4 || (strcmp(argv[1], "full") && strcmp(argv[1], "normal")))
        BENCH_FAIL("usage: raw_sqlite full|normal W1.db W2.db");
    full = strcmp(argv[1], "full") == 0;
    snprintf(backend, sizeof backend, "raw-sqlite-%s", argv[1]);
    w1n = bench_scaled(BENCH_W1_STREAMS);
    w2n = bench_scaled(BENCH_W2_STREAMS);
    p1 = bench_payloads(w1n);
    p2 = bench_payloads(w2n);
    for (s = 0; s < w1n; s++) snprintf(w1streams[s], sizeof w1streams[s], "w1-item-%06d", s);
    for (s = 0; s < w2n; s++) snprintf(streams[s], sizeof streams[s], "item-%06d", s);

    /* W1: one single-row INSERT per transaction (autocommit), round-robin */
    db = open_db(argv[2], full);
    ins = prep(db, "INSERT INTO events(stream, revision, payload) VALUES (?1, ?2, ?3)");
    bench_reset_peak();
    t0 = bench_now();
    for (i = 0; i < w1n * BENCH_REVS; i++) {
        s = i % w1n;
        r = i / w1n + 1;
        insert_row(db, ins, w1streams[s], r, bench_payload_at(p1, s, r));
    }
    t = bench_now() - t0;
    bench_emit(backend, "W1", (long)w1n * BENCH_REVS, t, "");
    sqlite3_finalize(ins);
    sqlite3_close(db);

    /* W2: 100 rows per transaction, statements prepared once */
    db = open_db(argv[3], full);
    ins = prep(db, "INSERT INTO events(stream, revision, payload) VALUES (?1, ?2, ?3)");
    begin = prep(db, "BEGIN IMMEDIATE");
    commit = prep(db, "COMMIT");
    bench_reset_peak();
    t0 = bench_now();
    for (s = 0; s < w2n; s++) {
        check(db, sqlite3_step(begin), "begin");
        sqlite3_reset(begin);
        for (r = 1; r <= BENCH_REVS; r++)
            insert_row(db, ins, streams[s], r, bench_payload_at(p2, s, r));
        check(db, sqlite3_step(commit), "commit");
        sqlite3_reset(commit);
    }
    t = bench_now() - t0;
    bench_emit(backend, "W2", (long)w2n * BENCH_REVS, t, "");
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_finalize(ins);

    /* W3: each stream fully, by the (stream, revision) index; skus checked by hand */
    rd = prep(db, "SELECT revision, payload FROM events WHERE stream = ?1 ORDER BY revision");
    bench_reset_peak();
    t0 = bench_now();
    total = 0;
    for (s = 0; s < w2n; s++) {
        int n = 0;
        sqlite3_bind_text(rd, 1, streams[s], -1, SQLITE_STATIC);
        while ((r = sqlite3_step(rd)) == SQLITE_ROW) {
            const char *pl = (const char *)sqlite3_column_text(rd, 1);
            int len = sqlite3_column_bytes(rd, 1), q;
            long sku;
            n++;
            if (sqlite3_column_int(rd, 0) != n || !bench_extract(pl, (size_t)len, &sku, &q) ||
                sku != (long)s * 1000 + n)
                BENCH_FAIL("W3: stream %d event %d is wrong", s, n);
        }
        check(db, r, "read stream");
        sqlite3_reset(rd);
        if (n != BENCH_REVS) BENCH_FAIL("W3: stream %d has %d events", s, n);
        total += n;
    }
    t = bench_now() - t0;
    bench_emit(backend, "W3", total, t, "");

    /* W4: everything in position order, keyset pages of 1,000 */
    page = prep(db, "SELECT position, stream, revision, payload FROM events "
                    "WHERE position > ?1 ORDER BY position LIMIT ?2");
    lastrev = calloc((size_t)w2n, sizeof *lastrev);
    if (!lastrev) BENCH_FAIL("out of memory");
    bench_reset_peak();
    t0 = bench_now();
    total = 0;
    violations = 0;
    {
        sqlite3_int64 after = 0;
        int got;
        do {
            got = 0;
            sqlite3_bind_int64(page, 1, after);
            sqlite3_bind_int(page, 2, BENCH_PAGE);
            while ((r = sqlite3_step(page)) == SQLITE_ROW) {
                const char *st = (const char *)sqlite3_column_text(page, 1);
                int rev = sqlite3_column_int(page, 2), idx;
                (void)sqlite3_column_text(page, 3);
                after = sqlite3_column_int64(page, 0);
                idx = (int)strtol(st + 5, NULL, 10); /* "item-NNNNNN" */
                if (idx < 0 || idx >= w2n) BENCH_FAIL("W4: unknown stream %s", st);
                if (rev != lastrev[idx] + 1) violations++;
                lastrev[idx] = rev;
                got++;
            }
            check(db, r, "read all");
            sqlite3_reset(page);
            total += got;
        } while (got == BENCH_PAGE);
    }
    t = bench_now() - t0;
    if (total != (long)w2n * BENCH_REVS) BENCH_FAIL("W4: read %ld events", total);
    {
        char extra[64];
        snprintf(extra, sizeof extra, ",\"order_violations\":%ld", violations);
        bench_emit(backend, "W4", total, t, extra);
    }
    free(lastrev);
    sqlite3_finalize(page);

    /* W5: per stream, read and fold by hand: sum qty, keep the last sku */
    bench_reset_peak();
    t0 = bench_now();
    total = 0;
    for (s = 0; s < w2n; s++) {
        long sku = -1, qsum = 0;
        int n = 0;
        sqlite3_bind_text(rd, 1, streams[s], -1, SQLITE_STATIC);
        while ((r = sqlite3_step(rd)) == SQLITE_ROW) {
            const char *pl = (const char *)sqlite3_column_text(rd, 1);
            int len = sqlite3_column_bytes(rd, 1), q;
            if (!bench_extract(pl, (size_t)len, &sku, &q)) BENCH_FAIL("W5: no sku/qty");
            qsum += q;
            n++;
        }
        check(db, r, "fold");
        sqlite3_reset(rd);
        if (qsum != 300 || sku != (long)s * 1000 + BENCH_REVS)
            BENCH_FAIL("W5: stream %d folded to qty %ld sku %ld", s, qsum, sku);
        total += n;
    }
    t = bench_now() - t0;
    bench_emit(backend, "W5", total, t, "");
    sqlite3_finalize(rd);
    sqlite3_close(db);
    free(p1);
    free(p2);
    return 0;
}
