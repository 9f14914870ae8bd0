/* clawtrace._ingest: a big scan's writer, without Python objects per turn.
 *
 * The same pipeline as the Python code, step for step, so that a store written by either is
 * the same store (tests/test_native_parity.py compares them row for row):
 *
 *   lines --parse.h--> turns of one read chunk, de-duplicated (rules.keep)
 *         --end of chunk--> priced rows with dimension ids (scan._Ingest._price)
 *         --batch--> one row per key in the batch (store.rows_dedup)
 *         --commit--> SQLite: new rows inserted, stored keys merged by rules.replaces with
 *                     rollup deltas (store.TurnWriter), rollup sums, the files' offsets.
 *
 * Lines the classifiers defer are parsed by Python and handed back as RawTurn tuples
 * (claude_add / add), in order. Prices come from Python (one call per model and UTC day; a
 * turn whose price is not plain integer arithmetic is priced by Python turn by turn).
 *
 * SQLite is the system library Python's sqlite3 module uses, through its C API: binding a
 * row through the sqlite3 module costs more than inserting it.
 *
 * The writer is split by concern, as the Python code is, into headers that make one
 * translation unit with this file (so that the compiler inlines across them as it did when
 * they were one file: the path of every turn crosses them all):
 *
 *   ingest.h          the types (the Ingest and what it holds) and small shared helpers
 *   ingest_dims.h     dimensions: context, model, price source and toolset ids (store.Dims)
 *   ingest_rollups.h  rollup sums of the batch (store.Rollups)
 *   ingest_writer.h   the batch's rows and the commit (store.TurnWriter)
 *   ingest_read.h     lines and RawTurns to records, de-duplicated, priced into rows
 *   ingest_bulk.h     the bulk load's settle from the key journals (store.bulk_dedup)
 *
 * and this file: the type's life (init, dealloc) and the module. The module's functions that need
 * nothing of the writer are compiled on their own (ingest_parts.h): ingest_derive.c (derived
 * sums), ingest_group_sum.c (reports' GROUP BY), ingest_warm.c (the warm check). The rules
 * themselves are rules.h's, shared with clawtrace._native. */
#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <Python.h>

#include "ingest.h"
#include "ingest_bulk.h"
#include "ingest_dims.h"
#include "ingest_parts.h"
#include "ingest_read.h"
#include "ingest_rollups.h"
#include "ingest_writer.h"

/* ---------------------------------------------------------------------------------------------
 * The type */

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
    {"derive", (PyCFunction)(void (*)(void))ingest_derive, METH_VARARGS | METH_KEYWORDS,
     "derive(path, overlap=False, pass_rows=..., synced=True): bring the derived rollups in step "
     "(store.derived_refresh); synced=False during a bulk load (store.bulk_load)."},
    {"intern_limit", intern_limit_set, METH_VARARGS,
     "intern_limit([bytes]) -> the limit before: the interned strings a writer keeps across commits."},
    {"group_sum", ingest_group_sum, METH_VARARGS, "Rows of a query summed by their first columns."},
#ifndef _WIN32
    {"warm_check", ingest_warm_check, METH_O, "Known files changed since the last discovery."},
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
