/* reduce.c: compiling field rules into a reducer and folding events into a state object */
/* SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"
#include "reduce.h"

/* A compiled rule. target points into the reducer's name table. */
typedef struct rule {
    const char *target;
    size_t target_len;
    es_rule_kind kind;
    int src;                  /* index of the source field in the value slots; -1: none */
    const int *when;          /* type ids (into r->when_ids); nwhen 0 = any type */
    size_t nwhen;
    int has_scale, scale_int; /* scale_int: the scale is an integer */
    int64_t scale_i;
    double scale_d;
    int custom_id;
} rule;

/* A field name or an event type, in an open-addressing table. */
typedef struct name_ent {
    char *name;               /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    int id;                   /* names: source slot or -1; types: type id */
    int target;               /* names: some rule targets this field */
    int sum_rule;             /* names: the one rule reading and writing this field is a plain
                               * sum (no when, no scale): its index in rules; else -1 */
} name_ent;

typedef struct name_tab {
    name_ent *slot;
    size_t cap;               /* a power of two, at least twice the entries */
} name_tab;

struct es_reducer {
    rule *rules;              /* sorted by target, spec order kept within a target */
    size_t nrules;
    rule star;                /* the "*" rule; ES_RULE_LAST when none was given */
    size_t nsrc;
    name_tab names, types;
    size_t ntypes;
    int *when_ids;
    int has_custom;
    int64_t user_version;
    char fp[17];
};

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL
#define STACK_SLOTS 32

static uint64_t fnv_add(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    while (n--) {
        h ^= *s++;
        h *= FNV_PRIME;
    }
    return h;
}

static const char *const kind_names[] = {
    "last", "first", "sum", "min", "max", "count", "append", "union", "merge", "drop",
    "custom", "types"
};

const char *es_rule_kind_name(es_rule_kind kind) {
    if ((int)kind < 0 || kind > ES_RULE_TYPES) return "unknown";
    return kind_names[kind];
}

int es_rule_kind_parse(const char *name, es_rule_kind *out) {
    int k;
    for (k = 0; name && k <= ES_RULE_DROP; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (es_rule_kind)k;
            return ES_OK;
        }
    return ES_EINVALID;
}

/* ---- name tables ---- */

static int tab_init(name_tab *t, size_t entries) {
    size_t cap = 8;
    while (cap < entries * 2 + 2) {
        if (cap > SIZE_MAX / 2 / sizeof *t->slot) return ES_ENOMEM;
        cap *= 2;
    }
    t->slot = es_malloc(cap * sizeof *t->slot);
    if (!t->slot) return ES_ENOMEM;
    memset(t->slot, 0, cap * sizeof *t->slot);
    t->cap = cap;
    return ES_OK;
}

static void tab_free(name_tab *t) {
    size_t i;
    for (i = 0; i < t->cap; i++) es_free(t->slot[i].name);
    es_free(t->slot);
    t->slot = NULL;
    t->cap = 0;
}

static const name_ent *tab_find(const name_tab *t, const char *k, size_t n) {
    uint64_t h = fnv_add(FNV_OFFSET, k, n);
    size_t i, mask = t->cap - 1;
    for (i = (size_t)h & mask; t->slot[i].name; i = (i + 1) & mask)
        if (t->slot[i].hash == h && t->slot[i].len == n && memcmp(t->slot[i].name, k, n) == 0)
            return &t->slot[i];
    return NULL;
}

/* Finds or adds k; *added says which. The table never fills: tab_init sized
 * it for every name the specs can hold. */
static name_ent *tab_put(name_tab *t, const char *k, int *added) {
    size_t n = strlen(k), i, mask = t->cap - 1;
    uint64_t h = fnv_add(FNV_OFFSET, k, n);
    *added = 0;
    for (i = (size_t)h & mask; t->slot[i].name; i = (i + 1) & mask)
        if (t->slot[i].hash == h && t->slot[i].len == n && memcmp(t->slot[i].name, k, n) == 0)
            return &t->slot[i];
    if (!(t->slot[i].name = es_strndup(k, n))) return NULL;
    t->slot[i].len = n;
    t->slot[i].hash = h;
    t->slot[i].id = -1;
    t->slot[i].target = 0;
    t->slot[i].sum_rule = -1;
    *added = 1;
    return &t->slot[i];
}

/* ---- compiling ---- */

static int is_star(const char *field) { return strcmp(field, ES_RULE_DEFAULT_FIELD) == 0; }

static int check_spec(const es_rule_spec *sp, size_t i, es_err *err) {
    const char *f = sp->field;
    es_rule_kind k = sp->kind;
    size_t j;
    if (!f || !*f) return es_err_set(err, ES_EINVALID, "reducer: rule %zu has no field name", i + 1);
    if (!es_valid_utf8(f, strlen(f)))
        return es_err_set(err, ES_EINVALID, "reducer: rule %zu: field name is not valid UTF-8", i + 1);
    if ((int)k < 0 || k > ES_RULE_TYPES)
        return es_err_set(err, ES_EINVALID, "reducer: field '%s': unknown rule kind %d", f, (int)k);
    if (is_star(f) && k == ES_RULE_TYPES)
        return es_err_set(err, ES_EINVALID, "reducer: field '*': types needs a field name");
    if (sp->from) {
        if (is_star(f))
            return es_err_set(err, ES_EINVALID, "reducer: field '*': the default rule takes no 'from'");
        if (k == ES_RULE_DROP || k == ES_RULE_TYPES)
            return es_err_set(err, ES_EINVALID, "reducer: field '%s': %s takes no 'from'", f,
                              kind_names[k]);
        if (!*sp->from || !es_valid_utf8(sp->from, strlen(sp->from)))
            return es_err_set(err, ES_EINVALID,
                              "reducer: field '%s': 'from' must be a non-empty UTF-8 field name", f);
    }
    if (sp->nwhen) {
        if (!sp->when)
            return es_err_set(err, ES_EINVALID, "reducer: field '%s': 'when' list is missing", f);
        if (k == ES_RULE_DROP)
            return es_err_set(err, ES_EINVALID, "reducer: field '%s': drop takes no 'when'", f);
        for (j = 0; j < sp->nwhen; j++)
            if (!sp->when[j] || !*sp->when[j])
                return es_err_set(err, ES_EINVALID,
                                  "reducer: field '%s': 'when' has an empty event type", f);
    }
    if (sp->scale) {
        if (!json_is_number(sp->scale))
            return es_err_set(err, ES_EINVALID, "reducer: field '%s': scale must be a number", f);
        if (k != ES_RULE_SUM && k != ES_RULE_MIN && k != ES_RULE_MAX)
            return es_err_set(err, ES_EINVALID,
                              "reducer: field '%s': scale applies to sum, min and max, not %s", f,
                              kind_names[k]);
    }
    return ES_OK;
}

/* Stable order: by target name, then by position in the specs. */
static void sort_specs(const es_rule_spec *specs, size_t *idx, size_t n) {
    size_t i, j;
    for (i = 1; i < n; i++) {
        size_t v = idx[i];
        for (j = i; j > 0 && strcmp(specs[idx[j - 1]].field, specs[v].field) > 0; j--)
            idx[j] = idx[j - 1];
        idx[j] = v;
    }
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint64_t fnv_str(uint64_t h, const char *s) { return fnv_add(h, s, strlen(s) + 1); }

/* Adds one rule's canonical form: kind, target, effective source, the sorted
 * distinct `when` types, the scale. scratch holds at least sp->nwhen pointers. */
static uint64_t fp_rule(uint64_t h, const es_rule_spec *sp, const char **scratch) {
    char num[64];
    size_t j;
    h = fnv_str(h, kind_names[sp->kind]);
    h = fnv_str(h, sp->field);
    h = fnv_str(h, sp->from && strcmp(sp->from, sp->field) != 0 ? sp->from : "");
    if (sp->nwhen) {
        memcpy(scratch, sp->when, sp->nwhen * sizeof *scratch);
        qsort(scratch, sp->nwhen, sizeof *scratch, cmp_str);
    }
    for (j = 0; j < sp->nwhen; j++)
        if (j == 0 || strcmp(scratch[j], scratch[j - 1]) != 0) h = fnv_str(h, scratch[j]);
    h = fnv_str(h, "|");
    if (!sp->scale)
        snprintf(num, sizeof num, "-");
    else if (json_is_integer(sp->scale))
        snprintf(num, sizeof num, "i%lld", (long long)json_integer_value(sp->scale));
    else
        snprintf(num, sizeof num, "r%.17g", json_real_value(sp->scale));
    return fnv_str(h, num);
}

static void compile_scale(rule *ru, const json_t *scale) {
    ru->has_scale = scale != NULL;
    if (!scale) return;
    ru->scale_int = json_is_integer(scale);
    ru->scale_i = ru->scale_int ? json_integer_value(scale) : 0;
    ru->scale_d = ru->scale_int ? (double)ru->scale_i : json_real_value(scale);
}

/* Fills a rule from a validated spec; names and types are in their tables. */
static void compile_rule(es_reducer *r, rule *ru, const es_rule_spec *sp, int **when_next) {
    const name_ent *e;
    size_t j;
    memset(ru, 0, sizeof *ru);
    ru->kind = sp->kind;
    ru->custom_id = sp->custom_id;
    ru->src = -1;
    if (!is_star(sp->field)) {
        e = tab_find(&r->names, sp->field, strlen(sp->field));
        ru->target = e->name;
        ru->target_len = e->len;
        if (sp->kind != ES_RULE_DROP && sp->kind != ES_RULE_TYPES) {
            const char *from = sp->from ? sp->from : sp->field;
            ru->src = tab_find(&r->names, from, strlen(from))->id;
        }
    }
    ru->when = *when_next;
    ru->nwhen = sp->nwhen;
    for (j = 0; j < sp->nwhen; j++)
        (*when_next)[j] = tab_find(&r->types, sp->when[j], strlen(sp->when[j]))->id;
    *when_next += sp->nwhen;
    compile_scale(ru, sp->scale);
    if (sp->kind == ES_RULE_CUSTOM) r->has_custom = 1;
}

/* Marks the fields whose value feeds exactly one rule, a plain sum into
 * the same field that no other rule targets: es_fold_sum_int may add an
 * integer to such a field in place. The field is a target, so "*" never
 * applies to it either. */
static void mark_sum_rules(es_reducer *r) {
    size_t i, j;
    for (i = 0; i < r->nrules; i++) {
        const rule *ru = &r->rules[i];
        name_ent *e;
        int alone = 1;
        if (ru->kind != ES_RULE_SUM || ru->nwhen || ru->has_scale || ru->src < 0) continue;
        e = (name_ent *)tab_find(&r->names, ru->target, ru->target_len);
        if (!e || e->id != ru->src) continue;
        for (j = 0; j < r->nrules && alone; j++)
            if (j != i && (r->rules[j].src == ru->src || r->rules[j].target == ru->target)) alone = 0;
        if (alone) e->sum_rule = (int)i;
    }
}

int es_reducer_new(const es_rule_spec *specs, size_t n, int64_t user_version,
                   es_reducer **out, es_err *err) {
    es_reducer *r = NULL;
    size_t *idx = NULL, i, j, nwhen = 0, nstar = 0, star_i = 0, maxwhen = 0;
    const char **scratch = NULL;
    int *when_next, added, rc;
    uint64_t h;
    char ver[32];

    *out = NULL;
    if (n && !specs) return es_err_set(err, ES_EINVALID, "reducer: rule list is missing");
    for (i = 0; i < n; i++) {
        if ((rc = check_spec(&specs[i], i, err)) != ES_OK) return rc;
        if (is_star(specs[i].field)) {
            if (nstar++) return es_err_set(err, ES_EINVALID, "reducer: field '*' has more than one rule");
            star_i = i;
        }
        if (specs[i].nwhen > SIZE_MAX / 4 - nwhen)
            return es_err_set(err, ES_EINVALID, "reducer: too many 'when' types");
        nwhen += specs[i].nwhen;
        if (specs[i].nwhen > maxwhen) maxwhen = specs[i].nwhen;
    }
    if (n > SIZE_MAX / 4 / sizeof(rule) || nwhen > SIZE_MAX / sizeof(int) - 1)
        return es_err_set(err, ES_ENOMEM, "reducer: too many rules");
    if (!(r = es_malloc(sizeof *r))) return es_err_set(err, ES_ENOMEM, "reducer: out of memory");
    memset(r, 0, sizeof *r);
    r->user_version = user_version;
    if (!(idx = es_malloc((n + 1) * sizeof *idx))) goto nomem;
    if (!(scratch = es_malloc((maxwhen + 1) * sizeof *scratch))) goto nomem;
    if (!(r->when_ids = es_malloc((nwhen + 1) * sizeof *r->when_ids))) goto nomem;
    if (!(r->rules = es_malloc((n + 1) * sizeof *r->rules))) goto nomem;
    if (tab_init(&r->names, 2 * n) != ES_OK || tab_init(&r->types, nwhen) != ES_OK) goto nomem;

    for (i = 0; i < n; i++) idx[i] = i;
    sort_specs(specs, idx, n);
    /* drop and types own their target: mixing them with other rules has no
     * meaning a user could rely on */
    for (i = 0; i < n; i = j) {
        int exclusive = 0;
        for (j = i; j < n && strcmp(specs[idx[j]].field, specs[idx[i]].field) == 0; j++) {
            es_rule_kind k = specs[idx[j]].kind;
            if (k == ES_RULE_DROP || k == ES_RULE_TYPES) exclusive = 1 + (int)k;
        }
        if (exclusive && j - i > 1) {
            rc = es_err_set(err, ES_EINVALID, "reducer: field '%s': %s cannot be combined with other rules",
                            specs[idx[i]].field, kind_names[exclusive - 1]);
            goto fail;
        }
    }

    /* Targets first, then sources, so every name has its flags before any
     * rule looks it up. */
    for (i = 0; i < n; i++) {
        const es_rule_spec *sp = &specs[i];
        name_ent *e;
        if (is_star(sp->field)) continue;
        if (!(e = tab_put(&r->names, sp->field, &added))) goto nomem;
        e->target = 1;
    }
    for (i = 0; i < n; i++) {
        const es_rule_spec *sp = &specs[idx[i]];
        name_ent *e;
        if (is_star(sp->field) || sp->kind == ES_RULE_DROP || sp->kind == ES_RULE_TYPES) continue;
        if (!(e = tab_put(&r->names, sp->from ? sp->from : sp->field, &added))) goto nomem;
        if (e->id < 0) e->id = (int)r->nsrc++;
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < specs[i].nwhen; j++) {
            name_ent *e = tab_put(&r->types, specs[i].when[j], &added);
            if (!e) goto nomem;
            if (added) e->id = (int)r->ntypes++;
        }

    when_next = r->when_ids;
    r->star.kind = ES_RULE_LAST;
    h = fnv_str(FNV_OFFSET, "eventstore-reducer-1");
    if (nstar) {
        compile_rule(r, &r->star, &specs[star_i], &when_next);
        h = fp_rule(h, &specs[star_i], scratch);
    } else {
        es_rule_spec def;
        memset(&def, 0, sizeof def);
        def.field = ES_RULE_DEFAULT_FIELD;
        def.kind = ES_RULE_LAST;
        h = fp_rule(h, &def, scratch);
    }
    for (i = 0; i < n; i++) {
        const es_rule_spec *sp = &specs[idx[i]];
        if (is_star(sp->field)) continue;
        compile_rule(r, &r->rules[r->nrules++], sp, &when_next);
        h = fp_rule(h, sp, scratch);
    }
    mark_sum_rules(r);
    snprintf(ver, sizeof ver, "v%lld", (long long)user_version);
    h = fnv_str(h, ver);
    snprintf(r->fp, sizeof r->fp, "%016llx", (unsigned long long)h);
    es_free(idx);
    es_free(scratch);
    *out = r;
    return ES_OK;
nomem:
    rc = es_err_set(err, ES_ENOMEM, "reducer: out of memory");
fail:
    es_free(idx);
    es_free(scratch);
    es_reducer_free(r);
    return rc;
}

void es_reducer_free(es_reducer *r) {
    if (!r) return;
    tab_free(&r->names);
    tab_free(&r->types);
    es_free(r->rules);
    es_free(r->when_ids);
    es_free(r);
}

const char *es_reducer_fingerprint(const es_reducer *r) { return r->fp; }
int64_t es_reducer_user_version(const es_reducer *r) { return r->user_version; }
int es_reducer_has_custom(const es_reducer *r) { return r->has_custom || r->star.kind == ES_RULE_CUSTOM; }

int es_reducer_state_fingerprint(const es_reducer *r, const json_t *initial, char out[17],
                                 es_err *err) {
    char *text;
    size_t n;
    uint64_t h;
    if (!initial || (json_is_object(initial) && json_object_size(initial) == 0)) {
        memcpy(out, r->fp, sizeof r->fp);
        return ES_OK;
    }
    /* sorted keys: the same initial state always hashes the same */
    text = json_dumps(initial, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (!text) return es_err_set(err, ES_ENOMEM, "state: cannot encode the initial state");
    n = strlen(text);
    h = fnv_str(FNV_OFFSET, r->fp);
    h = fnv_add(h, text, n);
    /* json_dumps allocates through jansson's allocator: malloc, or es_malloc
     * once json.c has installed it; free() releases either */
    free(text);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return ES_OK;
}

/* ---- folding ---- */

/* Describes the event for error messages. */
static const char *ev_desc(const es_event *ev, char *buf, size_t size) {
    if (ev->stream)
        snprintf(buf, size, "event '%s' at '%s' revision %lld", ev->type, ev->stream,
                 (long long)ev->revision);
    else
        snprintf(buf, size, "event '%s'", ev->type);
    return buf;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* A pass is what every rule application needs besides the rule itself. */
typedef es_fold_pass fold_ctx;

static int bad_value(fold_ctx *c, const char *target, const char *what, const json_t *v) {
    char buf[160];
    return es_err_set(c->err, ES_EINVALID, "fold: field '%s': %s %s (%s)", target, what,
                      type_name(v), ev_desc(c->ev, buf, sizeof buf));
}

static int nomem(fold_ctx *c) { return es_err_set(c->err, ES_ENOMEM, "fold: out of memory"); }

/* Takes the reference to v (jansson frees it on failure). */
static int set_new(fold_ctx *c, json_t *obj, const char *k, size_t kl, json_t *v) {
    if (!v || json_object_setn_new_nocheck(obj, k, kl, v) != 0) return nomem(c);
    return ES_OK;
}

static int set_ref(fold_ctx *c, json_t *obj, const char *k, size_t kl, const json_t *v) {
    return set_new(c, obj, k, kl, json_incref((json_t *)v));
}

/* Stores n under the target, in place when the state holds the only
 * reference to a number of the same kind (no allocation per event). */
static int store_num(fold_ctx *c, const rule *ru, json_t *acc, const es_num *n) {
    if (n->is_int) {
        if (acc && acc->refcount == 1 && json_is_integer(acc)) return json_integer_set(acc, n->i), ES_OK;
        return set_new(c, c->state, ru->target, ru->target_len, json_integer(n->i));
    }
    if (!isfinite(n->d)) {
        char buf[160];
        return es_err_set(c->err, ES_EINVALID, "fold: field '%s': the result is not a finite number (%s)",
                          ru->target, ev_desc(c->ev, buf, sizeof buf));
    }
    if (acc && acc->refcount == 1 && json_is_real(acc)) return json_real_set(acc, n->d), ES_OK;
    return set_new(c, c->state, ru->target, ru->target_len, json_real(n->d));
}

static void scale_num(const rule *ru, es_num *n) {
    if (ru->has_scale) es_num_mul(n, ru->scale_int, ru->scale_i, ru->scale_d);
}

static int apply_sum(fold_ctx *c, const rule *ru, json_t *acc, const json_t *v) {
    es_num a, b;
    if (ru->kind == ES_RULE_COUNT) {
        b.is_int = 1;
        b.i = 1;
        b.d = 1.0;
    } else {
        if (!es_num_of(v, &b)) return bad_value(c, ru->target, "cannot sum a", v);
        if (!acc && !ru->has_scale) return set_ref(c, c->state, ru->target, ru->target_len, v);
        scale_num(ru, &b);
    }
    if (!acc) return store_num(c, ru, NULL, &b);
    if (!es_num_of(acc, &a))
        return bad_value(c, ru->target,
                         ru->kind == ES_RULE_COUNT ? "cannot count into a" : "cannot sum into a", acc);
    es_num_add(&a, &b);
    return store_num(c, ru, acc, &a);
}

static int apply_minmax(fold_ctx *c, const rule *ru, json_t *acc, const json_t *v) {
    es_num a, b;
    int cmp;
    if (json_is_string(v) && !ru->has_scale) {
        size_t la, lb;
        if (!acc) return set_ref(c, c->state, ru->target, ru->target_len, v);
        if (!json_is_string(acc)) return bad_value(c, ru->target, "cannot compare a string with a", acc);
        la = json_string_length(acc);
        lb = json_string_length(v);
        cmp = memcmp(json_string_value(v), json_string_value(acc), la < lb ? la : lb);
        if (cmp == 0) cmp = lb < la ? -1 : lb > la;
        if ((ru->kind == ES_RULE_MIN && cmp < 0) || (ru->kind == ES_RULE_MAX && cmp > 0))
            return set_ref(c, c->state, ru->target, ru->target_len, v);
        return ES_OK;
    }
    if (!es_num_of(v, &b))
        return bad_value(c, ru->target, ru->has_scale ? "cannot scale a" : "cannot compare a", v);
    if (acc && !es_num_of(acc, &a)) return bad_value(c, ru->target, "cannot compare a number with a", acc);
    scale_num(ru, &b);
    if (acc) {
        cmp = es_num_cmp(&b, &a);
        if (!((ru->kind == ES_RULE_MIN && cmp < 0) || (ru->kind == ES_RULE_MAX && cmp > 0))) return ES_OK;
    }
    if (!ru->has_scale) return set_ref(c, c->state, ru->target, ru->target_len, v);
    return store_num(c, ru, NULL, &b);
}

/* The target as an array the state alone holds, created or copied as
 * needed: absent, null or {} start empty (an empty Lua table is an object),
 * another array is copied only when shared, anything else becomes [acc]. */
static json_t *own_array(fold_ctx *c, json_t *obj, const char *k, size_t kl, json_t *acc) {
    json_t *a;
    if (acc && json_is_array(acc) && acc->refcount == 1) return acc;
    if (acc && json_is_array(acc)) {
        a = json_copy(acc);
    } else {
        a = json_array();
        if (a && acc && !json_is_null(acc) && !(json_is_object(acc) && json_object_size(acc) == 0) &&
            json_array_append(a, acc) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    if (set_new(c, obj, k, kl, a) != ES_OK) return NULL;
    return a;
}

static int contains(const json_t *arr, const json_t *v) {
    size_t i, n = json_array_size(arr);
    for (i = 0; i < n; i++)
        if (json_equal(json_array_get(arr, i), v)) return 1;
    return 0;
}

static int add_item(fold_ctx *c, json_t *arr, const json_t *v, int distinct) {
    if (distinct && contains(arr, v)) return ES_OK;
    return json_array_append(arr, (json_t *)v) == 0 ? ES_OK : nomem(c);
}

static int apply_append(fold_ctx *c, const rule *ru, json_t *acc, const json_t *v) {
    int distinct = ru->kind == ES_RULE_UNION, rc;
    json_t *arr = own_array(c, c->state, ru->target, ru->target_len, acc);
    size_t i, n;
    if (!arr) return c->err ? c->err->code : ES_ENOMEM;
    if (!json_is_array(v)) return add_item(c, arr, v, distinct);
    if (v == arr) return ES_OK;
    n = json_array_size(v);
    for (i = 0; i < n; i++)
        if ((rc = add_item(c, arr, json_array_get(v, i), distinct)) != ES_OK) return rc;
    return ES_OK;
}

/* Deep merge of v into obj[k]: objects merge key by key, anything else
 * replaces. An object is changed in place only when held once (a shared
 * one is copied shallowly: its children are then shared and copied in turn
 * when the recursion reaches them). */
static int merge_into(fold_ctx *c, json_t *obj, const char *k, size_t kl, const json_t *v) {
    json_t *cur = json_object_getn(obj, k, kl);
    void *it;
    int rc;
    if (!cur || !json_is_object(cur) || !json_is_object(v)) return set_ref(c, obj, k, kl, v);
    if (cur == v) return ES_OK;
    if (cur->refcount > 1) {
        json_t *copy = json_copy(cur);
        if ((rc = set_new(c, obj, k, kl, copy)) != ES_OK) return rc;
        cur = copy;
    }
    for (it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
        rc = merge_into(c, cur, json_object_iter_key(it), json_object_iter_key_len(it),
                        json_object_iter_value(it));
        if (rc != ES_OK) return rc;
    }
    return ES_OK;
}

static int apply_custom(fold_ctx *c, const rule *ru, json_t *acc, const json_t *v) {
    json_t *a = json_incref(acc);
    int rc;
    if (!c->fn) {
        json_decref(a);
        return es_err_set(c->err, ES_EINVALID, "fold: field '%s': custom rule without a callback",
                          ru->target);
    }
    rc = c->fn(c->ud, ru->custom_id, ru->target, &a, v, c->ev, c->err);
    if (rc != ES_OK) {
        json_decref(a);
        return rc;
    }
    if (a == acc) {
        json_decref(a);
        return ES_OK;
    }
    if (!a) {
        json_object_deln(c->state, ru->target, ru->target_len);
        return ES_OK;
    }
    return set_new(c, c->state, ru->target, ru->target_len, a);
}

static int apply(fold_ctx *c, const rule *ru, const json_t *v) {
    json_t *acc = json_object_getn(c->state, ru->target, ru->target_len);
    switch (ru->kind) {
    case ES_RULE_LAST:
        return acc == v ? ES_OK : set_ref(c, c->state, ru->target, ru->target_len, v);
    case ES_RULE_FIRST:
        return acc ? ES_OK : set_ref(c, c->state, ru->target, ru->target_len, v);
    case ES_RULE_SUM:
    case ES_RULE_COUNT:
        return apply_sum(c, ru, acc, v);
    case ES_RULE_MIN:
    case ES_RULE_MAX:
        return apply_minmax(c, ru, acc, v);
    case ES_RULE_APPEND:
    case ES_RULE_UNION:
        return apply_append(c, ru, acc, v);
    case ES_RULE_MERGE:
        return merge_into(c, c->state, ru->target, ru->target_len, v);
    case ES_RULE_CUSTOM:
        return apply_custom(c, ru, acc, v);
    default:
        return ES_OK;
    }
}

static int apply_types(fold_ctx *c, const rule *ru) {
    json_t *acc = json_object_getn(c->state, ru->target, ru->target_len);
    json_t *arr = own_array(c, c->state, ru->target, ru->target_len, acc);
    json_t *t;
    if (!arr) return c->err ? c->err->code : ES_ENOMEM;
    if (!(t = json_string_nocheck(c->ev->type))) return nomem(c);
    return json_array_append_new(arr, t) == 0 ? ES_OK : nomem(c);
}

static int when_ok(const rule *ru, int tid) {
    size_t i;
    if (!ru->nwhen) return 1;
    for (i = 0; i < ru->nwhen; i++)
        if (ru->when[i] == tid) return 1;
    return 0;
}

/* Values that rules read wait in their slots, unnamed fields go through "*"
 * at once; es_fold_end then runs the named rules in their compiled order,
 * so the result does not depend on key order. */
static int pass_begin(es_fold_pass *p, const es_reducer *r, json_t *state, const es_event *ev,
                      int owns, es_custom_fn fn, void *ud, es_err *err) {
    p->r = r;
    p->state = state;
    p->ev = ev;
    p->fn = fn;
    p->ud = ud;
    p->err = err;
    p->owns = owns;
    p->tid = -1;
    p->vals = p->stack_vals;
    if (!json_is_object(state)) return es_err_set(err, ES_EINVALID, "fold: state is not an object");
    if (!ev->type || !*ev->type) return es_err_set(err, ES_EINVALID, "fold: event has no type");
    if (!es_valid_utf8(ev->type, strlen(ev->type)))
        return es_err_set(err, ES_EINVALID, "fold: event type is not valid UTF-8");
    if (r->ntypes) {
        const name_ent *e = tab_find(&r->types, ev->type, strlen(ev->type));
        if (e) p->tid = e->id;
    }
    if (r->nsrc > STACK_SLOTS && !(p->vals = es_malloc(r->nsrc * sizeof *p->vals))) return nomem(p);
    if (r->nsrc) memset((void *)p->vals, 0, r->nsrc * sizeof *p->vals);
    p->star_ok = r->star.kind != ES_RULE_DROP && when_ok(&r->star, p->tid);
    return ES_OK;
}

int es_fold_begin(es_fold_pass *p, const es_reducer *r, json_t *state, const es_event *ev,
                  es_custom_fn fn, void *ud, es_err *err) {
    return pass_begin(p, r, state, ev, 1, fn, ud, err);
}

static const name_ent *member_ent(const es_reducer *r, const char *k, size_t kl) {
    return r->nsrc || r->nrules ? tab_find(&r->names, k, kl) : NULL;
}

int es_fold_wants(const es_fold_pass *p, const char *key, size_t klen) {
    return es_fold_member_kind(p, key, klen) != ES_FOLD_SKIP;
}

int es_fold_member_kind(const es_fold_pass *p, const char *key, size_t klen) {
    const name_ent *e = member_ent(p->r, key, klen);
    if (e && e->id >= 0) return e->sum_rule >= 0 ? ES_FOLD_SUM : ES_FOLD_VALUE;
    if (!p->star_ok || (e && e->target)) return ES_FOLD_SKIP;
    return p->r->star.kind == ES_RULE_LAST ? ES_FOLD_STAR_LAST : ES_FOLD_VALUE;
}

int es_fold_sum_int(es_fold_pass *p, const char *key, size_t klen, int64_t v) {
    const name_ent *e = member_ent(p->r, key, klen);
    const rule *ru;
    json_t *acc;
    int64_t a;
    if (!e || e->sum_rule < 0) return 0;
    ru = &p->r->rules[e->sum_rule];
    acc = json_object_getn(p->state, ru->target, ru->target_len);
    if (!acc || acc->refcount != 1 || !json_is_integer(acc)) return 0;
    a = json_integer_value(acc);
    if ((v > 0 && a > INT64_MAX - v) || (v < 0 && a < INT64_MIN - v)) return 0;
    json_integer_set(acc, a + v);
    return 1;
}

/* In an owning pass v is a new reference: kept in its slot until
 * es_fold_end, or released here. */
static int pass_member(es_fold_pass *p, const char *k, size_t kl, const json_t *v) {
    const name_ent *e = member_ent(p->r, k, kl);
    int rc = ES_OK, kept = 0;
    if (e && e->id >= 0) {
        if (p->owns) json_decref((json_t *)p->vals[e->id]);
        p->vals[e->id] = v;
        kept = 1;
    }
    if (p->star_ok && (!e || !e->target)) {
        /* the key may point into stored JSON text (state.c's text path):
         * rules and callbacks need it NUL-terminated */
        rule star = p->r->star;
        char small[128], *name = small;
        if (kl >= sizeof small && !(name = es_malloc(kl + 1))) {
            rc = es_err_set(p->err, ES_ENOMEM, "fold: out of memory");
        } else {
            memcpy(name, k, kl);
            name[kl] = '\0';
            star.target = name;
            star.target_len = kl;
            rc = apply(p, &star, v);
            if (name != small) es_free(name);
        }
    }
    if (p->owns && !kept) json_decref((json_t *)v);
    return rc;
}

int es_fold_member(es_fold_pass *p, const char *key, size_t klen, json_t *v) {
    return pass_member(p, key, klen, v);
}

int es_fold_end(es_fold_pass *p, int ok) {
    const es_reducer *r = p->r;
    int rc = ES_OK;
    size_t i;
    for (i = 0; ok && i < r->nrules; i++) {
        const rule *ru = &r->rules[i];
        if (ru->kind == ES_RULE_TYPES) {
            if (when_ok(ru, p->tid) && (rc = apply_types(p, ru)) != ES_OK) break;
        } else if (ru->src >= 0 && p->vals[ru->src] && when_ok(ru, p->tid)) {
            if ((rc = apply(p, ru, p->vals[ru->src])) != ES_OK) break;
        }
    }
    if (p->owns)
        for (i = 0; i < r->nsrc; i++) json_decref((json_t *)p->vals[i]);
    if (p->vals != p->stack_vals) es_free((void *)p->vals);
    p->vals = p->stack_vals;
    return rc;
}

static int fold_data(es_fold_pass *p, const json_t *data) {
    void *it;
    int rc = ES_OK, end_rc;
    if (!json_is_object(data)) rc = es_err_set(p->err, ES_EINVALID, "fold: event data is not an object");
    else if (p->state == data) rc = es_err_set(p->err, ES_EINVALID, "fold: state and data are the same object");
    it = rc ? NULL : json_object_iter((json_t *)data);
    for (; it; it = json_object_iter_next((json_t *)data, it))
        if ((rc = pass_member(p, json_object_iter_key(it), json_object_iter_key_len(it),
                              json_object_iter_value(it))) != ES_OK)
            break;
    end_rc = es_fold_end(p, rc == ES_OK);
    return rc != ES_OK ? rc : end_rc;
}

int es_reducer_fold_event(const es_reducer *r, json_t *state, const es_event *ev,
                          const json_t *data, es_custom_fn fn, void *ud, es_err *err) {
    es_fold_pass p;
    json_t *own = NULL;
    int rc;
    if ((rc = pass_begin(&p, r, state, ev, 0, fn, ud, err)) != ES_OK) return rc;
    if (!data) {
        /* omitted data reads as {} */
        own = ev->data && ev->data_len ? es_json_decode(ev->data, ev->data_len, err) : json_object();
        if (!own) {
            char buf[160];
            es_fold_end(&p, 0);
            return es_err_set(err, ES_EINVALID, "fold: cannot decode the data of %s",
                              ev_desc(ev, buf, sizeof buf));
        }
        data = own;
    }
    rc = fold_data(&p, data);
    json_decref(own);
    return rc;
}

int es_reducer_fold_json(const es_reducer *r, json_t *state, const char *type,
                         const json_t *data, es_custom_fn fn, void *ud, es_err *err) {
    es_event stub;
    memset(&stub, 0, sizeof stub);
    stub.type = type;
    return es_reducer_fold_event(r, state, &stub, data, fn, ud, err);
}

int es_reducer_where_ok(const json_t *where, const json_t *data) {
    void *it;
    if (!where) return 1;
    for (it = json_object_iter((json_t *)where); it; it = json_object_iter_next((json_t *)where, it)) {
        const json_t *v = json_object_getn(data, json_object_iter_key(it), json_object_iter_key_len(it));
        if (!v || !json_equal(v, json_object_iter_value(it))) return 0;
    }
    return 1;
}
