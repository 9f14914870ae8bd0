/* The writer (store.TurnWriter): the batch's rows, one per key (store.rows_dedup), and their
 * commit: new rows inserted, stored keys merged by rules.replaces with the rollups' deltas, the
 * sidechain-replay rule, rollup sums, the files' offsets, in one transaction. Part of
 * ingest.c's translation unit. */
#ifndef CLAWTRACE_INGEST_WRITER_H
#define CLAWTRACE_INGEST_WRITER_H

#include "ingest.h"
#include "ingest_dims.h"
#include "ingest_rollups.h"

/* The statements on `turns` rows (rules.h's CT_TURN_COLUMNS_SQL: bind_row, row_from_stmt). */
static const char *SQL_INSERT =
    "INSERT INTO turns (" CT_TURN_COLUMNS_SQL ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(msg_hash, key_hash) DO NOTHING";
static const char *SQL_SELECT =
    "SELECT " CT_TURN_COLUMNS_SQL " FROM turns WHERE msg_hash = ? AND key_hash = ?";
static const char *SQL_SELECT_MSG =
    "SELECT t.id, c.is_sidechain FROM turns AS t JOIN contexts AS c ON c.id = t.context_id "
    "WHERE t.msg_hash = ? ORDER BY t.id";
static const char *SQL_SELECT_ID = "SELECT " CT_TURN_COLUMNS_SQL " FROM turns WHERE id = ?";
static const char *SQL_UPDATE =
    "UPDATE turns SET " CT_TURN_COLUMNS_SET_SQL " WHERE msg_hash = ? AND key_hash = ?";
static const char *SQL_UPDATE_ID = "UPDATE turns SET " CT_TURN_COLUMNS_SET_SQL " WHERE id = ?";
static const char *SQL_FILES_HEAD =
    "UPDATE files SET size = ?, mtime_ns = ?, inode = ?, ctime_ns = ?, head_hash = ?, "
    "tail_hash = ?, offset = ?, ";
static const char *SQL_FILES_TAIL =
    ", state_json = ?, last_scan = ?, missing_since = NULL WHERE id = ?";

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

/* ---------------------------------------------------------------------------------------------
 * Commit */

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

/* Ingest.pending() -> rows waiting for commit (for tests and progress). */
static PyObject *Ingest_pending(Ingest *self, PyObject *unused) {
    return PyLong_FromSize_t(self->rows.len);
}

#endif
