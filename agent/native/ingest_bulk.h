/* The bulk load's end (store.bulk_load, store.bulk_dedup): a first scan appends into an empty
 * store without the unique key index, each worker journaling (key, rowid, message, context) of
 * every row; `settle` then merges the keys written more than once and drops the sidechain
 * replays, read from the journals instead of an index. Part of ingest.c's translation unit. */
#ifndef CLAWTRACE_INGEST_BULK_H
#define CLAWTRACE_INGEST_BULK_H

#include "ingest.h"
#include "ingest_dims.h"
#include "ingest_rollups.h"
#include "ingest_writer.h"

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
                 prepare(self, SQL_SELECT_ID, &st.sel) < 0 ||
                 prepare(self, SQL_UPDATE_ID, &st.upd) < 0 ||
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

#endif
