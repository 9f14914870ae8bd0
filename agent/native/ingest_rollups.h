/* Rollups (store.Rollups): the sums of a batch's rows by 15-minute bucket, context and model
 * (and tool), added (or taken away) by the rules of rules.h, and written at commit. Buckets
 * that had rows before the scan are stale: marked dirty, recomputed at its end. Part of
 * ingest.c's translation unit. */
#ifndef CLAWTRACE_INGEST_ROLLUPS_H
#define CLAWTRACE_INGEST_ROLLUPS_H

#include "ingest.h"
#include "ingest_dims.h"

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

static int is_stale(Ingest *self, int64_t bucket) {
    id_probe p = {&self->stale_ids, bucket};
    return map_get(&self->stale, mix64((uint64_t)bucket), id_eq, &p) >= 0;
}

static int mark_dirty(Ingest *self, int64_t bucket) {
    sqlite3_bind_int64(self->ins_dirty, 1, bucket);
    return step_done(self, self->ins_dirty);
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

#endif
