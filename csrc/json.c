/* json.c: exact JSON encoding and decoding of values through jansson */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

/* jansson allocates through es_malloc too, so failure injection reaches it.
 * It is a process-wide setting; setting it once from every entry point is
 * harmless because the functions never change. */
static void json_setup(void) {
    static int done = 0;
    if (!done) {
        json_set_alloc_funcs(es_malloc, es_free);
        done = 1;
    }
}

/* JSON_REAL_PRECISION(17) keeps every bit of a double; jansson writes
 * integral reals with ".0", so 3.0 stays a float and 3 an integer. */
#define ES_JSON_DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

char *es_json_encode(const json_t *v, size_t *len, es_err *err) {
    char *out;
    json_setup();
    /* json_dumps writes once into a buffer it allocates through es_malloc
     * (json_setup), so its result is ours to return and es_free. The text
     * has no NUL inside (U+0000 is written "\u0000"), so strlen is its size.
     * A json_t built by the core or the binding is always writable (no NaN,
     * no cycles): a NULL here means jansson could not allocate. */
    out = json_dumps(v, ES_JSON_DUMP_FLAGS);
    if (!out) {
        es_err_set(err, ES_ENOMEM, "encode: out of memory");
        return NULL;
    }
    if (len) *len = strlen(out);
    return out;
}

json_t *es_json_decode(const char *text, size_t len, es_err *err) {
    json_error_t je;
    json_t *v;
    json_setup();
    v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) es_err_set(err, ES_EINVALID, "decode: %s at position %d", je.text, je.position);
    return v;
}
