/* error.c: the caller-owned error type, its code names, and allocation hooks */
/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "es_internal.h"

int es_err_set(es_err *e, int code, const char *fmt, ...) {
    va_list ap;
    if (!e) return code;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void es_err_clear(es_err *e) {
    if (!e) return;
    e->code = ES_OK;
    e->msg[0] = '\0';
    e->expected = e->actual = 0;
}

const char *es_errname(int code) {
    switch (code) {
    case ES_OK:        return "ok";
    case ES_EINVALID:  return "invalid";
    case ES_ECONFLICT: return "conflict";
    case ES_EBACKEND:  return "backend";
    case ES_EBUSY:     return "busy";
    case ES_ENOTFOUND: return "not_found";
    case ES_ENOMEM:    return "nomem";
    case ES_ENOTSUP:   return "not_supported";
    case ES_ECALLBACK: return "callback";
    case ES_EREADONLY: return "readonly";
    default:           return "backend";
    }
}

/* Failure injection for tests: counts down allocations; 0 = off. */
static long alloc_fail_countdown = 0;

void es_alloc_fail_after(long n) { alloc_fail_countdown = n; }

static int alloc_should_fail(void) {
    if (alloc_fail_countdown <= 0) return 0;
    return --alloc_fail_countdown == 0;
}

void *es_malloc(size_t n) {
    if (alloc_should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *es_realloc(void *p, size_t n) {
    if (alloc_should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void es_free(void *p) { free(p); }

/* Large blocks that are filled once and live long (the memory backend's
 * event texts): mapped on a 2 MB boundary and offered to the kernel for
 * transparent huge pages, so filling one takes one page fault instead of
 * 512. On a VM a 4 KB fault costs 8-14 us, which was a fifth of an
 * in-memory append. Where huge pages are off this is a plain mapping. */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_ROUND(n) (((n) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1))

void *es_huge_alloc(size_t n) {
    size_t size = HUGE_ROUND(n), lead, tail;
    char *p, *a;
    if (alloc_should_fail() || !n || size < n) return NULL;
    p = mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    a = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    lead = (size_t)(a - p);
    tail = HUGE_PAGE - lead;
    if (lead) munmap(p, lead);
    if (tail) munmap(a + size, tail);
#ifdef MADV_HUGEPAGE
    madvise(a, size, MADV_HUGEPAGE);
#endif
    return a;
}

/* Faults in the first n bytes of a block from es_huge_alloc (p on a 2 MB
 * boundary) in one call, rounded up to whole 2 MB. Where the kernel grants
 * no huge page, filling 2 MB takes 512 faults one by one; on this VM kind a
 * 4 KB fault costs 12-13 us, prefaulted pages 0.8 us (half the time of an
 * in-memory batch append). Before Linux 5.14 the call fails and the pages
 * fault in as they are touched, as before. */
void es_huge_populate(void *p, size_t n) {
#ifdef MADV_POPULATE_WRITE
    if (p && n) (void)madvise(p, HUGE_ROUND(n), MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
}

void es_huge_free(void *p, size_t n) {
    if (p) munmap(p, HUGE_ROUND(n));
}

char *es_strndup(const char *s, size_t n) {
    char *d = es_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *es_strdup(const char *s) { return es_strndup(s, strlen(s)); }

int es_buf_reserve(es_buf *b, size_t extra) {
    size_t need, cap;
    char *p;
    if (extra > SIZE_MAX - b->len - 1) return ES_ENOMEM;
    need = b->len + extra + 1;
    if (need <= b->cap) return ES_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = es_realloc(b->data, cap);
    if (!p) return ES_ENOMEM;
    b->data = p;
    b->cap = cap;
    return ES_OK;
}

int es_buf_add(es_buf *b, const char *s, size_t n) {
    if (es_buf_reserve(b, n) != ES_OK) return ES_ENOMEM;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return ES_OK;
}

void es_buf_free(es_buf *b) {
    es_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
