/* clawtrace._ingest.warm_check (scan._tree_unchanged): stat what the last discovery read, and
 * every known file, on two threads, without the interpreter. Compiled on its own. */
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
PyObject *ingest_warm_check(PyObject *mod, PyObject *arg) {
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
