/* reduce_check.c: checks of the C reducer (every rule kind, seed examples, a differential fold) */
/* SPDX-License-Identifier: MIT */
/* cc -std=c99 -D_DEFAULT_SOURCE -O2 -g -Icsrc -o reduce_check tests/c/reduce_check.c csrc/reduce.c
 *    csrc/json.c csrc/json_text.c csrc/error.c csrc/uuid.c -ljansson -luuid; with -DES_CHECK_STATE and csrc/state.c
 *    csrc/store.c backends/{registry,memory,sqlite}.c -lsqlite3 it also checks the text path (state.c's fold
 *    of stored JSON texts; state_check.c checks es_store_state itself). `reduce_check bench [n]` prints fold
 *    rates. */
#include <time.h>

#include "reduce_helpers.h"

/* Folds events given as type/JSON pairs; returns the state. */
static json_t *fold(const es_reducer *r, const char *initial, const char *const *evs, size_t n,
                    es_custom_fn fn, void *ud, int *rc_out, es_err *err) {
    json_t *st = J(initial ? initial : "{}");
    size_t i;
    int rc = ES_OK;
    for (i = 0; i < n && rc == ES_OK; i++) {
        json_t *d = J(evs[2 * i + 1]);
        rc = es_reducer_fold_json(r, st, evs[2 * i], d, fn, ud, err);
        json_decref(d);
    }
    if (rc_out) *rc_out = rc;
    return st;
}

static void check_rules(const es_rule_spec *specs, size_t n, const char *initial,
                        const char *const *evs, size_t nev, const char *want, const char *what) {
    es_reducer *r = mk(specs, n, 0);
    es_err err;
    int rc;
    json_t *st = fold(r, initial, evs, nev, NULL, NULL, &rc, &err);
    CHECK(rc == ES_OK, "%s: fold failed: %s", what, err.msg);
    expect_free(st, want, what);
    es_reducer_free(r);
}

static void test_kinds(void) {
    static const char *const evs[] = {
        "A", "{\"a\":1,\"s\":\"b\",\"t\":\"x\",\"o\":{\"p\":{\"q\":1,\"r\":2}}}",
        "B", "{\"a\":2,\"s\":\"a\",\"t\":[\"y\",\"x\"],\"o\":{\"p\":{\"r\":3},\"u\":true}}",
        "A", "{\"s\":\"c\",\"t\":\"x\",\"z\":null}",
        "C", "{\"a\":-4}",
    };
    es_rule_spec last[] = { { R("a", LAST) } };
    es_rule_spec first[] = { { R("a", FIRST) }, { R("s", FIRST) } };
    es_rule_spec sum[] = { { R("a", SUM) }, { R("*", DROP) } };
    es_rule_spec mins[] = { { R("a", MIN) }, { R("s", MIN) }, { R("*", DROP) } };
    es_rule_spec maxs[] = { { R("a", MAX) }, { R("s", MAX) }, { R("*", DROP) } };
    es_rule_spec count[] = { { R("a", COUNT) }, { R("s", COUNT) }, { R("*", DROP) } };
    es_rule_spec app[] = { { R("t", APPEND) }, { R("*", DROP) } };
    es_rule_spec uni[] = { { R("t", UNION) }, { R("*", DROP) } };
    es_rule_spec mer[] = { { R("o", MERGE) }, { R("*", DROP) } };
    es_rule_spec drop[] = { { R("o", DROP) }, { R("t", DROP) } };
    es_rule_spec types[] = { { R("seen", TYPES) }, { R("*", DROP) } };
    const char *whenA[] = { "A" };
    es_rule_spec types_a[] = { { R("seen", TYPES), .when = whenA, .nwhen = 1 }, { R("*", DROP) } };

    check_rules(NULL, 0, NULL, evs, 4,
                "{\"a\":-4,\"s\":\"c\",\"t\":\"x\",\"z\":null,\"o\":{\"p\":{\"r\":3},\"u\":true}}",
                "default last");
    check_rules(last, N(last), NULL, evs, 2,
                "{\"a\":2,\"s\":\"a\",\"t\":[\"y\",\"x\"],\"o\":{\"p\":{\"r\":3},\"u\":true}}", "last");
    check_rules(first, N(first), NULL, evs, 4,
                "{\"a\":1,\"s\":\"b\",\"t\":\"x\",\"z\":null,\"o\":{\"p\":{\"r\":3},\"u\":true}}", "first");
    check_rules(sum, N(sum), NULL, evs, 4, "{\"a\":-1}", "sum");
    check_rules(mins, N(mins), NULL, evs, 4, "{\"a\":-4,\"s\":\"a\"}", "min");
    check_rules(maxs, N(maxs), NULL, evs, 4, "{\"a\":2,\"s\":\"c\"}", "max");
    check_rules(count, N(count), NULL, evs, 4, "{\"a\":3,\"s\":3}", "count");
    check_rules(app, N(app), NULL, evs, 4, "{\"t\":[\"x\",\"y\",\"x\",\"x\"]}", "append");
    check_rules(app, N(app), "{\"t\":{}}", evs, 2, "{\"t\":[\"x\",\"y\",\"x\"]}", "append onto {}");
    check_rules(app, N(app), "{\"t\":\"w\"}", evs, 1, "{\"t\":[\"w\",\"x\"]}", "append onto a scalar");
    check_rules(uni, N(uni), NULL, evs, 4, "{\"t\":[\"x\",\"y\"]}", "union");
    check_rules(mer, N(mer), NULL, evs, 4, "{\"o\":{\"p\":{\"q\":1,\"r\":3},\"u\":true}}", "merge");
    check_rules(drop, N(drop), NULL, evs, 4, "{\"a\":-4,\"s\":\"c\",\"z\":null}", "drop");
    check_rules(types, N(types), NULL, evs, 4, "{\"seen\":[\"A\",\"B\",\"A\",\"C\"]}", "types");
    check_rules(types_a, N(types_a), NULL, evs, 4, "{\"seen\":[\"A\",\"A\"]}", "types when A");
    {
        static const char *const ev2[] = { "X", "{\"v\":{\"k\":1}}", "X", "{\"v\":[{\"k\":1},{\"k\":2}]}",
                                           "X", "{\"v\":[2,2.0,2]}" };
        es_rule_spec u[] = { { R("v", UNION) } };
        check_rules(u, N(u), NULL, ev2, 3, "{\"v\":[{\"k\":1},{\"k\":2},2,2.0]}", "union by JSON equality");
    }
    {
        static const char *const ev3[] = { "X", "{\"m\":{\"a\":1}}", "X", "{\"m\":5}", "X", "{\"m\":{\"b\":2}}",
                                           "X", "{\"m\":{\"b\":{\"c\":3}}}" };
        es_rule_spec m[] = { { R("m", MERGE) } };
        check_rules(m, N(m), NULL, ev3, 2, "{\"m\":5}", "merge replaces a non-object");
        check_rules(m, N(m), NULL, ev3, 4, "{\"m\":{\"b\":{\"c\":3}}}", "merge after a replace");
    }
}

static void test_numbers(void) {
    es_rule_spec sum[] = { { R("n", SUM) } };
    es_reducer *r = mk(sum, 1, 0);
    es_err err;
    int rc;
    static const char *const ints[] = { "E", "{\"n\":1}", "E", "{\"n\":2}", "E", "{\"n\":3}" };
    static const char *const mixed[] = { "E", "{\"n\":1}", "E", "{\"n\":0.5}", "E", "{\"n\":3}" };
    static const char *const big[] = { "E", "{\"n\":9007199254740992}", "E", "{\"n\":1}" };
    static const char *const over[] = { "E", "{\"n\":9223372036854775807}", "E", "{\"n\":1}" };
    static const char *const bad[] = { "E", "{\"n\":1}", "Oops", "{\"n\":\"7\"}" };
    static const char *const strnum[] = { "E", "{\"m\":1}", "Q", "{\"m\":\"a\"}" };
    es_rule_spec maxm[] = { { R("m", MAX) } };
    json_t *st = fold(r, NULL, ints, 3, NULL, NULL, &rc, &err);
    CHECK(json_is_integer(json_object_get(st, "n")) && json_integer_value(json_object_get(st, "n")) == 6,
          "integer sum stays an integer: %s", show(st));
    json_decref(st);
    /* json_equal tells 6 from 6.0, so these also check integer-ness */
    check_rules(sum, 1, NULL, mixed, 3, "{\"n\":4.5}", "int + real is real");
    check_rules(sum, 1, NULL, big, 2, "{\"n\":9007199254740993}", "2^53 + 1 is exact");
    check_rules(sum, 1, NULL, over, 2, "{\"n\":9223372036854775808.0}", "int64 overflow gives a real");
    st = fold(r, NULL, bad, 2, NULL, NULL, &rc, &err);
    CHECK(rc == ES_EINVALID && strstr(err.msg, "'n'") && strstr(err.msg, "Oops"),
          "sum of a string names field and event: %d %s", rc, err.msg);
    expect_free(st, "{\"n\":1}", "state intact after a failed sum");
    st = fold(r, "{\"n\":\"x\"}", ints, 1, NULL, NULL, &rc, &err);
    CHECK(rc == ES_EINVALID && strstr(err.msg, "'n'"), "sum into a string fails: %s", err.msg);
    json_decref(st), es_reducer_free(r);
    {
        json_t *two = json_integer(2), *half = json_real(0.5), *neg = json_integer(-1);
        es_rule_spec s2[] = { { R("a", SUM), .scale = two }, { R("b", SUM), .from = "a", .scale = half },
                              { R("c", MIN), .from = "a", .scale = neg }, { R("d", MAX), .from = "a" } };
        static const char *const ev[] = { "E", "{\"a\":3}", "E", "{\"a\":-1.5}", "E", "{\"a\":1}" };
        static const char *const cmp[] = { "E", "{\"a\":1}", "E", "{\"a\":1.0}", "E", "{\"a\":0.9999}" };
        es_rule_spec mm[] = { { R("lo", MIN), .from = "a" }, { R("hi", MAX), .from = "a" } };
        check_rules(s2, N(s2), NULL, ev, 1, "{\"a\":6,\"b\":1.5,\"c\":-3,\"d\":3}", "scale keeps integers");
        check_rules(s2, N(s2), NULL, ev, 3, "{\"a\":5.0,\"b\":1.25,\"c\":-3,\"d\":3}", "scale with reals");
        check_rules(mm, N(mm), NULL, cmp, 3, "{\"lo\":0.9999,\"hi\":1,\"a\":0.9999}", "min/max ties keep the first");
        json_decref(two), json_decref(half), json_decref(neg);
    }
    r = mk(maxm, 1, 0);
    st = fold(r, NULL, strnum, 2, NULL, NULL, &rc, &err);
    CHECK(rc == ES_EINVALID && strstr(err.msg, "'m'") && strstr(err.msg, "'Q'"),
          "max of a string and a number fails naming the field: %s", err.msg);
    json_decref(st), es_reducer_free(r);
}

/* The custom rule of the tests: numbers add twice the value, null removes
 * the field, anything else replaces it; id 99 fails. */
static int custom_calls;

static int test_custom(void *ud, int id, const char *field, json_t **acc, const json_t *value,
                       const es_event *ev, es_err *err) {
    json_t *nv;
    custom_calls++;
    if (id == 99) return es_err_set(err, ES_ECALLBACK, "custom '%s' failed on %s", field, ev->type);
    if (json_is_null(value)) {
        nv = NULL;
    } else if (json_is_number(value)) {
        double a = *acc && json_is_number(*acc) ? json_number_value(*acc) : 0;
        nv = json_is_integer(value) && (!*acc || json_is_integer(*acc))
                 ? json_integer((json_int_t)a + 2 * json_integer_value(value))
                 : json_real(a + 2 * json_number_value(value));
    } else {
        nv = json_deep_copy(value);
    }
    json_decref(*acc);
    *acc = nv;
    return ES_OK;
}

static void test_custom_rules(void) {
    es_rule_spec c[] = { { R("score", CUSTOM), .custom_id = 1 }, { R("bad", CUSTOM), .custom_id = 99 } };
    es_rule_spec star[] = { { R("*", CUSTOM), .custom_id = 1 } };
    static const char *const ev[] = { "E", "{\"score\":1}", "E", "{\"x\":1}", "E", "{\"score\":3}",
                                      "E", "{\"score\":null}", "E", "{\"bad\":1}" };
    es_reducer *r = mk(c, N(c), 0);
    es_err err;
    int rc;
    json_t *st;
    CHECK(es_reducer_has_custom(r), "has_custom");
    custom_calls = 0;
    expect_free(fold(r, NULL, ev, 3, test_custom, NULL, &rc, &err), "{\"score\":8,\"x\":1}", "custom rule");
    CHECK(custom_calls == 2, "custom is not called when the field is absent: %d calls", custom_calls);
    expect_free(fold(r, NULL, ev, 4, test_custom, NULL, &rc, &err), "{\"x\":1}", "custom returning NULL removes it");
    st = fold(r, NULL, ev, 5, test_custom, NULL, &rc, &err);
    CHECK(rc == ES_ECALLBACK && strstr(err.msg, "custom 'bad' failed"), "callback error passes through: %d %s",
          rc, err.msg);
    json_decref(st);
    st = fold(r, NULL, ev, 1, NULL, NULL, &rc, &err);
    CHECK(rc == ES_EINVALID && strstr(err.msg, "'score'"), "custom rule without a callback: %s", err.msg);
    json_decref(st), es_reducer_free(r);
    r = mk(star, 1, 0);
    expect_free(fold(r, NULL, ev, 4, test_custom, NULL, &rc, &err), "{\"x\":2}", "custom '*' rule");
    es_reducer_free(r);
}

static void test_osiris_and_bank(void) {
    es_rule_spec osiris[] = { { R("*", LAST) }, { R("overtime", SUM) } };
    static const char *const bob[] = {
        "EmployeeHired", "{\"name\":\"bob\",\"company\":\"acme\",\"salary\":3000}",
        "OvertimeWorked", "{\"overtime\":1}",
        "AddressChanged", "{\"city\":\"lyon\"}",
        "OvertimeWorked", "{\"overtime\":3}",
    };
    static const char *const all[] = {
        "EmployeeHired", "{\"name\":\"alice\",\"company\":\"acme\",\"salary\":4000}",
        "EmployeeHired", "{\"name\":\"bob\",\"company\":\"acme\",\"salary\":3000}",
        "EmployeeHired", "{\"name\":\"carl\",\"company\":\"globex\",\"salary\":5000}",
        "EmployeeMoved", "{\"name\":\"bob\",\"company\":\"globex\",\"salary\":3500}",
    };
    es_rule_spec company[] = { { R("salary", SUM) }, { R("employees", APPEND), .from = "name" } };
    const char *dep[] = { "Deposited" }, *wd[] = { "Withdrawn" };
    json_t *minus = json_integer(-1), *where = J("{\"company\":\"acme\"}"), *st;
    es_rule_spec bank[] = { { R("balance", SUM), .from = "amount", .when = dep, .nwhen = 1 },
                            { R("balance", SUM), .from = "amount", .when = wd, .nwhen = 1,
                              .scale = minus }, { R("*", DROP) } };
    static const char *const acct[] = { "Opened", "{\"owner\":\"ann\"}", "Deposited", "{\"amount\":10}",
                                        "Withdrawn", "{\"amount\":3}", "Fee", "{\"amount\":100}",
                                        "Deposited", "{\"amount\":5}" };
    es_reducer *r;
    es_err err;
    size_t i;

    check_rules(osiris, N(osiris), NULL, bob, 4,
                "{\"name\":\"bob\",\"company\":\"acme\",\"salary\":3000,\"city\":\"lyon\",\"overtime\":4}",
                "osiris bob");
    r = mk(company, N(company), 0);
    st = json_object();
    for (i = 0; i < N(all) / 2; i++) {
        json_t *d = J(all[2 * i + 1]);
        if (es_reducer_where_ok(where, d))
            CHECK(es_reducer_fold_json(r, st, all[2 * i], d, NULL, NULL, &err) == ES_OK, "fold: %s", err.msg);
        json_decref(d);
    }
    expect_free(st, "{\"salary\":7000,\"employees\":[\"alice\",\"bob\"],\"company\":\"acme\",\"name\":\"bob\"}",
           "osiris acme salaries");
    es_reducer_free(r);
    check_rules(bank, N(bank), NULL, acct, 5, "{\"balance\":12}", "bank balance with two rule tables");
    json_decref(minus), json_decref(where);
}

static void expect_invalid(const es_rule_spec *specs, size_t n, const char *needle, const char *what) {
    es_reducer *r = NULL;
    es_err err;
    int rc;
    es_err_clear(&err);
    rc = es_reducer_new(specs, n, 0, &r, &err);
    CHECK(rc == ES_EINVALID && !r && strstr(err.msg, needle), "%s: rc %d, message '%s' lacks '%s'", what, rc,
          err.msg, needle);
    es_reducer_free(r);
}

static void test_invalid(void) {
    json_t *one = json_integer(1), *str = json_string("x");
    const char *empty_when[] = { "" };
    struct { es_rule_spec s[2]; size_t n; const char *needle; } bad[] = {
        { { { R("", LAST) } }, 1, "rule 1" },                               /* empty field */
        { { { R("*", LAST) }, { R("*", SUM) } }, 2, "'*'" },               /* a second "*" */
        { { { R("tags", APPEND), .scale = one } }, 1, "'tags'" },          /* scale on append */
        { { { R("total", SUM), .scale = str } }, 1, "'total'" },           /* a string scale */
        { { { R("*", LAST), .from = "x" } }, 1, "'*'" },                   /* "*" with from */
        { { { .field = "odd", .kind = (es_rule_kind)42 } }, 1, "'odd'" },  /* unknown kind */
        { { { R("gone", DROP) }, { R("gone", SUM) } }, 2, "'gone'" },      /* drop and sum */
        { { { R("*", TYPES) } }, 1, "'*'" },                               /* types on "*" */
        { { { R("w", SUM), .when = empty_when, .nwhen = 1 } }, 1, "'w'" }, /* empty when */
        { { { R("ty", TYPES), .from = "x" } }, 1, "'ty'" },                /* types with from */
        { { { R("f", SUM), .from = "" } }, 1, "'f'" },                     /* empty from */
        { { { R("\xff", SUM) } }, 1, "UTF-8" },                            /* not UTF-8 */
    };
    es_rule_kind k;
    size_t i;
    for (i = 0; i < N(bad); i++) expect_invalid(bad[i].s, bad[i].n, bad[i].needle, "invalid rules");
    CHECK(es_rule_kind_parse("union", &k) == ES_OK && k == ES_RULE_UNION, "parse union");
    CHECK(es_rule_kind_parse("custom", &k) == ES_EINVALID, "custom is not a user-facing name");
    CHECK(strcmp(es_rule_kind_name(ES_RULE_TYPES), "types") == 0, "kind name");
    json_decref(one), json_decref(str);
}

static void test_fingerprints(void) {
    const char *w1[] = { "A", "B" }, *w2[] = { "B", "A", "B" };
    es_rule_spec a[] = { { R("x", SUM), .when = w1, .nwhen = 2 }, { R("y", LAST) },
                         { R("z", CUSTOM), .custom_id = 1 } };
    es_rule_spec b[] = { { R("z", CUSTOM), .custom_id = 7 }, { R("y", LAST), .from = "y" },
                         { R("x", SUM), .when = w2, .nwhen = 3 }, { R("*", LAST) } };
    es_rule_spec c[] = { { R("x", SUM), .when = w1, .nwhen = 2 }, { R("y", FIRST) },
                         { R("z", CUSTOM), .custom_id = 1 } };
    es_reducer *ra = mk(a, N(a), 1), *rb = mk(b, N(b), 1), *rc = mk(c, N(c), 1), *rv = mk(a, N(a), 2);
    const char *fa = es_reducer_fingerprint(ra);
    char f1[17], f2[17], f3[17];
    json_t *init = J("{\"balance\":0}"), *empty = J("{}");
    CHECK(strlen(fa) == 16 && strspn(fa, "0123456789abcdef") == 16, "fingerprint is 16 hex digits: %s", fa);
    CHECK(strcmp(fa, es_reducer_fingerprint(rb)) == 0, "equal rules in another order: %s", fa);
    CHECK(strcmp(fa, es_reducer_fingerprint(rc)) != 0, "different rules differ");
    CHECK(strcmp(fa, es_reducer_fingerprint(rv)) != 0, "a different user version differs");
    CHECK(es_reducer_user_version(rv) == 2, "user_version");
    es_reducer_state_fingerprint(ra, NULL, f1, NULL), es_reducer_state_fingerprint(ra, empty, f2, NULL);
    es_reducer_state_fingerprint(ra, init, f3, NULL);
    CHECK(strcmp(f1, fa) == 0 && strcmp(f2, fa) == 0, "state fingerprint without initial is the reducer's");
    CHECK(strcmp(f3, fa) != 0 && strlen(f3) == 16, "an initial state changes the state fingerprint");
    json_decref(init), json_decref(empty);
    es_reducer_free(ra), es_reducer_free(rb), es_reducer_free(rc), es_reducer_free(rv);
}

/* Caller data is never changed, even when the state shares its values. */
static void test_sharing(void) {
    es_rule_spec r1[] = { { R("t", APPEND) }, { R("o", MERGE) }, { R("n", SUM) }, { R("c", COUNT) } };
    static const char *const texts[] = { "{\"t\":[1],\"o\":{\"a\":{\"b\":1}},\"n\":1,\"c\":0}",
                                         "{\"t\":[2],\"o\":{\"a\":{\"c\":2}},\"n\":2,\"c\":0}",
                                         "{\"t\":3,\"o\":{\"a\":{\"b\":9}},\"n\":3,\"c\":0}" };
    json_t *d[3], *st = json_object();
    es_reducer *r = mk(r1, N(r1), 0);
    es_event ev;
    es_err err;
    size_t i;
    for (i = 0; i < 3; i++) {
        d[i] = J(texts[i]);
        CHECK(es_reducer_fold_json(r, st, "E", d[i], NULL, NULL, &err) == ES_OK, "fold: %s", err.msg);
    }
    expect(st, "{\"t\":[1,2,3],\"o\":{\"a\":{\"b\":9,\"c\":2}},\"n\":6,\"c\":3}", "shared fold");
    for (i = 0; i < 3; i++) expect(d[i], texts[i], "caller data unchanged"), json_decref(d[i]);
    memset(&ev, 0, sizeof ev);
    ev.type = "E", ev.stream = "s-1", ev.revision = 4, ev.data = "{\"n\":1,\"t\":[4]}";
    ev.data_len = strlen(ev.data);
    CHECK(es_reducer_fold_event(r, st, &ev, NULL, NULL, NULL, &err) == ES_OK, "fold_event: %s", err.msg);
    ev.data = NULL, ev.data_len = 0;
    CHECK(es_reducer_fold_event(r, st, &ev, NULL, NULL, NULL, &err) == ES_OK, "fold_event, no data");
    expect(st, "{\"t\":[1,2,3,4],\"o\":{\"a\":{\"b\":9,\"c\":2}},\"n\":7,\"c\":3}", "fold_event");
    ev.data = "{\"n\":", ev.data_len = strlen(ev.data);
    CHECK(es_reducer_fold_event(r, st, &ev, NULL, NULL, NULL, &err) == ES_EINVALID && strstr(err.msg, "s-1"),
          "undecodable data: %s", err.msg);
    CHECK(es_reducer_fold_json(r, st, "E", st, NULL, NULL, &err) == ES_EINVALID, "state as data is rejected");
    json_decref(st), es_reducer_free(r);
}

/* ---- the differential fold ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % n);
}

#define NF 6
static const char *const fields[NF] = { "f0", "f1", "f2", "f3", "f4", "f5" };
static const char *const tnames[4] = { "T0", "T1", "T2", "T3" };
enum { C_ANY, C_NUM, C_STR };

static json_t *rand_scalar(int cls) {
    if (cls == C_NUM || (cls == C_ANY && rnd(3) == 0))
        return rnd(4) == 0 ? json_real((double)((int)rnd(41) - 20) / 4.0) : json_integer((int)rnd(101) - 50);
    if (cls == C_STR || rnd(2) == 0) {
        static const char *const s[] = { "a", "b", "c", "ab", "" };
        return json_string(s[rnd(5)]);
    }
    return rnd(3) == 0 ? json_null() : rnd(2) ? json_true() : json_false();
}

static json_t *rand_value(int cls, int depth) {
    json_t *v;
    size_t i, n;
    if (cls != C_ANY || depth > 2 || rnd(3) == 0) return rand_scalar(cls);
    n = rnd(3);
    v = rnd(2) ? json_array() : json_object();
    for (i = 0; i < n + json_is_object(v); i++)
        if (json_is_array(v)) json_array_append_new(v, rand_value(C_ANY, depth + 1));
        else json_object_set_new(v, fields[rnd(3)], rand_value(C_ANY, depth + 1));
    return v;
}

typedef struct rset {
    es_rule_spec s[24];
    size_t n;
    const char *when[24][2];
    json_t *scale[3];
    int cls[NF];
} rset;

static int fidx(const char *f) { return f[1] - '0'; }

static void rand_rules(rset *rs) {
    static const es_rule_kind numeric[] = { ES_RULE_SUM, ES_RULE_MIN, ES_RULE_MAX, ES_RULE_COUNT };
    static const es_rule_kind generic[] = { ES_RULE_LAST, ES_RULE_FIRST, ES_RULE_APPEND, ES_RULE_UNION,
                                            ES_RULE_MERGE, ES_RULE_CUSTOM };
    static const es_rule_kind stars[] = { ES_RULE_LAST, ES_RULE_FIRST, ES_RULE_DROP, ES_RULE_APPEND,
                                          ES_RULE_UNION, ES_RULE_MERGE, ES_RULE_COUNT, ES_RULE_CUSTOM };
    int f, j;
    memset(rs->s, 0, sizeof rs->s);
    rs->n = 0;
    for (f = 0; f < NF; f++) rs->cls[f] = C_ANY;
    for (f = 0; f < NF; f++) {
        int nr, fam = rnd(2), only_minmax_str = 0;
        if (rnd(5) < 2) continue;
        if (rnd(8) == 0) {
            rs->s[rs->n].field = fields[f], rs->s[rs->n++].kind = rnd(2) ? ES_RULE_DROP : ES_RULE_TYPES;
            continue;
        }
        nr = 1 + (int)rnd(2);
        if (fam == 0 && nr == 1 && rnd(3) == 0) only_minmax_str = 1;
        for (j = 0; j < nr; j++) {
            es_rule_spec *sp = &rs->s[rs->n];
            const char *src;
            sp->field = fields[f], sp->custom_id = 1;
            if (only_minmax_str) sp->kind = rnd(2) ? ES_RULE_MIN : ES_RULE_MAX;
            else sp->kind = fam == 0 ? numeric[rnd(4)] : generic[rnd(6)];
            if (rnd(3) == 0) sp->from = fields[rnd(NF)];
            if (rnd(3) == 0) {
                rs->when[rs->n][0] = tnames[rnd(4)], rs->when[rs->n][1] = tnames[rnd(4)];
                sp->when = rs->when[rs->n], sp->nwhen = 1 + rnd(2);
            }
            if (!only_minmax_str && sp->kind != ES_RULE_COUNT && fam == 0 && rnd(3) == 0)
                sp->scale = rs->scale[rnd(3)];
            src = sp->from ? sp->from : sp->field;
            if (fam == 0 && sp->kind != ES_RULE_COUNT)
                rs->cls[fidx(src)] = only_minmax_str && rs->cls[fidx(src)] != C_NUM ? C_STR : C_NUM;
            rs->n++;
        }
    }
    if (rnd(3)) {
        es_rule_spec *sp = &rs->s[rs->n];
        sp->field = "*", sp->kind = stars[rnd(8)], sp->custom_id = 1;
        if (sp->kind != ES_RULE_DROP && rnd(4) == 0)
            rs->when[rs->n][0] = tnames[rnd(4)], sp->when = rs->when[rs->n], sp->nwhen = 1;
        rs->n++;
    }
}

/* The reference fold: written plainly from the rules in reduce.h, copying
 * every value it stores. */
static int ref_when(const es_rule_spec *sp, const char *type) {
    size_t i;
    if (!sp->nwhen) return 1;
    for (i = 0; i < sp->nwhen; i++)
        if (strcmp(sp->when[i], type) == 0) return 1;
    return 0;
}

static json_t *ref_num(int is_int, json_int_t i, double d) { return is_int ? json_integer(i) : json_real(d); }

static json_t *ref_scaled(const json_t *v, const json_t *scale) {
    if (!scale) return json_deep_copy(v);
    if (json_is_integer(v) && json_is_integer(scale))
        return json_integer(json_integer_value(v) * json_integer_value(scale));
    return json_real(json_number_value(v) * json_number_value(scale));
}

static void ref_merge(json_t *obj, const char *k, const json_t *v) {
    json_t *cur = json_object_get(obj, k);
    const char *k2;
    json_t *v2;
    if (cur && json_is_object(cur) && json_is_object(v)) {
        json_object_foreach((json_t *)v, k2, v2) ref_merge(cur, k2, v2);
        return;
    }
    json_object_set_new(obj, k, json_deep_copy(v));
}

static void ref_apply(const es_rule_spec *sp, const char *target, json_t *st, const json_t *v) {
    json_t *acc = json_object_get(st, target), *nv;
    size_t i;
    switch (sp->kind) {
    case ES_RULE_LAST:
        json_object_set_new(st, target, json_deep_copy(v));
        break;
    case ES_RULE_FIRST:
        if (!acc) json_object_set_new(st, target, json_deep_copy(v));
        break;
    case ES_RULE_SUM:
        nv = ref_scaled(v, sp->scale);
        if (acc) {
            json_t *s = json_is_integer(acc) && json_is_integer(nv)
                            ? ref_num(1, json_integer_value(acc) + json_integer_value(nv), 0)
                            : ref_num(0, 0, json_number_value(acc) + json_number_value(nv));
            json_decref(nv), nv = s;
        }
        json_object_set_new(st, target, nv);
        break;
    case ES_RULE_COUNT:
        json_object_set_new(st, target, acc ? (json_is_integer(acc) ? json_integer(json_integer_value(acc) + 1)
                                                                    : json_real(json_real_value(acc) + 1))
                                            : json_integer(1));
        break;
    case ES_RULE_MIN:
    case ES_RULE_MAX: {
        int better;
        nv = ref_scaled(v, sp->scale);
        if (!acc) better = 1;
        else if (json_is_string(nv))
            better = strcmp(json_string_value(nv), json_string_value(acc)) * (sp->kind == ES_RULE_MIN ? -1 : 1) > 0;
        else better = sp->kind == ES_RULE_MIN ? json_number_value(nv) < json_number_value(acc)
                                              : json_number_value(nv) > json_number_value(acc);
        if (better) json_object_set_new(st, target, nv);
        else json_decref(nv);
        break;
    }
    case ES_RULE_APPEND:
    case ES_RULE_UNION:
        nv = json_array();
        if (acc && json_is_array(acc)) json_array_extend(nv, acc);
        else if (acc && !json_is_null(acc) && !(json_is_object(acc) && json_object_size(acc) == 0))
            json_array_append(nv, acc);
        for (i = 0; i < (json_is_array(v) ? json_array_size(v) : 1); i++) {
            const json_t *item = json_is_array(v) ? json_array_get(v, i) : v;
            size_t j, dup = 0;
            for (j = 0; sp->kind == ES_RULE_UNION && j < json_array_size(nv); j++)
                if (json_equal(json_array_get(nv, j), item)) dup = 1;
            if (!dup) json_array_append_new(nv, json_deep_copy(item));
        }
        json_object_set_new(st, target, json_deep_copy(nv));
        json_decref(nv);
        break;
    case ES_RULE_MERGE:
        ref_merge(st, target, v);
        break;
    case ES_RULE_CUSTOM:
        nv = json_deep_copy(acc);
        test_custom(NULL, sp->custom_id, target, &nv, v, NULL, NULL);
        if (nv) json_object_set_new(st, target, nv);
        else json_object_del(st, target);
        break;
    default:
        break;
    }
}

static void ref_fold(const rset *rs, json_t *st, const char *type, const json_t *data) {
    es_rule_spec star;
    size_t i;
    const char *k;
    json_t *v;
    memset(&star, 0, sizeof star);
    star.kind = ES_RULE_LAST;
    for (i = 0; i < rs->n; i++)
        if (strcmp(rs->s[i].field, "*") == 0) star = rs->s[i];
    json_object_foreach((json_t *)data, k, v) {
        int named = 0;
        for (i = 0; i < rs->n; i++)
            if (strcmp(rs->s[i].field, k) == 0) named = 1;
        if (!named && star.kind != ES_RULE_DROP && ref_when(&star, type)) ref_apply(&star, k, st, v);
    }
    for (i = 0; i < rs->n; i++) {
        const es_rule_spec *sp = &rs->s[i];
        if (strcmp(sp->field, "*") == 0 || sp->kind == ES_RULE_DROP || !ref_when(sp, type)) continue;
        if (sp->kind == ES_RULE_TYPES) {
            json_t *arr = json_object_get(st, sp->field);
            if (!arr) json_object_set_new(st, sp->field, arr = json_array());
            json_array_append_new(arr, json_string(type));
        } else if ((v = json_object_get(data, sp->from ? sp->from : sp->field))) {
            ref_apply(sp, sp->field, st, v);
        }
    }
}

#ifdef ES_CHECK_STATE
/* A cursor over an array of events, to drive es_reducer_fold_cursor (whose
 * fold reads the JSON texts directly) without a store. */
typedef struct vec_cursor {
    es_cursor base;
    const es_event *ev;
    size_t n, i;
} vec_cursor;

static int vec_next(es_cursor *cur, const es_event **ev, es_err *err) {
    vec_cursor *v = (vec_cursor *)cur;
    return v->i == v->n ? 0 : (*ev = &v->ev[v->i++], 1);
}

static int fold_where(const es_reducer *r, json_t *st, const es_event *evs, size_t n, const json_t *where,
                      es_err *err) {
    vec_cursor v = { { vec_next, NULL }, evs, n, 0 };
    return es_reducer_fold_cursor(r, st, &v.base, where, test_custom, NULL, NULL, NULL, NULL, err);
}

static int fold_texts(const es_reducer *r, json_t *st, const es_event *evs, size_t n, es_err *err) {
    return fold_where(r, st, evs, n, NULL, err);
}

/* The text path against es_json_decode on texts jansson would not write. */
static void test_text_path(void) {
    static const char *const texts[] = {
        " { \"a\" : 1 , \"b\":[ 1 , {\"c\" : null} ] }\n", "{\"s\":\"\\u00e9\\ud83d\\ude00\\n\\\"\\/\\u0000x\"}",
        "{\"n\":-0,\"m\":1E2,\"r\":0.1,\"e\":-2.5e-3,\"i\":-9223372036854775808}", "{\"o\":{\"k\":1,\"k\":2}}",
        "{\"a\":1,\"a\":2}", "{\"k\\u0061\":1}", "{}", " {} ", "{\"big\":9223372036854775808}", "{\"r\":1e400}",
        "{\"s\":\"\\ud800\"}", "{\"s\":\"\\udc00x\"}", "{\"s\":\"\xc3\x28\"}", "{\"a\":01}", "{\"a\":1,}",
        "{\"a\":tru}", "{\"a\":1} x", "[1]", "{\"o\":{\"\\u0000\":1}}", "{\"a\":\"x\ty\"}", "{\"a\":[1,]}",
        "{\"a\":1.}", "{\"a\":-}", "{\"a\":.5}", "{\"s\":\"caf\xc3\xa9\"}", "{\"a\":{\"b\":[[[{}]]]}}",
        "{\"\xff\":1}", "{\"o\":{\"\xff\":1}}", "{\"b\":1,\"b\":2}", "{\"s\":\"\\b\\f\\r\\t\\\\\"}",
    };
    es_rule_spec sets[3][2] = { { { R("*", LAST) } },
                                { { R("a", APPEND) }, { R("*", APPEND) } },
                                { { R("ty", TYPES) }, { R("*", MERGE) } } };
    static char deep[2][4200];  /* jansson's depth limit: 2048 levels, the outer object included */
    size_t i, k;
    for (k = 0; k < 2; k++) {
        i = (size_t)sprintf(deep[k], "{\"a\":"), memset(deep[k] + i, '[', 2047 + k);
        memset(deep[k] + i + 2047 + k, ']', 2047 + k), strcpy(deep[k] + i + 2 * (2047 + k), "}");
    }
    for (k = 0; k < 3; k++) {
        es_reducer *r = mk(sets[k], k ? 2 : 1, 0);
        for (i = 0; i < N(texts) + 2; i++) {
            const char *t = i < N(texts) ? texts[i] : deep[i - N(texts)];
            json_t *slow = J("{\"o\":{\"x\":1}}"), *fast = J("{\"o\":{\"x\":1}}");
            es_event ev;
            es_err e1, e2;
            int r1, r2;
            memset(&ev, 0, sizeof ev);
            ev.type = "E", ev.stream = "s-1", ev.data = t, ev.data_len = strlen(t);
            r1 = es_reducer_fold_event(r, slow, &ev, NULL, NULL, NULL, &e1);
            r2 = fold_texts(r, fast, &ev, 1, &e2);
            CHECK(r1 == r2 && json_equal(slow, fast), "text %zu, rules %zu: decoder %d %s, text path %d %s", i, k,
                  r1, show(slow), r2, show(fast));
            json_decref(slow), json_decref(fast);
        }
        es_reducer_free(r);
    }
}

#endif

static void test_differential(int rounds) {
    rset rs;
    int round;
    rs.scale[0] = json_integer(2), rs.scale[1] = json_integer(-1), rs.scale[2] = json_real(0.5);
    for (round = 0; round < rounds; round++) {
        es_reducer *r;
        json_t *st = json_object(), *ref = json_object(), *split = json_object(), *kept[40];
        char *texts[40];
        const char *types[40];
        size_t nev = rnd(40), i, at = nev ? rnd((uint32_t)nev) : 0;
        int f, ok = 1;
        es_err err;
        rand_rules(&rs);
        r = mk(rs.s, rs.n, 0);
        for (i = 0; i < nev; i++) {
            json_t *d = json_object();
            for (f = 0; f < NF; f++)
                if (rnd(2)) json_object_set_new(d, fields[f], rand_value(rs.cls[f], 0));
            types[i] = tnames[rnd(4)];
            texts[i] = es_json_encode(d, NULL, NULL);
            kept[i] = d;
        }
        for (i = 0; i < nev && ok; i++) {
            es_event ev;
            memset(&ev, 0, sizeof ev);
            ev.type = types[i], ev.data = texts[i], ev.data_len = strlen(texts[i]);
            ref_fold(&rs, ref, types[i], kept[i]);
            /* even rounds fold the caller's objects (kept alive, so the
             * state shares them); odd rounds decode the texts */
            if (round % 2 == 0) ok = es_reducer_fold_json(r, st, types[i], kept[i], test_custom, NULL, &err) == ES_OK;
            else ok = es_reducer_fold_event(r, st, &ev, NULL, test_custom, NULL, &err) == ES_OK;
            CHECK(ok, "round %d event %zu: %s", round, i, err.msg);
            if (i == at) {
                /* a snapshot: the state through its JSON text, then the rest */
                char *snap = es_json_encode(st, NULL, NULL);
                json_decref(split);
                split = J(snap);
                es_free(snap);
            } else if (i > at) {
                ok = ok && es_reducer_fold_event(r, split, &ev, NULL, test_custom, NULL, &err) == ES_OK;
            }
        }
#ifdef ES_CHECK_STATE
        if (ok) {
            es_event evs[40];
            json_t *fast = json_object(), *w = json_object(), *fw = json_object(), *sw = json_object();
            const json_t *wv = nev ? json_object_get(kept[rnd((uint32_t)nev)], "f0") : NULL;
            memset(evs, 0, sizeof evs);
            for (i = 0; i < nev; i++)
                evs[i].type = types[i], evs[i].data = texts[i], evs[i].data_len = strlen(texts[i]);
            CHECK(fold_texts(r, fast, evs, nev, &err) == ES_OK && json_equal(fast, st),
                  "round %d: text path %s, decoder %s", round, show(fast), show(st));
            /* a where on f0, against es_reducer_where_ok on the decoded data */
            json_object_set_new(w, "f0", wv ? json_deep_copy(wv) : json_integer(1));
            for (i = 0; i < nev; i++)
                if (es_reducer_where_ok(w, kept[i])) es_reducer_fold_json(r, sw, types[i], kept[i], test_custom, NULL, &err);
            CHECK(fold_where(r, fw, evs, nev, w, &err) == ES_OK && json_equal(fw, sw), "round %d: where %s: %s, not %s",
                  round, show(w), show(fw), show(sw));
            json_decref(fast), json_decref(w), json_decref(fw), json_decref(sw);
        }
#endif
        if (ok) {
            CHECK(json_equal(st, ref), "round %d: reducer %s, reference %s", round, show(st), show(ref));
            CHECK(nev == 0 || json_equal(st, split), "round %d: via snapshot %s, straight %s", round, show(split),
                  show(st));
        }
        for (i = 0; i < nev; i++) {
            json_t *again = J(texts[i]);
            CHECK(json_equal(again, kept[i]), "round %d: event %zu data changed by the fold", round, i);
            json_decref(again), json_decref(kept[i]), es_free(texts[i]);
        }
        json_decref(st), json_decref(ref), json_decref(split), es_reducer_free(r);
        if (failures > 20) break;
    }
    json_decref(rs.scale[0]), json_decref(rs.scale[1]), json_decref(rs.scale[2]);
}

/* Allocation failures at every step leave nothing leaked (valgrind says). */
static void test_nomem(void) {
    const char *w[] = { "A" };
    es_rule_spec s[] = { { R("t", APPEND), .when = w, .nwhen = 1 }, { R("ty", TYPES) }, { R("n", SUM) } };
    long k;
    int seen_ok = 0;
    for (k = 1; k < 300 && !seen_ok; k++) {
        es_reducer *r = NULL;
        json_t *st = json_object(), *d = J("{\"t\":[1,2],\"n\":1,\"o\":{\"a\":1}}");
        es_err err;
        int rc;
        es_alloc_fail_after(k);
        rc = es_reducer_new(s, N(s), 0, &r, &err);
        if (rc == ES_OK) rc = es_reducer_fold_json(r, st, "A", d, NULL, NULL, &err);
        if (rc == ES_OK) rc = es_reducer_fold_json(r, st, "A", d, NULL, NULL, &err);
#ifdef ES_CHECK_STATE
        if (rc == ES_OK) {
            es_event ev = { NULL, NULL, "A", 0, 0, 0, "{\"t\":[1,\"x\"],\"n\":1,\"o\":{\"a\":[1.5]}}", 0, NULL, 0, NULL };
            ev.data_len = strlen(ev.data);
            rc = fold_texts(r, st, &ev, 1, &err);
        }
#endif
        es_alloc_fail_after(0);
        CHECK(rc == ES_OK || rc == ES_ENOMEM, "allocation failure %ld gives ES_ENOMEM, not %d", k, rc);
        seen_ok = rc == ES_OK;
        json_decref(st), json_decref(d), es_reducer_free(r);
    }
    CHECK(seen_ok, "folding succeeds once allocations stop failing");
}

/* The W5 shape: 4-field objects of about 200 bytes, "*" = last and a sum. */
static double rate(clock_t t0, long n) { return n / ((double)(clock() - t0) / CLOCKS_PER_SEC); }

static void bench(long n) {
    es_rule_spec s[] = { { R("amount", SUM) }, { R("*", LAST) } };
    static es_event evs[1000];
    es_reducer *r = mk(s, N(s), 0);
    const char *text = "{\"amount\":42,\"owner\":\"someone-with-a-fairly-long-name-0123456789-abcdefghij\","
                       "\"note\":\"a note of some length that pads this event to about two hundred bytes, more "
                       "or less!\",\"currency\":\"EUR\"}";
    json_t *st = json_object(), *d = J(text);
    es_err err;
    clock_t t0;
    long i;
    for (i = 0; i < 1000; i++) evs[i].type = "Deposited", evs[i].data = text, evs[i].data_len = strlen(text);
    t0 = clock();
    for (i = 0; i < n; i++) es_reducer_fold_event(r, st, &evs[0], NULL, NULL, NULL, &err);
    printf("fold_event (jansson decode + fold), %zu-byte events: %.0f events/s\n", strlen(text), rate(t0, n));
#ifdef ES_CHECK_STATE
    t0 = clock();
    for (i = 0; i < n / 1000; i++) fold_texts(r, st, evs, 1000, &err);
    printf("fold_cursor (the text path of es_store_state): %.0f events/s\n", rate(t0, n / 1000 * 1000));
#endif
    t0 = clock();
    for (i = 0; i < n; i++) es_reducer_fold_json(r, st, "Deposited", d, NULL, NULL, &err);
    printf("fold_json (predecoded data): %.0f events/s\n", rate(t0, n));
    json_decref(d), json_decref(st), es_reducer_free(r);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        bench(argc > 2 ? atol(argv[2]) : 1000000);
        return 0;
    }
    test_kinds();
    test_numbers();
    test_custom_rules();
    test_osiris_and_bank();
    test_invalid();
    test_fingerprints();
    test_sharing();
    test_nomem();
    test_differential(1000);
#ifdef ES_CHECK_STATE
    test_text_path();
#endif
    printf("reduce_check: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
