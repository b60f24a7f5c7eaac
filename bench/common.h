/* common.h: the workload definition shared by the raw C baselines (payload, clock, RSS, output) */
/* SPDX-License-Identifier: MIT */
#ifndef ES_BENCH_COMMON_H
#define ES_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* WORKLOAD.md: every payload is exactly this many bytes, compact JSON */
#define BENCH_PAYLOAD_LEN 200
#define BENCH_REVS 100               /* events per stream, in W1 and W2 alike */
#define BENCH_W1_STREAMS 200
#define BENCH_W2_STREAMS 1000
#define BENCH_PAGE 1000              /* W4 page size */

/* the note is the filler's first BENCH_NOTE_LEN bytes */
#define BENCH_NOTE_LEN 121
#define BENCH_FILLER \
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " \
    "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud " \
    "exercitation"

/* Writes event (s, r)'s payload into buf (BENCH_PAYLOAD_LEN + 1 bytes) and
 * returns its length, which the caller asserts. The note is the filler's first
 * BENCH_NOTE_LEN bytes: sku and qty have a fixed width, so every payload is 200 bytes. */
static inline int bench_payload(char *buf, size_t cap, int s, int r) {
    return snprintf(buf, cap,
                    "{\"type\":\"ItemAdded\",\"data\":{\"sku\":\"SKU-%06d\",\"qty\":%d,"
                    "\"price\":12.5,\"note\":\"%.*s\"}}",
                    s * 1000 + r, (r % 5) + 1, BENCH_NOTE_LEN, BENCH_FILLER);
}

/* All payloads of nstreams x BENCH_REVS events in one block, row (s, r) at
 * ((s * BENCH_REVS) + r - 1) * (BENCH_PAYLOAD_LEN + 1), NUL-terminated. */
static inline char *bench_payloads(int nstreams) {
    size_t stride = BENCH_PAYLOAD_LEN + 1, n = (size_t)nstreams * BENCH_REVS;
    char *all = malloc(n * stride);
    int s, r;
    if (!all) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    for (s = 0; s < nstreams; s++)
        for (r = 1; r <= BENCH_REVS; r++) {
            char *p = all + ((size_t)s * BENCH_REVS + r - 1) * stride;
            if (bench_payload(p, stride, s, r) != BENCH_PAYLOAD_LEN) {
                fprintf(stderr, "bench: payload (%d, %d) is not %d bytes\n", s, r, BENCH_PAYLOAD_LEN);
                exit(1);
            }
        }
    return all;
}

static inline const char *bench_payload_at(const char *all, int s, int r) {
    return all + ((size_t)s * BENCH_REVS + r - 1) * (BENCH_PAYLOAD_LEN + 1);
}

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A field of /proc/self/status in kB ("VmHWM", "VmRSS"), or -1. */
static inline long bench_status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(field);
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* Resets VmHWM to the current RSS (Linux "5" > clear_refs), so each
 * workload reports its own peak; harmless where unsupported. */
static inline void bench_reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

/* Scale from BENCH_SCALE (0 < x <= 1) applied to stream counts; revisions
 * stay at 100 so every verification holds. */
static inline int bench_scaled(int n) {
    const char *v = getenv("BENCH_SCALE");
    double f = v && *v ? atof(v) : 1.0;
    int m;
    if (!(f > 0) || f > 1) f = 1.0;
    m = (int)(n * f + 0.5);
    return m < 1 ? 1 : m;
}

/* Extracts the 6-digit sku number and the 1-digit qty from a payload by hand,
 * the way the C limits read: no JSON parser. Returns 0 when absent. */
static inline int bench_extract(const char *p, size_t len, long *sku, int *qty) {
    const char *k = memmem(p, len, "\"sku\":\"SKU-", 11);
    const char *q;
    if (!k || (size_t)(k - p) + 11 + 6 > len) return 0;
    *sku = strtol(k + 11, NULL, 10);
    q = memmem(k, len - (size_t)(k - p), "\"qty\":", 6);
    if (!q || (size_t)(q - p) + 7 > len) return 0;
    *qty = q[6] - '0';
    return 1;
}

/* One JSON line per workload. extra is "" or ",\"key\":value..." */
static inline void bench_emit(const char *backend, const char *workload, long events, double secs,
                       const char *extra) {
    long hwm = bench_status_kb("VmHWM");
    printf("{\"backend\":\"%s\",\"workload\":\"%s\",\"events\":%ld,\"seconds\":%.6f,"
           "\"events_per_s\":%.1f,\"peak_rss_mb\":%.2f%s}\n",
           backend, workload, events, secs, secs > 0 ? (double)events / secs : 0.0,
           hwm < 0 ? 0.0 : (double)hwm / 1024.0, extra ? extra : "");
    fflush(stdout);
}

#define BENCH_FAIL(...) do { fprintf(stderr, "bench: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

#endif
