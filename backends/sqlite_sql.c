/* sqlite_sql.c: the SQLite backend's SQL: the schema and the text of every statement slot */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "sqlite.h"

/* An id is in the unique index on ids unless it names its own row: a
 * generated id carries its position (es_id_stamp), and is found by it.
 * Each row says which in own_id, written by the append (1 when
 * es_id_position(id) is the row's position, else 0; a row written behind
 * the store's back takes the default 0 and is indexed). The condition is
 * the index's, word for word: SQLite uses a partial index only for a query
 * that repeats it. ?2 is the position the id names (es_id_position).
 *
 * Stores made on 2026-12-07 have no own_id column: their index repeats the
 * test in SQL (ID_INDEXED_SQL), which costs SQLite a printf and two substr
 * on every row it inserts (about 3,100 instructions an event of W2's
 * 25,400). Their statements (legacy_templates) repeat it instead; so do
 * those of stores made before, whose index holds every id and serves any
 * lookup by id. */
#define ID_INDEXED "own_id = 0"
#define ID_INDEXED_SQL "substr(id, 1, 8) || substr(id, 10, 4) <> printf('%012x', position)"
#define ID_MATCH_AS(cols, own, indexed) \
    "SELECT " cols " FROM {p}events WHERE position = ?2 AND id = ?1" own " UNION ALL " \
    "SELECT " cols " FROM {p}events WHERE id = ?1 AND " indexed
#define ID_MATCH(cols) ID_MATCH_AS(cols, " AND own_id = 1", ID_INDEXED)
#define ID_MATCH_SQL(cols) ID_MATCH_AS(cols, "", ID_INDEXED_SQL)
#define INSERT_COLS \
    "INSERT INTO {p}events (position, id, stream, category, revision, type, data, metadata, timestamp"

static const char *const sql_templates[ST_ALL] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_STREAM_REV] = "SELECT coalesce(max(revision), 0) FROM {p}events WHERE stream = ?1",
    [ST_ID_LOOKUP] = ID_MATCH("position, stream, revision, timestamp"),
    [ST_INSERT_EVENT] = INSERT_COLS ", own_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_NEW_STREAM] = "INSERT INTO {p}streams (stream, category) VALUES (?1, ?2)",
    [ST_INSERT_OUTBOX] = "INSERT INTO {p}outbox (position) VALUES (?1)",
    [ST_STATS] = "SELECT (SELECT count(*) FROM {p}events), (SELECT count(*) FROM {p}streams), "
                 "(SELECT count(*) FROM {p}snapshots), (SELECT coalesce(max(position), 0) FROM {p}events)",
    [ST_SNAP_SAVE] = "INSERT OR REPLACE INTO {p}snapshots (stream, revision, fingerprint, version, data, "
                     "timestamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_SNAP_PRUNE] = "DELETE FROM {p}snapshots WHERE stream = ?1 AND rowid NOT IN (SELECT rowid FROM "
                      "{p}snapshots WHERE stream = ?1 ORDER BY revision DESC, rowid DESC LIMIT ?2)",
    [ST_SNAP_LOAD_ANY] = "SELECT stream, revision, fingerprint, version, data, timestamp FROM {p}snapshots "
                         "WHERE stream = ?1 AND revision <= ?2 ORDER BY revision DESC, rowid DESC LIMIT 1",
    [ST_SNAP_LOAD_FP] = "SELECT stream, revision, fingerprint, version, data, timestamp FROM {p}snapshots "
                        "WHERE stream = ?1 AND fingerprint = ?3 AND revision <= ?2 "
                        "ORDER BY revision DESC LIMIT 1",
    [ST_CP_GET] = "SELECT position FROM {p}checkpoints WHERE name = ?1",
    [ST_HEAD] = "SELECT coalesce(max(position), 0) FROM {p}events",
    /* an append's one read: the stream's revision, and the timestamp and
     * position of the newest event. With one max() aggregate, SQLite takes
     * a bare column from the row where the max is (documented since
     * 3.7.11), and reads that row alone off the end of the rowid B-tree.
     * The LEFT JOIN over an ORDER BY ... LIMIT 1 subquery this replaced
     * built an ephemeral table on every append: 19,000 of its 88,000
     * instructions (callgrind, W1 NORMAL). */
    [ST_APPEND_HEAD] = "SELECT coalesce((SELECT max(revision) FROM {p}events WHERE stream = ?1), 0), "
                       "coalesce(timestamp, 0), coalesce(max(position), 0) FROM {p}events",
    [ST_TS_AT] = "SELECT position, timestamp FROM {p}events WHERE position >= ?1 ORDER BY position LIMIT 1",
    [ST_CP_SET] = "INSERT INTO {p}checkpoints (name, position) VALUES (?1, ?2) "
                  "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    [ST_DISPATCH] = "DELETE FROM {p}outbox WHERE position = (" ID_MATCH("position") ")",
    [ST_READ_FWD] = "SELECT " EVENT_COLS " FROM {p}events WHERE stream = ?1 AND revision BETWEEN ?2 AND ?3 "
                    "ORDER BY revision LIMIT ?4",
    [ST_READ_BWD] = "SELECT " EVENT_COLS " FROM {p}events WHERE stream = ?1 AND revision BETWEEN ?2 AND ?3 "
                    "ORDER BY revision DESC LIMIT ?4",
    [ST_BY_ID] = ID_MATCH(EVENT_COLS),
    [ST_STREAMS] = "SELECT s.stream, (SELECT max(revision) FROM {p}events e WHERE e.stream = s.stream) "
                   "FROM {p}streams s ORDER BY s.stream LIMIT ?1",
    [ST_STREAMS_CAT] = "SELECT s.stream, (SELECT max(revision) FROM {p}events e WHERE e.stream = s.stream) "
                       "FROM {p}streams s WHERE s.category = ?2 ORDER BY s.stream LIMIT ?1",
    [ST_OUTBOX] = "SELECT " EVENT_COLS_E " FROM {p}outbox o JOIN {p}events e ON e.position = o.position "
                  "WHERE o.position > ?1 ORDER BY o.position LIMIT ?2",
    /* CROSS JOIN keeps the outbox, usually small, as the outer loop */
    [ST_OUTBOX_CAT] = "SELECT " EVENT_COLS_E " FROM {p}outbox o CROSS JOIN {p}events e ON e.position = o.position "
                      "WHERE o.position > ?1 AND e.category = ?3 ORDER BY o.position LIMIT ?2",
};

/* The slots that differ on a store without the own_id column. */
static const char *const legacy_templates[ST_ALL] = {
    [ST_ID_LOOKUP] = ID_MATCH_SQL("position, stream, revision, timestamp"),
    [ST_INSERT_EVENT] = INSERT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_DISPATCH] = "DELETE FROM {p}outbox WHERE position = (" ID_MATCH_SQL("position") ")",
    [ST_BY_ID] = ID_MATCH_SQL(EVENT_COLS),
};

/* Position is the rowid, so reads by position walk the table itself;
 * (stream, revision) is the unique key that orders appends; (category,
 * position) serves category reads in global order. Ids are unique through
 * a partial index that leaves out the ids that name their own row (see
 * ID_INDEXED): generated ids, so an append with generated ids writes three
 * B-trees, not four (W1 NORMAL +19%, W2 +4-6% in alternating runs).
 * own_id costs a row one byte: SQLite stores 0 and 1 in the record's
 * header alone. Stores made before 2026-12-07 have a unique index on every
 * id, those made on that day a partial index without own_id; both use
 * legacy_templates. Snapshots have a rowid so that INSERT OR REPLACE makes
 * the replaced one the newest on ties. */
static const char *const sql_schema =
    "CREATE TABLE IF NOT EXISTS {p}events (position INTEGER PRIMARY KEY, id TEXT NOT NULL,"
    " stream TEXT NOT NULL, category TEXT NOT NULL, revision INTEGER NOT NULL, type TEXT NOT NULL,"
    " data TEXT NOT NULL, metadata TEXT NOT NULL, timestamp INTEGER NOT NULL,"
    " own_id INTEGER NOT NULL DEFAULT 0, UNIQUE (stream, revision));"
    "CREATE UNIQUE INDEX IF NOT EXISTS {p}events_id ON {p}events (id) WHERE " ID_INDEXED ";"
    "CREATE INDEX IF NOT EXISTS {p}events_category ON {p}events (category, position);"
    "CREATE TABLE IF NOT EXISTS {p}streams (stream TEXT PRIMARY KEY, category TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS {p}streams_category ON {p}streams (category, stream);"
    "CREATE TABLE IF NOT EXISTS {p}snapshots (stream TEXT NOT NULL, revision INTEGER NOT NULL,"
    " fingerprint TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL, timestamp INTEGER NOT NULL,"
    " UNIQUE (stream, fingerprint, revision));"
    "CREATE INDEX IF NOT EXISTS {p}snapshots_stream ON {p}snapshots (stream, revision);"
    "CREATE TABLE IF NOT EXISTS {p}checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS {p}outbox (position INTEGER PRIMARY KEY);";

/* Appends tmpl to b with every "{p}" replaced by the table prefix. */
static int sql_expand(const sqlite_conn *c, const char *tmpl, es_buf *b) {
    const char *p;
    while ((p = strstr(tmpl, "{p}")) != NULL) {
        if (es_buf_add(b, tmpl, (size_t)(p - tmpl)) != ES_OK ||
            es_buf_add(b, c->prefix, strlen(c->prefix)) != ES_OK)
            return ES_ENOMEM;
        tmpl = p + 3;
    }
    return es_buf_add(b, tmpl, strlen(tmpl));
}

/* The text of a slot. The ES_Q_ALL variants add one condition per filter
 * so that each shape is its own cached statement and the planner sees plain
 * conditions: category = ? uses the (category, position) index. The `since`
 * variant serves stores with a timestamp index (made before timestamps were
 * kept from going down): it starts the position range at the first
 * position stored at or after that time, found in the index (a minimum over
 * the range: their clocks may have stepped back). Other stores never use
 * only the filter: sqlite_read.c starts `after` at the first position a
 * binary search finds, and the filter keeps a tampered older row out. */
static int sql_build(const sqlite_conn *c, int slot, es_buf *b) {
    int v;
    if (slot < ST_ALL) {
        const char *legacy = c->own_id ? NULL : legacy_templates[slot];
        return sql_expand(c, legacy ? legacy : sql_templates[slot], b);
    }
    if (slot == ST_INSERT_EVENTS) {
        const char *row = c->own_id ? ",(?,?,?,?,?,?,?,?,?,?)" : ",(?,?,?,?,?,?,?,?,?)";
        int k;
        if (sql_expand(c, INSERT_COLS, b) != ES_OK ||
            sql_expand(c, c->own_id ? ", own_id) VALUES " : ") VALUES ", b) != ES_OK)
            return ES_ENOMEM;
        for (k = 0; k < INSERT_ROWS; k++)
            if (es_buf_add(b, row + (k == 0), strlen(row) - (k == 0)) != ES_OK) return ES_ENOMEM;
        return ES_OK;
    }
    /* state() reads only what a fold needs: every column a row returns is
     * copied out of the page by SQLite */
    if (slot == ST_READ_LEAN)
        return sql_expand(c, "SELECT revision, type, data FROM {p}events WHERE stream = ?1 "
                             "AND revision BETWEEN ?2 AND ?3 ORDER BY revision LIMIT ?4", b);
    v = slot - ST_ALL;
    if (sql_expand(c, "SELECT " EVENT_COLS " FROM {p}events WHERE position > ", b) != ES_OK ||
        sql_expand(c, !(v & ALL_SINCE) ? "?1"
                      : c->ts_index ? "max(?1, (SELECT min(position) FROM {p}events INDEXED BY "
                                      "{p}events_timestamp WHERE timestamp >= ?4) - 1) AND timestamp >= ?4"
                                    : "?1 AND timestamp >= ?4", b) != ES_OK)
        return ES_ENOMEM;
    if ((v & ALL_CATEGORY) && sql_expand(c, " AND category = ?3", b) != ES_OK) return ES_ENOMEM;
    if ((v & ALL_TYPES) && sql_expand(c, " AND type IN (SELECT value FROM json_each(?5))", b) != ES_OK)
        return ES_ENOMEM;
    return sql_expand(c, " ORDER BY position LIMIT ?2", b);
}

/* Prepares a slot's statement into *out; returns a SQLite code. */
int sqlite_stmt_prepare(sqlite_conn *c, int slot, unsigned int flags, sqlite3_stmt **out) {
    es_buf b = { NULL, 0, 0 };
    int src;
    *out = NULL;
    if (sql_build(c, slot, &b) != ES_OK) {
        es_buf_free(&b);
        return SQLITE_NOMEM;
    }
    src = sqlite3_prepare_v3(c->db, b.data, (int)b.len + 1, flags, out, NULL);
    es_buf_free(&b);
    return src;
}

/* The schema of a new store, in one write transaction (create_schema in
 * sqlite.c runs it). */
int sqlite_sql_schema(const sqlite_conn *c, es_buf *b) {
    if (sql_expand(c, "BEGIN IMMEDIATE;", b) != ES_OK || sql_expand(c, sql_schema, b) != ES_OK ||
        sql_expand(c, "COMMIT;", b) != ES_OK)
        return ES_ENOMEM;
    return ES_OK;
}
