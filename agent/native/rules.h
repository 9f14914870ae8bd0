/* The pure rules of de-duplication and summing, once in C: both extensions include this file,
 * and src/clawtrace/rules.py holds the same rules in Python (tests/test_rules.py runs one table
 * of cases against both). Header-only: static inline functions, no state. */
#ifndef CLAWTRACE_RULES_H
#define CLAWTRACE_RULES_H

#include <stddef.h>
#include <stdint.h>

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
