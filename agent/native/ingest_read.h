/* Reading: complete lines of a chunk classified by parse.h (or parsed by Python and handed back
 * as RawTurn tuples), Claude Code's records de-duplicated within the chunk (rules.keep), then
 * priced into rows for the writer (scan._Ingest._price). Part of ingest.c's translation unit. */
#ifndef CLAWTRACE_INGEST_READ_H
#define CLAWTRACE_INGEST_READ_H

#include "ingest.h"
#include "ingest_dims.h"
#include "ingest_writer.h"

/* ---------------------------------------------------------------------------------------------
 * Prices */

typedef struct {
    Ingest *self;
    int64_t model, day;
} card_probe;

static int card_eq(void *ctx, int32_t idx) {
    card_probe *p = ctx;
    card_t *c = vec_at(&p->self->cards, (size_t)idx);
    return c->model_id == p->model && c->day == p->day;
}

/* The card for (model dimension, UTC day): asks Python the first time. */
static card_t *card_get(Ingest *self, rec_t *r, int64_t mid, int64_t day) {
    card_probe p = {self, mid, day};
    uint64_t h = mix64((uint64_t)mid ^ mix64((uint64_t)day));
    int32_t i = map_get(&self->card_by_key, h, card_eq, &p);
    if (i >= 0) return vec_at(&self->cards, (size_t)i);
    PyObject *prov = py_str(self, r->provider), *model = py_str(self, r->model);
    PyObject *speed = py_str(self, r->speed);
    PyObject *v = prov && model && speed
                      ? PyObject_CallFunction(self->card_for, "OOLO", prov, model, (long long)r->ts,
                                              speed)
                      : NULL;
    Py_XDECREF(prov);
    Py_XDECREF(model);
    Py_XDECREF(speed);
    if (!v) return NULL;
    card_t *c = vec_push(&self->cards);
    if (!c) {
        Py_DECREF(v);
        PyErr_NoMemory();
        return NULL;
    }
    c->model_id = mid;
    c->day = day;
    int bad = ct_card_from_py(v, &c->c) < 0;
    if (!bad && PyTuple_Check(v) && PyTuple_GET_SIZE(v) == 3) {
        /* (source id, source name, tiers): a price source to insert */
        long long src = PyLong_AsLongLong(PyTuple_GET_ITEM(v, 0));
        bad = (src == -1 && PyErr_Occurred()) || source_known(self, src, PyTuple_GET_ITEM(v, 1)) < 0;
    }
    Py_DECREF(v);
    if (bad) return NULL;
    if (map_put(&self->card_by_key, h, (int32_t)(self->cards.len - 1), card_eq, &p) < 0) {
        PyErr_NoMemory();
        return NULL;
    }
    return vec_at(&self->cards, self->cards.len - 1);
}

static int price_slow(Ingest *self, rec_t *r, row_t *row) {
    PyObject *prov = py_str(self, r->provider), *model = py_str(self, r->model);
    PyObject *speed = py_str(self, r->speed);
    PyObject *rep = row->has_rep ? PyLong_FromLongLong(row->rep) : (Py_INCREF(Py_None), Py_None);
    PyObject *v = NULL;
    if (prov && model && speed && rep)
        v = PyObject_CallFunction(self->price_slow, "OOL(LLLLLL)OO", prov, model, (long long)r->ts,
                                  r->tok[0], r->tok[1], r->tok[2], r->tok[3], r->tok[4], r->tok[5],
                                  speed, rep);
    Py_XDECREF(prov);
    Py_XDECREF(model);
    Py_XDECREF(speed);
    Py_XDECREF(rep);
    if (!v) return -1;
    /* (cost or None, source id, source name, savings, writes) */
    if (!PyTuple_Check(v) || PyTuple_GET_SIZE(v) != 5) {
        Py_DECREF(v);
        PyErr_SetString(PyExc_TypeError, "price_slow must return a 5-tuple");
        return -1;
    }
    PyObject *cost = PyTuple_GET_ITEM(v, 0);
    row->has_cost = cost != Py_None;
    row->cost = row->has_cost ? PyLong_AsLongLong(cost) : 0;
    row->src = PyLong_AsLongLong(PyTuple_GET_ITEM(v, 1));
    row->sav = PyLong_AsLongLong(PyTuple_GET_ITEM(v, 3));
    row->wc = PyLong_AsLongLong(PyTuple_GET_ITEM(v, 4));
    int rc = PyErr_Occurred() ? -1 : source_known(self, row->src, PyTuple_GET_ITEM(v, 2));
    Py_DECREF(v);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Priced rows */

/* scan._Ingest._price for one record of `source` (a pool id). */
static int rec_to_row(Ingest *self, rec_t *r, int32_t source, int64_t file_id, int has_file) {
    row_t row;
    memset(&row, 0, sizeof row);
    row.key_hash = r->key_hash;
    row.msg_hash = r->msg_hash;
    row.has_msg = r->has_msg;
    row.file_id = file_id;
    row.has_file = has_file;
    row.ctx = context_id(self, source, r);
    if (PyErr_Occurred()) return -1;
    row.model = model_id(self, r);
    if (PyErr_Occurred()) return -1;
    row.ts = r->ts;
    memcpy(row.tok, r->tok, sizeof row.tok);
    if (r->has_reported) {
        row.has_rep = 1;
        row.rep = ct_reported_pico(r->reported);
    }
    card_t *card = card_get(self, r, row.model, ct_floor_div(r->ts, CT_DAY_MS));
    if (!card) return -1;
    if (!ct_row_price(&row, &card->c, self->reported_id, self->none_id) &&
        price_slow(self, r, &row) < 0)
        return -1;
    int32_t names[MAX_TOOLS];
    size_t n = 0;
    for (int32_t t = r->tools_head; t >= 0 && n < MAX_TOOLS;) {
        rtool_t *rt = vec_at(&self->rtools, (size_t)t);
        names[n++] = rt->name;
        t = rt->next;
    }
    row.toolset = toolset_id(self, names, n);
    if (PyErr_Occurred()) return -1;
    return row_add(self, &row);
}

/* ---------------------------------------------------------------------------------------------
 * Records of the current chunk */

typedef struct {
    Ingest *self;
    int64_t key;
} rec_probe;

static int rec_key_eq(void *ctx, int32_t idx) {
    rec_probe *p = ctx;
    return ((rec_t *)vec_at(&p->self->recs, (size_t)idx))->key_hash == p->key;
}

/* rules.keep's tools: (key, name) into the record's list (ct_tools_put). */
static int rec_tool_add(Ingest *self, rec_t *r, int32_t key, int32_t name) {
    if (!vec_push(&self->rtools)) return -1; /* room for a new one, given back if not used */
    int32_t fresh = (int32_t)(self->rtools.len - 1);
    if (ct_tools_put((rtool_t *)self->rtools.data, &r->tools_head, &r->tools_tail, fresh, key,
                     name))
        r->ntools++;
    else
        self->rtools.len--;
    return 0;
}

/* rules.keep, for a record whose tools are (key, name) pool id pairs. */
static int rec_keep(Ingest *self, rec_t *r, const int32_t *tool_pairs, size_t ntools) {
    rec_probe p = {self, r->key_hash};
    uint64_t h = mix64((uint64_t)r->key_hash);
    int32_t i = map_get(&self->rec_by_key, h, rec_key_eq, &p);
    rec_t *target;
    if (i < 0) {
        rec_t *slot = vec_push(&self->recs);
        if (!slot) return -1;
        *slot = *r;
        slot->tools_head = slot->tools_tail = -1;
        slot->ntools = 0;
        if (map_put(&self->rec_by_key, h, (int32_t)(self->recs.len - 1), rec_key_eq, &p) < 0)
            return -1;
        target = slot;
    } else {
        rec_t *prev = vec_at(&self->recs, (size_t)i);
        if (ct_keep_wins(r->tok, prev->tok)) {
            int32_t head = prev->tools_head, tail = prev->tools_tail, nt = prev->ntools;
            *prev = *r;
            prev->tools_head = head;
            prev->tools_tail = tail;
            prev->ntools = nt;
        }
        target = prev;
    }
    for (size_t k = 0; k < ntools; k++)
        if (rec_tool_add(self, target, tool_pairs[2 * k], tool_pairs[2 * k + 1]) < 0) return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Python methods: parsing */


/* Whether the key in `enc` (message id of `mid_len` bytes, then maybe ":<requestId>") is the
 * last one hashed, whose hashes then stand. */
static int claude_hash_again(Ingest *self, size_t mid_len) {
    return self->last_key.p && self->last_key.n == self->enc.n && self->last_mid_len == mid_len &&
           memcmp(self->last_key.p, self->enc.p, self->enc.n) == 0;
}

/* Ingest.claude(data, pos, end, last_cwd, project_fallback, session_hint, subagent_file)
 *   -> (pos, last_cwd, lines, malformed, turn_lines, skipped, deferred) */
static PyObject *Ingest_claude(Ingest *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end;
    PyObject *last_cwd, *fallback, *hint;
    int subagent_file;
    if (!PyArg_ParseTuple(args, "y*nnOUUp", &view, &pos, &end, &last_cwd, &fallback, &hint,
                          &subagent_file))
        return NULL;
    if (pos < 0 || end > view.len || pos > end ||
        (last_cwd != Py_None && !PyUnicode_Check(last_cwd))) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "Ingest.claude: bad arguments");
        return NULL;
    }
    int32_t cwd = intern_py(self, last_cwd), fb = intern_py(self, fallback);
    int32_t hint_id = intern_py(self, hint);
    long long lines = 0, malformed = 0, turn_lines = 0, skipped = 0;
    int deferred = 0, failed = cwd == -2 || fb == -2 || hint_id == -2;
    const char *data = view.buf;
    int32_t pairs[2 * MAX_TOOLS];
    while (!failed && pos < end) {
        const char *nl = memchr(data + pos, '\n', (size_t)(end - pos));
        if (!nl) break;
        size_t len = (size_t)(nl - (data + pos));
        cline_t c;
        claude_classify(&self->arena, data + pos, len, subagent_file, &self->ctools_scratch, &c);
        if (c.outcome == O_DEFER) {
            deferred = 1;
            break;
        }
        if (c.has_cwd && (cwd = intern(self, c.cwd)) < 0) failed = 1;
        if (!failed && c.outcome == O_RECORD) {
            rec_t r;
            memset(&r, 0, sizeof r);
            /* key = "<message.id>:<requestId>" or the id alone */
            buf_t *k = &self->enc;
            k->n = 0;
            failed = buf_add(k, c.mid.p, c.mid.n) < 0 ||
                     (c.has_rid && (buf_addc(k, ':') < 0 || buf_add(k, c.rid.p, c.rid.n) < 0));
            if (!failed && !claude_hash_again(self, c.mid.n)) {
                self->last_key_hash = hash64(k->p, k->n);
                self->last_msg_hash = hash64(c.mid.p, c.mid.n);
                self->last_mid_len = c.mid.n;
                self->last_key.n = 0;
                failed = buf_add(&self->last_key, k->p, k->n) < 0;
            }
            r.key_hash = self->last_key_hash;
            r.msg_hash = self->last_msg_hash;
            r.has_msg = 1;
            r.subagent = c.has_agent_id ? intern(self, c.agent_id) : NO_STR;
            r.agent = c.sidechain && c.has_agent_id ? r.subagent : self->s_claude;
            r.project = cwd != NO_STR ? cwd : fb;
            r.session = c.has_session ? intern(self, c.session) : hint_id;
            r.sidechain = c.sidechain;
            r.model = intern(self, c.model);
            r.provider = self->s_anthropic;
            r.speed = c.has_speed ? intern(self, c.speed) : NO_STR;
            r.branch = c.has_branch ? intern(self, c.branch) : self->s_empty;
            r.ts = c.ts;
            memcpy(r.tok, c.tok, sizeof r.tok);
            r.has_reported = c.has_reported;
            r.reported = c.reported;
            size_t nt = c.ntools < MAX_TOOLS ? c.ntools : MAX_TOOLS;
            ctool_t *tools = (ctool_t *)self->ctools_scratch.data;
            for (size_t i = 0; i < nt && !failed; i++) {
                char idx[32];
                str_t key = tools[i].id;
                if (!tools[i].has_id) {
                    key.n = (size_t)snprintf(idx, sizeof idx, "#%zu", tools[i].index);
                    key.p = idx;
                }
                pairs[2 * i] = pool_id(&self->chunk_pool, key);
                pairs[2 * i + 1] = intern(self, tools[i].name);
                failed = pairs[2 * i] < 0 || pairs[2 * i + 1] < 0;
            }
            failed = failed || r.subagent == -2 || r.session == -2 || r.model == -2 ||
                     r.speed == -2 || r.branch == -2 || rec_keep(self, &r, pairs, nt) < 0;
        }
        if (failed) break;
        lines++;
        malformed += c.outcome == O_MALFORMED;
        skipped += c.outcome == O_SKIPPED;
        turn_lines += c.turn_line;
        pos += (Py_ssize_t)len + 1;
    }
    PyBuffer_Release(&view);
    if (failed) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    PyObject *cwd_o = py_str(self, cwd);
    if (!cwd_o) return NULL;
    return Py_BuildValue("(nNLLLLO)", pos, cwd_o, lines, malformed, turn_lines, skipped,
                         deferred ? Py_True : Py_False);
}

static int64_t py_i64(PyObject *o, int *ok) {
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) *ok = 0;
    return v;
}

/* A RawTurn tuple (sources.base) as a record; tools in `pairs` as (key, name) pool ids. */
static int rec_from_tuple(Ingest *self, PyObject *t, rec_t *r, int32_t *pairs, size_t *ntools) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != CT_RT_LEN) {
        PyErr_SetString(PyExc_TypeError, "a record is a 21-tuple");
        return -1;
    }
#define T(k) PyTuple_GET_ITEM(t, CT_RT_##k)
    int ok = 1;
    memset(r, 0, sizeof *r);
    r->key_hash = py_i64(T(KEY_HASH), &ok);
    r->has_msg = T(MSG_HASH) != Py_None;
    if (r->has_msg) r->msg_hash = py_i64(T(MSG_HASH), &ok);
    r->agent = intern_py(self, T(AGENT));
    r->project = intern_py(self, T(PROJECT));
    r->session = intern_py(self, T(SESSION));
    r->subagent = intern_py(self, T(SUBAGENT));
    r->sidechain = (int)py_i64(T(SIDECHAIN), &ok);
    r->model = intern_py(self, T(MODEL));
    r->provider = intern_py(self, T(PROVIDER));
    r->ts = py_i64(T(TS), &ok);
    if (ok && ct_tok_from_py(t, CT_RT_INPUT, r->tok) < 0) ok = 0;
    r->speed = intern_py(self, T(SPEED));
    PyObject *rep = T(REPORTED_USD);
    r->has_reported = rep != Py_None;
    if (r->has_reported) r->reported = PyFloat_AsDouble(rep);
    r->branch = intern_py(self, T(GIT_BRANCH));
    if (!ok || PyErr_Occurred() || r->agent == -2 || r->project == -2 || r->session == -2 ||
        r->subagent == -2 || r->model == -2 || r->provider == -2 || r->speed == -2 ||
        r->branch == -2)
        return -1;
    PyObject *tools = T(TOOLS);
#undef T
    size_t n = 0;
    if (PyDict_Check(tools)) {
        Py_ssize_t i = 0;
        PyObject *k, *v;
        while (PyDict_Next(tools, &i, &k, &v) && n < MAX_TOOLS) {
            Py_ssize_t kn;
            const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kn) : NULL;
            if (!ks) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "tool ids are str");
                return -1;
            }
            str_t kst = {ks, (size_t)kn};
            pairs[2 * n] = pool_id(&self->chunk_pool, kst);
            pairs[2 * n + 1] = intern_py(self, v);
            if (pairs[2 * n] < 0 || pairs[2 * n + 1] < 0) return -1;
            n++;
        }
    } else if (PyTuple_Check(tools)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tools) && n < MAX_TOOLS; i++) {
            pairs[2 * n] = (int32_t)i; /* positions: a tuple keeps repeats */
            pairs[2 * n + 1] = intern_py(self, PyTuple_GET_ITEM(tools, i));
            if (pairs[2 * n + 1] < 0) return -1;
            n++;
        }
    } else {
        PyErr_SetString(PyExc_TypeError, "record tools must be a dict or a tuple");
        return -1;
    }
    *ntools = n;
    return 0;
}

/* Ingest.claude_add(record): a RawTurn Python parsed (a deferred line) into the chunk. */
static PyObject *Ingest_claude_add(Ingest *self, PyObject *t) {
    rec_t r;
    int32_t pairs[2 * MAX_TOOLS];
    size_t n;
    if (rec_from_tuple(self, t, &r, pairs, &n) < 0) return NULL;
    if (rec_keep(self, &r, pairs, n) < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* Ingest.claude_end(file_id) -> turns: the chunk's records become priced rows. */
static PyObject *Ingest_claude_end(Ingest *self, PyObject *arg) {
    int ok = 1;
    int has_file = arg != Py_None;
    int64_t file_id = has_file ? py_i64(arg, &ok) : 0;
    if (!ok) return NULL;
    size_t n = self->recs.len;
    int failed = 0;
    for (size_t i = 0; i < n && !failed; i++)
        failed = rec_to_row(self, vec_at(&self->recs, i), self->s_src_claude, file_id, has_file) < 0;
    self->recs.len = 0;
    self->rtools.len = 0;
    map_clear(&self->rec_by_key);
    pool_clear(&self->chunk_pool);
    if (failed) return NULL;
    return PyLong_FromSize_t(n);
}

/* Ingest.add(record, source, file_id): a RawTurn (tools a tuple) straight to a row. */
static PyObject *Ingest_add(Ingest *self, PyObject *args) {
    PyObject *t, *source, *file;
    if (!PyArg_ParseTuple(args, "OUO", &t, &source, &file)) return NULL;
    rec_t r;
    int32_t pairs[2 * MAX_TOOLS];
    size_t n;
    int ok = 1;
    int64_t file_id = file != Py_None ? py_i64(file, &ok) : 0;
    int32_t src = intern_py(self, source);
    if (!ok || src < 0 || rec_from_tuple(self, t, &r, pairs, &n) < 0) return NULL;
    r.tools_head = r.tools_tail = -1;
    size_t mark = self->rtools.len;
    for (size_t k = 0; k < n; k++) {
        rtool_t *nt = vec_push(&self->rtools);
        if (!nt) return PyErr_NoMemory();
        nt->key = pairs[2 * k];
        nt->name = pairs[2 * k + 1];
        nt->next = -1;
        int32_t id = (int32_t)(self->rtools.len - 1);
        if (r.tools_tail >= 0) ((rtool_t *)vec_at(&self->rtools, (size_t)r.tools_tail))->next = id;
        else r.tools_head = id;
        r.tools_tail = id;
    }
    int rc = rec_to_row(self, &r, src, file_id, file != Py_None);
    self->rtools.len = mark;
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* Ingest.openclaw(data, pos, end, base_offset, agent, session_hint, subagent, session_key,
 *                 (session_id, cwd, provider, model), file_id)
 *   -> (pos, state, lines, malformed, turn_lines, skipped, deferred, turns) */
static PyObject *Ingest_openclaw(Ingest *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end;
    long long base;
    PyObject *agent, *hint, *skey, *state, *file;
    int subagent;
    if (!PyArg_ParseTuple(args, "y*nnLUOpOO!O", &view, &pos, &end, &base, &agent, &hint,
                          &subagent, &skey, &PyTuple_Type, &state, &file))
        return NULL;
    int ok = pos >= 0 && end <= view.len && pos <= end && PyTuple_GET_SIZE(state) == ST_N &&
             (hint == Py_None || PyUnicode_Check(hint)) &&
             (skey == Py_None || PyUnicode_Check(skey));
    int32_t st[ST_N];
    for (int i = 0; ok && i < ST_N; i++) {
        PyObject *o = PyTuple_GET_ITEM(state, i);
        ok = o == Py_None || PyUnicode_Check(o);
        if (ok) st[i] = intern_py(self, o);
        ok = ok && st[i] != -2;
    }
    int64_t file_id = 0;
    if (ok && file != Py_None) file_id = py_i64(file, &ok);
    int32_t agent_id = ok ? intern_py(self, agent) : -2, hint_id = ok ? intern_py(self, hint) : -2;
    int32_t skey_id = ok ? intern_py(self, skey) : -2;
    if (!ok || agent_id == -2 || hint_id == -2 || skey_id == -2) {
        PyBuffer_Release(&view);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "Ingest.openclaw: bad arguments");
        return NULL;
    }
    long long lines = 0, malformed = 0, turn_lines = 0, skipped = 0, turns = 0;
    int deferred = 0, failed = 0;
    const char *data = view.buf;
    while (!failed && pos < end) {
        const char *nl = memchr(data + pos, '\n', (size_t)(end - pos));
        if (!nl) break;
        size_t len = (size_t)(nl - (data + pos));
        oline_t o;
        int model_ok = st[ST_MODEL] != NO_STR && pool_str(&self->pool, st[ST_MODEL]).n > 0;
        oc_classify(&self->arena, data + pos, len, model_ok, &self->otools_scratch, &o);
        if (o.outcome == O_DEFER) {
            deferred = 1;
            break;
        }
        for (int i = 0; i < ST_N && !failed; i++)
            if (o.set[i] && (st[i] = intern(self, o.set_to[i])) < 0) failed = 1;
        if (!failed && o.outcome == O_RECORD) {
            int32_t session = st[ST_SESSION] != NO_STR && pool_str(&self->pool, st[ST_SESSION]).n
                                  ? st[ST_SESSION]
                                  : (hint_id != NO_STR && pool_str(&self->pool, hint_id).n
                                         ? hint_id
                                         : self->s_unknown);
            buf_t *k = &self->enc;
            k->n = 0;
            str_t ag = pool_str(&self->pool, agent_id), se = pool_str(&self->pool, session);
            failed = buf_add(k, "oc:", 3) < 0 || buf_add(k, ag.p, ag.n) < 0 || buf_addc(k, ':') < 0 ||
                     buf_add(k, se.p, se.n) < 0 || buf_addc(k, ':') < 0;
            if (!failed && o.has_id) {
                failed = buf_add(k, o.id.p, o.id.n) < 0;
            } else if (!failed) {
                char tmp[32];
                int tn = snprintf(tmp, sizeof tmp, "@%lld", base + (long long)pos);
                failed = buf_add(k, tmp, (size_t)tn) < 0;
            }
            rec_t r;
            memset(&r, 0, sizeof r);
            r.key_hash = hash64(k->p, k->n);
            r.msg_hash = r.key_hash; /* no message ids: the key stands in (store.turns_key) */
            r.has_msg = 1;
            r.agent = agent_id;
            r.project = st[ST_CWD] != NO_STR && pool_str(&self->pool, st[ST_CWD]).n ? st[ST_CWD]
                                                                                    : agent_id;
            r.session = session;
            r.subagent = subagent ? skey_id : NO_STR;
            r.sidechain = subagent;
            r.model = o.model_from_msg ? intern(self, o.model) : st[ST_MODEL];
            r.provider = o.provider_from_msg
                             ? intern(self, o.provider)
                             : (st[ST_PROVIDER] != NO_STR && pool_str(&self->pool, st[ST_PROVIDER]).n
                                    ? st[ST_PROVIDER]
                                    : self->s_unknown);
            r.speed = NO_STR;
            r.branch = self->s_empty;
            r.ts = o.ts;
            for (int i = 0; i < 4; i++) r.tok[i] = o.tok[i];
            r.has_reported = o.has_reported;
            r.reported = o.reported;
            r.tools_head = r.tools_tail = -1;
            size_t mark = self->rtools.len;
            str_t *names = (str_t *)self->otools_scratch.data;
            for (size_t i = 0; i < o.ntools && !failed; i++) {
                int32_t name = intern(self, names[i]);
                rtool_t *nt = name < 0 ? NULL : vec_push(&self->rtools);
                if (!nt) {
                    failed = 1;
                    break;
                }
                nt->key = (int32_t)i;
                nt->name = name;
                nt->next = -1;
                int32_t id = (int32_t)(self->rtools.len - 1);
                if (r.tools_tail >= 0)
                    ((rtool_t *)vec_at(&self->rtools, (size_t)r.tools_tail))->next = id;
                else
                    r.tools_head = id;
                r.tools_tail = id;
            }
            failed = failed || r.model < 0 || r.provider < 0 ||
                     rec_to_row(self, &r, self->s_src_openclaw, file_id, file != Py_None) < 0;
            self->rtools.len = mark;
            turns++;
        }
        if (failed) break;
        lines++;
        malformed += o.outcome == O_MALFORMED;
        skipped += o.outcome == O_SKIPPED;
        turn_lines += o.turn_line;
        pos += (Py_ssize_t)len + 1;
    }
    PyBuffer_Release(&view);
    if (failed) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    PyObject *st_out = PyTuple_New(ST_N);
    for (int i = 0; st_out && i < ST_N; i++) {
        PyObject *v = py_str(self, st[i]);
        if (!v) {
            Py_CLEAR(st_out);
            break;
        }
        PyTuple_SET_ITEM(st_out, i, v);
    }
    if (!st_out) return NULL;
    return Py_BuildValue("(nNLLLLOL)", pos, st_out, lines, malformed, turn_lines, skipped,
                         deferred ? Py_True : Py_False, turns);
}

#endif
