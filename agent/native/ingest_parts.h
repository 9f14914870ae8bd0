/* The functions of clawtrace._ingest compiled on their own (setup.py lists their files): none
 * needs the writer, only ingest_util.h. ingest.c's module table names them. Include Python.h
 * first. */
#ifndef CLAWTRACE_INGEST_PARTS_H
#define CLAWTRACE_INGEST_PARTS_H

/* ingest_derive.c: derive(path, overlap=False, pass_rows=..., synced=True) */
PyObject *ingest_derive(PyObject *mod, PyObject *args, PyObject *kw);
/* ingest_group_sum.c: group_sum(path, sql, params, nkeys) */
PyObject *ingest_group_sum(PyObject *mod, PyObject *args);
#ifndef _WIN32
/* ingest_warm.c: warm_check(path) */
PyObject *ingest_warm_check(PyObject *mod, PyObject *arg);
#endif

#endif
