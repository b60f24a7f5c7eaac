/* fuzz_reducer_new.c: libFuzzer target: the rule compiler es_reducer_new on fuzzed rule specs */
/* SPDX-License-Identifier: MIT */
/*
 * Up to 12 specs are decoded from the input: field, from and when names
 * from a pool of tricky names (empty, "*", invalid UTF-8, long) or raw
 * input bytes; any kind number, including out-of-range ones; a scale that
 * may be a string; a 'when' list that may hold NULL or "". Then:
 *  - es_reducer_new either fails with ES_EINVALID and a message, or gives a
 *    reducer whose fingerprint is 16 lowercase hex digits and does not
 *    change when the same specs are compiled again;
 *  - a compiled reducer folds a few events (es_reducer_fold_json, with a
 *    custom callback) without crashing; a fold error is ES_EINVALID with a
 *    message, and the state stays a valid object.
 */
#include <ctype.h>

#include "fuzz_common.h"
#include "eventstore.h"
#include "reduce.h"

#define MAX_SPECS 12

static const char *const pool[] = {
    "*", "a", "b", "amount", "balance", "", "\xff", "x\xc3", "\xed\xa0\x80", "A", "B", "types",
    "a.b", "%s%n", "a-very-long-field-name-that-goes-on-and-on-and-on-and-on-for-a-while",
};
#define POOL_N (sizeof pool / sizeof *pool)

/* A name: from the pool, or up to 8 raw input bytes (NUL-terminated in buf). */
static const char *take_name(fz *f, char *buf) {
    unsigned k = fz_byte(f);
    if (k < 200) return pool[k % POOL_N];
    {
        unsigned n = fz_pick(f, 9), i;
        for (i = 0; i < n; i++) {
            buf[i] = (char)fz_byte(f);
            if (!buf[i]) buf[i] = 'z';
        }
        buf[n] = '\0';
    }
    return buf;
}

static int count_calls;

static int custom(void *ud, int id, const char *field, json_t **acc, const json_t *value, const es_event *ev,
                  es_err *err) {
    json_t *nv;
    (void)ud;
    (void)field;
    (void)ev;
    count_calls++;
    if (id == 7 && json_is_string(value)) return es_err_set(err, ES_ECALLBACK, "custom rule refused");
    nv = json_array();
    if (!nv) return es_err_set(err, ES_ENOMEM, "oom");
    if (*acc) json_array_append(nv, *acc);
    json_array_append(nv, (json_t *)value);
    json_decref(*acc);
    *acc = id == 3 ? NULL : nv;
    if (id == 3) json_decref(nv);
    return ES_OK;
}

static json_t *event_data(fz *f) {
    json_t *d = json_object();
    unsigned n = fz_pick(f, 5), i;
    for (i = 0; i < n; i++) {
        const char *k = pool[fz_pick(f, 5)];
        json_t *v;
        switch (fz_pick(f, 8)) {
        case 0: v = json_integer((json_int_t)(int8_t)fz_byte(f)); break;
        case 1: v = json_real(0.5 * (int8_t)fz_byte(f)); break;
        case 2: v = json_string(pool[fz_pick(f, 5)]); break;
        case 3: v = json_null(); break;
        case 4: v = json_pack("[ii]", 1, 2); break;
        case 5: v = json_pack("{s:i}", "k", 1); break;
        case 6: v = json_integer(INT64_MAX); break;
        default: v = json_true(); break;
        }
        if (*k) json_object_set_new(d, k, v);
        else json_decref(v);
    }
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz f = { data, data + size };
    es_rule_spec specs[MAX_SPECS];
    char names[MAX_SPECS][4][16];
    const char *whens[MAX_SPECS][3];
    json_t *scales[MAX_SPECS];
    es_reducer *r = NULL, *r2 = NULL;
    es_err err;
    size_t n = fz_pick(&f, MAX_SPECS + 1), i;
    int rc;

    memset(specs, 0, sizeof specs);
    memset(scales, 0, sizeof scales);
    for (i = 0; i < n; i++) {
        es_rule_spec *sp = &specs[i];
        unsigned flags = fz_byte(&f), j;
        sp->field = take_name(&f, names[i][0]);
        sp->kind = (es_rule_kind)((int)fz_pick(&f, 15) - 1);   /* -1 .. 13: some out of range */
        if (flags & 1) sp->from = take_name(&f, names[i][1]);
        if (flags & 2) {
            sp->nwhen = 1 + fz_pick(&f, 3);
            for (j = 0; j < sp->nwhen; j++)
                whens[i][j] = (flags & 16) && j == 1 ? NULL : take_name(&f, j == 0 ? names[i][2] : names[i][3]);
            sp->when = (flags & 32) ? NULL : whens[i];
        }
        if (flags & 4) {
            switch (fz_pick(&f, 4)) {
            case 0: scales[i] = json_integer((json_int_t)(int8_t)fz_byte(&f)); break;
            case 1: scales[i] = json_real(-1.5); break;
            case 2: scales[i] = json_string("2"); break;
            default: scales[i] = json_integer(INT64_MIN); break;
            }
            sp->scale = scales[i];
        }
        sp->custom_id = (int)fz_pick(&f, 8);
    }

    es_err_clear(&err);
    rc = es_reducer_new(n ? specs : NULL, n, (int64_t)fz_u64(&f), &r, &err);
    if (rc != ES_OK) {
        FZ_CHECK(rc == ES_EINVALID, "es_reducer_new returned %d (%s)", rc, err.msg);
        FZ_CHECK(r == NULL, "a failed es_reducer_new set *out");
        FZ_CHECK(err.msg[0], "es_reducer_new failed without a message");
    } else {
        const char *fp = es_reducer_fingerprint(r);
        char sfp[17];
        json_t *state, *initial;
        FZ_CHECK(fp && strlen(fp) == 16, "fingerprint '%s'", fp ? fp : "(null)");
        for (i = 0; i < 16; i++) FZ_CHECK(isxdigit((unsigned char)fp[i]) && !isupper((unsigned char)fp[i]), "fp %s", fp);
        FZ_CHECK(es_reducer_new(n ? specs : NULL, n, es_reducer_user_version(r), &r2, &err) == ES_OK,
                 "the same specs failed the second time: %s", err.msg);
        FZ_CHECK(strcmp(fp, es_reducer_fingerprint(r2)) == 0, "fingerprint changed between two compiles");
        initial = json_pack("{s:i}", "a", 1);
        FZ_CHECK(es_reducer_state_fingerprint(r, initial, sfp, &err) == ES_OK, "state fingerprint: %s", err.msg);
        FZ_CHECK(strlen(sfp) == 16, "state fingerprint length");
        state = json_deep_copy(initial);
        for (i = 0; i < 6 && !fz_done(&f); i++) {
            json_t *d = event_data(&f);
            const char *type = pool[9 + fz_pick(&f, 3)];
            rc = es_reducer_fold_json(r, state, type, d, custom, NULL, &err);
            json_decref(d);
            FZ_CHECK(json_is_object(state), "the state is no longer an object");
            if (rc != ES_OK) {
                FZ_CHECK(rc == ES_EINVALID || rc == ES_ECALLBACK, "fold returned %d (%s)", rc, err.msg);
                FZ_CHECK(err.msg[0], "fold failed without a message");
                break;
            }
        }
        {
            char *text = es_json_encode(state, NULL, &err);
            FZ_CHECK(text != NULL, "the folded state does not encode: %s", err.msg);
            es_free(text);
        }
        json_decref(state);
        json_decref(initial);
    }
    es_reducer_free(r);
    es_reducer_free(r2);
    for (i = 0; i < n; i++) json_decref(scales[i]);
    return 0;
}
