/* raw_pg.c: the C limit for PostgreSQL, W1-W5 of WORKLOAD.md as a plain libpq loop */
/* SPDX-License-Identifier: MIT */
#include <stdint.h>

#include <libpq-fe.h>

#include "common.h"

/* Usage: raw_pg URL [text|json|jsonb]   runs W1-W5 in table raw_events
 *        raw_pg reset URL               drops everything the URL's user owns
 *                                       in that database (a fresh store; a
 *                                       superuser: every user schema)
 * The payload column is text unless told otherwise: the limit measures the
 * storage work only, with the payload text prebuilt. Every statement runs in
 * autocommit, so each INSERT or COPY is exactly one transaction. */

static void fail_res(PGconn *c, PGresult *res, const char *what) {
    fprintf(stderr, "bench: postgres %s: %s", what, res ? PQresultErrorMessage(res) : PQerrorMessage(c));
    exit(1);
}

static void cmd(PGconn *c, const char *sql) {
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_res(c, res, sql);
    PQclear(res);
}

static void prepare(PGconn *c, const char *name, const char *sql, int nparams) {
    PGresult *res = PQprepare(c, name, sql, nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) fail_res(c, res, sql);
    PQclear(res);
}

static void fresh_table(PGconn *c, const char *ptype) {
    char sql[512];
    cmd(c, "SET client_min_messages = warning");
    cmd(c, "DROP TABLE IF EXISTS raw_events");
    snprintf(sql, sizeof sql,
             "CREATE TABLE raw_events(position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
             "stream text NOT NULL, revision bigint NOT NULL, payload %s NOT NULL, "
             "UNIQUE (stream, revision))", ptype);
    cmd(c, sql);
}

static PGconn *connect_url(const char *url) {
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench: postgres connect: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

/* The revision numbers 1..100 as text parameters, built once. */
static char revtext[BENCH_REVS + 1][8];

static PGresult *exec_prepared(PGconn *c, const char *name, int n, const char *const *vals,
                               ExecStatusType want) {
    PGresult *res = PQexecPrepared(c, name, n, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != want) fail_res(c, res, name);
    return res;
}

/* The floor of W1 on this server: a single append with the guarantees of
 * an event store of our kind, and nothing more. A plpgsql function takes a
 * transaction-scoped advisory lock (positions become visible in commit
 * order, so a reader never skips one), checks the expected revision
 * against the stream's newest event, takes the next position and inserts
 * the event (id, stream, revision, type, data, metadata, timestamp) into a
 * table with unique position, id and (stream, revision) keys and json
 * columns. No category index, streams table, NOTIFY or idempotency check
 * on ids: what the store adds to that is its own choice, this is not. Ids
 * are time-ordered, as the store's are; data is the payload's "data"
 * member, metadata the workload's two uuids. Same order as W1.
 *
 * The time of an fsync here drifts within seconds, so the floor is timed
 * side by side with W1's own INSERT into a fresh table: round by round (one
 * event per stream), in alternating order, each side's time summed. The
 * report takes the floor's ratio from that pair, not from W1 minutes ago.
 * It runs after W5 (see main). */
static void floor_w1(PGconn *c, int w1n, const char *payloads, char (*w1streams)[24], const char *ptype) {
    static const char prefix[] = "{\"type\":\"ItemAdded\",\"data\":";
    size_t pl = sizeof prefix - 1, n = (size_t)w1n * BENCH_REVS, i;
    char *data = malloc(n * BENCH_PAYLOAD_LEN), *meta = malloc(n * 128), *ids = malloc(n * 40);
    const char *vals[7];
    char expected[24], ts[24], sql[512], extra[64];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    double t0, t_floor = 0, t_raw = 0;
    int round, side;
    if (!data || !meta || !ids) BENCH_FAIL("out of memory");
    cmd(c, "SET client_min_messages = warning");
    cmd(c, "DROP TABLE IF EXISTS raw_floor, raw_side");
    snprintf(sql, sizeof sql,
             "CREATE TABLE raw_side(position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
             "stream text NOT NULL, revision bigint NOT NULL, payload %s NOT NULL, "
             "UNIQUE (stream, revision))", ptype);
    cmd(c, sql);
    prepare(c, "side1", "INSERT INTO raw_side(stream, revision, payload) VALUES ($1, $2, $3)", 3);
    cmd(c, "CREATE TABLE raw_floor(position bigint PRIMARY KEY, id uuid NOT NULL UNIQUE, "
           "stream text COLLATE \"C\" NOT NULL, revision bigint NOT NULL, type text COLLATE \"C\" NOT NULL, "
           "data json NOT NULL, metadata json NOT NULL, \"timestamp\" bigint NOT NULL, UNIQUE (stream, revision))");
    cmd(c, "CREATE OR REPLACE FUNCTION raw_floor_append(p_id uuid, p_stream text, p_expected bigint, "
           "p_type text, p_data text, p_meta text, p_ts bigint) RETURNS bigint LANGUAGE plpgsql AS $$\n"
           "DECLARE cur bigint; pos bigint;\n"
           "BEGIN\n"
           "  PERFORM pg_advisory_xact_lock(4242);\n"
           "  SELECT max(f.revision) INTO cur FROM raw_floor f WHERE f.stream = p_stream;\n"
           "  IF coalesce(cur, 0) <> p_expected THEN RAISE EXCEPTION 'wrong expected revision'; END IF;\n"
           "  SELECT f.position INTO pos FROM raw_floor f ORDER BY f.position DESC LIMIT 1;\n"
           "  pos := coalesce(pos, 0) + 1;\n"
           "  INSERT INTO raw_floor VALUES (pos, p_id, p_stream, p_expected + 1, p_type, p_data::json, "
           "p_meta::json, p_ts);\n"
           "  RETURN pos;\n"
           "END $$");
    prepare(c, "floor1", "SELECT raw_floor_append($1::uuid, $2, $3::bigint, $4, $5, $6, $7::bigint)", 7);
    for (i = 0; i < n; i++) {
        int s = (int)(i % (size_t)w1n), r = (int)(i / (size_t)w1n) + 1;
        const char *p = bench_payload_at(payloads, s, r);
        uint64_t a, b;
        memcpy(data + i * BENCH_PAYLOAD_LEN, p + pl, BENCH_PAYLOAD_LEN - pl - 1);
        data[i * BENCH_PAYLOAD_LEN + BENCH_PAYLOAD_LEN - pl - 1] = '\0';
        x ^= x << 13, x ^= x >> 7, x ^= x << 17, a = x;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17, b = x;
        snprintf(meta + i * 128, 128, "{\"correlationId\":\"%08x-%04x-4%03x-8%03x-%012llx\",\"causationId\":"
                 "\"%08x-%04x-4%03x-8%03x-%012llx\"}", (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
                 (unsigned)(a >> 4) & 0xfff, (unsigned)(b >> 52) & 0xfff, (unsigned long long)(b & 0xffffffffffffULL),
                 (unsigned)(b >> 32), (unsigned)(b >> 16) & 0xffff, (unsigned)(b >> 4) & 0xfff,
                 (unsigned)(a >> 52) & 0xfff, (unsigned long long)(a & 0xffffffffffffULL));
        /* time-ordered: the position in the first 48 bits, version 7 */
        snprintf(ids + i * 40, 40, "%08x-%04x-7%03x-8%03x-%012llx", (unsigned)((i + 1) >> 16),
                 (unsigned)(i + 1) & 0xffff, (unsigned)(b >> 20) & 0xfff, (unsigned)(a >> 20) & 0xfff,
                 (unsigned long long)(a & 0xffffffffffffULL));
    }
    snprintf(ts, sizeof ts, "%lld", (long long)(bench_now() * 1000.0));
    bench_reset_peak();
    for (round = 0; round < BENCH_REVS; round++) {
        for (side = 0; side < 2; side++) {
            int floor_side = (side + round) % 2;
            t0 = bench_now();
            for (i = (size_t)round * (size_t)w1n; i < (size_t)(round + 1) * (size_t)w1n; i++) {
                int s = (int)(i % (size_t)w1n);
                if (!floor_side) {
                    vals[0] = w1streams[s];
                    vals[1] = revtext[round + 1];
                    vals[2] = bench_payload_at(payloads, s, round + 1);
                    PQclear(exec_prepared(c, "side1", 3, vals, PGRES_COMMAND_OK));
                    continue;
                }
                snprintf(expected, sizeof expected, "%d", round);
                vals[0] = ids + i * 40;
                vals[1] = w1streams[s];
                vals[2] = expected;
                vals[3] = "ItemAdded";
                vals[4] = data + i * BENCH_PAYLOAD_LEN;
                vals[5] = meta + i * 128;
                vals[6] = ts;
                PQclear(exec_prepared(c, "floor1", 7, vals, PGRES_TUPLES_OK));
            }
            if (floor_side) t_floor += bench_now() - t0;
            else t_raw += bench_now() - t0;
        }
    }
    snprintf(extra, sizeof extra, ",\"raw_events_per_s\":%.1f", (double)n / t_raw);
    bench_emit("raw-pg", "floor-W1", (long)n, t_floor, extra);
    cmd(c, "DROP TABLE raw_floor, raw_side");
    cmd(c, "DROP FUNCTION raw_floor_append");
    free(data);
    free(meta);
    free(ids);
}

int main(int argc, char **argv) {
    const char *ptype = "text", *backend = "raw-pg";
    char *p1, *p2, streams[BENCH_W2_STREAMS][24], w1streams[BENCH_W1_STREAMS][24];
    const char **vals;
    PGconn *c;
    PGresult *res;
    int w1n, w2n, s, r, i, *lastrev;
    double t0, t, t_insert, t_copy;
    long total, violations;
    char extra[256];

    if (argc == 3 && strcmp(argv[1], "reset") == 0) {
        /* A superuser owns system objects, which DROP OWNED refuses to drop:
         * then drop every user schema instead (this is a throwaway server). */
        c = connect_url(argv[2]);
        cmd(c, "SET client_min_messages = warning");
        cmd(c, "DO $$DECLARE n name; BEGIN "
               "IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN "
               "EXECUTE 'DROP OWNED BY CURRENT_USER'; RETURN; END IF; "
               "FOR n IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
               "AND nspname <> 'information_schema' LOOP "
               "EXECUTE format('DROP SCHEMA %I CASCADE', n); END LOOP; "
               "CREATE SCHEMA public; END$$");
        PQfinish(c);
        return 0;
    }
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "text") && strcmp(argv[2], "json") &&
                                 strcmp(argv[2], "jsonb")))
        BENCH_FAIL("usage: raw_pg URL [text|json|jsonb] | raw_pg reset URL");
    if (argc == 3) ptype = argv[2];

    w1n = bench_scaled(BENCH_W1_STREAMS);
    w2n = bench_scaled(BENCH_W2_STREAMS);
    p1 = bench_payloads(w1n);
    p2 = bench_payloads(w2n);
    for (s = 0; s < w1n; s++) snprintf(w1streams[s], sizeof w1streams[s], "w1-item-%06d", s);
    for (s = 0; s < w2n; s++) snprintf(streams[s], sizeof streams[s], "item-%06d", s);
    for (r = 1; r <= BENCH_REVS; r++) snprintf(revtext[r], sizeof revtext[r], "%d", r);
    vals = calloc(3 * BENCH_REVS, sizeof *vals);
    if (!vals) BENCH_FAIL("out of memory");

    c = connect_url(argv[1]);

    /* W1: one single-row INSERT per transaction, round-robin */
    fresh_table(c, ptype);
    prepare(c, "ins1", "INSERT INTO raw_events(stream, revision, payload) VALUES ($1, $2, $3)", 3);
    bench_reset_peak();
    t0 = bench_now();
    for (i = 0; i < w1n * BENCH_REVS; i++) {
        s = i % w1n;
        r = i / w1n + 1;
        vals[0] = w1streams[s];
        vals[1] = revtext[r];
        vals[2] = bench_payload_at(p1, s, r);
        PQclear(exec_prepared(c, "ins1", 3, vals, PGRES_COMMAND_OK));
    }
    t = bench_now() - t0;
    bench_emit(backend, "W1", (long)w1n * BENCH_REVS, t, "");

    /* W2 (a): one multi-row INSERT of 100 rows per transaction */
    fresh_table(c, ptype);
    {
        char *sql = malloc(64 + 20 * BENCH_REVS), *q = sql;
        if (!sql) BENCH_FAIL("out of memory");
        q += sprintf(q, "INSERT INTO raw_events(stream, revision, payload) VALUES ");
        for (r = 0; r < BENCH_REVS; r++)
            q += sprintf(q, "%s($%d, $%d, $%d)", r ? ", " : "", 3 * r + 1, 3 * r + 2, 3 * r + 3);
        prepare(c, "ins100", sql, 3 * BENCH_REVS);
        free(sql);
    }
    bench_reset_peak();
    t0 = bench_now();
    for (s = 0; s < w2n; s++) {
        for (r = 1; r <= BENCH_REVS; r++) {
            vals[3 * (r - 1)] = streams[s];
            vals[3 * (r - 1) + 1] = revtext[r];
            vals[3 * (r - 1) + 2] = bench_payload_at(p2, s, r);
        }
        PQclear(exec_prepared(c, "ins100", 3 * BENCH_REVS, vals, PGRES_COMMAND_OK));
    }
    t_insert = bench_now() - t0;

    /* W2 (b): one COPY of 100 rows per transaction, into a fresh table; W3-W5 read this one */
    fresh_table(c, ptype);
    {
        /* a row is "stream\trevision\tpayload\n"; the payload holds no tab,
         * newline or backslash, so the text format needs no escaping */
        char *buf = malloc((size_t)BENCH_REVS * (BENCH_PAYLOAD_LEN + 40));
        if (!buf) BENCH_FAIL("out of memory");
        t0 = bench_now();
        for (s = 0; s < w2n; s++) {
            char *q = buf;
            for (r = 1; r <= BENCH_REVS; r++) {
                q += sprintf(q, "%s\t%s\t", streams[s], revtext[r]);
                memcpy(q, bench_payload_at(p2, s, r), BENCH_PAYLOAD_LEN);
                q += BENCH_PAYLOAD_LEN;
                *q++ = '\n';
            }
            res = PQexec(c, "COPY raw_events(stream, revision, payload) FROM STDIN");
            if (PQresultStatus(res) != PGRES_COPY_IN) fail_res(c, res, "copy");
            PQclear(res);
            if (PQputCopyData(c, buf, (int)(q - buf)) != 1 || PQputCopyEnd(c, NULL) != 1)
                fail_res(c, NULL, "copy data");
            res = PQgetResult(c);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) fail_res(c, res, "copy end");
            PQclear(res);
            while ((res = PQgetResult(c))) PQclear(res);
        }
        t_copy = bench_now() - t0;
        free(buf);
    }
    snprintf(extra, sizeof extra,
             ",\"method\":\"%s\",\"insert_events_per_s\":%.1f,\"copy_events_per_s\":%.1f",
             t_copy < t_insert ? "copy" : "insert", (double)w2n * BENCH_REVS / t_insert,
             (double)w2n * BENCH_REVS / t_copy);
    bench_emit(backend, "W2", (long)w2n * BENCH_REVS, t_copy < t_insert ? t_copy : t_insert, extra);

    /* W3: each stream fully, by the (stream, revision) index; skus checked by hand */
    prepare(c, "rd", "SELECT revision, payload FROM raw_events WHERE stream = $1 ORDER BY revision", 1);
    bench_reset_peak();
    t0 = bench_now();
    total = 0;
    for (s = 0; s < w2n; s++) {
        int n;
        vals[0] = streams[s];
        res = exec_prepared(c, "rd", 1, vals, PGRES_TUPLES_OK);
        n = PQntuples(res);
        if (n != BENCH_REVS) BENCH_FAIL("W3: stream %d has %d events", s, n);
        for (i = 0; i < n; i++) {
            long sku;
            int q;
            if (atoi(PQgetvalue(res, i, 0)) != i + 1 ||
                !bench_extract(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), &sku, &q) ||
                sku != (long)s * 1000 + i + 1)
                BENCH_FAIL("W3: stream %d event %d is wrong", s, i + 1);
        }
        PQclear(res);
        total += n;
    }
    t = bench_now() - t0;
    bench_emit(backend, "W3", total, t, "");

    /* W4: everything in position order, keyset pages of 1,000 */
    prepare(c, "page", "SELECT position, stream, revision, payload FROM raw_events "
                       "WHERE position > $1 ORDER BY position LIMIT $2", 2);
    lastrev = calloc((size_t)w2n, sizeof *lastrev);
    if (!lastrev) BENCH_FAIL("out of memory");
    bench_reset_peak();
    t0 = bench_now();
    total = 0;
    violations = 0;
    {
        char after[32] = "0", limit[16];
        int got;
        snprintf(limit, sizeof limit, "%d", BENCH_PAGE);
        do {
            vals[0] = after;
            vals[1] = limit;
            res = exec_prepared(c, "page", 2, vals, PGRES_TUPLES_OK);
            got = PQntuples(res);
            for (i = 0; i < got; i++) {
                int idx = atoi(PQgetvalue(res, i, 1) + 5), rev = atoi(PQgetvalue(res, i, 2));
                (void)PQgetvalue(res, i, 3);
                if (idx < 0 || idx >= w2n) BENCH_FAIL("W4: unknown stream %s", PQgetvalue(res, i, 1));
                if (rev != lastrev[idx] + 1) violations++;
                lastrev[idx] = rev;
            }
            if (got) snprintf(after, sizeof after, "%s", PQgetvalue(res, got - 1, 0));
            PQclear(res);
            total += got;
        } while (got == BENCH_PAGE);
    }
    t = bench_now() - t0;
    if (total != (long)w2n * BENCH_REVS) BENCH_FAIL("W4: read %ld events", total);
    snprintf(extra, sizeof extra, ",\"order_violations\":%ld", violations);
    bench_emit(backend, "W4", total, t, extra);
    free(lastrev);

    /* W5: per stream, read and fold by hand: sum qty, keep the last sku */
    bench_reset_peak();
    t0 = bench_now();
    total = 0;
    for (s = 0; s < w2n; s++) {
        long sku = -1, qsum = 0;
        int n;
        vals[0] = streams[s];
        res = exec_prepared(c, "rd", 1, vals, PGRES_TUPLES_OK);
        n = PQntuples(res);
        for (i = 0; i < n; i++) {
            int q;
            if (!bench_extract(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), &sku, &q))
                BENCH_FAIL("W5: no sku/qty");
            qsum += q;
        }
        PQclear(res);
        if (qsum != 300 || sku != (long)s * 1000 + BENCH_REVS)
            BENCH_FAIL("W5: stream %d folded to qty %ld sku %ld", s, qsum, sku);
        total += n;
    }
    t = bench_now() - t0;
    bench_emit(backend, "W5", total, t, "");

    cmd(c, "DROP TABLE raw_events");
    /* Last, so that W1-W5 run as they did before it existed: 40,000 more
     * commits between W1 and W2 made W4 30% faster (autovacuum reached the
     * W2 table before W4, most likely). */
    floor_w1(c, w1n, p1, w1streams, ptype);
    PQfinish(c);
    free(vals);
    free(p1);
    free(p2);
    return 0;
}
