/* memory.c: the in-process backend (tests, experiments); each open is a separate store */
/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "../csrc/es_internal.h"

/* A stream: its name, and the positions of its events by revision - 1.
 * The name lies right after the struct, in the same block: finding the
 * stream by name (map_get) then reads no second block. */
typedef struct mem_stream {
    char *name;
    size_t catlen;
    int64_t *pos;
    size_t count, cap;
} mem_stream;

/* An event's data index, type, data, id and metadata texts lie back to
 * back in the store's arena. */
typedef struct mem_event {
    es_event ev;
    mem_stream *st;
    int dispatched;
} mem_event;

/* Events are never freed one by one (the store is append-only and goes
 * away at close), so their texts are cut from chunks instead of one malloc
 * each: a store of a million events is a few hundred chunks, not a million
 * blocks for malloc to search around. The first chunk comes from malloc
 * (256 KB: a small store stays small); the next ones are 2 MB on huge
 * pages where the kernel has them (es_huge_alloc), one page fault each. */
#define ARENA_FIRST ((size_t)256 << 10)
#define ARENA_CHUNK ((size_t)2 << 20)
typedef struct mem_chunk {
    char *p;
    size_t huge;                  /* big_alloc's record, for big_free */
} mem_chunk;

typedef struct mem_arena {
    mem_chunk *chunks;
    size_t n, cap;
    char *cur;
    size_t left;
} mem_arena;

typedef struct mem_snap {
    es_snapshot s;
} mem_snap;

typedef struct mem_checkpoint {
    char *name;
    int64_t position;
} mem_checkpoint;

/* Open-addressing hash table of pointers keyed by a string. */
typedef struct mem_map {
    void **slot;
    size_t cap, count;
} mem_map;

typedef struct id_slot {
    uint64_t hash;
    int64_t pos;
} id_slot;

typedef struct memory_conn {
    es_conn base;                 /* first: the store sees an es_conn */
    mem_event *ev;                /* position p is ev[p - 1] */
    size_t nev, capev;
    size_t ev_huge;               /* c->ev's es_huge_alloc'd size; 0: es_malloc'd */
    size_t ev_ready;              /* bytes of a huge c->ev prefaulted (ev_populate) */
    mem_map streams;              /* name -> mem_stream */
    /* id -> position; open addressing over positions (0 = empty), because
     * c->ev moves when it grows and pointers into it would dangle. Each
     * slot keeps the id's hash: a probe compares it without touching the
     * event (a cache miss each in a large store), and growing rehashes
     * without reading any id. */
    id_slot *ids;
    size_t ids_cap, ids_count;
    size_t ids_huge;              /* as ev_huge, for c->ids */
    mem_snap *snaps;
    size_t nsnaps, capsnaps;
    mem_checkpoint *cps;
    size_t ncps;
    mem_arena arena;
} memory_conn;

typedef struct memory_cursor {
    es_cursor base;
    memory_conn *c;
    es_query q;
    int64_t i;                    /* next index (meaning depends on kind) */
    int64_t n;                    /* rows returned */
    mem_stream *st;               /* ES_Q_STREAM: the stream, once it exists
                                   * (streams are never freed before close) */
    es_event row;                 /* ES_Q_STREAMS rows */
    mem_stream **names;           /* ES_Q_STREAMS: sorted snapshot of streams */
    size_t nnames;
} memory_cursor;

/* FNV-1a, then a 64-bit finalizer (murmur3's fmix64): FNV's low bits,
 * which pick the slot, depend only on the low bits of each byte; the
 * finalizer spreads every byte over them. */
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

typedef const char *(*map_key_fn)(const void *item);

static const char *stream_key(const void *p) { return ((const mem_stream *)p)->name; }

static void *map_get(const mem_map *m, const char *key, map_key_fn kf) {
    size_t i;
    if (!m->cap) return NULL;
    for (i = hash_str(key) & (m->cap - 1); m->slot[i]; i = (i + 1) & (m->cap - 1))
        if (strcmp(kf(m->slot[i]), key) == 0) return m->slot[i];
    return NULL;
}

/* Grows to keep the load under 1/2; items are never removed. */
static int map_put(mem_map *m, void *item, map_key_fn kf) {
    size_t i;
    if ((m->count + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64, j;
        void **ns;
        if (ncap > SIZE_MAX / sizeof *ns) return ES_ENOMEM;
        ns = es_malloc(ncap * sizeof *ns);
        if (!ns) return ES_ENOMEM;
        memset(ns, 0, ncap * sizeof *ns);
        for (j = 0; j < m->cap; j++) {
            if (!m->slot[j]) continue;
            for (i = hash_str(kf(m->slot[j])) & (ncap - 1); ns[i]; i = (i + 1) & (ncap - 1)) {}
            ns[i] = m->slot[j];
        }
        es_free(m->slot);
        m->slot = ns;
        m->cap = ncap;
    }
    for (i = hash_str(kf(item)) & (m->cap - 1); m->slot[i]; i = (i + 1) & (m->cap - 1)) {}
    m->slot[i] = item;
    m->count++;
    return ES_OK;
}

/* A block of the large arrays (events, ids): from 2 MB on, on huge pages
 * (see the arena); *huge records which, for big_free. */
static void *big_alloc(size_t bytes, size_t *huge) {
    void *p;
    *huge = 0;
    if (bytes < ARENA_CHUNK) return es_malloc(bytes);
    if ((p = es_huge_alloc(bytes)) != NULL) *huge = bytes;
    return p;
}

static void big_free(void *p, size_t huge) {
    if (huge) es_huge_free(p, huge);
    else es_free(p);
}

/* The event with this id. A generated id names its own position
 * (es_id_stamp) and is found there, as SQLite finds it: only the ids that
 * do not (caller-given ones) go into the hash table, so an append of
 * generated ids writes no slot of it (one cache miss an event in W2, and
 * its memory). A given id equal to a stored one is found either way. */
static mem_event *id_get(const memory_conn *c, const char *id) {
    int64_t p = es_id_position(id);
    uint64_t h;
    size_t i;
    if (p >= 1 && (size_t)p <= c->nev && strcmp(c->ev[p - 1].ev.id, id) == 0) return &c->ev[p - 1];
    if (!c->ids_cap) return NULL;
    h = hash_str(id);
    for (i = h & (c->ids_cap - 1); c->ids[i].pos; i = (i + 1) & (c->ids_cap - 1))
        if (c->ids[i].hash == h && strcmp(c->ev[c->ids[i].pos - 1].ev.id, id) == 0)
            return &c->ev[c->ids[i].pos - 1];
    return NULL;
}

static void id_put_nogrow(id_slot *slots, size_t cap, uint64_t h, int64_t pos) {
    size_t i;
    for (i = h & (cap - 1); slots[i].pos; i = (i + 1) & (cap - 1)) {}
    slots[i].hash = h;
    slots[i].pos = pos;
}

/* Makes room for n more ids, keeping the load under 1/2. */
static int id_reserve(memory_conn *c, size_t n) {
    size_t cap = c->ids_cap ? c->ids_cap : 64, i, huge;
    id_slot *ns;
    if ((c->ids_count + n) * 2 <= c->ids_cap) return ES_OK;
    while ((c->ids_count + n) * 2 > cap) cap *= 2;
    if (cap > SIZE_MAX / sizeof *ns) return ES_ENOMEM;
    ns = big_alloc(cap * sizeof *ns, &huge);
    if (!ns) return ES_ENOMEM;
    if (!huge) memset(ns, 0, cap * sizeof *ns); /* a fresh mapping is zero */
    else es_huge_populate(ns, huge);            /* the rehash writes all over it */
    for (i = 0; i < c->ids_cap; i++)
        if (c->ids[i].pos) id_put_nogrow(ns, cap, c->ids[i].hash, c->ids[i].pos);
    big_free(c->ids, c->ids_huge);
    c->ids = ns;
    c->ids_huge = huge;
    c->ids_cap = cap;
    return ES_OK;
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    size_t ncap;
    void *np;
    if (need <= *cap) return ES_OK;
    ncap = *cap ? *cap : 16;
    while (ncap < need) ncap *= 2;
    if (ncap > SIZE_MAX / size) return ES_ENOMEM;
    np = es_realloc(*p, ncap * size);
    if (!np) return ES_ENOMEM;
    *p = np;
    *cap = ncap;
    return ES_OK;
}

/* Prefaults an event array on huge pages (huge: its es_huge_alloc'd size,
 * 0: es_malloc'd) up to need events and 2 MB beyond, in 2 MB steps past
 * *ready: the array is filled in order, and a doubled array's upper half
 * is not touched before the events reach it. */
static void ev_populate(mem_event *ev, size_t huge, size_t *ready, size_t need) {
#define CHUNK_UP(n) (((n) + ARENA_CHUNK - 1) & ~(ARENA_CHUNK - 1))
    size_t top = CHUNK_UP(need * sizeof *ev + ARENA_CHUNK);
    if (!huge || need * sizeof *ev <= *ready) return;
    if (top > CHUNK_UP(huge)) top = CHUNK_UP(huge);
    es_huge_populate((char *)ev + *ready, top - *ready);
    *ready = top;
#undef CHUNK_UP
}

/* Room for need events in c->ev, doubling. Past EV_SMALL events the array
 * moves, by copy, to huge pages (big_alloc) with room for EV_ROOM events:
 * address space only, faulted in 2 MB at a time as events come
 * (ev_populate). A store then grows to a million events without another
 * copy; each copy wrote the array's pages a second time, and on this VM
 * kind a page never touched costs 5-8 µs. */
#define EV_SMALL ((size_t)1024)
#define EV_ROOM ((size_t)1 << 20)
static int ev_reserve(memory_conn *c, size_t need) {
    size_t ncap = c->capev ? c->capev : 16, huge, ready = 0;
    mem_event *ne;
    if (need <= c->capev) {
        ev_populate(c->ev, c->ev_huge, &c->ev_ready, need);
        return ES_OK;
    }
    while (ncap < need) ncap *= 2;
    if (ncap > SIZE_MAX / sizeof *ne) return ES_ENOMEM;
    if (ncap <= EV_SMALL) return grow((void **)&c->ev, &c->capev, need, sizeof *c->ev);
    if (!c->ev_huge && ncap < EV_ROOM) ncap = EV_ROOM;
    if (!(ne = big_alloc(ncap * sizeof *ne, &huge))) return ES_ENOMEM;
    ev_populate(ne, huge, &ready, need);       /* before the copy fills it */
    if (c->nev) memcpy(ne, c->ev, c->nev * sizeof *ne);
    big_free(c->ev, c->ev_huge);
    c->ev = ne;
    c->ev_huge = huge;
    c->ev_ready = ready;
    c->capev = ncap;
    return ES_OK;
}

/* n bytes from the arena (8-byte aligned), NULL when out of memory. */
static char *arena_alloc(mem_arena *a, size_t n) {
    char *r;
    n = (n + 7) & ~(size_t)7;
    if (n > a->left) {
        mem_chunk ch;
        size_t size = a->n == 0 && n <= ARENA_FIRST ? ARENA_FIRST : n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if (grow((void **)&a->chunks, &a->cap, a->n + 1, sizeof *a->chunks) != ES_OK ||
            !(ch.p = big_alloc(size, &ch.huge)))
            return NULL;
        es_huge_populate(ch.huge ? ch.p : NULL, ch.huge); /* filled from start to end */
        a->chunks[a->n++] = ch;
        a->cur = ch.p;
        a->left = size;
    }
    r = a->cur;
    a->cur += n;
    a->left -= n;
    return r;
}

static int memory_backend__open(const char *uri, const es_options *opt, es_conn **out, es_err *err) {
    memory_conn *c;
    *out = NULL;
    if (strcmp(uri, "memory:") != 0 && strcmp(uri, "memory://") != 0)
        return es_err_set(err, ES_EINVALID, "open: a memory store's URL is \"memory:\"");
    c = es_malloc(sizeof *c);
    if (!c) return es_err_set(err, ES_ENOMEM, "open: out of memory");
    memset(c, 0, sizeof *c);
    *out = &c->base;
    return ES_OK;
}

static void memory_backend__close(es_conn *base) {
    memory_conn *c = (memory_conn *)base;
    size_t i;
    for (i = 0; i < c->arena.n; i++) big_free(c->arena.chunks[i].p, c->arena.chunks[i].huge);
    es_free(c->arena.chunks);
    big_free(c->ev, c->ev_huge);
    for (i = 0; i < c->streams.cap; i++) {
        mem_stream *st = c->streams.slot[i];
        if (!st) continue;
        es_free(st->pos);
        es_free(st);
    }
    es_free(c->streams.slot);
    big_free(c->ids, c->ids_huge);
    for (i = 0; i < c->nsnaps; i++) es_snapshot_clear(&c->snaps[i].s);
    es_free(c->snaps);
    for (i = 0; i < c->ncps; i++) es_free(c->cps[i].name);
    es_free(c->cps);
    es_free(c);
}

/* Step 1 of the append rules (es_backend.h): the batch is already stored
 * at the place the caller expects it. */
static int check_idempotent(memory_conn *c, es_append_req *req, es_append_result *res, int *done,
                            es_err *err) {
    const mem_event *first = id_get(c, req->events[0].id);
    size_t i;
    int64_t rev;
    *done = 0;
    if (first) {
        rev = first->ev.revision;
        if (strcmp(first->ev.stream, req->stream) != 0) goto elsewhere;
        if (!(req->expected == ES_ANY || req->expected == ES_STREAM_EXISTS ||
              req->expected == rev - 1))
            goto elsewhere;
        for (i = 0; i < req->count; i++) {
            const mem_event *e;
            if ((size_t)(rev - 1) + i >= first->st->count) goto elsewhere;
            e = &c->ev[first->st->pos[rev - 1 + i] - 1];
            if (strcmp(e->ev.id, req->events[i].id) != 0) goto elsewhere;
            req->events[i].revision = e->ev.revision;
            req->events[i].position = e->ev.position;
            req->events[i].timestamp = e->ev.timestamp;
        }
        res->revision = first->st->count;
        res->position = req->events[req->count - 1].position;
        res->idempotent = 1;
        *done = 1;
        return ES_OK;
    }
    for (i = 1; i < req->count; i++)
        if ((first = id_get(c, req->events[i].id)) != NULL) goto elsewhere;
    return ES_OK;
elsewhere:
    return es_err_set(err, ES_ECONFLICT, "append to '%s': event id %s already stored in '%s' at revision %lld",
                      req->stream, first->ev.id, first->ev.stream, (long long)first->ev.revision);
}

/* Copies n bytes and a NUL to *b and moves *b past them; returns the copy. */
static const char *put_text(char **b, const char *s, size_t n) {
    char *t = *b;
    memcpy(t, s, n);
    t[n] = '\0';
    *b = t + n + 1;
    return t;
}

static int memory_backend__append(es_conn *base, es_append_req *req, es_append_result *res, es_err *err) {
    memory_conn *c = (memory_conn *)base;
    mem_stream *st = map_get(&c->streams, req->stream, stream_key);
    int64_t cur = st ? (int64_t)st->count : 0;
    size_t i, created = 0;
    int rc, done;

    if (req->ids_given) {
        if ((rc = check_idempotent(c, req, res, &done, err)) != ES_OK || done) return rc;
    }
    if ((rc = es_expected_check(req, cur, err)) != ES_OK) return rc;
    /* Reserve everything first so nothing below can fail halfway: the store
     * must look untouched after a failed append. */
    if (!st) {
        size_t len = strlen(req->stream);
        st = es_malloc(sizeof *st + len + 1);
        if (!st) goto nomem;
        memset(st, 0, sizeof *st);
        st->name = (char *)(st + 1);
        memcpy(st->name, req->stream, len + 1);
        es_category(st->name, &st->catlen);
        if (map_put(&c->streams, st, stream_key) != ES_OK) {
            es_free(st);
            goto nomem;
        }
        created = 1;
    }
    if (grow((void **)&st->pos, &st->cap, st->count + req->count, sizeof *st->pos) != ES_OK ||
        ev_reserve(c, c->nev + req->count) != ES_OK)
        goto nomem;
    /* Pre-size the id table so the puts below cannot fail. */
    if (id_reserve(c, req->count) != ES_OK) goto nomem;
    for (i = 0; i < req->count; i++) {
        const es_event *in = &req->events[i];
        int64_t pos = (int64_t)(c->nev + i) + 1;
        size_t idl = strlen(in->id) + 1, tl = strlen(in->type) + 1;
        /* the data's index first (arena blocks are 8-aligned), then the texts */
        size_t ixl = in->data_ix ? (es_data_ix_size(in->data_ix) + 7) & ~(size_t)7 : 0;
        /* on failure the bytes already cut stay unused in the arena */
        char *b = arena_alloc(&c->arena, ixl + idl + tl + in->data_len + 1 + in->metadata_len + 1);
        if (!b) goto nomem;
        mem_event *e = &c->ev[c->nev + i];
        memset(e, 0, sizeof *e);
        e->st = st;
        if (ixl) {
            memcpy(b, in->data_ix, es_data_ix_size(in->data_ix));
            e->ev.data_ix = (const es_data_ix *)(const void *)b;
            b += ixl;
        }
        /* as SQLite does, so a generated id looks the same on both */
        if (req->generated && req->generated[i]) es_id_stamp((char *)in->id, pos);
        /* type and data next to the index: what a fold reads lies together */
        e->ev.type = put_text(&b, in->type, tl - 1);
        e->ev.data = put_text(&b, in->data, in->data_len);
        e->ev.data_len = in->data_len;
        e->ev.id = put_text(&b, in->id, idl - 1);
        e->ev.metadata = put_text(&b, in->metadata, in->metadata_len);
        e->ev.metadata_len = in->metadata_len;
        e->ev.stream = st->name;
        e->ev.timestamp = in->timestamp;
        e->ev.revision = cur + (int64_t)i + 1;
        e->ev.position = pos;
        e->dispatched = !req->outbox;
    }
    /* Commit: nothing below can fail. */
    for (i = 0; i < req->count; i++) {
        mem_event *e = &c->ev[c->nev + i];
        req->events[i].revision = e->ev.revision;
        req->events[i].position = e->ev.position;
        if (!es_id_names_row(req, i)) {
            id_put_nogrow(c->ids, c->ids_cap, hash_str(e->ev.id), e->ev.position);
            c->ids_count++;
        }
        st->pos[st->count++] = e->ev.position;
    }
    c->nev += req->count;
    res->revision = (int64_t)st->count;
    res->position = (int64_t)c->nev;
    return ES_OK;
nomem:
    ES_UNUSED(created);
    return es_err_set(err, ES_ENOMEM, "append to '%s': out of memory", req->stream);
}

static int cmp_stream(const void *a, const void *b) {
    return strcmp((*(mem_stream *const *)a)->name, (*(mem_stream *const *)b)->name);
}

/* Rows point into the store; the cursor must not outlive writes that move
 * c->ev, which is why each next() re-reads c->ev rather than caching it. */
static int memory_cursor__next(es_cursor *base, const es_event **out, es_err *err) {
    memory_cursor *cur = (memory_cursor *)base;
    memory_conn *c = cur->c;
    const es_query *q = &cur->q;
    *out = NULL;
    if (q->limit > 0 && cur->n >= q->limit) return 0;
    switch (q->kind) {
    case ES_Q_STREAM: {
        /* looked up once, not per event (it was a sixth of state()) */
        mem_stream *st = cur->st ? cur->st : (cur->st = map_get(&c->streams, q->stream, stream_key));
        int64_t lo, hi;
        if (!st) return 0;
        lo = q->from < 1 ? 1 : q->from;
        hi = q->to > (int64_t)st->count ? (int64_t)st->count : q->to;
        if (q->backward) {
            int64_t r = hi - cur->i;
            if (r < lo) return 0;
            *out = &c->ev[st->pos[r - 1] - 1].ev;
        } else {
            int64_t r = lo + cur->i;
            if (r > hi) return 0;
            *out = &c->ev[st->pos[r - 1] - 1].ev;
        }
        cur->i++;
        break;
    }
    case ES_Q_ALL:
    case ES_Q_UNDISPATCHED:
        for (; cur->i < (int64_t)c->nev; cur->i++) {
            const mem_event *e = &c->ev[cur->i];
            if (q->kind == ES_Q_UNDISPATCHED && e->dispatched) continue;
            if (q->since != INT64_MIN && e->ev.timestamp < q->since) continue;
            if (q->category && (strlen(q->category) != e->st->catlen ||
                                memcmp(q->category, e->st->name, e->st->catlen) != 0))
                continue;
            if (!es_query_type_ok(q, e->ev.type)) continue;
            *out = &e->ev;
            cur->i++;
            break;
        }
        if (!*out) return 0;
        break;
    case ES_Q_ID:
        /* resolved by read(): cur->i is the position, 0 when not found */
        if (cur->i <= 0 || cur->n > 0) return 0;
        *out = &c->ev[cur->i - 1].ev;
        break;
    case ES_Q_STREAMS: {
        if ((size_t)cur->i >= cur->nnames) return 0;
        memset(&cur->row, 0, sizeof cur->row);
        cur->row.stream = cur->names[cur->i]->name;
        cur->row.revision = (int64_t)cur->names[cur->i]->count;
        cur->i++;
        *out = &cur->row;
        break;
    }
    default:
        return es_err_set(err, ES_EINVALID, "read: unknown query kind");
    }
    cur->n++;
    return 1;
}

static void memory_cursor__close(es_cursor *base) {
    memory_cursor *cur = (memory_cursor *)base;
    es_free(cur->names);
    es_free(cur);
}

static int memory_backend__read(es_conn *base, const es_query *q, es_cursor **out, es_err *err) {
    memory_conn *c = (memory_conn *)base;
    memory_cursor *cur;
    *out = NULL;
    cur = es_malloc(sizeof *cur);
    if (!cur) return es_err_set(err, ES_ENOMEM, "read: out of memory");
    memset(cur, 0, sizeof *cur);
    cur->base.next = memory_cursor__next;
    cur->base.close = memory_cursor__close;
    cur->c = c;
    cur->q = *q;
    /* The query's strings are borrowed by the caller for the cursor's life. */
    if (q->kind == ES_Q_ALL || q->kind == ES_Q_UNDISPATCHED)
        cur->i = q->after > 0 ? (q->after > (int64_t)c->nev ? (int64_t)c->nev : q->after) : 0;
    if (q->kind == ES_Q_ID) {
        const mem_event *e = id_get(c, q->id);
        cur->i = e ? e->ev.position : 0;
    }
    if (q->kind == ES_Q_STREAMS && c->streams.count) {
        size_t i;
        cur->names = es_malloc(c->streams.count * sizeof *cur->names);
        if (!cur->names) {
            es_free(cur);
            return es_err_set(err, ES_ENOMEM, "read: out of memory");
        }
        for (i = 0; i < c->streams.cap; i++) {
            mem_stream *st = c->streams.slot[i];
            if (st && es_category_ok(q->category, st->name)) cur->names[cur->nnames++] = st;
        }
        qsort(cur->names, cur->nnames, sizeof *cur->names, cmp_stream);
    }
    *out = &cur->base;
    return ES_OK;
}

static int memory_backend__revision(es_conn *base, const char *stream, int64_t *out, es_err *err) {
    memory_conn *c = (memory_conn *)base;
    mem_stream *st = map_get(&c->streams, stream, stream_key);
    *out = st ? (int64_t)st->count : 0;
    return ES_OK;
}

static int memory_backend__stats(es_conn *base, es_stats *out, es_err *err) {
    memory_conn *c = (memory_conn *)base;
    out->events = (int64_t)c->nev;
    out->streams = (int64_t)c->streams.count;
    out->snapshots = (int64_t)c->nsnaps;
    out->position = (int64_t)c->nev;
    return ES_OK;
}

static int memory_backend__head(es_conn *base, int64_t *out, es_err *err) {
    *out = (int64_t)((memory_conn *)base)->nev;
    return ES_OK;
}

static int same_fp(const char *a, const char *b) {
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static int memory_backend__save_snapshot(es_conn *base, const es_snapshot *snap, int64_t keep,
                                         es_err *err) {
    memory_conn *c = (memory_conn *)base;
    es_snapshot s;
    size_t i, j, n;
    memset(&s, 0, sizeof s);
    s.revision = snap->revision;
    s.version = snap->version;
    s.timestamp = snap->timestamp ? snap->timestamp : es_now_ms();
    s.data_len = snap->data_len;
    if (!(s.stream = es_strdup(snap->stream)) ||
        !(s.fingerprint = es_strdup(snap->fingerprint ? snap->fingerprint : "")) ||
        !(s.data = es_strndup(snap->data, snap->data_len)) ||
        grow((void **)&c->snaps, &c->capsnaps, c->nsnaps + 1, sizeof *c->snaps) != ES_OK) {
        es_snapshot_clear(&s);
        return es_err_set(err, ES_ENOMEM, "save_snapshot '%s': out of memory", snap->stream);
    }
    /* One snapshot per (stream, revision, fingerprint): a new save replaces. */
    for (i = 0; i < c->nsnaps; i++) {
        es_snapshot *o = &c->snaps[i].s;
        if (o->revision == s.revision && strcmp(o->stream, s.stream) == 0 &&
            same_fp(o->fingerprint, s.fingerprint)) {
            es_snapshot_clear(o);
            *o = s;
            goto prune;
        }
    }
    c->snaps[c->nsnaps++].s = s;
prune:
    if (keep <= 0) return ES_OK;
    /* Snapshots are kept in save order; keep the newest `keep` by revision. */
    for (;;) {
        size_t oldest = SIZE_MAX;
        n = 0;
        for (i = 0; i < c->nsnaps; i++) {
            if (strcmp(c->snaps[i].s.stream, snap->stream) != 0) continue;
            n++;
            if (oldest == SIZE_MAX || c->snaps[i].s.revision < c->snaps[oldest].s.revision) oldest = i;
        }
        if ((int64_t)n <= keep) break;
        es_snapshot_clear(&c->snaps[oldest].s);
        for (j = oldest; j + 1 < c->nsnaps; j++) c->snaps[j] = c->snaps[j + 1];
        c->nsnaps--;
    }
    return ES_OK;
}

static int memory_backend__load_snapshot(es_conn *base, const char *stream, int64_t max_revision,
                                         const char *fingerprint, es_snapshot *out, es_err *err) {
    memory_conn *c = (memory_conn *)base;
    const es_snapshot *best = NULL;
    size_t i;
    for (i = 0; i < c->nsnaps; i++) {
        const es_snapshot *s = &c->snaps[i].s;
        if (strcmp(s->stream, stream) != 0 || s->revision > max_revision) continue;
        if (fingerprint && !same_fp(fingerprint, s->fingerprint)) continue;
        if (!best || s->revision > best->revision ||
            (s->revision == best->revision && s->timestamp >= best->timestamp))
            best = s;
    }
    if (!best) return es_err_set(err, ES_ENOTFOUND, "snapshot '%s': none", stream);
    *out = *best;
    out->stream = es_strdup(best->stream);
    out->fingerprint = es_strdup(best->fingerprint);
    out->data = es_strndup(best->data, best->data_len);
    if (!out->stream || !out->fingerprint || !out->data) {
        es_snapshot_clear(out);
        return es_err_set(err, ES_ENOMEM, "snapshot '%s': out of memory", stream);
    }
    return ES_OK;
}

static int memory_backend__get_checkpoint(es_conn *base, const char *name, int64_t *out, es_err *err) {
    memory_conn *c = (memory_conn *)base;
    size_t i;
    *out = 0;
    for (i = 0; i < c->ncps; i++)
        if (strcmp(c->cps[i].name, name) == 0) {
            *out = c->cps[i].position;
            return ES_OK;
        }
    return ES_ENOTFOUND;
}

static int memory_backend__set_checkpoint(es_conn *base, const char *name, int64_t position, es_err *err) {
    memory_conn *c = (memory_conn *)base;
    mem_checkpoint *p;
    char *copy;
    size_t i;
    for (i = 0; i < c->ncps; i++)
        if (strcmp(c->cps[i].name, name) == 0) {
            c->cps[i].position = position;
            return ES_OK;
        }
    if (!(copy = es_strdup(name))) return es_err_set(err, ES_ENOMEM, "checkpoint '%s': out of memory", name);
    p = es_realloc(c->cps, (c->ncps + 1) * sizeof *p);
    if (!p) {
        es_free(copy);
        return es_err_set(err, ES_ENOMEM, "checkpoint '%s': out of memory", name);
    }
    c->cps = p;
    c->cps[c->ncps].name = copy;
    c->cps[c->ncps++].position = position;
    return ES_OK;
}

static int memory_backend__mark_dispatched(es_conn *base, const char *id, es_err *err) {
    memory_conn *c = (memory_conn *)base;
    mem_event *e = id_get(c, id);
    if (!e) return es_err_set(err, ES_ENOTFOUND, "mark_dispatched: no event with id %s", id);
    e->dispatched = 1;
    return ES_OK;
}

const es_backend es_memory_backend = {
    1, "memory",
    /* version 1 */
    memory_backend__open,
    memory_backend__close,
    memory_backend__append,
    memory_backend__read,
    memory_backend__revision,
    memory_backend__stats,
    memory_backend__save_snapshot,
    memory_backend__load_snapshot,
    memory_backend__get_checkpoint,
    memory_backend__set_checkpoint,
    memory_backend__mark_dispatched,
    NULL,                       /* wait: polled by the store */
    memory_backend__head,
    /* version 1 ends here: this backend declares version 1, so store.c
     * never looks at the slots below */
    NULL,                       /* read_state */
};
