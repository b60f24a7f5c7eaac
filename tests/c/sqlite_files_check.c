/* sqlite_files_check.c: a SQLite store whose file is changed or locked down behind its back */
/* SPDX-License-Identifier: MIT */
#include "sqlite_check.h"

/* Rows written behind the store's back. Timestamps that go down break
 * the promise `since` searches on: it may start late, but never returns an
 * event older than asked; a store with the old timestamp index still finds
 * them all. A (stream, revision) key already taken is a conflict that
 * writes nothing. */
static void test_tampered(void) {
    char url[512];
    es_options opt;
    es_store *s = NULL;
    es_append_result res;
    es_query q;
    es_err err;
    row rows[8];
    sqlite3 *db = NULL;
    int64_t before;

    es_options_init(&opt);
    db_url("tamper", url, sizeof url);
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    CHECK_RC(append_n(s, "t-1", "A", 3, 0, ES_NO_STREAM, &res, &err), ES_OK);
    CHECK(sqlite3_open(url + strlen("sqlite:"), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE es_events SET timestamp = CASE position WHEN 1 THEN 5000 "
                           "WHEN 2 THEN 1000 ELSE 3000 END; INSERT INTO es_events (id, stream, "
                           "category, revision, type, data, metadata, timestamp) VALUES "
                           "('99999999-2222-4333-8444-555555555555', 'ghost-1', 'ghost', 1, 'X', "
                           "'{}', '{}', 0)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    es_query_init(&q, ES_Q_ALL);
    q.since = 2000;
    CHECK(collect(s, &q, rows, 8, &err) == 1 && rows[0].position == 3);
    q.since = 6000;
    CHECK(collect(s, &q, rows, 8, &err) == 0);
    /* the old layout: its index finds the event the clock put back */
    es_store_close(s);
    s = NULL;
    CHECK(sqlite3_open(url + strlen("sqlite:"), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "CREATE INDEX es_events_timestamp ON es_events (timestamp)", NULL, NULL, NULL) ==
          SQLITE_OK);
    sqlite3_close(db);
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    q.since = 2000;
    CHECK(collect(s, &q, rows, 8, &err) == 2 && rows[0].position == 1 && rows[1].position == 3);
    q.after = 1;
    CHECK(collect(s, &q, rows, 8, &err) == 1 && rows[0].position == 3);
    q.since = 6000;
    q.after = 0;
    CHECK(collect(s, &q, rows, 8, &err) == 0);
    /* the revision comes from the events themselves: a row written behind
     * the store's back is seen, and the next append goes after it */
    before = total_events(s);
    CHECK_RC(append_n(s, "ghost-1", "B", 2, 0, 1, &res, &err), ES_OK);
    CHECK(res.revision == 3);
    CHECK(total_events(s) == before + 2);
    es_store_close(s);
}

/* A batch insert that fails part-way (a trigger refuses revision 9 of a
 * ten-event batch, inside the first 8-row statement): nothing of the batch
 * is stored, the error is returned; once allowed, the batch goes in with
 * consecutive positions. */
static void test_batch_refused(void) {
    char url[512];
    es_options opt;
    es_store *s = NULL;
    es_append_result res;
    es_query q;
    es_err err;
    row rows[16];
    sqlite3 *db = NULL;
    int64_t before;
    int i, n;

    es_options_init(&opt);
    db_url("refused", url, sizeof url);
    CHECK_RC(es_store_open(url, &opt, &s, &err), ES_OK);
    if (!s) return;
    CHECK_RC(append_n(s, "trig-1", "A", 3, 0, ES_NO_STREAM, &res, &err), ES_OK);
    before = total_events(s);
    CHECK(sqlite3_open(url + strlen("sqlite:"), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "CREATE TRIGGER es_refuse BEFORE INSERT ON es_events WHEN NEW.stream = 'trig-1' "
                           "AND NEW.revision = 9 BEGIN SELECT RAISE(ABORT, 'refused'); END", NULL, NULL, NULL) ==
          SQLITE_OK);
    CHECK(append_n(s, "trig-1", "B", 10, 3, 3, &res, &err) != ES_OK);
    CHECK(strstr(err.msg, "refused") != NULL);
    CHECK(total_events(s) == before);
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "trig-1";
    CHECK(collect(s, &q, rows, 16, &err) == 3);
    CHECK(sqlite3_exec(db, "DROP TRIGGER es_refuse", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK_RC(append_n(s, "trig-1", "B", 10, 3, 3, &res, &err), ES_OK);
    CHECK(res.revision == 13);
    n = collect(s, &q, rows, 16, &err);
    CHECK(n == 13);
    for (i = 1; i < n; i++)
        CHECK(rows[i].revision == i + 1 && rows[i].position > rows[i - 1].position);
    for (i = 4; i < n; i++) CHECK(rows[i].position == rows[i - 1].position + 1);
    es_store_close(s);
}

/* A file this process may not write opens as a read-only store even
 * without opt.readonly, also with its folder read-only (no -shm can be
 * made). As root, the check runs in a child that becomes nobody. */
static int readonly_child(const char *url) {
    es_store *s = NULL;
    es_append_result res;
    es_query q;
    es_err err;
    row rows[4];
    int bad = 0;
    if (es_store_open(url, NULL, &s, &err) != ES_OK) {
        fprintf(stderr, "read-only open: %s\n", err.msg);
        return 1;
    }
    es_query_init(&q, ES_Q_STREAM);
    q.stream = "ro-1";
    if (collect(s, &q, rows, 4, &err) != 2) bad |= 2;
    if (append_n(s, "ro-1", "B", 1, 0, ES_ANY, &res, &err) != ES_EREADONLY) bad |= 4;
    es_store_close(s);
    return bad;
}

static void test_readonly_file(void) {
    char url[512], sub[300], cmd[1200];
    es_store *s = NULL;
    es_append_result res;
    es_err err;
    pid_t pid;
    int status = 0;

    snprintf(sub, sizeof sub, "%s/ro", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", sub);
    CHECK(system(cmd) == 0);
    snprintf(url, sizeof url, "sqlite:%s/ro.db", sub);
    CHECK_RC(es_store_open(url, NULL, &s, &err), ES_OK);
    if (!s) return;
    CHECK_RC(append_n(s, "ro-1", "A", 2, 0, ES_NO_STREAM, &res, &err), ES_OK);
    es_store_close(s);
    snprintf(cmd, sizeof cmd, "chmod 0755 '%s' && chmod 0444 '%s/ro.db' && chmod 0555 '%s'", dir, sub, sub);
    CHECK(system(cmd) == 0);
    fflush(NULL);
    if (getuid() != 0) {
        CHECK(readonly_child(url) == 0);
    } else if ((pid = fork()) == 0) {
        _exit(setgid(65534) == 0 && setuid(65534) == 0 ? readonly_child(url) : 9);
    } else {
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    snprintf(cmd, sizeof cmd, "chmod 0755 '%s'", sub);
    CHECK(system(cmd) == 0);
}

int main(void) {
    if (!dir_create("sqlite_files_check")) return 2;
    test_tampered();
    test_batch_refused();
    test_readonly_file();
    dir_remove();
    printf("sqlite_files_check: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
