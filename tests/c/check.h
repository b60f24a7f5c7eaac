/* check.h: the counters and the CHECK(cond, fmt, ...) macro of the core's checks */
/* SPDX-License-Identifier: MIT */
#ifndef ES_CHECK_H
#define ES_CHECK_H

#include <stdio.h>

static int failures, checks;

/* Counts a check; when cond is false, prints file:line and the message. */
#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (checks++, !(cond))                                                            \
            failures++, fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__),     \
                fprintf(stderr, __VA_ARGS__), fputc('\n', stderr);                        \
    } while (0)

#endif
