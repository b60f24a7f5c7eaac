/* reduce_num.c: the numbers the sum, count, min and max rules compute with */
/* SPDX-License-Identifier: MIT */
#include <math.h>

#include "es_internal.h"
#include "reduce.h"

int es_num_of(const json_t *v, es_num *n) {
    if (json_is_integer(v)) {
        n->is_int = 1;
        n->i = json_integer_value(v);
        n->d = (double)n->i;
        return 1;
    }
    if (json_is_real(v)) {
        n->is_int = 0;
        n->d = json_real_value(v);
        return 1;
    }
    return 0;
}

static void num_set_real(es_num *n, double d) {
    n->is_int = 0;
    n->d = d;
}

void es_num_add(es_num *a, const es_num *b) {
    if (a->is_int && b->is_int) {
        if ((b->i > 0 && a->i > INT64_MAX - b->i) || (b->i < 0 && a->i < INT64_MIN - b->i)) {
            num_set_real(a, (double)a->i + (double)b->i);
        } else {
            a->i += b->i;
            a->d = (double)a->i;
        }
        return;
    }
    num_set_real(a, a->d + b->d);
}

void es_num_mul(es_num *a, int b_int, int64_t bi, double bd) {
    if (a->is_int && b_int) {
        int64_t x = a->i, y = bi;
        int over;
        if (x == 0 || y == 0) over = 0;
        else if (x > 0) over = y > 0 ? x > INT64_MAX / y : y < INT64_MIN / x;
        else over = y > 0 ? x < INT64_MIN / y : x < INT64_MAX / y;
        if (over) {
            num_set_real(a, (double)x * (double)y);
        } else {
            a->i = x * y;
            a->d = (double)a->i;
        }
        return;
    }
    num_set_real(a, a->d * bd);
}

/* Exact order of an integer and a double (no rounding of the integer). */
static int cmp_int_real(int64_t i, double d) {
    double t;
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    t = trunc(d);
    if ((int64_t)t != i) return i < (int64_t)t ? -1 : 1;
    return t < d ? -1 : t > d ? 1 : 0;
}

int es_num_cmp(const es_num *a, const es_num *b) {
    if (a->is_int && b->is_int) return a->i < b->i ? -1 : a->i > b->i;
    if (a->is_int) return cmp_int_real(a->i, b->d);
    if (b->is_int) return -cmp_int_real(b->i, a->d);
    return a->d < b->d ? -1 : a->d > b->d;
}
