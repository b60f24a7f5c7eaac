/* fuzz_fold_diff.c: libFuzzer target: the C reducer against a simple reference fold */
/* SPDX-License-Identifier: MIT */
/*
 * The input decodes to a valid rule set (targets a..e, sources a..f, every
 * kind, "*" with any kind but types, 'when' lists, integer and real
 * scales) and a sequence of up to 24 events of types A..D whose data holds
 * small and extreme integers, reals, strings, null, booleans, arrays and
 * objects. Each event is folded three ways:
 *   1. es_reducer_fold_json (the decoded path),
 *   2. the reference below, written from the rules in reduce.h with plain
 *      deep copies and no sharing,
 *   3. at the end, the whole sequence again through es_reducer_fold_cursor
 *      over the events' JSON texts (state.c's text path).
 * After every event the states must be json_equal (integers and reals
 * distinct) and either all fold or all fail (ES_EINVALID); the text path
 * must agree with the first error or the final state.
 */
#include <math.h>

#include "fuzz_common.h"
#include "eventstore.h"
#include "reduce.h"

#define MAX_RULES 8
#define MAX_EVENTS 24
#define CUSTOM_ID 5

static const char *const targets[] = { "a", "b", "c", "d", "e", "f" };
static const char *const types[] = { "A", "B", "C", "D" };

typedef struct rrule {
    const char *field;
    es_rule_kind kind;
    const char *from;
    const char *when[2];
    size_t nwhen;
    json_t *scale;
} rrule;

/* ---- the reference fold ---- */

typedef struct rnum {
    int is_int;
    int64_t i;
    double d;
} rnum;

static int ref_num(const json_t *v, rnum *n) {
    if (json_is_integer(v)) { n->is_int = 1; n->i = json_integer_value(v); n->d = (double)n->i; return 1; }
    if (json_is_real(v)) { n->is_int = 0; n->d = json_real_value(v); return 1; }
    return 0;
}

static void ref_add(rnum *a, const rnum *b) {
    if (a->is_int && b->is_int) {
        int64_t r;
        if (__builtin_add_overflow(a->i, b->i, &r)) { a->is_int = 0; a->d = (double)a->i + (double)b->i; }
        else { a->i = r; a->d = (double)r; }
        return;
    }
    a->is_int = 0;
    a->d = a->d + b->d;
}

static void ref_mul(rnum *a, const rnum *b) {
    if (a->is_int && b->is_int) {
        int64_t r;
        if (__builtin_mul_overflow(a->i, b->i, &r)) { a->is_int = 0; a->d = (double)a->i * (double)b->i; }
        else { a->i = r; a->d = (double)r; }
        return;
    }
    a->is_int = 0;
    a->d = a->d * b->d;
}

/* <0, 0, >0: exact even between int64 and double (x86-64 long double holds
 * every int64). */
static int ref_cmp(const rnum *a, const rnum *b) {
    long double x = a->is_int ? (long double)a->i : (long double)a->d;
    long double y = b->is_int ? (long double)b->i : (long double)b->d;
    return x < y ? -1 : x > y;
}

static int ref_store(json_t *st, const char *k, const rnum *n) {
    if (n->is_int) return json_object_set_new(st, k, json_integer(n->i)), 0;
    if (!isfinite(n->d)) return -1;
    return json_object_set_new(st, k, json_real(n->d)), 0;
}

static int ref_when(const rrule *r, const char *type) {
    size_t i;
    if (!r->nwhen) return 1;
    for (i = 0; i < r->nwhen; i++)
        if (strcmp(r->when[i], type) == 0) return 1;
    return 0;
}

/* state[k] as a fresh array: absent, null or {} -> [], an array -> a copy,
 * anything else -> [it] */
static json_t *ref_array(json_t *st, const char *k) {
    json_t *acc = json_object_get(st, k), *a;
    if (acc && json_is_array(acc)) a = json_deep_copy(acc);
    else {
        a = json_array();
        if (acc && !json_is_null(acc) && !(json_is_object(acc) && json_object_size(acc) == 0))
            json_array_append_new(a, json_deep_copy(acc));
    }
    json_object_set_new(st, k, a);
    return a;
}

static int ref_has(const json_t *arr, const json_t *v) {
    size_t i;
    for (i = 0; i < json_array_size(arr); i++)
        if (json_equal(json_array_get(arr, i), (json_t *)v)) return 1;
    return 0;
}

static void ref_merge(json_t *obj, const char *k, const json_t *v) {
    json_t *cur = json_object_get(obj, k);
    const char *k2;
    json_t *v2;
    if (!cur || !json_is_object(cur) || !json_is_object(v)) {
        json_object_set_new(obj, k, json_deep_copy(v));
        return;
    }
    json_object_foreach((json_t *)v, k2, v2) ref_merge(cur, k2, v2);
}

static int ref_apply(const rrule *r, json_t *st, const char *k, const json_t *v) {
    json_t *acc = json_object_get(st, k);
    rnum a, b, s;
    switch (r->kind) {
    case ES_RULE_LAST:
        json_object_set_new(st, k, json_deep_copy(v));
        return 0;
    case ES_RULE_FIRST:
        if (!acc) json_object_set_new(st, k, json_deep_copy(v));
        return 0;
    case ES_RULE_SUM:
        if (!ref_num(v, &b)) return -1;
        if (r->scale) { ref_num(r->scale, &s); ref_mul(&b, &s); }
        if (!acc) return r->scale ? ref_store(st, k, &b) : (json_object_set_new(st, k, json_deep_copy(v)), 0);
        if (!ref_num(acc, &a)) return -1;
        ref_add(&a, &b);
        return ref_store(st, k, &a);
    case ES_RULE_COUNT:
        b.is_int = 1; b.i = 1; b.d = 1.0;
        if (!acc) return ref_store(st, k, &b);
        if (!ref_num(acc, &a)) return -1;
        ref_add(&a, &b);
        return ref_store(st, k, &a);
    case ES_RULE_MIN:
    case ES_RULE_MAX: {
        int c;
        if (json_is_string(v) && !r->scale) {
            size_t la, lb;
            if (!acc) return json_object_set_new(st, k, json_deep_copy(v)), 0;
            if (!json_is_string(acc)) return -1;
            la = json_string_length(acc);
            lb = json_string_length(v);
            c = memcmp(json_string_value(v), json_string_value(acc), la < lb ? la : lb);
            if (c == 0) c = lb < la ? -1 : lb > la;
            if ((r->kind == ES_RULE_MIN && c < 0) || (r->kind == ES_RULE_MAX && c > 0))
                json_object_set_new(st, k, json_deep_copy(v));
            return 0;
        }
        if (!ref_num(v, &b)) return -1;
        if (acc && !ref_num(acc, &a)) return -1;
        if (r->scale) { ref_num(r->scale, &s); ref_mul(&b, &s); }
        if (acc) {
            c = ref_cmp(&b, &a);
            if (!((r->kind == ES_RULE_MIN && c < 0) || (r->kind == ES_RULE_MAX && c > 0))) return 0;
        }
        if (!r->scale) return json_object_set_new(st, k, json_deep_copy(v)), 0;
        return ref_store(st, k, &b);
    }
    case ES_RULE_APPEND:
    case ES_RULE_UNION: {
        int distinct = r->kind == ES_RULE_UNION;
        json_t *arr = ref_array(st, k);
        size_t i;
        if (!json_is_array(v)) {
            if (!distinct || !ref_has(arr, v)) json_array_append_new(arr, json_deep_copy(v));
            return 0;
        }
        for (i = 0; i < json_array_size(v); i++) {
            json_t *it = json_array_get(v, i);
            if (!distinct || !ref_has(arr, it)) json_array_append_new(arr, json_deep_copy(it));
        }
        return 0;
    }
    case ES_RULE_MERGE:
        ref_merge(st, k, v);
        return 0;
    case ES_RULE_CUSTOM: {
        /* the callback below: a count of the values seen, as an integer */
        json_int_t c = acc && json_is_integer(acc) ? json_integer_value(acc) : 0;
        json_object_set_new(st, k, json_integer(c == INT64_MAX ? 0 : c + 1));
        return 0;
    }
    default:
        return 0;
    }
}

static int ref_targeted(const rrule *rules, size_t n, const char *k) {
    size_t i;
    for (i = 0; i < n; i++)
        if (strcmp(rules[i].field, k) == 0) return 1;
    return 0;
}

static int ref_fold(const rrule *rules, size_t n, const rrule *star, json_t *st, const char *type,
                    const json_t *data) {
    const char *k;
    json_t *v;
    size_t i;
    if (star && ref_when(star, type)) {
        json_object_foreach((json_t *)data, k, v) {
            if (!ref_targeted(rules, n, k) && ref_apply(star, st, k, v) != 0) return -1;
        }
    }
    for (i = 0; i < n; i++) {
        const rrule *r = &rules[i];
        if (!ref_when(r, type)) continue;
        if (r->kind == ES_RULE_TYPES) {
            json_array_append_new(ref_array(st, r->field), json_string(type));
            continue;
        }
        v = json_object_get(data, r->from ? r->from : r->field);
        if (v && ref_apply(r, st, r->field, v) != 0) return -1;
    }
    return 0;
}

/* The rule set as text, for reports. */
static const char *describe(const rrule *rules, size_t n, const rrule *star) {
    static char buf[2048];
    size_t i, off = 0;
    buf[0] = '\0';
    for (i = 0; i <= n && off < sizeof buf - 200; i++) {
        const rrule *r = i < n ? &rules[i] : star;
        if (!r) break;
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s=%s%s%s when[%zu]=%s,%s scale=%s; ", r->field,
                                es_rule_kind_name(r->kind), r->from ? " from " : "", r->from ? r->from : "",
                                r->nwhen, r->nwhen ? r->when[0] : "-", r->nwhen > 1 ? r->when[1] : "-",
                                r->scale ? (json_is_integer(r->scale) ? "int" : "real") : "-");
    }
    return buf;
}

/* ---- the C reducer's custom callback: the same count ---- */

static int custom(void *ud, int id, const char *field, json_t **acc, const json_t *value, const es_event *ev,
                  es_err *err) {
    json_int_t c = *acc && json_is_integer(*acc) ? json_integer_value(*acc) : 0;
    json_t *nv = json_integer(c == INT64_MAX ? 0 : c + 1);
    (void)ud; (void)field; (void)value; (void)ev;
    FZ_CHECK(id == CUSTOM_ID, "custom id %d", id);
    if (!nv) return es_err_set(err, ES_ENOMEM, "oom");
    json_decref(*acc);
    *acc = nv;
    return ES_OK;
}

/* ---- a cursor over JSON texts, for the text path ---- */

typedef struct text_cursor {
    es_cursor base;
    es_event evs[MAX_EVENTS];
    size_t n, at;
} text_cursor;

static int tc_next(es_cursor *c, const es_event **ev, es_err *err) {
    text_cursor *t = (text_cursor *)c;
    (void)err;
    if (t->at == t->n) return 0;
    *ev = &t->evs[t->at++];
    return 1;
}

static void tc_close(es_cursor *c) { (void)c; }

/* ---- input decoding ---- */

static json_t *gen_value(fz *f, int depth) {
    switch (fz_pick(f, depth > 2 ? 10 : 13)) {
    case 0: return json_integer((json_int_t)(int8_t)fz_byte(f));
    case 1: return json_integer((json_int_t)(int16_t)(fz_byte(f) << 8 | fz_byte(f)));
    case 2: {
        static const int64_t big[] = { INT64_MAX, INT64_MIN, INT64_MAX - 1, (int64_t)1 << 62, -((int64_t)1 << 62),
                                       (int64_t)1 << 53, ((int64_t)1 << 53) + 1, 3037000500 };
        return json_integer(big[fz_pick(f, 8)]);
    }
    case 3: return json_real(0.25 * (int8_t)fz_byte(f));
    case 4: {
        static const double reals[] = { 0.1, -0.0, 1e308, -1e308, 9007199254740992.0, 9223372036854775808.0,
                                        -9223372036854775808.0, 5e-324, 1.5, 3.0 };
        return json_real(reals[fz_pick(f, 10)]);
    }
    case 5: {
        static const char *const s[] = { "", "x", "y", "xy", "a", "\xc3\xa9" };
        return json_string(s[fz_pick(f, 6)]);
    }
    case 6: return json_null();
    case 7: return fz_byte(f) & 1 ? json_true() : json_false();
    case 8: return json_integer(fz_pick(f, 4));
    case 9: return json_string(fz_byte(f) & 1 ? "x" : "y");
    case 10: case 11: {
        json_t *a = json_array();
        unsigned n = fz_pick(f, 4), i;
        for (i = 0; i < n; i++) json_array_append_new(a, gen_value(f, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        unsigned n = fz_pick(f, 4), i;
        for (i = 0; i < n; i++) json_object_set_new(o, targets[fz_pick(f, 3)], gen_value(f, depth + 1));
        return o;
    }
    }
}

static json_t *gen_scale(fz *f) {
    static const int64_t ints[] = { -1, 2, 3, -2, 0, INT64_MAX, INT64_MIN, 1000000007 };
    static const double reals[] = { 0.5, -1.5, 1e300, -0.0, 2.0 };
    if (fz_byte(f) & 1) return json_integer(ints[fz_pick(f, 8)]);
    return json_real(reals[fz_pick(f, 5)]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz f = { data, data + size };
    rrule rules[MAX_RULES], star;
    es_rule_spec specs[MAX_RULES + 1];
    json_t *datas[MAX_EVENTS];
    const char *evtypes[MAX_EVENTS];
    char *texts[MAX_EVENTS];
    int solo[6] = { 0 }, used[6] = { 0 };
    size_t nr = 0, ns = 0, ne, i, want = 1 + fz_pick(&f, MAX_RULES);
    int has_star = fz_byte(&f) & 1, failed_at = -1, rc;
    es_reducer *r = NULL;
    es_err err;
    json_t *st_c, *st_ref;

    memset(rules, 0, sizeof rules);
    memset(&star, 0, sizeof star);
    /* rules: drop and types stand alone on their target */
    for (i = 0; i < want; i++) {
        rrule *ru = &rules[nr];
        unsigned t = fz_pick(&f, 5), flags = fz_byte(&f);
        es_rule_kind k = (es_rule_kind)fz_pick(&f, 12);
        if (k == ES_RULE_CUSTOM && !(flags & 64)) k = ES_RULE_LAST;
        if (solo[t] || ((k == ES_RULE_DROP || k == ES_RULE_TYPES) && used[t])) continue;
        ru->field = targets[t];
        ru->kind = k;
        if (k != ES_RULE_DROP && k != ES_RULE_TYPES && (flags & 1)) ru->from = targets[fz_pick(&f, 6)];
        if (k != ES_RULE_DROP && (flags & 2)) {
            ru->nwhen = 1 + (flags >> 7);
            ru->when[0] = types[fz_pick(&f, 4)];
            ru->when[1] = types[fz_pick(&f, 4)];
        }
        if ((k == ES_RULE_SUM || k == ES_RULE_MIN || k == ES_RULE_MAX) && (flags & 4)) ru->scale = gen_scale(&f);
        used[t] = 1;
        if (k == ES_RULE_DROP || k == ES_RULE_TYPES) solo[t] = 1;
        nr++;
    }
    /* without a "*" spec, unnamed fields are copied: "*" = last */
    star.field = "*";
    star.kind = ES_RULE_LAST;
    if (has_star) {
        unsigned flags = fz_byte(&f);
        star.field = "*";
        star.kind = (es_rule_kind)fz_pick(&f, 11);   /* any kind but types */
        if (star.kind == ES_RULE_CUSTOM && !(flags & 64)) star.kind = ES_RULE_DROP;
        if (star.kind != ES_RULE_DROP && (flags & 2)) {
            star.nwhen = 1;
            star.when[0] = types[fz_pick(&f, 4)];
        }
        if ((star.kind == ES_RULE_SUM || star.kind == ES_RULE_MIN || star.kind == ES_RULE_MAX) && (flags & 4))
            star.scale = gen_scale(&f);
    }
    memset(specs, 0, sizeof specs);
    for (i = 0; i < nr; i++) {
        specs[ns].field = rules[i].field;
        specs[ns].kind = rules[i].kind;
        specs[ns].from = rules[i].from;
        specs[ns].when = rules[i].nwhen ? rules[i].when : NULL;
        specs[ns].nwhen = rules[i].nwhen;
        specs[ns].scale = rules[i].scale;
        specs[ns].custom_id = CUSTOM_ID;
        ns++;
    }
    if (has_star) {
        specs[ns].field = "*";
        specs[ns].kind = star.kind;
        specs[ns].when = star.nwhen ? star.when : NULL;
        specs[ns].nwhen = star.nwhen;
        specs[ns].scale = star.scale;
        specs[ns].custom_id = CUSTOM_ID;
        ns++;
    }
    es_err_clear(&err);
    rc = es_reducer_new(specs, ns, 1, &r, &err);
    FZ_CHECK(rc == ES_OK, "a valid rule set was refused: %s", err.msg);

    ne = fz_pick(&f, MAX_EVENTS + 1);
    for (i = 0; i < ne; i++) {
        unsigned nm = fz_pick(&f, 5), j;
        evtypes[i] = types[fz_pick(&f, 4)];
        datas[i] = json_object();
        for (j = 0; j < nm; j++) json_object_set_new(datas[i], targets[fz_pick(&f, 6)], gen_value(&f, 0));
        texts[i] = es_json_encode(datas[i], NULL, &err);
        FZ_CHECK(texts[i] != NULL, "encode: %s", err.msg);
    }

    st_c = json_object();
    st_ref = json_object();
    for (i = 0; i < ne; i++) {
        int rc_c = es_reducer_fold_json(r, st_c, evtypes[i], datas[i], custom, NULL, &err);
        int rc_ref = ref_fold(rules, nr, &star, st_ref, evtypes[i], datas[i]);
        if (rc_c != ES_OK || rc_ref != 0) {
            char *s = json_dumps(st_ref, JSON_COMPACT | JSON_ENCODE_ANY);
            FZ_CHECK(rc_c == ES_EINVALID && rc_ref != 0,
                     "event %zu (%s %s): C says %d (%s), the reference %d; ref state %s; rules: %s", i + 1,
                     evtypes[i], texts[i], rc_c, err.msg, rc_ref, s ? s : "", describe(rules, nr, &star));
            free(s);
            failed_at = (int)i;
            break;
        }
        if (!json_equal(st_c, st_ref)) {
            char *a = json_dumps(st_c, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
            char *b = json_dumps(st_ref, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
            FZ_CHECK(0, "after event %zu (%s %s) the C state %s differs from the reference %s; rules: %s", i + 1,
                     evtypes[i], texts[i], a ? a : "", b ? b : "", describe(rules, nr, &star));
        }
    }

    /* the text path over the same events */
    {
        text_cursor tc;
        json_t *st_t = json_object();
        int64_t count = -1;
        memset(&tc, 0, sizeof tc);
        tc.base.next = tc_next;
        tc.base.close = tc_close;
        tc.n = ne;
        for (i = 0; i < ne; i++) {
            tc.evs[i].id = "00000000-0000-7000-8000-000000000000";
            tc.evs[i].stream = "s-1";
            tc.evs[i].type = evtypes[i];
            tc.evs[i].revision = (int64_t)i + 1;
            tc.evs[i].position = (int64_t)i + 1;
            tc.evs[i].data = texts[i];
            tc.evs[i].data_len = strlen(texts[i]);
            tc.evs[i].metadata = "{}";
            tc.evs[i].metadata_len = 2;
        }
        rc = es_reducer_fold_cursor(r, st_t, &tc.base, NULL, custom, NULL, &count, NULL, NULL, &err);
        if (failed_at >= 0) {
            FZ_CHECK(rc == ES_EINVALID, "the text path folded what the decoded path refused (event %d)", failed_at + 1);
        } else {
            FZ_CHECK(rc == ES_OK, "the text path failed: %s", err.msg);
            FZ_CHECK(count == (int64_t)ne, "the text path folded %lld of %zu events", (long long)count, ne);
            if (!json_equal(st_t, st_c)) {
                char *a = json_dumps(st_t, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
                char *b = json_dumps(st_c, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
                FZ_CHECK(0, "the text path state %s differs from the decoded path's %s", a ? a : "", b ? b : "");
            }
        }
        json_decref(st_t);
    }

    json_decref(st_c);
    json_decref(st_ref);
    for (i = 0; i < ne; i++) {
        json_decref(datas[i]);
        es_free(texts[i]);
    }
    for (i = 0; i < nr; i++) json_decref(rules[i].scale);
    json_decref(star.scale);
    es_reducer_free(r);
    return 0;
}
