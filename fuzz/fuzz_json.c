/* fuzz_json.c: libFuzzer target: es_json_decode / es_json_encode round trip, and es_valid_utf8 */
/* SPDX-License-Identifier: MIT */
/*
 * For any input:
 *  - es_json_decode either fails with ES_EINVALID and a message, or gives a
 *    value whose encoding decodes to an equal value (json_equal: integers
 *    stay integers, reals keep every bit) and encodes to the same text
 *    again (the encoding is a fixed point);
 *  - es_valid_utf8 agrees with a plain reference validator (RFC 3629: no
 *    overlong forms, no surrogates, nothing above U+10FFFF).
 */
#include "fuzz_common.h"
#include "eventstore.h"

static int ref_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, cp, min;
        size_t k;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= need) return 0;
        for (k = 1; k <= need; k++) {
            unsigned d = s[i + k];
            if ((d & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (d & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    es_err err;
    json_t *v, *w;
    char *t1, *t2;
    size_t n1 = 0, n2 = 0;

    FZ_CHECK(!es_valid_utf8((const char *)data, size) == !ref_utf8(data, size),
             "es_valid_utf8 says %d on %zu bytes", es_valid_utf8((const char *)data, size), size);

    es_err_clear(&err);
    v = es_json_decode((const char *)data, size, &err);
    if (!v) {
        FZ_CHECK(err.code == ES_EINVALID, "decode failed with code %d", err.code);
        FZ_CHECK(err.msg[0] != '\0', "decode failed without a message");
        return 0;
    }
    t1 = es_json_encode(v, &n1, &err);
    FZ_CHECK(t1 != NULL, "encode of a decoded value failed: %s", err.msg);
    FZ_CHECK(strlen(t1) <= n1, "encoded text longer than its length");
    w = es_json_decode(t1, n1, &err);
    FZ_CHECK(w != NULL, "our own encoding does not decode: %s: %.200s", err.msg, t1);
    FZ_CHECK(json_equal(v, w), "round trip changed the value: %.200s", t1);
    t2 = es_json_encode(w, &n2, &err);
    FZ_CHECK(t2 != NULL, "second encode failed: %s", err.msg);
    FZ_CHECK(n1 == n2 && memcmp(t1, t2, n1) == 0, "encoding is not a fixed point: %.200s / %.200s", t1, t2);
    es_free(t1);
    es_free(t2);
    json_decref(v);
    json_decref(w);
    return 0;
}
