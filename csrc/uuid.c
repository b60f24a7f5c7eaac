/* uuid.c: event ids (libuuid), UUID and UTF-8 validation, time, categories */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uuid/uuid.h>

#include "es_internal.h"

/* libuuid's uuid_generate_random reseeds random(3) on every call (it was
 * 6-15% of an append's CPU), so event ids draw their random bits from
 * getrandom(2) in 4 KB refills instead. The pool is per thread, and is
 * dropped in a forked child: a parent and child must never hand out the
 * same bytes. Only the forking thread lives on in the child, so the fork
 * handler empties that thread's pool; it is registered once, by the first
 * draw (glibc unregisters it when the module is unloaded). Asking getpid()
 * on every draw instead was a system call per id: on a VM with costly
 * system calls, 60% of an in-memory append. */
static __thread unsigned char pool[4096];
static __thread size_t pool_left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void pool_drop_in_child(void) {
    memset(pool, 0, sizeof pool);
    pool_left = 0;
}

static void register_atfork(void) {
    pthread_atfork(NULL, NULL, pool_drop_in_child);
}

static void random_bytes(unsigned char *out, size_t n) {
    if (pool_left < n) {
        size_t got = 0;
        pthread_once(&atfork_once, register_atfork);
        while (got < sizeof pool) {
            ssize_t r = getrandom(pool + got, sizeof pool - got, 0);
            if (r > 0) got += (size_t)r;
            else if (r < 0 && errno != EINTR) break;
        }
        if (got < sizeof pool) {
            /* no getrandom (very old kernel): libuuid's own source */
            uuid_t u;
            uuid_generate_random(u);
            memcpy(out, u, n < sizeof u ? n : sizeof u);
            return;
        }
        pool_left = sizeof pool;
    }
    memcpy(out, pool + sizeof pool - pool_left, n);
    /* used bytes are wiped so they cannot be handed out twice */
    memset(pool + sizeof pool - pool_left, 0, n);
    pool_left -= n;
}

static const char hex[] = "0123456789abcdef";

/* u as 36 lower-case characters and a NUL: libuuid's uuid_unparse_lower
 * formats through sprintf-like code, several times the work. */
static void unparse(const uuid_t u, char out[ES_UUID_LEN + 1]) {
    int i;
    for (i = 0; i < 16; i++) {
        /* dashes after bytes 4, 6, 8 and 10 */
        *out++ = hex[u[i] >> 4];
        *out++ = hex[u[i] & 15];
        if (i == 3 || i == 5 || i == 7 || i == 9) *out++ = '-';
    }
    *out = '\0';
}

/* A random (version 4) UUID from the same pool: libuuid's own generator
 * reseeds random(3) on every call, about 9,000 instructions per id. */
void es_uuid(char out[ES_UUID_LEN + 1]) {
    uuid_t u;
    random_bytes(u, sizeof u);
    u[6] = (unsigned char)(0x40 | (u[6] & 0x0F));
    u[8] = (unsigned char)(0x80 | (u[8] & 0x3F));
    unparse(u, out);
}

/* A time-ordered (version 7) UUID: 48 bits of milliseconds, then random
 * bits. Generated event ids are these, so the unique index on ids grows at
 * its end like the position does, instead of touching a random page for
 * every append. */
void es_uuid_v7(char out[ES_UUID_LEN + 1]) {
    uuid_t u;
    uint64_t ms = (uint64_t)es_now_ms();
    int i;
    random_bytes(u, sizeof u);
    for (i = 0; i < 6; i++) u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)(0x70 | (u[6] & 0x0F));
    u[8] = (unsigned char)(0x80 | (u[8] & 0x3F));
    unparse(u, out);
}

/* The hex digits of a UUID's first 48 bits, most significant first. */
static const int id_prefix_at[12] = { 0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12 };

void es_id_stamp(char *id, int64_t position) {
    uint64_t p = (uint64_t)position;
    int k;
    /* outside (0, 2^48) the id stays the time-ordered one it was */
    if (!es_id_stampable(position)) return;
    for (k = 11; k >= 0; k--, p >>= 4) id[id_prefix_at[k]] = hex[p & 15];
    id[14] = '8';
}

int64_t es_id_position(const char *id) {
    int64_t p = 0;
    int k;
    for (k = 0; k < 12; k++) {
        char c = id[id_prefix_at[k]];
        int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (v < 0) return -1;
        p = p * 16 + v;
    }
    return p;
}

/* 8-4-4-4-12 hex digits; either case. */
int es_valid_uuid(const char *s) {
    size_t i;
    if (!s || strlen(s) != ES_UUID_LEN) return 0;
    for (i = 0; i < ES_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
int es_valid_utf8(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str, *end = s + n;
    while (s < end) {
        unsigned c = *s;
        if (c < 0x80) {
            /* ASCII runs, 8 bytes at a time (memcpy: no alignment needed) */
            uint64_t w;
            s++;
#ifdef ES_SSE2
            while (end - s >= 16 && !_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)s))) s += 16;
#endif
            while (end - s >= 8) {
                memcpy(&w, s, 8);
                if (w & 0x8080808080808080ULL) break;
                s += 8;
            }
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (end - s < 2 || (s[1] & 0xC0) != 0x80) return 0;
            s += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (end - s < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && s[1] < 0xA0) return 0;
            if (c == 0xED && s[1] > 0x9F) return 0;
            s += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (end - s < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && s[1] < 0x90) return 0;
            if (c == 0xF4 && s[1] > 0x8F) return 0;
            s += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

const char *es_category(const char *stream, size_t *len) {
    const char *dash = strchr(stream, '-');
    *len = dash ? (size_t)(dash - stream) : strlen(stream);
    return stream;
}

int es_category_ok(const char *category, const char *stream) {
    size_t len, clen;
    if (!category) return 1;
    es_category(stream, &len);
    clen = strlen(category);
    return len == clen && memcmp(stream, category, len) == 0;
}

int64_t es_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
