"""The pure rules of parsing, de-duplication and summing, once each in Python.

The C extensions apply the same rules (native/rules.h); tests/test_rules.py runs one table of
cases against both. Nothing here touches a file or the store.
"""

from __future__ import annotations

from collections.abc import Sequence

# --- bounds: what a turn can hold (native/rules.h holds the same numbers) -----------------------
#
# Each is far beyond real usage and close enough that no sum of values under them, priced at
# the dearest rate the config accepts, leaves a 64-bit integer within a turn: a line above one is
# malformed (counted, skipped, named by `doctor`), not a number that stops every later scan.

# Tokens of one turn, all kinds together (a count each below it too): 100 times the largest
# context window any model has today.
MAX_TURN_TOKENS = 10**8
# Web searches of one turn (providers cap them at a few dozen).
MAX_WEB_SEARCHES = 10**4
# A cost written in a log, in USD, for one turn.
MAX_LOGGED_USD = 10**5
# Prices the config may set, per million tokens (per thousand searches), and provider
# multipliers: with MAX_TURN_TOKENS, a turn costs at most 5.5e18 picodollars (< 2^63).
MAX_PRICE_PER_MILLION = 10_000
MAX_MULTIPLIER = 5
# Timestamps (UTC epoch ms): from 2000-01-01 to before 2100-01-01. Outside, a line is malformed
# (a clock or a writer gone wrong; the calendar arithmetic of reports stays in range).
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000


def ts_sane(ms: int) -> bool:
    return MIN_TS_MS <= ms < MAX_TS_MS


def turn_tokens_sane(total: int, web_searches: int = 0) -> bool:
    """Whether a turn's token total (input, output, cache reads and writes) and web searches
    are within the bounds above."""
    return total < MAX_TURN_TOKENS and web_searches < MAX_WEB_SEARCHES


# --- rollup sums ------------------------------------------------------------------------------

INT64_MAX = 2**63 - 1


def rollup_deltas(
    tokens: Sequence[int],
    cost: int | None,
    cost_is_reported: bool,
    reported: int | None,
    savings: int,
    writes: int,
    sign: int = 1,
) -> list[int]:
    """What one turn adds to (sign -1: takes from) the 18 sums of its rollup row, in the order of
    store.ROLLUP_METRICS. `tokens`: input, output, cache read, 5m and 1h cache writes, web
    searches. Unpriced turns count their tokens instead of a cost, per cost mode: auto (ours,
    else the log's), calculate (ours only), display (the log's only)."""
    total = tokens[0] + tokens[1] + tokens[2] + tokens[3] + tokens[4]
    calc_ok = cost is not None and not cost_is_reported
    return [
        sign,
        sign * tokens[0],
        sign * tokens[1],
        sign * tokens[2],
        sign * tokens[3],
        sign * tokens[4],
        sign * tokens[5],
        sign * cost if cost is not None else 0,
        0 if cost is not None else sign * total,
        0 if cost is not None else sign,
        sign * cost if calc_ok else 0,
        0 if calc_ok else sign * total,
        0 if calc_ok else sign,
        sign * reported if reported is not None else 0,
        0 if reported is not None else sign * total,
        0 if reported is not None else sign,
        sign * savings,
        sign * writes,
    ]


def rollup_split(sums: Sequence[int]) -> list[list[int]]:
    """`sums` as one or more rows whose every value fits a 64-bit integer and whose column sums
    are `sums` (readers always sum a key's rows): what keeps hostile logs, piling many turns at
    the bounds into one 15-minute bucket, from stopping a scan with an overflow."""
    largest = max((abs(v) for v in sums), default=0)
    if largest <= INT64_MAX:
        return [list(sums)]
    parts = -(-largest // INT64_MAX)
    rows = []
    for i in range(parts):
        # Each value divided as evenly as integers allow (the remainder to the first rows),
        # rounding toward zero so that every part keeps the sign of its value.
        rows.append([_share(v, parts, i) for v in sums])
    return rows


def _share(value: int, parts: int, i: int) -> int:
    magnitude, sign = (value, 1) if value >= 0 else (-value, -1)
    base, extra = divmod(magnitude, parts)
    return sign * (base + (1 if i < extra else 0))


def sidechain_replays_of(held: Sequence[tuple[int, bool]]) -> list[int]:
    """formats.md 1.7 on the rows that hold one message, as (row id, is sidechain) in id order:
    the ids of the sidechain rows that replay it, because another row holds it on the main
    thread, or on a sidechain row stored earlier (a smaller id)."""
    if len(held) < 2:
        return []
    first_sidechain = None
    has_main = False
    for row_id, side in held:
        if not side:
            has_main = True
        elif first_sidechain is None or row_id < first_sidechain:
            first_sidechain = row_id
    return [row_id for row_id, side in held if side and (has_main or row_id != first_sidechain)]
