/* state.c: a stream's or a context's state from snapshots and folded events */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "es_internal.h"
#include "reduce.h"

/*
 * Folding a stored event straight from its JSON text. Decoding the whole
 * data object with jansson costs more than the fold itself; here only the
 * values some rule reads become json_t, the rest are skipped. The parser
 * follows jansson's decoder (same numbers, strings, depth limit); an event it
 * does not handle simply (escaped or repeated top-level keys, more than
 * MAX_MEMBERS members, anything malformed) goes through es_json_decode, so
 * results and errors stay those of the decoder.
 */
#define MAX_MEMBERS 32
#define MAX_DEPTH 2048

typedef struct member {
    const char *key;
    size_t klen;
    const char *val;        /* a "*" = last member: its checked value text */
    size_t vlen;
    int shape;              /* and its shape: V_STRING (no escapes), V_INT, V_REAL or V_OTHER */
    int sum;                /* an integer for a plain sum (ES_FOLD_SUM): ival */
    int64_t ival;
    int kind;               /* es_fold_member_kind */
    struct kind_memo *memo; /* the memo that told the kind, or NULL */
} member;

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p at the opening quote; returns the end of the string, NULL if none. */
static const char *scan_string(const char *p, const char *end, int *escaped) {
    for (p = es_json_plain(p + 1, end); p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') return p + 1;
        if (ch < 0x20) return NULL;
        if (ch == '\\') {
            *escaped = 1;
            if (++p == end) return NULL;
        }
    }
    return NULL;
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* What a "*" = last value is, as fold_last needs to know to set it in place. */
enum { V_OTHER = ES_V_OTHER, V_STRING = ES_V_STRING, V_INT = ES_V_INT, V_REAL = ES_V_REAL };


/* JSON's number grammar; *real is 0 for an integer, 1 with a fraction, 2
 * with an exponent. */
static const char *scan_number(const char *p, const char *end, int *real) {
    *real = 0;
    if (p < end && *p == '-') p++;
    if (p == end || !is_digit(*p)) return NULL;
    if (*p == '0') p++;
    else while (p < end && is_digit(*p)) p++;
    if (p < end && *p == '.') {
        *real = 1;
        if (++p == end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *real = 2;
        if (++p < end && (*p == '+' || *p == '-')) p++;
        if (p == end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    return p;
}

static const char *scan_literal(const char *p, const char *end, const char *word) {
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static long hex4(const char *s) {
    long v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Checks a string's content (between the quotes): escapes and surrogate
 * pairs; scan_members checked the whole text as UTF-8 before any string is
 * read. With out (n + 1 bytes) it also decodes it there. Escapes are ASCII,
 * so the raw text is valid UTF-8 exactly when the decoded one is.
 * *nul: the string holds U+0000 (allowed in values, not in keys). */
static int string_content(const char *s, size_t n, int escaped, char *out, size_t *len, int *nul) {
    char *o = out;
    size_t i;
    *nul = 0;
    for (i = 0; escaped && i < n; i++) {
        long cp, lo;
        if (s[i] != '\\') {
            if (o) *o++ = s[i];
            continue;
        }
        cp = s[++i];
        switch (cp) {
        case '"': case '\\': case '/': break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            /* the content ends before the closing quote: n bounds the digits */
            if (n - i < 5 || (cp = hex4(s + i + 1)) < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return 0;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (n - i < 7 || s[i + 1] != '\\' || s[i + 2] != 'u' || (lo = hex4(s + i + 3)) < 0xDC00 ||
                    lo > 0xDFFF)
                    return 0;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            if (cp == 0) *nul = 1;
            break;
        default:
            return 0;
        }
        if (!o) continue;
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else if (cp < 0x800) {
            *o++ = (char)(0xC0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *o++ = (char)(0xE0 | (cp >> 12));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (char)(0xF0 | (cp >> 18));
            *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (len) *len = o ? (size_t)(o - out) : n;
    return 1;
}

/* A string value or key; key: U+0000 is refused, as jansson does. */
static int parse_string(const char *s, size_t n, int escaped, int key, json_t **out) {
    char *buf;
    size_t len;
    int nul, ok;
    if (!out || !escaped) {
        if (!string_content(s, n, escaped, NULL, NULL, &nul) || (key && nul)) return 0;
        return !out || (*out = json_stringn_nocheck(s, n)) != NULL;
    }
    if (!(buf = es_malloc(n + 1))) return 0;
    ok = string_content(s, n, 1, buf, &len, &nul) && !(key && nul) &&
         (*out = json_stringn_nocheck(buf, len)) != NULL;
    es_free(buf);
    return ok;
}

/* As jansson: an integer outside int64 and a real that overflows are
 * errors. */
static int parse_int(const char *s, size_t n, int64_t *out) {
    int neg = *s == '-';
    int64_t v = 0;
    size_t i;
    for (i = (size_t)neg; i < n; i++) {
        int dig = s[i] - '0';
        if (neg ? v < (INT64_MIN + dig) / 10 : v > (INT64_MAX - dig) / 10) return 0;
        v = neg ? v * 10 - dig : v * 10 + dig;
    }
    *out = v;
    return 1;
}

static int parse_number(const char *s, size_t n, int real, json_t **out) {
    double d;
    if (!real) {
        int64_t v;
        return parse_int(s, n, &v) && (!out || (*out = json_integer(v)) != NULL);
    }
    /* only checked: a real is refused only when it overflows, which takes
     * an exponent (real 2) or more than 308 digits before the point */
    if (!out && real == 1 && n <= 300) return 1;
    if (!es_json_real(s, n, &d)) return 0;
    return !out || (*out = json_real(d)) != NULL;
}

/* Parses one value into *out, or with out NULL only checks it. depth counts
 * as jansson does: the top-level object is 1, its member values 2. */
static const char *parse_value(const char *p, const char *end, int depth, json_t **out) {
    const char *q;
    int flag = 0;
    if (out) *out = NULL;
    if (p == end || depth > MAX_DEPTH) return NULL;
    switch (*p) {
    case '"':
        q = scan_string(p, end, &flag);
        return q && parse_string(p + 1, (size_t)(q - p - 2), flag, 0, out) ? q : NULL;
    case 't': case 'f': case 'n':
        q = scan_literal(p, end, *p == 't' ? "true" : *p == 'f' ? "false" : "null");
        if (q && out) *out = *p == 't' ? json_true() : *p == 'f' ? json_false() : json_null();
        return q;
    case '[': case '{': {
        int obj = *p == '{';
        json_t *c = NULL, *v = NULL;
        if (out && !(c = obj ? json_object() : json_array())) return NULL;
        p = skip_ws(p + 1, end);
        if (p < end && *p == (obj ? '}' : ']')) goto closed;
        for (;;) {
            json_t *key = NULL;
            if (obj) {
                const char *k = p;
                if (p == end || *p != '"' || !(p = scan_string(p, end, &flag)) ||
                    !parse_string(k + 1, (size_t)(p - k - 2), flag, 1, c ? &key : NULL))
                    goto fail;
                p = skip_ws(p, end);
                if (p == end || *p != ':') {
                    json_decref(key);
                    goto fail;
                }
                p = skip_ws(p + 1, end);
            }
            p = parse_value(p, end, depth + 1, c ? &v : NULL);
            if (p && c) {
                /* the setters take v even when they fail; a repeated key
                 * keeps the last value, as in jansson */
                int bad = obj ? json_object_setn_new_nocheck(c, json_string_value(key),
                                                             json_string_length(key), v)
                              : json_array_append_new(c, v);
                v = NULL;
                if (bad) p = NULL;
            }
            json_decref(key);
            if (!p) goto fail;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == (obj ? '}' : ']')) break;
            goto fail;
        }
    closed:
        if (out) *out = c;
        return p + 1;
    fail:
        json_decref(v);
        json_decref(c);
        return NULL;
    }
    default:
        q = scan_number(p, end, &flag);
        return q && parse_number(p, (size_t)(q - p), flag, out) ? q : NULL;
    }
}

/* Checks a "*" = last value as parse_value does and tells its shape. */
static const char *check_last(const char *p, const char *end, int *shape) {
    const char *q;
    int flag = 0;
    *shape = V_OTHER;
    if (p < end && *p == '"') {
        q = scan_string(p, end, &flag);
        if (!q || !parse_string(p + 1, (size_t)(q - p - 2), flag, 0, NULL)) return NULL;
        if (!flag) *shape = V_STRING;
        return q;
    }
    if (p < end && (*p == '-' || is_digit(*p))) {
        q = scan_number(p, end, &flag);
        if (!q || !parse_number(p, (size_t)(q - p), flag, NULL)) return NULL;
        *shape = flag ? V_REAL : V_INT;
        return q;
    }
    return parse_value(p, end, 2, NULL);
}

/* "*" = last values waiting to be set. A value that would replace the
 * state's value of the same kind in place (fold_last's fast path) is only
 * copied here; a later event's value for the same member overwrites the
 * copy, and each is set once, when the cursor ends (last_flush). Setting a
 * string in the state costs a malloc and a free per event, a copy into a
 * reused buffer does not. An entry holds the member's name and the
 * state's value: no rule targets a "*" member, so only fold_last itself
 * can replace that value, and it drops the entry first. Insertion order is
 * kept: a member new to the state is set at once. */
#define MAX_PENDING 8

typedef struct pending_last {
    json_t *acc;
    int shape;
    char key[32];                      /* the member's name: found without hashing */
    size_t klen;
    es_buf text;
} pending_last;

/* The kind (es_fold_member_kind) of the member at each place in the
 * previous event: events of a stream mostly repeat their names in the same
 * order, and comparing a short name costs less than hashing it. */
typedef struct kind_memo {
    es_kind_memo m;
    signed char sum;                   /* ES_FOLD_SUM: its pending_sum in the last_set, or -1 */
    signed char last;                  /* ES_FOLD_STAR_LAST: its pending_last, or -1 */
} kind_memo;

/* Plain sums waiting to be set: the state's integer (refcount 1) and the
 * total so far, set once, when the cursor ends or before anything else
 * may read it (sums_flush). Such a field is the target of its sum alone,
 * and "*" never applies to it, so only the sum reads or replaces it. An
 * entry is found through the kind memo: no name is compared or hashed
 * per event. */
typedef struct pending_sum {
    json_t *acc;
    int64_t total;
} pending_sum;

typedef struct last_set {
    pending_last ents[MAX_PENDING];
    size_t n;
    pending_sum sums[MAX_PENDING];
    size_t nsums;
    kind_memo kinds[MAX_MEMBERS];
} last_set;

/* m's kind, from the memo of place i when it holds m's name; m->memo says
 * which memo (NULL: none). */
static int member_kind(const es_fold_pass *fp, member *m, size_t i, last_set *ls) {
    kind_memo *k;
    m->memo = NULL;
    if (!ls || m->klen > ES_KIND_MEMO_KEY) return es_fold_member_kind(fp, m->key, m->klen);
    k = m->memo = &ls->kinds[i];
    if (es_kind_memo_hit(fp, &k->m, m->key, m->klen)) return k->m.kind;
    k->sum = k->last = -1;
    return es_kind_memo_set(fp, &k->m, m->key, m->klen);
}

/* Forgets where the memos' pending sums (sums 1) or pending lasts are:
 * they were set, dropped or moved. */
static void memo_forget(last_set *ls, int sums) {
    size_t i;
    for (i = 0; i < MAX_MEMBERS; i++) {
        if (sums) ls->kinds[i].sum = -1;
        else ls->kinds[i].last = -1;
    }
}

/* Sets every pending sum (set 0: drops them) and forgets them. */
static void sums_flush(last_set *ls, int set) {
    size_t i;
    if (!ls->nsums) return;
    for (i = 0; set && i < ls->nsums; i++) json_integer_set(ls->sums[i].acc, ls->sums[i].total);
    ls->nsums = 0;
    memo_forget(ls, 1);
}

/* Adds m's integer to its pending sum, starting one from the state's
 * integer: 1, or 0 when it cannot wait (no memo, no integer to add to in
 * place, no room, or the total would overflow). */
static int sum_wait(es_fold_pass *p, last_set *ls, const member *m) {
    kind_memo *k = m->memo;
    pending_sum *s;
    if (!k) return 0;
    if (k->sum < 0) {
        json_t *acc = json_object_getn(p->state, m->key, m->klen);
        size_t j;
        if (!acc || acc->refcount != 1 || !json_is_integer(acc)) return 0;
        for (j = 0; j < ls->nsums && ls->sums[j].acc != acc; j++) continue;
        if (j == ls->nsums) {
            if (j == MAX_PENDING) return 0;
            ls->sums[j].acc = acc;
            ls->sums[j].total = json_integer_value(acc);
            ls->nsums++;
        }
        k->sum = (signed char)j;
    }
    s = &ls->sums[k->sum];
    if ((m->ival > 0 && s->total > INT64_MAX - m->ival) || (m->ival < 0 && s->total < INT64_MIN - m->ival))
        return 0;
    s->total += m->ival;
    return 1;
}

/* Member n's value, at p (its key in m[n]): decoded into vals[n] when the
 * pass wants it, checked otherwise, and counted in *matched when equal to
 * where's field of that name. shape: what an index (es_data_ix) says the
 * value is, the text from p to end being exactly that value; -1 when the
 * text is unchecked. Returns the end of the value, NULL when the text
 * needs the full decoder. */
static const char *take_value(const es_fold_pass *fp, const char *p, const char *end, int shape,
                              const json_t *where, member *m, size_t n, json_t **vals, size_t *count,
                              size_t *matched, last_set *ls) {
    const json_t *want = NULL;
    int fold;
    vals[n] = NULL; /* set before count covers it: the caller releases vals[0..count) */
    *count = n + 1;
    fold = m[n].kind = member_kind(fp, &m[n], n, ls);
    if (where) want = json_object_getn(where, m[n].key, m[n].klen);
    m[n].val = NULL;
    m[n].sum = 0;
    if (fold == ES_FOLD_SUM && !want && (*p == '-' || is_digit(*p))) {
        /* an integer for a plain sum is added in place, with no json_t
         * (a real, or an integer the field cannot take, goes as usual) */
        int real;
        const char *q = scan_number(p, end, &real);
        if (q && !real && parse_int(p, (size_t)(q - p), &m[n].ival)) {
            m[n].sum = 1;
            return q;
        }
        return parse_value(p, end, 2, &vals[n]);
    }
    if (fold == ES_FOLD_STAR_LAST && !want) {
        /* checked now, set after every member is checked (fold_last) */
        m[n].val = p;
        if (shape >= 0) {
            m[n].shape = shape;
            p = end;
        } else if (!(p = check_last(p, end, &m[n].shape))) {
            return NULL;
        }
        m[n].vlen = (size_t)(p - m[n].val);
        return p;
    }
    if (!(p = parse_value(p, end, 2, fold || want ? &vals[n] : NULL))) return NULL;
    if (want && json_equal(vals[n], want)) ++*matched;
    if (!fold) {
        json_decref(vals[n]);
        vals[n] = NULL;
    }
    return p;
}

/* Reads the top-level members, decoding the values the pass wants into
 * vals (the others are only checked), and counts in *matched the members
 * equal to a field of where; *count says how many vals to release. 0 when
 * the text needs the full decoder. */
static int scan_members(const es_fold_pass *fp, const char *p, const char *end, const json_t *where,
                        member *m, json_t **vals, size_t *count, size_t *matched, last_set *ls) {
    size_t n = 0, i;
    int escaped = 0;
    *count = *matched = 0;
    /* UTF-8 once for the whole text, not string by string: JSON's own
     * characters are ASCII, so a text is valid UTF-8 exactly when each of
     * its strings is (a stray byte elsewhere fails the parse either way) */
    if (!es_valid_utf8(p, (size_t)(end - p))) return 0;
    p = skip_ws(p, end);
    if (p == end || *p++ != '{') return 0;
    p = skip_ws(p, end);
    if (p < end && *p == '}') return skip_ws(p + 1, end) == end;
    for (;;) {
        if (n == MAX_MEMBERS || p == end || *p != '"') return 0;
        m[n].key = p + 1;
        if (!(p = scan_string(p, end, &escaped)) || escaped) return 0;
        m[n].klen = (size_t)(p - m[n].key - 1);
        for (i = 0; i < n; i++)
            if (m[i].klen == m[n].klen && m[i].key[0] == m[n].key[0] &&
                es_same_bytes(m[i].key, m[n].key, m[n].klen))
                return 0;
        p = skip_ws(p, end);
        if (p == end || *p++ != ':') return 0;
        p = skip_ws(p, end);
        if (!(p = take_value(fp, p, end, -1, where, m, n, vals, count, matched, ls))) return 0;
        n++;
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        return p < end && *p == '}' && skip_ws(p + 1, end) == end;
    }
}

/* scan_members for a text with an index: the members are where the index
 * says, and the text was checked when it was written. 0 (scan it instead)
 * when the index does not end where the text does. */
static int index_members(const es_fold_pass *fp, const es_event *ev, const json_t *where, member *m,
                         json_t **vals, size_t *count, size_t *matched, last_set *ls) {
    const es_data_ix *ix = ev->data_ix;
    const char *p = ev->data + 1, *end = ev->data + ev->data_len;
    size_t n;
    *count = *matched = 0;
    if (ix->n > MAX_MEMBERS) return 0;
    for (n = 0; n < ix->n; n++) {
        const es_member_at *a = &ix->m[n];
        const char *v = p + 1 + a->klen + 2;
        if (v + a->vlen >= end) return 0;
        m[n].key = p + 1;
        m[n].klen = a->klen;
        if (take_value(fp, v, v + a->vlen, a->shape, where, m, n, vals, count, matched, ls) != v + a->vlen)
            return 0;
        p = v + a->vlen + 1;
    }
    return p == end || (n == 0 && p + 1 == end);
}

/* m's pending value: through its memo when that knows it, else by name. */
static pending_last *last_find(last_set *ls, const member *m) {
    size_t i;
    if (m->memo && m->memo->last >= 0) return &ls->ents[m->memo->last];
    for (i = 0; i < ls->n; i++)
        if (ls->ents[i].klen == m->klen && es_same_bytes(ls->ents[i].key, m->key, m->klen)) {
            if (m->memo) m->memo->last = (signed char)i;
            return &ls->ents[i];
        }
    return NULL;
}

/* Sets acc from t (n bytes) of that shape, checked by scan_members and
 * of acc's kind (last_fits): ES_OK, or ES_ENOMEM. */
static int last_set_value(json_t *acc, int shape, const char *t, size_t n) {
    int64_t i;
    double d;
    if (shape == V_STRING) return json_string_setn_nocheck(acc, t + 1, n - 2) == 0 ? ES_OK : ES_ENOMEM;
    if (shape == V_INT && parse_int(t, n, &i)) return json_integer_set(acc, i), ES_OK;
    if (shape == V_REAL && es_json_real(t, n, &d)) return json_real_set(acc, d), ES_OK;
    return ES_ENOMEM; /* not reached: the text was checked */
}

/* Whether a value of that shape can replace acc in place: a string
 * without escapes for a string, an integer for an integer, a real for a
 * real. */
static int last_fits(const json_t *acc, int shape) {
    return shape == V_STRING ? json_is_string(acc) : shape == V_INT ? json_is_integer(acc)
                                                   : shape == V_REAL && json_is_real(acc);
}

/* Sets every waiting value (err NULL: drops them, the state is not
 * wanted) and empties ls. */
static int last_flush(last_set *ls, es_err *err) {
    size_t i;
    int rc = ES_OK;
    sums_flush(ls, err != NULL);
    for (i = 0; i < ls->n; i++) {
        pending_last *e = &ls->ents[i];
        if (err && rc == ES_OK && last_set_value(e->acc, e->shape, e->text.data, e->text.len) != ES_OK)
            rc = es_err_set(err, ES_ENOMEM, "fold: out of memory");
        es_buf_free(&e->text);
    }
    ls->n = 0;
    memo_forget(ls, 0);
    return rc;
}

/* A "*" = last member, whose text scan_members checked: a string or a
 * number replaces the state's value of the same kind in place when the
 * state holds the only reference to it (no new json_t, no object update),
 * or waits in ls (NULL: set now); anything else is decoded and fed as
 * usual. */
static int fold_last(es_fold_pass *p, const member *m, last_set *ls) {
    pending_last *e = ls ? last_find(ls, m) : NULL;
    json_t *acc = e ? e->acc : json_object_getn(p->state, m->key, m->klen), *v;
    const char *t = m->val;
    size_t n = m->vlen;
    if (acc && acc->refcount == 1 && last_fits(acc, m->shape)) {
        if (!e && ls && ls->n < MAX_PENDING && m->klen <= sizeof e->key) {
            if (m->memo) m->memo->last = (signed char)ls->n;
            e = &ls->ents[ls->n++];
            e->acc = acc;
            memcpy(e->key, m->key, m->klen);
            e->klen = m->klen;
            memset(&e->text, 0, sizeof e->text);
        }
        if (e) {
            e->shape = m->shape;
            if (n < e->text.cap) {
                memcpy(e->text.data, t, n);
                e->text.len = n;
                return ES_OK;
            }
            e->text.len = 0;
            if (es_buf_add(&e->text, t, n) != ES_OK) return es_err_set(p->err, ES_ENOMEM, "fold: out of memory");
            return ES_OK;
        }
        if (last_set_value(acc, m->shape, t, n) != ES_OK)
            return es_err_set(p->err, ES_ENOMEM, "fold: out of memory");
        return ES_OK;
    }
    if (e) {
        /* this value replaces acc: the waiting one is stale */
        es_buf_free(&e->text);
        *e = ls->ents[--ls->n];
        memo_forget(ls, 0);
    }
    if (!parse_value(t, t + n, 2, &v) || !v)
        return es_err_set(p->err, ES_ENOMEM, "fold: out of memory");
    return es_fold_member(p, m->key, m->klen, v);
}

/* The whole data object through es_json_decode (texts the scanner leaves). */
static int fold_decoded(const es_reducer *r, json_t *state, const es_event *ev, const json_t *where,
                        es_custom_fn fn, void *ud, es_err *err) {
    json_t *data = ev->data && ev->data_len ? es_json_decode(ev->data, ev->data_len, err) : json_object();
    int rc;
    if (!data)
        return es_err_set(err, ES_EINVALID, "fold: cannot decode the data of event '%s' at '%s' revision %lld",
                          ev->type, ev->stream ? ev->stream : "", (long long)ev->revision);
    rc = es_reducer_where_ok(where, data) ? es_reducer_fold_event(r, state, ev, data, fn, ud, err) : 1;
    json_decref(data);
    return rc;
}

/* fold_decoded sets "*" members in the state as it goes: the waiting
 * values are set first, so that none overwrites a newer one later. */
static int fold_decoded_now(const es_reducer *r, json_t *state, const es_event *ev, const json_t *where,
                            es_custom_fn fn, void *ud, last_set *ls, es_err *err) {
    int rc;
    if (ls && (rc = last_flush(ls, err)) != ES_OK) return rc;
    return fold_decoded(r, state, ev, where, fn, ud, err);
}

/* Folds one event when its data matches where (NULL: always): ES_OK, 1 when
 * it does not match, or an error. ls: "*" = last values may wait there
 * (NULL: every value is set at once). */
static int fold_text(const es_reducer *r, json_t *state, const es_event *ev, const json_t *where,
                     es_custom_fn fn, void *ud, last_set *ls, es_err *err) {
    member m[MAX_MEMBERS];
    json_t *vals[MAX_MEMBERS];
    es_fold_pass p;
    size_t n = 0, i, matched;
    int rc, end_rc, ok;

    if (!ev->data || !ev->data_len) return fold_decoded_now(r, state, ev, where, fn, ud, ls, err);
    if ((rc = es_fold_begin(&p, r, state, ev, fn, ud, err)) != ES_OK) return rc;
    /* every value is decoded, and where checked, before any is folded: a bad
     * value or a mismatch changes nothing */
    ok = ev->data_ix ? index_members(&p, ev, where, m, vals, &n, &matched, ls)
                     : scan_members(&p, ev->data, ev->data + ev->data_len, where, m, vals, &n, &matched, ls);
    if (!ok || (where && matched < json_object_size(where))) {
        for (i = 0; i < n; i++) json_decref(vals[i]);
        es_fold_end(&p, 0);
        return ok ? 1 : fold_decoded_now(r, state, ev, where, fn, ud, ls, err);
    }
    for (i = 0; i < n && rc == ES_OK; i++) {
        if (m[i].val) {
            rc = fold_last(&p, &m[i], ls);
        } else if (m[i].sum) {
            if (ls && sum_wait(&p, ls, &m[i])) continue;
            /* the state's sums must be current before the rule reads one */
            if (ls) sums_flush(ls, 1);
            if (!es_fold_sum_int(&p, m[i].key, m[i].klen, m[i].ival)) {
                json_t *v = json_integer(m[i].ival);
                rc = v ? es_fold_member(&p, m[i].key, m[i].klen, v)
                       : es_err_set(err, ES_ENOMEM, "fold: out of memory");
            }
        } else if (vals[i]) {
            if (ls && m[i].kind == ES_FOLD_SUM) sums_flush(ls, 1);
            rc = es_fold_member(&p, m[i].key, m[i].klen, vals[i]);
        }
    }
    while (i < n) json_decref(vals[i++]);
    end_rc = es_fold_end(&p, rc == ES_OK);
    return rc != ES_OK ? rc : end_rc;
}

int es_reducer_fold_cursor(const es_reducer *r, json_t *state, es_cursor *cur,
                           const json_t *where, es_custom_fn fn, void *ud, int64_t *count,
                           int64_t *last_revision, int64_t *last_position, es_err *err) {
    const es_event *ev;
    last_set ls;
    int64_t n = 0;
    int rc, flush_rc;

    ls.n = ls.nsums = 0;
    memset(ls.kinds, 0, sizeof ls.kinds);
    if (where && json_object_size(where) == 0) where = NULL;
    while ((rc = es_cursor_next(cur, &ev, err)) == 1) {
        /* with where, a "*" member where names is set by es_fold_member,
         * not fold_last: values wait only without it */
        if ((rc = fold_text(r, state, ev, where, fn, ud, where ? NULL : &ls, err)) == 1) continue;
        if (rc != ES_OK) break;
        n++;
        if (last_revision) *last_revision = ev->revision;
        if (last_position) *last_position = ev->position;
    }
    if (count) *count = n;
    /* on an error the state is dropped (and err keeps that error): the
     * waiting values are only freed */
    flush_rc = last_flush(&ls, rc < 0 ? NULL : err);
    return rc < 0 ? rc : flush_rc;
}

/* A fresh state: a deep copy of initial (folding changes the state in
 * place, and initial belongs to the caller), or {}. */
static json_t *initial_state(const json_t *initial, es_err *err) {
    json_t *st;
    if (initial && !json_is_object(initial)) {
        es_err_set(err, ES_EINVALID, "state: the initial state must be an object");
        return NULL;
    }
    st = initial ? json_deep_copy(initial) : json_object();
    if (!st) es_err_set(err, ES_ENOMEM, "state: out of memory");
    return st;
}

/* A snapshot's state, NULL when its text is not an object: the events it
 * summarizes are still there to fold. */
static json_t *snapshot_state(const es_snapshot *snap) {
    json_t *st = snap->data ? es_json_decode(snap->data, snap->data_len, NULL) : NULL;
    if (st && !json_is_object(st)) {
        json_decref(st);
        st = NULL;
    }
    return st;
}

/* The newest usable snapshot's state and revision; *state stays NULL when
 * there is none. */
static int load_snapshot(es_store *s, const char *stream, const char *fp, json_t **state,
                         int64_t *revision, es_err *err) {
    es_snapshot snap;
    int rc;
    *state = NULL;
    *revision = 0;
    /* asked without err: "none" is the usual answer, and formatting its
     * message was a tenth of a short stream's state(); a failure is asked
     * again for its message */
    rc = es_store_load_snapshot(s, stream, INT64_MAX, fp, &snap, NULL);
    if (rc == ES_ENOTFOUND || rc == ES_ENOTSUP) return ES_OK;
    if (rc != ES_OK) {
        rc = es_store_load_snapshot(s, stream, INT64_MAX, fp, &snap, err);
        if (rc == ES_ENOTFOUND || rc == ES_ENOTSUP) {
            es_err_clear(err);
            return ES_OK;
        }
        if (rc != ES_OK) return rc;
    }
    if ((*state = snapshot_state(&snap)) != NULL) *revision = snap.revision;
    es_snapshot_clear(&snap);
    return ES_OK;
}

/* The snapshot and a cursor over the events after it: in one call when the
 * backend offers it (a round trip fewer on a server), else a snapshot
 * lookup and a read. *cur is lean unless a custom rule needs whole events. */
static int open_state(es_store *s, const char *stream, const es_reducer *r, es_custom_fn fn,
                      const char *fp, json_t **state, int64_t *snap_rev, es_cursor **cur, es_err *err) {
    es_snapshot snap;
    es_query q;
    int lean = !fn || !es_reducer_has_custom(r), rc;
    *state = NULL;
    *snap_rev = 0;
    *cur = NULL;
    if (lean && es_store_has_read_state(s)) {
        rc = es_store_read_state(s, stream, fp, &snap, cur, err);
        if (rc == ES_OK) {
            *state = snapshot_state(&snap);
            if (*state) *snap_rev = snap.revision;
            rc = snap.data && !*state;      /* unusable: read from the start below */
            es_snapshot_clear(&snap);
            if (!rc) return ES_OK;
            es_cursor_close(*cur);
            *cur = NULL;
        } else if (rc != ES_ENOTSUP) {
            return rc;
        } else {
            es_err_clear(err);
            if ((rc = load_snapshot(s, stream, fp, state, snap_rev, err)) != ES_OK) return rc;
        }
    } else if ((rc = load_snapshot(s, stream, fp, state, snap_rev, err)) != ES_OK) {
        return rc;
    }
    es_query_init(&q, ES_Q_STREAM);
    q.stream = stream;
    q.from = *snap_rev + 1;
    /* a custom rule is handed the whole event */
    q.lean = lean;
    if ((rc = es_store_read(s, &q, cur, err)) != ES_OK) {
        json_decref(*state);
        *state = NULL;
    }
    return rc;
}

static int save_snapshot(es_store *s, const char *stream, const es_reducer *r, const char *fp,
                         const json_t *state, int64_t revision, es_err *err) {
    es_snapshot snap;
    es_err e;
    int rc;
    memset(&snap, 0, sizeof snap);
    if (!(snap.data = es_json_encode(state, &snap.data_len, err))) return err ? err->code : ES_ENOMEM;
    snap.stream = (char *)stream;
    snap.revision = revision;
    snap.version = es_reducer_user_version(r);
    snap.fingerprint = (char *)fp;
    snap.timestamp = es_now_ms();
    es_err_clear(&e);
    rc = es_store_save_snapshot(s, &snap, &e);
    es_free(snap.data);
    /* the state is right without the snapshot: only a real failure of the
     * store is worth reporting */
    if (rc == ES_EREADONLY || rc == ES_ENOTSUP || rc == ES_EBUSY || rc == ES_ECONFLICT) return ES_OK;
    if (rc != ES_OK && err) *err = e;
    return rc;
}

int es_store_state(es_store *s, const char *stream, const es_reducer *r, const json_t *initial,
                   es_custom_fn fn, void *ud, json_t **state_out, int64_t *revision_out,
                   es_err *err) {
    char fp[17];
    json_t *state = NULL;
    int64_t snap_rev, rev, count = 0, every = es_store_options(s)->snapshot_every;
    es_cursor *cur = NULL;
    int rc;

    *state_out = NULL;
    *revision_out = 0;
    if (initial && !json_is_object(initial))
        return es_err_set(err, ES_EINVALID, "state '%s': the initial state must be an object",
                          stream ? stream : "");
    if ((rc = es_reducer_state_fingerprint(r, initial, fp, err)) != ES_OK) return rc;
    if ((rc = open_state(s, stream, r, fn, fp, &state, &snap_rev, &cur, err)) != ES_OK) return rc;
    if (!state && !(state = initial_state(initial, err))) {
        es_cursor_close(cur);
        return err ? err->code : ES_ENOMEM;
    }
    rev = snap_rev;
    rc = es_reducer_fold_cursor(r, state, cur, NULL, fn, ud, &count, &rev, NULL, err);
    es_cursor_close(cur);
    if (rc != ES_OK) goto fail;
    if (every > 0 && count >= every &&
        (rc = save_snapshot(s, stream, r, fp, state, rev, err)) != ES_OK)
        goto fail;
    *state_out = state;
    *revision_out = rev;
    return ES_OK;
fail:
    json_decref(state);
    return rc;
}

int es_store_state_query(es_store *s, const char *category, const json_t *where,
                         const es_reducer *r, const json_t *initial, es_custom_fn fn, void *ud,
                         json_t **state_out, int64_t *position_out, es_err *err) {
    json_t *state;
    int64_t pos = 0;
    es_query q;
    es_cursor *cur = NULL;
    int rc;

    *state_out = NULL;
    *position_out = 0;
    if (where && !json_is_object(where))
        return es_err_set(err, ES_EINVALID, "state: 'where' must be an object");
    if (!(state = initial_state(initial, err))) return err ? err->code : ES_ENOMEM;
    es_query_init(&q, ES_Q_ALL);
    q.category = category;
    if ((rc = es_store_read(s, &q, &cur, err)) != ES_OK) goto fail;
    rc = es_reducer_fold_cursor(r, state, cur, where, fn, ud, NULL, NULL, &pos, err);
    es_cursor_close(cur);
    if (rc != ES_OK) goto fail;
    *state_out = state;
    *position_out = pos;
    return ES_OK;
fail:
    json_decref(state);
    return rc;
}
