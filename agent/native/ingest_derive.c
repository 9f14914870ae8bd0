/* clawtrace._ingest.derive: derived rollups (store.derived_refresh), the coarser sums the reports
 * read, kept in step with `rollup` / `tool_rollup`. SQLite can only GROUP BY through a sort; a
 * hash here is several times faster on a million-turn store. Compiled on its own: it needs
 * nothing of the writer. */
#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ingest_parts.h"
#include "ingest_util.h"
#include "rules.h"

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
    qsort(dv, d->days.len, sizeof(int64_t), int64_cmp);
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
PyObject *ingest_derive(PyObject *mod, PyObject *args, PyObject *kw) {
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
