/* clawtrace._ingest's writer: its types (the Ingest and what it holds) and the helpers every part
 * of it uses. Part of ingest.c's one translation unit (see there); include Python.h first. */
#ifndef CLAWTRACE_INGEST_H
#define CLAWTRACE_INGEST_H

#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ingest_util.h"
#include "parse.h"
#include "rules.h"
#include "rules_py.h"

/* ---------------------------------------------------------------------------------------------
 * Records, rows, cards, rollups, and the Ingest that holds them */

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

typedef struct {
    vec_t *ids;
    int64_t id;
} id_probe;

static int id_eq(void *ctx, int32_t idx) {
    id_probe *p = ctx;
    return *(int64_t *)vec_at(p->ids, (size_t)idx) == p->id;
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

static int prepare(Ingest *self, const char *sql, sqlite3_stmt **st) {
    if (sqlite3_prepare_v3(self->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return sql_fail(self);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Interned strings, and the bound on what they take */

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

#endif
