/* lua_reducer.c: eventstore.reducer{...} compiled into C, rules:fold and store:state */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "lua_binding.h"
#include "reduce.h"

#define LREDUCER_MT "eventstore.Reducer"
/* The key of the TYPES rule: eventstore.TYPES is this light userdata. */
static const char lreducer_types_key = 0;

typedef struct lreducer {
    es_reducer *r;     /* compiled rules; uservalue: the list of Lua function rules */
} lreducer;

static int lreducer_gc(lua_State *L) {
    lreducer *ud = luaL_checkudata(L, 1, LREDUCER_MT);
    es_reducer *r = ud->r;
    ud->r = NULL;
    if (r) es_reducer_free(r);
    return 0;
}

static lreducer *lreducer_check(lua_State *L, int idx) {
    lreducer *ud = luaL_checkudata(L, idx, LREDUCER_MT);
    if (!ud->r) luaL_argerror(L, idx, "reducer is not compiled");
    return ud;
}

/* ---- compiling: the Lua rules table into es_rule_spec (all scratch is GC-owned) ---- */

typedef struct spec_list {
    es_rule_spec *v;
    size_t n, cap;
} spec_list;

static es_rule_spec *spec_push(lua_State *L, spec_list *sl, int scratch_tab) {
    if (sl->n == sl->cap) {
        size_t cap = sl->cap ? sl->cap * 2 : 16;
        es_rule_spec *nv = lua_newuserdata(L, cap * sizeof *nv);
        if (sl->n) memcpy(nv, sl->v, sl->n * sizeof *nv);
        /* keep the new scratch alive in the scratch table */
        lua_rawseti(L, scratch_tab, (int)lua_rawlen(L, scratch_tab) + 1);
        sl->v = nv;
        sl->cap = cap;
    }
    memset(&sl->v[sl->n], 0, sizeof sl->v[0]);
    return &sl->v[sl->n++];
}

/* Adds the function at the stack top to the list of functions; returns its id. */
static int add_function(lua_State *L, int fns) {
    int id = (int)lua_rawlen(L, fns) + 1;
    lua_rawseti(L, fns, id);
    return id;
}

/* A rule's field or type name as a C string: an embedded NUL would cut
 * the name short and make the rule act on another field, so it raises. */
static const char *rule_name(lua_State *L, int idx, const char *what) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (strlen(s) != n) luaL_error(L, "reducer: %s contains a NUL byte", what);
    return s;
}

/* One rule: a kind name, a function, or a table { kind_or_fn, from=, when=, scale= }
 * at idx, for the target field. */
static void compile_rule(lua_State *L, int idx, const char *field, spec_list *sl, int scratch, int fns,
                         ljson_box *box) {
    es_rule_spec *sp = spec_push(L, sl, scratch);
    sp->field = field;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        if (es_rule_kind_parse(lua_tostring(L, idx), &sp->kind) != ES_OK)
            luaL_error(L, "reducer: field '%s': unknown rule '%s'", field, lua_tostring(L, idx));
        return;
    }
    if (lua_type(L, idx) == LUA_TFUNCTION) {
        sp->kind = ES_RULE_CUSTOM;
        lua_pushvalue(L, idx);
        sp->custom_id = add_function(L, fns);
        return;
    }
    if (!lua_istable(L, idx))
        luaL_error(L, "reducer: field '%s': a rule is a name, a function or a table, got %s", field,
                   luaL_typename(L, idx));
    /* a misspelt key ({ "sum", form = "amount" }) must not pass silently */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int ok = lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) == 1;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            ok = strcmp(k, "from") == 0 || strcmp(k, "when") == 0 || strcmp(k, "scale") == 0;
        }
        if (!ok) {
            lua_pop(L, 1);
            luaL_error(L, "reducer: field '%s': unknown key '%s' in a rule table (rule name, from, when, scale)",
                       field, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    lua_rawgeti(L, idx, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
        if (es_rule_kind_parse(lua_tostring(L, -1), &sp->kind) != ES_OK)
            luaL_error(L, "reducer: field '%s': unknown rule '%s'", field, lua_tostring(L, -1));
    } else if (lua_type(L, -1) == LUA_TFUNCTION) {
        sp->kind = ES_RULE_CUSTOM;
        lua_pushvalue(L, -1);
        sp->custom_id = add_function(L, fns);
    } else {
        luaL_error(L, "reducer: field '%s': a rule table starts with a rule name or a function", field);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "from");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "reducer: field '%s': 'from' must be a string", field);
        sp->from = rule_name(L, -1, "a 'from' field name");
        lua_rawseti(L, scratch, (int)lua_rawlen(L, scratch) + 1);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "when");
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char **w = lua_newuserdata(L, sizeof *w);
        w[0] = rule_name(L, -2, "a 'when' type");
        sp->when = w;
        sp->nwhen = 1;
        lua_rawseti(L, scratch, (int)lua_rawlen(L, scratch) + 1);
        lua_rawseti(L, scratch, (int)lua_rawlen(L, scratch) + 1);
    } else if (lua_istable(L, -1)) {
        size_t n = lua_rawlen(L, -1), i;
        const char **w;
        if (n == 0) luaL_error(L, "reducer: field '%s': 'when' is an empty list", field);
        w = lua_newuserdata(L, n * sizeof *w);
        for (i = 0; i < n; i++) {
            lua_rawgeti(L, -2, (int)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "reducer: field '%s': 'when' item %d is not a string", field, (int)i + 1);
            w[i] = rule_name(L, -1, "a 'when' type");
            lua_pop(L, 1);
        }
        sp->when = w;
        sp->nwhen = n;
        lua_rawseti(L, scratch, (int)lua_rawlen(L, scratch) + 1);
        lua_rawseti(L, scratch, (int)lua_rawlen(L, scratch) + 1);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "reducer: field '%s': 'when' must be a type or a list of types", field);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "scale");
    if (!lua_isnil(L, -1)) {
        json_t *v;
        if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "reducer: field '%s': 'scale' must be a number", field);
        v = compat_isintegral(L, -1) ? json_integer((json_int_t)compat_tointeger(L, -1))
                                    : json_real((double)lua_tonumber(L, -1));
        if (!v || json_array_append_new(box->root, v) != 0)
            luaL_error(L, "reducer: field '%s': 'scale' must be a finite number", field);
        sp->scale = v;
    }
    lua_pop(L, 1);
}

/* eventstore.reducer(rules[, { version = n }]) */
static int lreducer_new(lua_State *L) {
    spec_list sl = { NULL, 0, 0 };
    lreducer *ud;
    ljson_box *box;
    es_err err;
    int64_t version = 0;
    int scratch, fns;

    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "version");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TNUMBER || !compat_isintegral(L, -1))
                luaL_argerror(L, 2, "option 'version' must be an integer");
            version = compat_tointeger(L, -1);
        }
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_newtable(L);                     /* 3: scratch keeps borrowed strings and arrays alive */
    scratch = 3;
    lua_newtable(L);                     /* 4: the Lua function rules, by custom id */
    fns = 4;
    box = lvalue_newbox(L);              /* 5: scale values */
    box->root = json_array();
    if (!box->root) return luaL_error(L, "not enough memory");

    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *field;
        if (lua_type(L, -2) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -2) == (void *)&lreducer_types_key) {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "reducer: [eventstore.TYPES] must name the field that lists event types");
            {
                es_rule_spec *sp = spec_push(L, &sl, scratch);
                sp->field = rule_name(L, -1, "the [eventstore.TYPES] field name");
                sp->kind = ES_RULE_TYPES;
            }
            lua_pushvalue(L, -1);
            lua_rawseti(L, scratch, (int)lua_rawlen(L, scratch) + 1);
            lua_pop(L, 1);
            continue;
        }
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "reducer: rule keys are field names (strings) or eventstore.TYPES, got %s",
                       luaL_typename(L, -2));
        field = rule_name(L, -2, "a field name");
        /* a list of rule tables, or one rule */
        if (lua_istable(L, -1) && lua_rawlen(L, -1) > 0) {
            lua_rawgeti(L, -1, 1);
            if (lua_istable(L, -1)) {
                size_t n = lua_rawlen(L, -2), i;
                lua_pop(L, 1);
                for (i = 1; i <= n; i++) {
                    lua_rawgeti(L, -1, (int)i);
                    compile_rule(L, -1, field, &sl, scratch, fns, box);
                    lua_pop(L, 1);
                }
                lua_pop(L, 1);
                continue;
            }
            lua_pop(L, 1);
        }
        compile_rule(L, -1, field, &sl, scratch, fns, box);
        lua_pop(L, 1);
    }

    ud = lua_newuserdata(L, sizeof *ud);
    ud->r = NULL;
    luaL_getmetatable(L, LREDUCER_MT);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, fns);
    compat_setuservalue(L, -2);
    es_err_clear(&err);
    if (es_reducer_new(sl.v, sl.n, version, &ud->r, &err) != ES_OK) {
        if (err.code == ES_ENOMEM) return luaL_error(L, "not enough memory");
        return luaL_error(L, strncmp(err.msg, "reducer", 7) == 0 ? "%s" : "reducer: %s", err.msg);
    }
    return 1;
}

/* ---- custom rules: the core calls back into Lua under lua_pcall ---- */

typedef struct lcall {
    lua_State *L;
    int fns;              /* stack index of the function list */
    int event_idx;        /* stack index of the Lua event table, or 0: build from ev */
    ljson_box *out;       /* receives the converted result */
    /* per call */
    int custom_id;
    const char *field;
    const json_t *acc, *value;
    const es_event *ev;
    int failed;           /* the error value is at the top of the stack */
} lcall;

/* Runs inside lua_pcall: everything that may raise happens here. */
static int lcall_trampoline(lua_State *L) {
    lcall *c = lua_touserdata(L, 1);
    json_t *v;
    lua_rawgeti(L, 2, c->custom_id);
    if (c->acc) lvalue_push_json(L, c->acc); else lua_pushnil(L);
    lvalue_push_json(L, c->value);
    if (lua_istable(L, 3)) {
        lua_pushvalue(L, 3);
    } else if (c->ev && c->ev->id) {
        lvalue_push_event(L, c->ev);
    } else {
        lua_createtable(L, 0, 1);
        if (c->ev && c->ev->type) {
            lua_pushstring(L, c->ev->type);
            lua_setfield(L, -2, "type");
        }
    }
    lua_pushstring(L, c->field);
    lua_call(L, 4, 1);
    if (lua_isnil(L, -1)) {
        v = NULL;
    } else {
        char what[300];
        snprintf(what, sizeof what, "reducer: rule for '%s' returned", c->field);
        lvalue_to_json_any(L, -1, c->out, what);
        /* take the box's reference: nothing below can raise */
        v = c->out->root;
        c->out->root = NULL;
    }
    lua_pushlightuserdata(L, v);
    return 1;
}

static int lcall_custom(void *ud, int custom_id, const char *field, json_t **acc, const json_t *value,
                        const es_event *ev, es_err *err) {
    lcall *c = ud;
    lua_State *L = c->L;
    json_t *res;
    /* lcall_init makes the box when the rules have a custom one */
    if (!c->out) return es_err_set(err, ES_EINVALID, "reducer: no box for the rule for '%s'", field);
    c->custom_id = custom_id;
    c->field = field;
    c->acc = *acc;
    c->value = value;
    c->ev = ev;
    lua_pushcfunction(L, lcall_trampoline);
    lua_pushlightuserdata(L, c);
    lua_pushvalue(L, c->fns);
    if (c->event_idx) lua_pushvalue(L, c->event_idx); else lua_pushnil(L);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        c->failed = 1;   /* the error stays on the stack for the binding to raise */
        return es_err_set(err, ES_ECALLBACK, "reducer: rule for '%s' failed", field);
    }
    res = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (*acc) json_decref(*acc);
    *acc = res;
    return ES_OK;
}

/* Pushes the reducer's Lua functions and, when it has a custom rule, the
 * box that roots a rule's converted result (a userdata with a finalizer:
 * rules without one need none). */
static void lcall_init(lua_State *L, lcall *c, int reducer_idx, const es_reducer *r) {
    memset(c, 0, sizeof *c);
    c->L = L;
    if (es_reducer_has_custom(r)) c->out = lvalue_newbox(L);
    compat_getuservalue(L, reducer_idx);
    c->fns = lua_gettop(L);
    luaL_checkstack(L, 20, "reducer callbacks");
}

/* After a failed core call: raise the callback's own error, or the core's. */
static int fold_fail(lua_State *L, lcall *c, es_err *err) {
    if (c->failed) return lua_error(L);
    return lerror_fail(L, err);
}

/* rules:fold feeds an event's data to the fold member by member, as
 * state.c feeds a stored text's, instead of converting the whole table
 * into JSON first: a member no rule reads is only checked, an integer for
 * a plain sum is added in place, and a "*" = last string, number or
 * boolean of a field the state already has waits, and is converted once,
 * when the fold ends. No rule reads or targets such a field, so only a
 * later value of it replaces the waiting one. The scratch userdata keeps
 * the pass, so that a raise while it is open (a value JSON cannot hold)
 * still releases it. */
typedef struct fold_member {
    const char *key;      /* the data table's own key string */
    size_t klen;
    int sum;              /* 1: ival is an integer for a plain sum */
    int64_t ival;
    json_t *v;            /* a value for the pass, borrowed from the event's owner array */
} fold_member;

/* What the member at each place of the previous event was (es_kind_memo,
 * as state.c keeps): a name found there again needs neither its checks nor
 * a rule lookup. A waiting value sits in the anchors table at its place + 1, which keeps
 * it alive whatever a Lua function rule does to the events. Whenever a
 * place holds another name than before (or one too long to keep), or a
 * "*" = last member comes past the places, every waiting value is set
 * first (fold_flush). A name waiting at one place then cannot come again
 * at another without that: events visit their places in order, so the
 * lower of the two places was visited with another name in between. */
#define FOLD_MEMO 16
typedef struct fold_memo {
    es_kind_memo k;
    unsigned char in_state;   /* a "*" = last field the state has (nothing removes it) */
    unsigned char wait;       /* its newest value waits in anchors[place + 1] */
} fold_memo;

/* One userdata per rules:fold call holds all it needs (each allocation
 * made the collector run more often in a process with a large heap). */
#define FOLD_SCRATCH_MT "eventstore.FoldScratch"
typedef struct fold_scratch {
    ljson_box state;      /* the boxes own their roots, released by __gc */
    ljson_box data;       /* an event's data converted whole */
    ljson_box owner;      /* an array: the values converted for one event */
    es_fold_pass pass;
    fold_memo memo[FOLD_MEMO];
    int active;           /* the pass is begun and not yet ended */
    es_event ev;          /* the pass's event: its type only, as es_reducer_fold_json's */
    fold_member *m;
    size_t cap;
    int anchors;          /* stack index: nil until a value waits, then the anchors table */
    int nwait;            /* places whose wait is set */
} fold_scratch;

static int fold_scratch_gc(lua_State *L) {
    fold_scratch *sc = luaL_checkudata(L, 1, FOLD_SCRATCH_MT);
    if (sc->active) es_fold_end(&sc->pass, 0);
    sc->active = 0;
    es_free(sc->m);
    sc->m = NULL;
    json_decref(sc->state.root);
    json_decref(sc->data.root);
    json_decref(sc->owner.root);
    sc->state.root = sc->data.root = sc->owner.root = NULL;
    return 0;
}

static fold_scratch *fold_scratch_new(lua_State *L) {
    fold_scratch *sc = lua_newuserdata(L, sizeof *sc);
    memset(sc, 0, sizeof *sc);
    luaL_getmetatable(L, FOLD_SCRATCH_MT);
    lua_setmetatable(L, -2);
    if (!(sc->owner.root = json_array())) luaL_error(L, "not enough memory");
    return sc;
}

/* Room for member n in sc->m (raises when out of memory). */
static fold_member *fold_member_at(lua_State *L, fold_scratch *sc, size_t n) {
    if (n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        fold_member *m = es_realloc(sc->m, cap * sizeof *m);
        if (!m) luaL_error(L, "not enough memory");
        sc->m = m;
        sc->cap = cap;
    }
    return &sc->m[n];
}

/* Sets the waiting "*" = last values in state (every field is there
 * already: the order of its fields stays). */
static void fold_flush(lua_State *L, fold_scratch *sc) {
    int j;
    for (j = 0; sc->nwait && j < FOLD_MEMO; j++) {
        fold_memo *mm = &sc->memo[j];
        json_t *v;
        if (!mm->wait) continue;
        lua_rawgeti(L, sc->anchors, j + 1);
        v = lvalue_scalar(L, -1);
        lua_pop(L, 1);
        mm->wait = 0;
        sc->nwait--;
        if (!v || json_object_setn_new_nocheck(sc->state.root, mm->k.key, mm->k.klen, v) != 0)
            luaL_error(L, "not enough memory");
    }
}

/* Folds the data table at d, whose first key/value pair is on the stack,
 * into state: ES_OK or the fold's error code (err set; a callback's error
 * value on the stack). Values JSON cannot hold raise, naming the event i
 * and the member, as a conversion of the whole table would. */
static int fold_members(lua_State *L, const es_reducer *r, fold_scratch *sc, lcall *c, int d, int i,
                        es_err *err) {
    json_t *state = sc->state.root, *owner = sc->owner.root;
    lconv cv;
    size_t n = 0, j, at = 0, place;
    int rc, end_rc;
    lconv_init(&cv, L, "fold: event %d data");
    lua_insert(L, -3);                                        /* the anchor, under the pair */
    cv.anchor = lua_gettop(L) - 2;
    cv.what_index = i;
    lconv_enter(&cv, d);
    if ((rc = es_fold_begin(&sc->pass, r, state, &sc->ev, lcall_custom, c, err)) != ES_OK) {
        lua_pop(L, 3);
        return rc;
    }
    sc->active = 1;
    do {
        size_t kl;
        const char *k;
        int kind;
        fold_member *m;
        fold_memo *mm;
        lconv_path *p = &cv.path[1];     /* the data's level (a deep value may move the path) */
        if (lua_type(L, -2) != LUA_TSTRING) {
            /* not an object after all: the error converting it raises */
            cv.depth--;
            lconv_table_kind(&cv, d);
            cv.depth++;
        }
        k = lua_tolstring(L, -2, &kl);
        place = at++;
        mm = place < FOLD_MEMO && kl <= ES_KIND_MEMO_KEY ? &sc->memo[place] : NULL;
        if (mm && es_kind_memo_hit(&sc->pass, &mm->k, k, kl)) {
            p->key = k;                                        /* checked before */
            p->keylen = kl;
            kind = mm->k.kind;
        } else {
            lconv_key(&cv, p, k, kl);
            /* a place taken by another name (or one too long to keep), or
             * a "*" member with no place: the waiting values are set while
             * their places still hold their names */
            if (mm) {
                fold_flush(L, sc);
                kind = es_kind_memo_set(&sc->pass, &mm->k, k, kl);
                mm->in_state = 0;
            } else {
                kind = es_fold_member_kind(&sc->pass, k, kl);
                if (place < FOLD_MEMO || kind == ES_FOLD_STAR_LAST) fold_flush(L, sc);
                if (place < FOLD_MEMO) sc->memo[place].k.set = 0;
            }
        }
        if (kind == ES_FOLD_SKIP) {
            if (!lconv_scalar_ok(&cv, -1)) lconv_value(&cv, -1, owner);     /* checked only */
        } else if (kind == ES_FOLD_STAR_LAST && mm && (mm->in_state || json_object_getn(state, k, kl)) &&
                   lconv_scalar_ok(&cv, -1)) {
            mm->in_state = 1;
            if (!lua_istable(L, sc->anchors)) {
                lua_createtable(L, FOLD_MEMO, 0);
                lua_replace(L, sc->anchors);
            }
            lua_pushvalue(L, -1);
            lua_rawseti(L, sc->anchors, (int)place + 1);
            if (!mm->wait) sc->nwait++;
            mm->wait = 1;
        } else {
            m = fold_member_at(L, sc, n++);
            m->key = k;
            m->klen = kl;
            m->sum = kind == ES_FOLD_SUM && lua_type(L, -1) == LUA_TNUMBER && compat_isinteger(L, -1);
            if (m->sum) {
                m->ival = (int64_t)compat_tointeger(L, -1);
            } else {
                m->v = lconv_value(&cv, -1, owner);
                if (mm && mm->wait) {
                    /* this value replaces the field: the waiting one is stale */
                    mm->wait = 0;
                    sc->nwait--;
                }
            }
        }
        lua_pop(L, 1);
    } while (lua_next(L, d));
    lua_pop(L, 1);                                            /* the anchor */
    /* every value is checked: now the members go to the pass, in order */
    for (rc = ES_OK, j = 0; j < n && rc == ES_OK; j++) {
        fold_member *m = &sc->m[j];
        json_t *v;
        if (m->sum && es_fold_sum_int(&sc->pass, m->key, m->klen, m->ival)) continue;
        v = m->sum ? json_integer((json_int_t)m->ival) : json_incref(m->v);
        rc = v ? es_fold_member(&sc->pass, m->key, m->klen, v) : es_err_set(err, ES_ENOMEM, "fold: out of memory");
    }
    sc->active = 0;
    end_rc = es_fold_end(&sc->pass, rc == ES_OK);
    json_array_clear(owner);
    return rc != ES_OK ? rc : end_rc;
}

/* rules:fold(events, initial) -> state */
static int lreducer_fold(lua_State *L) {
    lreducer *ud = lreducer_check(L, 1);
    fold_scratch *sc;
    lcall c;
    es_err err;
    size_t n, i;
    int top;

    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    sc = fold_scratch_new(L);                                  /* 4 */
    lvalue_to_json(L, 3, &sc->state, "fold: initial state");
    lua_pushnil(L);                                            /* 5: the anchors of waiting values */
    sc->anchors = lua_gettop(L);
    lua_pushliteral(L, "type");                                /* 6, 7: the names, interned once */
    lua_pushliteral(L, "data");
    lcall_init(L, &c, 1, ud->r);                               /* functions */
    top = lua_gettop(L);
    n = lua_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
        const char *type;
        json_t *data;
        int rc;
        lua_rawgeti(L, 2, (int)i);                             /* top + 1: the event */
        if (!lua_istable(L, -1)) luaL_error(L, "fold: event %d must be a table", (int)i);
        lua_pushvalue(L, 6);
        lua_gettable(L, top + 1);                              /* top + 2: the type, kept there */
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "fold: event %d has no type", (int)i);
        type = lua_tostring(L, -1);
        lua_pushvalue(L, 7);
        lua_gettable(L, top + 1);                              /* top + 3: data */
        c.event_idx = top + 1;
        es_err_clear(&err);
        if (lua_type(L, -1) == LUA_TTABLE && !lua_getmetatable(L, -1)) {
            lua_pushnil(L);
            if (lua_next(L, top + 3)) {
                if (lua_type(L, -2) == LUA_TSTRING) {
                    sc->ev.type = type;
                    rc = fold_members(L, ud->r, sc, &c, top + 3, (int)i, &err);
                    if (rc != ES_OK) return fold_fail(L, &c, &err);
                    lua_settop(L, top);
                    continue;
                }
                lua_pop(L, 2);
            }
        }
        /* anything else ({}, nil, a metatable, an array, not a table) as
         * before: converted whole, which also raises the right error */
        fold_flush(L, sc);
        data = lvalue_to_json_at(L, top + 3, &sc->data, "fold: event %d data", (int)i);
        if (es_reducer_fold_json(ud->r, sc->state.root, type, data, lcall_custom, &c, &err) != ES_OK)
            return fold_fail(L, &c, &err);
        lua_settop(L, top);
    }
    fold_flush(L, sc);
    lvalue_push_json(L, sc->state.root);
    return 1;
}

static int lreducer_fingerprint(lua_State *L) {
    lua_pushstring(L, es_reducer_fingerprint(lreducer_check(L, 1)->r));
    return 1;
}

/* Raises fmt (with the key) for a key of the table at idx other than a or b. */
static void check_keys(lua_State *L, int idx, const char *fmt, const char *a, const char *b) {
    if (!lua_istable(L, idx)) return;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!k || !((a && strcmp(k, a) == 0) || (b && strcmp(k, b) == 0)))
            luaL_error(L, fmt, k ? k : luaL_typename(L, -2));
        lua_pop(L, 1);
    }
}

/* store:state(stream, rules[, { initial = t }]) -> state, revision
 * store:state({ category =, where = }, rules[, opts]) -> state, position */
static int lreducer_state(lua_State *L) {
    es_store *s = lstore_checkstore(L, 1);
    lreducer *ud;
    ljson_box *init_box, *where_box;
    json_t *initial = NULL, *where = NULL, *state = NULL;
    lcall c;
    es_err err;
    int64_t at = 0;
    int rc;

    ud = lreducer_check(L, 3);
    if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
    check_keys(L, 4, "state: unknown option '%s' (initial)", "initial", NULL);
    if (lua_istable(L, 2)) check_keys(L, 2, "state: unknown key '%s' in the query (category, where)", "category", "where");
    lua_settop(L, 4);
    /* the boxes root what the core borrows until this call returns: each
     * is a userdata with a finalizer, so only those a call needs are made
     * (a plain state(stream, rules) needs none: the store holds the state
     * while it is converted) */
    if (lua_istable(L, 4)) {
        lua_getfield(L, 4, "initial");
        if (!lua_isnil(L, -1)) {
            init_box = lvalue_newbox(L);
            initial = lvalue_to_json(L, -2, init_box, "state: initial");
        }
    }
    lcall_init(L, &c, 3, ud->r);                               /* functions */
    es_err_clear(&err);
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *stream = lstore_checkstream(L, 2);
        rc = es_store_state(s, stream, ud->r, initial, lcall_custom, &c, &state, &at, &err);
    } else if (lua_istable(L, 2)) {
        const char *category = NULL;
        lua_getfield(L, 2, "category");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 2, "'category' must be a string");
            category = lua_tostring(L, -1);
        }
        lua_getfield(L, 2, "where");
        if (!lua_isnil(L, -1)) {
            where_box = lvalue_newbox(L);
            where = lvalue_to_json(L, -2, where_box, "state: where");
        }
        rc = es_store_state_query(s, category, where, ud->r, initial, lcall_custom, &c, &state, &at, &err);
    } else {
        return luaL_argerror(L, 2, "a stream name or a { category, where } table");
    }
    if (rc != ES_OK) return fold_fail(L, &c, &err);
    lstore_hold(L, 1, state);   /* rooted before it is converted */
    lvalue_push_json(L, state);
    lstore_hold(L, 1, NULL);    /* and released at once */
    compat_pushinteger(L, at);
    return 2;
}

static const luaL_Reg lreducer_methods[] = {
    { "fold", lreducer_fold },
    { "fingerprint", lreducer_fingerprint },
    { NULL, NULL }
};

/* Sets reducer, TYPES and Store.state in the module table on the stack top
 * (Store's method table is already there). */
void lreducer_setup(lua_State *L) {
    luaL_newmetatable(L, LREDUCER_MT);
    lua_pushcfunction(L, lreducer_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, LREDUCER_MT);
    lua_setfield(L, -2, "__name");
    lua_newtable(L);
    luaL_setfuncs(L, lreducer_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, FOLD_SCRATCH_MT);
    lua_pushcfunction(L, fold_scratch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_pushcfunction(L, lreducer_new);
    lua_setfield(L, -2, "reducer");
    lua_pushlightuserdata(L, (void *)&lreducer_types_key);
    lua_setfield(L, -2, "TYPES");
    lua_getfield(L, -1, "Store");
    lua_pushcfunction(L, lreducer_state);
    lua_setfield(L, -2, "state");
    lua_pop(L, 1);
}
