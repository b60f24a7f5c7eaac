/* json_text.c: JSON text at the byte level: reals read and written exactly, and the scan for plain string content */
/* SPDX-License-Identifier: MIT */
/* No allocation and no errors: the core's reader and writers use these, and
 * so does the bench's floor of an append (bench/lbench.c), which is built
 * from this file too. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

/* Most numbers people store (at most 15-16 significant digits, a small
 * exponent) take an exact path: m and 10^|e| are both exact doubles when
 * m <= 2^53 and |e| <= 22, so m * 10^e (or m / 10^-e) is one correctly
 * rounded operation (Clinger's fast path), the value strtod gives. The
 * rest goes through strtod, with the locale's decimal point put in. */
static const double pow10_exact[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

static int real_fast(const char *s, size_t n, double *out) {
    const char *p = s, *end = s + n;
    uint64_t m = 0;
    int digits = 0, neg = 0, e = 0, eneg = 0, ex = 0;
    double d;
    if (p < end && *p == '-') neg = 1, p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (m == 0 && *p == '0') continue;
        if (++digits > 19) return 0;
        m = m * 10 + (uint64_t)(*p - '0');
    }
    if (p < end && *p == '.')
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            e--;
            if (m == 0 && *p == '0') continue;
            if (++digits > 19) return 0;
            m = m * 10 + (uint64_t)(*p - '0');
        }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (ex > 10000) return 0;
            ex = ex * 10 + (*p - '0');
        }
        e += eneg ? -ex : ex;
    }
    if (p != end || m > ((uint64_t)1 << 53)) return 0;
    d = (double)m;
    if (m != 0) {
        if (e < -22 || e > 22) return 0;
        d = e < 0 ? d / pow10_exact[-e] : d * pow10_exact[e];
    }
    *out = neg ? -d : d;
    return 1;
}

int es_json_real(const char *s, size_t n, double *out) {
    char buf[128], *tail, *dot;
    const char *dp;
    double d;
    if (real_fast(s, n, out)) return 1;
    if (n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    dp = localeconv()->decimal_point;
    if (dp[0] != '.' && (dot = strchr(buf, '.'))) *dot = dp[0];
    errno = 0;
    d = strtod(buf, &tail);
    if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE) return 0;
    *out = d;
    return 1;
}

/* Writes u's decimal digits, with a '-' before them when neg, so that they
 * end at end (a scratch buffer's end), copies them to out and returns how
 * many bytes they are. */
static size_t put_digits(uint64_t u, int neg, char *p, char *end, char *out) {
    size_t n;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg) *--p = '-';
    n = (size_t)(end - p);
    memcpy(out, p, n);
    return n;
}

/* A real with at most 15 decimals whose digits fit 2^53, written exactly:
 * m = |d| * 10^k is an integer and m / 10^k gives |d| back (both exact
 * doubles, one correctly rounded division: what a reader's correctly
 * rounded strtod makes of the text). 0 when d is not such a number. */
static size_t format_fixed(double d, char out[48]) {
    char tmp[48], *p = tmp + sizeof tmp;
    double a = fabs(d);
    uint64_t m;
    int k, i;
    size_t n;
    if (a == 0) {
        n = signbit(d) ? 4 : 3;
        memcpy(out, signbit(d) ? "-0.0" : "0.0", n);
        return n;
    }
    if (a >= 9007199254740992.0 || a < 1e-6) return 0;
    for (k = 0; k <= 15; k++) {
        double t = a * pow10_exact[k];
        if (t >= 9007199254740992.0) return 0;
        if (t == floor(t) && t / pow10_exact[k] == a) break;
    }
    if (k > 15) return 0;
    m = (uint64_t)(a * pow10_exact[k]);
    /* the digits of m, a "." k from the right, at least one digit before it */
    if (k == 0) *--p = '0';
    for (i = 0; i < k; i++) {
        *--p = (char)('0' + m % 10);
        m /= 10;
    }
    *--p = '.';
    return put_digits(m, d < 0, p, tmp + sizeof tmp, out);
}

size_t es_json_format_int(long long v, char out[24]) {
    char tmp[24];
    uint64_t u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    return put_digits(u, v < 0, tmp + sizeof tmp, tmp + sizeof tmp, out);
}

size_t es_json_format_real(double d, char out[48]) {
    const char *dp;
    char *dot;
    double back;
    int prec, n = 0;
    size_t fixed = format_fixed(d, out);
    if (fixed) return fixed;
    dp = localeconv()->decimal_point;
    /* the shortest of %.15g, %.16g and %.17g that reads back to d */
    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 40, "%.*g", prec, d);
        if (dp[0] != '.' && (dot = strchr(out, dp[0]))) *dot = '.';
        if (prec == 17 || (es_json_real(out, (size_t)n, &back) && back == d)) break;
    }
    if (!memchr(out, '.', (size_t)n) && !memchr(out, 'e', (size_t)n)) {
        out[n++] = '.';
        out[n++] = '0';
    }
    return (size_t)n;
}

/* The scan of es_json_plain; with ascii, it stops also at a byte >= 0x80
 * (es_json_plain_ascii). Inlined into both, each with its constant. */
static inline const char *plain_scan(const char *q, const char *end, int ascii) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
#ifdef ES_SSE2
    /* 16 bytes at a time (SSE2 is in every x86-64): '"', '\\' or a byte
     * below 0x20 (max(b, 0x1F) == 0x1F), with ascii a byte's high bit
     * (the mask of w itself), and the first one's place from the mask */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
    while (end - q >= 16) {
        __m128i w = _mm_loadu_si128((const __m128i *)(const void *)q);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(w, quote), _mm_cmpeq_epi8(w, bslash)),
                                   _mm_cmpeq_epi8(_mm_max_epu8(w, ctl), ctl));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit) | (ascii ? (unsigned)_mm_movemask_epi8(w) : 0u);
        if (mask) return q + __builtin_ctz(mask);
        q += 16;
    }
#endif
    while (end - q >= 8) {
        uint64_t w, quote, bslash, hit;
        memcpy(&w, q, 8);
        quote = w ^ (ones * '"');
        bslash = w ^ (ones * '\\');
        /* a zero byte in quote or bslash, or a byte below 0x20 in w (each
         * test may also flag a later byte: the loop below finds the first);
         * with ascii, a byte with its high bit set */
        hit = ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash) | ((w - ones * 0x20) & ~w) | (ascii ? w : 0);
        if (hit & highs) break;
        q += 8;
    }
    while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 && (!ascii || (unsigned char)*q < 0x80))
        q++;
    return q;
}

const char *es_json_plain(const char *q, const char *end) { return plain_scan(q, end, 0); }

const char *es_json_plain_ascii(const char *q, const char *end) { return plain_scan(q, end, 1); }
