/* Line classification for both log formats, into plain C structs.
 *
 * Each classifier applies the rules of the matching Python parser (clawtrace/sources/) to one
 * line and says what the line is: not a turn, malformed, skipped (not billed), a turn (with its
 * fields as slices of the parsed JSON), or "defer" when the line is anything this code is not
 * sure about (the JSON parser rejects it, an unusual timestamp, a float token count...). A
 * deferred line is parsed by the Python code, in order, so the result is always the Python
 * parser's. Nothing here touches Python objects: scanmodule.c turns the structs into Python
 * records (the reference pipeline) or feeds them to the native ingest. */
#ifndef CLAWTRACE_PARSE_H
#define CLAWTRACE_PARSE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blake2b.h"
#include "rules.h"
#include "vec.h"
#include "yyjson.h"

#define MAX_TOKENS CT_MAX_TURN_TOKENS
#define MAX_USD CT_MAX_LOGGED_USD
/* orjson refuses documents nested deeper than 1024 levels; a document with fewer values than
 * that cannot be that deep, and anything bigger is left to the Python parser. */
#define MAX_VALUES 1024

static inline str_t str_of(yyjson_val *v) {
    str_t s = {yyjson_get_str(v), yyjson_get_len(v)};
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers */

static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t m) {
#if defined(__GLIBC__) || defined(__APPLE__) || defined(__FreeBSD__)
    return memmem(hay, n, needle, m);
#else
    if (m == 0) return hay;
    while (n >= m) {
        const char *p = memchr(hay, needle[0], n - m + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, m) == 0) return p;
        n -= (size_t)(p - hay) + 1;
        hay = p + 1;
    }
    return NULL;
#endif
}

/* Python's bytes.strip() whitespace. */
static inline int is_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

/* hashlib.blake2b(data, digest_size=8) read as a signed big-endian integer. */
static inline int64_t hash64(const char *data, size_t len) {
    uint8_t d[8];
    uint64_t u = 0;
    ct_blake2b(d, 8, data, len);
    for (int i = 0; i < 8; i++) u = (u << 8) | d[i];
    return (int64_t)u;
}

/* The last value under each wanted key (Python dicts keep the last of duplicate keys). */
typedef struct {
    const char *name;
    size_t len;
} field_t;
#define F(s) {s, sizeof(s) - 1}

static void get_fields(yyjson_val *obj, const field_t *fields, int n, yyjson_val **out) {
    yyjson_obj_iter it;
    yyjson_val *key;
    for (int i = 0; i < n; i++) out[i] = NULL;
    yyjson_obj_iter_init(obj, &it);
    while ((key = yyjson_obj_iter_next(&it))) {
        size_t klen = yyjson_get_len(key);
        const char *k = yyjson_get_str(key);
        for (int i = 0; i < n; i++) {
            if (fields[i].len == klen && memcmp(fields[i].name, k, klen) == 0) {
                out[i] = yyjson_obj_iter_get_val(key);
                break;
            }
        }
    }
}

static inline int str_eq(yyjson_val *v, const char *s) {
    size_t n = strlen(s);
    return v && yyjson_is_str(v) && yyjson_get_len(v) == n && memcmp(yyjson_get_str(v), s, n) == 0;
}

static inline int nonempty_str(yyjson_val *v) {
    return v && yyjson_is_str(v) && yyjson_get_len(v) > 0;
}

static inline int has_non_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 1;
    return 0;
}

/* Python truthiness of a JSON value, for `x or default`. */
static int truthy(yyjson_val *v) {
    if (!v) return 0;
    switch (yyjson_get_type(v)) {
        case YYJSON_TYPE_NULL: return 0;
        case YYJSON_TYPE_BOOL: return yyjson_get_bool(v);
        case YYJSON_TYPE_NUM:
            if (yyjson_is_real(v)) return yyjson_get_real(v) != 0.0;
            return yyjson_get_uint(v) != 0; /* same bits for sint */
        case YYJSON_TYPE_STR: return yyjson_get_len(v) > 0;
        case YYJSON_TYPE_ARR: return yyjson_arr_size(v) > 0;
        case YYJSON_TYPE_OBJ: return yyjson_obj_size(v) > 0;
        default: return 1;
    }
}

enum { TOK_OK = 0, TOK_BAD = 1, TOK_DEFER = 2 };

/* sources.base.token_count: missing means 0; a non-negative integer below MAX_TOKENS is
 * itself; a float is left to Python; anything else (null, bool, string, negative...) is bad. */
static int token_count(yyjson_val *v, int64_t *out) {
    *out = 0;
    if (!v) return TOK_OK;
    if (yyjson_is_uint(v)) {
        uint64_t u = yyjson_get_uint(v);
        if (u < (uint64_t)MAX_TOKENS) {
            *out = (int64_t)u;
            return TOK_OK;
        }
        return TOK_BAD;
    }
    if (yyjson_is_sint(v)) {
        int64_t s = yyjson_get_sint(v);
        if (s >= 0 && s < MAX_TOKENS) {
            *out = s;
            return TOK_OK;
        }
        return TOK_BAD;
    }
    if (yyjson_is_real(v)) return TOK_DEFER;
    return TOK_BAD;
}

/* sources.base.money: a number (not a bool) in [0, MAX_USD), as a double; 0 when there is
 * none. */
static int money(yyjson_val *v, double *out) {
    if (!v || !yyjson_is_num(v)) return 0;
    if (yyjson_is_uint(v)) {
        uint64_t u = yyjson_get_uint(v);
        if (u >= (uint64_t)MAX_USD) return 0;
        *out = (double)u;
    } else if (yyjson_is_sint(v)) {
        int64_t s = yyjson_get_sint(v);
        if (s < 0 || s >= (int64_t)MAX_USD) return 0;
        *out = (double)s;
    } else {
        double d = yyjson_get_real(v);
        if (!(d >= 0.0 && d < MAX_USD)) return 0;
        *out = d;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Timestamps: sources.base.iso_to_ms on the common ISO forms; anything else is deferred. */

enum { TS_OK = 0, TS_NONE = 1, TS_DEFER = 2 };

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int month_days(int y, int m) {
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return md[m - 1];
}

/* `YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|+HH:MM|-HH:MM]`; naive means UTC. */
static int iso_to_ms(yyjson_val *v, int64_t *out) {
    if (!v || !yyjson_is_str(v)) return TS_NONE;
    const char *s = yyjson_get_str(v);
    size_t n = yyjson_get_len(v);
    if (has_non_ascii(s, n)) return TS_DEFER; /* Python counts characters, not bytes */
    if (n < 16 || s[4] != '-' || (s[10] != 'T' && s[10] != ' ')) return TS_NONE;
    int Y, M, D, h, mi, sec, frac_us = 0, off_min = 0;
    if (n < 19 || s[7] != '-' || s[13] != ':' || s[16] != ':') return TS_DEFER;
    if (!digits(s, 4, &Y) || !digits(s + 5, 2, &M) || !digits(s + 8, 2, &D) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
        return TS_DEFER;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        size_t nd = i - start;
        if (nd < 1 || nd > 6) return TS_DEFER;
        int f = 0;
        digits(s + start, (int)nd, &f);
        for (size_t k = nd; k < 6; k++) f *= 10;
        frac_us = f;
    }
    if (i < n) {
        if (s[i] == 'Z' && i + 1 == n) {
            i++;
        } else if ((s[i] == '+' || s[i] == '-') && i + 6 == n && s[i + 3] == ':') {
            int oh, om;
            if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om)) return TS_DEFER;
            if (oh > 23 || om > 59) return TS_DEFER;
            off_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
            i = n;
        } else {
            return TS_DEFER;
        }
    }
    if (Y < 1 || M < 1 || M > 12 || D < 1 || D > month_days(Y, M) || h > 23 || mi > 59 || sec > 59)
        return TS_DEFER;
    int64_t secs = days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + sec - off_min * 60;
    *out = secs * 1000 + frac_us / 1000;
    return ct_ts_sane(*out) ? TS_OK : TS_NONE; /* (base.iso_to_ms: outside the window is None) */
}

/* `^\d+\.\d+\.\d+` on ASCII; other strings are left to Python's Unicode-aware regex. */
enum { SV_YES = 0, SV_NO = 1, SV_DEFER = 2 };
static int semver_prefix(yyjson_val *v) {
    const char *s = yyjson_get_str(v);
    size_t n = yyjson_get_len(v), i = 0;
    for (int part = 0; part < 3; part++) {
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == start || (part < 2 && (i >= n || s[i++] != '.'))) {
            return has_non_ascii(s, n) ? SV_DEFER : SV_NO;
        }
    }
    return SV_YES;
}

/* ---------------------------------------------------------------------------------------------
 * The JSON parser's memory: one buffer, grown to the largest line seen. */

typedef struct {
    void *buf;
    size_t size;
} arena_t;

static yyjson_doc *parse_line(arena_t *arena, const char *line, size_t len) {
    size_t need = yyjson_read_max_memory_usage(len, 0);
    if (need > arena->size) {
        void *nb = realloc(arena->buf, need);
        if (!nb) return NULL;
        arena->buf = nb;
        arena->size = need;
    }
    yyjson_alc alc;
    if (!yyjson_alc_pool_init(&alc, arena->buf, arena->size)) return NULL;
    yyjson_doc *doc = yyjson_read_opts((char *)line, len, 0, &alc, NULL);
    if (doc && yyjson_doc_get_val_count(doc) > MAX_VALUES) return NULL;
    return doc;
}

/* ---------------------------------------------------------------------------------------------
 * Outcomes */

enum { O_NONE, O_MALFORMED, O_SKIPPED, O_RECORD, O_DEFER };

/* ---------------------------------------------------------------------------------------------
 * Claude Code (sources/claude_code.py) */

typedef struct {
    int has_id;    /* a non-empty string id; else the key is "#<index>" */
    str_t id;
    size_t index;  /* the block's position in message.content */
    str_t name;
} ctool_t;

typedef struct {
    int outcome;
    int turn_line;
    int has_cwd; /* an assistant line's non-empty cwd: it becomes the last cwd */
    str_t cwd;
    /* the turn (O_RECORD) */
    str_t mid, rid; /* key = mid + ":" + rid, or mid when there is no rid */
    int has_rid;
    int has_session; /* else the file's session hint */
    str_t session;
    int has_agent_id; /* a non-empty agentId */
    str_t agent_id;
    int sidechain;
    str_t model;
    int has_speed;
    str_t speed;
    int has_branch;
    str_t branch;
    int64_t ts, tok[6]; /* input, output, cache read, 5m writes, 1h writes, web searches */
    int has_reported;
    double reported;
    size_t ntools; /* tools are in the classifier's vec_t of ctool_t */
} cline_t;

enum {
    CF_TYPE, CF_MESSAGE, CF_CWD, CF_TIMESTAMP, CF_REQUEST, CF_SESSION, CF_VERSION, CF_SIDECHAIN,
    CF_AGENT, CF_APIERR, CF_COST, CF_BRANCH, CF_N
};
static const field_t CLAUDE_FIELDS[CF_N] = {
    F("type"),      F("message"),     F("cwd"),     F("timestamp"),
    F("requestId"), F("sessionId"),   F("version"), F("isSidechain"),
    F("agentId"),   F("isApiErrorMessage"), F("costUSD"), F("gitBranch")};
enum { MF_ID, MF_MODEL, MF_USAGE, MF_CONTENT, MF_N };
static const field_t MSG_FIELDS[MF_N] = {F("id"), F("model"), F("usage"), F("content")};
enum { UF_IN, UF_OUT, UF_CREAD, UF_CWRITE, UF_CC, UF_STU, UF_SPEED, UF_N };
static const field_t USAGE_FIELDS[UF_N] = {
    F("input_tokens"),   F("output_tokens"),   F("cache_read_input_tokens"),
    F("cache_creation_input_tokens"), F("cache_creation"), F("server_tool_use"), F("speed")};
static const field_t CC_FIELDS[2] = {F("ephemeral_5m_input_tokens"), F("ephemeral_1h_input_tokens")};
static const field_t STU_FIELDS[1] = {F("web_search_requests")};
static const field_t BLOCK_FIELDS[3] = {F("type"), F("id"), F("name")};

/* ClaudeCode._turn on a decoded assistant line (fields `f`). */
static void claude_turn(yyjson_val **f, int subagent_file, vec_t *tools, cline_t *c) {
    yyjson_val *msg = f[CF_MESSAGE];
    if (!msg || !yyjson_is_obj(msg)) {
        c->outcome = O_MALFORMED;
        return;
    }
    yyjson_val *mf[MF_N];
    get_fields(msg, MSG_FIELDS, MF_N, mf);
    yyjson_val *model = mf[MF_MODEL], *usage = mf[MF_USAGE];
    if (str_eq(model, "<synthetic>") || (f[CF_APIERR] && yyjson_is_true(f[CF_APIERR]))) {
        c->outcome = O_SKIPPED;
        return;
    }
    if (!usage || yyjson_is_null(usage)) {
        c->outcome = O_SKIPPED;
        return;
    }
    c->turn_line = 1;
    if (!yyjson_is_obj(usage) || !nonempty_str(model)) {
        c->outcome = O_MALFORMED;
        return;
    }
    int tsr = iso_to_ms(f[CF_TIMESTAMP], &c->ts);
    if (tsr == TS_DEFER) {
        c->outcome = O_DEFER;
        return;
    }
    yyjson_val *mid = mf[MF_ID], *rid = f[CF_REQUEST], *session = f[CF_SESSION];
    yyjson_val *version = f[CF_VERSION];
    int bad = tsr == TS_NONE || !nonempty_str(mid) || (rid && !yyjson_is_str(rid)) ||
              (rid && yyjson_get_len(rid) == 0) || (session && !nonempty_str(session));
    if (!bad && version && !yyjson_is_null(version)) {
        if (!yyjson_is_str(version)) {
            bad = 1;
        } else {
            int sv = semver_prefix(version);
            if (sv == SV_DEFER) {
                c->outcome = O_DEFER;
                return;
            }
            bad = sv == SV_NO;
        }
    }
    if (bad) {
        c->outcome = O_MALFORMED;
        return;
    }
    yyjson_val *uf[UF_N];
    get_fields(usage, USAGE_FIELDS, UF_N, uf);
    int64_t tok4[4];
    int r = TOK_OK;
    for (int i = 0; i < 4; i++) {
        int t = token_count(uf[i], &tok4[i]);
        if (t > r) r = t;
    }
    if (r != TOK_OK) {
        c->outcome = r == TOK_DEFER ? O_DEFER : O_MALFORMED;
        return;
    }
    int64_t w5 = tok4[3], w1 = 0;
    if (uf[UF_CC] && yyjson_is_obj(uf[UF_CC])) {
        yyjson_val *cf[2];
        int64_t a, b;
        get_fields(uf[UF_CC], CC_FIELDS, 2, cf);
        int ra = token_count(cf[0], &a), rb = token_count(cf[1], &b);
        if (ra == TOK_DEFER || rb == TOK_DEFER) {
            c->outcome = O_DEFER;
            return;
        }
        if (ra == TOK_BAD || rb == TOK_BAD) {
            c->outcome = O_MALFORMED;
            return;
        }
        if (a + b) {
            w5 = a;
            w1 = b;
        }
    }
    int64_t web = 0;
    if (uf[UF_STU] && yyjson_is_obj(uf[UF_STU])) {
        yyjson_val *sf[1];
        get_fields(uf[UF_STU], STU_FIELDS, 1, sf);
        int rw = token_count(sf[0], &web);
        if (rw == TOK_DEFER) {
            c->outcome = O_DEFER;
            return;
        }
        if (rw == TOK_BAD) web = 0;
    }
    int64_t tok[CT_NTOK] = {tok4[0], tok4[1], tok4[2], w5, w1, web};
    int64_t total = (int64_t)ct_total_tokens(tok); /* (each count below MAX_TOKENS) */
    if (!ct_turn_tokens_sane(total, web)) {
        c->outcome = O_MALFORMED;
        return;
    }
    if (total == 0 && web == 0) {
        c->outcome = O_SKIPPED;
        return;
    }
    /* `_tools_of`: {tool_use id (or "#n"): name} in content order. */
    tools->len = 0;
    yyjson_val *content = mf[MF_CONTENT];
    if (content && yyjson_is_arr(content)) {
        yyjson_arr_iter it;
        yyjson_val *block;
        size_t n = 0;
        yyjson_arr_iter_init(content, &it);
        for (; (block = yyjson_arr_iter_next(&it)); n++) {
            if (!yyjson_is_obj(block)) continue;
            yyjson_val *bf[3];
            get_fields(block, BLOCK_FIELDS, 3, bf);
            if (!str_eq(bf[0], "tool_use") || !nonempty_str(bf[2])) continue;
            if (!nonempty_str(bf[1]) && truthy(bf[1])) {
                c->outcome = O_DEFER; /* str() of a non-string id: Python's business */
                return;
            }
            ctool_t *t = vec_push(tools);
            if (!t) {
                c->outcome = O_DEFER;
                return;
            }
            t->has_id = nonempty_str(bf[1]);
            if (t->has_id) t->id = str_of(bf[1]);
            t->index = n;
            t->name = str_of(bf[2]);
        }
    }
    c->ntools = tools->len;
    c->mid = str_of(mid);
    c->has_rid = rid != NULL && yyjson_get_len(rid) > 0;
    if (c->has_rid) c->rid = str_of(rid);
    c->has_session = session != NULL;
    if (session) c->session = str_of(session);
    c->has_agent_id = nonempty_str(f[CF_AGENT]);
    if (c->has_agent_id) c->agent_id = str_of(f[CF_AGENT]);
    c->sidechain = (f[CF_SIDECHAIN] && yyjson_is_true(f[CF_SIDECHAIN])) || subagent_file;
    c->model = str_of(model);
    c->has_speed = uf[UF_SPEED] && yyjson_is_str(uf[UF_SPEED]);
    if (c->has_speed) c->speed = str_of(uf[UF_SPEED]);
    c->has_branch = f[CF_BRANCH] && yyjson_is_str(f[CF_BRANCH]);
    if (c->has_branch) c->branch = str_of(f[CF_BRANCH]);
    memcpy(c->tok, tok, sizeof c->tok);
    c->has_reported = money(f[CF_COST], &c->reported);
    c->outcome = O_RECORD;
}

/* One Claude Code line. The parsed document lives in `arena` until the next call. */
static void claude_classify(arena_t *arena, const char *line, size_t len, int subagent_file,
                            vec_t *tools, cline_t *c) {
    memset(c, 0, sizeof *c);
    if (!find_bytes(line, len, "\"assistant\"", 11)) {
        /* Cheap shape check only: never decoded (ClaudeCode.parse). */
        size_t a = 0, b = len;
        while (a < b && is_ws((unsigned char)line[a])) a++;
        while (b > a && is_ws((unsigned char)line[b - 1])) b--;
        if (a < b && (line[0] != '{' || line[b - 1] != '}')) c->outcome = O_MALFORMED;
        return;
    }
    yyjson_doc *doc = parse_line(arena, line, len);
    if (!doc) {
        c->outcome = O_DEFER; /* malformed, most likely: Python says how */
        return;
    }
    yyjson_val *root = yyjson_doc_get_root(doc);
    if (!yyjson_is_obj(root)) {
        c->outcome = O_MALFORMED;
        return;
    }
    yyjson_val *f[CF_N];
    get_fields(root, CLAUDE_FIELDS, CF_N, f);
    if (!str_eq(f[CF_TYPE], "assistant")) return;
    claude_turn(f, subagent_file, tools, c);
    if (c->outcome != O_DEFER && nonempty_str(f[CF_CWD])) {
        c->has_cwd = 1;
        c->cwd = str_of(f[CF_CWD]);
    }
}

/* ---------------------------------------------------------------------------------------------
 * OpenClaw (sources/openclaw.py) */

enum { ST_SESSION, ST_CWD, ST_PROVIDER, ST_MODEL, ST_N };

typedef struct {
    int outcome;
    int turn_line;
    int set[ST_N]; /* state changes: only string values are taken */
    str_t set_to[ST_N];
    /* the turn (O_RECORD) */
    int model_from_msg, provider_from_msg; /* else the state's */
    str_t model, provider;
    int has_id;
    str_t id;
    int64_t ts, tok[4];
    int has_reported;
    double reported;
    size_t ntools; /* names, in the classifier's vec_t of str_t */
} oline_t;

enum { OF_TYPE, OF_ID, OF_CWD, OF_PROVIDER, OF_MODELID, OF_CUSTOMTYPE, OF_DATA, OF_MESSAGE,
       OF_TIMESTAMP, OF_N };
static const field_t OC_FIELDS[OF_N] = {F("type"),       F("id"),         F("cwd"),
                                        F("provider"),   F("modelId"),    F("customType"),
                                        F("data"),       F("message"),    F("timestamp")};
enum { OM_ROLE, OM_USAGE, OM_MODEL, OM_PROVIDER, OM_CONTENT, OM_TIMESTAMP, OM_N };
static const field_t OC_MSG_FIELDS[OM_N] = {F("role"),     F("usage"),   F("model"),
                                            F("provider"), F("content"), F("timestamp")};
enum { OU_IN, OU_OUT, OU_CREAD, OU_CWRITE, OU_TOTAL, OU_COST, OU_N };
static const field_t OC_USAGE_FIELDS[OU_N] = {F("input"),       F("output"), F("cacheRead"),
                                              F("cacheWrite"),  F("totalTokens"), F("cost")};
static const field_t OC_COST_FIELDS[1] = {F("total")};
static const field_t OC_DATA_FIELDS[2] = {F("provider"), F("modelId")};
static const field_t OC_BLOCK_FIELDS[2] = {F("type"), F("name")};

static inline void oc_set(oline_t *o, int which, yyjson_val *v) {
    if (v && yyjson_is_str(v)) {
        o->set[which] = 1;
        o->set_to[which] = str_of(v);
    }
}

/* OpenClaw's _turn on a decoded assistant message. `state_model_ok`: whether the file's current
 * model (from model_change / model-snapshot) is a non-empty string. */
static void oc_turn(yyjson_val **f, yyjson_val **mf, int state_model_ok, vec_t *tools,
                    oline_t *o) {
    yyjson_val *usage = mf[OM_USAGE];
    if (!usage || yyjson_is_null(usage)) {
        o->outcome = O_SKIPPED;
        return;
    }
    o->turn_line = 1;
    if (!yyjson_is_obj(usage)) {
        o->outcome = O_MALFORMED;
        return;
    }
    yyjson_val *uf[OU_N];
    get_fields(usage, OC_USAGE_FIELDS, OU_N, uf);
    int r = TOK_OK;
    for (int i = 0; i < 4; i++) {
        int t = token_count(uf[i], &o->tok[i]);
        if (t > r) r = t;
    }
    if (r != TOK_OK) {
        o->outcome = r == TOK_DEFER ? O_DEFER : O_MALFORMED;
        return;
    }
    if (!uf[OU_IN] && !uf[OU_OUT] && !uf[OU_CREAD] && !uf[OU_CWRITE]) {
        int t = token_count(uf[OU_TOTAL], &o->tok[1]); /* only a total: booked as output */
        if (t != TOK_OK) {
            o->outcome = t == TOK_DEFER ? O_DEFER : O_MALFORMED;
            return;
        }
    }
    int64_t tok[CT_NTOK] = {o->tok[0], o->tok[1], o->tok[2], o->tok[3], 0, 0};
    int64_t total = (int64_t)ct_total_tokens(tok); /* (each count below MAX_TOKENS) */
    if (!ct_turn_tokens_sane(total, 0)) {
        o->outcome = O_MALFORMED;
        return;
    }
    if (total == 0) {
        o->outcome = O_SKIPPED;
        return;
    }
    int tsr = iso_to_ms(f[OF_TIMESTAMP], &o->ts);
    if (tsr == TS_DEFER) {
        o->outcome = O_DEFER;
        return;
    }
    if (tsr == TS_NONE) {
        yyjson_val *mts = mf[OM_TIMESTAMP];
        if (mts && yyjson_is_real(mts)) {
            o->outcome = O_DEFER;
            return;
        }
        if (mts && yyjson_is_uint(mts) && yyjson_get_uint(mts) < (uint64_t)CT_MAX_TS_MS &&
            ct_ts_sane((int64_t)yyjson_get_uint(mts))) {
            o->ts = (int64_t)yyjson_get_uint(mts);
            tsr = TS_OK;
        } else if (mts && yyjson_is_sint(mts) && ct_ts_sane(yyjson_get_sint(mts))) {
            o->ts = yyjson_get_sint(mts);
            tsr = TS_OK;
        }
    }
    if (tsr != TS_OK) {
        o->outcome = O_MALFORMED;
        return;
    }
    o->model_from_msg = nonempty_str(mf[OM_MODEL]);
    if (!o->model_from_msg && !state_model_ok) {
        o->outcome = O_MALFORMED;
        return;
    }
    if (o->model_from_msg) o->model = str_of(mf[OM_MODEL]);
    o->provider_from_msg = nonempty_str(mf[OM_PROVIDER]);
    if (o->provider_from_msg) o->provider = str_of(mf[OM_PROVIDER]);
    o->has_id = nonempty_str(f[OF_ID]);
    if (o->has_id) o->id = str_of(f[OF_ID]);
    if (uf[OU_COST] && yyjson_is_obj(uf[OU_COST])) {
        yyjson_val *cf[1];
        get_fields(uf[OU_COST], OC_COST_FIELDS, 1, cf);
        o->has_reported = money(cf[0], &o->reported);
    }
    tools->len = 0;
    yyjson_val *content = mf[OM_CONTENT];
    if (content && yyjson_is_arr(content)) {
        yyjson_arr_iter it;
        yyjson_val *block;
        yyjson_arr_iter_init(content, &it);
        while ((block = yyjson_arr_iter_next(&it))) {
            if (!yyjson_is_obj(block)) continue;
            yyjson_val *bf[2];
            get_fields(block, OC_BLOCK_FIELDS, 2, bf);
            if (str_eq(bf[0], "toolCall") && nonempty_str(bf[1])) {
                str_t *t = vec_push(tools);
                if (!t) {
                    o->outcome = O_DEFER;
                    return;
                }
                *t = str_of(bf[1]);
            }
        }
    }
    o->ntools = tools->len;
    o->outcome = O_RECORD;
}

/* One OpenClaw line. */
static void oc_classify(arena_t *arena, const char *line, size_t len, int state_model_ok,
                        vec_t *tools, oline_t *o) {
    memset(o, 0, sizeof *o);
    size_t a = 0, b = len;
    while (a < b && is_ws((unsigned char)line[a])) a++;
    while (b > a && is_ws((unsigned char)line[b - 1])) b--;
    if (a == b) return;
    yyjson_doc *doc = parse_line(arena, line, len);
    if (!doc) {
        o->outcome = O_DEFER;
        return;
    }
    yyjson_val *root = yyjson_doc_get_root(doc);
    if (!yyjson_is_obj(root)) {
        o->outcome = O_MALFORMED;
        return;
    }
    yyjson_val *f[OF_N];
    get_fields(root, OC_FIELDS, OF_N, f);
    yyjson_val *type = f[OF_TYPE];
    if (str_eq(type, "session")) {
        oc_set(o, ST_SESSION, f[OF_ID]);
        oc_set(o, ST_CWD, f[OF_CWD]);
        return;
    }
    if (str_eq(type, "model_change")) {
        oc_set(o, ST_PROVIDER, f[OF_PROVIDER]);
        oc_set(o, ST_MODEL, f[OF_MODELID]);
        return;
    }
    if (str_eq(type, "custom")) {
        if (str_eq(f[OF_CUSTOMTYPE], "model-snapshot") && f[OF_DATA] && yyjson_is_obj(f[OF_DATA])) {
            yyjson_val *df[2];
            get_fields(f[OF_DATA], OC_DATA_FIELDS, 2, df);
            oc_set(o, ST_PROVIDER, df[0]);
            oc_set(o, ST_MODEL, df[1]);
        }
        return;
    }
    if (!str_eq(type, "message")) return;
    yyjson_val *msg = f[OF_MESSAGE];
    if (!msg || !yyjson_is_obj(msg)) {
        o->outcome = O_MALFORMED;
        return;
    }
    yyjson_val *mf[OM_N];
    get_fields(msg, OC_MSG_FIELDS, OM_N, mf);
    if (!str_eq(mf[OM_ROLE], "assistant")) return;
    oc_turn(f, mf, state_model_ok, tools, o);
}

#endif
