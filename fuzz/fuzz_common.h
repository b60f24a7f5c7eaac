/* fuzz_common.h: a byte reader for libFuzzer inputs and a failure report that aborts */
/* SPDX-License-Identifier: MIT */
#ifndef ES_FUZZ_COMMON_H
#define ES_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads the input a byte at a time; an exhausted input reads as zeros, so
 * every input, however short, decodes to something. */
typedef struct fz {
    const uint8_t *p, *end;
} fz;

static inline unsigned fz_byte(fz *f) { return f->p < f->end ? *f->p++ : 0; }
static inline unsigned fz_pick(fz *f, unsigned n) { return n ? fz_byte(f) % n : 0; }
static inline int fz_done(const fz *f) { return f->p >= f->end; }
static inline uint64_t fz_u64(fz *f) {
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++) v = (v << 8) | fz_byte(f);
    return v;
}

/* A finding: printed, then abort() so libFuzzer saves the input. */
#define FZ_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

#endif
