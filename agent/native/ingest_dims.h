/* Dimensions (store.Dims): the ids of contexts, models, price sources and toolsets, hashed as
 * store.dim_id hashes them, and the rows still to insert. Part of ingest.c's translation unit. */
#ifndef CLAWTRACE_INGEST_DIMS_H
#define CLAWTRACE_INGEST_DIMS_H

#include "ingest.h"

static int64_t dim_hash(buf_t *enc) { return hash64(enc->p, enc->n); }

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

/* Insert the dimension rows first met since the last flush (in the caller's transaction). */
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

#endif
