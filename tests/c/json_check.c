/* json_check.c: checks of the core's JSON number and string helpers (es_internal.h) */
/* SPDX-License-Identifier: MIT */
/* Built and run by make test, like every other NAME_check.c here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"
#include "check.h"

/* es_json_real against strtod in the C locale: every way of writing a
 * number (fraction, exponent, leading zeros, many digits, extremes) gives
 * the same bits, on the fast path and off it. */
static void test_json_real(void) {
    static const char *const fixed[] = { "0", "-0", "0.0", "-0.0", "12.5", "0.1", "0.3", "1e22", "1e23",
        "9007199254740993", "9007199254740992.0", "1.7976931348623157e308", "4.9e-324", "2.2250738585072014e-308",
        "123456789012345678901234567890", "0.000000000000000000000000001", "1E+2", "1e-2", "-12.50e1",
        "00012.5", "3.141592653589793", "2.718281828459045e-10", "1e-22", "1e-23", "100000000000000000000000" };
    char text[64];
    unsigned long long seed = 42;
    size_t i;
    for (i = 0; i < sizeof fixed / sizeof *fixed + 200000; i++) {
        double want, got = 0;
        const char *t;
        if (i < sizeof fixed / sizeof *fixed) {
            t = fixed[i];
        } else {
            unsigned long long r;
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            r = seed >> 11;
            switch (i % 4) {
            case 0: snprintf(text, sizeof text, "%.17g", (double)r / 1024.0); break;
            case 1: snprintf(text, sizeof text, "%llu.%llue%d", r % 100000, (r >> 20) % 1000000, (int)(r % 60) - 30); break;
            case 2: snprintf(text, sizeof text, "-%.*f", (int)(r % 12), (double)(r % 10000000) / 97.0); break;
            default: { double d; memcpy(&d, &seed, sizeof d); if (!isfinite(d)) d = 1.5; snprintf(text, sizeof text, "%.17g", d); }
            }
            t = text;
        }
        want = strtod(t, NULL);
        CHECK(es_json_real(t, strlen(t), &got) && memcmp(&got, &want, sizeof got) == 0,
              "es_json_real(%s) = %.17g, strtod says %.17g", t, got, want);
        if (isfinite(want)) {
            /* and written back: the same bits, read as a real */
            char out[48];
            double back = 0;
            size_t n = es_json_format_real(want, out);
            out[n] = '\0';
            CHECK(n < 48 && (strchr(out, '.') || strchr(out, 'e')) && es_json_real(out, n, &back) &&
                      memcmp(&back, &want, sizeof back) == 0,
                  "es_json_format_real(%.17g) = %s reads back as %.17g", want, out, back);
        }
    }
    {
        double d;
        CHECK(!es_json_real("1e400", 5, &d), "1e400 overflows");
        CHECK(!es_json_real("-1e400", 6, &d), "-1e400 overflows");
    }
}

/* es_json_plain stops exactly where a bytewise scan does: at the first
 * quote, backslash or control byte, for every position of the special byte
 * in texts around the 8-byte word size, and with UTF-8 bytes around it;
 * es_json_plain_ascii also at the first byte >= 0x80. */
static const char *plain_slow(const char *p, const char *end) {
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    return p;
}

static const char *ascii_slow(const char *p, const char *end) {
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80) p++;
    return p;
}

static void test_json_plain(void) {
    static const char specials[] = { '"', '\\', 0x00, 0x01, 0x1f, '\n', (char)0x80, (char)0xc3 };
    static const char fill[] = { 'a', ' ', '~', (char)0xc3, (char)0xa9, (char)0xff, (char)0x80, 0x20, 0x7f };
    char text[40];
    size_t len, at, s, f;
    for (len = 0; len <= sizeof text; len++)
        for (f = 0; f < sizeof fill; f++)
            for (at = 0; at <= len; at++)
                for (s = 0; s < sizeof specials; s++) {
                    memset(text, fill[f], len);
                    if (at < len) text[at] = specials[s];
                    CHECK(es_json_plain(text, text + len) == plain_slow(text, text + len),
                          "es_json_plain: length %zu, fill 0x%02x, special 0x%02x at %zu", len,
                          (unsigned char)fill[f], (unsigned char)specials[s], at);
                    CHECK(es_json_plain_ascii(text, text + len) == ascii_slow(text, text + len),
                          "es_json_plain_ascii: length %zu, fill 0x%02x, special 0x%02x at %zu", len,
                          (unsigned char)fill[f], (unsigned char)specials[s], at);
                }
}

/* es_valid_utf8 (ASCII runs 16 and 8 bytes at a time) agrees with a
 * bytewise strict decoder for every place of a sequence in ASCII texts
 * around the word sizes. */
static int utf8_slow(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, cp, k;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07;
        else return 0;
        if (n - i <= need) return 0;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += need + 1;
    }
    return 1;
}

static void test_valid_utf8(void) {
    static const char *const seqs[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc3", "\xe2\x82",
                                        "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\xff", "\x80",
                                        "\xe0\x80\xaf", "\xf0\x9f\x98" };
    unsigned char text[56];
    size_t len, at, q;
    for (len = 0; len <= 48; len++)
        for (q = 0; q < sizeof seqs / sizeof *seqs; q++)
            for (at = 0; at <= len; at++) {
                size_t sl = strlen(seqs[q]), n = len + sl;
                memset(text, 'a', len);
                memmove(text + at + sl, text + at, len - at);
                memcpy(text + at, seqs[q], sl);
                CHECK(es_valid_utf8((const char *)text, n) == utf8_slow(text, n),
                      "es_valid_utf8: sequence %zu at %zu of %zu", q, at, n);
            }
}

/* es_json_format_int writes what printf's %lld writes, extremes included. */
static void test_json_int(void) {
    static const long long vals[] = { 0, 1, -1, 9, 10, -10, 12345, 9007199254740993LL,
                                      9223372036854775807LL, -9223372036854775807LL - 1 };
    size_t i;
    for (i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char out[24], want[32];
        size_t n = es_json_format_int(vals[i], out);
        snprintf(want, sizeof want, "%lld", vals[i]);
        CHECK(n == strlen(want) && memcmp(out, want, n) == 0, "es_json_format_int(%s) = %.*s", want, (int)n, out);
    }
}

int main(void) {
    test_json_real();
    test_json_int();
    test_json_plain();
    test_valid_utf8();
    printf("json_check: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
