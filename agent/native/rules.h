/* The pure rules of de-duplication and summing, once in C: both extensions include this file,
 * and src/clawtrace/rules.py holds the same rules in Python (tests/test_rules.py runs one table
 * of cases against both). Header-only: static inline functions, no state. */
#ifndef CLAWTRACE_RULES_H
#define CLAWTRACE_RULES_H

#include <stddef.h>
#include <stdint.h>

/* Bounds of what a turn can hold (rules.py says why, and holds the same numbers). */
#define CT_MAX_TURN_TOKENS 100000000LL /* tokens of one turn, and of each kind */
#define CT_MAX_WEB_SEARCHES 10000LL
#define CT_MAX_LOGGED_USD 100000.0
#define CT_MIN_TS_MS 946684800000LL  /* 2000-01-01 */
#define CT_MAX_TS_MS 4102444800000LL /* 2100-01-01 */

static inline int ct_ts_sane(int64_t ms) { return ms >= CT_MIN_TS_MS && ms < CT_MAX_TS_MS; }

static inline int ct_turn_tokens_sane(int64_t total, int64_t web_searches) {
    return total < CT_MAX_TURN_TOKENS && web_searches < CT_MAX_WEB_SEARCHES;
}

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

/* rules.rollup_deltas: what one turn adds to (sign -1: takes from) the 18 sums of its rollup
 * row (store.ROLLUP_METRICS). tok: input, output, cache read, 5m and 1h writes, web searches. */
static inline void ct_rollup_deltas(const int64_t tok[6], int has_cost, int64_t cost,
                                    int cost_is_reported, int has_rep, int64_t rep, int64_t sav,
                                    int64_t wc, int sign, __int128 d[18]) {
    __int128 s = sign;
    __int128 total = (__int128)tok[0] + tok[1] + tok[2] + tok[3] + tok[4];
    int calc_ok = has_cost && !cost_is_reported;
    d[0] = s;
    for (int k = 0; k < 6; k++) d[1 + k] = s * tok[k];
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

#endif
