/* Slices of bytes and growable arrays, for every part of both extensions (no Python, no
 * SQLite). */
#ifndef CLAWTRACE_VEC_H
#define CLAWTRACE_VEC_H

#include <stdlib.h>
#include <string.h>

/* A slice of bytes someone else owns. */
typedef struct {
    const char *p;
    size_t n;
} str_t;

static inline int str_same(str_t a, str_t b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* A growable array of fixed-size items. */
typedef struct {
    char *data;
    size_t len, cap, item;
} vec_t;

static inline void *vec_push(vec_t *v) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        char *nd = realloc(v->data, cap * v->item);
        if (!nd) return NULL;
        v->data = nd;
        v->cap = cap;
    }
    void *p = v->data + v->len * v->item;
    v->len++;
    memset(p, 0, v->item);
    return p;
}

static inline void *vec_at(vec_t *v, size_t i) { return v->data + i * v->item; }

/* Room for at least `n` items (0, or -1 out of memory). */
static inline int vec_reserve(vec_t *v, size_t n) {
    if (n <= v->cap) return 0;
    char *nd = realloc(v->data, n * v->item);
    if (!nd) return -1;
    v->data = nd;
    v->cap = n;
    return 0;
}

#endif
