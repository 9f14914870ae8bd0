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
#include "rules_py.h"


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
    PyObject *items[CT_RT_LEN] = {
        [CT_RT_KEY_HASH] = PyLong_FromLongLong(key_hash),
        [CT_RT_MSG_HASH] = PyLong_FromLongLong(msg_hash),
        [CT_RT_DEDUP_KEY] = key,
        [CT_RT_AGENT] = agent,
        [CT_RT_PROJECT] = new_ref(project),
        [CT_RT_SESSION] = c->has_session ? slot_str(&slots[S_SESSION], c->session) : new_ref(hint),
        [CT_RT_SUBAGENT] = subagent,
        [CT_RT_SIDECHAIN] = PyLong_FromLong(c->sidechain),
        [CT_RT_MODEL] = slot_str(&slots[S_MODEL], c->model),
        [CT_RT_PROVIDER] = new_ref(S_ANTHROPIC),
        [CT_RT_TS] = PyLong_FromLongLong(c->ts),
        [CT_RT_INPUT] = PyLong_FromLongLong(c->tok[0]),
        [CT_RT_OUTPUT] = PyLong_FromLongLong(c->tok[1]),
        [CT_RT_CACHE_READ] = PyLong_FromLongLong(c->tok[2]),
        [CT_RT_CACHE_WRITE_5M] = PyLong_FromLongLong(c->tok[3]),
        [CT_RT_CACHE_WRITE_1H] = PyLong_FromLongLong(c->tok[4]),
        [CT_RT_WEB_SEARCH] = PyLong_FromLongLong(c->tok[5]),
        [CT_RT_SPEED] = c->has_speed ? slot_str(&slots[S_SPEED], c->speed) : new_ref(Py_None),
        [CT_RT_REPORTED_USD] = reported,
        [CT_RT_GIT_BRANCH] =
            c->has_branch ? slot_str(&slots[S_BRANCH], c->branch) : new_ref(S_EMPTY),
        [CT_RT_TOOLS] = tools_d};
    return tuple_steal(CT_RT_LEN, items);
}

/* rules.keep on RawTurn tuples in `best` (key -> [record kept, {tool_use id: name}]): the
 * winner by ct_keep_wins, the tools by dict.update (rules.keep's own). */
static int keep(PyObject *best, PyObject *rec) {
    PyObject *key = PyTuple_GET_ITEM(rec, CT_RT_DEDUP_KEY);
    PyObject *prev = PyDict_GetItemWithError(best, key);
    if (!prev) {
        if (PyErr_Occurred()) return -1;
        PyObject *tools = PyDict_Copy(PyTuple_GET_ITEM(rec, CT_RT_TOOLS));
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
    if (PyDict_Update(PyList_GET_ITEM(prev, 1), PyTuple_GET_ITEM(rec, CT_RT_TOOLS)) < 0) return -1;
    int64_t piece[CT_NTOK], kept[CT_NTOK];
    if (ct_tok_from_py(rec, CT_RT_INPUT, piece) < 0 ||
        ct_tok_from_py(PyList_GET_ITEM(prev, 0), CT_RT_INPUT, kept) < 0)
        return -1;
    if (ct_keep_wins(piece, kept)) {
        if (PyList_SetItem(prev, 0, new_ref(rec)) < 0) return -1;
    }
    return 0;
}

/* claude_records(best) -> [(*record[:CT_RT_TOOLS], tuple(tools.values())) for record, tools in
 * best] */
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
        PyObject *row = tools ? PyTuple_New(CT_RT_LEN) : NULL;
        if (!row) {
            Py_XDECREF(tools);
            Py_DECREF(out);
            return NULL;
        }
        for (int k = 0; k < CT_RT_TOOLS; k++)
            PyTuple_SET_ITEM(row, k, new_ref(PyTuple_GET_ITEM(rec, k)));
        PyTuple_SET_ITEM(row, CT_RT_TOOLS, tools);
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
 * rules.keep. Stops before a deferred line. */
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
            PyObject *items[CT_RT_LEN] = {
                [CT_RT_KEY_HASH] = key_hash,
                /* no message ids: the key stands in */
                [CT_RT_MSG_HASH] = key_hash ? new_ref(key_hash) : NULL,
                [CT_RT_DEDUP_KEY] = key,
                [CT_RT_AGENT] = new_ref(agent),
                [CT_RT_PROJECT] = new_ref(py_truthy_str(st[ST_CWD]) ? st[ST_CWD] : agent),
                [CT_RT_SESSION] = new_ref(session),
                [CT_RT_SUBAGENT] = new_ref(subagent ? skey : Py_None),
                [CT_RT_SIDECHAIN] = PyLong_FromLong(subagent),
                [CT_RT_MODEL] = o.model_from_msg ? slot_str(&slots[OS_MODEL], o.model)
                                                 : new_ref(st[ST_MODEL]),
                [CT_RT_PROVIDER] = o.provider_from_msg
                                       ? slot_str(&slots[OS_PROVIDER], o.provider)
                                       : new_ref(py_truthy_str(st[ST_PROVIDER]) ? st[ST_PROVIDER]
                                                                                : S_UNKNOWN),
                [CT_RT_TS] = PyLong_FromLongLong(o.ts),
                [CT_RT_INPUT] = PyLong_FromLongLong(o.tok[0]),
                [CT_RT_OUTPUT] = PyLong_FromLongLong(o.tok[1]),
                [CT_RT_CACHE_READ] = PyLong_FromLongLong(o.tok[2]),
                [CT_RT_CACHE_WRITE_5M] = PyLong_FromLongLong(o.tok[3]),
                [CT_RT_CACHE_WRITE_1H] = PyLong_FromLong(0),
                [CT_RT_WEB_SEARCH] = PyLong_FromLong(0),
                [CT_RT_SPEED] = new_ref(Py_None),
                [CT_RT_REPORTED_USD] =
                    o.has_reported ? PyFloat_FromDouble(o.reported) : new_ref(Py_None),
                [CT_RT_GIT_BRANCH] = new_ref(S_EMPTY),
                [CT_RT_TOOLS] = tools_t};
            PyObject *rec = tuple_steal(CT_RT_LEN, items);
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
    long long reported_id, none_id;
    PyObject *reported_id_o, *none_id_o;
} fin_ctx;

/* Whether names i and j of a tuple of tool names are one (ct_tool_calls). */
static int tool_same(const void *ctx, size_t i, size_t j) {
    PyObject *t = (PyObject *)ctx;
    return PyUnicode_Compare(PyTuple_GET_ITEM(t, (Py_ssize_t)i),
                             PyTuple_GET_ITEM(t, (Py_ssize_t)j)) == 0;
}

/* store.Rollups.add with sign +1, for the row `r` (its context and model ids, and its tools, as
 * the Python objects the sums are keyed by). */
static int rollup_add(fin_ctx *fx, const ct_row_t *r, PyObject *cid, PyObject *mid,
                      PyObject *tools) {
    PyObject *b = PyLong_FromLongLong(ct_floor_div(r->ts, CT_BUCKET_MS));
    if (!b) return -1;
    PyObject *key = tuple_of(3, b, cid, mid);
    if (!key) {
        Py_DECREF(b);
        return -1;
    }
    PyObject *m = PyDict_GetItemWithError(fx->agg, key);
    if (!m) {
        if (PyErr_Occurred()) goto fail;
        m = PyList_New(CT_N_METRICS + 2);
        if (!m) goto fail;
        PyObject *zero = PyLong_FromLong(0);
        for (int i = 0; i < CT_N_METRICS; i++) {
            Py_INCREF(zero);
            PyList_SET_ITEM(m, i, zero);
        }
        Py_DECREF(zero);
        Py_INCREF(Py_None);
        PyList_SET_ITEM(m, CT_N_METRICS, Py_None);
        Py_INCREF(Py_None);
        PyList_SET_ITEM(m, CT_N_METRICS + 1, Py_None);
        if (PyDict_SetItem(fx->agg, key, m) < 0) {
            Py_DECREF(m);
            goto fail;
        }
        Py_DECREF(m);
    }
    __int128 d[CT_N_METRICS];
    ct_row_deltas(r, fx->reported_id, 1, d);
    for (int k = 0; k < CT_N_METRICS; k++) /* (a row's values fit 64 bits: a column each) */
        if (list_add(m, k, (long long)d[k]) < 0) goto fail;
    PyObject *lo = PyList_GET_ITEM(m, CT_N_METRICS), *hi = PyList_GET_ITEM(m, CT_N_METRICS + 1);
    int had = lo != Py_None && hi != Py_None, has = had;
    int64_t first = had ? PyLong_AsLongLong(lo) : 0, last = had ? PyLong_AsLongLong(hi) : 0;
    int64_t first0 = first, last0 = last;
    if (PyErr_Occurred()) goto fail;
    ct_span_add(&has, &first, &last, r->ts);
    if ((!had || first != first0) &&
        PyList_SetItem(m, CT_N_METRICS, PyLong_FromLongLong(first)) < 0)
        goto fail;
    if ((!had || last != last0) &&
        PyList_SetItem(m, CT_N_METRICS + 1, PyLong_FromLongLong(last)) < 0)
        goto fail;
    Py_ssize_t n = PyTuple_GET_SIZE(tools);
    if (n) {
        ct_shares_t sh = ct_tool_shares(r, fx->reported_id, (size_t)n);
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t calls = ct_tool_calls((size_t)n, (size_t)i, tool_same, tools);
            if (PyErr_Occurred()) goto fail;
            if (!calls) continue;
            PyObject *tkey = tuple_of(4, b, cid, mid, PyTuple_GET_ITEM(tools, i));
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
                list_add_f(t, 2, sh.auto_ * (double)calls) < 0 ||
                list_add_f(t, 3, sh.calc * (double)calls) < 0 ||
                list_add_f(t, 4, sh.disp * (double)calls) < 0)
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
    fx.none_id = PyLong_AsLongLong(fx.none_id_o);
    if (fx.none_id == -1 && PyErr_Occurred()) return NULL;
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
    /* The card last read (consecutive records almost always share it), and what it says. */
    PyObject *last_card = NULL;
    ct_card_t card_c = {0};
    Py_ssize_t n = PyList_GET_SIZE(records);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(records, i);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != CT_RT_LEN) {
            PyErr_SetString(PyExc_TypeError, "records must be 21-tuples");
            goto loop_fail;
        }
#define R(k) PyTuple_GET_ITEM(r, CT_RT_##k)
        /* Context and model ids: consecutive records almost always share them. */
        PyObject *ckey = tuple_of(7, source, R(AGENT), R(PROJECT), R(SESSION), R(SUBAGENT),
                                  R(SIDECHAIN), R(GIT_BRANCH));
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
        PyObject *mkey = tuple_of(3, R(PROVIDER), R(MODEL), R(SPEED));
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
        ct_row_t row;
        memset(&row, 0, sizeof row);
        row.ts = PyLong_AsLongLong(R(TS));
        PyObject *rep = NULL;
        if (!(row.ts == -1 && PyErr_Occurred()) && ct_tok_from_py(r, CT_RT_INPUT, row.tok) == 0) {
            /* The log's own cost. */
            if (R(REPORTED_USD) == Py_None) {
                rep = new_ref(Py_None);
            } else {
                double usd = PyFloat_AsDouble(R(REPORTED_USD));
                if (!(usd == -1.0 && PyErr_Occurred())) {
                    row.has_rep = 1;
                    row.rep = ct_reported_pico(usd);
                    rep = PyLong_FromLongLong(row.rep);
                }
            }
        }
        /* Our cost from the card for (provider, model, UTC day, speed). */
        PyObject *dayo = rep ? PyLong_FromLongLong(ct_floor_div(row.ts, CT_DAY_MS)) : NULL;
        PyObject *card_key = dayo ? tuple_of(4, R(PROVIDER), R(MODEL), dayo, R(SPEED)) : NULL;
        Py_XDECREF(dayo);
        PyObject *card = NULL;
        if (card_key) {
            PyObject *a = tuple_of(4, R(PROVIDER), R(MODEL), R(TS), R(SPEED));
            card = a ? lookup_or_call(fx.cards, card_key, fx.card_for, a) : NULL;
            Py_XDECREF(a);
            Py_DECREF(card_key);
        }
        if (card && card != last_card) {
            if (ct_card_from_py(card, &card_c) < 0) {
                Py_CLEAR(card);
            } else {
                Py_INCREF(card);
                Py_XSETREF(last_card, card);
            }
        }
        if (!rep || !card) {
            Py_XDECREF(rep);
            Py_XDECREF(card);
            Py_DECREF(cid);
            Py_DECREF(mid);
            goto loop_fail;
        }
        PyObject *cost = NULL, *src = NULL, *sav = NULL, *wc = NULL;
        if (ct_row_price(&row, &card_c, fx.reported_id, fx.none_id)) {
            cost = row.has_cost ? PyLong_FromLongLong(row.cost) : new_ref(Py_None);
            src = card_c.kind == CT_CARD_RATES
                      ? PyTuple_GET_ITEM(card, 0)
                      : (row.src == fx.reported_id ? fx.reported_id_o : fx.none_id_o);
            Py_INCREF(src);
            sav = PyLong_FromLongLong(row.sav);
            wc = PyLong_FromLongLong(row.wc);
        } else {
            PyObject *counts = PyTuple_GetSlice(r, CT_RT_INPUT, CT_RT_WEB_SEARCH + 1);
            PyObject *out = counts ? PyObject_CallFunction(fx.price_slow, "OOOOOO", R(PROVIDER),
                                                           R(MODEL), R(TS), counts, R(SPEED), rep)
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
        PyObject *tools = R(TOOLS);
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
        PyObject *row_t = PyTuple_New(CT_NCOLS);
        if (!row_t) {
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
        PyObject *items[CT_NCOLS] = {
            [CT_COL_KEY_HASH] = R(KEY_HASH),
            [CT_COL_MSG_HASH] = R(MSG_HASH),
            [CT_COL_FILE] = file_id,
            [CT_COL_CTX] = cid,
            [CT_COL_MODEL] = mid,
            [CT_COL_TS] = R(TS),
            [CT_COL_INPUT] = R(INPUT),
            [CT_COL_OUTPUT] = R(OUTPUT),
            [CT_COL_CACHE_READ] = R(CACHE_READ),
            [CT_COL_CACHE_WRITE_5M] = R(CACHE_WRITE_5M),
            [CT_COL_CACHE_WRITE_1H] = R(CACHE_WRITE_1H),
            [CT_COL_WEB_SEARCH] = R(WEB_SEARCH),
            [CT_COL_COST] = cost,
            [CT_COL_SRC] = src,
            [CT_COL_REP] = rep,
            [CT_COL_SAV] = sav,
            [CT_COL_WC] = wc,
            [CT_COL_TOOLSET] = tid};
        for (int k = 0; k < CT_NCOLS; k++) {
            Py_INCREF(items[k]);
            PyTuple_SET_ITEM(row_t, k, items[k]);
        }
        int bad = PyList_Append(rows, row_t) < 0;
        Py_DECREF(row_t);
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
    Py_XDECREF(last_card);
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
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != CT_NCOLS) {
            PyErr_SetString(PyExc_TypeError, "rows must be 18-tuples");
            return NULL;
        }
#define C(k) PyTuple_GET_ITEM(r, CT_COL_##k)
        PyObject *tools = PyDict_GetItemWithError(tool_names, C(TOOLSET));
        if (!tools) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "unknown toolset id");
            return NULL;
        }
        ct_row_t row;
        memset(&row, 0, sizeof row);
        if (ct_tok_from_py(r, CT_COL_INPUT, row.tok) < 0) return NULL;
        row.ts = PyLong_AsLongLong(C(TS));
        row.src = PyLong_AsLongLong(C(SRC));
        row.has_cost = C(COST) != Py_None;
        if (row.has_cost) row.cost = PyLong_AsLongLong(C(COST));
        row.has_rep = C(REP) != Py_None;
        if (row.has_rep) row.rep = PyLong_AsLongLong(C(REP));
        row.sav = PyLong_AsLongLong(C(SAV));
        row.wc = PyLong_AsLongLong(C(WC));
        if (PyErr_Occurred()) return NULL;
        if (rollup_add(&fx, &row, C(CTX), C(MODEL), tools) < 0) return NULL;
#undef C
    }
    Py_RETURN_NONE;
}

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

/* ---------------------------------------------------------------------------------------------
 * Test hook: _rules(name, *args) applies one rule of rules.h to plain Python values, so that
 * tests/test_rules.py runs each rule's table of cases against rules.py and against the C that
 * both extensions compile. ClawTrace itself never calls it. Names of tools and keys are small
 * ints here (the extensions hold them as pool ids); rows are 18-tuples in rules.TURN_COLUMNS
 * order, token counts 6-tuples. */

static PyObject *py_from_i128(__int128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX) return PyLong_FromLongLong((long long)v);
    PyObject *hi = PyLong_FromLongLong((long long)(v >> 64));
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)(v & 0xFFFFFFFFFFFFFFFFULL));
    PyObject *shift = PyLong_FromLong(64);
    PyObject *scaled = hi && shift ? PyNumber_Lshift(hi, shift) : NULL;
    PyObject *out = scaled && lo ? PyNumber_Add(scaled, lo) : NULL;
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(shift);
    Py_XDECREF(scaled);
    return out;
}

static int py_to_i128(PyObject *o, __int128 *out) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) {
        *out = v;
        return v == -1 && PyErr_Occurred() ? -1 : 0;
    }
    PyObject *mask = PyLong_FromUnsignedLongLong(0xFFFFFFFFFFFFFFFFULL), *k64 = PyLong_FromLong(64);
    PyObject *lo = mask ? PyNumber_And(o, mask) : NULL, *hi = k64 ? PyNumber_Rshift(o, k64) : NULL;
    unsigned long long l = lo ? PyLong_AsUnsignedLongLong(lo) : 0;
    long long h = hi ? PyLong_AsLongLong(hi) : 0;
    Py_XDECREF(mask);
    Py_XDECREF(k64);
    Py_XDECREF(lo);
    Py_XDECREF(hi);
    if (PyErr_Occurred()) return -1;
    *out = (__int128)(((unsigned __int128)(uint64_t)h << 64) | l);
    return 0;
}

static int hook_tok(PyObject *o, int64_t tok[CT_NTOK]) {
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != CT_NTOK) {
        PyErr_SetString(PyExc_TypeError, "token counts are a 6-tuple");
        return -1;
    }
    return ct_tok_from_py(o, 0, tok);
}

static int hook_i64(PyObject *o, int64_t *v) {
    long long x = PyLong_AsLongLong(o);
    *v = x;
    return x == -1 && PyErr_Occurred() ? -1 : 0;
}

/* An 18-tuple row (None where a column is NULL) as a ct_row_t. */
static int hook_row(PyObject *o, ct_row_t *r) {
    memset(r, 0, sizeof *r);
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != CT_NCOLS) {
        PyErr_SetString(PyExc_TypeError, "a row is an 18-tuple");
        return -1;
    }
#define C(k) PyTuple_GET_ITEM(o, CT_COL_##k)
    r->has_msg = C(MSG_HASH) != Py_None;
    r->has_file = C(FILE) != Py_None;
    r->has_cost = C(COST) != Py_None;
    r->has_rep = C(REP) != Py_None;
    if (hook_i64(C(KEY_HASH), &r->key_hash) < 0 ||
        (r->has_msg && hook_i64(C(MSG_HASH), &r->msg_hash) < 0) ||
        (r->has_file && hook_i64(C(FILE), &r->file_id) < 0) || hook_i64(C(CTX), &r->ctx) < 0 ||
        hook_i64(C(MODEL), &r->model) < 0 || hook_i64(C(TS), &r->ts) < 0 ||
        ct_tok_from_py(o, CT_COL_INPUT, r->tok) < 0 ||
        (r->has_cost && hook_i64(C(COST), &r->cost) < 0) || hook_i64(C(SRC), &r->src) < 0 ||
        (r->has_rep && hook_i64(C(REP), &r->rep) < 0) || hook_i64(C(SAV), &r->sav) < 0 ||
        hook_i64(C(WC), &r->wc) < 0 || hook_i64(C(TOOLSET), &r->toolset) < 0)
        return -1;
#undef C
    return 0;
}

/* A sequence of small ints as int32s (at most `cap`). */
static Py_ssize_t hook_ids(PyObject *o, int32_t *out, Py_ssize_t cap) {
    PyObject *seq = PySequence_Fast(o, "ids must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > cap) n = cap;
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        out[i] = (int32_t)v;
    }
    Py_DECREF(seq);
    return n;
}

static PyObject *hook_id_list(const int32_t *ids, size_t n) {
    PyObject *out = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; out && i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v) Py_CLEAR(out);
        else PyList_SET_ITEM(out, (Py_ssize_t)i, v);
    }
    return out;
}

#define HOOK_MAX 512 /* pieces, tools, rows of one case */

/* keep(pieces): pieces [(key, tok, [(tool id, name), ...]), ...] in order ->
 * [(key, index of the piece kept, [(tool id, name), ...]), ...] by first piece. */
static PyObject *hook_keep(PyObject *pieces) {
    PyObject *seq = PySequence_Fast(pieces, "pieces must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    struct {
        int32_t key, head, tail;
        Py_ssize_t piece;
        int64_t tok[CT_NTOK];
    } kept[HOOK_MAX];
    ct_tool_link links[HOOK_MAX];
    size_t nkept = 0, nlinks = 0;
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(seq, i);
        long key;
        PyObject *tok_o, *tools;
        int64_t tok[CT_NTOK];
        if (!PyArg_ParseTuple(p, "lOO", &key, &tok_o, &tools) || hook_tok(tok_o, tok) < 0)
            goto done;
        size_t k = 0;
        while (k < nkept && kept[k].key != (int32_t)key) k++;
        if (k == nkept) {
            if (nkept == HOOK_MAX) goto too_many;
            kept[k].key = (int32_t)key;
            kept[k].head = kept[k].tail = -1;
            kept[k].piece = -1; /* none yet: this piece is kept */
            nkept++;
        }
        if (kept[k].piece < 0 || ct_keep_wins(tok, kept[k].tok)) {
            kept[k].piece = i;
            memcpy(kept[k].tok, tok, sizeof tok);
        }
        PyObject *ts = PySequence_Fast(tools, "tools must be a sequence");
        if (!ts) goto done;
        for (Py_ssize_t t = 0; t < PySequence_Fast_GET_SIZE(ts); t++) {
            long id, name;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(ts, t), "ll", &id, &name)) {
                Py_DECREF(ts);
                goto done;
            }
            if (nlinks == HOOK_MAX) {
                Py_DECREF(ts);
                goto too_many;
            }
            nlinks += (size_t)ct_tools_put(links, &kept[k].head, &kept[k].tail, (int32_t)nlinks,
                                           (int32_t)id, (int32_t)name);
        }
        Py_DECREF(ts);
    }
    out = PyList_New((Py_ssize_t)nkept);
    for (size_t k = 0; out && k < nkept; k++) {
        PyObject *tl = PyList_New(0);
        for (int32_t t = kept[k].head; tl && t >= 0; t = links[t].next) {
            PyObject *pair = Py_BuildValue("(ii)", links[t].key, links[t].name);
            if (!pair || PyList_Append(tl, pair) < 0) Py_CLEAR(tl);
            Py_XDECREF(pair);
        }
        PyObject *item = tl ? Py_BuildValue("(inN)", kept[k].key, kept[k].piece, tl) : NULL;
        if (!item) Py_CLEAR(out);
        else PyList_SET_ITEM(out, (Py_ssize_t)k, item);
    }
    goto done;
too_many:
    PyErr_SetString(PyExc_ValueError, "keep: too many pieces or tools for the test hook");
done:
    Py_DECREF(seq);
    return out;
}

static PyObject *hook_layout(void) {
    PyObject *d = PyDict_New();
    struct {
        const char *name;
        long long value;
    } c[] = {
        {"RT_KEY_HASH", CT_RT_KEY_HASH},
        {"RT_MSG_HASH", CT_RT_MSG_HASH},
        {"RT_DEDUP_KEY", CT_RT_DEDUP_KEY},
        {"RT_AGENT", CT_RT_AGENT},
        {"RT_PROJECT", CT_RT_PROJECT},
        {"RT_SESSION", CT_RT_SESSION},
        {"RT_SUBAGENT", CT_RT_SUBAGENT},
        {"RT_SIDECHAIN", CT_RT_SIDECHAIN},
        {"RT_MODEL", CT_RT_MODEL},
        {"RT_PROVIDER", CT_RT_PROVIDER},
        {"RT_TS", CT_RT_TS},
        {"RT_INPUT", CT_RT_INPUT},
        {"RT_OUTPUT", CT_RT_OUTPUT},
        {"RT_CACHE_READ", CT_RT_CACHE_READ},
        {"RT_CACHE_WRITE_5M", CT_RT_CACHE_WRITE_5M},
        {"RT_CACHE_WRITE_1H", CT_RT_CACHE_WRITE_1H},
        {"RT_WEB_SEARCH", CT_RT_WEB_SEARCH},
        {"RT_SPEED", CT_RT_SPEED},
        {"RT_REPORTED_USD", CT_RT_REPORTED_USD},
        {"RT_GIT_BRANCH", CT_RT_GIT_BRANCH},
        {"RT_TOOLS", CT_RT_TOOLS},
        {"RAW_TURN_LEN", CT_RT_LEN},
        {"R_KEY", CT_COL_KEY_HASH},
        {"R_MSG", CT_COL_MSG_HASH},
        {"R_FILE", CT_COL_FILE},
        {"R_CTX", CT_COL_CTX},
        {"R_MODEL", CT_COL_MODEL},
        {"R_TS", CT_COL_TS},
        {"R_IN", CT_COL_INPUT},
        {"R_OUT", CT_COL_OUTPUT},
        {"R_CREAD", CT_COL_CACHE_READ},
        {"R_W5", CT_COL_CACHE_WRITE_5M},
        {"R_W1", CT_COL_CACHE_WRITE_1H},
        {"R_WEB", CT_COL_WEB_SEARCH},
        {"R_COST", CT_COL_COST},
        {"R_SRC", CT_COL_SRC},
        {"R_REP", CT_COL_REP},
        {"R_SAV", CT_COL_SAV},
        {"R_WC", CT_COL_WC},
        {"R_TOOLS", CT_COL_TOOLSET},
        {"N_COLUMNS", CT_NCOLS},
        {"N_METRICS", CT_N_METRICS},
        {"BUCKET_MS", CT_BUCKET_MS},
        {"DAY_MS", CT_DAY_MS},
        {"MAX_TURN_TOKENS", CT_MAX_TURN_TOKENS},
        {"MAX_WEB_SEARCHES", CT_MAX_WEB_SEARCHES},
        {"MAX_LOGGED_USD", (long long)CT_MAX_LOGGED_USD},
        {"MIN_TS_MS", CT_MIN_TS_MS},
        {"MAX_TS_MS", CT_MAX_TS_MS},
        {"PICO", (long long)CT_PICO},
    };
    for (size_t i = 0; d && i < sizeof c / sizeof *c; i++) {
        PyObject *v = PyLong_FromLongLong(c[i].value);
        if (!v || PyDict_SetItemString(d, c[i].name, v) < 0) Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *rules_hook(PyObject *mod, PyObject *args) {
    (void)mod;
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (nargs < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError, "_rules(name, *args)");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(args, 0));
    if (!name) return NULL;
#define ARG(i) PyTuple_GET_ITEM(args, (i) + 1)
/* 1 when the rule is `s` and has `n` arguments; -1 with an error when it is `s` with others. */
#define IS(s, n)                           \
    (strcmp(name, s) != 0 ? 0              \
     : nargs - 1 == (n)   ? 1              \
                          : (PyErr_Format(PyExc_TypeError, "_rules(%s): %d arguments", s, n), -1))
    int m;
    if ((m = IS("layout", 0))) return m < 0 ? NULL : hook_layout();
    if ((m = IS("columns_sql", 0)))
        return m < 0 ? NULL : Py_BuildValue("(ss)", CT_TURN_COLUMNS_SQL, CT_TURN_COLUMNS_SET_SQL);
    if ((m = IS("total_tokens", 1)) || (m = IS("total_input", 1))) {
        int64_t tok[CT_NTOK];
        if (m < 0 || hook_tok(ARG(0), tok) < 0) return NULL;
        return py_from_i128(strcmp(name, "total_tokens") == 0 ? ct_total_tokens(tok)
                                                              : ct_total_input(tok));
    }
    if ((m = IS("turn_tokens_sane", 2))) {
        int64_t total, web;
        if (m < 0 || hook_i64(ARG(0), &total) < 0 || hook_i64(ARG(1), &web) < 0) return NULL;
        return PyBool_FromLong(ct_turn_tokens_sane(total, web));
    }
    if ((m = IS("ts_sane", 1))) {
        int64_t ms;
        if (m < 0 || hook_i64(ARG(0), &ms) < 0) return NULL;
        return PyBool_FromLong(ct_ts_sane(ms));
    }
    if ((m = IS("reported_pico", 1))) {
        double usd = m < 0 ? -1.0 : PyFloat_AsDouble(ARG(0));
        if (m < 0 || (usd == -1.0 && PyErr_Occurred())) return NULL;
        return PyLong_FromLongLong(ct_reported_pico(usd));
    }
    if ((m = IS("keep", 1))) return m < 0 ? NULL : hook_keep(ARG(0));
    if ((m = IS("replaces", 2))) {
        ct_row_t a, b;
        if (m < 0 || hook_row(ARG(0), &a) < 0 || hook_row(ARG(1), &b) < 0) return NULL;
        return PyBool_FromLong(ct_replaces(&a, &b));
    }
    if ((m = IS("tools_merge", 2))) {
        int32_t old[HOOK_MAX], new_[HOOK_MAX], out[HOOK_MAX];
        Py_ssize_t no = m < 0 ? -1 : hook_ids(ARG(0), old, HOOK_MAX);
        Py_ssize_t nn = no < 0 ? -1 : hook_ids(ARG(1), new_, HOOK_MAX);
        if (nn < 0) return NULL;
        return hook_id_list(out, ct_tools_merge(old, (size_t)no, new_, (size_t)nn, out, HOOK_MAX));
    }
    if ((m = IS("card_cost", 2))) {
        ct_card_t card;
        int64_t tok[CT_NTOK], cost, sav, wc;
        if (m < 0 || ct_card_from_py(ARG(0), &card) < 0 || hook_tok(ARG(1), tok) < 0) return NULL;
        if (card.kind != CT_CARD_RATES) {
            PyErr_SetString(PyExc_ValueError, "card_cost: not an integer rate card");
            return NULL;
        }
        if (!ct_card_cost(&card, tok, &cost, &sav, &wc)) Py_RETURN_NONE;
        return Py_BuildValue("(LLL)", (long long)cost, (long long)sav, (long long)wc);
    }
    if ((m = IS("row_price", 5))) {
        /* (card, tok, reported pico or None, reported_id, none_id) -> (cost or None, source id,
         * savings, writes), or None when Python must price it */
        ct_card_t card;
        ct_row_t row;
        int64_t rid, nid;
        memset(&row, 0, sizeof row);
        if (m < 0 || ct_card_from_py(ARG(0), &card) < 0 || hook_tok(ARG(1), row.tok) < 0 ||
            (ARG(2) != Py_None && hook_i64(ARG(2), &row.rep) < 0) || hook_i64(ARG(3), &rid) < 0 ||
            hook_i64(ARG(4), &nid) < 0)
            return NULL;
        row.has_rep = ARG(2) != Py_None;
        if (!ct_row_price(&row, &card, rid, nid)) Py_RETURN_NONE;
        PyObject *cost = row.has_cost ? PyLong_FromLongLong(row.cost) : Py_NewRef(Py_None);
        return Py_BuildValue("(NLLL)", cost, (long long)row.src, (long long)row.sav,
                             (long long)row.wc);
    }
    if ((m = IS("rollup_deltas", 3))) {
        ct_row_t row;
        int64_t rid, sign;
        __int128 d[CT_N_METRICS];
        if (m < 0 || hook_row(ARG(0), &row) < 0 || hook_i64(ARG(1), &rid) < 0 ||
            hook_i64(ARG(2), &sign) < 0)
            return NULL;
        ct_row_deltas(&row, rid, (int)sign, d);
        PyObject *out = PyList_New(CT_N_METRICS);
        for (int k = 0; out && k < CT_N_METRICS; k++) {
            PyObject *v = py_from_i128(d[k]);
            if (!v) Py_CLEAR(out);
            else PyList_SET_ITEM(out, k, v);
        }
        return out;
    }
    if ((m = IS("rollup_split", 1))) {
        __int128 sums[CT_N_METRICS];
        PyObject *seq = m < 0 ? NULL : PySequence_Fast(ARG(0), "sums must be a sequence");
        if (!seq) return NULL;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        int bad = n > CT_N_METRICS;
        if (bad) PyErr_SetString(PyExc_ValueError, "rollup_split: at most 18 sums");
        for (Py_ssize_t k = 0; !bad && k < n; k++)
            bad = py_to_i128(PySequence_Fast_GET_ITEM(seq, k), &sums[k]) < 0;
        Py_DECREF(seq);
        if (bad) return NULL;
        int64_t parts = ct_rollup_parts(sums, (int)n);
        PyObject *out = parts <= HOOK_MAX ? PyList_New(0) : NULL;
        if (parts > HOOK_MAX) PyErr_SetString(PyExc_ValueError, "rollup_split: too many rows");
        for (int64_t p = 0; out && p < parts; p++) {
            PyObject *row = PyList_New(n);
            for (Py_ssize_t k = 0; row && k < n; k++) {
                PyObject *v = PyLong_FromLongLong(ct_rollup_share(sums[k], parts, p));
                if (!v) Py_CLEAR(row);
                else PyList_SET_ITEM(row, k, v);
            }
            if (!row || PyList_Append(out, row) < 0) Py_CLEAR(out);
            Py_XDECREF(row);
        }
        return out;
    }
    if ((m = IS("tool_shares", 3))) {
        ct_row_t row;
        int64_t rid, n;
        if (m < 0 || hook_row(ARG(0), &row) < 0 || hook_i64(ARG(1), &rid) < 0 ||
            hook_i64(ARG(2), &n) < 0)
            return NULL;
        if (n < 1) {
            PyErr_SetString(PyExc_ValueError, "tool_shares: n >= 1");
            return NULL;
        }
        ct_shares_t s = ct_tool_shares(&row, rid, (size_t)n);
        return Py_BuildValue("(ddd)", s.auto_, s.calc, s.disp);
    }
    if ((m = IS("tool_calls", 1))) {
        PyObject *names = m < 0 ? NULL : PySequence_Tuple(ARG(0));
        if (!names) return NULL;
        size_t n = (size_t)PyTuple_GET_SIZE(names);
        PyObject *out = PyList_New(0);
        for (size_t k = 0; out && k < n; k++) {
            int64_t calls = ct_tool_calls(n, k, tool_same, names);
            if (PyErr_Occurred()) {
                Py_CLEAR(out);
                break;
            }
            if (!calls) continue;
            PyObject *pair = Py_BuildValue("(OL)", PyTuple_GET_ITEM(names, (Py_ssize_t)k),
                                           (long long)calls);
            if (!pair || PyList_Append(out, pair) < 0) Py_CLEAR(out);
            Py_XDECREF(pair);
        }
        Py_DECREF(names);
        return out;
    }
    if ((m = IS("sidechain_replays", 1))) {
        int64_t ids[HOOK_MAX];
        int side[HOOK_MAX], replay[HOOK_MAX];
        PyObject *seq = m < 0 ? NULL : PySequence_Fast(ARG(0), "rows must be a sequence");
        if (!seq) return NULL;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        int bad = n > HOOK_MAX;
        if (bad) PyErr_SetString(PyExc_ValueError, "sidechain_replays: too many rows");
        for (Py_ssize_t i = 0; !bad && i < n; i++) {
            long long id;
            int s;
            bad = !PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "Lp", &id, &s);
            ids[i] = id;
            side[i] = s;
        }
        Py_DECREF(seq);
        if (bad) return NULL;
        ct_sidechain_replays(ids, side, (size_t)n, replay);
        PyObject *out = PyList_New(0);
        for (Py_ssize_t i = 0; out && i < n; i++) {
            if (!replay[i]) continue;
            PyObject *v = PyLong_FromLongLong(ids[i]);
            if (!v || PyList_Append(out, v) < 0) Py_CLEAR(out);
            Py_XDECREF(v);
        }
        return out;
    }
#undef IS
#undef ARG
    if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "_rules: no rule named %s", name);
    return NULL;
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
    {"_rules", rules_hook, METH_VARARGS, "Test hook: one rule of rules.h (tests/test_rules.py)."},
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
