/* clawtrace._ingest: a big scan's writer, without Python objects per turn.
 *
 * The same pipeline as the Python code, step for step, so that a store written by either is
 * the same store (tests/test_native_parity.py compares them row for row):
 *
 *   lines --parse.h--> turns of one read chunk, de-duplicated (ClaudeCode._keep)
 *         --end of chunk--> priced rows with dimension ids (scan._Ingest._price)
 *         --batch--> one row per key in the batch (store.rows_dedup)
 *         --commit--> SQLite: new rows inserted, stored keys merged by store.replaces with
 *                     rollup deltas (store.TurnWriter), rollup sums, the files' offsets.
 *
 * Lines the classifiers defer are parsed by Python and handed back as RawTurn tuples
 * (claude_add / add), in order. Prices come from Python (one call per model and UTC day; a
 * turn whose price is not plain integer arithmetic is priced by Python turn by turn).
 *
 * SQLite is the system library Python's sqlite3 module uses, through its C API: binding a
 * row through the sqlite3 module costs more than inserting it. */
#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <Python.h>

#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "rules.h"
#include "rules_py.h"

/* The derived sums' file beside a store (store.SUMS_SUFFIX), attached as `sums`. */
#define SUMS_SUFFIX "-sums"

static int sums_attach(sqlite3 *db, const char *store_path) {
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

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int map_grow(map_t *m) {
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
static size_t map_slot(map_t *m, uint64_t h, map_eq eq, void *ctx) {
    size_t j = h & (m->cap - 1);
    while (m->idx[j] >= 0) {
        if (m->hashes[j] == h && (!eq || eq(ctx, m->idx[j]))) return j;
        j = (j + 1) & (m->cap - 1);
    }
    return j;
}

static int32_t map_get(map_t *m, uint64_t h, map_eq eq, void *ctx) {
    if (!m->cap) return -1;
    return m->idx[map_slot(m, h, eq, ctx)];
}

static int map_put(map_t *m, uint64_t h, int32_t value, map_eq eq, void *ctx) {
    if ((m->used + 1) * 2 > m->cap && map_grow(m) < 0) return -1;
    size_t j = map_slot(m, h, eq, ctx);
    if (m->idx[j] < 0) m->used++;
    m->hashes[j] = h;
    m->idx[j] = value;
    return 0;
}

static void map_clear(map_t *m) {
    for (size_t i = 0; i < m->cap; i++) m->idx[i] = -1;
    m->used = 0;
}

static void map_free(map_t *m) {
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

static int buf_add(buf_t *b, const char *s, size_t n) {
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

static int buf_addc(buf_t *b, char c) { return buf_add(b, &c, 1); }

/* JSON string exactly as orjson writes it (dimension ids hash orjson.dumps of their fields). */
static int buf_json_str(buf_t *b, const char *s, size_t n) {
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

static int pool_eq(void *ctx, int32_t idx) {
    pool_probe *pp = ctx;
    span_t *sp = vec_at(&pp->pool->spans, (size_t)idx);
    return sp->len == pp->s.n && memcmp(pp->pool->bytes.p + sp->off, pp->s.p, sp->len) == 0;
}

static uint64_t str_hash(str_t s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, then mixed */
    for (size_t i = 0; i < s.n; i++) h = (h ^ (unsigned char)s.p[i]) * 1099511628211ULL;
    return mix64(h ^ s.n);
}

/* The id of `s` in the pool (added when new), or -1 on memory error. */
static int32_t pool_id(pool_t *pool, str_t s) {
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

static str_t pool_str(pool_t *pool, int32_t id) {
    span_t *sp = vec_at(&pool->spans, (size_t)id);
    str_t s = {pool->bytes.p + sp->off, sp->len};
    return s;
}

static void pool_clear(pool_t *pool) {
    pool->bytes.n = 0;
    pool->spans.len = 0;
    map_clear(&pool->index);
}

static void pool_free(pool_t *pool) {
    free(pool->bytes.p);
    free(pool->spans.data);
    map_free(&pool->index);
}

/* ---------------------------------------------------------------------------------------------
 * Records, rows, cards, rollups */

#define NO_STR (-1)

/* A bulk load's key journal: one record per row inserted, (key_hash, rowid, msg_hash,
 * context_id) as native int64s (Ingest.commit writes them, Ingest.settle reads them). */
#define JOURNAL_FIELDS 4
enum { J_KEY, J_ROWID, J_MSG, J_CTX };

#define TURN_PARAMS CT_NCOLS /* bind_row */
#define MAX_TOOLS 512 /* tool calls a record keeps (parse_line's MAX_VALUES bounds a line's) */
#define BULK_ROWS 16   /* rows a bulk load inserts a statement */

/* A turn of the current chunk (before pricing). Strings are pool ids. */
typedef struct {
    int64_t key_hash, msg_hash;
    int has_msg;
    int32_t agent, project, session, subagent, model, provider, speed, branch; /* NO_STR: None */
    int sidechain;
    int64_t ts, tok[6];
    int has_reported;
    double reported;
    int32_t tools_head, tools_tail; /* list in `ctools` (Claude: by tool_use id) */
    int32_t ntools;
} rec_t;

/* A tool call of a record: key, the pool id of its tool_use id (or "#n"); name, a pool id. */
typedef ct_tool_link rtool_t;

typedef ct_row_t row_t; /* store.TURN_COLUMNS */

typedef struct {
    int64_t model_id, day;
    ct_card_t c;
} card_t;

typedef struct {
    int64_t bucket, ctx, model;
    __int128 m[CT_N_METRICS]; /* (wider than a column: split into rows that fit when written) */
    int64_t first_ts, last_ts;
    int has_ts;
} agg_t;

typedef struct {
    int64_t bucket, ctx, model;
    int32_t tool; /* pool id */
    int64_t calls, turns;
    double a, c, d;
} tagg_t;

typedef struct {
    int64_t id;
    int kind; /* 0 context, 1 model, 2 price source, 3 toolset */
    int32_t s[7];
    int64_t sidechain;
} pending_t;

typedef struct { /* toolset id -> names (pool ids), in order */
    int64_t id;
    size_t start, n; /* into `tnames` */
} toolset_t;

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    sqlite3_stmt *ins_turn, *sel_turn, *upd_turn, *ins_rollup, *ins_tool, *ins_dirty;
    sqlite3_stmt *ins_ctx, *ins_model, *ins_src, *ins_toolset, *upd_fresh, *upd_grown, *ins_file;
    sqlite3_stmt *sel_msg, *sel_row, *del_row; /* the sidechain-replay rule at every commit */
    PyObject *card_for, *price_slow;
    int64_t reported_id, none_id;
    int bulk;     /* 1: a first load into an empty store (no unique key index until it is done);
                     2: maintenance (settle), no turn inserts */
    FILE *keys;   /* bulk: a journal record for every row inserted, for settle */
    int prepared; /* bulk: the batch's rows are in the rollups already */
    sqlite3_stmt *ins_turn_bulk, *ins_turn_many;
    arena_t arena;
    vec_t ctools_scratch, otools_scratch;
    pool_t pool;
    pool_t chunk_pool; /* tool_use ids: compared within a chunk only, never kept */
    /* the chunk being parsed (Claude de-duplicates within it) */
    vec_t recs;    /* rec_t */
    vec_t rtools;  /* rtool_t */
    map_t rec_by_key;
    /* the batch */
    vec_t rows; /* row_t */
    map_t row_by_key;
    /* dimensions known to be in the store (or about to be) */
    map_t dims_known;
    vec_t dims_ids; /* int64_t, the ids behind dims_known */
    vec_t pending;  /* pending_t */
    vec_t toolsets; /* toolset_t */
    vec_t tnames;   /* int32_t */
    map_t toolset_by_id;
    /* prices */
    vec_t cards;
    map_t card_by_key;
    /* rollups */
    vec_t aggs, taggs;
    map_t agg_by_key, tagg_by_key;
    /* buckets that had rollup rows before the scan: recomputed at its end, never added to */
    map_t stale;
    vec_t stale_ids;
    buf_t enc;
    /* The key of the last Claude record hashed and its two hashes: the pieces of a streamed
     * message sit on consecutive lines with the same ids (two BLAKE2b calls each otherwise). */
    buf_t last_key;
    size_t last_mid_len;
    int64_t last_key_hash, last_msg_hash;
    /* dimension ids by the pool ids of their fields (hashing an encoding once per new one) */
    vec_t key_cache; /* keyed_t */
    map_t key_cache_map;
    vec_t seq_ints;  /* int32_t: toolset name sequences of key_cache entries */
    /* pool ids of constant strings */
    int32_t s_claude, s_anthropic, s_empty, s_unknown, s_src_claude, s_src_openclaw;
} Ingest;

/* ---------------------------------------------------------------------------------------------
 * Small helpers over the Ingest */

static int64_t dim_hash(buf_t *enc) { return hash64(enc->p, enc->n); }

typedef struct {
    vec_t *ids;
    int64_t id;
} id_probe;

static int id_eq(void *ctx, int32_t idx) {
    id_probe *p = ctx;
    return *(int64_t *)vec_at(p->ids, (size_t)idx) == p->id;
}

/* Whether `id` is a known dimension row; remembers it. Returns 1 when it was new. */
static int dim_seen(Ingest *self, int64_t id) {
    id_probe p = {&self->dims_ids, id};
    uint64_t h = mix64((uint64_t)id);
    if (map_get(&self->dims_known, h, id_eq, &p) >= 0) return 0;
    int64_t *slot = vec_push(&self->dims_ids);
    if (!slot) return -1;
    *slot = id;
    if (map_put(&self->dims_known, h, (int32_t)(self->dims_ids.len - 1), id_eq, &p) < 0)
        return -1;
    return 1;
}

static int enc_begin(Ingest *self, const char *kind) {
    self->enc.n = 0;
    return buf_addc(&self->enc, '[') < 0 ? -1 : buf_json_str(&self->enc, kind, strlen(kind));
}

static int enc_str(Ingest *self, int32_t sid) {
    if (buf_addc(&self->enc, ',') < 0) return -1;
    if (sid == NO_STR) return buf_add(&self->enc, "null", 4);
    str_t s = pool_str(&self->pool, sid);
    return buf_json_str(&self->enc, s.p, s.n);
}

static int enc_int(Ingest *self, int64_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, ",%lld", (long long)v);
    return buf_add(&self->enc, tmp, (size_t)n);
}

static int enc_end(Ingest *self) { return buf_addc(&self->enc, ']'); }

static int pending_add(Ingest *self, int64_t id, int kind, const int32_t *s, int ns,
                       int64_t sidechain) {
    pending_t *p = vec_push(&self->pending);
    if (!p) return -1;
    p->id = id;
    p->kind = kind;
    for (int i = 0; i < ns; i++) p->s[i] = s[i];
    p->sidechain = sidechain;
    return 0;
}

static int32_t intern_py(Ingest *self, PyObject *o) {
    if (o == Py_None) return NO_STR;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s) return -2;
    str_t st = {s, (size_t)n};
    int32_t id = pool_id(&self->pool, st);
    if (id < 0) PyErr_NoMemory();
    return id < 0 ? -2 : id;
}

static int32_t intern(Ingest *self, str_t s) {
    int32_t id = pool_id(&self->pool, s);
    if (id < 0) PyErr_NoMemory();
    return id < 0 ? -2 : id;
}

static PyObject *py_str(Ingest *self, int32_t sid) {
    if (sid == NO_STR) Py_RETURN_NONE;
    str_t s = pool_str(&self->pool, sid);
    return PyUnicode_DecodeUTF8(s.p, (Py_ssize_t)s.n, "strict");
}

/* ---------------------------------------------------------------------------------------------
 * Dimensions */

typedef struct {
    int kind;      /* 'c', 'm', 't' */
    int32_t k[8];  /* fields (pool ids); toolsets: the sequence lives in seq_ints */
    size_t start, n;
    int64_t id;
} keyed_t;

typedef struct {
    Ingest *self;
    int kind;
    const int32_t *k;
    size_t n;
} keyed_probe;

static int keyed_eq(void *ctx, int32_t idx) {
    keyed_probe *p = ctx;
    keyed_t *e = vec_at(&p->self->key_cache, (size_t)idx);
    if (e->kind != p->kind || e->n != p->n) return 0;
    const int32_t *have = p->kind == 't' ? (int32_t *)vec_at(&p->self->seq_ints, e->start) : e->k;
    return memcmp(have, p->k, p->n * sizeof(int32_t)) == 0;
}

static uint64_t ints_hash(int kind, const int32_t *k, size_t n) {
    uint64_t h = mix64((uint64_t)kind * 0x9e3779b97f4a7c15ULL + n);
    for (size_t i = 0; i < n; i++) h = mix64(h ^ (uint64_t)(uint32_t)k[i]);
    return h;
}

/* The cached id of (kind, fields), or 0 with *slot_hash set for `cache_put`. */
static int64_t cache_get(Ingest *self, int kind, const int32_t *k, size_t n, uint64_t *h) {
    keyed_probe p = {self, kind, k, n};
    *h = ints_hash(kind, k, n);
    int32_t i = map_get(&self->key_cache_map, *h, keyed_eq, &p);
    return i < 0 ? 0 : ((keyed_t *)vec_at(&self->key_cache, (size_t)i))->id;
}

static int cache_put(Ingest *self, int kind, const int32_t *k, size_t n, uint64_t h, int64_t id) {
    keyed_t *e = vec_push(&self->key_cache);
    if (!e) return -1;
    e->kind = kind;
    e->n = n;
    e->id = id;
    if (kind == 't') {
        e->start = self->seq_ints.len;
        for (size_t i = 0; i < n; i++) {
            int32_t *slot = vec_push(&self->seq_ints);
            if (!slot) return -1;
            *slot = k[i];
        }
        e = vec_at(&self->key_cache, self->key_cache.len - 1);
    } else {
        memcpy(e->k, k, n * sizeof(int32_t));
    }
    keyed_probe p = {self, kind, k, n};
    return map_put(&self->key_cache_map, h, (int32_t)(self->key_cache.len - 1), keyed_eq, &p);
}

/* store.dim_id("c", source, agent, project, session_id, subagent, is_sidechain, git_branch) */
static int64_t context_id(Ingest *self, int32_t source, rec_t *r) {
    int32_t s[7] = {source, r->agent, r->project, r->session, r->subagent, r->branch, 0};
    int32_t key[7] = {source, r->agent, r->project, r->session, r->subagent, r->branch,
                      r->sidechain};
    uint64_t h;
    int64_t cached = cache_get(self, 'c', key, 7, &h);
    if (cached) return cached;
    if (enc_begin(self, "c") < 0 || enc_str(self, source) < 0 || enc_str(self, r->agent) < 0 ||
        enc_str(self, r->project) < 0 || enc_str(self, r->session) < 0 ||
        enc_str(self, r->subagent) < 0 || enc_int(self, r->sidechain) < 0 ||
        enc_str(self, r->branch) < 0 || enc_end(self) < 0) {
        PyErr_NoMemory();
        return 0;
    }
    int64_t id = dim_hash(&self->enc);
    int fresh = dim_seen(self, id);
    if (fresh < 0 || (fresh && pending_add(self, id, 0, s, 6, r->sidechain) < 0) ||
        cache_put(self, 'c', key, 7, h, id) < 0) {
        PyErr_NoMemory();
        return 0;
    }
    return id;
}

/* store.dim_id("m", provider, model, speed) */
static int64_t model_id(Ingest *self, rec_t *r) {
    int32_t s[3] = {r->provider, r->model, r->speed};
    uint64_t h;
    int64_t cached = cache_get(self, 'm', s, 3, &h);
    if (cached) return cached;
    if (enc_begin(self, "m") < 0 || enc_str(self, r->provider) < 0 || enc_str(self, r->model) < 0 ||
        enc_str(self, r->speed) < 0 || enc_end(self) < 0) {
        PyErr_NoMemory();
        return 0;
    }
    int64_t id = dim_hash(&self->enc);
    int fresh = dim_seen(self, id);
    if (fresh < 0 || (fresh && pending_add(self, id, 1, s, 3, 0) < 0) ||
        cache_put(self, 'm', s, 3, h, id) < 0) {
        PyErr_NoMemory();
        return 0;
    }
    return id;
}

/* A price source named by Python: remembered for insertion. */
static int source_known(Ingest *self, int64_t id, PyObject *name) {
    int fresh = dim_seen(self, id);
    if (fresh < 0) return -1;
    if (!fresh) return 0;
    int32_t s = intern_py(self, name);
    if (s < 0) return -1;
    return pending_add(self, id, 2, &s, 1, 0);
}

typedef struct {
    Ingest *self;
    int64_t id;
} ts_probe;

static int toolset_eq(void *ctx, int32_t idx) {
    ts_probe *p = ctx;
    return ((toolset_t *)vec_at(&p->self->toolsets, (size_t)idx))->id == p->id;
}

static toolset_t *toolset_get(Ingest *self, int64_t id) {
    ts_probe p = {self, id};
    int32_t i = map_get(&self->toolset_by_id, mix64((uint64_t)id), toolset_eq, &p);
    return i < 0 ? NULL : vec_at(&self->toolsets, (size_t)i);
}

/* store.Dims.toolset: id of a list of tool names (0 for none). */
static int64_t toolset_id(Ingest *self, const int32_t *names, size_t n) {
    if (n == 0) return 0;
    uint64_t h;
    int64_t cached = cache_get(self, 't', names, n, &h);
    if (cached) return cached;
    buf_t text = {NULL, 0, 0};
    int bad = buf_addc(&text, '[') < 0;
    for (size_t i = 0; i < n && !bad; i++) {
        str_t s = pool_str(&self->pool, names[i]);
        bad = (i && buf_addc(&text, ',') < 0) || buf_json_str(&text, s.p, s.n) < 0;
    }
    bad = bad || buf_addc(&text, ']') < 0;
    str_t ts = {text.p, text.n};
    int32_t text_id = bad ? -1 : pool_id(&self->pool, ts);
    free(text.p);
    if (text_id < 0 || enc_begin(self, "t") < 0 || enc_str(self, text_id) < 0 || enc_end(self) < 0) {
        PyErr_NoMemory();
        return 0;
    }
    int64_t id = dim_hash(&self->enc);
    if (!toolset_get(self, id)) {
        toolset_t *t = vec_push(&self->toolsets);
        if (!t) {
            PyErr_NoMemory();
            return 0;
        }
        t->id = id;
        t->start = self->tnames.len;
        t->n = n;
        for (size_t i = 0; i < n; i++) {
            int32_t *slot = vec_push(&self->tnames);
            if (!slot) {
                PyErr_NoMemory();
                return 0;
            }
            *slot = names[i];
        }
        ts_probe p = {self, id};
        if (map_put(&self->toolset_by_id, mix64((uint64_t)id), (int32_t)(self->toolsets.len - 1),
                    toolset_eq, &p) < 0) {
            PyErr_NoMemory();
            return 0;
        }
    }
    int fresh = dim_seen(self, id);
    if (fresh < 0 || (fresh && pending_add(self, id, 3, &text_id, 1, 0) < 0) ||
        cache_put(self, 't', names, n, h, id) < 0) {
        PyErr_NoMemory();
        return 0;
    }
    return id;
}

/* The names of a toolset the store holds (asked from SQLite when this process never made it). */
static toolset_t *toolset_load(Ingest *self, int64_t id) {
    toolset_t *t = toolset_get(self, id);
    if (t || id == 0) return t;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(self->db, "SELECT tools FROM toolsets WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(st, 1, id);
    int32_t names[256];
    size_t n = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        yyjson_doc *doc = text ? yyjson_read(text, (size_t)len, 0) : NULL;
        yyjson_val *arr = doc ? yyjson_doc_get_root(doc) : NULL;
        if (arr && yyjson_is_arr(arr)) {
            yyjson_arr_iter it;
            yyjson_val *v;
            yyjson_arr_iter_init(arr, &it);
            while ((v = yyjson_arr_iter_next(&it)) && n < 256)
                if (yyjson_is_str(v)) names[n++] = pool_id(&self->pool, str_of(v));
        }
        if (doc) yyjson_doc_free(doc);
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < n; i++)
        if (names[i] < 0) return NULL;
    /* Register it under its stored id (the text round-trips to the same id). */
    toolset_t *nt = vec_push(&self->toolsets);
    if (!nt) return NULL;
    nt->id = id;
    nt->start = self->tnames.len;
    nt->n = n;
    for (size_t i = 0; i < n; i++) {
        int32_t *slot = vec_push(&self->tnames);
        if (!slot) return NULL;
        *slot = names[i];
    }
    ts_probe p = {self, id};
    if (map_put(&self->toolset_by_id, mix64((uint64_t)id), (int32_t)(self->toolsets.len - 1),
                toolset_eq, &p) < 0)
        return NULL;
    dim_seen(self, id);
    return vec_at(&self->toolsets, self->toolsets.len - 1);
}

/* ---------------------------------------------------------------------------------------------
 * Prices */

typedef struct {
    Ingest *self;
    int64_t model, day;
} card_probe;

static int card_eq(void *ctx, int32_t idx) {
    card_probe *p = ctx;
    card_t *c = vec_at(&p->self->cards, (size_t)idx);
    return c->model_id == p->model && c->day == p->day;
}

/* The card for (model dimension, UTC day): asks Python the first time. */
static card_t *card_get(Ingest *self, rec_t *r, int64_t mid, int64_t day) {
    card_probe p = {self, mid, day};
    uint64_t h = mix64((uint64_t)mid ^ mix64((uint64_t)day));
    int32_t i = map_get(&self->card_by_key, h, card_eq, &p);
    if (i >= 0) return vec_at(&self->cards, (size_t)i);
    PyObject *prov = py_str(self, r->provider), *model = py_str(self, r->model);
    PyObject *speed = py_str(self, r->speed);
    PyObject *v = prov && model && speed
                      ? PyObject_CallFunction(self->card_for, "OOLO", prov, model, (long long)r->ts,
                                              speed)
                      : NULL;
    Py_XDECREF(prov);
    Py_XDECREF(model);
    Py_XDECREF(speed);
    if (!v) return NULL;
    card_t *c = vec_push(&self->cards);
    if (!c) {
        Py_DECREF(v);
        PyErr_NoMemory();
        return NULL;
    }
    c->model_id = mid;
    c->day = day;
    int bad = ct_card_from_py(v, &c->c) < 0;
    if (!bad && PyTuple_Check(v) && PyTuple_GET_SIZE(v) == 3) {
        /* (source id, source name, tiers): a price source to insert */
        long long src = PyLong_AsLongLong(PyTuple_GET_ITEM(v, 0));
        bad = (src == -1 && PyErr_Occurred()) || source_known(self, src, PyTuple_GET_ITEM(v, 1)) < 0;
    }
    Py_DECREF(v);
    if (bad) return NULL;
    if (map_put(&self->card_by_key, h, (int32_t)(self->cards.len - 1), card_eq, &p) < 0) {
        PyErr_NoMemory();
        return NULL;
    }
    return vec_at(&self->cards, self->cards.len - 1);
}

static int price_slow(Ingest *self, rec_t *r, row_t *row) {
    PyObject *prov = py_str(self, r->provider), *model = py_str(self, r->model);
    PyObject *speed = py_str(self, r->speed);
    PyObject *rep = row->has_rep ? PyLong_FromLongLong(row->rep) : (Py_INCREF(Py_None), Py_None);
    PyObject *v = NULL;
    if (prov && model && speed && rep)
        v = PyObject_CallFunction(self->price_slow, "OOL(LLLLLL)OO", prov, model, (long long)r->ts,
                                  r->tok[0], r->tok[1], r->tok[2], r->tok[3], r->tok[4], r->tok[5],
                                  speed, rep);
    Py_XDECREF(prov);
    Py_XDECREF(model);
    Py_XDECREF(speed);
    Py_XDECREF(rep);
    if (!v) return -1;
    /* (cost or None, source id, source name, savings, writes) */
    if (!PyTuple_Check(v) || PyTuple_GET_SIZE(v) != 5) {
        Py_DECREF(v);
        PyErr_SetString(PyExc_TypeError, "price_slow must return a 5-tuple");
        return -1;
    }
    PyObject *cost = PyTuple_GET_ITEM(v, 0);
    row->has_cost = cost != Py_None;
    row->cost = row->has_cost ? PyLong_AsLongLong(cost) : 0;
    row->src = PyLong_AsLongLong(PyTuple_GET_ITEM(v, 1));
    row->sav = PyLong_AsLongLong(PyTuple_GET_ITEM(v, 3));
    row->wc = PyLong_AsLongLong(PyTuple_GET_ITEM(v, 4));
    int rc = PyErr_Occurred() ? -1 : source_known(self, row->src, PyTuple_GET_ITEM(v, 2));
    Py_DECREF(v);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Rows of the batch */

typedef struct {
    Ingest *self;
    int64_t key;
} key_probe;

static int row_key_eq(void *ctx, int32_t idx) {
    key_probe *p = ctx;
    return ((row_t *)vec_at(&p->self->rows, (size_t)idx))->key_hash == p->key;
}

/* store.merge_rows: the winner (ct_replaces), with both rows' tool names (ct_tools_merge). */
static int merge_rows(Ingest *self, const row_t *old, const row_t *new_, row_t *out) {
    toolset_t *to = old->toolset ? toolset_load(self, old->toolset) : NULL;
    toolset_t *tn = new_->toolset ? toolset_load(self, new_->toolset) : NULL;
    if ((old->toolset && !to) || (new_->toolset && !tn)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "unknown toolset");
        return -1;
    }
    *out = ct_replaces(new_, old) ? *new_ : *old;
    size_t no = to ? to->n : 0, nn = tn ? tn->n : 0;
    int32_t merged[MAX_TOOLS];
    size_t n = ct_tools_merge(no ? vec_at(&self->tnames, to->start) : NULL, no,
                              nn ? vec_at(&self->tnames, tn->start) : NULL, nn, merged, MAX_TOOLS);
    if (n == no) {
        out->toolset = old->toolset;
    } else {
        out->toolset = toolset_id(self, merged, n);
        if (PyErr_Occurred()) return -1;
    }
    return 0;
}

static int row_add(Ingest *self, const row_t *row) {
    key_probe p = {self, row->key_hash};
    uint64_t h = mix64((uint64_t)row->key_hash);
    int32_t i = map_get(&self->row_by_key, h, row_key_eq, &p);
    if (i >= 0) {
        row_t *old = vec_at(&self->rows, (size_t)i);
        row_t merged;
        if (merge_rows(self, old, row, &merged) < 0) return -1;
        *old = merged;
        return 0;
    }
    row_t *slot = vec_push(&self->rows);
    if (!slot) {
        PyErr_NoMemory();
        return -1;
    }
    *slot = *row;
    if (map_put(&self->row_by_key, h, (int32_t)(self->rows.len - 1), row_key_eq, &p) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* scan._Ingest._price for one record of `source` (a pool id). */
static int rec_to_row(Ingest *self, rec_t *r, int32_t source, int64_t file_id, int has_file) {
    row_t row;
    memset(&row, 0, sizeof row);
    row.key_hash = r->key_hash;
    row.msg_hash = r->msg_hash;
    row.has_msg = r->has_msg;
    row.file_id = file_id;
    row.has_file = has_file;
    row.ctx = context_id(self, source, r);
    if (PyErr_Occurred()) return -1;
    row.model = model_id(self, r);
    if (PyErr_Occurred()) return -1;
    row.ts = r->ts;
    memcpy(row.tok, r->tok, sizeof row.tok);
    if (r->has_reported) {
        row.has_rep = 1;
        row.rep = ct_reported_pico(r->reported);
    }
    card_t *card = card_get(self, r, row.model, ct_floor_div(r->ts, CT_DAY_MS));
    if (!card) return -1;
    if (!ct_row_price(&row, &card->c, self->reported_id, self->none_id) &&
        price_slow(self, r, &row) < 0)
        return -1;
    int32_t names[MAX_TOOLS];
    size_t n = 0;
    for (int32_t t = r->tools_head; t >= 0 && n < MAX_TOOLS;) {
        rtool_t *rt = vec_at(&self->rtools, (size_t)t);
        names[n++] = rt->name;
        t = rt->next;
    }
    row.toolset = toolset_id(self, names, n);
    if (PyErr_Occurred()) return -1;
    return row_add(self, &row);
}

/* ---------------------------------------------------------------------------------------------
 * Records of the current chunk */

typedef struct {
    Ingest *self;
    int64_t key;
} rec_probe;

static int rec_key_eq(void *ctx, int32_t idx) {
    rec_probe *p = ctx;
    return ((rec_t *)vec_at(&p->self->recs, (size_t)idx))->key_hash == p->key;
}

/* rules.keep's tools: (key, name) into the record's list (ct_tools_put). */
static int rec_tool_add(Ingest *self, rec_t *r, int32_t key, int32_t name) {
    if (!vec_push(&self->rtools)) return -1; /* room for a new one, given back if not used */
    int32_t fresh = (int32_t)(self->rtools.len - 1);
    if (ct_tools_put((rtool_t *)self->rtools.data, &r->tools_head, &r->tools_tail, fresh, key,
                     name))
        r->ntools++;
    else
        self->rtools.len--;
    return 0;
}

/* rules.keep, for a record whose tools are (key, name) pool id pairs. */
static int rec_keep(Ingest *self, rec_t *r, const int32_t *tool_pairs, size_t ntools) {
    rec_probe p = {self, r->key_hash};
    uint64_t h = mix64((uint64_t)r->key_hash);
    int32_t i = map_get(&self->rec_by_key, h, rec_key_eq, &p);
    rec_t *target;
    if (i < 0) {
        rec_t *slot = vec_push(&self->recs);
        if (!slot) return -1;
        *slot = *r;
        slot->tools_head = slot->tools_tail = -1;
        slot->ntools = 0;
        if (map_put(&self->rec_by_key, h, (int32_t)(self->recs.len - 1), rec_key_eq, &p) < 0)
            return -1;
        target = slot;
    } else {
        rec_t *prev = vec_at(&self->recs, (size_t)i);
        if (ct_keep_wins(r->tok, prev->tok)) {
            int32_t head = prev->tools_head, tail = prev->tools_tail, nt = prev->ntools;
            *prev = *r;
            prev->tools_head = head;
            prev->tools_tail = tail;
            prev->ntools = nt;
        }
        target = prev;
    }
    for (size_t k = 0; k < ntools; k++)
        if (rec_tool_add(self, target, tool_pairs[2 * k], tool_pairs[2 * k + 1]) < 0) return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Python methods: parsing */


/* Whether the key in `enc` (message id of `mid_len` bytes, then maybe ":<requestId>") is the
 * last one hashed, whose hashes then stand. */
static int claude_hash_again(Ingest *self, size_t mid_len) {
    return self->last_key.p && self->last_key.n == self->enc.n && self->last_mid_len == mid_len &&
           memcmp(self->last_key.p, self->enc.p, self->enc.n) == 0;
}

/* Ingest.claude(data, pos, end, last_cwd, project_fallback, session_hint, subagent_file)
 *   -> (pos, last_cwd, lines, malformed, turn_lines, skipped, deferred) */
static PyObject *Ingest_claude(Ingest *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end;
    PyObject *last_cwd, *fallback, *hint;
    int subagent_file;
    if (!PyArg_ParseTuple(args, "y*nnOUUp", &view, &pos, &end, &last_cwd, &fallback, &hint,
                          &subagent_file))
        return NULL;
    if (pos < 0 || end > view.len || pos > end ||
        (last_cwd != Py_None && !PyUnicode_Check(last_cwd))) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "Ingest.claude: bad arguments");
        return NULL;
    }
    int32_t cwd = intern_py(self, last_cwd), fb = intern_py(self, fallback);
    int32_t hint_id = intern_py(self, hint);
    long long lines = 0, malformed = 0, turn_lines = 0, skipped = 0;
    int deferred = 0, failed = cwd == -2 || fb == -2 || hint_id == -2;
    const char *data = view.buf;
    int32_t pairs[2 * MAX_TOOLS];
    while (!failed && pos < end) {
        const char *nl = memchr(data + pos, '\n', (size_t)(end - pos));
        if (!nl) break;
        size_t len = (size_t)(nl - (data + pos));
        cline_t c;
        claude_classify(&self->arena, data + pos, len, subagent_file, &self->ctools_scratch, &c);
        if (c.outcome == O_DEFER) {
            deferred = 1;
            break;
        }
        if (c.has_cwd && (cwd = intern(self, c.cwd)) < 0) failed = 1;
        if (!failed && c.outcome == O_RECORD) {
            rec_t r;
            memset(&r, 0, sizeof r);
            /* key = "<message.id>:<requestId>" or the id alone */
            buf_t *k = &self->enc;
            k->n = 0;
            failed = buf_add(k, c.mid.p, c.mid.n) < 0 ||
                     (c.has_rid && (buf_addc(k, ':') < 0 || buf_add(k, c.rid.p, c.rid.n) < 0));
            if (!failed && !claude_hash_again(self, c.mid.n)) {
                self->last_key_hash = hash64(k->p, k->n);
                self->last_msg_hash = hash64(c.mid.p, c.mid.n);
                self->last_mid_len = c.mid.n;
                self->last_key.n = 0;
                failed = buf_add(&self->last_key, k->p, k->n) < 0;
            }
            r.key_hash = self->last_key_hash;
            r.msg_hash = self->last_msg_hash;
            r.has_msg = 1;
            r.subagent = c.has_agent_id ? intern(self, c.agent_id) : NO_STR;
            r.agent = c.sidechain && c.has_agent_id ? r.subagent : self->s_claude;
            r.project = cwd != NO_STR ? cwd : fb;
            r.session = c.has_session ? intern(self, c.session) : hint_id;
            r.sidechain = c.sidechain;
            r.model = intern(self, c.model);
            r.provider = self->s_anthropic;
            r.speed = c.has_speed ? intern(self, c.speed) : NO_STR;
            r.branch = c.has_branch ? intern(self, c.branch) : self->s_empty;
            r.ts = c.ts;
            memcpy(r.tok, c.tok, sizeof r.tok);
            r.has_reported = c.has_reported;
            r.reported = c.reported;
            size_t nt = c.ntools < MAX_TOOLS ? c.ntools : MAX_TOOLS;
            ctool_t *tools = (ctool_t *)self->ctools_scratch.data;
            for (size_t i = 0; i < nt && !failed; i++) {
                char idx[32];
                str_t key = tools[i].id;
                if (!tools[i].has_id) {
                    key.n = (size_t)snprintf(idx, sizeof idx, "#%zu", tools[i].index);
                    key.p = idx;
                }
                pairs[2 * i] = pool_id(&self->chunk_pool, key);
                pairs[2 * i + 1] = intern(self, tools[i].name);
                failed = pairs[2 * i] < 0 || pairs[2 * i + 1] < 0;
            }
            failed = failed || r.subagent == -2 || r.session == -2 || r.model == -2 ||
                     r.speed == -2 || r.branch == -2 || rec_keep(self, &r, pairs, nt) < 0;
        }
        if (failed) break;
        lines++;
        malformed += c.outcome == O_MALFORMED;
        skipped += c.outcome == O_SKIPPED;
        turn_lines += c.turn_line;
        pos += (Py_ssize_t)len + 1;
    }
    PyBuffer_Release(&view);
    if (failed) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    PyObject *cwd_o = py_str(self, cwd);
    if (!cwd_o) return NULL;
    return Py_BuildValue("(nNLLLLO)", pos, cwd_o, lines, malformed, turn_lines, skipped,
                         deferred ? Py_True : Py_False);
}

static int64_t py_i64(PyObject *o, int *ok) {
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) *ok = 0;
    return v;
}

/* A RawTurn tuple (sources.base) as a record; tools in `pairs` as (key, name) pool ids. */
static int rec_from_tuple(Ingest *self, PyObject *t, rec_t *r, int32_t *pairs, size_t *ntools) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != CT_RT_LEN) {
        PyErr_SetString(PyExc_TypeError, "a record is a 21-tuple");
        return -1;
    }
#define T(k) PyTuple_GET_ITEM(t, CT_RT_##k)
    int ok = 1;
    memset(r, 0, sizeof *r);
    r->key_hash = py_i64(T(KEY_HASH), &ok);
    r->has_msg = T(MSG_HASH) != Py_None;
    if (r->has_msg) r->msg_hash = py_i64(T(MSG_HASH), &ok);
    r->agent = intern_py(self, T(AGENT));
    r->project = intern_py(self, T(PROJECT));
    r->session = intern_py(self, T(SESSION));
    r->subagent = intern_py(self, T(SUBAGENT));
    r->sidechain = (int)py_i64(T(SIDECHAIN), &ok);
    r->model = intern_py(self, T(MODEL));
    r->provider = intern_py(self, T(PROVIDER));
    r->ts = py_i64(T(TS), &ok);
    if (ok && ct_tok_from_py(t, CT_RT_INPUT, r->tok) < 0) ok = 0;
    r->speed = intern_py(self, T(SPEED));
    PyObject *rep = T(REPORTED_USD);
    r->has_reported = rep != Py_None;
    if (r->has_reported) r->reported = PyFloat_AsDouble(rep);
    r->branch = intern_py(self, T(GIT_BRANCH));
    if (!ok || PyErr_Occurred() || r->agent == -2 || r->project == -2 || r->session == -2 ||
        r->subagent == -2 || r->model == -2 || r->provider == -2 || r->speed == -2 ||
        r->branch == -2)
        return -1;
    PyObject *tools = T(TOOLS);
#undef T
    size_t n = 0;
    if (PyDict_Check(tools)) {
        Py_ssize_t i = 0;
        PyObject *k, *v;
        while (PyDict_Next(tools, &i, &k, &v) && n < MAX_TOOLS) {
            Py_ssize_t kn;
            const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kn) : NULL;
            if (!ks) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "tool ids are str");
                return -1;
            }
            str_t kst = {ks, (size_t)kn};
            pairs[2 * n] = pool_id(&self->chunk_pool, kst);
            pairs[2 * n + 1] = intern_py(self, v);
            if (pairs[2 * n] < 0 || pairs[2 * n + 1] < 0) return -1;
            n++;
        }
    } else if (PyTuple_Check(tools)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tools) && n < MAX_TOOLS; i++) {
            pairs[2 * n] = (int32_t)i; /* positions: a tuple keeps repeats */
            pairs[2 * n + 1] = intern_py(self, PyTuple_GET_ITEM(tools, i));
            if (pairs[2 * n + 1] < 0) return -1;
            n++;
        }
    } else {
        PyErr_SetString(PyExc_TypeError, "record tools must be a dict or a tuple");
        return -1;
    }
    *ntools = n;
    return 0;
}

/* Ingest.claude_add(record): a RawTurn Python parsed (a deferred line) into the chunk. */
static PyObject *Ingest_claude_add(Ingest *self, PyObject *t) {
    rec_t r;
    int32_t pairs[2 * MAX_TOOLS];
    size_t n;
    if (rec_from_tuple(self, t, &r, pairs, &n) < 0) return NULL;
    if (rec_keep(self, &r, pairs, n) < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* Ingest.claude_end(file_id) -> turns: the chunk's records become priced rows. */
static PyObject *Ingest_claude_end(Ingest *self, PyObject *arg) {
    int ok = 1;
    int has_file = arg != Py_None;
    int64_t file_id = has_file ? py_i64(arg, &ok) : 0;
    if (!ok) return NULL;
    size_t n = self->recs.len;
    int failed = 0;
    for (size_t i = 0; i < n && !failed; i++)
        failed = rec_to_row(self, vec_at(&self->recs, i), self->s_src_claude, file_id, has_file) < 0;
    self->recs.len = 0;
    self->rtools.len = 0;
    map_clear(&self->rec_by_key);
    pool_clear(&self->chunk_pool);
    if (failed) return NULL;
    return PyLong_FromSize_t(n);
}

/* Ingest.add(record, source, file_id): a RawTurn (tools a tuple) straight to a row. */
static PyObject *Ingest_add(Ingest *self, PyObject *args) {
    PyObject *t, *source, *file;
    if (!PyArg_ParseTuple(args, "OUO", &t, &source, &file)) return NULL;
    rec_t r;
    int32_t pairs[2 * MAX_TOOLS];
    size_t n;
    int ok = 1;
    int64_t file_id = file != Py_None ? py_i64(file, &ok) : 0;
    int32_t src = intern_py(self, source);
    if (!ok || src < 0 || rec_from_tuple(self, t, &r, pairs, &n) < 0) return NULL;
    r.tools_head = r.tools_tail = -1;
    size_t mark = self->rtools.len;
    for (size_t k = 0; k < n; k++) {
        rtool_t *nt = vec_push(&self->rtools);
        if (!nt) return PyErr_NoMemory();
        nt->key = pairs[2 * k];
        nt->name = pairs[2 * k + 1];
        nt->next = -1;
        int32_t id = (int32_t)(self->rtools.len - 1);
        if (r.tools_tail >= 0) ((rtool_t *)vec_at(&self->rtools, (size_t)r.tools_tail))->next = id;
        else r.tools_head = id;
        r.tools_tail = id;
    }
    int rc = rec_to_row(self, &r, src, file_id, file != Py_None);
    self->rtools.len = mark;
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* Ingest.openclaw(data, pos, end, base_offset, agent, session_hint, subagent, session_key,
 *                 (session_id, cwd, provider, model), file_id)
 *   -> (pos, state, lines, malformed, turn_lines, skipped, deferred, turns) */
static PyObject *Ingest_openclaw(Ingest *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end;
    long long base;
    PyObject *agent, *hint, *skey, *state, *file;
    int subagent;
    if (!PyArg_ParseTuple(args, "y*nnLUOpOO!O", &view, &pos, &end, &base, &agent, &hint,
                          &subagent, &skey, &PyTuple_Type, &state, &file))
        return NULL;
    int ok = pos >= 0 && end <= view.len && pos <= end && PyTuple_GET_SIZE(state) == ST_N &&
             (hint == Py_None || PyUnicode_Check(hint)) &&
             (skey == Py_None || PyUnicode_Check(skey));
    int32_t st[ST_N];
    for (int i = 0; ok && i < ST_N; i++) {
        PyObject *o = PyTuple_GET_ITEM(state, i);
        ok = o == Py_None || PyUnicode_Check(o);
        if (ok) st[i] = intern_py(self, o);
        ok = ok && st[i] != -2;
    }
    int64_t file_id = 0;
    if (ok && file != Py_None) file_id = py_i64(file, &ok);
    int32_t agent_id = ok ? intern_py(self, agent) : -2, hint_id = ok ? intern_py(self, hint) : -2;
    int32_t skey_id = ok ? intern_py(self, skey) : -2;
    if (!ok || agent_id == -2 || hint_id == -2 || skey_id == -2) {
        PyBuffer_Release(&view);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "Ingest.openclaw: bad arguments");
        return NULL;
    }
    long long lines = 0, malformed = 0, turn_lines = 0, skipped = 0, turns = 0;
    int deferred = 0, failed = 0;
    const char *data = view.buf;
    while (!failed && pos < end) {
        const char *nl = memchr(data + pos, '\n', (size_t)(end - pos));
        if (!nl) break;
        size_t len = (size_t)(nl - (data + pos));
        oline_t o;
        int model_ok = st[ST_MODEL] != NO_STR && pool_str(&self->pool, st[ST_MODEL]).n > 0;
        oc_classify(&self->arena, data + pos, len, model_ok, &self->otools_scratch, &o);
        if (o.outcome == O_DEFER) {
            deferred = 1;
            break;
        }
        for (int i = 0; i < ST_N && !failed; i++)
            if (o.set[i] && (st[i] = intern(self, o.set_to[i])) < 0) failed = 1;
        if (!failed && o.outcome == O_RECORD) {
            int32_t session = st[ST_SESSION] != NO_STR && pool_str(&self->pool, st[ST_SESSION]).n
                                  ? st[ST_SESSION]
                                  : (hint_id != NO_STR && pool_str(&self->pool, hint_id).n
                                         ? hint_id
                                         : self->s_unknown);
            buf_t *k = &self->enc;
            k->n = 0;
            str_t ag = pool_str(&self->pool, agent_id), se = pool_str(&self->pool, session);
            failed = buf_add(k, "oc:", 3) < 0 || buf_add(k, ag.p, ag.n) < 0 || buf_addc(k, ':') < 0 ||
                     buf_add(k, se.p, se.n) < 0 || buf_addc(k, ':') < 0;
            if (!failed && o.has_id) {
                failed = buf_add(k, o.id.p, o.id.n) < 0;
            } else if (!failed) {
                char tmp[32];
                int tn = snprintf(tmp, sizeof tmp, "@%lld", base + (long long)pos);
                failed = buf_add(k, tmp, (size_t)tn) < 0;
            }
            rec_t r;
            memset(&r, 0, sizeof r);
            r.key_hash = hash64(k->p, k->n);
            r.msg_hash = r.key_hash; /* no message ids: the key stands in (store.turns_key) */
            r.has_msg = 1;
            r.agent = agent_id;
            r.project = st[ST_CWD] != NO_STR && pool_str(&self->pool, st[ST_CWD]).n ? st[ST_CWD]
                                                                                    : agent_id;
            r.session = session;
            r.subagent = subagent ? skey_id : NO_STR;
            r.sidechain = subagent;
            r.model = o.model_from_msg ? intern(self, o.model) : st[ST_MODEL];
            r.provider = o.provider_from_msg
                             ? intern(self, o.provider)
                             : (st[ST_PROVIDER] != NO_STR && pool_str(&self->pool, st[ST_PROVIDER]).n
                                    ? st[ST_PROVIDER]
                                    : self->s_unknown);
            r.speed = NO_STR;
            r.branch = self->s_empty;
            r.ts = o.ts;
            for (int i = 0; i < 4; i++) r.tok[i] = o.tok[i];
            r.has_reported = o.has_reported;
            r.reported = o.reported;
            r.tools_head = r.tools_tail = -1;
            size_t mark = self->rtools.len;
            str_t *names = (str_t *)self->otools_scratch.data;
            for (size_t i = 0; i < o.ntools && !failed; i++) {
                int32_t name = intern(self, names[i]);
                rtool_t *nt = name < 0 ? NULL : vec_push(&self->rtools);
                if (!nt) {
                    failed = 1;
                    break;
                }
                nt->key = (int32_t)i;
                nt->name = name;
                nt->next = -1;
                int32_t id = (int32_t)(self->rtools.len - 1);
                if (r.tools_tail >= 0)
                    ((rtool_t *)vec_at(&self->rtools, (size_t)r.tools_tail))->next = id;
                else
                    r.tools_head = id;
                r.tools_tail = id;
            }
            failed = failed || r.model < 0 || r.provider < 0 ||
                     rec_to_row(self, &r, self->s_src_openclaw, file_id, file != Py_None) < 0;
            self->rtools.len = mark;
            turns++;
        }
        if (failed) break;
        lines++;
        malformed += o.outcome == O_MALFORMED;
        skipped += o.outcome == O_SKIPPED;
        turn_lines += o.turn_line;
        pos += (Py_ssize_t)len + 1;
    }
    PyBuffer_Release(&view);
    if (failed) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    PyObject *st_out = PyTuple_New(ST_N);
    for (int i = 0; st_out && i < ST_N; i++) {
        PyObject *v = py_str(self, st[i]);
        if (!v) {
            Py_CLEAR(st_out);
            break;
        }
        PyTuple_SET_ITEM(st_out, i, v);
    }
    if (!st_out) return NULL;
    return Py_BuildValue("(nNLLLLOL)", pos, st_out, lines, malformed, turn_lines, skipped,
                         deferred ? Py_True : Py_False, turns);
}

/* ---------------------------------------------------------------------------------------------
 * Rollups (store.Rollups.add) */

typedef struct {
    Ingest *self;
    int64_t b, c, m;
    int32_t t;
} agg_probe;

static int agg_eq(void *ctx, int32_t idx) {
    agg_probe *p = ctx;
    agg_t *a = vec_at(&p->self->aggs, (size_t)idx);
    return a->bucket == p->b && a->ctx == p->c && a->model == p->m;
}

static int tagg_eq(void *ctx, int32_t idx) {
    agg_probe *p = ctx;
    tagg_t *a = vec_at(&p->self->taggs, (size_t)idx);
    return a->bucket == p->b && a->ctx == p->c && a->model == p->m && a->tool == p->t;
}

/* Whether tool names i and j (pool ids) are one (ct_tool_calls). */
static int name_same(const void *ctx, size_t i, size_t j) {
    const int32_t *names = ctx;
    return names[i] == names[j];
}

static int rollup_add_row(Ingest *self, const row_t *r, int sign) {
    int64_t bucket = ct_floor_div(r->ts, CT_BUCKET_MS);
    agg_probe p = {self, bucket, r->ctx, r->model, 0};
    uint64_t h = mix64((uint64_t)bucket ^ mix64((uint64_t)r->ctx ^ mix64((uint64_t)r->model)));
    int32_t i = map_get(&self->agg_by_key, h, agg_eq, &p);
    agg_t *a;
    if (i < 0) {
        a = vec_push(&self->aggs);
        if (!a || map_put(&self->agg_by_key, h, (int32_t)(self->aggs.len - 1), agg_eq, &p) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        a = vec_at(&self->aggs, self->aggs.len - 1);
        a->bucket = bucket;
        a->ctx = r->ctx;
        a->model = r->model;
    } else {
        a = vec_at(&self->aggs, (size_t)i);
    }
    __int128 d[CT_N_METRICS];
    ct_row_deltas(r, self->reported_id, sign, d);
    for (int k = 0; k < CT_N_METRICS; k++) a->m[k] += d[k];
    if (sign > 0) ct_span_add(&a->has_ts, &a->first_ts, &a->last_ts, r->ts);
    if (!r->toolset) return 0;
    toolset_t *ts = toolset_load(self, r->toolset);
    if (!ts) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "unknown toolset");
        return -1;
    }
    size_t n = ts->n;
    if (!n) return 0;
    ct_shares_t sh = ct_tool_shares(r, self->reported_id, n);
    int32_t *names = vec_at(&self->tnames, ts->start);
    for (size_t k = 0; k < n; k++) {
        int64_t calls = ct_tool_calls(n, k, name_same, names);
        if (!calls) continue;
        agg_probe tp = {self, bucket, r->ctx, r->model, names[k]};
        uint64_t th = mix64(h ^ mix64((uint64_t)(uint32_t)names[k] + 0x9e3779b97f4a7c15ULL));
        int32_t ti = map_get(&self->tagg_by_key, th, tagg_eq, &tp);
        tagg_t *t;
        if (ti < 0) {
            t = vec_push(&self->taggs);
            if (!t ||
                map_put(&self->tagg_by_key, th, (int32_t)(self->taggs.len - 1), tagg_eq, &tp) < 0) {
                PyErr_NoMemory();
                return -1;
            }
            t = vec_at(&self->taggs, self->taggs.len - 1);
            t->bucket = bucket;
            t->ctx = r->ctx;
            t->model = r->model;
            t->tool = names[k];
        } else {
            t = vec_at(&self->taggs, (size_t)ti);
        }
        t->calls += sign * calls;
        t->turns += sign;
        t->a += sign * sh.auto_ * (double)calls;
        t->c += sign * sh.calc * (double)calls;
        t->d += sign * sh.disp * (double)calls;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Commit */

static int sql_fail(Ingest *self) {
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_RuntimeError, "SQLite: %s", sqlite3_errmsg(self->db));
    return -1;
}

static int step_done(Ingest *self, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : sql_fail(self);
}

static void bind_str(sqlite3_stmt *st, int i, pool_t *pool, int32_t sid) {
    if (sid == NO_STR) {
        sqlite3_bind_null(st, i);
    } else {
        str_t s = pool_str(pool, sid);
        sqlite3_bind_text(st, i, s.p, (int)s.n, SQLITE_TRANSIENT);
    }
}

static int dims_flush(Ingest *self) {
    for (size_t i = 0; i < self->pending.len; i++) {
        pending_t *p = vec_at(&self->pending, i);
        sqlite3_stmt *st = p->kind == 0   ? self->ins_ctx
                           : p->kind == 1 ? self->ins_model
                           : p->kind == 2 ? self->ins_src
                                          : self->ins_toolset;
        sqlite3_bind_int64(st, 1, p->id);
        if (p->kind == 0) {
            /* source, agent, project, session_id, subagent, is_sidechain, git_branch */
            for (int k = 0; k < 5; k++) bind_str(st, 2 + k, &self->pool, p->s[k]);
            sqlite3_bind_int64(st, 7, p->sidechain);
            bind_str(st, 8, &self->pool, p->s[5]);
        } else if (p->kind == 1) {
            for (int k = 0; k < 3; k++) bind_str(st, 2 + k, &self->pool, p->s[k]);
        } else {
            bind_str(st, 2, &self->pool, p->s[0]);
        }
        if (step_done(self, st) < 0) return -1;
    }
    self->pending.len = 0;
    return 0;
}

/* A row into parameters at+1 .. at+CT_NCOLS of `st` (store.TURN_COLUMNS). */
static void bind_row_at(sqlite3_stmt *st, const row_t *r, int at) {
#define P(col) (at + 1 + CT_COL_##col)
    sqlite3_bind_int64(st, P(KEY_HASH), r->key_hash);
    if (r->has_msg) sqlite3_bind_int64(st, P(MSG_HASH), r->msg_hash);
    else sqlite3_bind_null(st, P(MSG_HASH));
    if (r->has_file) sqlite3_bind_int64(st, P(FILE), r->file_id);
    else sqlite3_bind_null(st, P(FILE));
    sqlite3_bind_int64(st, P(CTX), r->ctx);
    sqlite3_bind_int64(st, P(MODEL), r->model);
    sqlite3_bind_int64(st, P(TS), r->ts);
    for (int k = 0; k < CT_NTOK; k++) sqlite3_bind_int64(st, P(INPUT) + k, r->tok[k]);
    if (r->has_cost) sqlite3_bind_int64(st, P(COST), r->cost);
    else sqlite3_bind_null(st, P(COST));
    sqlite3_bind_int64(st, P(SRC), r->src);
    if (r->has_rep) sqlite3_bind_int64(st, P(REP), r->rep);
    else sqlite3_bind_null(st, P(REP));
    sqlite3_bind_int64(st, P(SAV), r->sav);
    sqlite3_bind_int64(st, P(WC), r->wc);
    sqlite3_bind_int64(st, P(TOOLSET), r->toolset);
#undef P
}

static void bind_row(sqlite3_stmt *st, const row_t *r) { bind_row_at(st, r, 0); }

/* A row from the columns of a SELECT of store.TURN_COLUMNS. */
static int row_from_stmt(sqlite3_stmt *st, row_t *r) {
    memset(r, 0, sizeof *r);
    r->key_hash = sqlite3_column_int64(st, CT_COL_KEY_HASH);
    r->has_msg = sqlite3_column_type(st, CT_COL_MSG_HASH) != SQLITE_NULL;
    r->msg_hash = sqlite3_column_int64(st, CT_COL_MSG_HASH);
    r->has_file = sqlite3_column_type(st, CT_COL_FILE) != SQLITE_NULL;
    r->file_id = sqlite3_column_int64(st, CT_COL_FILE);
    r->ctx = sqlite3_column_int64(st, CT_COL_CTX);
    r->model = sqlite3_column_int64(st, CT_COL_MODEL);
    r->ts = sqlite3_column_int64(st, CT_COL_TS);
    for (int k = 0; k < CT_NTOK; k++) r->tok[k] = sqlite3_column_int64(st, CT_COL_INPUT + k);
    r->has_cost = sqlite3_column_type(st, CT_COL_COST) != SQLITE_NULL;
    r->cost = sqlite3_column_int64(st, CT_COL_COST);
    r->src = sqlite3_column_int64(st, CT_COL_SRC);
    r->has_rep = sqlite3_column_type(st, CT_COL_REP) != SQLITE_NULL;
    r->rep = sqlite3_column_int64(st, CT_COL_REP);
    r->sav = sqlite3_column_int64(st, CT_COL_SAV);
    r->wc = sqlite3_column_int64(st, CT_COL_WC);
    r->toolset = sqlite3_column_int64(st, CT_COL_TOOLSET);
    return 0;
}

static int rows_equal(const row_t *a, const row_t *b, int from_ctx) {
    if (!from_ctx &&
        (a->key_hash != b->key_hash || a->has_msg != b->has_msg ||
         (a->has_msg && a->msg_hash != b->msg_hash) || a->has_file != b->has_file ||
         (a->has_file && a->file_id != b->file_id)))
        return 0;
    if (a->ctx != b->ctx || a->model != b->model || a->ts != b->ts) return 0;
    for (int k = 0; k < 6; k++)
        if (a->tok[k] != b->tok[k]) return 0;
    return a->has_cost == b->has_cost && (!a->has_cost || a->cost == b->cost) &&
           a->src == b->src && a->has_rep == b->has_rep && (!a->has_rep || a->rep == b->rep) &&
           a->sav == b->sav && a->wc == b->wc && a->toolset == b->toolset;
}

static int is_stale(Ingest *self, int64_t bucket) {
    id_probe p = {&self->stale_ids, bucket};
    return map_get(&self->stale, mix64((uint64_t)bucket), id_eq, &p) >= 0;
}

static int mark_dirty(Ingest *self, int64_t bucket) {
    sqlite3_bind_int64(self->ins_dirty, 1, bucket);
    return step_done(self, self->ins_dirty);
}

static const char *SQL_SELECT_MSG, *SQL_SELECT_ID;
static int int64_cmp(const void *a, const void *b);

/* formats.md 1.7 at every commit (store.TurnWriter.write): among the rows holding a message
 * that a row of this batch holds, the sidechain replays go, and leave the rollups. Before the
 * batch no message was replayed, so these are all there can be: a scan stopped between two
 * commits leaves no replay billed. */
static int replays_settle(Ingest *self, long long *removed) {
    size_t n = 0;
    int64_t *msgs = malloc((self->rows.len + 1) * sizeof *msgs);
    if (!msgs) return PyErr_NoMemory(), -1;
    for (size_t i = 0; i < self->rows.len; i++) {
        const row_t *r = vec_at(&self->rows, i);
        if (r->has_msg) msgs[n++] = r->msg_hash; /* (a source without message ids: no replay) */
    }
    qsort(msgs, n, sizeof *msgs, int64_cmp);
    size_t cap = 16, held = 0;
    int64_t *ids = malloc(cap * sizeof *ids);
    int *side = malloc(cap * sizeof *side), *replay = malloc(cap * sizeof *replay);
    int rc = ids && side && replay ? 0 : (PyErr_NoMemory(), -1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i && msgs[i] == msgs[i - 1]) continue;
        held = 0;
        sqlite3_bind_int64(self->sel_msg, 1, msgs[i]);
        int step;
        while (rc == 0 && (step = sqlite3_step(self->sel_msg)) == SQLITE_ROW) {
            if (held == cap) {
                cap *= 2;
                int64_t *i2 = realloc(ids, cap * sizeof *ids);
                if (i2) ids = i2;
                int *s2 = i2 ? realloc(side, cap * sizeof *side) : NULL;
                if (s2) side = s2;
                int *r2 = s2 ? realloc(replay, cap * sizeof *replay) : NULL;
                if (r2) replay = r2;
                if (!r2) {
                    rc = (PyErr_NoMemory(), -1);
                    break;
                }
            }
            ids[held] = sqlite3_column_int64(self->sel_msg, 0);
            side[held++] = sqlite3_column_int(self->sel_msg, 1) != 0;
        }
        if (rc == 0 && step != SQLITE_DONE) rc = sql_fail(self);
        sqlite3_reset(self->sel_msg);
        if (rc < 0 || !ct_sidechain_replays(ids, side, held, replay)) continue;
        for (size_t k = 0; rc == 0 && k < held; k++) {
            if (!replay[k]) continue;
            sqlite3_bind_int64(self->sel_row, 1, ids[k]);
            row_t row;
            int found = sqlite3_step(self->sel_row);
            if (found == SQLITE_ROW) row_from_stmt(self->sel_row, &row);
            sqlite3_reset(self->sel_row);
            if (found != SQLITE_ROW) {
                rc = found == SQLITE_DONE ? 0 : sql_fail(self);
                continue;
            }
            sqlite3_bind_int64(self->del_row, 1, ids[k]);
            if (rollup_add_row(self, &row, -1) < 0 || step_done(self, self->del_row) < 0) rc = -1;
            else (*removed)++;
        }
    }
    free(msgs);
    free(ids);
    free(side);
    free(replay);
    return rc;
}

/* store.TurnWriter._collide: a row whose key is stored. */
static int collide(Ingest *self, const row_t *row) {
    sqlite3_stmt *st = self->sel_turn;
    sqlite3_bind_int64(st, 1, row->msg_hash);
    sqlite3_bind_int64(st, 2, row->key_hash);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : sql_fail(self);
    }
    row_t stored, merged;
    row_from_stmt(st, &stored);
    sqlite3_reset(st);
    if (merge_rows(self, &stored, row, &merged) < 0) return -1;
    if (rows_equal(&merged, &stored, 0)) return 0;
    if (dims_flush(self) < 0) return -1;
    bind_row(self->upd_turn, &merged);
    /* the UPDATE's WHERE msg_hash = ? AND key_hash = ? follow the row's columns */
    sqlite3_bind_int64(self->upd_turn, CT_NCOLS + 1, merged.msg_hash);
    sqlite3_bind_int64(self->upd_turn, CT_NCOLS + 2, merged.key_hash);
    if (step_done(self, self->upd_turn) < 0) return -1;
    if (rows_equal(&merged, &stored, 1)) return 0; /* only the file differs: rollups hold none */
    int64_t b_old = ct_floor_div(stored.ts, CT_BUCKET_MS);
    int64_t b_new = ct_floor_div(merged.ts, CT_BUCKET_MS);
    if (is_stale(self, b_old) || is_stale(self, b_new)) {
        return mark_dirty(self, b_old) < 0 || mark_dirty(self, b_new) < 0 ? -1 : 0;
    }
    if (rollup_add_row(self, &stored, -1) < 0) return -1;
    return rollup_add_row(self, &merged, 1);
}

static int rollups_flush(Ingest *self) {
    for (size_t i = 0; i < self->aggs.len; i++) {
        agg_t *a = vec_at(&self->aggs, i);
        if (is_stale(self, a->bucket)) {
            if (mark_dirty(self, a->bucket) < 0) return -1;
            continue;
        }
        sqlite3_stmt *st = self->ins_rollup;
        int64_t parts = ct_rollup_parts(a->m, CT_N_METRICS);
        for (int64_t part = 0; part < parts; part++) {
            sqlite3_bind_int64(st, 1, a->bucket);
            sqlite3_bind_int64(st, 2, a->ctx);
            sqlite3_bind_int64(st, 3, a->model);
            for (int k = 0; k < CT_N_METRICS; k++)
                sqlite3_bind_int64(st, 4 + k, ct_rollup_share(a->m[k], parts, part));
            if (a->has_ts) {
                sqlite3_bind_int64(st, 4 + CT_N_METRICS, a->first_ts);
                sqlite3_bind_int64(st, 5 + CT_N_METRICS, a->last_ts);
            } else {
                sqlite3_bind_null(st, 4 + CT_N_METRICS);
                sqlite3_bind_null(st, 5 + CT_N_METRICS);
            }
            if (step_done(self, st) < 0) return -1;
        }
    }
    for (size_t i = 0; i < self->taggs.len; i++) {
        tagg_t *t = vec_at(&self->taggs, i);
        if (is_stale(self, t->bucket)) continue; /* marked dirty with its rollup */
        sqlite3_stmt *st = self->ins_tool;
        sqlite3_bind_int64(st, 1, t->bucket);
        sqlite3_bind_int64(st, 2, t->ctx);
        sqlite3_bind_int64(st, 3, t->model);
        bind_str(st, 4, &self->pool, t->tool);
        sqlite3_bind_int64(st, 5, t->calls);
        sqlite3_bind_int64(st, 6, t->turns);
        sqlite3_bind_double(st, 7, t->a);
        sqlite3_bind_double(st, 8, t->c);
        sqlite3_bind_double(st, 9, t->d);
        if (step_done(self, st) < 0) return -1;
    }
    self->aggs.len = 0;
    self->taggs.len = 0;
    map_clear(&self->agg_by_key);
    map_clear(&self->tagg_by_key);
    return 0;
}

static int bind_py(sqlite3_stmt *st, int i, PyObject *v) {
    if (v == Py_None) return sqlite3_bind_null(st, i);
    if (PyBytes_Check(v)) /* a path that is not UTF-8 (paths.path_to_store) */
        return sqlite3_bind_blob(st, i, PyBytes_AS_STRING(v), (int)PyBytes_GET_SIZE(v),
                                 SQLITE_TRANSIENT);
    if (PyLong_Check(v)) {
        long long x = PyLong_AsLongLong(v);
        if (x == -1 && PyErr_Occurred()) return -1;
        return sqlite3_bind_int64(st, i, x);
    }
    if (PyUnicode_Check(v)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (!s) return -1;
        return sqlite3_bind_text(st, i, s, (int)n, SQLITE_TRANSIENT);
    }
    PyErr_SetString(PyExc_TypeError, "file values must be int, str or None");
    return -1;
}

/* Ingest.prepare(): in a bulk load, add the batch's rows to the rollups now, before the
 * caller takes the store's write lock (commit does it otherwise). */
static PyObject *Ingest_prepare(Ingest *self, PyObject *unused) {
    if (self->bulk && !self->prepared) {
        for (size_t i = 0; i < self->rows.len; i++)
            if (rollup_add_row(self, vec_at(&self->rows, i), 1) < 0) return NULL;
        self->prepared = 1;
    }
    Py_RETURN_NONE;
}

/* The strings this code names itself, interned (ids: claude, anthropic, "", unknown, the two
 * source names, then "reported" and "none"). */
static int constants_intern(Ingest *self, int32_t ids[8]) {
    str_t c[] = {{"claude", 6}, {"anthropic", 9}, {"", 0}, {"unknown", 7},
                 {"claude-code", 11}, {"openclaw", 8}, {"reported", 8}, {"none", 4}};
    for (int i = 0; i < 8; i++)
        if ((ids[i] = intern(self, c[i])) < 0) return -1;
    self->s_claude = ids[0];
    self->s_anthropic = ids[1];
    self->s_empty = ids[2];
    self->s_unknown = ids[3];
    self->s_src_claude = ids[4];
    self->s_src_openclaw = ids[5];
    return 0;
}

/* Interned strings outlive a batch only to spare hashing the same session ids, paths and names
 * again, and the dimension ids seen only to spare inserting them again: past this many bytes
 * of them and of what is keyed by them (the strings with their spans and hash index, the
 * dimension keys and ids, the toolsets' names, which toolset_load reads back from the store),
 * a commit drops them all, so that a worker's memory stays bounded however many sessions it
 * meets. A dimension met again after a drop is inserted again (INSERT OR IGNORE). Price cards
 * are kept (a few per model). */
static size_t intern_limit = 8u << 20;

static size_t vec_bytes(const vec_t *v) { return v->cap * v->item; }
static size_t map_bytes(const map_t *m) { return m->cap * (sizeof *m->hashes + sizeof *m->idx); }

static size_t interned_bytes(const Ingest *self) {
    return self->pool.bytes.cap + vec_bytes(&self->pool.spans) + map_bytes(&self->pool.index) +
           vec_bytes(&self->key_cache) + map_bytes(&self->key_cache_map) +
           vec_bytes(&self->seq_ints) + vec_bytes(&self->dims_ids) +
           map_bytes(&self->dims_known) + vec_bytes(&self->toolsets) + vec_bytes(&self->tnames) +
           map_bytes(&self->toolset_by_id);
}

static void vec_release(vec_t *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

/* Everything interned_bytes counts, freed (not only emptied: the capacities they grew to go
 * too); then the constants are interned again. */
static int interned_drop(Ingest *self) {
    pool_free(&self->pool);
    memset(&self->pool, 0, sizeof self->pool);
    self->pool.spans.item = sizeof(span_t);
    vec_release(&self->key_cache);
    vec_release(&self->seq_ints);
    map_free(&self->key_cache_map);
    vec_release(&self->dims_ids);
    map_free(&self->dims_known);
    vec_release(&self->toolsets);
    vec_release(&self->tnames);
    map_free(&self->toolset_by_id);
    int32_t ids[8];
    return constants_intern(self, ids);
}

/* Ingest.commit(files, new_files=()) -> new turns. `files`: (reset, size, mtime_ns, inode,
 * head_hash, offset, lines, malformed, turn_lines, state_json, now, file_id) per known file read
 * in the batch; `new_files`: the whole rows of the others, the files the store has no row for yet
 * (scan.FILES_NEW_SQL, scan.files_outcome). One transaction: the new files' rows, the batch's
 * turns, their rollups and the known files' new offsets. */
static PyObject *Ingest_commit(Ingest *self, PyObject *args) {
    PyObject *files, *new_files = NULL;
    if (!PyArg_ParseTuple(args, "O|O", &files, &new_files)) return NULL;
    if (!PyList_Check(files) || (new_files && !PyList_Check(new_files))) {
        PyErr_SetString(PyExc_TypeError, "files and new_files must be lists");
        return NULL;
    }
    if (sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        sql_fail(self);
        return NULL;
    }
    long long fresh = 0;
    for (Py_ssize_t i = 0; new_files && i < PyList_GET_SIZE(new_files); i++) {
        PyObject *f = PyList_GET_ITEM(new_files, i);
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 17) {
            PyErr_SetString(PyExc_TypeError, "a new file's row is a 17-tuple");
            goto fail;
        }
        for (int k = 0; k < 17; k++)
            if (bind_py(self->ins_file, k + 1, PyTuple_GET_ITEM(f, k)) != SQLITE_OK) goto fail;
        if (step_done(self, self->ins_file) < 0) goto fail;
    }
    if (dims_flush(self) < 0) goto fail;
    if (self->bulk) {
        /* Every row goes in (keys met twice are merged after the load: store.bulk_dedup). */
        if (!self->prepared && Ingest_prepare(self, NULL) == NULL) goto fail;
        /* BULK_ROWS rows a statement while there are as many left (a row's rowid follows
         * the one before: an append into an INTEGER PRIMARY KEY), then one at a time. */
        for (size_t i = 0; i < self->rows.len;) {
            size_t take = self->rows.len - i >= BULK_ROWS ? BULK_ROWS : 1;
            sqlite3_stmt *st = take == BULK_ROWS ? self->ins_turn_many : self->ins_turn_bulk;
            for (size_t k = 0; k < take; k++)
                bind_row_at(st, vec_at(&self->rows, i + k), (int)(k * TURN_PARAMS));
            if (step_done(self, st) < 0) goto fail;
            int64_t last = sqlite3_last_insert_rowid(self->db);
            for (size_t k = 0; self->keys && k < take; k++) {
                row_t *r = vec_at(&self->rows, i + k);
                int64_t rec[JOURNAL_FIELDS] = {r->key_hash, last - (int64_t)(take - 1 - k),
                                               r->has_msg ? r->msg_hash : r->key_hash, r->ctx};
                if (fwrite(rec, sizeof rec, 1, self->keys) != 1) {
                    PyErr_SetFromErrno(PyExc_OSError);
                    goto fail;
                }
            }
            i += take;
        }
        fresh = (long long)self->rows.len;
        self->prepared = 0;
    }
    for (size_t i = 0; !self->bulk && i < self->rows.len; i++) {
        row_t *r = vec_at(&self->rows, i);
        bind_row(self->ins_turn, r);
        if (step_done(self, self->ins_turn) < 0) goto fail;
        if (sqlite3_changes(self->db) == 1) {
            fresh++;
            if (rollup_add_row(self, r, 1) < 0) goto fail;
        } else if (collide(self, r) < 0) {
            goto fail;
        }
    }
    long long replays = 0;
    if (!self->bulk && replays_settle(self, &replays) < 0) goto fail;
    fresh -= replays;
    if (rollups_flush(self) < 0 || dims_flush(self) < 0) goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(files); i++) {
        PyObject *f = PyList_GET_ITEM(files, i);
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 14) {
            PyErr_SetString(PyExc_TypeError, "a file update is a 14-tuple");
            goto fail;
        }
        sqlite3_stmt *st = PyObject_IsTrue(PyTuple_GET_ITEM(f, 0)) ? self->upd_fresh : self->upd_grown;
        for (int k = 1; k < 14; k++)
            if (bind_py(st, k, PyTuple_GET_ITEM(f, k)) != SQLITE_OK) goto fail;
        if (step_done(self, st) < 0) goto fail;
    }
    if (sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sql_fail(self);
        goto fail;
    }
    if (self->keys && fflush(self->keys) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL; /* committed: the journal is what failed */
    }
    self->rows.len = 0;
    map_clear(&self->row_by_key);
    if (interned_bytes(self) > intern_limit && interned_drop(self) < 0) return NULL;
    return PyLong_FromLongLong(fresh);
fail:
    if (!PyErr_Occurred()) sql_fail(self);
    sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
    self->prepared = 0;
    self->rows.len = 0;
    map_clear(&self->row_by_key);
    self->aggs.len = 0;
    self->taggs.len = 0;
    map_clear(&self->agg_by_key);
    map_clear(&self->tagg_by_key);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The type */

static const char *SQL_INSERT =
    "INSERT INTO turns (key_hash, msg_hash, file_id, context_id, model_id, ts, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
    "web_search_requests, cost_pico, price_source_id, reported_pico, cache_savings_pico, "
    "cache_write_pico, toolset_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(msg_hash, key_hash) DO NOTHING";
static const char *SQL_SELECT =
    "SELECT key_hash, msg_hash, file_id, context_id, model_id, ts, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, "
    "cost_pico, price_source_id, reported_pico, cache_savings_pico, cache_write_pico, toolset_id "
    "FROM turns WHERE msg_hash = ? AND key_hash = ?";
static const char *SQL_SELECT_MSG =
    "SELECT t.id, c.is_sidechain FROM turns AS t JOIN contexts AS c ON c.id = t.context_id "
    "WHERE t.msg_hash = ? ORDER BY t.id";
static const char *SQL_SELECT_ID =
    "SELECT key_hash, msg_hash, file_id, context_id, model_id, ts, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, "
    "cost_pico, price_source_id, reported_pico, cache_savings_pico, cache_write_pico, toolset_id "
    "FROM turns WHERE id = ?";
static const char *SQL_UPDATE =
    "UPDATE turns SET key_hash = ?, msg_hash = ?, file_id = ?, context_id = ?, model_id = ?, "
    "ts = ?, input_tokens = ?, output_tokens = ?, cache_read_tokens = ?, "
    "cache_write_5m_tokens = ?, cache_write_1h_tokens = ?, web_search_requests = ?, "
    "cost_pico = ?, price_source_id = ?, reported_pico = ?, cache_savings_pico = ?, "
    "cache_write_pico = ?, toolset_id = ? WHERE msg_hash = ? AND key_hash = ?";
static const char *SQL_FILES_HEAD =
    "UPDATE files SET size = ?, mtime_ns = ?, inode = ?, ctime_ns = ?, head_hash = ?, "
    "tail_hash = ?, offset = ?, ";
static const char *SQL_FILES_TAIL =
    ", state_json = ?, last_scan = ?, missing_since = NULL WHERE id = ?";

static int prepare(Ingest *self, const char *sql, sqlite3_stmt **st) {
    if (sqlite3_prepare_v3(self->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return sql_fail(self);
    return 0;
}

static void Ingest_dealloc(Ingest *self) {
    sqlite3_finalize(self->ins_turn_bulk);
    sqlite3_finalize(self->ins_turn_many);
    sqlite3_stmt *sts[] = {self->ins_turn, self->sel_turn,  self->upd_turn,  self->ins_rollup,
                           self->ins_tool, self->ins_dirty, self->ins_ctx,   self->ins_model,
                           self->ins_src,  self->ins_toolset, self->upd_fresh, self->upd_grown,
                           self->ins_file, self->sel_msg, self->sel_row, self->del_row};
    for (size_t i = 0; i < sizeof sts / sizeof *sts; i++) sqlite3_finalize(sts[i]);
    if (self->db) sqlite3_close(self->db);
    if (self->keys) fclose(self->keys);
    Py_XDECREF(self->card_for);
    Py_XDECREF(self->price_slow);
    free(self->arena.buf);
    vec_t *vecs[] = {&self->ctools_scratch, &self->otools_scratch, &self->recs, &self->rtools,
                     &self->rows, &self->dims_ids, &self->pending, &self->toolsets, &self->tnames,
                     &self->cards, &self->aggs, &self->taggs, &self->stale_ids,
                     &self->key_cache, &self->seq_ints};
    for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++) free(vecs[i]->data);
    map_t *maps[] = {&self->rec_by_key, &self->row_by_key, &self->dims_known,
                     &self->toolset_by_id, &self->card_by_key, &self->agg_by_key,
                     &self->tagg_by_key, &self->stale, &self->key_cache_map};
    for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) map_free(maps[i]);
    pool_free(&self->pool);
    pool_free(&self->chunk_pool);
    free(self->enc.p);
    free(self->last_key.p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define VEC(T) {NULL, 0, 0, sizeof(T)}

/* Ingest(db_path, card_for, price_slow, reported_id, none_id, stale_buckets, mode,
 *        keys_path=None): mode 0 writes through the unique key index; 1 is a bulk load into an
 * empty store (appends, and journals each row (key, rowid, message, context) to `keys_path` for
 * `settle`); 2 only settles. */
static int Ingest_init(Ingest *self, PyObject *args, PyObject *kw) {
    const char *path, *keys_path = NULL;
    PyObject *card_for, *price_slow, *stale;
    long long reported_id, none_id;
    int bulk;
    if (!PyArg_ParseTuple(args, "sOOLLOi|z", &path, &card_for, &price_slow, &reported_id,
                          &none_id, &stale, &bulk, &keys_path))
        return -1;
    if (bulk == 1 && keys_path) {
        self->keys = fopen(keys_path, "wb");
        if (!self->keys) {
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, keys_path);
            return -1;
        }
    }
    if (self->db) {
        PyErr_SetString(PyExc_RuntimeError, "Ingest is already initialised");
        return -1;
    }
    vec_t v_ctool = VEC(ctool_t), v_otool = VEC(str_t), v_rec = VEC(rec_t), v_rtool = VEC(rtool_t),
          v_row = VEC(row_t), v_ids = VEC(int64_t), v_pend = VEC(pending_t),
          v_ts = VEC(toolset_t), v_tn = VEC(int32_t), v_card = VEC(card_t), v_agg = VEC(agg_t),
          v_tagg = VEC(tagg_t), v_stale = VEC(int64_t), v_span = VEC(span_t),
          v_kc = VEC(keyed_t), v_si = VEC(int32_t);
    self->key_cache = v_kc;
    self->seq_ints = v_si;
    self->ctools_scratch = v_ctool;
    self->otools_scratch = v_otool;
    self->recs = v_rec;
    self->rtools = v_rtool;
    self->rows = v_row;
    self->dims_ids = v_ids;
    self->pending = v_pend;
    self->toolsets = v_ts;
    self->tnames = v_tn;
    self->cards = v_card;
    self->aggs = v_agg;
    self->taggs = v_tagg;
    self->stale_ids = v_stale;
    self->pool.spans = v_span;
    self->chunk_pool.spans = v_span;
    Py_INCREF(card_for);
    Py_INCREF(price_slow);
    self->card_for = card_for;
    self->price_slow = price_slow;
    self->reported_id = reported_id;
    self->none_id = none_id;
    self->bulk = bulk;
    /* One thread uses this connection: no per-call mutex. */
    if (sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sql_fail(self);
        return -1;
    }
    sqlite3_busy_timeout(self->db, 60000);
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-8000;",
             bulk ? "OFF" : "NORMAL"); /* (a settle runs inside the bulk load) */
    if (sqlite3_exec(self->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) return sql_fail(self);
    char files_fresh[400], files_grown[400];
    snprintf(files_fresh, sizeof files_fresh, "%slines = ?, malformed = ?, turn_lines = ?%s",
             SQL_FILES_HEAD, SQL_FILES_TAIL);
    snprintf(files_grown, sizeof files_grown,
             "%slines = lines + ?, malformed = malformed + ?, turn_lines = turn_lines + ?%s",
             SQL_FILES_HEAD, SQL_FILES_TAIL);
    char bulk_insert[800];
    snprintf(bulk_insert, sizeof bulk_insert, "%.*s", (int)(strstr(SQL_INSERT, " ON CONFLICT") - SQL_INSERT),
             SQL_INSERT);
    char bulk_many[8192];
    {
        const char *values = strstr(bulk_insert, " VALUES ") + strlen(" VALUES ");
        int at = snprintf(bulk_many, sizeof bulk_many, "%.*s", (int)(values - bulk_insert), bulk_insert);
        for (int k = 0; k < BULK_ROWS; k++)
            at += snprintf(bulk_many + at, sizeof bulk_many - (size_t)at, "%s%s", k ? "," : "", values);
    }
    /* A bulk load only appends (the unique key index is dropped meanwhile); other scans
     * insert through it and merge what it turns away. */
    int turns_ok = bulk == 2   ? 1
                   : bulk == 1 ? prepare(self, bulk_insert, &self->ins_turn_bulk) == 0 &&
                                     prepare(self, bulk_many, &self->ins_turn_many) == 0
                               : (prepare(self, SQL_INSERT, &self->ins_turn) == 0 &&
                                  prepare(self, SQL_SELECT, &self->sel_turn) == 0 &&
                                  prepare(self, SQL_UPDATE, &self->upd_turn) == 0 &&
                                  prepare(self, SQL_SELECT_MSG, &self->sel_msg) == 0 &&
                                  prepare(self, SQL_SELECT_ID, &self->sel_row) == 0 &&
                                  prepare(self, "DELETE FROM turns WHERE id = ?",
                                          &self->del_row) == 0);
    if (!turns_ok ||
        prepare(self,
                "INSERT INTO rollup VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                &self->ins_rollup) < 0 ||
        prepare(self, "INSERT INTO tool_rollup VALUES (?,?,?,?,?,?,?,?,?)", &self->ins_tool) < 0 ||
        prepare(self, "INSERT OR IGNORE INTO dirty_buckets (bucket) VALUES (?)", &self->ins_dirty) <
            0 ||
        prepare(self, "INSERT OR IGNORE INTO contexts VALUES (?,?,?,?,?,?,?,?)", &self->ins_ctx) <
            0 ||
        prepare(self, "INSERT OR IGNORE INTO models VALUES (?,?,?,?)", &self->ins_model) < 0 ||
        prepare(self, "INSERT OR IGNORE INTO price_sources VALUES (?,?)", &self->ins_src) < 0 ||
        prepare(self, "INSERT OR IGNORE INTO toolsets VALUES (?,?)", &self->ins_toolset) < 0 ||
        prepare(self, files_fresh, &self->upd_fresh) < 0 ||
        prepare(self, files_grown, &self->upd_grown) < 0 ||
        prepare(self,
                "INSERT INTO files (id, path, source, first_seen, ctx_json, size, mtime_ns, "
                "inode, ctime_ns, head_hash, tail_hash, offset, lines, malformed, turn_lines, "
                "state_json, last_scan) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &self->ins_file) < 0)
        return -1;
    PyObject *it = PyObject_GetIter(stale);
    if (!it) return -1;
    PyObject *item;
    while ((item = PyIter_Next(it))) {
        int ok = 1;
        int64_t b = py_i64(item, &ok);
        Py_DECREF(item);
        if (!ok) break;
        id_probe p = {&self->stale_ids, b};
        int64_t *slot = vec_push(&self->stale_ids);
        if (!slot) {
            PyErr_NoMemory();
            break;
        }
        *slot = b;
        if (map_put(&self->stale, mix64((uint64_t)b), (int32_t)(self->stale_ids.len - 1), id_eq,
                    &p) < 0) {
            PyErr_NoMemory();
            break;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return -1;
    /* Interned constants and the two price sources Python never names to this code. */
    int32_t ids[8];
    if (constants_intern(self, ids) < 0) return -1;
    if (dim_seen(self, reported_id) < 0 || pending_add(self, reported_id, 2, &ids[6], 1, 0) < 0 ||
        dim_seen(self, none_id) < 0 || pending_add(self, none_id, 2, &ids[7], 1, 0) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}


/* Ingest.close(): flush and close the key journal and the database connection. */
static PyObject *Ingest_close(Ingest *self, PyObject *unused) {
    if (self->keys) {
        int bad = fclose(self->keys) != 0;
        self->keys = NULL;
        if (bad) return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* Journal records sorted by (msg_hash, key_hash): an LSD radix sort by message hash, 11 bits a
 * pass (passes where every record has the same digit are skipped), then each message's handful
 * of records by key (an insertion sort; a message met more than 32 times, only in odd logs, by
 * qsort). `tmp` has room for `n` records. */
static int journal_key_cmp(const void *a, const void *b) {
    int64_t x = ((const int64_t *)a)[J_KEY], y = ((const int64_t *)b)[J_KEY];
    return x < y ? -1 : (x > y);
}

static void journal_sort(int64_t *recs, int64_t *tmp, size_t n) {
    const size_t w = JOURNAL_FIELDS, rec_bytes = JOURNAL_FIELDS * sizeof(int64_t);
    int64_t *src = recs, *dst = tmp;
    size_t count[1 << 11];
    for (int shift = 0; shift < 64; shift += 11) {
        memset(count, 0, sizeof count);
        for (size_t i = 0; i < n; i++) {
            /* Flip the sign bit so that the order is the signed order. */
            uint64_t k = (uint64_t)src[w * i + J_MSG] ^ 0x8000000000000000ULL;
            count[(k >> shift) & 0x7ff]++;
        }
        int single = 0;
        for (size_t b = 0; b < (1 << 11) && !single; b++) single = count[b] == n;
        if (single) continue;
        size_t pos = 0;
        for (size_t b = 0; b < (1 << 11); b++) {
            size_t c = count[b];
            count[b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t k = (uint64_t)src[w * i + J_MSG] ^ 0x8000000000000000ULL;
            memcpy(dst + w * count[(k >> shift) & 0x7ff]++, src + w * i, rec_bytes);
        }
        int64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != recs) memcpy(recs, src, n * rec_bytes);
    for (size_t i = 0; i < n;) {
        size_t m = i + 1;
        while (m < n && recs[w * m + J_MSG] == recs[w * i + J_MSG]) m++;
        if (m - i > 32) {
            qsort(recs + w * i, m - i, rec_bytes, journal_key_cmp);
        } else {
            for (size_t a = i + 1; a < m; a++) {
                int64_t r[JOURNAL_FIELDS];
                memcpy(r, recs + w * a, rec_bytes);
                size_t c = a;
                for (; c > i && recs[w * (c - 1) + J_KEY] > r[J_KEY]; c--)
                    memcpy(recs + w * c, recs + w * (c - 1), rec_bytes);
                memcpy(recs + w * c, r, rec_bytes);
            }
        }
        i = m;
    }
}

/* The journal records a settle sorts at once (32 bytes each, and as much again to sort them):
 * more journaled than this and it goes over the journals once per range of message hashes, so
 * that its memory stays bounded whatever the store's size (the journals are read from the page
 * cache). A message's rows, and so a key's, always fall in one range. */
#define SETTLE_PART_RECORDS (1u << 19)

/* Append to `recs` the whole records of journal `f` whose message hash falls in range `part` of
 * `parts` (ranges of the sign-flipped hash by its top bits, in order). */
static int journal_read(FILE *f, vec_t *recs, unsigned part, unsigned parts, int shift) {
    int64_t block[JOURNAL_FIELDS * 2048];
    for (;;) {
        size_t got = fread(block, JOURNAL_FIELDS * sizeof(int64_t), 2048, f);
        for (size_t i = 0; i < got; i++) {
            const int64_t *r = block + JOURNAL_FIELDS * i;
            uint64_t k = (uint64_t)r[J_MSG] ^ 0x8000000000000000ULL;
            if (parts > 1 && (unsigned)(k >> shift) != part) continue;
            int64_t *slot = vec_push(recs);
            if (!slot) return -1;
            memcpy(slot, r, sizeof block[0] * JOURNAL_FIELDS);
        }
        /* A writer stopped mid-record leaves a partial one: whole records only. */
        if (got < 2048) return 0;
    }
}

typedef struct {
    int64_t id;
    row_t row;
} idrow_t;

static int idrow_cmp(const void *a, const void *b) {
    const idrow_t *x = a, *y = b;
    int64_t fx = x->row.has_file ? x->row.file_id : 0, fy = y->row.has_file ? y->row.file_id : 0;
    if (fx != fy) return fx < fy ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

static int int64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : (x > y);
}

typedef struct {
    sqlite3_stmt *sel, *upd, *del;
    vec_t held;      /* idrow_t: a key's rows */
    vec_t sidechain; /* int64_t: the sidechain contexts, sorted */
    vec_t kept;      /* idrow_t: a message's rows after its keys are merged (row: ctx only) */
    long long merged_away, replays;
} settle_t;

static int is_sidechain(settle_t *st, int64_t ctx) {
    return bsearch(&ctx, st->sidechain.data, st->sidechain.len, sizeof(int64_t), int64_cmp) != NULL;
}

/* The stored row `id` into `out`; 0 if there is none. */
static int settle_row(Ingest *self, settle_t *st, int64_t id, row_t *out) {
    sqlite3_bind_int64(st->sel, 1, id);
    int rc = sqlite3_step(st->sel);
    if (rc == SQLITE_ROW) row_from_stmt(st->sel, out);
    sqlite3_reset(st->sel);
    if (rc == SQLITE_ROW) return 1;
    return rc == SQLITE_DONE ? 0 : sql_fail(self);
}

static int settle_delete(Ingest *self, settle_t *st, int64_t id) {
    sqlite3_bind_int64(st->del, 1, id);
    return step_done(self, st->del);
}

/* One key journaled `n` times (records `r`): keep the first row with the merge of all
 * (store.merge_rows, in the order a serial scan meets them: by file, then by position), delete
 * the others, correct the rollups (store.bulk_dedup); the row kept goes into `st->kept`. */
static int settle_key(Ingest *self, settle_t *st, const int64_t *r, size_t n) {
    st->held.len = 0;
    for (size_t k = 0; k < n; k++) {
        idrow_t h;
        h.id = r[JOURNAL_FIELDS * k + J_ROWID];
        int found = settle_row(self, st, h.id, &h.row);
        if (found < 0) return -1;
        if (!found) continue;
        idrow_t *slot = vec_push(&st->held);
        if (!slot) return PyErr_NoMemory(), -1;
        *slot = h;
    }
    if (st->held.len == 0) return 0;
    idrow_t keep = *(idrow_t *)vec_at(&st->held, 0);
    if (st->held.len > 1) {
        qsort(st->held.data, st->held.len, st->held.item, idrow_cmp);
        idrow_t *first = vec_at(&st->held, 0);
        keep = *first;
        for (size_t k = 0; k < st->held.len; k++) {
            idrow_t *h = vec_at(&st->held, k);
            if (rollup_add_row(self, &h->row, -1) < 0) return -1;
            if (k == 0) continue;
            row_t next;
            if (merge_rows(self, &keep.row, &h->row, &next) < 0) return -1;
            keep.row = next;
            if (settle_delete(self, st, h->id) < 0) return -1;
            st->merged_away++;
        }
        if (dims_flush(self) < 0 || rollup_add_row(self, &keep.row, 1) < 0) return -1;
        bind_row(st->upd, &keep.row);
        sqlite3_bind_int64(st->upd, CT_NCOLS + 1, keep.id); /* WHERE id = ? */
        if (step_done(self, st->upd) < 0) return -1;
    }
    idrow_t *slot = vec_push(&st->kept);
    if (!slot) return PyErr_NoMemory(), -1;
    *slot = keep;
    return 0;
}

/* formats.md 1.7 on the rows of one message (all new: a bulk load fills an empty store): a
 * sidechain row replays the message when another row holds it on the main thread, or on a
 * sidechain seen earlier (store.sidechain_replays); replays are deleted and leave the rollups. */
static int settle_replays(Ingest *self, settle_t *st) {
    size_t n = st->kept.len;
    if (n < 2) return 0;
    int64_t *ids = malloc(n * sizeof *ids);
    int *side = malloc(n * sizeof *side), *replay = malloc(n * sizeof *replay);
    if (!ids || !side || !replay) {
        free(ids);
        free(side);
        free(replay);
        return PyErr_NoMemory(), -1;
    }
    for (size_t i = 0; i < n; i++) {
        idrow_t *s = vec_at(&st->kept, i);
        ids[i] = s->id;
        side[i] = is_sidechain(st, s->row.ctx);
    }
    ct_sidechain_replays(ids, side, n, replay);
    free(ids);
    free(side);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        idrow_t *s = vec_at(&st->kept, i);
        if (!replay[i]) continue;
        row_t row;
        int found = settle_row(self, st, s->id, &row);
        if (found <= 0) {
            rc = found;
            continue;
        }
        if (rollup_add_row(self, &row, -1) < 0 || settle_delete(self, st, s->id) < 0) rc = -1;
        else st->replays++;
    }
    free(replay);
    return rc;
}

/* One range of message hashes: its records sorted, each key settled, then each message's
 * replays. */
static int settle_part(Ingest *self, settle_t *st, vec_t *recs, vec_t *tmp) {
    if (vec_reserve(tmp, recs->len) < 0) return PyErr_NoMemory(), -1;
    journal_sort((int64_t *)recs->data, (int64_t *)tmp->data, recs->len);
    const int64_t *r = (const int64_t *)recs->data;
    size_t i = 0;
    while (i < recs->len) {
        size_t m = i + 1; /* the message's records: [i, m) */
        while (m < recs->len && r[JOURNAL_FIELDS * m + J_MSG] == r[JOURNAL_FIELDS * i + J_MSG]) m++;
        st->kept.len = 0;
        if (m - i == 1) {
            /* A message held once: nothing to merge, nothing it can replay. */
            i = m;
            continue;
        }
        for (size_t k = i; k < m;) {
            size_t e = k + 1;
            while (e < m && r[JOURNAL_FIELDS * e + J_KEY] == r[JOURNAL_FIELDS * k + J_KEY]) e++;
            if (e - k == 1) {
                idrow_t *slot = vec_push(&st->kept);
                if (!slot) return PyErr_NoMemory(), -1;
                slot->id = r[JOURNAL_FIELDS * k + J_ROWID];
                slot->row.ctx = r[JOURNAL_FIELDS * k + J_CTX];
            } else if (settle_key(self, st, r + JOURNAL_FIELDS * k, e - k) < 0) {
                return -1;
            }
            k = e;
        }
        if (settle_replays(self, st) < 0) return -1;
        i = m;
    }
    return 0;
}

static int settle_sidechains(Ingest *self, settle_t *st) {
    sqlite3_stmt *q;
    if (prepare(self, "SELECT id FROM contexts WHERE is_sidechain ORDER BY id", &q) < 0) return -1;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t *slot = vec_push(&st->sidechain);
        if (!slot) {
            sqlite3_finalize(q);
            return PyErr_NoMemory(), -1;
        }
        *slot = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : sql_fail(self);
}

/* Ingest.settle(journals, part_records=SETTLE_PART_RECORDS) -> (rows merged away, replays
 * removed): what a bulk load (which appends without the unique key index) leaves to do, read
 * from its workers' key journals instead of from an index: the rows of a key written more than
 * once are merged (store.bulk_dedup), then the sidechain replays go (store.sidechain_replays);
 * the rollups follow. One transaction. The indexes can then be built while the derived sums are
 * computed from final rollups. */
static PyObject *Ingest_settle(Ingest *self, PyObject *args) {
    PyObject *paths;
    unsigned long long part_records = SETTLE_PART_RECORDS;
    if (!PyArg_ParseTuple(args, "O|K", &paths, &part_records)) return NULL;
    if (part_records < 1) part_records = 1;
    PyObject *seq = PySequence_Fast(paths, "journals must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    settle_t st;
    memset(&st, 0, sizeof st);
    st.held.item = sizeof(idrow_t);
    st.kept.item = sizeof(idrow_t);
    st.sidechain.item = sizeof(int64_t);
    vec_t recs = {NULL, 0, 0, JOURNAL_FIELDS * sizeof(int64_t)}, tmp = recs;
    FILE **files = calloc(n ? (size_t)n : 1, sizeof(FILE *));
    int failed = files == NULL;
    if (failed) PyErr_NoMemory();
    uint64_t total = 0;
    for (Py_ssize_t i = 0; !failed && i < n; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *b = PyUnicode_EncodeFSDefault(p);
        files[i] = b ? fopen(PyBytes_AS_STRING(b), "rb") : NULL;
        if (!files[i]) {
            if (b) PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, p);
            failed = 1;
        } else if (fseek(files[i], 0, SEEK_END) == 0) {
            long size = ftell(files[i]);
            total += size > 0 ? (uint64_t)size / (JOURNAL_FIELDS * sizeof(int64_t)) : 0;
            rewind(files[i]);
        }
        Py_XDECREF(b);
    }
    /* A power of two of ranges, each at most about part_records records (hashes: evenly
     * spread). */
    unsigned parts = 1;
    int bits = 0;
    while (parts < 4096 && total / parts > part_records) {
        parts <<= 1;
        bits++;
    }
    if (!failed && vec_reserve(&recs, (size_t)(total / parts + total / parts / 8 + 16)) < 0) {
        PyErr_NoMemory();
        failed = 1;
    }
    int began = 0;
    if (!failed) {
        failed = sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK;
        if (failed) sql_fail(self);
        began = !failed;
    }
    if (!failed)
        failed = settle_sidechains(self, &st) < 0 ||
                 prepare(self,
                         "SELECT key_hash, msg_hash, file_id, context_id, model_id, ts, "
                         "input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, "
                         "cache_write_1h_tokens, web_search_requests, cost_pico, price_source_id, "
                         "reported_pico, cache_savings_pico, cache_write_pico, toolset_id "
                         "FROM turns WHERE id = ?",
                         &st.sel) < 0 ||
                 prepare(self,
                         "UPDATE turns SET key_hash = ?, msg_hash = ?, file_id = ?, "
                         "context_id = ?, model_id = ?, ts = ?, input_tokens = ?, "
                         "output_tokens = ?, cache_read_tokens = ?, cache_write_5m_tokens = ?, "
                         "cache_write_1h_tokens = ?, web_search_requests = ?, cost_pico = ?, "
                         "price_source_id = ?, reported_pico = ?, cache_savings_pico = ?, "
                         "cache_write_pico = ?, toolset_id = ? WHERE id = ?",
                         &st.upd) < 0 ||
                 prepare(self, "DELETE FROM turns WHERE id = ?", &st.del) < 0;
    for (unsigned part = 0; !failed && part < parts; part++) {
        recs.len = 0;
        for (Py_ssize_t i = 0; !failed && i < n; i++) {
            if (part > 0) rewind(files[i]);
            if (journal_read(files[i], &recs, part, parts, 64 - bits) < 0) {
                PyErr_NoMemory();
                failed = 1;
            }
        }
        failed = failed || settle_part(self, &st, &recs, &tmp) < 0;
    }
    failed = failed || rollups_flush(self) < 0 || dims_flush(self) < 0;
    sqlite3_finalize(st.sel);
    sqlite3_finalize(st.upd);
    sqlite3_finalize(st.del);
    if (!failed && sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sql_fail(self);
        failed = 1;
    }
    if (failed && began) sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
    for (Py_ssize_t i = 0; files && i < n; i++)
        if (files[i]) fclose(files[i]);
    free(files);
    free(recs.data);
    free(tmp.data);
    free(st.held.data);
    free(st.kept.data);
    free(st.sidechain.data);
    Py_DECREF(seq);
    if (failed) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "settle failed");
        return NULL;
    }
    return Py_BuildValue("(LL)", st.merged_away, st.replays);
}

/* Ingest.pending() -> rows waiting for commit (for tests and progress). */
static PyObject *Ingest_pending(Ingest *self, PyObject *unused) {
    return PyLong_FromSize_t(self->rows.len);
}


/* ---------------------------------------------------------------------------------------------
 * Derived rollups (store.derived_refresh): coarser sums the reports read, kept in step with
 * `rollup` / `tool_rollup`. SQLite can only GROUP BY through a sort; a hash here is several
 * times faster on a million-turn store. */

#define N_METRICS CT_N_METRICS
#define DAY_BUCKETS 96
/* A full refresh of more rollup rows than this (about 2M turns' worth) goes in passes of half
 * as many (30 MB of sums or so; derive_passes). */
#define DERIVE_PASS_ROWS 400000

typedef struct {
    int64_t k0, k1, k2;
    int64_t m[N_METRICS];
    int64_t first, last;
    int has_ts;
} dagg_t;

typedef struct {
    int64_t day, model;
    int32_t tool;
    int64_t calls, turns;
    double a, c, d;
} dtool_t;

typedef struct {
    vec_t items;
    map_t index;
} dmap_t;

typedef struct {
    dmap_t *m;
    int64_t k0, k1, k2;
} dprobe_t;

static int dagg_eq(void *ctx, int32_t idx) {
    dprobe_t *p = ctx;
    dagg_t *a = vec_at(&p->m->items, (size_t)idx);
    return a->k0 == p->k0 && a->k1 == p->k1 && a->k2 == p->k2;
}

static int dtool_eq(void *ctx, int32_t idx) {
    dprobe_t *p = ctx;
    dtool_t *a = vec_at(&p->m->items, (size_t)idx);
    return a->day == p->k0 && a->model == p->k1 && a->tool == (int32_t)p->k2;
}

static uint64_t key3_hash(int64_t k0, int64_t k1, int64_t k2) {
    return mix64((uint64_t)k0 ^ mix64((uint64_t)k1 ^ mix64((uint64_t)k2 + 0x9e3779b97f4a7c15ULL)));
}

/* The state of one derive(): its plan, the sums read, and the first error met (recorded, not
 * raised: the read phase runs without the interpreter lock). */
typedef struct {
    sqlite3 *db;
    dmap_t by_model, by_day, tools;
    pool_t names;
    int all;
    vec_t days; /* int64_t, sorted and unique: the days to recompute (unless `all`) */
    int64_t rmax, tmax, dirty;
    char marks[64]; /* sums_meta marks as read ("" if none): "<generation>:<rmax>,<tmax>" */
    int64_t gen;    /* meta rollups_generation */
    int64_t pass_rows; /* a full refresh of more rollup rows than this goes in passes */
    int passes;        /* derive_plan_read found a full refresh to do in passes */
    int err;        /* 0, or 1 SQLite, 2 memory, 3 overflow */
    char msg[256];
} derive_t;

static int derive_error(derive_t *d, int kind, const char *msg) {
    if (!d->err) {
        d->err = kind;
        snprintf(d->msg, sizeof d->msg, "%s", msg ? msg : "");
    }
    return -1;
}

static int derive_fail(derive_t *d) { return derive_error(d, 1, sqlite3_errmsg(d->db)); }

static void *dmap_get(derive_t *d, dmap_t *m, int64_t k0, int64_t k1, int64_t k2, map_eq eq,
                      int *fresh) {
    dprobe_t p = {m, k0, k1, k2};
    uint64_t h = key3_hash(k0, k1, k2);
    int32_t i = map_get(&m->index, h, eq, &p);
    *fresh = i < 0;
    if (i >= 0) return vec_at(&m->items, (size_t)i);
    if (m->items.len >= INT32_MAX || !vec_push(&m->items) ||
        map_put(&m->index, h, (int32_t)(m->items.len - 1), eq, &p) < 0) {
        derive_error(d, 2, "out of memory");
        return NULL;
    }
    return vec_at(&m->items, m->items.len - 1);
}

static void dmap_free(dmap_t *m) {
    free(m->items.data);
    map_free(&m->index);
}

static int dadd(derive_t *d, int64_t *slot, int64_t v) {
    __int128 s = (__int128)*slot + v;
    if (s > INT64_MAX || s < INT64_MIN) return derive_error(d, 3, "a sum does not fit in 64 bits");
    *slot = (int64_t)s;
    return 0;
}

/* One rollup row as read: its metrics, and its first / last turn times (has_ts 0: none). */
typedef struct {
    int64_t m[N_METRICS];
    int64_t first, last;
    int has_ts;
} drow_t;

static int dagg_add(derive_t *d, dmap_t *m, int64_t k0, int64_t k1, int64_t k2, const drow_t *r) {
    int fresh;
    dagg_t *a = dmap_get(d, m, k0, k1, k2, dagg_eq, &fresh);
    if (!a) return -1;
    if (fresh) {
        a->k0 = k0;
        a->k1 = k1;
        a->k2 = k2;
    }
    for (int k = 0; k < N_METRICS; k++)
        if (dadd(d, &a->m[k], r->m[k]) < 0) return -1;
    if (r->has_ts) {
        if (!a->has_ts || r->first < a->first) a->first = r->first;
        if (!a->has_ts || r->last > a->last) a->last = r->last;
        a->has_ts = 1;
    }
    return 0;
}

static int dagg_cmp(const void *x, const void *y) {
    const dagg_t *a = x, *b = y;
    if (a->k0 != b->k0) return a->k0 < b->k0 ? -1 : 1;
    if (a->k1 != b->k1) return a->k1 < b->k1 ? -1 : 1;
    return a->k2 < b->k2 ? -1 : (a->k2 > b->k2);
}

static int derive_exec(derive_t *d, const char *sql, int64_t lo, int64_t hi) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) return derive_fail(d);
    if (sqlite3_bind_parameter_count(st) >= 2) {
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : derive_fail(d);
}

/* Sums rollup rows into the maps: those of buckets [lo, hi] through the bucket index
 * (READ_RANGE), every row (READ_ALL), or every row read but only those of [lo, hi] kept
 * (READ_SCAN: a pass of derive_passes, which must not depend on the index being there; its
 * tool rows, few sums for many rows, are all read in its first pass, `with_tools`). */
enum { READ_RANGE, READ_ALL, READ_SCAN };

static int derive_read(derive_t *d, int mode, int64_t lo, int64_t hi, int with_tools) {
    int all = mode != READ_RANGE;
    static const char *cols =
        "bucket, context_id, model_id, turns, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, auto_pico, "
        "auto_unpriced_tokens, auto_unpriced_turns, calc_pico, calc_unpriced_tokens, "
        "calc_unpriced_turns, display_pico, display_unpriced_tokens, display_unpriced_turns, "
        "cache_savings_pico, cache_write_pico, first_ts, last_ts";
    char sql[900];
    snprintf(sql, sizeof sql, "SELECT %s FROM rollup %s", cols,
             all ? "NOT INDEXED" : "WHERE bucket BETWEEN ?1 AND ?2");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) return derive_fail(d);
    if (!all) {
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t bucket = sqlite3_column_int64(st, 0);
        if (mode == READ_SCAN && (bucket < lo || bucket > hi)) continue;
        int64_t ctx = sqlite3_column_int64(st, 1), model = sqlite3_column_int64(st, 2);
        drow_t r;
        for (int k = 0; k < N_METRICS; k++) r.m[k] = sqlite3_column_int64(st, 3 + k);
        r.has_ts = sqlite3_column_type(st, 3 + N_METRICS) != SQLITE_NULL;
        r.first = sqlite3_column_int64(st, 3 + N_METRICS);
        r.last = sqlite3_column_int64(st, 4 + N_METRICS);
        if (dagg_add(d, &d->by_model, bucket, model, 0, &r) < 0 ||
            dagg_add(d, &d->by_day, ct_floor_div(bucket, DAY_BUCKETS), ctx, model, &r) < 0) {
            sqlite3_finalize(st);
            return -1;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return derive_fail(d);
    if (!with_tools) return 0;

    snprintf(sql, sizeof sql,
             "SELECT bucket, model_id, tool, calls, turns, auto_pico, calc_pico, display_pico "
             "FROM tool_rollup %s",
             all ? "NOT INDEXED" : "WHERE bucket BETWEEN ?1 AND ?2");
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) return derive_fail(d);
    if (!all) {
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        str_t name = {(const char *)sqlite3_column_text(st, 2), (size_t)sqlite3_column_bytes(st, 2)};
        if (!name.p) name.p = "";
        int32_t tool = pool_id(&d->names, name);
        int fresh;
        int64_t day = ct_floor_div(sqlite3_column_int64(st, 0), DAY_BUCKETS);
        int64_t model = sqlite3_column_int64(st, 1);
        dtool_t *t = NULL;
        if (tool < 0) derive_error(d, 2, "out of memory");
        else t = dmap_get(d, &d->tools, day, model, tool, dtool_eq, &fresh);
        if (!t) {
            sqlite3_finalize(st);
            return -1;
        }
        if (fresh) {
            t->day = day;
            t->model = model;
            t->tool = tool;
        }
        if (dadd(d, &t->calls, sqlite3_column_int64(st, 3)) < 0 ||
            dadd(d, &t->turns, sqlite3_column_int64(st, 4)) < 0) {
            sqlite3_finalize(st);
            return -1;
        }
        t->a += sqlite3_column_double(st, 5);
        t->c += sqlite3_column_double(st, 6);
        t->d += sqlite3_column_double(st, 7);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : derive_fail(d);
}

static int derive_insert(derive_t *d, dmap_t *m, const char *sql, int nkeys) {
    qsort(m->items.data, m->items.len, m->items.item, dagg_cmp);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) return derive_fail(d);
    for (size_t i = 0; i < m->items.len; i++) {
        dagg_t *a = vec_at(&m->items, i);
        int c = 1;
        sqlite3_bind_int64(st, c++, a->k0);
        sqlite3_bind_int64(st, c++, a->k1);
        if (nkeys == 3) sqlite3_bind_int64(st, c++, a->k2);
        for (int k = 0; k < N_METRICS; k++) sqlite3_bind_int64(st, c++, a->m[k]);
        if (a->has_ts) {
            sqlite3_bind_int64(st, c++, a->first);
            sqlite3_bind_int64(st, c++, a->last);
        } else {
            sqlite3_bind_null(st, c++);
            sqlite3_bind_null(st, c++);
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            return derive_fail(d);
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return 0;
}

static int derive_insert_tools(derive_t *d) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "INSERT INTO tool_day VALUES (?, ?, ?, ?, ?, ?, ?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return derive_fail(d);
    for (size_t i = 0; i < d->tools.items.len; i++) {
        dtool_t *t = vec_at(&d->tools.items, i);
        str_t name = pool_str(&d->names, t->tool);
        sqlite3_bind_int64(st, 1, t->day);
        sqlite3_bind_int64(st, 2, t->model);
        sqlite3_bind_text(st, 3, name.p, (int)name.n, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, t->calls);
        sqlite3_bind_int64(st, 5, t->turns);
        sqlite3_bind_double(st, 6, t->a);
        sqlite3_bind_double(st, 7, t->c);
        sqlite3_bind_double(st, 8, t->d);
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            return derive_fail(d);
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return 0;
}

static int64_t derive_scalar(derive_t *d, const char *sql, int *ok) {
    sqlite3_stmt *st;
    int64_t v = 0;
    *ok = 0;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        *ok = 1;
    }
    sqlite3_finalize(st);
    return v;
}

static int i64_cmp(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : (a > b);
}

/* The state the plan was made on: rollup rowid marks, the marks recorded, pending days. */
static int derive_state(derive_t *d, int64_t *gen, int64_t *rmax, int64_t *tmax, char *marks,
                        int64_t *dirty) {
    int ok;
    *gen = derive_scalar(
        d,
        "SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta "
        "WHERE key = 'rollups_generation'), 0)",
        &ok);
    if (!ok) return derive_fail(d);
    *rmax = derive_scalar(d, "SELECT COALESCE(MAX(rowid), 0) FROM rollup", &ok);
    if (!ok) return derive_fail(d);
    *tmax = derive_scalar(d, "SELECT COALESCE(MAX(rowid), 0) FROM tool_rollup", &ok);
    if (!ok) return derive_fail(d);
    *dirty = derive_scalar(d, "SELECT COUNT(*) FROM derived_dirty", &ok);
    if (!ok) return derive_fail(d);
    sqlite3_stmt *st;
    marks[0] = '\0';
    if (sqlite3_prepare_v2(d->db, "SELECT value FROM sums_meta WHERE key = 'marks'", -1, &st,
                           NULL) != SQLITE_OK)
        return derive_fail(d);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        snprintf(marks, 64, "%s", v ? v : "");
    }
    sqlite3_finalize(st);
    return 0;
}

/* Phase 1 (reads only): what to recompute, and the sums for it. */
static int derive_plan_read(derive_t *d) {
    if (derive_state(d, &d->gen, &d->rmax, &d->tmax, d->marks, &d->dirty) < 0) return -1;
    long long gen = -1, rmark = -1, tmark = -1;
    if (sscanf(d->marks, "%lld:%lld,%lld", &gen, &rmark, &tmark) != 3 || gen != d->gen)
        rmark = tmark = -1;
    d->all = rmark < 0 || tmark < 0 || d->rmax < rmark || d->tmax < tmark;
    if (d->all && d->rmax > d->pass_rows) {
        d->passes = 1; /* read pass by pass while writing: see derive_passes */
        return 0;
    }
    if (d->all) return derive_read(d, READ_ALL, 0, 0, 1);
    /* The days whose rollup rows changed since the last refresh. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db,
                           "SELECT bucket, 1 FROM rollup WHERE rowid > ?1 UNION "
                           "SELECT bucket, 1 FROM tool_rollup WHERE rowid > ?2 UNION "
                           "SELECT day, 0 FROM derived_dirty",
                           -1, &st, NULL) != SQLITE_OK)
        return derive_fail(d);
    sqlite3_bind_int64(st, 1, rmark);
    sqlite3_bind_int64(st, 2, tmark);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t *slot = vec_push(&d->days);
        if (!slot) {
            sqlite3_finalize(st);
            return derive_error(d, 2, "out of memory");
        }
        int64_t v = sqlite3_column_int64(st, 0);
        *slot = sqlite3_column_int64(st, 1) ? ct_floor_div(v, DAY_BUCKETS) : v;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return derive_fail(d);
    int64_t *dv = (int64_t *)d->days.data;
    qsort(dv, d->days.len, sizeof(int64_t), i64_cmp);
    size_t n = 0; /* unique */
    for (size_t k = 0; k < d->days.len; k++)
        if (!n || dv[n - 1] != dv[k]) dv[n++] = dv[k];
    d->days.len = n;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && dv[j + 1] == dv[j] + 1) j++;
        if (derive_read(d, READ_RANGE, dv[i] * DAY_BUCKETS, dv[j] * DAY_BUCKETS + DAY_BUCKETS - 1,
                        1) < 0)
            return -1;
        i = j + 1;
    }
    return 0;
}

static int derive_marks_write(derive_t *d);

/* Insert the sums of the maps (rows the caller has just deleted). */
static int derive_insert_all(derive_t *d) {
    if (derive_insert(d, &d->by_model, "INSERT INTO rollup_model VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", 2) < 0 ||
        derive_insert(d, &d->by_day, "INSERT INTO rollup_day VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", 3) < 0 ||
        derive_insert_tools(d) < 0)
        return -1;
    return 0;
}

static void dmap_reset(dmap_t *m) {
    size_t item = m->items.item;
    dmap_free(m);
    memset(m, 0, sizeof *m);
    m->items.item = item;
}

/* A full refresh of a big store, inside the caller's write transaction: the days are cut into
 * ranges of about `pass_rows` / 2 rollup rows, and each range is summed (one read of every row,
 * keeping its own) and written before the next, so that the sums held stay bounded whatever
 * the store's size. Each group's rows are summed in the same order as in one pass. */
static int derive_passes(derive_t *d) {
    dmap_t days = {{NULL, 0, 0, sizeof(dagg_t)}, {0}};
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "SELECT bucket FROM rollup NOT INDEXED", -1, &st, NULL) !=
        SQLITE_OK)
        return derive_fail(d);
    int rc, bad = 0;
    while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int fresh;
        int64_t day = ct_floor_div(sqlite3_column_int64(st, 0), DAY_BUCKETS);
        dagg_t *a = dmap_get(d, &days, day, 0, 0, dagg_eq, &fresh);
        if (!a) {
            bad = 1;
            break;
        }
        if (fresh) a->k0 = day;
        a->m[0]++;
    }
    sqlite3_finalize(st);
    if (!bad && rc != SQLITE_DONE) bad = derive_fail(d) < 0;
    if (!bad) qsort(days.items.data, days.items.len, days.items.item, dagg_cmp);
    if (!bad && (derive_exec(d, "DELETE FROM rollup_model", 0, 0) < 0 ||
                 derive_exec(d, "DELETE FROM rollup_day", 0, 0) < 0 ||
                 derive_exec(d, "DELETE FROM tool_day", 0, 0) < 0))
        bad = 1;
    /* Ranges that cover every bucket, the first from the lowest, the last to the highest. */
    int64_t lo = INT64_MIN, per_pass = d->pass_rows / 2 > 0 ? d->pass_rows / 2 : 1;
    size_t i = 0, n = days.items.len;
    while (!bad && (i < n || lo == INT64_MIN)) {
        int64_t rows = 0;
        size_t j = i;
        while (j < n && (j == i || rows + ((dagg_t *)vec_at(&days.items, j))->m[0] <= per_pass))
            rows += ((dagg_t *)vec_at(&days.items, j++))->m[0];
        int64_t hi = j < n ? ((dagg_t *)vec_at(&days.items, j - 1))->k0 * DAY_BUCKETS +
                                 DAY_BUCKETS - 1
                           : INT64_MAX;
        int first = lo == INT64_MIN;
        dmap_reset(&d->by_model);
        dmap_reset(&d->by_day);
        dmap_reset(&d->tools);
        if (derive_read(d, READ_SCAN, lo, hi, first) < 0 || derive_insert_all(d) < 0) bad = 1;
        if (hi == INT64_MAX) break;
        lo = hi + 1;
        i = j;
    }
    dmap_free(&days);
    if (bad) return -1;
    return derive_marks_write(d);
}

/* Phase 2 (in a write transaction): replace the derived rows of the plan with the sums. */
static int derive_write(derive_t *d) {
    if (d->all) {
        if (derive_exec(d, "DELETE FROM rollup_model", 0, 0) < 0 ||
            derive_exec(d, "DELETE FROM rollup_day", 0, 0) < 0 ||
            derive_exec(d, "DELETE FROM tool_day", 0, 0) < 0)
            return -1;
    } else {
        int64_t *dv = (int64_t *)d->days.data;
        for (size_t i = 0; i < d->days.len;) {
            size_t j = i;
            while (j + 1 < d->days.len && dv[j + 1] == dv[j] + 1) j++;
            int64_t lo = dv[i] * DAY_BUCKETS, hi = dv[j] * DAY_BUCKETS + DAY_BUCKETS - 1;
            if (derive_exec(d, "DELETE FROM rollup_model WHERE bucket BETWEEN ?1 AND ?2", lo, hi) <
                    0 ||
                derive_exec(d, "DELETE FROM rollup_day WHERE day BETWEEN ?1 AND ?2", dv[i], dv[j]) <
                    0 ||
                derive_exec(d, "DELETE FROM tool_day WHERE day BETWEEN ?1 AND ?2", dv[i], dv[j]) <
                    0)
                return -1;
            i = j + 1;
        }
    }
    if (derive_insert_all(d) < 0) return -1;
    return derive_marks_write(d);
}

/* The refresh is complete: no day left dirty, and the marks of what was read. */
static int derive_marks_write(derive_t *d) {
    /* (Only when there were dirty days: otherwise the store itself is not written, and a scan
     * keeps building its indexes on it meanwhile.) */
    if (d->dirty && derive_exec(d, "DELETE FROM derived_dirty", 0, 0) < 0) return -1;
    char marks[96];
    snprintf(marks, sizeof marks, "%lld:%lld,%lld", (long long)d->gen, (long long)d->rmax,
             (long long)d->tmax);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db,
                           "INSERT INTO sums_meta (key, value) VALUES ('marks', ?1) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           -1, &st, NULL) != SQLITE_OK)
        return derive_fail(d);
    sqlite3_bind_text(st, 1, marks, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : derive_fail(d);
}

/* The whole of derive() but the interpreter: returns 0 written, 1 left (the rollups moved
 * between the phases), -1 failed (see d->err). */
static int derive_run(derive_t *d, int overlap) {
    if (!overlap) {
        /* One write transaction for both phases. */
        if (derive_exec(d, "BEGIN IMMEDIATE", 0, 0) < 0) return -1;
        if (derive_plan_read(d) < 0 || (d->passes ? derive_passes(d) : derive_write(d)) < 0 ||
            derive_exec(d, "COMMIT", 0, 0) < 0) {
            sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        return 0;
    }
    /* Read under a snapshot while another connection may be writing (building indexes), then
     * write once it is done, if the rollups are still what was read. */
    if (derive_exec(d, "BEGIN", 0, 0) < 0) return -1;
    int bad = derive_plan_read(d) < 0;
    sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
    /* A big full refresh cannot hold what it read until it may write: left to the caller's
     * refresh afterwards, which writes pass by pass. */
    if (!bad && d->passes) return 1;
    /* Deferred: the write lock taken is the sums file's alone (and the store's only when dirty
     * days are cleared), so this runs while another connection writes the store. */
    if (bad || derive_exec(d, "BEGIN", 0, 0) < 0) return -1;
    int64_t gen, rmax, tmax, dirty;
    char marks[64];
    if (derive_state(d, &gen, &rmax, &tmax, marks, &dirty) < 0) {
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (gen != d->gen || rmax != d->rmax || tmax != d->tmax || dirty != d->dirty ||
        strcmp(marks, d->marks)) {
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
        return 1;
    }
    if (derive_write(d) < 0 || derive_exec(d, "COMMIT", 0, 0) < 0) {
        sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

/* derive(path, overlap=False, pass_rows=DERIVE_PASS_ROWS, synced=True) -> days recomputed (-1: all; None:
 * nothing written because the rollups changed meanwhile, or a full refresh of more than
 * `pass_rows` rows was asked with `overlap`): brings rollup_model, rollup_day and tool_day in
 * step with the rollups (store.derived_refresh). With `overlap` it reads in a transaction of
 * its own without holding the interpreter lock, so it can run on a thread while another
 * connection writes. `synced` false: the sums file is written without waiting for the disk
 * (a bulk load's, whose marker covers it: store.bulk_load). */
static PyObject *derive(PyObject *mod, PyObject *args, PyObject *kw) {
    PyObject *path;
    int overlap = 0, synced = 1;
    long long pass_rows = DERIVE_PASS_ROWS;
    static char *kwlist[] = {"path", "overlap", "pass_rows", "synced", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pLp", kwlist, &path, &overlap, &pass_rows,
                                     &synced))
        return NULL;
    PyObject *b = PyUnicode_EncodeFSDefault(path);
    if (!b) return NULL;
    derive_t d;
    memset(&d, 0, sizeof d);
    d.by_model.items.item = sizeof(dagg_t);
    d.by_day.items.item = sizeof(dagg_t);
    d.tools.items.item = sizeof(dtool_t);
    d.names.spans.item = sizeof(span_t);
    d.days.item = sizeof(int64_t);
    d.pass_rows = pass_rows > 0 ? pass_rows : 1;
    const char *path_c = PyBytes_AS_STRING(b);
    int rc = sqlite3_open_v2(path_c, &d.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    int outcome = -1;
    Py_BEGIN_ALLOW_THREADS
    if (rc != SQLITE_OK) {
        derive_fail(&d);
    } else {
        sqlite3_busy_timeout(d.db, 60000);
        if (derive_exec(&d, "PRAGMA cache_size=-2000", 0, 0) == 0 && sums_attach(d.db, path_c) == 0 &&
            derive_exec(&d, synced ? "PRAGMA sums.synchronous=NORMAL" : "PRAGMA sums.synchronous=OFF",
                        0, 0) == 0)
            outcome = derive_run(&d, overlap);
        else if (!d.err)
            derive_fail(&d);
    }
    sqlite3_close(d.db);
    Py_END_ALLOW_THREADS
    Py_DECREF(b);
    int all = d.all;
    size_t days = d.days.len;
    dmap_free(&d.by_model);
    dmap_free(&d.by_day);
    dmap_free(&d.tools);
    pool_free(&d.names);
    free(d.days.data);
    if (outcome < 0) {
        PyObject *type = d.err == 3   ? PyExc_OverflowError
                         : d.err == 2 ? PyExc_MemoryError
                                      : PyExc_RuntimeError;
        PyErr_Format(type, "derive: %s", d.err == 1 ? d.msg : (d.msg[0] ? d.msg : "failed"));
        return NULL;
    }
    if (outcome == 1) Py_RETURN_NONE;
    return PyLong_FromLongLong(all ? -1 : (long long)days);
}

/* ---------------------------------------------------------------------------------------------
 * warm_check (scan._tree_unchanged): stat what the last discovery read, and every known file,
 * on two threads, without the interpreter. */

#ifndef _WIN32
#include <pthread.h>
#include <sys/stat.h>

typedef struct {
    size_t path; /* offset into the arena */
    int64_t id, mtime, size, ino, ctime;
    int has_ctime;
    char kind; /* d, f, m: the watch table; t: a transcript (files table) */
    int changed;
} wentry_t;

static int64_t stat_mtime_ns(const struct stat *st) {
#ifdef __APPLE__
    return (int64_t)st->st_mtimespec.tv_sec * 1000000000LL + st->st_mtimespec.tv_nsec;
#else
    return (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
#endif
}

static int64_t stat_ctime_ns(const struct stat *st) {
#ifdef __APPLE__
    return (int64_t)st->st_ctimespec.tv_sec * 1000000000LL + st->st_ctimespec.tv_nsec;
#else
    return (int64_t)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
#endif
}

typedef struct {
    wentry_t *items;
    size_t n;
    const char *arena;
} wslice_t;

static void *wcheck(void *arg) {
    wslice_t *s = arg;
    for (size_t i = 0; i < s->n; i++) {
        wentry_t *e = &s->items[i];
        struct stat st;
        int ok = stat(s->arena + e->path, &st) == 0;
        int is_dir = ok && S_ISDIR(st.st_mode);
        switch (e->kind) {
            case 'm': e->changed = is_dir; break;
            case 'd': e->changed = !is_dir || e->mtime < 0 || stat_mtime_ns(&st) != e->mtime; break;
            case 'f':
                e->changed = !ok || e->mtime < 0 || stat_mtime_ns(&st) != e->mtime ||
                             (int64_t)st.st_size != e->size;
                break;
            default:
                e->changed = !ok ? 2
                                 : ((int64_t)st.st_size != e->size ||
                                    stat_mtime_ns(&st) != e->mtime || (int64_t)st.st_ino != e->ino ||
                                    !e->has_ctime || stat_ctime_ns(&st) != e->ctime);
        }
    }
    return NULL;
}

static int wload(sqlite3 *db, const char *sql, char kind, vec_t *out, buf_t *arena) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        wentry_t *e = vec_push(out);
        if (!e) break;
        const char *p = (const char *)sqlite3_column_text(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        e->path = arena->n;
        if (!p || buf_add(arena, p, (size_t)n) < 0 || buf_addc(arena, '\0') < 0) break;
        if (kind == 't') {
            e->kind = 't';
            e->size = sqlite3_column_int64(st, 1);
            e->mtime = sqlite3_column_int64(st, 2);
            e->ino = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3);
            e->id = sqlite3_column_int64(st, 4);
            e->has_ctime = sqlite3_column_type(st, 5) != SQLITE_NULL;
            e->ctime = sqlite3_column_int64(st, 5);
        } else {
            const char *k = (const char *)sqlite3_column_text(st, 1);
            e->kind = k ? k[0] : '?';
            e->mtime = sqlite3_column_int64(st, 2);
            e->size = sqlite3_column_int64(st, 3);
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* warm_check(path) -> (files checked, [ids changed]) or None (see scan._tree_unchanged). */
static PyObject *warm_check(PyObject *mod, PyObject *arg) {
    PyObject *b = PyUnicode_EncodeFSDefault(arg);
    if (!b) return NULL;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(PyBytes_AS_STRING(b), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                             NULL);
    Py_DECREF(b);
    vec_t watch = {NULL, 0, 0, sizeof(wentry_t)}, files = {NULL, 0, 0, sizeof(wentry_t)};
    buf_t arena = {NULL, 0, 0};
    int failed = rc != SQLITE_OK;
    if (!failed) {
        sqlite3_busy_timeout(db, 60000);
        /* One read transaction: the two tables as one scan left them. */
        failed = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
                 wload(db, "SELECT path, kind, mtime_ns, size FROM watch", 'w', &watch, &arena) < 0 ||
                 wload(db,
                       "SELECT path, size, mtime_ns, inode, id, ctime_ns FROM files "
                       "WHERE missing_since IS NULL",
                       't', &files, &arena) < 0;
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    if (failed) {
        PyErr_Format(PyExc_RuntimeError, "SQLite: %s", db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        free(watch.data);
        free(files.data);
        free(arena.p);
        return NULL;
    }
    sqlite3_close(db);
    int stale = watch.len == 0;
    if (!stale) {
        /* The directories first (a change there means a new listing anyway), then the files. */
        vec_t *sets[2] = {&watch, &files};
        Py_BEGIN_ALLOW_THREADS
        for (int k = 0; k < 2 && !stale; k++) {
            vec_t *v = sets[k];
            size_t half = v->len > 2000 ? v->len / 2 : 0;
            wslice_t a = {(wentry_t *)v->data, half, arena.p};
            wslice_t c = {(wentry_t *)v->data + half, v->len - half, arena.p};
            pthread_t t;
            int threaded = half && pthread_create(&t, NULL, wcheck, &a) == 0;
            if (half && !threaded) wcheck(&a);
            wcheck(&c);
            if (threaded) pthread_join(t, NULL);
            for (size_t i = 0; i < v->len && !stale; i++) {
                wentry_t *e = vec_at(v, i);
                stale = k == 0 ? e->changed != 0 : e->changed == 2;
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyObject *out = NULL;
    if (stale) {
        out = Py_NewRef(Py_None);
    } else {
        PyObject *ids = PyList_New(0);
        for (size_t i = 0; ids && i < files.len; i++) {
            wentry_t *e = vec_at(&files, i);
            if (!e->changed) continue;
            PyObject *v = PyLong_FromLongLong(e->id);
            if (!v || PyList_Append(ids, v) < 0) Py_CLEAR(ids);
            Py_XDECREF(v);
        }
        if (ids) out = Py_BuildValue("(nN)", (Py_ssize_t)files.len, ids);
    }
    free(watch.data);
    free(files.data);
    free(arena.p);
    return out;
}
#endif

/* ---------------------------------------------------------------------------------------------
 * group_sum (reports._sum_by): GROUP BY in a hash. SQLite groups through a sort, which on the
 * ~100k rollup rows of a million-turn store costs a report most of its time. */

typedef struct {
    int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_NULL (others as text) */
    int64_t i;
    double d;
    size_t off, len; /* text: in the arena */
} gkey_t;

typedef struct {
    vec_t groups;   /* per group: nkeys gkey_t then nvals gval_t, one block */
    map_t index;
    buf_t arena;
    int nkeys, nvals;
    size_t block;
    const gkey_t *probe;
} gsum_t;

typedef struct {
    int is_float;
    __int128 i;
    double d;
} gval_t;

static int gkey_same(const gsum_t *g, const gkey_t *a, const gkey_t *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
        case SQLITE_INTEGER: return a->i == b->i;
        case SQLITE_FLOAT: return a->d == b->d;
        case SQLITE_NULL: return 1;
        default: return a->len == b->len && !memcmp(g->arena.p + a->off, g->arena.p + b->off, a->len);
    }
}

static int gsum_eq(void *ctx, int32_t idx) {
    gsum_t *g = ctx;
    const gkey_t *k = (const gkey_t *)vec_at(&g->groups, (size_t)idx);
    for (int i = 0; i < g->nkeys; i++)
        if (!gkey_same(g, &k[i], &g->probe[i])) return 0;
    return 1;
}

static PyObject *gval_py(const gval_t *v) {
    if (v->is_float) return PyFloat_FromDouble(v->d);
    if (v->i <= INT64_MAX && v->i >= INT64_MIN) return PyLong_FromLongLong((long long)v->i);
    /* A sum past 64 bits (rows that rules.rollup_split cut, summed again): Python's ints are
     * as wide as it takes. high * 2^64 + low. */
    __int128 high = v->i >> 64;
    PyObject *hi = PyLong_FromLongLong((long long)high);
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)(v->i & 0xFFFFFFFFFFFFFFFFULL));
    PyObject *shift = PyLong_FromLong(64);
    PyObject *scaled = hi && shift ? PyNumber_Lshift(hi, shift) : NULL;
    PyObject *out = scaled && lo ? PyNumber_Add(scaled, lo) : NULL;
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(shift);
    Py_XDECREF(scaled);
    return out;
}

static int bind_params(sqlite3_stmt *st, PyObject *params) {
    PyObject *seq = PySequence_Fast(params, "params must be a sequence");
    if (!seq) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq) && !rc; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(seq, i);
        int c = (int)i + 1;
        if (v == Py_None) {
            sqlite3_bind_null(st, c);
        } else if (PyLong_Check(v)) {
            long long x = PyLong_AsLongLong(v);
            if (x == -1 && PyErr_Occurred()) rc = -1;
            else sqlite3_bind_int64(st, c, x);
        } else if (PyFloat_Check(v)) {
            sqlite3_bind_double(st, c, PyFloat_AS_DOUBLE(v));
        } else if (PyUnicode_Check(v)) {
            Py_ssize_t n;
            const char *u = PyUnicode_AsUTF8AndSize(v, &n);
            if (!u) rc = -1;
            else sqlite3_bind_text(st, c, u, (int)n, SQLITE_TRANSIENT);
        } else {
            PyErr_SetString(PyExc_TypeError, "params: int, float, str or None");
            rc = -1;
        }
    }
    Py_DECREF(seq);
    return rc;
}

/* group_sum(path, sql, params, nkeys) -> [(key..., sum...), ...]: the rows of `sql` summed by
 * their first `nkeys` columns (integer columns exactly, real ones as floats), in no order. */
static PyObject *group_sum(PyObject *mod, PyObject *args) {
    PyObject *path, *params;
    const char *sql;
    int nkeys;
    if (!PyArg_ParseTuple(args, "OsOi", &path, &sql, &params, &nkeys)) return NULL;
    PyObject *b = PyUnicode_EncodeFSDefault(path);
    if (!b) return NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(PyBytes_AS_STRING(b), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                             NULL);
    gsum_t g;
    memset(&g, 0, sizeof g);
    PyObject *out = NULL;
    gkey_t *probe = NULL;
    /* (The wait first: even preparing reads the schema, which a scan may be writing.) Without
     * its sums file a store still answers from the rollups. */
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 60000);
        sums_attach(db, PyBytes_AS_STRING(b));
    }
    Py_DECREF(b);
    if (rc != SQLITE_OK || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        PyErr_Format(PyExc_RuntimeError, "SQLite: %s", db ? sqlite3_errmsg(db) : "cannot open");
        goto done;
    }
    int ncols = sqlite3_column_count(st);
    if (nkeys < 0 || nkeys > ncols || bind_params(st, params) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "nkeys");
        goto done;
    }
    g.nkeys = nkeys;
    g.nvals = ncols - nkeys;
    g.block = (size_t)nkeys * sizeof(gkey_t) + (size_t)g.nvals * sizeof(gval_t);
    g.groups.item = g.block;
    probe = calloc((size_t)nkeys + 1, sizeof(gkey_t));
    if (!probe) {
        PyErr_NoMemory();
        goto done;
    }
    g.probe = probe;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t h = 0x9e3779b97f4a7c15ULL;
        size_t mark = g.arena.n;
        for (int i = 0; i < nkeys; i++) {
            gkey_t *k = &probe[i];
            k->type = sqlite3_column_type(st, i);
            if (k->type == SQLITE_INTEGER) {
                k->i = sqlite3_column_int64(st, i);
                h = mix64(h ^ (uint64_t)k->i);
            } else if (k->type == SQLITE_FLOAT) {
                k->d = sqlite3_column_double(st, i);
                uint64_t bits;
                memcpy(&bits, &k->d, sizeof bits);
                h = mix64(h ^ bits);
            } else if (k->type == SQLITE_NULL) {
                h = mix64(h ^ 0x51ULL);
            } else {
                k->type = SQLITE_TEXT;
                const char *t = (const char *)sqlite3_column_text(st, i);
                k->len = (size_t)sqlite3_column_bytes(st, i);
                k->off = g.arena.n;
                if (buf_add(&g.arena, t ? t : "", k->len) < 0) {
                    PyErr_NoMemory();
                    goto done;
                }
                str_t sv = {g.arena.p + k->off, k->len};
                h = mix64(h ^ str_hash(sv));
            }
        }
        int32_t gi = map_get(&g.index, h, gsum_eq, &g);
        char *block;
        if (gi < 0) {
            if (g.groups.len >= INT32_MAX || !vec_push(&g.groups) ||
                map_put(&g.index, h, (int32_t)(g.groups.len - 1), gsum_eq, &g) < 0) {
                PyErr_NoMemory();
                goto done;
            }
            block = vec_at(&g.groups, g.groups.len - 1);
            memcpy(block, probe, (size_t)nkeys * sizeof(gkey_t));
        } else {
            block = vec_at(&g.groups, (size_t)gi);
            g.arena.n = mark; /* the key's text is stored already */
        }
        gval_t *vals = (gval_t *)(block + (size_t)nkeys * sizeof(gkey_t));
        for (int j = 0; j < g.nvals; j++) {
            int c = nkeys + j;
            int t = sqlite3_column_type(st, c);
            if (t == SQLITE_NULL) continue;
            if (t == SQLITE_FLOAT || vals[j].is_float) {
                if (!vals[j].is_float) {
                    vals[j].d = (double)vals[j].i;
                    vals[j].is_float = 1;
                }
                vals[j].d += sqlite3_column_double(st, c);
            } else {
                vals[j].i += sqlite3_column_int64(st, c);
            }
        }
    }
    if (rc != SQLITE_DONE) {
        PyErr_Format(PyExc_RuntimeError, "SQLite: %s", sqlite3_errmsg(db));
        goto done;
    }
    out = PyList_New((Py_ssize_t)g.groups.len);
    for (size_t gi = 0; out && gi < g.groups.len; gi++) {
        const char *block = vec_at(&g.groups, gi);
        const gkey_t *keys = (const gkey_t *)block;
        const gval_t *vals = (const gval_t *)(block + (size_t)nkeys * sizeof(gkey_t));
        PyObject *row = PyTuple_New(nkeys + g.nvals);
        for (int i = 0; row && i < nkeys + g.nvals; i++) {
            PyObject *v;
            if (i >= nkeys) {
                v = gval_py(&vals[i - nkeys]);
            } else if (keys[i].type == SQLITE_INTEGER) {
                v = PyLong_FromLongLong(keys[i].i);
            } else if (keys[i].type == SQLITE_FLOAT) {
                v = PyFloat_FromDouble(keys[i].d);
            } else if (keys[i].type == SQLITE_NULL) {
                v = Py_NewRef(Py_None);
            } else {
                v = PyUnicode_DecodeUTF8(g.arena.p + keys[i].off, (Py_ssize_t)keys[i].len,
                                         "replace");
            }
            if (!v) {
                Py_CLEAR(row);
                break;
            }
            PyTuple_SET_ITEM(row, i, v);
        }
        if (!row) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)gi, row);
    }
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(probe);
    free(g.groups.data);
    map_free(&g.index);
    free(g.arena.p);
    return out;
}

static PyMethodDef Ingest_methods[] = {
    {"claude", (PyCFunction)Ingest_claude, METH_VARARGS, "Parse Claude Code lines into the chunk."},
    {"claude_add", (PyCFunction)Ingest_claude_add, METH_O, "Add a Python-parsed Claude record."},
    {"claude_end", (PyCFunction)Ingest_claude_end, METH_O, "Price the chunk's Claude records."},
    {"openclaw", (PyCFunction)Ingest_openclaw, METH_VARARGS, "Parse OpenClaw lines into rows."},
    {"add", (PyCFunction)Ingest_add, METH_VARARGS, "Add a Python-parsed record as a row."},
    {"prepare", (PyCFunction)Ingest_prepare, METH_NOARGS, "Rollups of a bulk batch, unlocked."},
    {"commit", (PyCFunction)Ingest_commit, METH_VARARGS, "Write the batch in one transaction."},
    {"pending", (PyCFunction)Ingest_pending, METH_NOARGS, "Rows waiting for commit."},
    {"settle", (PyCFunction)Ingest_settle, METH_VARARGS,
     "Merge the keys a bulk load wrote twice and drop its sidechain replays."},
    {"close", (PyCFunction)Ingest_close, METH_NOARGS, "Close the key journal."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject IngestType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "clawtrace._ingest.Ingest",
    .tp_basicsize = sizeof(Ingest),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A scan worker's native writer (see ingest.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Ingest_init,
    .tp_dealloc = (destructor)Ingest_dealloc,
    .tp_methods = Ingest_methods,
};

/* intern_limit([bytes]) -> the limit it replaces (tests set it to 0: a drop after every commit;
 * workers forked afterwards inherit it). */
static PyObject *intern_limit_set(PyObject *mod, PyObject *args) {
    unsigned long long limit = intern_limit;
    if (!PyArg_ParseTuple(args, "|K", &limit)) return NULL;
    size_t before = intern_limit;
    intern_limit = (size_t)limit;
    return PyLong_FromSize_t(before);
}

static PyMethodDef ingest_functions[] = {
    {"derive", (PyCFunction)(void (*)(void))derive, METH_VARARGS | METH_KEYWORDS,
     "derive(path, overlap=False, pass_rows=..., synced=True): bring the derived rollups in step "
     "(store.derived_refresh); synced=False during a bulk load (store.bulk_load)."},
    {"intern_limit", intern_limit_set, METH_VARARGS,
     "intern_limit([bytes]) -> the limit before: the interned strings a writer keeps across commits."},
    {"group_sum", group_sum, METH_VARARGS, "Rows of a query summed by their first columns."},
#ifndef _WIN32
    {"warm_check", warm_check, METH_O, "Known files changed since the last discovery."},
#endif
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef ingest_module = {PyModuleDef_HEAD_INIT, "clawtrace._ingest",
                                           "A big scan's writer in C (see ingest.c).", -1,
                                           ingest_functions, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ingest(void) {
    if (PyType_Ready(&IngestType) < 0) return NULL;
    PyObject *m = PyModule_Create(&ingest_module);
    if (!m) return NULL;
    Py_INCREF(&IngestType);
    if (PyModule_AddObject(m, "Ingest", (PyObject *)&IngestType) < 0 ||
        PyModule_AddStringConstant(m, "SQLITE_VERSION", sqlite3_libversion()) < 0) {
        Py_DECREF(&IngestType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
