/* clawtrace._ingest.group_sum (reports._sum_by): GROUP BY in a hash. SQLite groups through a
 * sort, which on the ~100k rollup rows of a million-turn store costs a report most of its time.
 * Compiled on its own. */
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
PyObject *ingest_group_sum(PyObject *mod, PyObject *args) {
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
