/* sqlite_wal_check.c: the VFS that writes a transaction's WAL frames at once (backends/sqlite_wal.c) */
/* SPDX-License-Identifier: MIT */
/* Each check writes through the layer and reads the file back through
 * SQLite's default VFS, often in another process after the writer died
 * without closing: what a commit returned must be in the file, and the
 * WAL's checksum chain must hold, or recovery would stop short of it. */
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "sqlite_check.h"
#include "../../backends/sqlite.h"

static void path_of(const char *name, char *buf, size_t n) { snprintf(buf, n, "%s/%s.db", dir, name); }

static sqlite3 *open_with(const char *path, const char *vfs, int cache_pages) {
    sqlite3 *db = NULL;
    char pragmas[200];
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = %d;"
             "PRAGMA wal_autocheckpoint = 0; CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)",
             cache_pages);
    if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int exec_ok(sqlite3 *db, const char *sql) { return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK; }

static int64_t query_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int integrity_ok(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    int ok = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    return ok;
}

/* rows k0 .. k0+n-1, each v = 600 bytes of one letter picked by k and a round */
static int insert_rows(sqlite3 *db, int k0, int n, int round) {
    sqlite3_stmt *st = NULL;
    char v[601];
    int i, rc = SQLITE_OK;
    if ((rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t (k, v) VALUES (?1, ?2)", -1, &st, NULL)) != SQLITE_OK)
        return rc;
    for (i = 0; i < n && rc == SQLITE_OK; i++) {
        memset(v, 'a' + (k0 + i + round) % 26, 600);
        v[600] = '\0';
        sqlite3_bind_int(st, 1, k0 + i);
        sqlite3_bind_text(st, 2, v, 600, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* A child commits 20 transactions larger than its 8-page cache, so pages
 * spill into the WAL and are written again in place, and SQLite rewrites
 * frame checksums at commit; then it dies without closing. The parent,
 * on the default VFS, recovers the WAL and finds every row of the last
 * round. */
static void test_spill_then_crash(void) {
    char path[300];
    pid_t pid;
    int status = 0;
    sqlite3 *db;
    path_of("spill", path, sizeof path);
    if ((pid = fork()) == 0) {
        int r, ok = 1;
        db = open_with(path, sqlite_wal_vfs(), 8);
        if (!db) _exit(3);
        for (r = 0; r < 20 && ok; r++) {
            ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
                 insert_rows(db, 0, 200, r) == SQLITE_OK && insert_rows(db, 50, 100, r + 1) == SQLITE_OK &&
                 sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        }
        _exit(ok ? 0 : 4);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    db = open_with(path, NULL, 2000);
    CHECK(db != NULL);
    if (!db) return;
    CHECK(integrity_ok(db));
    CHECK(query_int(db, "SELECT count(*) FROM t") == 200);
    /* the last round: k < 50 or k >= 150 hold round 19's letter, 50..149 round 20's */
    CHECK(query_int(db, "SELECT count(*) FROM t WHERE v = printf('%.600c', char(97 + (k + CASE WHEN k BETWEEN 50 "
                        "AND 149 THEN 20 ELSE 19 END) % 26))") == 200);
    sqlite3_close(db);
}

/* Connection A spills a transaction into the WAL and rolls it back; B
 * commits frames at the same offsets; then A commits. A must not write its
 * rolled-back frames over B's: after all, both commits are there and the
 * file is sound. (Here SQLite's rollback reads page 1 back from the WAL,
 * which writes A's buffer out before B starts; the layer also drops what
 * is left when A gives up the write lock, for when nothing is read.) */
static void test_rollback_then_other_writer(void) {
    char path[300];
    sqlite3 *a, *b, *c;
    path_of("rollback", path, sizeof path);
    a = open_with(path, sqlite_wal_vfs(), 8);
    b = open_with(path, NULL, 2000);
    CHECK(a && b);
    if (!a || !b) goto out;
    CHECK(sqlite3_exec(a, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(insert_rows(a, 1000, 150, 0) == SQLITE_OK);
    CHECK(sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sqlite3_exec(b, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(insert_rows(b, 0, 60, 1) == SQLITE_OK);
    CHECK(sqlite3_exec(b, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(insert_rows(a, 500, 1, 2) == SQLITE_OK);
    sqlite3_close(a);
    sqlite3_close(b);
    a = b = NULL;
    c = open_with(path, NULL, 2000);
    CHECK(c != NULL);
    if (c) {
        CHECK(integrity_ok(c));
        CHECK(query_int(c, "SELECT count(*) FROM t WHERE k < 60 AND v = printf('%.600c', char(97 + (k + 1) % 26))") == 60);
        CHECK(query_int(c, "SELECT count(*) FROM t WHERE k = 500") == 1);
        CHECK(query_int(c, "SELECT count(*) FROM t") == 61);
        sqlite3_close(c);
    }
out:
    sqlite3_close(a);
    sqlite3_close(b);
}

/* A child whose files may not grow past 300 KB commits until a commit
 * fails; the failure is returned (not lost in the buffer), and the parent
 * finds exactly the commits that succeeded, in a sound file. */
static void test_write_error(int full) {
    char path[300];
    int fds[2], status = 0, committed = -1, err = 0;
    pid_t pid;
    sqlite3 *db;
    path_of(full ? "fsize_full" : "fsize", path, sizeof path);
    if (pipe(fds) != 0) {
        CHECK(0);
        return;
    }
    if ((pid = fork()) == 0) {
        struct rlimit rl = { 300 * 1024, 300 * 1024 };
        int out[2] = { 0, 0 }, r;
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        db = open_with(path, sqlite_wal_vfs(), 2000);
        if (!db || (full && !exec_ok(db, "PRAGMA synchronous = FULL")) || setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(3);
        for (r = 0; r < 100; r++) {
            int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
            if (rc == SQLITE_OK) rc = insert_rows(db, r * 20, 20, 0);
            if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
            if (rc != SQLITE_OK) {
                out[1] = rc;
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                break;
            }
            out[0]++;
        }
        _exit(write(fds[1], out, sizeof out) == (ssize_t)sizeof out ? 0 : 5);
    }
    close(fds[1]);
    {
        int in[2] = { -1, 0 };
        CHECK(read(fds[0], in, sizeof in) == (ssize_t)sizeof in);
        committed = in[0];
        err = in[1];
    }
    close(fds[0]);
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(committed > 0 && committed < 100);
    CHECK(err != SQLITE_OK);
    db = open_with(path, NULL, 2000);
    CHECK(db != NULL);
    if (!db) return;
    CHECK(integrity_ok(db));
    CHECK(query_int(db, "SELECT count(*) FROM t") == (int64_t)committed * 20);
    sqlite3_close(db);
}

/* A writer whose WAL is checkpointed every 20 frames and cut back to 64 KB
 * (so it restarts from its header again and again) commits 300
 * transactions of 10 rows while the parent keeps reading: every read sees
 * whole transactions, never a torn one. The writer dies without closing;
 * everything it committed is there. The parent reads on the default VFS,
 * then through this layer with the WAL mapped: the file it maps is cut
 * short and rewritten by the other process all the while. */
static void test_restarts_with_reader(int mapped) {
    char path[300];
    pid_t pid;
    int status = 0, reads = 0, torn = 0;
    unsigned long before = sqlite_wal_map_reads();
    sqlite3 *db;
    path_of(mapped ? "restarts_mapped" : "restarts", path, sizeof path);
    /* the table exists before either side starts; the mapped reader has an
     * 8-page cache, so it reads the WAL's frames through its map */
    db = mapped ? open_with(path, sqlite_wal_vfs(), 8) : open_with(path, NULL, 2000);
    CHECK(db != NULL);
    if (!db) return;
    if (mapped) CHECK(sqlite3_exec(db, "PRAGMA mmap_size = 67108864", NULL, NULL, NULL) == SQLITE_OK);
    if ((pid = fork()) == 0) {
        int r, ok;
        sqlite3 *w = open_with(path, sqlite_wal_vfs(), 2000);
        if (!w || sqlite3_exec(w, "PRAGMA wal_autocheckpoint = 20; PRAGMA journal_size_limit = 65536", NULL,
                               NULL, NULL) != SQLITE_OK)
            _exit(3);
        for (r = 0, ok = 1; r < 300 && ok; r++)
            ok = sqlite3_exec(w, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
                 insert_rows(w, r * 10, 10, r) == SQLITE_OK && sqlite3_exec(w, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        _exit(ok ? 0 : 4);
    }
    while (waitpid(pid, &status, WNOHANG) == 0) {
        int64_t n = query_int(db, "SELECT count(*) FROM t");
        int64_t full = query_int(db, "SELECT count(*) FROM t WHERE length(v) = 600");
        reads++;
        torn += n < 0 || n % 10 != 0 || full < n;
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(reads > 0 && torn == 0);
    if (mapped) CHECK(sqlite_wal_map_reads() > before);
    CHECK(integrity_ok(db));
    CHECK(query_int(db, "SELECT count(*) FROM t") == 3000);
    sqlite3_close(db);
}

/* 30 transactions of 100 rows (k0 ..), each its own commit */
static int commit_rows(sqlite3 *db, int k0, int rounds) {
    int r, ok = 1;
    for (r = 0; r < rounds && ok; r++)
        ok = exec_ok(db, "BEGIN IMMEDIATE") && insert_rows(db, k0 + r * 100, 100, 0) == SQLITE_OK &&
             exec_ok(db, "COMMIT");
    return ok;
}

#define ROWS_OK "SELECT count(*) FROM t WHERE v = printf('%.600c', char(97 + k % 26))"

/* With the database mapped (mmap_size > 0), WAL frames are read through a
 * map of the WAL file. An 8-page cache makes every read go to the WAL
 * (nothing is checkpointed). A 1 MB map is shorter than the WAL, so the
 * frames past it come through pread: both halves must read right. Then
 * mmap_size = 0 drops the map, and a truncating checkpoint and new frames
 * start the WAL again. */
static void test_map_reads(void) {
    char path[300];
    unsigned long before;
    sqlite3 *db, *plain;
    path_of("map", path, sizeof path);
    db = open_with(path, sqlite_wal_vfs(), 8);
    CHECK(db != NULL);
    if (!db) return;
    CHECK(exec_ok(db, "PRAGMA mmap_size = 1048576"));
    CHECK(commit_rows(db, 0, 30));
    before = sqlite_wal_map_reads();
    CHECK(query_int(db, ROWS_OK) == 3000);
    CHECK(sqlite_wal_map_reads() > before);
    CHECK(integrity_ok(db));
    plain = open_with(path, NULL, 2000);
    CHECK(plain && query_int(plain, ROWS_OK) == 3000);
    sqlite3_close(plain);

    CHECK(exec_ok(db, "PRAGMA mmap_size = 0"));
    before = sqlite_wal_map_reads();
    CHECK(query_int(db, ROWS_OK) == 3000);
    CHECK(sqlite_wal_map_reads() == before);

    CHECK(exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA mmap_size = 67108864"));
    CHECK(commit_rows(db, 3000, 10));
    before = sqlite_wal_map_reads();
    CHECK(query_int(db, ROWS_OK) == 4000);
    CHECK(sqlite_wal_map_reads() > before);
    CHECK(integrity_ok(db));
    sqlite3_close(db);
}

/* A WAL file cut short behind SQLite's back (another program, a broken
 * disk) while a connection has it mapped: reading the lost frames through
 * the map would kill the process with SIGBUS. The layer asks the file's
 * size again after every WAL lock, so the read goes to pread and fails
 * with an error. Run in a child, which must exit, not die of a signal. */
static void test_wal_cut_short(void) {
    char path[300], wal[310];
    pid_t pid;
    int status = 0;
    path_of("cut", path, sizeof path);
    snprintf(wal, sizeof wal, "%s-wal", path);
    if ((pid = fork()) == 0) {
        unsigned long before;
        int64_t n;
        sqlite3 *db = open_with(path, sqlite_wal_vfs(), 8);
        if (!db || !exec_ok(db, "PRAGMA mmap_size = 67108864") || !commit_rows(db, 0, 20)) _exit(3);
        before = sqlite_wal_map_reads();
        if (query_int(db, ROWS_OK) != 2000 || sqlite_wal_map_reads() == before) _exit(4);
        if (truncate(wal, 65536) != 0) _exit(5);
        n = query_int(db, ROWS_OK);
        _exit(n == 2000 ? 6 : 0); /* an error (-1) or fewer rows: it noticed */
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status)) fprintf(stderr, "test_wal_cut_short: the child died of signal %d\n", WTERMSIG(status));
}

static int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* With synchronous = FULL, each commit's sync grows the WAL file a
 * megabyte at a time, with zeros past the frames. A child commits 400
 * small transactions (the WAL passes 1 MB), then 300 more that restart the
 * WAL from its header every 20 frames, and dies without closing after
 * each part. The WAL is a whole number of megabytes, and the parent, on
 * the default VFS, recovers every commit through the zeros. */
static void test_grow_full(void) {
    char path[300], wal[310];
    int part;
    path_of("grow", path, sizeof path);
    snprintf(wal, sizeof wal, "%s-wal", path);
    for (part = 0; part < 2; part++) {
        pid_t pid;
        int status = 0;
        sqlite3 *db;
        if ((pid = fork()) == 0) {
            int r, ok, n = part ? 300 : 400;
            int64_t first;
            sqlite3 *w = open_with(path, sqlite_wal_vfs(), 2000);
            if (!w || !exec_ok(w, "PRAGMA synchronous = FULL") ||
                (part && !exec_ok(w, "PRAGMA wal_autocheckpoint = 20")))
                _exit(3);
            ok = exec_ok(w, "BEGIN IMMEDIATE") && insert_rows(w, part * 10000, 3, 0) == SQLITE_OK &&
                 exec_ok(w, "COMMIT");
            first = file_size(wal);
            for (r = 1; r < n && ok; r++)
                ok = exec_ok(w, "BEGIN IMMEDIATE") && insert_rows(w, part * 10000 + r * 3, 3, 0) == SQLITE_OK &&
                     exec_ok(w, "COMMIT");
            if (!ok) _exit(4);
            /* one commit grew it to the first megabyte; in the end, whole ones */
            if (!part && first != 1 << 20) _exit(5);
            if (file_size(wal) <= 0 || file_size(wal) % (1 << 20) != 0) _exit(6);
            if (!part && file_size(wal) < 2 << 20) _exit(7);
            _exit(0);
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        db = open_with(path, NULL, 2000);
        CHECK(db != NULL);
        if (!db) return;
        CHECK(integrity_ok(db));
        CHECK(query_int(db, ROWS_OK) == (part ? 2100 : 1200));
        sqlite3_close(db);
    }
}

int main(void) {
    if (!dir_create("sqlite_wal_check")) return 2;
    CHECK(sqlite_wal_vfs() != NULL);
    test_spill_then_crash();
    test_rollback_then_other_writer();
    test_write_error(0);
    test_write_error(1);
    test_restarts_with_reader(0);
    test_restarts_with_reader(1);
    test_map_reads();
    test_wal_cut_short();
    test_grow_full();
    dir_remove();
    printf("sqlite_wal_check: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
