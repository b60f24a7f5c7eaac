/* reduce.h: the field-aggregating reducer: rule specs, compiled reducers, folding state in C */
/* SPDX-License-Identifier: MIT */
#ifndef ES_REDUCE_H
#define ES_REDUCE_H

#include <string.h>

#include "es_internal.h"
#include "eventstore.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A reducer folds events into a state object, field by field:
 *  - a rule reads its source field (`from`, default: its target field) from
 *    the event's data and acts only on events that carry that field and, with
 *    a `when` list, whose type is in the list;
 *  - a data field that no rule targets goes through the "*" rule (default
 *    ES_RULE_LAST: copy/overwrite). A field read through `from` but not
 *    targeted by any rule is such an unnamed field, so "*" = last copies it too;
 *    use "*" = drop to keep only the named fields;
 *  - a target may have several rules; they act in the order given;
 *  - "*" never touches a field that some rule targets (drop and types too),
 *    even when no rule reads that field.
 * Kinds (acc = the state's current value of the target, v = the event's value):
 *  last    acc = v
 *  first   acc = v only when the state has no such field yet
 *  sum     acc + v*scale; integers stay int64 integers, int64 overflow turns
 *          the result into a real (double), any real operand gives a real;
 *          a non-number (v or acc) is ES_EINVALID naming the field and event
 *  min/max numbers compared exactly (int and real mixed), or two strings
 *          compared bytewise; anything else is ES_EINVALID; ties keep acc
 *  count   acc + 1 (an integer) per event that carries the field
 *  append  acc is made an array (absent, null or {} -> [], anything else -> [acc]);
 *          an array v is concatenated, any other v appended
 *  union   as append, skipping values json_equal to one already there
 *  merge   objects merged deeply (last wins on leaves); anything else replaces
 *  drop    the field is never copied into the state
 *  custom  the es_custom_fn callback computes acc (not called when v is absent)
 *  types   the target lists, in order, the type of every folded event
 *          (that matches `when`), whatever fields the event carries
 * Values put into the state are shared by reference (json_incref); a value
 * is only changed in place while the state holds its sole reference
 * (refcount 1), otherwise it is copied first, so caller data is never changed.
 */
typedef enum es_rule_kind {
    ES_RULE_LAST = 0,
    ES_RULE_FIRST,
    ES_RULE_SUM,
    ES_RULE_MIN,
    ES_RULE_MAX,
    ES_RULE_COUNT,
    ES_RULE_APPEND,
    ES_RULE_UNION,
    ES_RULE_MERGE,
    ES_RULE_DROP,
    ES_RULE_CUSTOM,
    ES_RULE_TYPES
} es_rule_kind;

#define ES_RULE_DEFAULT_FIELD "*"

/* One rule as the caller describes it. Every pointer is borrowed for the
 * duration of es_reducer_new only. field: the target ("*" = the default rule
 * for unnamed fields; at most one "*" spec, which takes no `from`). */
typedef struct es_rule_spec {
    const char *field;
    es_rule_kind kind;
    const char *from;          /* source field; NULL = field */
    const char *const *when;   /* event types the rule acts on; NULL/0 = all */
    size_t nwhen;
    const json_t *scale;       /* NULL, or a JSON number multiplying v (sum, min, max) */
    int custom_id;             /* ES_RULE_CUSTOM: passed to the callback */
} es_rule_spec;

/* The name of a user-facing kind ("last", "first", "sum", "min", "max",
 * "count", "append", "union", "merge", "drop"; also "custom", "types"). */
const char *es_rule_kind_name(es_rule_kind kind);
/* Parses one of the ten user-facing names above (not "custom"/"types");
 * returns ES_OK with *out set, or ES_EINVALID. */
int es_rule_kind_parse(const char *name, es_rule_kind *out);

/*
 * Called for ES_RULE_CUSTOM rules when the event carries the source field.
 * field: the target field (for a "*" custom rule: the data field's name).
 * *acc: on entry a reference the callback owns (the state's current value,
 * or NULL when the state has none). On return *acc must be a reference the
 * core takes over (or NULL to remove the field): typically
 * `nv = convert(result); json_decref(*acc); *acc = nv;`. The value may be
 * shared: replace it, never change it in place. On an error the core
 * releases whatever *acc holds. value and ev are borrowed for the call
 * (ev: see es_reducer_fold_json for its content there).
 * Returns ES_OK, or ES_ECALLBACK (any negative code) with err set; the fold
 * then stops and returns that code.
 */
typedef int (*es_custom_fn)(void *ud, int custom_id, const char *field, json_t **acc,
                            const json_t *value, const es_event *ev, es_err *err);

typedef struct es_reducer es_reducer;

/*
 * Validates and compiles n specs (specs may be NULL when n is 0). user_version
 * goes into the fingerprint (bump it when custom rules change behaviour).
 * ES_EINVALID names the field: empty or non-UTF-8 names, unknown kinds,
 * a duplicate "*", "*" with `from` or as types, `from`/`when`/`scale` where
 * the kind takes none, drop or types mixed with other rules on one target,
 * a non-numeric scale. ES_ENOMEM. The caller frees *out with es_reducer_free.
 * A reducer never changes after this: any number of folds may use it at once.
 */
int es_reducer_new(const es_rule_spec *specs, size_t n, int64_t user_version,
                   es_reducer **out, es_err *err);
void es_reducer_free(es_reducer *r);   /* NULL tolerated */

/* 16 lowercase hex digits (FNV-1a 64) over a canonical form of the compiled
 * rules (targets sorted, `when` lists sorted; rule order kept within a
 * target) and user_version. custom_id is not part of it (the binding may
 * number functions differently from run to run). Valid while r lives. */
const char *es_reducer_fingerprint(const es_reducer *r);
int64_t es_reducer_user_version(const es_reducer *r);
/* 1 when some rule is ES_RULE_CUSTOM (the fold then needs a callback). */
int es_reducer_has_custom(const es_reducer *r);

/*
 * The fingerprint state snapshots are saved and looked up under: the
 * reducer's own when initial is NULL or {}, otherwise a hash of it and of
 * the initial state's canonical JSON (a different initial state must not
 * reuse snapshots). Writes 17 bytes (NUL-terminated) into out.
 */
int es_reducer_state_fingerprint(const es_reducer *r, const json_t *initial, char out[17],
                                 es_err *err);

/*
 * Folds one stored event into state (a JSON object, changed in place).
 * data: the event's data already decoded, or NULL to decode ev->data here.
 * fn/ud: the custom-rule callback (may be NULL when no rule is custom).
 * Returns ES_OK, ES_EINVALID (a value a rule cannot fold; data is not an
 * object), ES_ENOMEM, or the callback's code. After an error the state is a
 * valid object the caller can free, possibly holding part of the event.
 */
int es_reducer_fold_event(const es_reducer *r, json_t *state, const es_event *ev,
                          const json_t *data, es_custom_fn fn, void *ud, es_err *err);

/* As es_reducer_fold_event for an event given as its type and data (no
 * store). The callback's ev then has only `type` set (every other pointer
 * NULL, numbers 0): the caller knows which event it is folding. */
int es_reducer_fold_json(const es_reducer *r, json_t *state, const char *type,
                         const json_t *data, es_custom_fn fn, void *ud, es_err *err);

/*
 * One event folded member by member, for a caller that parses the data
 * itself (state.c folds stored JSON texts this way without building the
 * data object). The fields are private; the struct is public only so that it
 * can live on the caller's stack.
 *   es_fold_begin   checks state and type and prepares the pass; on an error
 *                   the pass needs no es_fold_end
 *   es_fold_wants   1 when the reducer reads the member's value (0: skip it)
 *   es_fold_member  feeds one member, taking the reference to v
 *   es_fold_member_kind  es_fold_wants, or ES_FOLD_STAR_LAST for a plain copy
 *   es_fold_end     with ok: applies the named rules; always releases the
 *                   pass; returns the first error
 * Members must be fed in data order, each key once.
 */
typedef struct es_fold_pass {
    const es_reducer *r;
    json_t *state;
    const es_event *ev;
    es_custom_fn fn;
    void *ud;
    es_err *err;
    int tid, star_ok, owns;
    const json_t **vals;
    const json_t *stack_vals[32];
} es_fold_pass;

int es_fold_begin(es_fold_pass *p, const es_reducer *r, json_t *state, const es_event *ev,
                  es_custom_fn fn, void *ud, es_err *err);
int es_fold_wants(const es_fold_pass *p, const char *key, size_t klen);
int es_fold_member(es_fold_pass *p, const char *key, size_t klen, json_t *v);
/* es_fold_wants in one lookup, telling also whether the member's value
 * only ever goes through a "*" = last rule (no rule reads or targets it):
 * the caller may then set state[key] in place instead of feeding a new
 * value (state.c's text path does). */
enum { ES_FOLD_SKIP, ES_FOLD_VALUE, ES_FOLD_STAR_LAST, ES_FOLD_SUM };
int es_fold_member_kind(const es_fold_pass *p, const char *key, size_t klen);
/* A member's kind remembered for one place of an event (events mostly
 * repeat their names in the same order, and comparing a short name costs
 * less than hashing it), keyed on the name and on whether "*" applies to
 * the event's type. es_kind_memo_hit: 1 when the memo holds that name's
 * kind for this pass (then in m->kind). es_kind_memo_set looks the kind
 * up, keeps it in the memo and returns it. Names longer than
 * ES_KIND_MEMO_KEY do not fit. */
#define ES_KIND_MEMO_KEY 24
typedef struct es_kind_memo {
    char key[ES_KIND_MEMO_KEY];
    unsigned char klen, star_ok, kind, set;
} es_kind_memo;
static inline int es_kind_memo_hit(const es_fold_pass *p, const es_kind_memo *m, const char *key, size_t klen) {
    return m->set && m->klen == klen && m->star_ok == p->star_ok && es_same_bytes(m->key, key, klen);
}
static inline int es_kind_memo_set(const es_fold_pass *p, es_kind_memo *m, const char *key, size_t klen) {
    int kind = es_fold_member_kind(p, key, klen);
    memcpy(m->key, key, klen);
    m->klen = (unsigned char)klen;
    m->star_ok = (unsigned char)p->star_ok;
    m->kind = (unsigned char)kind;
    m->set = 1;
    return kind;
}
/* ES_FOLD_SUM: the member's value feeds only a plain sum into the field of
 * the same name (ES_FOLD_VALUE otherwise). es_fold_sum_int adds an integer
 * v to that field in place and returns 1; 0 when it cannot (no integer
 * there yet, shared, or the sum would overflow), and the caller then feeds
 * the value as usual with es_fold_member. Never fails. */
int es_fold_sum_int(es_fold_pass *p, const char *key, size_t klen, int64_t v);
int es_fold_end(es_fold_pass *p, int ok);

/* A number as the rules compute with it, without allocating: an int64 or a
 * double (d also holds an integer's value). reduce_num.c. */
typedef struct es_num {
    int is_int;
    int64_t i;
    double d;
} es_num;
/* 1 and n set when v is a JSON integer or real, else 0. */
int es_num_of(const json_t *v, es_num *n);
/* a += b, a *= b (b an integer when b_int): an int64 overflow turns the
 * result into a double instead of wrapping. */
void es_num_add(es_num *a, const es_num *b);
void es_num_mul(es_num *a, int b_int, int64_t bi, double bd);
/* The exact order of a and b (-1, 0, 1): an integer is not rounded to a
 * double to compare it with one. */
int es_num_cmp(const es_num *a, const es_num *b);

/* A filter over decoded event data: keep events whose data has every field
 * of where with a json_equal value (where NULL or {} keeps all). */
int es_reducer_where_ok(const json_t *where, const json_t *data);

/*
 * Folds every row of a cursor into state (csrc/state.c; the cursor stays
 * the caller's to close). where: as es_reducer_where_ok, or NULL. Without a
 * where, each event is folded straight from its JSON text: only the values
 * some rule reads are decoded (same values and errors as es_json_decode).
 * Counts folded events in *count and leaves the last folded event's
 * revision and position in *last_revision / *last_position (untouched when
 * nothing is folded); any of the three may be NULL. Cursor errors pass through.
 */
int es_reducer_fold_cursor(const es_reducer *r, json_t *state, es_cursor *cur,
                           const json_t *where, es_custom_fn fn, void *ud, int64_t *count,
                           int64_t *last_revision, int64_t *last_position, es_err *err);

/*
 * The state of one stream (csrc/state.c): starts from the newest snapshot
 * saved under es_reducer_state_fingerprint(r, initial), or else from a copy
 * of initial (NULL = {}), folds the stream's later events in revision order
 * and, when es_store_options(s)->snapshot_every > 0 and at least that many
 * events were folded, saves a snapshot at the last revision (version =
 * user_version). A snapshot that cannot be saved because the store is
 * read-only, busy or lacks snapshots is skipped silently.
 * *state_out: a new reference the caller owns (NULL on error);
 * *revision_out: the stream's revision the state reflects (0: no events).
 * Returns ES_OK or the code of the failing read, fold, decode or save.
 */
int es_store_state(es_store *s, const char *stream, const es_reducer *r, const json_t *initial,
                   es_custom_fn fn, void *ud, json_t **state_out, int64_t *revision_out,
                   es_err *err);

/*
 * The state of a context spanning streams: folds, in global order, the
 * events of category (NULL = every stream) whose data matches where (see
 * es_reducer_where_ok), starting from a copy of initial (NULL = {}). No
 * snapshots. *position_out: the position of the last folded event (0: none).
 */
int es_store_state_query(es_store *s, const char *category, const json_t *where,
                         const es_reducer *r, const json_t *initial, es_custom_fn fn, void *ud,
                         json_t **state_out, int64_t *position_out, es_err *err);

#ifdef __cplusplus
}
#endif
#endif
