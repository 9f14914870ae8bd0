/* clawtrace._native: the hot loop of a scan, in C.
 *
 * parse.h classifies lines by the rules of the Python parsers (clawtrace/sources/) and defers
 * every line it is not sure about to them. This file offers that to Python two ways:
 *
 * - claude_parse / openclaw_parse build the Python records the reference pipeline uses
 *   (sources.base.RawTurn), and finish / rollup_rows do that pipeline's per-turn pricing and
 *   rollup sums (scan._Ingest._price, store.Rollups.add);
 * - clawtrace._ingest (ingest.c, a module of its own because it links SQLite) does all of it
 *   without Python objects and writes SQLite itself: the fast path of a big scan.
 *
 * tests/test_native_parity.py holds both to the pure-Python code on generated, mutated and
 * random input. JSON is parsed with yyjson (vendored, MIT); keys are hashed with BLAKE2b-64
 * (RFC 7693), the value hashlib.blake2b(key, digest_size=8) gives. */
#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <Python.h>

#include <errno.h>
#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#include <math.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "parse.h"
#include "rules.h"


/* Interned strings the records share, created once in PyInit__native. */
static PyObject *S_CLAUDE, *S_ANTHROPIC, *S_EMPTY, *S_UNKNOWN;

/* ---------------------------------------------------------------------------------------------
 * Python strings, re-used while consecutive lines repeat them (session, cwd, model...). */

typedef struct {
    PyObject *obj; /* owned */
} str_slot;

static PyObject *slot_str(str_slot *slot, str_t s) {
    if (slot->obj) {
        Py_ssize_t len;
        const char *cur = PyUnicode_AsUTF8AndSize(slot->obj, &len);
        if (cur && (size_t)len == s.n && memcmp(cur, s.p, s.n) == 0) {
            Py_INCREF(slot->obj);
            return slot->obj;
        }
        PyErr_Clear();
    }
    PyObject *o = PyUnicode_DecodeUTF8(s.p, (Py_ssize_t)s.n, "strict");
    if (!o) return NULL;
    Py_XSETREF(slot->obj, o);
    Py_INCREF(o);
    return o;
}

static void slots_clear(str_slot *slots, int n) {
    for (int i = 0; i < n; i++) Py_CLEAR(slots[i].obj);
}

static PyObject *tuple_steal(int n, PyObject **items) {
    PyObject *t = PyTuple_New(n);
    int failed = t == NULL;
    for (int i = 0; i < n; i++)
        if (!items[i]) failed = 1;
    if (failed) {
        for (int i = 0; i < n; i++) Py_XDECREF(items[i]);
        Py_XDECREF(t);
        return NULL;
    }
    for (int i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, items[i]);
    return t;
}

static PyObject *new_ref(PyObject *o) {
    Py_INCREF(o);
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Claude Code records */

enum { S_CWD, S_SESSION, S_MODEL, S_BRANCH, S_AGENT, S_SPEED, S_TOOL, S_NSLOTS };

/* The RawTurn of a classified line; `project` is the line's project (last cwd or fallback). */
static PyObject *claude_record(cline_t *c, ctool_t *tools, PyObject *project, PyObject *hint,
                               str_slot *slots) {
    PyObject *tools_d = PyDict_New();
    if (!tools_d) return NULL;
    for (size_t i = 0; i < c->ntools; i++) {
        PyObject *key = tools[i].has_id
                            ? PyUnicode_DecodeUTF8(tools[i].id.p, (Py_ssize_t)tools[i].id.n,
                                                   "strict")
                            : PyUnicode_FromFormat("#%zu", tools[i].index);
        PyObject *name = key ? slot_str(&slots[S_TOOL], tools[i].name) : NULL;
        int bad = !name || PyDict_SetItem(tools_d, key, name) < 0;
        Py_XDECREF(key);
        Py_XDECREF(name);
        if (bad) {
            Py_DECREF(tools_d);
            return NULL;
        }
    }
    char stackbuf[256];
    size_t klen = c->mid.n + (c->has_rid ? c->rid.n + 1 : 0);
    char *kb = klen <= sizeof stackbuf ? stackbuf : malloc(klen);
    if (!kb) {
        Py_DECREF(tools_d);
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(kb, c->mid.p, c->mid.n);
    if (c->has_rid) {
        kb[c->mid.n] = ':';
        memcpy(kb + c->mid.n + 1, c->rid.p, c->rid.n);
    }
    PyObject *key = PyUnicode_DecodeUTF8(kb, (Py_ssize_t)klen, "strict");
    int64_t key_hash = hash64(kb, klen), msg_hash = hash64(c->mid.p, c->mid.n);
    if (kb != stackbuf) free(kb);
    PyObject *subagent = c->has_agent_id ? slot_str(&slots[S_AGENT], c->agent_id) : new_ref(Py_None);
    PyObject *agent = c->sidechain && c->has_agent_id ? subagent : S_CLAUDE;
    Py_XINCREF(agent);
    PyObject *reported = c->has_reported ? PyFloat_FromDouble(c->reported) : new_ref(Py_None);
    PyObject *items[21] = {
        PyLong_FromLongLong(key_hash),
        PyLong_FromLongLong(msg_hash),
        key,
        agent,
        new_ref(project),
        c->has_session ? slot_str(&slots[S_SESSION], c->session) : new_ref(hint),
        subagent,
        PyLong_FromLong(c->sidechain),
        slot_str(&slots[S_MODEL], c->model),
        new_ref(S_ANTHROPIC),
        PyLong_FromLongLong(c->ts),
        PyLong_FromLongLong(c->tok[0]),
        PyLong_FromLongLong(c->tok[1]),
        PyLong_FromLongLong(c->tok[2]),
        PyLong_FromLongLong(c->tok[3]),
        PyLong_FromLongLong(c->tok[4]),
        PyLong_FromLongLong(c->tok[5]),
        c->has_speed ? slot_str(&slots[S_SPEED], c->speed) : new_ref(Py_None),
        reported,
        c->has_branch ? slot_str(&slots[S_BRANCH], c->branch) : new_ref(S_EMPTY),
        tools_d};
    return tuple_steal(21, items);
}

/* Total tokens of a record (input + output + cache read + both cache writes). */
static long long record_total(PyObject *rec) {
    long long t = 0;
    for (int i = 11; i <= 15; i++) t += PyLong_AsLongLong(PyTuple_GET_ITEM(rec, i));
    return t;
}

/* ClaudeCode._keep: streamed pieces of one response; the largest total wins, ties go to the
 * later piece, and the tool calls are the union of every piece's. */
static int keep(PyObject *best, PyObject *rec) {
    PyObject *key = PyTuple_GET_ITEM(rec, 2);
    PyObject *prev = PyDict_GetItemWithError(best, key);
    if (!prev) {
        if (PyErr_Occurred()) return -1;
        PyObject *tools = PyDict_Copy(PyTuple_GET_ITEM(rec, 20));
        if (!tools) return -1;
        PyObject *pair = PyList_New(2);
        if (!pair) {
            Py_DECREF(tools);
            return -1;
        }
        PyList_SET_ITEM(pair, 0, new_ref(rec));
        PyList_SET_ITEM(pair, 1, tools);
        int r = PyDict_SetItem(best, key, pair);
        Py_DECREF(pair);
        return r;
    }
    if (PyDict_Update(PyList_GET_ITEM(prev, 1), PyTuple_GET_ITEM(rec, 20)) < 0) return -1;
    if (record_total(rec) >= record_total(PyList_GET_ITEM(prev, 0))) {
        if (PyList_SetItem(prev, 0, new_ref(rec)) < 0) return -1;
    }
    return 0;
}

/* claude_records(best) -> [(*record[:20], tuple(tools.values())) for record, tools in best] */
static PyObject *claude_records(PyObject *self, PyObject *best) {
    if (!PyDict_Check(best)) {
        PyErr_SetString(PyExc_TypeError, "best must be a dict");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    Py_ssize_t i = 0;
    PyObject *key, *pair;
    if (!out) return NULL;
    while (PyDict_Next(best, &i, &key, &pair)) {
        PyObject *rec = PyList_GET_ITEM(pair, 0);
        PyObject *names = PyDict_Values(PyList_GET_ITEM(pair, 1));
        PyObject *tools = names ? PyList_AsTuple(names) : NULL;
        Py_XDECREF(names);
        PyObject *row = tools ? PyTuple_New(21) : NULL;
        if (!row) {
            Py_XDECREF(tools);
            Py_DECREF(out);
            return NULL;
        }
        for (int k = 0; k < 20; k++) PyTuple_SET_ITEM(row, k, new_ref(PyTuple_GET_ITEM(rec, k)));
        PyTuple_SET_ITEM(row, 20, tools);
        int bad = PyList_Append(out, row) < 0;
        Py_DECREF(row);
        if (bad) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* claude_parse(data, pos, end, last_cwd, project_fallback, session_hint, subagent_file, best)
 *   -> (pos, last_cwd, lines, malformed, turn_lines, skipped, deferred)
 * Complete lines of data[pos:end] (end is just after a newline); records go into `best` by
 * ClaudeCode._keep's rule. Stops before a deferred line. */
static PyObject *claude_parse(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end;
    PyObject *last_cwd, *fallback, *hint, *best;
    int subagent_file;
    if (!PyArg_ParseTuple(args, "y*nnOUUpO!", &view, &pos, &end, &last_cwd, &fallback, &hint,
                          &subagent_file, &PyDict_Type, &best))
        return NULL;
    if (pos < 0 || end > view.len || pos > end ||
        (last_cwd != Py_None && !PyUnicode_Check(last_cwd))) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "claude_parse: bad arguments");
        return NULL;
    }
    str_slot slots[S_NSLOTS];
    memset(slots, 0, sizeof slots);
    arena_t arena = {NULL, 0};
    vec_t tools = {NULL, 0, 0, sizeof(ctool_t)};
    PyObject *cwd = new_ref(last_cwd);
    long long lines = 0, malformed = 0, turn_lines = 0, skipped = 0;
    int deferred = 0, failed = 0;
    const char *data = view.buf;
    while (pos < end) {
        const char *nl = memchr(data + pos, '\n', (size_t)(end - pos));
        if (!nl) break;
        size_t len = (size_t)(nl - (data + pos));
        cline_t c;
        claude_classify(&arena, data + pos, len, subagent_file, &tools, &c);
        if (c.outcome == O_DEFER) {
            deferred = 1;
            break;
        }
        if (c.has_cwd) {
            PyObject *nc = slot_str(&slots[S_CWD], c.cwd);
            if (!nc) {
                failed = 1;
                break;
            }
            Py_SETREF(cwd, nc);
        }
        if (c.outcome == O_RECORD) {
            PyObject *project = cwd != Py_None ? cwd : fallback;
            PyObject *rec = claude_record(&c, (ctool_t *)tools.data, project, hint, slots);
            int bad = !rec || keep(best, rec) < 0;
            Py_XDECREF(rec);
            if (bad) {
                failed = 1;
                break;
            }
        }
        lines++;
        malformed += c.outcome == O_MALFORMED;
        skipped += c.outcome == O_SKIPPED;
        turn_lines += c.turn_line;
        pos += (Py_ssize_t)len + 1;
    }
    free(arena.buf);
    free(tools.data);
    slots_clear(slots, S_NSLOTS);
    PyBuffer_Release(&view);
    if (failed) {
        Py_DECREF(cwd);
        return NULL;
    }
    return Py_BuildValue("(nNLLLLO)", pos, cwd, lines, malformed, turn_lines, skipped,
                         deferred ? Py_True : Py_False);
}

/* ---------------------------------------------------------------------------------------------
 * OpenClaw records */

enum { OS_MODEL, OS_PROVIDER, OS_TOOL, OS_NSLOTS };

static int py_truthy_str(PyObject *o) { return o && o != Py_None && PyUnicode_GET_LENGTH(o) > 0; }

/* openclaw_parse(data, pos, end, base_offset, agent, session_hint, subagent, session_key,
 *                (session_id, cwd, provider, model))
 *   -> (records, pos, (session_id, cwd, provider, model), lines, malformed, turn_lines,
 *       skipped, deferred) */
static PyObject *openclaw_parse(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end;
    long long base;
    PyObject *agent, *hint, *skey, *state;
    int subagent;
    if (!PyArg_ParseTuple(args, "y*nnLUOpOO!", &view, &pos, &end, &base, &agent, &hint,
                          &subagent, &skey, &PyTuple_Type, &state))
        return NULL;
    int ok = pos >= 0 && end <= view.len && pos <= end && PyTuple_GET_SIZE(state) == ST_N &&
             (hint == Py_None || PyUnicode_Check(hint));
    for (int i = 0; ok && i < ST_N; i++) {
        PyObject *o = PyTuple_GET_ITEM(state, i);
        ok = o == Py_None || PyUnicode_Check(o);
    }
    if (!ok) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "openclaw_parse: bad arguments");
        return NULL;
    }
    PyObject *st[ST_N];
    for (int i = 0; i < ST_N; i++) st[i] = new_ref(PyTuple_GET_ITEM(state, i));
    str_slot slots[OS_NSLOTS];
    memset(slots, 0, sizeof slots);
    arena_t arena = {NULL, 0};
    vec_t tools = {NULL, 0, 0, sizeof(str_t)};
    PyObject *records = PyList_New(0);
    long long lines = 0, malformed = 0, turn_lines = 0, skipped = 0;
    int deferred = 0, failed = records == NULL;
    const char *data = view.buf;
    while (!failed && pos < end) {
        const char *nl = memchr(data + pos, '\n', (size_t)(end - pos));
        if (!nl) break;
        size_t len = (size_t)(nl - (data + pos));
        oline_t o;
        oc_classify(&arena, data + pos, len, py_truthy_str(st[ST_MODEL]), &tools, &o);
        if (o.outcome == O_DEFER) {
            deferred = 1;
            break;
        }
        for (int i = 0; i < ST_N && !failed; i++) {
            if (!o.set[i]) continue;
            PyObject *v = PyUnicode_DecodeUTF8(o.set_to[i].p, (Py_ssize_t)o.set_to[i].n, "strict");
            if (!v) failed = 1;
            else Py_SETREF(st[i], v);
        }
        if (!failed && o.outcome == O_RECORD) {
            PyObject *session = py_truthy_str(st[ST_SESSION])
                                    ? st[ST_SESSION]
                                    : (py_truthy_str(hint) ? hint : S_UNKNOWN);
            PyObject *key;
            if (o.has_id) {
                PyObject *eid = PyUnicode_DecodeUTF8(o.id.p, (Py_ssize_t)o.id.n, "strict");
                key = eid ? PyUnicode_FromFormat("oc:%U:%U:%U", agent, session, eid) : NULL;
                Py_XDECREF(eid);
            } else {
                key = PyUnicode_FromFormat("oc:%U:%U:@%lld", agent, session, base + pos);
            }
            PyObject *key_hash = NULL;
            if (key) {
                Py_ssize_t klen;
                const char *kb = PyUnicode_AsUTF8AndSize(key, &klen);
                key_hash = kb ? PyLong_FromLongLong(hash64(kb, (size_t)klen)) : NULL;
            }
            PyObject *tools_t = PyTuple_New((Py_ssize_t)o.ntools);
            for (size_t i = 0; tools_t && i < o.ntools; i++) {
                PyObject *name = slot_str(&slots[OS_TOOL], ((str_t *)tools.data)[i]);
                if (!name) {
                    Py_CLEAR(tools_t);
                    break;
                }
                PyTuple_SET_ITEM(tools_t, (Py_ssize_t)i, name);
            }
            PyObject *items[21] = {
                key_hash,
                key_hash ? new_ref(key_hash) : NULL, /* no message ids: the key stands in */
                key,
                new_ref(agent),
                new_ref(py_truthy_str(st[ST_CWD]) ? st[ST_CWD] : agent),
                new_ref(session),
                new_ref(subagent ? skey : Py_None),
                PyLong_FromLong(subagent),
                o.model_from_msg ? slot_str(&slots[OS_MODEL], o.model) : new_ref(st[ST_MODEL]),
                o.provider_from_msg ? slot_str(&slots[OS_PROVIDER], o.provider)
                                    : new_ref(py_truthy_str(st[ST_PROVIDER]) ? st[ST_PROVIDER]
                                                                             : S_UNKNOWN),
                PyLong_FromLongLong(o.ts),
                PyLong_FromLongLong(o.tok[0]),
                PyLong_FromLongLong(o.tok[1]),
                PyLong_FromLongLong(o.tok[2]),
                PyLong_FromLongLong(o.tok[3]),
                PyLong_FromLong(0),
                PyLong_FromLong(0),
                new_ref(Py_None),
                o.has_reported ? PyFloat_FromDouble(o.reported) : new_ref(Py_None),
                new_ref(S_EMPTY),
                tools_t};
            PyObject *rec = tuple_steal(21, items);
            if (!rec || PyList_Append(records, rec) < 0) failed = 1;
            Py_XDECREF(rec);
        }
        if (failed) break;
        lines++;
        malformed += o.outcome == O_MALFORMED;
        skipped += o.outcome == O_SKIPPED;
        turn_lines += o.turn_line;
        pos += (Py_ssize_t)len + 1;
    }
    free(arena.buf);
    free(tools.data);
    slots_clear(slots, OS_NSLOTS);
    PyBuffer_Release(&view);
    PyObject *st_out = failed ? NULL : PyTuple_New(ST_N);
    if (!st_out) {
        for (int i = 0; i < ST_N; i++) Py_DECREF(st[i]);
        Py_XDECREF(records);
        return NULL;
    }
    for (int i = 0; i < ST_N; i++) PyTuple_SET_ITEM(st_out, i, st[i]);
    return Py_BuildValue("(NnNLLLLO)", records, pos, st_out, lines, malformed, turn_lines, skipped,
                         deferred ? Py_True : Py_False);
}

/* ---------------------------------------------------------------------------------------------
 * From raw turns to `turns` rows and rollup sums (scan._Ingest._price + store.Rollups.add). */


/* dict[key] or, when missing, fn(*args) (which fills the dict); a new reference. */
static PyObject *lookup_or_call(PyObject *d, PyObject *key, PyObject *fn, PyObject *args) {
    PyObject *v = PyDict_GetItemWithError(d, key);
    if (v) {
        Py_INCREF(v);
        return v;
    }
    if (PyErr_Occurred()) return NULL;
    return PyObject_CallObject(fn, args);
}

static PyObject *tuple_of(int n, ...) {
    va_list ap;
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        PyObject *o = va_arg(ap, PyObject *);
        Py_INCREF(o);
        PyTuple_SET_ITEM(t, i, o);
    }
    va_end(ap);
    return t;
}

/* m[i] += v for a Python int list slot. */
static int list_add(PyObject *m, Py_ssize_t i, long long v) {
    if (v == 0) return 0;
    PyObject *cur = PyList_GET_ITEM(m, i);
    PyObject *add = PyLong_FromLongLong(v);
    if (!add) return -1;
    PyObject *sum = PyNumber_Add(cur, add);
    Py_DECREF(add);
    if (!sum) return -1;
    return PyList_SetItem(m, i, sum);
}


static int list_add_f(PyObject *m, Py_ssize_t i, double v) {
    double cur = PyFloat_AsDouble(PyList_GET_ITEM(m, i));
    PyObject *sum = PyFloat_FromDouble(cur + v);
    if (!sum) return -1;
    return PyList_SetItem(m, i, sum);
}

typedef struct {
    PyObject *dims, *contexts, *models, *sources, *toolsets;
    PyObject *m_context, *m_model, *m_source, *m_toolset;
    PyObject *cards, *card_for, *price_slow;
    PyObject *agg, *tool_agg;
    long long reported_id;
    PyObject *reported_id_o, *none_id_o;
} fin_ctx;

/* Store.Rollups.add with sign +1, for one row. */
static int rollup_add(fin_ctx *fx, long long ts, PyObject *cid, PyObject *mid, const long long *tok,
                      PyObject *cost, long long src_id, PyObject *rep, PyObject *sav, PyObject *wc,
                      PyObject *tools) {
    long long bucket = ts / BUCKET_MS;
    if (ts < 0 && ts % BUCKET_MS) bucket -= 1; /* Python's floor division */
    PyObject *b = PyLong_FromLongLong(bucket);
    if (!b) return -1;
    PyObject *key = tuple_of(3, b, cid, mid);
    if (!key) {
        Py_DECREF(b);
        return -1;
    }
    PyObject *m = PyDict_GetItemWithError(fx->agg, key);
    if (!m) {
        if (PyErr_Occurred()) goto fail;
        m = PyList_New(20);
        if (!m) goto fail;
        PyObject *zero = PyLong_FromLong(0);
        for (int i = 0; i < 18; i++) {
            Py_INCREF(zero);
            PyList_SET_ITEM(m, i, zero);
        }
        Py_DECREF(zero);
        Py_INCREF(Py_None);
        PyList_SET_ITEM(m, 18, Py_None);
        Py_INCREF(Py_None);
        PyList_SET_ITEM(m, 19, Py_None);
        if (PyDict_SetItem(fx->agg, key, m) < 0) {
            Py_DECREF(m);
            goto fail;
        }
        Py_DECREF(m);
    }
    int calc_ok = cost != Py_None && src_id != fx->reported_id;
    {
        /* (A row's values are 64-bit integers: a store column each.) */
        int64_t tok64[6], c = 0, rp = 0, sv, w;
        for (int i = 0; i < 6; i++) tok64[i] = tok[i];
        if (cost != Py_None) c = PyLong_AsLongLong(cost);
        if (rep != Py_None) rp = PyLong_AsLongLong(rep);
        sv = PyLong_AsLongLong(sav);
        w = PyLong_AsLongLong(wc);
        if (PyErr_Occurred()) goto fail;
        __int128 d[18];
        ct_rollup_deltas(tok64, cost != Py_None, c, src_id == fx->reported_id, rep != Py_None, rp,
                         sv, w, 1, d);
        for (int k = 0; k < 18; k++)
            if (list_add(m, k, (long long)d[k]) < 0) goto fail;
    }
    PyObject *lo = PyList_GET_ITEM(m, 18), *hi = PyList_GET_ITEM(m, 19);
    if (lo == Py_None || ts < PyLong_AsLongLong(lo)) {
        if (PyList_SetItem(m, 18, PyLong_FromLongLong(ts)) < 0) goto fail;
    }
    if (hi == Py_None || ts > PyLong_AsLongLong(hi)) {
        if (PyList_SetItem(m, 19, PyLong_FromLongLong(ts)) < 0) goto fail;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tools);
    if (n) {
        /* Shares of the turn's cost per tool call: (cost or 0) / n etc., as floats. */
        double costd = cost == Py_None ? 0.0 : PyLong_AsDouble(cost);
        double repd = rep == Py_None ? 0.0 : PyLong_AsDouble(rep);
        double auto_ = costd / (double)n, calc = calc_ok ? costd / (double)n : 0.0;
        double disp = repd / (double)n;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *name = PyTuple_GET_ITEM(tools, i);
            int seen = 0;
            for (Py_ssize_t j = 0; j < i && !seen; j++) {
                int eq = PyUnicode_Compare(PyTuple_GET_ITEM(tools, j), name) == 0;
                seen = eq;
            }
            if (seen) continue;
            long calls = 0;
            for (Py_ssize_t j = i; j < n; j++)
                if (PyUnicode_Compare(PyTuple_GET_ITEM(tools, j), name) == 0) calls++;
            PyObject *tkey = tuple_of(4, b, cid, mid, name);
            if (!tkey) goto fail;
            PyObject *t = PyDict_GetItemWithError(fx->tool_agg, tkey);
            if (!t) {
                if (PyErr_Occurred()) {
                    Py_DECREF(tkey);
                    goto fail;
                }
                t = Py_BuildValue("[iiddd]", 0, 0, 0.0, 0.0, 0.0);
                if (!t || PyDict_SetItem(fx->tool_agg, tkey, t) < 0) {
                    Py_XDECREF(t);
                    Py_DECREF(tkey);
                    goto fail;
                }
                Py_DECREF(t);
            }
            Py_DECREF(tkey);
            if (list_add(t, 0, calls) < 0 || list_add(t, 1, 1) < 0 ||
                list_add_f(t, 2, auto_ * (double)calls) < 0 ||
                list_add_f(t, 3, calc * (double)calls) < 0 ||
                list_add_f(t, 4, disp * (double)calls) < 0)
                goto fail;
        }
    }
    Py_DECREF(key);
    Py_DECREF(b);
    return 0;
fail:
    Py_DECREF(key);
    Py_DECREF(b);
    return -1;
}

/* Prices one record with a card (source_id, source name, ((threshold, r0..r5), ...)); 1 when
 * done, 0 when
 * the numbers are too big for 64 bits (the caller then asks Python). */
static int card_cost(PyObject *card, const long long *tok, long long *cost, long long *src,
                     long long *sav, long long *wc) {
    PyObject *tiers = PyTuple_GET_ITEM(card, 2);
    Py_ssize_t nt = PyTuple_GET_SIZE(tiers);
    long long total_input = tok[0] + tok[2] + tok[3] + tok[4];
    PyObject *r = PyTuple_GET_ITEM(tiers, 0);
    if (nt > 1) {
        for (Py_ssize_t k = nt - 1; k >= 0; k--) {
            PyObject *tier = PyTuple_GET_ITEM(tiers, k);
            if (total_input > PyLong_AsLongLong(PyTuple_GET_ITEM(tier, 0))) {
                r = tier;
                break;
            }
        }
    }
    long long rate[6];
    for (int i = 0; i < 6; i++) {
        int overflow = 0;
        rate[i] = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(r, i + 1), &overflow);
        if (overflow || rate[i] < 0) return 0;
    }
    /* tok: input, output, cache read, 5m writes, 1h writes, web searches */
    __int128 writes = (__int128)tok[3] * rate[3] + (__int128)tok[4] * rate[4];
    __int128 total = (__int128)tok[0] * rate[0] + (__int128)tok[1] * rate[1] +
                     (__int128)tok[2] * rate[2] + writes + (__int128)tok[5] * rate[5];
    __int128 savings = (__int128)tok[2] * (rate[0] - rate[2]);
    if (total > INT64_MAX || writes > INT64_MAX || savings > INT64_MAX || savings < INT64_MIN)
        return 0;
    *cost = (long long)total;
    *wc = (long long)writes;
    *sav = (long long)savings;
    *src = PyLong_AsLongLong(PyTuple_GET_ITEM(card, 0));
    return 1;
}

static PyObject *attr(PyObject *o, const char *name) { return PyObject_GetAttrString(o, name); }

/* finish(records, source, file_id, dims, cards, card_for, price_slow, rows, reported_id,
 *        none_id): raw turns to `turns` rows (scan._Ingest._price). */
static PyObject *finish(PyObject *self, PyObject *args) {
    PyObject *records, *source, *file_id, *dims;
    fin_ctx fx;
    memset(&fx, 0, sizeof fx);
    PyObject *rows;
    if (!PyArg_ParseTuple(args, "O!UOOO!OOO!OO", &PyList_Type, &records, &source, &file_id,
                          &dims, &PyDict_Type, &fx.cards, &fx.card_for, &fx.price_slow,
                          &PyList_Type, &rows, &fx.reported_id_o, &fx.none_id_o))
        return NULL;
    fx.reported_id = PyLong_AsLongLong(fx.reported_id_o);
    if (fx.reported_id == -1 && PyErr_Occurred()) return NULL;
    fx.contexts = attr(dims, "contexts");
    fx.models = attr(dims, "models");
    fx.sources = attr(dims, "sources");
    fx.toolsets = attr(dims, "toolsets");
    fx.m_context = attr(dims, "context");
    fx.m_model = attr(dims, "model");
    fx.m_toolset = attr(dims, "toolset");
    PyObject *result = NULL;
    if (!fx.contexts || !fx.models || !fx.sources || !fx.toolsets || !fx.m_context ||
        !fx.m_model || !fx.m_toolset)
        goto done;
    PyObject *last_ckey = NULL, *last_cid = NULL, *last_mkey = NULL, *last_mid = NULL;
    Py_ssize_t n = PyList_GET_SIZE(records);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(records, i);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 21) {
            PyErr_SetString(PyExc_TypeError, "records must be 21-tuples");
            goto loop_fail;
        }
#define R(k) PyTuple_GET_ITEM(r, k)
        /* Context and model ids: consecutive records almost always share them. */
        PyObject *ckey = tuple_of(7, source, R(3), R(4), R(5), R(6), R(7), R(19));
        if (!ckey) goto loop_fail;
        PyObject *cid;
        if (last_ckey && PyObject_RichCompareBool(last_ckey, ckey, Py_EQ) == 1) {
            cid = last_cid;
            Py_INCREF(cid);
            Py_DECREF(ckey);
        } else {
            PyObject *a = PyTuple_Pack(1, ckey);
            cid = a ? lookup_or_call(fx.contexts, ckey, fx.m_context, a) : NULL;
            Py_XDECREF(a);
            if (!cid) {
                Py_DECREF(ckey);
                goto loop_fail;
            }
            Py_XSETREF(last_ckey, ckey);
            Py_INCREF(cid);
            Py_XSETREF(last_cid, cid);
        }
        PyObject *mkey = tuple_of(3, R(9), R(8), R(17));
        PyObject *mid = NULL;
        if (mkey && last_mkey && PyObject_RichCompareBool(last_mkey, mkey, Py_EQ) == 1) {
            mid = last_mid;
            Py_INCREF(mid);
            Py_DECREF(mkey);
        } else if (mkey) {
            PyObject *a = PyTuple_Pack(1, mkey);
            mid = a ? lookup_or_call(fx.models, mkey, fx.m_model, a) : NULL;
            Py_XDECREF(a);
            if (mid) {
                Py_XSETREF(last_mkey, mkey);
                Py_INCREF(mid);
                Py_XSETREF(last_mid, mid);
            } else {
                Py_DECREF(mkey);
            }
        }
        if (!mid) {
            Py_DECREF(cid);
            goto loop_fail;
        }
        long long ts = PyLong_AsLongLong(R(10));
        long long tok[6];
        for (int k = 0; k < 6; k++) tok[k] = PyLong_AsLongLong(R(11 + k));
        /* The log's own cost: round(reported * 1e12), as Python rounds (half to even). */
        PyObject *rep;
        if (R(18) == Py_None) {
            rep = Py_None;
            Py_INCREF(rep);
        } else {
            double p = PyFloat_AsDouble(R(18)) * 1e12;
            rep = PyLong_FromDouble(nearbyint(p));
        }
        /* Our cost from the card for (provider, model, UTC day, speed). */
        long long day = ts / DAY_MS;
        if (ts < 0 && ts % DAY_MS) day -= 1;
        PyObject *dayo = PyLong_FromLongLong(day);
        PyObject *card_key = dayo ? tuple_of(4, R(9), R(8), dayo, R(17)) : NULL;
        Py_XDECREF(dayo);
        PyObject *card = NULL;
        if (card_key) {
            PyObject *a = tuple_of(4, R(9), R(8), R(10), R(17));
            card = a ? lookup_or_call(fx.cards, card_key, fx.card_for, a) : NULL;
            Py_XDECREF(a);
            Py_DECREF(card_key);
        }
        if (!rep || !card) {
            Py_XDECREF(rep);
            Py_XDECREF(card);
            Py_DECREF(cid);
            Py_DECREF(mid);
            goto loop_fail;
        }
        PyObject *cost = NULL, *src = NULL, *sav = NULL, *wc = NULL;
        long long c_cost, c_src, c_sav, c_wc;
        if (PyTuple_Check(card) && card_cost(card, tok, &c_cost, &c_src, &c_sav, &c_wc)) {
            cost = PyLong_FromLongLong(c_cost);
            src = PyTuple_GET_ITEM(card, 0);
            Py_INCREF(src);
            sav = PyLong_FromLongLong(c_sav);
            wc = PyLong_FromLongLong(c_wc);
        } else if (card == Py_None) {
            /* Nobody prices this model: the log's own cost if it has one, else unpriced. */
            int has_rep = rep != Py_None && PyObject_IsTrue(rep);
            cost = has_rep ? rep : Py_None;
            Py_INCREF(cost);
            src = has_rep ? fx.reported_id_o : fx.none_id_o;
            Py_INCREF(src);
            sav = PyLong_FromLong(0);
            wc = PyLong_FromLong(0);
        } else {
            PyObject *counts = PyTuple_GetSlice(r, 11, 17);
            PyObject *out = counts ? PyObject_CallFunction(fx.price_slow, "OOOOOO", R(9), R(8),
                                                           R(10), counts, R(17), rep)
                                   : NULL;
            Py_XDECREF(counts);
            if (out && PyTuple_Check(out) && PyTuple_GET_SIZE(out) == 5) {
                cost = PyTuple_GET_ITEM(out, 0);
                src = PyTuple_GET_ITEM(out, 1);
                sav = PyTuple_GET_ITEM(out, 3);
                wc = PyTuple_GET_ITEM(out, 4);
                Py_INCREF(cost);
                Py_INCREF(src);
                Py_INCREF(sav);
                Py_INCREF(wc);
            } else if (out) {
                PyErr_SetString(PyExc_TypeError, "price_slow must return a 5-tuple");
            }
            Py_XDECREF(out);
        }
        Py_DECREF(card);
        PyObject *tid = NULL;
        PyObject *tools = R(20);
        if (!PyTuple_Check(tools)) {
            PyErr_SetString(PyExc_TypeError, "tools must be a tuple");
        } else if (PyTuple_GET_SIZE(tools) == 0) {
            tid = PyLong_FromLong(0);
        } else {
            PyObject *a = PyTuple_Pack(1, tools);
            tid = a ? lookup_or_call(fx.toolsets, tools, fx.m_toolset, a) : NULL;
            Py_XDECREF(a);
        }
        if (!cost || !src || !sav || !wc || !tid) {
            Py_XDECREF(cost);
            Py_XDECREF(src);
            Py_XDECREF(sav);
            Py_XDECREF(wc);
            Py_XDECREF(tid);
            Py_DECREF(rep);
            Py_DECREF(cid);
            Py_DECREF(mid);
            goto loop_fail;
        }
        PyObject *row = PyTuple_New(18);
        if (!row) {
            Py_DECREF(cost);
            Py_DECREF(src);
            Py_DECREF(sav);
            Py_DECREF(wc);
            Py_DECREF(tid);
            Py_DECREF(rep);
            Py_DECREF(cid);
            Py_DECREF(mid);
            goto loop_fail;
        }
        PyObject *items[18] = {R(0), R(1), file_id, cid, mid, R(10), R(11), R(12), R(13), R(14),
                               R(15), R(16), cost, src, rep, sav, wc, tid};
        for (int k = 0; k < 18; k++) {
            Py_INCREF(items[k]);
            PyTuple_SET_ITEM(row, k, items[k]);
        }
        int bad = PyList_Append(rows, row) < 0;
        Py_DECREF(row);
        Py_DECREF(cost);
        Py_DECREF(src);
        Py_DECREF(sav);
        Py_DECREF(wc);
        Py_DECREF(tid);
        Py_DECREF(rep);
        Py_DECREF(cid);
        Py_DECREF(mid);
        if (bad) goto loop_fail;
#undef R
    }
    Py_INCREF(Py_None);
    result = Py_None;
loop_fail:
    Py_XDECREF(last_ckey);
    Py_XDECREF(last_cid);
    Py_XDECREF(last_mkey);
    Py_XDECREF(last_mid);
done:
    Py_XDECREF(fx.contexts);
    Py_XDECREF(fx.models);
    Py_XDECREF(fx.sources);
    Py_XDECREF(fx.toolsets);
    Py_XDECREF(fx.m_context);
    Py_XDECREF(fx.m_model);
    Py_XDECREF(fx.m_toolset);
    return result;
}


/* rollup_rows(rows, tool_names, agg, tool_agg, reported_id): store.Rollups.add(row, +1) for
 * every `turns` row; tool_names maps a toolset id to its tuple of names. */
static PyObject *rollup_rows(PyObject *self, PyObject *args) {
    PyObject *rows, *tool_names, *rep_id;
    fin_ctx fx;
    memset(&fx, 0, sizeof fx);
    if (!PyArg_ParseTuple(args, "O!O!O!O!O", &PyList_Type, &rows, &PyDict_Type, &tool_names,
                          &PyDict_Type, &fx.agg, &PyDict_Type, &fx.tool_agg, &rep_id))
        return NULL;
    fx.reported_id = PyLong_AsLongLong(rep_id);
    if (fx.reported_id == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 18) {
            PyErr_SetString(PyExc_TypeError, "rows must be 18-tuples");
            return NULL;
        }
        PyObject *tools = PyDict_GetItemWithError(tool_names, PyTuple_GET_ITEM(r, 17));
        if (!tools) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "unknown toolset id");
            return NULL;
        }
        long long tok[6];
        for (int k = 0; k < 6; k++) tok[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(r, 6 + k));
        long long ts = PyLong_AsLongLong(PyTuple_GET_ITEM(r, 5));
        long long src = PyLong_AsLongLong(PyTuple_GET_ITEM(r, 13));
        if (PyErr_Occurred()) return NULL;
        if (rollup_add(&fx, ts, PyTuple_GET_ITEM(r, 3), PyTuple_GET_ITEM(r, 4), tok,
                       PyTuple_GET_ITEM(r, 12), src, PyTuple_GET_ITEM(r, 14),
                       PyTuple_GET_ITEM(r, 15), PyTuple_GET_ITEM(r, 16), tools) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* key_hash(data: bytes) -> int: signed 64-bit BLAKE2b-64, as store.key_hash computes it. */
/* key_hash(data: bytes) -> int: signed 64-bit BLAKE2b-64, as store.key_hash computes it. */
/* key_hash(data: bytes) -> int: signed 64-bit BLAKE2b-64, as store.key_hash computes it. */
static PyObject *py_key_hash(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int64_t h = hash64(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(h);
}

/* A string value as str, else None (a new reference; NULL on error). */
static PyObject *str_or_none(yyjson_val *v) {
    if (!yyjson_is_str(v)) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(yyjson_get_str(v), (Py_ssize_t)yyjson_get_len(v), "strict");
}

/* openclaw_index(path) -> [(key, is_object, sessionId, sessionFile, spawnedBy, spawnDepth)] for
 * each member of an OpenClaw sessions.json, in file order (duplicates included); None when the
 * file is not a JSON object; OSError when it cannot be read. Only these fields become Python
 * objects: a gateway's index can name tens of thousands of sessions, whose whole tree as dicts
 * would take several times the file's size. The file is read here and parsed in place (its
 * strings stay in the buffer read), so what is held at the peak is the file and yyjson's values,
 * freed at once. Strings that are not strings and a depth that is not an integer are None, as
 * sources/openclaw.py reads them. */
static PyObject *openclaw_index(PyObject *mod, PyObject *arg) {
    (void)mod;
    PyObject *encoded;
    if (!PyUnicode_FSConverter(arg, &encoded)) return NULL;
    const char *path = PyBytes_AS_STRING(encoded);
    char *buf = NULL;
    size_t len = 0;
    int err = 0;
    yyjson_doc *doc = NULL;
    Py_BEGIN_ALLOW_THREADS
    /* Only a regular file, and never waiting on one: a FIFO named sessions.json would block
     * an open for reading until a writer came (fileio.open_regular). */
    FILE *fh = NULL;
#ifdef _WIN32
    if (!(fh = fopen(path, "rb"))) {
        err = errno;
    } else {
#else
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        err = errno;
    } else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = EINVAL;
        close(fd);
    } else if (!(fh = fdopen(fd, "rb"))) {
        err = errno;
        close(fd);
    } else {
#endif
        size_t cap = 1 << 16;
        buf = malloc(cap + YYJSON_PADDING_SIZE);
        while (buf) {
            size_t got = fread(buf + len, 1, cap - len, fh);
            len += got;
            if (len < cap) break;
            char *bigger = realloc(buf, cap * 2 + YYJSON_PADDING_SIZE);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        if (!buf) err = ENOMEM;
        else if (ferror(fh)) err = EIO;
        fclose(fh);
        if (!err) {
            memset(buf + len, 0, YYJSON_PADDING_SIZE);
            doc = yyjson_read_opts(buf, len, YYJSON_READ_INSITU, NULL, NULL);
        }
    }
    Py_END_ALLOW_THREADS
    if (err) {
        free(buf);
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
        Py_DECREF(encoded);
        return NULL;
    }
    Py_DECREF(encoded);
    yyjson_val *root = doc ? yyjson_doc_get_root(doc) : NULL;
    if (!root || !yyjson_is_obj(root)) {
        yyjson_doc_free(doc);
        free(buf);
        Py_RETURN_NONE;
    }
    PyObject *out = PyList_New(0);
    yyjson_obj_iter it;
    yyjson_obj_iter_init(root, &it);
    yyjson_val *k;
    while (out && (k = yyjson_obj_iter_next(&it))) {
        yyjson_val *v = yyjson_obj_iter_get_val(k);
        int is_obj = yyjson_is_obj(v);
        yyjson_val *depth = is_obj ? yyjson_obj_get(v, "spawnDepth") : NULL;
        PyObject *row = Py_BuildValue(
            "(NON NNN)", str_or_none(k), is_obj ? Py_True : Py_False,
            str_or_none(is_obj ? yyjson_obj_get(v, "sessionId") : NULL),
            str_or_none(is_obj ? yyjson_obj_get(v, "sessionFile") : NULL),
            str_or_none(is_obj ? yyjson_obj_get(v, "spawnedBy") : NULL),
            yyjson_is_uint(depth)   ? PyLong_FromUnsignedLongLong(yyjson_get_uint(depth))
            : yyjson_is_sint(depth) ? PyLong_FromLongLong(yyjson_get_sint(depth))
                                    : Py_NewRef(Py_None));
        if (!row || PyList_Append(out, row) < 0) Py_CLEAR(out);
        Py_XDECREF(row);
    }
    yyjson_doc_free(doc);
    free(buf);
    return out;
}

/* release_memory(): hand the C heap's free pages back to the system (glibc's malloc_trim;
 * elsewhere nothing). After a big transient parse (an OpenClaw sessions.json of many MB) the
 * freed blocks sit in the middle of the heap, where free() alone never returns them. */
static PyObject *release_memory(PyObject *mod, PyObject *unused) {
    (void)mod;
    (void)unused;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"claude_parse", claude_parse, METH_VARARGS, "Parse complete Claude Code lines (see module doc)."},
    {"openclaw_parse", openclaw_parse, METH_VARARGS, "Parse complete OpenClaw lines (see module doc)."},
    {"claude_records", claude_records, METH_O, "Records kept by claude_parse, tools as tuples."},
    {"finish", finish, METH_VARARGS, "Raw turns to priced rows (see scan._Ingest)."},
    {"rollup_rows", rollup_rows, METH_VARARGS, "Add turns rows to rollup sums (store.Rollups)."},
    {"key_hash", py_key_hash, METH_O, "Signed 64-bit BLAKE2b of bytes."},
    {"openclaw_index", openclaw_index, METH_O, "The fields read of a sessions.json file's entries."},
    {"release_memory", release_memory, METH_NOARGS, "Return the C heap's free pages (glibc)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "clawtrace._native",
                                    "The scan's hot loop in C (see scanmodule.c).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) {
    if (!S_CLAUDE) {
        S_CLAUDE = PyUnicode_InternFromString("claude");
        S_ANTHROPIC = PyUnicode_InternFromString("anthropic");
        S_EMPTY = PyUnicode_InternFromString("");
        S_UNKNOWN = PyUnicode_InternFromString("unknown");
        if (!S_CLAUDE || !S_ANTHROPIC || !S_EMPTY || !S_UNKNOWN) return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddStringConstant(m, "YYJSON_VERSION", YYJSON_VERSION_STRING) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
