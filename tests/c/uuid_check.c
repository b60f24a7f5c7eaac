/* uuid_check.c: checks of the core's event ids (uuid.c) */
/* SPDX-License-Identifier: MIT */
/* Built and run by make test, like every other NAME_check.c here. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "es_internal.h"
#include "check.h"

/* Both kinds are well formed (as libuuid writes them), carry their version
 * and variant, and never repeat over more ids than one 4 KB pool holds. */
static void test_shape(void) {
    enum { N = 2000 };
    static char ids[N][ES_UUID_LEN + 1];
    int i, j, dup = 0;
    for (i = 0; i < N; i++) {
        if (i % 2) es_uuid(ids[i]); else es_uuid_v7(ids[i]);
        CHECK(es_valid_uuid(ids[i]) && strlen(ids[i]) == ES_UUID_LEN, "id %d: %s", i, ids[i]);
        CHECK(ids[i][14] == (i % 2 ? '4' : '7') && strchr("89ab", ids[i][19]), "id %d version/variant: %s", i, ids[i]);
        {
            /* written as libuuid writes the same 16 bytes */
            uuid_t u;
            char back[ES_UUID_LEN + 1] = "";
            if (uuid_parse(ids[i], u) == 0) uuid_unparse_lower(u, back);
            CHECK(strcmp(back, ids[i]) == 0, "id %d: %s reads back as '%s'", i, ids[i], back);
        }
    }
    for (i = 0; i < N; i++)
        for (j = i + 1; j < N; j++) dup += strcmp(ids[i], ids[j]) == 0;
    CHECK(dup == 0, "%d repeated ids among %d", dup, N);
}

/* A stamped id names its position in its first 48 bits, is version 8 and
 * keeps every other character; es_id_position reads any id's 48 bits back
 * (either case). Positions outside (0, 2^48) leave the id as it was. */
static void test_stamp(void) {
    static const int64_t at[] = { 1, 2, 15, 16, 65535, 65536, 4294967295LL, 4294967296LL,
                                  ES_ID_STAMP_LIMIT - 1 };
    char id[ES_UUID_LEN + 1], before[ES_UUID_LEN + 1], want[16];
    size_t i;
    int k;
    for (i = 0; i < sizeof at / sizeof at[0]; i++) {
        es_uuid_v7(id);
        memcpy(before, id, sizeof id);
        es_id_stamp(id, at[i]);
        snprintf(want, sizeof want, "%08llx-%04llx", (unsigned long long)(at[i] >> 16),
                 (unsigned long long)(at[i] & 0xffff));
        CHECK(es_valid_uuid(id) && memcmp(id, want, 13) == 0 && id[14] == '8', "stamp %lld: %s",
              (long long)at[i], id);
        CHECK(memcmp(id + 15, before + 15, ES_UUID_LEN - 15) == 0 && id[13] == '-',
              "stamp %lld kept the rest: %s from %s", (long long)at[i], id, before);
        CHECK(es_id_position(id) == at[i], "position of %s: %lld", id, (long long)es_id_position(id));
    }
    for (k = 0; k < 4; k++) {
        static const int64_t out[] = { 0, -1, ES_ID_STAMP_LIMIT, INT64_MAX };
        es_uuid_v7(id);
        memcpy(before, id, sizeof id);
        es_id_stamp(id, out[k]);
        CHECK(strcmp(id, before) == 0, "stamp %lld changed %s to %s", (long long)out[k], before, id);
    }
    CHECK(es_id_position("0000ABCD-EF01-4000-8000-000000000000") == 0xabcdef01LL, "upper-case hex");
    CHECK(es_id_position("ffffffff-ffff-4000-8000-000000000000") == ES_ID_STAMP_LIMIT - 1, "all ones");
    CHECK(es_id_position("0000000g-0001-4000-8000-000000000000") == -1, "not hex");
}

/* A forked child must not hand out the ids its parent's pool still holds:
 * the parent draws once (its pool is now full), then parent and child each
 * draw the next ids, and none of the child's equals one of the parent's. */
static void test_fork(void) {
    enum { N = 64 };
    char first[ES_UUID_LEN + 1], mine[N][ES_UUID_LEN + 1], theirs[N][ES_UUID_LEN + 1];
    int fds[2], i, j, status = 0, same = 0;
    pid_t pid;
    es_uuid(first);
    if (pipe(fds) != 0) { CHECK(0, "pipe failed"); return; }
    pid = fork();
    if (pid < 0) { CHECK(0, "fork failed"); return; }
    if (pid == 0) {
        close(fds[0]);
        for (i = 0; i < N; i++) es_uuid(theirs[i]);
        _exit(write(fds[1], theirs, sizeof theirs) == (ssize_t)sizeof theirs ? 0 : 1);
    }
    close(fds[1]);
    for (i = 0; i < N; i++) es_uuid(mine[i]);
    CHECK(read(fds[0], theirs, sizeof theirs) == (ssize_t)sizeof theirs, "the child's ids");
    close(fds[0]);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child exit status %d", status);
    for (i = 0; i < N; i++)
        for (j = 0; j < N; j++) same += memcmp(mine[i], theirs[j], ES_UUID_LEN) == 0;
    CHECK(same == 0, "%d ids drawn in both parent and forked child", same);
}

int main(void) {
    test_shape();
    test_stamp();
    test_fork();
    printf("uuid_check: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
