/* Hash maps, byte buffers and a string pool: the helpers every part of clawtrace._ingest uses
 * (the writer of ingest.c and the parts compiled on their own). Header-only, no Python. */
#ifndef CLAWTRACE_INGEST_UTIL_H
#define CLAWTRACE_INGEST_UTIL_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

/* The derived sums' file beside a store (store.SUMS_SUFFIX), attached as `sums`. */
#define SUMS_SUFFIX "-sums"

static inline int sums_attach(sqlite3 *db, const char *store_path) {
    size_t n = strlen(store_path);
    char *target = malloc(n + sizeof SUMS_SUFFIX);
    if (!target) return -1;
    memcpy(target, store_path, n);
    memcpy(target + n, SUMS_SUFFIX, sizeof SUMS_SUFFIX);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS sums", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(target);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Hash maps: 64-bit hash -> index into an array that holds the full key. */

typedef struct {
    uint64_t *hashes;
    int32_t *idx; /* -1: empty */
    size_t cap, used;
} map_t;

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline int map_grow(map_t *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *h = malloc(cap * sizeof *h);
    int32_t *ix = malloc(cap * sizeof *ix);
    if (!h || !ix) {
        free(h);
        free(ix);
        return -1;
    }
    for (size_t i = 0; i < cap; i++) ix[i] = -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->idx[i] < 0) continue;
        size_t j = m->hashes[i] & (cap - 1);
        while (ix[j] >= 0) j = (j + 1) & (cap - 1);
        h[j] = m->hashes[i];
        ix[j] = m->idx[i];
    }
    free(m->hashes);
    free(m->idx);
    m->hashes = h;
    m->idx = ix;
    m->cap = cap;
    return 0;
}

/* The slot for `h` whose entry `eq` accepts, or the empty slot where it would go. */
typedef int (*map_eq)(void *ctx, int32_t idx);
static inline size_t map_slot(map_t *m, uint64_t h, map_eq eq, void *ctx) {
    size_t j = h & (m->cap - 1);
    while (m->idx[j] >= 0) {
        if (m->hashes[j] == h && (!eq || eq(ctx, m->idx[j]))) return j;
        j = (j + 1) & (m->cap - 1);
    }
    return j;
}

static inline int32_t map_get(map_t *m, uint64_t h, map_eq eq, void *ctx) {
    if (!m->cap) return -1;
    return m->idx[map_slot(m, h, eq, ctx)];
}

static inline int map_put(map_t *m, uint64_t h, int32_t value, map_eq eq, void *ctx) {
    if ((m->used + 1) * 2 > m->cap && map_grow(m) < 0) return -1;
    size_t j = map_slot(m, h, eq, ctx);
    if (m->idx[j] < 0) m->used++;
    m->hashes[j] = h;
    m->idx[j] = value;
    return 0;
}

static inline void map_clear(map_t *m) {
    for (size_t i = 0; i < m->cap; i++) m->idx[i] = -1;
    m->used = 0;
}

static inline void map_free(map_t *m) {
    free(m->hashes);
    free(m->idx);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------------------------------------
 * Byte buffers and a string pool */

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static inline int buf_add(buf_t *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

static inline int buf_addc(buf_t *b, char c) { return buf_add(b, &c, 1); }

/* JSON string exactly as orjson writes it (dimension ids hash orjson.dumps of their fields). */
static inline int buf_json_str(buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_addc(b, '"') < 0) return -1;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (buf_add(b, s + start, i - start) < 0) return -1;
        start = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t en = 2;
        switch (c) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\b': esc[1] = 'b'; break;
            case '\t': esc[1] = 't'; break;
            case '\n': esc[1] = 'n'; break;
            case '\f': esc[1] = 'f'; break;
            case '\r': esc[1] = 'r'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                en = 6;
        }
        if (buf_add(b, esc, en) < 0) return -1;
    }
    if (buf_add(b, s + start, n - start) < 0) return -1;
    return buf_addc(b, '"');
}

/* Strings that live as long as the Ingest: each kept once, by content. */
typedef struct {
    buf_t bytes;
    vec_t spans; /* (offset, len) */
    map_t index;
} pool_t;

typedef struct {
    size_t off, len;
} span_t;

typedef struct {
    pool_t *pool;
    str_t s;
} pool_probe;

static inline int pool_eq(void *ctx, int32_t idx) {
    pool_probe *pp = ctx;
    span_t *sp = vec_at(&pp->pool->spans, (size_t)idx);
    return sp->len == pp->s.n && memcmp(pp->pool->bytes.p + sp->off, pp->s.p, sp->len) == 0;
}

static inline uint64_t str_hash(str_t s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, then mixed */
    for (size_t i = 0; i < s.n; i++) h = (h ^ (unsigned char)s.p[i]) * 1099511628211ULL;
    return mix64(h ^ s.n);
}

/* The id of `s` in the pool (added when new), or -1 on memory error. */
static inline int32_t pool_id(pool_t *pool, str_t s) {
    pool_probe pp = {pool, s};
    uint64_t h = str_hash(s);
    int32_t id = map_get(&pool->index, h, pool_eq, &pp);
    if (id >= 0) return id;
    span_t *sp = vec_push(&pool->spans);
    if (!sp) return -1;
    sp->off = pool->bytes.n;
    sp->len = s.n;
    if (buf_add(&pool->bytes, s.p, s.n) < 0) return -1;
    id = (int32_t)(pool->spans.len - 1);
    if (map_put(&pool->index, h, id, pool_eq, &pp) < 0) return -1;
    return id;
}

static inline str_t pool_str(pool_t *pool, int32_t id) {
    span_t *sp = vec_at(&pool->spans, (size_t)id);
    str_t s = {pool->bytes.p + sp->off, sp->len};
    return s;
}

static inline void pool_clear(pool_t *pool) {
    pool->bytes.n = 0;
    pool->spans.len = 0;
    map_clear(&pool->index);
}

static inline void pool_free(pool_t *pool) {
    free(pool->bytes.p);
    free(pool->spans.data);
    map_free(&pool->index);
}

static inline int int64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : (x > y);
}

#endif
