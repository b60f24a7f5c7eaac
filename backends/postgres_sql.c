/* postgres_sql.c: the PostgreSQL backend's texts: tables, append function, statements, names, parameters, messages */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <libpq-fe.h>

#include "postgres.h"

/*
 * Global order. A position drawn at INSERT becomes visible at COMMIT, so
 * without care a transaction that drew 10 and commits after the one that
 * drew 11 is skipped forever by a reader that already moved past 11. Every
 * append therefore takes pg_advisory_xact_lock on a key derived from
 * schema and prefix before it reads max(position), and holds it to commit:
 * appends to one store commit one at a time, in position order, and a
 * reader that has seen position p never later sees a new event below p.
 * PostgreSQL makes a commit visible before it releases the locks, so the
 * next writer always sees the previous one's rows. The price is that
 * appends to one store do not run in parallel.
 *
 * The whole append (lock, idempotency and revision checks, multi-row insert
 * through unnest, stream upsert, outbox, NOTIFY) is one plpgsql function,
 * called as one prepared statement in its own implicit transaction: one
 * round trip, and all or nothing even when the connection drops midway.
 * plpgsql takes a fresh snapshot per statement, so the reads after the lock
 * see every append committed before it.
 *
 * data and metadata are json, not jsonb: json keeps the exact text
 * (including \u0000, which jsonb rejects) and still works with ->, ->> and
 * data::jsonb for rows that jsonb can hold.
 */

/* Event rows always come in this column order (see cursor_row). */
#define EVENT_COLS "e.position, e.id, e.stream, e.revision, e.type, e.data, e.metadata, e.\"timestamp\""
/* A stream read leaves the stream out: the reader knows it. A lean read
 * (state()) carries only what a fold needs. */
#define STREAM_COLS "e.position, e.id, e.revision, e.type, e.data, e.metadata, e.\"timestamp\""
#define LEAN_COLS "e.revision, e.type, e.data"
/* A stream's revision is its newest event's, one probe of (stream,
 * revision): the streams table only names the streams (see sql_schema). */
#define STREAM_REV "(SELECT max(e.revision) FROM @events\" e WHERE e.stream = s.stream)"

/* In templates '@' stands for "schema"."prefix (a table name follows and
 * the template closes the quote), '&' for "prefix (an index name), '%' for
 * "schema", '^' for the lock key and '~' for the notification channel. All
 * of them come from identifiers validated at open. */
static const char *const sql_templates[ST_ALL] = {
    [ST_APPEND] = "SELECT status, cur, first_pos, idx, revs, poss, tss FROM @append_v1\"($1::text, "
                  "$2::text, $3::bigint, $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], "
                  "$9::boolean, $10::boolean)",
    [ST_REVISION] = "SELECT coalesce(max(e.revision), 0) FROM @events\" e WHERE e.stream = $1::text",
    [ST_STATS] = "SELECT (SELECT count(*) FROM @events\"), (SELECT count(*) FROM @streams\"), "
                 "(SELECT count(*) FROM @snapshots\"), (SELECT coalesce(max(position), 0) FROM @events\")",
    [ST_HEAD] = "SELECT coalesce(max(position), 0) FROM @events\"",
    /* Save and prune in one statement. Every part sees the table as it was
     * before it, so `keep` (the newest $7 of the old rows plus the new one)
     * decides both: the new snapshot is written only if it is among them
     * (a snapshot older than the kept ones is dropped at once, as on the
     * other backends), and the old rows outside it are deleted. */
    [ST_SNAP_SAVE] =
        "WITH keep AS (SELECT k.revision, k.fingerprint FROM (SELECT s.revision, s.fingerprint, s.\"timestamp\" "
        "FROM @snapshots\" s WHERE s.stream = $1 AND NOT (s.fingerprint = $2 AND s.revision = $3) "
        "UNION ALL SELECT $3, $2, $6) k ORDER BY k.revision DESC, k.\"timestamp\" DESC LIMIT $7::bigint), "
        "ins AS (INSERT INTO @snapshots\" (stream, fingerprint, revision, version, data, \"timestamp\") "
        "SELECT $1::text, $2::text, $3::bigint, $4::bigint, $5::json, $6::bigint "
        "WHERE $7 = 0 OR EXISTS (SELECT 1 FROM keep k WHERE k.revision = $3 AND k.fingerprint = $2) "
        "ON CONFLICT (stream, fingerprint, revision) DO UPDATE SET version = excluded.version, "
        "data = excluded.data, \"timestamp\" = excluded.\"timestamp\") "
        "DELETE FROM @snapshots\" s WHERE $7 > 0 AND s.stream = $1 "
        "AND NOT EXISTS (SELECT 1 FROM keep k WHERE k.revision = s.revision AND k.fingerprint = s.fingerprint)",
    [ST_SNAP_LOAD] = "SELECT stream, revision, fingerprint, version, data, \"timestamp\" FROM @snapshots\" "
                     "WHERE stream = $1::text AND revision <= $2::bigint "
                     "AND ($3::text IS NULL OR fingerprint = $3) "
                     "ORDER BY revision DESC, \"timestamp\" DESC LIMIT 1",
    [ST_CP_GET] = "SELECT position FROM @checkpoints\" WHERE name = $1::text",
    [ST_CP_SET] = "INSERT INTO @checkpoints\" (name, position) VALUES ($1::text, $2::bigint) "
                  "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    /* counts the event, not the outbox row: already dispatched is fine */
    [ST_DISPATCH] = "WITH ev AS (SELECT position FROM @events\" WHERE id = $1::uuid), "
                    "gone AS (DELETE FROM @outbox\" o USING ev WHERE o.position = ev.position) "
                    "SELECT count(*) FROM ev",
    [ST_READ_FWD] = "SELECT " STREAM_COLS " FROM @events\" e WHERE e.stream = $1::text "
                    "AND e.revision BETWEEN $2::bigint AND $3::bigint ORDER BY e.revision LIMIT $4::bigint",
    [ST_READ_BWD] = "SELECT " STREAM_COLS " FROM @events\" e WHERE e.stream = $1::text "
                    "AND e.revision BETWEEN $2::bigint AND $3::bigint ORDER BY e.revision DESC LIMIT $4::bigint",
    [ST_BY_ID] = "SELECT " EVENT_COLS " FROM @events\" e WHERE e.id = $1::uuid",
    [ST_STREAMS] = "SELECT s.stream, " STREAM_REV " FROM @streams\" s WHERE s.stream > $1::text "
                   "ORDER BY s.stream LIMIT $2::bigint",
    [ST_STREAMS_CAT] = "SELECT s.stream, " STREAM_REV " FROM @streams\" s WHERE s.stream > $1::text "
                       "AND s.category = $3::text ORDER BY s.stream LIMIT $2::bigint",
    [ST_OUTBOX] = "SELECT " EVENT_COLS " FROM @outbox\" o JOIN @events\" e ON e.position = o.position "
                  "WHERE o.position > $1::bigint ORDER BY o.position LIMIT $2::bigint",
    [ST_OUTBOX_CAT] = "SELECT " EVENT_COLS " FROM @outbox\" o JOIN @events\" e ON e.position = o.position "
                      "WHERE o.position > $1::bigint AND e.category = $3::text "
                      "ORDER BY o.position LIMIT $2::bigint",
};

/* What the two append functions below share: the lock and the stream's
 * revision; the expected-revision check and the next position (tss then
 * carries the newest stored timestamp); the stream's row when it is new. */
#define APPEND_LOCK_REVISION \
    "  PERFORM pg_advisory_xact_lock(^);\n" \
    "  status := 0; idx := 0;\n" \
    "  SELECT max(e.revision) INTO cur FROM @events\" e WHERE e.stream = p_stream;\n" \
    "  cur := coalesce(cur, 0);\n"
#define APPEND_EXPECTED_HEAD \
    "  IF (p_expected = 0 AND cur <> 0) OR (p_expected = -2 AND cur = 0)\n" \
    "     OR (p_expected > 0 AND cur <> p_expected) THEN\n" \
    "    status := 2; RETURN;\n" \
    "  END IF;\n" \
    "  SELECT e.position + 1, e.\"timestamp\" INTO first_pos, v_last_ts FROM @events\" e\n" \
    "    ORDER BY e.position DESC LIMIT 1;\n" \
    "  IF first_pos IS NULL THEN first_pos := 1; ELSE tss := ARRAY[v_last_ts]; END IF;\n"
#define APPEND_STREAM_ROW \
    "  IF cur = 0 THEN\n" \
    "    INSERT INTO @streams\" (stream, category) VALUES (p_stream, p_category) ON CONFLICT (stream) DO NOTHING;\n" \
    "  END IF;\n"

/* Text columns use the "C" collation: byte order, as SQLite and the memory
 * backend sort stream names, and cheaper comparisons. (category, position)
 * serves category reads in global order. There is no index on the
 * timestamp: the append function keeps timestamps from going down along
 * positions, so since() finds its first event by a binary search over the
 * primary key (es_pg_sql_statement). A fifth B-tree written on every append
 * cost W2 11%. Stores made before 2026-11-28 keep their timestamp index
 * and their append function (create_schema only runs on a store without
 * one), and since() uses the index there.
 *
 * The streams table names each stream once: the append that creates a
 * stream inserts its row, later appends leave it alone. A stream's revision
 * is its newest event's, read from (stream, revision) under the lock, as on
 * SQLite. Updating a revision column on every append cost a single-event
 * append a row lock, a new row version and page pruning (150 of its 1,020
 * WAL bytes) and 10-20 µs of the server's time. Stores made before
 * 2026-12-07 keep that column and the function that updates it; reads do
 * not use it. */
static const char *const sql_schema =
    "CREATE TABLE IF NOT EXISTS @events\" ("
    " position bigint PRIMARY KEY, id uuid NOT NULL, stream text COLLATE \"C\" NOT NULL,"
    " category text COLLATE \"C\" NOT NULL, revision bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    " data json NOT NULL, metadata json NOT NULL, \"timestamp\" bigint NOT NULL,"
    " CONSTRAINT &ev_id\" UNIQUE (id), CONSTRAINT &ev_stream_rev\" UNIQUE (stream, revision));"
    "CREATE INDEX IF NOT EXISTS &ev_category\" ON @events\" (category, position);"
    "CREATE TABLE IF NOT EXISTS @streams\" ("
    " stream text COLLATE \"C\" PRIMARY KEY, category text COLLATE \"C\" NOT NULL);"
    "CREATE INDEX IF NOT EXISTS &st_category\" ON @streams\" (category, stream);"
    "CREATE TABLE IF NOT EXISTS @snapshots\" ("
    " stream text COLLATE \"C\" NOT NULL, fingerprint text COLLATE \"C\" NOT NULL, revision bigint NOT NULL,"
    " version bigint NOT NULL, data json NOT NULL, \"timestamp\" bigint NOT NULL,"
    " CONSTRAINT &sn_key\" PRIMARY KEY (stream, fingerprint, revision));"
    "CREATE TABLE IF NOT EXISTS @checkpoints\" ("
    " name text COLLATE \"C\" PRIMARY KEY, position bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS @outbox\" (position bigint PRIMARY KEY);"
    /* status: 0 appended, 1 already stored here (idempotent), 2 wrong
     * expected revision, 3 the id at index idx is stored elsewhere. On 0,
     * tss is {t} when the newest stored event has timestamp t: no new
     * timestamp is stored below it (a clock that stepped back repeats t),
     * and the caller raises its copies the same way. */
    "CREATE OR REPLACE FUNCTION @append_v1\"(p_stream text, p_category text, p_expected bigint,"
    " p_ids text[], p_types text[], p_data text[], p_meta text[], p_ts bigint[],"
    " p_ids_given boolean, p_outbox boolean, OUT status int, OUT cur bigint, OUT first_pos bigint,"
    " OUT idx int, OUT revs bigint[], OUT poss bigint[], OUT tss bigint[])"
    " LANGUAGE plpgsql AS $fn$\n"
    "DECLARE\n"
    "  n int := cardinality(p_ids);\n"
    "  v_stream text;\n"
    "  v_rev bigint;\n"
    "  v_found int;\n"
    "  v_last_ts bigint;\n"
    "BEGIN\n"
    APPEND_LOCK_REVISION
    "  IF p_ids_given THEN\n"
    "    SELECT e.stream, e.revision INTO v_stream, v_rev FROM @events\" e WHERE e.id = p_ids[1]::uuid;\n"
    "    IF FOUND THEN\n"
    "      idx := 1; status := 3;\n"
    "      IF v_stream = p_stream AND (p_expected < 0 OR p_expected = v_rev - 1) THEN\n"
    "        SELECT count(*), array_agg(e.revision ORDER BY t.i), array_agg(e.position ORDER BY t.i),\n"
    "               array_agg(e.\"timestamp\" ORDER BY t.i) INTO v_found, revs, poss, tss\n"
    "          FROM unnest(p_ids) WITH ORDINALITY AS t(id, i)\n"
    "          JOIN @events\" e ON e.stream = p_stream AND e.revision = v_rev + t.i - 1 AND e.id = t.id::uuid;\n"
    "        IF v_found = n THEN status := 1; END IF;\n"
    "      END IF;\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    SELECT t.i INTO idx FROM unnest(p_ids) WITH ORDINALITY AS t(id, i)\n"
    "      JOIN @events\" e ON e.id = t.id::uuid ORDER BY t.i LIMIT 1;\n"
    "    IF FOUND THEN status := 3; RETURN; END IF;\n"
    "    idx := 0;\n"
    "  END IF;\n"
    APPEND_EXPECTED_HEAD
    "  INSERT INTO @events\" (position, id, stream, category, revision, type, data, metadata, \"timestamp\")\n"
    "    SELECT first_pos + t.i - 1, t.id::uuid, p_stream, p_category, cur + t.i, t.type, t.data::json,\n"
    "           t.meta::json, greatest(t.ts, v_last_ts)\n"
    "      FROM unnest(p_ids, p_types, p_data, p_meta, p_ts) WITH ORDINALITY AS t(id, type, data, meta, ts, i);\n"
    APPEND_STREAM_ROW
    "  IF p_outbox THEN\n"
    "    INSERT INTO @outbox\" (position) SELECT first_pos + g FROM generate_series(0, n - 1) AS g;\n"
    "  END IF;\n"
    "  PERFORM pg_notify('~', (first_pos + n - 1)::text);\n"
    "END\n"
    "$fn$;"
    /* One event: the same checks and answers as append_v1 with n = 1, from
     * plain parameters. Five one-element arrays to parse and an unnest to
     * insert from cost a single append about 5% (bench/HISTORY.md). */
    "CREATE OR REPLACE FUNCTION @append1_v1\"(p_stream text, p_category text, p_expected bigint,"
    " p_id text, p_type text, p_data text, p_meta text, p_ts bigint,"
    " p_id_given boolean, p_outbox boolean, OUT status int, OUT cur bigint, OUT first_pos bigint,"
    " OUT idx int, OUT revs bigint[], OUT poss bigint[], OUT tss bigint[])"
    " LANGUAGE plpgsql AS $fn$\n"
    "DECLARE\n"
    "  v_stream text;\n"
    "  v_rev bigint;\n"
    "  v_pos bigint;\n"
    "  v_ts bigint;\n"
    "  v_last_ts bigint;\n"
    "BEGIN\n"
    APPEND_LOCK_REVISION
    "  IF p_id_given THEN\n"
    "    SELECT e.stream, e.revision, e.position, e.\"timestamp\" INTO v_stream, v_rev, v_pos, v_ts\n"
    "      FROM @events\" e WHERE e.id = p_id::uuid;\n"
    "    IF FOUND THEN\n"
    "      idx := 1; status := 3;\n"
    "      IF v_stream = p_stream AND (p_expected < 0 OR p_expected = v_rev - 1) THEN\n"
    "        status := 1; revs := ARRAY[v_rev]; poss := ARRAY[v_pos]; tss := ARRAY[v_ts];\n"
    "      END IF;\n"
    "      RETURN;\n"
    "    END IF;\n"
    "  END IF;\n"
    APPEND_EXPECTED_HEAD
    "  INSERT INTO @events\" (position, id, stream, category, revision, type, data, metadata, \"timestamp\")\n"
    "    VALUES (first_pos, p_id::uuid, p_stream, p_category, cur + 1, p_type, p_data::json, p_meta::json,\n"
    "            greatest(p_ts, v_last_ts));\n"
    APPEND_STREAM_ROW
    "  IF p_outbox THEN\n"
    "    INSERT INTO @outbox\" (position) VALUES (first_pos);\n"
    "  END IF;\n"
    "  PERFORM pg_notify('~', first_pos::text);\n"
    "END\n"
    "$fn$;";

/* Appends tmpl to b with the placeholders of sql_templates expanded. */
static int sql_expand(const es_pg_names *c, const char *tmpl, es_buf *b) {
    char num[32];
    for (; *tmpl; tmpl++) {
        int rc;
        switch (*tmpl) {
        case '@':
            rc = es_buf_add(b, "\"", 1) || es_buf_add(b, c->schema, strlen(c->schema)) ||
                 es_buf_add(b, "\".\"", 3) || es_buf_add(b, c->prefix, strlen(c->prefix));
            break;
        case '&':
            rc = es_buf_add(b, "\"", 1) || es_buf_add(b, c->prefix, strlen(c->prefix));
            break;
        case '%':
            rc = es_buf_add(b, "\"", 1) || es_buf_add(b, c->schema, strlen(c->schema)) ||
                 es_buf_add(b, "\"", 1);
            break;
        case '^':
            snprintf(num, sizeof num, "%lld", c->lock_key);
            rc = es_buf_add(b, num, strlen(num));
            break;
        case '~':
            rc = es_buf_add(b, c->channel, strlen(c->channel));
            break;
        default:
            rc = es_buf_add(b, tmpl, 1);
        }
        if (rc) return ES_ENOMEM;
    }
    return ES_OK;
}

/* The ES_Q_ALL variants add one condition per filter, numbered densely
 * (PostgreSQL wants every $n used), so the planner sees plain equalities
 * and category = $n uses the (category, position) index. */
int es_pg_sql_statement(const es_pg_names *c, int slot, es_buf *b) {
    int v, n = 3;
    char cond[64];
    if (slot < ST_ALL) return sql_expand(c, sql_templates[slot], b);
    /* state() folds revision, type and data: only those (and the position)
     * cross the wire. Every column sent costs the server an output call and
     * the client a parse: four constant columns made a read 13% slower. */
    if (slot == ST_APPEND1)
        return sql_expand(c, "SELECT status, cur, first_pos, idx, revs, poss, tss FROM @append1_v1\"($1::text, "
                             "$2::text, $3::bigint, $4::text, $5::text, $6::text, $7::text, $8::bigint, "
                             "$9::boolean, $10::boolean)",
                          b);
    if (slot == ST_READ_LEAN)
        return sql_expand(c, "SELECT " LEAN_COLS " FROM @events\" e WHERE e.stream = $1::text "
                             "AND e.revision BETWEEN $2::bigint AND $3::bigint ORDER BY e.revision LIMIT $4::bigint",
                          b);
    /* $1 stream, $2 fingerprint, $3 page: the newest snapshot as a row with
     * a NULL type (events.type is NOT NULL), then the events after it. Both sides
     * come sorted by revision (the snapshot's is below its events'), so the
     * ORDER BY is a merge of two index scans, not a sort; no CTE either
     * (it was materialized and cost 40% of the statement). The
     * (stream, fingerprint, revision) key makes the newest snapshot of a
     * fingerprint unique. */
    if (slot == ST_STATE_FIRST)
        return sql_expand(c, "(SELECT n.revision, NULL::text, n.data FROM @snapshots\" n WHERE n.stream = $1::text "
                             "AND n.fingerprint = $2::text ORDER BY n.revision DESC LIMIT 1) "
                             "UNION ALL (SELECT " LEAN_COLS " FROM @events\" e WHERE e.stream = $1::text "
                             "AND e.revision > coalesce((SELECT n.revision FROM @snapshots\" n "
                             "WHERE n.stream = $1::text AND n.fingerprint = $2::text ORDER BY n.revision DESC "
                             "LIMIT 1), 0) ORDER BY e.revision LIMIT $3::bigint) ORDER BY 1",
                          b);
    v = slot - ST_ALL;
    if ((v & ALL_SINCE) && !c->ts_index) {
        /* b(lo, hi): a binary search over positions for the first event at
         * or after the time, as sqlite_read.c's since_start does, in one
         * statement: about log2(events) primary-key probes. A probe past
         * the last event, or at a time at or after since, moves hi down to
         * mid; an earlier time moves lo past the probed event. It ends
         * with lo = hi, the first position to read (head + 1: none). */
        int t = (v & ALL_CATEGORY) ? 4 : 3;
        char probe[1024];
        snprintf(probe, sizeof probe,
                 "WITH RECURSIVE b(lo, hi) AS (SELECT CASE WHEN $1::bigint < 0 THEN 1 "
                 "WHEN $1::bigint < 9223372036854775807 THEN $1::bigint + 1 ELSE $1::bigint END, "
                 "(SELECT coalesce(max(position), 0) + 1 FROM @events\") "
                 "UNION ALL SELECT CASE WHEN r.ts < $%d::bigint THEN r.pos + 1 ELSE b.lo END, "
                 "CASE WHEN r.ts < $%d::bigint THEN b.hi ELSE b.lo + (b.hi - b.lo) / 2 END "
                 "FROM b LEFT JOIN LATERAL (SELECT p.position AS pos, p.\"timestamp\" AS ts FROM @events\" p "
                 "WHERE p.position >= b.lo + (b.hi - b.lo) / 2 ORDER BY p.position LIMIT 1) r ON true "
                 "WHERE b.lo < b.hi) ",
                 t, t);
        if (sql_expand(c, probe, b) != ES_OK) return ES_ENOMEM;
    }
    if (sql_expand(c, "SELECT " EVENT_COLS " FROM @events\" e WHERE e.position > $1::bigint", b) != ES_OK)
        return ES_ENOMEM;
    if (v & ALL_CATEGORY) {
        snprintf(cond, sizeof cond, " AND e.category = $%d::text", n++);
        if (es_buf_add(b, cond, strlen(cond)) != ES_OK) return ES_ENOMEM;
    }
    if (v & ALL_SINCE) {
        snprintf(cond, sizeof cond, " AND e.\"timestamp\" >= $%d::bigint", n++);
        if (es_buf_add(b, cond, strlen(cond)) != ES_OK) return ES_ENOMEM;
        if (!c->ts_index && sql_expand(c, " AND e.position >= (SELECT lo FROM b WHERE lo >= hi)", b) != ES_OK)
            return ES_ENOMEM;
    }
    if (v & ALL_TYPES) {
        snprintf(cond, sizeof cond, " AND e.type = ANY ($%d::text[])", n++);
        if (es_buf_add(b, cond, strlen(cond)) != ES_OK) return ES_ENOMEM;
    }
    return sql_expand(c, " ORDER BY e.position LIMIT $2::bigint", b);
}

/* COPY takes no parameters: the two numbers are printed into its text. It
 * is planned on every page, which a page of 1,000 rows pays back (see
 * PG_COPY_MIN in postgres_read.c). */
int es_pg_sql_copy_all(const es_pg_names *c, int64_t after, int64_t limit, es_buf *b) {
    char num[64];
    snprintf(num, sizeof num, "%lld", (long long)after);
    if (sql_expand(c, "COPY (SELECT " EVENT_COLS " FROM @events\" e WHERE e.position > ", b) != ES_OK ||
        es_buf_add(b, num, strlen(num)) != ES_OK)
        return ES_ENOMEM;
    snprintf(num, sizeof num, " ORDER BY e.position LIMIT %lld) TO STDOUT (FORMAT binary)", (long long)limit);
    return es_buf_add(b, num, strlen(num));
}

static int valid_ident(const char *p, size_t max) {
    size_t i, n = strlen(p);
    if (n == 0 || n > max) return 0;
    for (i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || ch == '_' || (i > 0 && ch >= '0' && ch <= '9'))) return 0;
    }
    return 1;
}

/* FNV-1a of "schema.prefix", kept positive so it prints as a plain bigint
 * literal: two stores in one database lock independently. */
static long long lock_key(const char *schema, const char *prefix) {
    uint64_t h = 1469598103934665603ULL;
    const char *parts[3] = { schema, ".", prefix };
    int i;
    for (i = 0; i < 3; i++) {
        const unsigned char *s = (const unsigned char *)parts[i];
        for (; *s; s++) {
            h ^= *s;
            h *= 1099511628211ULL;
        }
    }
    return (long long)(h & 0x3fffffffffffffffULL);
}

int es_pg_sql_schema(const es_pg_names *n, int create_schema, es_buf *b) {
    if (sql_expand(n, "BEGIN; SELECT pg_advisory_xact_lock(^);", b) != ES_OK ||
        (create_schema && sql_expand(n, "CREATE SCHEMA IF NOT EXISTS %;", b) != ES_OK) ||
        sql_expand(n, sql_schema, b) != ES_OK || sql_expand(n, "COMMIT;", b) != ES_OK)
        return ES_ENOMEM;
    return ES_OK;
}

int es_pg_names_init(es_pg_names *n, const char *schema, const char *prefix, es_err *err) {
    if (!valid_ident(schema, PG_MAX_IDENT))
        return es_err_set(err, ES_EINVALID, "open: option schema must match [a-z_][a-z0-9_]* and be at most %d bytes",
                          PG_MAX_IDENT);
    if (!valid_ident(prefix, PG_MAX_PREFIX))
        return es_err_set(err, ES_EINVALID,
                          "open: option prefix must match [a-z_][a-z0-9_]* and be at most %d bytes "
                          "(table and index names must fit in %d)", PG_MAX_PREFIX, PG_MAX_IDENT);
    memset(n, 0, sizeof *n);
    memcpy(n->schema, schema, strlen(schema) + 1);
    memcpy(n->prefix, prefix, strlen(prefix) + 1);
    /* channel names are identifiers too: at most 63 bytes */
    snprintf(n->channel, sizeof n->channel, "%s_%sevents", schema, prefix);
    n->lock_key = lock_key(schema, prefix);
    return ES_OK;
}

/* Binary array parameters (array_recv's format): big-endian words. */
int es_pg_put_u32(es_buf *b, uint32_t v) {
    char x[4];
    x[0] = (char)(v >> 24);
    x[1] = (char)(v >> 16);
    x[2] = (char)(v >> 8);
    x[3] = (char)v;
    return es_buf_add(b, x, 4);
}

/* One dimension of n elements of type oid, lower bound 1, no NULLs. */
int es_pg_put_array_head(es_buf *b, uint32_t oid, size_t n) {
    if (es_pg_put_u32(b, 1) || es_pg_put_u32(b, 0) || es_pg_put_u32(b, oid) || es_pg_put_u32(b, (uint32_t)n) ||
        es_pg_put_u32(b, 1))
        return ES_ENOMEM;
    return ES_OK;
}

int es_pg_put_elem(es_buf *b, const char *p, size_t len) {
    return es_pg_put_u32(b, (uint32_t)len) || es_buf_add(b, p, len) ? ES_ENOMEM : ES_OK;
}

static int is_alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Copies a libpq message into out as one line with every spelling of the
 * password replaced by "***". libpq's connection errors can quote parts of
 * a malformed connection string, password included. A password shorter
 * than 4 bytes is only replaced where it stands alone ("es" in user "es"
 * but not in "does"), or every message would be unreadable. */
void es_pg_scrub(char *const secrets[3], const char *msg, char *out, size_t cap) {
    const char *start = msg;
    size_t o = 0, i;
    while (*msg && o + 1 < cap) {
        size_t skip = 0;
        for (i = 0; i < 3 && !skip; i++) {
            size_t n = secrets[i] ? strlen(secrets[i]) : 0;
            if (n == 0 || strncmp(msg, secrets[i], n) != 0) continue;
            if (n >= 4 || ((msg == start || !is_alnum(msg[-1])) && !is_alnum(msg[n]))) skip = n;
        }
        if (skip) {
            if (o + 4 > cap) break;
            memcpy(out + o, "***", 3);
            o += 3;
            msg += skip;
            continue;
        }
        if (*msg == '\n' || *msg == '\r' || *msg == '\t' || *msg == ' ') {
            if (o > 0 && out[o - 1] != ' ') out[o++] = ' ';
        } else {
            out[o++] = *msg;
        }
        msg++;
    }
    while (o > 0 && out[o - 1] == ' ') o--;
    out[o] = '\0';
}

/* Every spelling of the password the URL may carry: as libpq decodes it,
 * raw between ':' and '@' of a URI, and raw after "password=". */
int es_pg_collect_secrets(const char *uri, char *secrets[3]) {
    PQconninfoOption *opts, *o;
    const char *p, *q, *end, *at, *colon;
    char *errmsg = NULL;

    opts = PQconninfoParse(uri, &errmsg);
    if (errmsg) PQfreemem(errmsg);
    if (opts) {
        for (o = opts; o->keyword; o++)
            if (strcmp(o->keyword, "password") == 0 && o->val && *o->val && !(secrets[0] = es_strdup(o->val))) {
                PQconninfoFree(opts);
                return ES_ENOMEM;
            }
        PQconninfoFree(opts);
    }
    if ((p = strstr(uri, "://")) != NULL) {
        p += 3;
        end = p + strcspn(p, "/?#");
        at = NULL;
        for (q = p; q < end; q++)
            if (*q == '@') at = q;
        colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
        if (colon && colon + 1 < at && !(secrets[1] = es_strndup(colon + 1, (size_t)(at - colon - 1))))
            return ES_ENOMEM;
    }
    if ((p = strstr(uri, "password=")) != NULL) {
        p += 9;
        end = p + strcspn(p, "& #");
        if (end > p && !(secrets[2] = es_strndup(p, (size_t)(end - p)))) return ES_ENOMEM;
    }
    return ES_OK;
}
