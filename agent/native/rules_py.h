/* The inputs of rules.h read from Python objects, once for both extensions (include Python.h
 * first). */
#ifndef CLAWTRACE_RULES_PY_H
#define CLAWTRACE_RULES_PY_H

#include "rules.h"

/* A rate card as scan.card_for gives it: None (nobody prices the model), (source id, source
 * name, ((threshold, six rates), ...)) with whole non-negative picodollars that fit 64 bits, or
 * anything else (False: prices Python applies turn by turn). Returns -1 with a Python error
 * set, else 0 with `c` filled. */
static inline int ct_card_from_py(PyObject *v, ct_card_t *c) {
    c->kind = CT_CARD_ASK;
    c->src = 0;
    c->ntiers = 0;
    if (v == Py_None) {
        c->kind = CT_CARD_NONE;
        return 0;
    }
    if (!PyTuple_Check(v) || PyTuple_GET_SIZE(v) != 3) return 0;
    int overflow = 0;
    long long src = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(v, 0), &overflow);
    if (src == -1 && PyErr_Occurred()) return -1;
    PyObject *tiers = PyTuple_GET_ITEM(v, 2);
    Py_ssize_t nt = PyTuple_Check(tiers) ? PyTuple_GET_SIZE(tiers) : 0;
    if (overflow || nt < 1 || nt > CT_MAX_TIERS) return 0;
    for (Py_ssize_t k = 0; k < nt; k++) {
        PyObject *tier = PyTuple_GET_ITEM(tiers, k);
        if (!PyTuple_Check(tier) || PyTuple_GET_SIZE(tier) != 1 + CT_NTOK) return 0;
        for (int j = 0; j < 1 + CT_NTOK; j++) {
            long long x = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(tier, j), &overflow);
            if (x == -1 && PyErr_Occurred()) return -1;
            if (overflow || x < 0) return 0;
            if (j == 0) c->thresholds[k] = x;
            else c->rates[k][j - 1] = x;
        }
    }
    c->kind = CT_CARD_RATES;
    c->src = src;
    c->ntiers = (int)nt;
    return 0;
}

/* The six token counts of a tuple from slot `at` (a RawTurn's CT_RT_INPUT, a row's
 * CT_COL_INPUT). Returns -1 with a Python error set. */
static inline int ct_tok_from_py(PyObject *t, Py_ssize_t at, int64_t tok[CT_NTOK]) {
    for (int k = 0; k < CT_NTOK; k++) {
        long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(t, at + k));
        if (v == -1 && PyErr_Occurred()) return -1;
        tok[k] = v;
    }
    return 0;
}

#endif
