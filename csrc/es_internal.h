/* es_internal.h: private helpers shared by the core and the backends (never installed) */
/* SPDX-License-Identifier: MIT */
#ifndef ES_INTERNAL_H
#define ES_INTERNAL_H

#include "eventstore.h"
#include "es_backend.h"

#define ES_UNUSED(x) ((void)(x))

/* A growable byte buffer on es_malloc; b->data is NUL-terminated when len > 0. */
typedef struct es_buf {
    char *data;
    size_t len, cap;
} es_buf;

int  es_buf_reserve(es_buf *b, size_t extra);
int  es_buf_add(es_buf *b, const char *s, size_t n);
void es_buf_free(es_buf *b);

/* Matches a query's type filter (NULL/0 types = any). */
int es_query_type_ok(const es_query *q, const char *type);
/* Matches a stream against a category (NULL = any). */
int es_category_ok(const char *category, const char *stream);

#endif
