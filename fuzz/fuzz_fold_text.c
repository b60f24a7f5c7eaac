/* fuzz_fold_text.c: libFuzzer target: state.c's JSON text scanner against es_json_decode */
/* SPDX-License-Identifier: MIT */
/*
 * state.c folds stored events straight from their JSON text with its own
 * scanner and decodes only the values some rule reads; anything it does not
 * handle goes through es_json_decode. The results must be those of the
 * decoder. The input's first byte picks a rule set and a where filter; the
 * rest is the data text of one event (any bytes). Folding it through
 * es_reducer_fold_cursor (the text path) must give the same outcome as
 * es_json_decode + es_reducer_where_ok + es_reducer_fold_event: both fail
 * (ES_EINVALID), or both skip it (where), or both fold it to json_equal
 * states.
 */
#include "fuzz_common.h"
#include "eventstore.h"
#include "reduce.h"

typedef struct one_cursor {
    es_cursor base;
    es_event ev;
    int done;
} one_cursor;

static int oc_next(es_cursor *c, const es_event **ev, es_err *err) {
    one_cursor *o = (one_cursor *)c;
    (void)err;
    if (o->done) return 0;
    o->done = 1;
    *ev = &o->ev;
    return 1;
}

static void oc_close(es_cursor *c) { (void)c; }

static es_reducer *rule_set(unsigned k) {
    static const char *const when_a[] = { "A" };
    es_rule_spec s[4];
    es_reducer *r = NULL;
    size_t n = 0;
    es_err err;
    memset(s, 0, sizeof s);
    switch (k % 4) {
    case 0:   /* "*" = last copies every field */
        break;
    case 1:
        s[n].field = "*"; s[n++].kind = ES_RULE_DROP;
        s[n].field = "a"; s[n++].kind = ES_RULE_APPEND;
        s[n].field = "total"; s[n].kind = ES_RULE_SUM; s[n++].from = "n";
        break;
    case 2:
        s[n].field = "*"; s[n++].kind = ES_RULE_MERGE;
        s[n].field = "m"; s[n].kind = ES_RULE_MAX; s[n].when = when_a; s[n++].nwhen = 1;
        s[n].field = "t"; s[n++].kind = ES_RULE_TYPES;
        break;
    default:
        s[n].field = "*"; s[n++].kind = ES_RULE_UNION;
        s[n].field = "c"; s[n++].kind = ES_RULE_COUNT;
        break;
    }
    FZ_CHECK(es_reducer_new(n ? s : NULL, n, 0, &r, &err) == ES_OK, "rule set %u: %s", k % 4, err.msg);
    return r;
}

static json_t *where_of(unsigned k) {
    switch ((k / 4) % 4) {
    case 0: return NULL;
    case 1: return json_pack("{s:i}", "a", 1);
    case 2: return json_pack("{s:s}", "k", "v");
    default: return json_pack("{s:[i,i],s:n}", "a", 1, 2, "b");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned k;
    es_reducer *r;
    json_t *where, *st_text, *st_dec, *dec;
    one_cursor oc;
    es_err err;
    int rc_text, rc_dec;
    int64_t count = -1;

    if (size < 1) return 0;
    k = data[0];
    r = rule_set(k);
    where = where_of(k);

    memset(&oc, 0, sizeof oc);
    oc.base.next = oc_next;
    oc.base.close = oc_close;
    oc.ev.id = "00000000-0000-7000-8000-000000000000";
    oc.ev.stream = "s-1";
    oc.ev.type = (k & 0x40) ? "A" : "B";
    oc.ev.revision = 1;
    oc.ev.position = 1;
    oc.ev.data = (const char *)data + 1;
    oc.ev.data_len = size - 1;
    oc.ev.metadata = "{}";
    oc.ev.metadata_len = 2;

    st_text = json_object();
    es_err_clear(&err);
    rc_text = es_reducer_fold_cursor(r, st_text, &oc.base, where, NULL, NULL, &count, NULL, NULL, &err);

    st_dec = json_object();
    dec = size > 1 ? es_json_decode((const char *)data + 1, size - 1, &err) : json_object();
    if (!dec) {
        rc_dec = ES_EINVALID;
    } else if (!es_reducer_where_ok(where, dec)) {
        rc_dec = 1;   /* skipped */
    } else {
        rc_dec = es_reducer_fold_event(r, st_dec, &oc.ev, dec, NULL, NULL, &err);
    }

    if (rc_dec == 1) {
        FZ_CHECK(rc_text == ES_OK && count == 0, "where: the decoder skips the event, the text path says %d, count %lld",
                 rc_text, (long long)count);
    } else if (rc_dec != ES_OK) {
        FZ_CHECK(rc_text == rc_dec, "the decoded path fails with %d, the text path says %d", rc_dec, rc_text);
    } else {
        FZ_CHECK(rc_text == ES_OK && count == 1, "the decoded path folds, the text path says %d (%s), count %lld",
                 rc_text, err.msg, (long long)count);
        if (!json_equal(st_text, st_dec)) {
            char *a = json_dumps(st_text, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
            char *b = json_dumps(st_dec, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
            FZ_CHECK(0, "text path state %s, decoded path state %s", a ? a : "", b ? b : "");
        }
    }
    json_decref(dec);
    json_decref(st_text);
    json_decref(st_dec);
    json_decref(where);
    es_reducer_free(r);
    return 0;
}
