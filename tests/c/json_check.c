/* json_check.c: checks of the core's JSON number and string helpers (es_internal.h) */
/* SPDX-License-Identifier: MIT */
/* Built and run by make test, like every other NAME_check.c here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (checks++, !(cond))                                                            \
            failures++, fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__),     \
                fprintf(stderr, __VA_ARGS__), fputc('\n', stderr);                        \
    } while (0)

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
 * in texts around the 8-byte word size, and with UTF-8 bytes around it. */
static const char *plain_slow(const char *p, const char *end) {
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    return p;
}

static void test_json_plain(void) {
    static const char specials[] = { '"', '\\', 0x00, 0x01, 0x1f, '\n' };
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
                }
}

int main(void) {
    test_json_real();
    test_json_plain();
    printf("json_check: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
