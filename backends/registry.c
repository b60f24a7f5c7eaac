/* registry.c: maps URL schemes to the built-in backends */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "../csrc/es_backend.h"

extern const es_backend es_memory_backend;
extern const es_backend es_sqlite_backend;
#if ES_WITH_POSTGRES
extern const es_backend es_postgres_backend;
#endif

static const struct {
    const char *scheme;
    const es_backend *be;
} registry[] = {
    { "memory", &es_memory_backend },
    { "sqlite", &es_sqlite_backend },
#if ES_WITH_POSTGRES
    { "postgres", &es_postgres_backend },
    { "postgresql", &es_postgres_backend },
#endif
};

const es_backend *es_backend_find(const char *scheme, size_t len) {
    size_t i;
    for (i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (strlen(registry[i].scheme) == len && memcmp(registry[i].scheme, scheme, len) == 0)
            return registry[i].be;
    return NULL;
}
