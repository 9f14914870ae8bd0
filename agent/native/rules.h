/* The pure rules of parsing, de-duplication and summing, once in C: both extensions include this
 * file (scanmodule.c for clawtrace._native, ingest.c for clawtrace._ingest), and
 * src/clawtrace/rules.py holds the same rules in Python. tests/test_rules.py runs one table of
 * cases per rule against both, through scanmodule.c's test hook `_rules`. Header-only: static
 * inline functions on plain C values, no state, no Python (rules_py.h reads their inputs from
 * Python objects). */
#ifndef CLAWTRACE_RULES_H
#define CLAWTRACE_RULES_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * Layouts (rules.py's RT_* and R_*) */

/* The slots of a RawTurn tuple (sources.base.RawTurn). */
enum {
    CT_RT_KEY_HASH,
    CT_RT_MSG_HASH,
    CT_RT_DEDUP_KEY,
    CT_RT_AGENT,
    CT_RT_PROJECT,
    CT_RT_SESSION,
    CT_RT_SUBAGENT,
    CT_RT_SIDECHAIN,
    CT_RT_MODEL,
    CT_RT_PROVIDER,
    CT_RT_TS,
    CT_RT_INPUT, /* the six counts, in the order of ct_row_t.tok */
    CT_RT_OUTPUT,
    CT_RT_CACHE_READ,
    CT_RT_CACHE_WRITE_5M,
    CT_RT_CACHE_WRITE_1H,
    CT_RT_WEB_SEARCH,
    CT_RT_SPEED,
    CT_RT_REPORTED_USD,
    CT_RT_GIT_BRANCH,
    CT_RT_TOOLS,
    CT_RT_LEN
};

/* The columns of a `turns` row (rules.TURN_COLUMNS), as bound and read. */
enum {
    CT_COL_KEY_HASH,
    CT_COL_MSG_HASH,
    CT_COL_FILE,
    CT_COL_CTX,
    CT_COL_MODEL,
    CT_COL_TS,
    CT_COL_INPUT, /* the six counts */
    CT_COL_OUTPUT,
    CT_COL_CACHE_READ,
    CT_COL_CACHE_WRITE_5M,
    CT_COL_CACHE_WRITE_1H,
    CT_COL_WEB_SEARCH,
    CT_COL_COST,
    CT_COL_SRC,
    CT_COL_REP,
    CT_COL_SAV,
    CT_COL_WC,
    CT_COL_TOOLSET,
    CT_NCOLS
};

/* rules.TURN_COLUMNS in SQL, in CT_COL order: as a column list, and as the SET list of an
 * UPDATE (its CT_NCOLS parameters). */
#define CT_TURN_COLUMNS_SQL                                                                   \
    "key_hash, msg_hash, file_id, context_id, model_id, ts, input_tokens, output_tokens, "   \
    "cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, " \
    "cost_pico, price_source_id, reported_pico, cache_savings_pico, cache_write_pico, "      \
    "toolset_id"
#define CT_TURN_COLUMNS_SET_SQL                                                                \
    "key_hash = ?, msg_hash = ?, file_id = ?, context_id = ?, model_id = ?, ts = ?, "         \
    "input_tokens = ?, output_tokens = ?, cache_read_tokens = ?, cache_write_5m_tokens = ?, " \
    "cache_write_1h_tokens = ?, web_search_requests = ?, cost_pico = ?, "                     \
    "price_source_id = ?, reported_pico = ?, cache_savings_pico = ?, cache_write_pico = ?, "  \
    "toolset_id = ?"

#define CT_NTOK 6 /* input, output, cache read, 5m writes, 1h writes, web searches */

/* A `turns` row (the has_* flags: the column is not NULL). */
typedef struct {
    int64_t key_hash, msg_hash, file_id, ctx, model, ts, tok[CT_NTOK], cost, src, rep, sav, wc,
        toolset;
    int has_msg, has_file, has_cost, has_rep;
} ct_row_t;

#define CT_N_METRICS 18 /* store.ROLLUP_METRICS */
#define CT_BUCKET_MS 900000LL /* store.BUCKET_MS: 15 minutes */
#define CT_DAY_MS 86400000LL
#define CT_PICO 1e12 /* rules.PICO */

/* Python's floor division (bucket and day numbers of times before 1970 too). */
static inline int64_t ct_floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b) && ((a < 0) != (b < 0))) q -= 1;
    return q;
}

/* ---------------------------------------------------------------------------------------------
 * Bounds of what a turn can hold (rules.py says why, and holds the same numbers). */

#define CT_MAX_TURN_TOKENS 100000000LL /* tokens of one turn, and of each kind */
#define CT_MAX_WEB_SEARCHES 10000LL
#define CT_MAX_LOGGED_USD 100000.0
#define CT_MIN_TS_MS 946684800000LL  /* 2000-01-01 */
#define CT_MAX_TS_MS 4102444800000LL /* 2100-01-01 */

static inline int ct_ts_sane(int64_t ms) { return ms >= CT_MIN_TS_MS && ms < CT_MAX_TS_MS; }

static inline int ct_turn_tokens_sane(int64_t total, int64_t web_searches) {
    return total < CT_MAX_TURN_TOKENS && web_searches < CT_MAX_WEB_SEARCHES;
}

/* ---------------------------------------------------------------------------------------------
 * Parsing: tokens and the log's own cost */

/* rules.total_tokens: a turn's tokens, all kinds together (not the web searches). In 128 bits,
 * like Python's ints: a row read back from a store is not bounded by the parser. */
static inline __int128 ct_total_tokens(const int64_t tok[CT_NTOK]) {
    return (__int128)tok[0] + tok[1] + tok[2] + tok[3] + tok[4];
}

/* rules.total_input: what a rate card's tier is chosen by (all input, cache parts included). */
static inline __int128 ct_total_input(const int64_t tok[CT_NTOK]) {
    return (__int128)tok[0] + tok[2] + tok[3] + tok[4];
}

/* rules.reported_pico: a cost a log writes (USD, bounded by CT_MAX_LOGGED_USD at the parser)
 * in picodollars, rounded half to even as Python's round() (the default rounding mode). */
static inline int64_t ct_reported_pico(double usd) { return (int64_t)nearbyint(usd * CT_PICO); }

/* ---------------------------------------------------------------------------------------------
 * De-duplication */

/* rules.keep, the winner: a streamed piece replaces the one kept for its key when its total is
 * as large or larger (a tie goes to the later piece). */
static inline int ct_keep_wins(const int64_t piece[CT_NTOK], const int64_t kept[CT_NTOK]) {
    return ct_total_tokens(piece) >= ct_total_tokens(kept);
}

/* rules.keep, the tools: a response's tool calls by tool_use id, as a list of links from
 * `*head` to `*tail` (-1: empty) in `links`. Putting (key, name): a known id keeps its place and
 * takes the later name; a new one goes last, in links[fresh], which the caller has made room for.
 * Returns 1 when links[fresh] was used. */
typedef struct {
    int32_t key, name, next;
} ct_tool_link;

static inline int ct_tools_put(ct_tool_link *links, int32_t *head, int32_t *tail, int32_t fresh,
                               int32_t key, int32_t name) {
    for (int32_t t = *head; t >= 0; t = links[t].next) {
        if (links[t].key == key) {
            links[t].name = name;
            return 0;
        }
    }
    links[fresh].key = key;
    links[fresh].name = name;
    links[fresh].next = -1;
    if (*tail >= 0) links[*tail].next = fresh;
    else *head = fresh;
    *tail = fresh;
    return 1;
}

/* rules.replaces: whether `new_` wins over `old`, two rows of one key (formats.md 1.6 across
 * files and scans): the larger total; on a tie the later turn, then the later file (none counts
 * as 0), then the newcomer. */
static inline int ct_replaces(const ct_row_t *new_, const ct_row_t *old) {
    __int128 a = ct_total_tokens(new_->tok), b = ct_total_tokens(old->tok);
    if (a != b) return a > b;
    if (new_->ts != old->ts) return new_->ts > old->ts;
    return (new_->has_file ? new_->file_id : 0) >= (old->has_file ? old->file_id : 0);
}

/* rules.tools_merge: the tool names of a key's row merged with another row's (ids of names):
 * the old row's in order, then the new row's that the old row has not (a name the new row
 * repeats, each time); at most `cap` into `out`. Returns how many. */
static inline size_t ct_tools_merge(const int32_t *old, size_t no, const int32_t *new_, size_t nn,
                                    int32_t *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < no && n < cap; i++) out[n++] = old[i];
    for (size_t i = 0; i < nn && n < cap; i++) {
        int seen = 0;
        for (size_t j = 0; j < no && !seen; j++) seen = old[j] == new_[i];
        if (!seen) out[n++] = new_[i];
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Pricing */

#define CT_MAX_TIERS 8

/* A rate card for one model and UTC day (scan.card_for): nobody prices the model, integer rates
 * (picodollars per input, output, cache-read, 5m and 1h cache-write token and per web search,
 * per tier), or prices Python must apply turn by turn. */
enum { CT_CARD_NONE, CT_CARD_RATES, CT_CARD_ASK };

typedef struct {
    int kind;
    int64_t src; /* the price source's id (CT_CARD_RATES) */
    int ntiers;  /* 1..CT_MAX_TIERS, by threshold, the first 0 */
    int64_t thresholds[CT_MAX_TIERS];
    int64_t rates[CT_MAX_TIERS][CT_NTOK];
} ct_card_t;

/* rules.card_cost for an integer card: (cost, cache savings, cache write cost) of `tok`; the
 * last tier whose threshold is below the total input applies. Returns 1 when done, 0 when a
 * value does not fit 64 bits (then Python prices the turn, which leaves it unpriced). */
static inline int ct_card_cost(const ct_card_t *c, const int64_t tok[CT_NTOK], int64_t *cost,
                               int64_t *sav, int64_t *wc) {
    int k = 0;
    if (c->ntiers > 1) {
        __int128 above = ct_total_input(tok);
        for (int t = c->ntiers - 1; t >= 0; t--) {
            if (above > c->thresholds[t]) {
                k = t;
                break;
            }
        }
    }
    const int64_t *r = c->rates[k];
    __int128 writes = (__int128)tok[3] * r[3] + (__int128)tok[4] * r[4];
    __int128 total = (__int128)tok[0] * r[0] + (__int128)tok[1] * r[1] + (__int128)tok[2] * r[2] +
                     writes + (__int128)tok[5] * r[5];
    __int128 savings = (__int128)tok[2] * ((__int128)r[0] - r[2]);
    if (total > INT64_MAX || total < INT64_MIN || writes > INT64_MAX || writes < INT64_MIN ||
        savings > INT64_MAX || savings < INT64_MIN)
        return 0;
    *cost = (int64_t)total;
    *sav = (int64_t)savings;
    *wc = (int64_t)writes;
    return 1;
}

/* The priced columns of a row (scan._Ingest._price, after its card): by the card's rates, or,
 * for a model nobody prices, the log's own cost when it gives one other than 0 (source
 * `reported_id`), else unpriced (`none_id`) (rules.uncarded_cost). Reads row->tok, has_rep,
 * rep. Returns 1 when done, 0 when Python must price the turn (CT_CARD_ASK, or past 64 bits). */
static inline int ct_row_price(ct_row_t *row, const ct_card_t *card, int64_t reported_id,
                               int64_t none_id) {
    if (card->kind == CT_CARD_RATES && ct_card_cost(card, row->tok, &row->cost, &row->sav, &row->wc)) {
        row->has_cost = 1;
        row->src = card->src;
        return 1;
    }
    if (card->kind != CT_CARD_NONE) return 0;
    int has = row->has_rep && row->rep != 0;
    row->has_cost = has;
    row->cost = has ? row->rep : 0;
    row->src = has ? reported_id : none_id;
    row->sav = row->wc = 0;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Sums: rollups (store.Rollups.add) */

/* rules.rollup_deltas: what one turn adds to (sign -1: takes from) the 18 sums of its rollup
 * row (store.ROLLUP_METRICS). tok: input, output, cache read, 5m and 1h writes, web searches. */
static inline void ct_rollup_deltas(const int64_t tok[CT_NTOK], int has_cost, int64_t cost,
                                    int cost_is_reported, int has_rep, int64_t rep, int64_t sav,
                                    int64_t wc, int sign, __int128 d[CT_N_METRICS]) {
    __int128 s = sign;
    __int128 total = ct_total_tokens(tok);
    int calc_ok = has_cost && !cost_is_reported;
    d[0] = s;
    for (int k = 0; k < CT_NTOK; k++) d[1 + k] = s * tok[k];
    d[7] = has_cost ? s * cost : 0;
    d[8] = has_cost ? 0 : s * total;
    d[9] = has_cost ? 0 : s;
    d[10] = calc_ok ? s * cost : 0;
    d[11] = calc_ok ? 0 : s * total;
    d[12] = calc_ok ? 0 : s;
    d[13] = has_rep ? s * rep : 0;
    d[14] = has_rep ? 0 : s * total;
    d[15] = has_rep ? 0 : s;
    d[16] = s * sav;
    d[17] = s * wc;
}

/* ct_rollup_deltas of a row, whose cost is the log's when its source is `reported_id`. */
static inline void ct_row_deltas(const ct_row_t *r, int64_t reported_id, int sign,
                                 __int128 d[CT_N_METRICS]) {
    ct_rollup_deltas(r->tok, r->has_cost, r->cost, r->src == reported_id, r->has_rep, r->rep,
                     r->sav, r->wc, sign, d);
}

/* The first and last turn times of a rollup row, with a turn at `ts` added (*has 0: none yet). */
static inline void ct_span_add(int *has, int64_t *first, int64_t *last, int64_t ts) {
    if (!*has || ts < *first) *first = ts;
    if (!*has || ts > *last) *last = ts;
    *has = 1;
}

/* rules.tool_shares: each of a turn's `n` tool calls' share of its cost in the auto, calculate
 * and display cost modes, as SQLite's rebuild computes it (float(cost) / n). */
typedef struct {
    double auto_, calc, disp;
} ct_shares_t;

static inline ct_shares_t ct_tool_shares(const ct_row_t *r, int64_t reported_id, size_t n) {
    ct_shares_t s;
    int calc_ok = r->has_cost && r->src != reported_id;
    s.auto_ = (r->has_cost ? (double)r->cost : 0.0) / (double)n;
    s.calc = calc_ok ? (double)r->cost / (double)n : 0.0;
    s.disp = (r->has_rep ? (double)r->rep : 0.0) / (double)n;
    return s;
}

/* rules.tool_calls, for the name at position k of a turn's `n` tool names: how many times the
 * turn calls it (its repeats are calls too), or 0 when an earlier position holds the same name
 * (counted there). `same(ctx, i, j)`: whether names i and j are one. */
static inline int64_t ct_tool_calls(size_t n, size_t k, int (*same)(const void *, size_t, size_t),
                                    const void *ctx) {
    for (size_t j = 0; j < k; j++)
        if (same(ctx, j, k)) return 0;
    int64_t calls = 0;
    for (size_t j = k; j < n; j++) calls += same(ctx, j, k) != 0;
    return calls;
}

/* rules.rollup_split: in how many rows the sums `m` go so that every value fits 64 bits ... */
static inline int64_t ct_rollup_parts(const __int128 *m, int n) {
    __int128 largest = 0;
    for (int k = 0; k < n; k++) {
        __int128 a = m[k] < 0 ? -m[k] : m[k];
        if (a > largest) largest = a;
    }
    if (largest <= INT64_MAX) return 1;
    return (int64_t)((largest + INT64_MAX - 1) / INT64_MAX);
}

/* ... and what row `i` of `parts` holds of `value` (rules._share). */
static inline int64_t ct_rollup_share(__int128 value, int64_t parts, int64_t i) {
    int negative = value < 0;
    __int128 magnitude = negative ? -value : value;
    __int128 share = magnitude / parts + (i < (int64_t)(magnitude % parts) ? 1 : 0);
    return (int64_t)(negative ? -share : share);
}

/* ---------------------------------------------------------------------------------------------
 * Sidechain replays */

/* formats.md 1.7 on the `n` rows that hold one message (ids, and whether each is a sidechain
 * row): marks in `replay` the sidechain rows that replay it, because another row holds it on
 * the main thread or on a sidechain row stored earlier (a smaller id). Returns how many.
 * (rules.sidechain_replays_of) */
static inline size_t ct_sidechain_replays(const int64_t *ids, const int *sidechain, size_t n,
                                          int *replay) {
    int has_main = 0, any_side = 0;
    int64_t first_side = 0;
    for (size_t i = 0; i < n; i++) {
        replay[i] = 0;
        if (!sidechain[i]) {
            has_main = 1;
        } else if (!any_side || ids[i] < first_side) {
            first_side = ids[i];
            any_side = 1;
        }
    }
    size_t count = 0;
    if (n < 2) return 0;
    for (size_t i = 0; i < n; i++) {
        if (sidechain[i] && (has_main || ids[i] != first_side)) {
            replay[i] = 1;
            count++;
        }
    }
    return count;
}

#endif
