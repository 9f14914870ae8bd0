"""The pure rules of parsing, de-duplication and summing, once each in Python.

The C extensions apply the same rules (native/rules.h, one copy both extensions include);
tests/test_rules.py runs one table of cases per rule against both. Nothing here touches a
file or the store. The layouts come first: a raw turn and a `turns` row are tuples read by
position in the hot paths, so each position has a name here (and in rules.h).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# --- layouts -----------------------------------------------------------------------------------

# A raw turn (sources.base.RawTurn), before pricing: a tuple, because a big scan makes millions.
# RT_MSG_HASH is the key hash again for sources without message ids; RT_TOOLS is a dict of
# tool_use id -> name while Claude Code de-duplicates a chunk (`keep`), then a tuple of names.
(
    RT_KEY_HASH,
    RT_MSG_HASH,
    RT_DEDUP_KEY,
    RT_AGENT,
    RT_PROJECT,
    RT_SESSION,
    RT_SUBAGENT,
    RT_SIDECHAIN,
    RT_MODEL,
    RT_PROVIDER,
    RT_TS,
    RT_INPUT,
    RT_OUTPUT,
    RT_CACHE_READ,
    RT_CACHE_WRITE_5M,
    RT_CACHE_WRITE_1H,
    RT_WEB_SEARCH,
    RT_SPEED,
    RT_REPORTED_USD,
    RT_GIT_BRANCH,
    RT_TOOLS,
) = range(21)
RAW_TURN_LEN = 21

# Columns of `turns` the scanner writes, in the order of its row tuples (and of the C writer's
# rows: rules.h ct_row_t).
TURN_COLUMNS: tuple[str, ...] = (
    "key_hash",
    "msg_hash",
    "file_id",
    "context_id",
    "model_id",
    "ts",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "web_search_requests",
    "cost_pico",
    "price_source_id",
    "reported_pico",
    "cache_savings_pico",
    "cache_write_pico",
    "toolset_id",
)
(
    R_KEY,
    R_MSG,
    R_FILE,
    R_CTX,
    R_MODEL,
    R_TS,
    R_IN,
    R_OUT,
    R_CREAD,
    R_W5,
    R_W1,
    R_WEB,
    R_COST,
    R_SRC,
    R_REP,
    R_SAV,
    R_WC,
    R_TOOLS,
) = range(len(TURN_COLUMNS))

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


# --- parsing: tokens and the log's own cost ----------------------------------------------------

PICO = 10**12  # picodollars in a dollar: every stored cost is a whole number of them


def total_tokens(
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write_5m: int = 0,
    cache_write_1h: int = 0,
) -> int:
    """A turn's tokens, all kinds together (web searches are not tokens). Bounded by
    MAX_TURN_TOKENS at the parser; sorted by in `keep` and `replaces`; counted as unpriced
    tokens by the rollups."""
    return input_tokens + output_tokens + cache_read + cache_write_5m + cache_write_1h


# `total_tokens` of a `turns` row in SQL.
TOTAL_TOKENS_SQL = " + ".join(TURN_COLUMNS[R_IN : R_W1 + 1])


def total_input(counts: Sequence[int]) -> int:
    """What a rate card's tier is chosen by: all the input, cache parts included (genai-prices
    semantics). `counts`: input, output, cache read, 5m and 1h cache writes, web searches."""
    return counts[0] + counts[2] + counts[3] + counts[4]


def reported_pico(usd: float | None) -> int | None:
    """A cost a log writes (in USD, bounded by MAX_LOGGED_USD at the parser) in picodollars,
    rounded half to even."""
    return None if usd is None else round(usd * PICO)


# --- de-duplication ----------------------------------------------------------------------------


def keep(best: dict[str, list[Any]], record: tuple[Any, ...]) -> None:
    """formats.md 1.6 within a chunk (ClaudeCode's streamed pieces of one response, under one
    key): the largest total wins, a tie goes to the later piece, and the response's tool calls
    are the union of every piece's by tool_use id (a known id keeps its place and takes the
    later name; a new one goes last). `best`: key -> [record kept, {tool_use id: name}]."""
    key = record[RT_DEDUP_KEY]
    prev = best.get(key)
    if prev is None:
        best[key] = [record, dict(record[RT_TOOLS])]
        return
    prev[1].update(record[RT_TOOLS])
    kept = prev[0]
    if total_tokens(
        record[RT_INPUT],
        record[RT_OUTPUT],
        record[RT_CACHE_READ],
        record[RT_CACHE_WRITE_5M],
        record[RT_CACHE_WRITE_1H],
    ) >= total_tokens(
        kept[RT_INPUT],
        kept[RT_OUTPUT],
        kept[RT_CACHE_READ],
        kept[RT_CACHE_WRITE_5M],
        kept[RT_CACHE_WRITE_1H],
    ):
        prev[0] = record


def replaces(new: Sequence[Any], old: Sequence[Any]) -> bool:
    """formats.md 1.6 across files and scans, on two `turns` rows of one key: the larger total
    wins; on a tie the later turn, then the later file (ids follow discovery order; none counts
    as 0), then the newcomer. Deterministic whatever order parallel workers write in."""
    a = total_tokens(new[R_IN], new[R_OUT], new[R_CREAD], new[R_W5], new[R_W1])
    b = total_tokens(old[R_IN], old[R_OUT], old[R_CREAD], old[R_W5], old[R_W1])
    if a != b:
        return a > b
    if new[R_TS] != old[R_TS]:
        return new[R_TS] > old[R_TS]
    return (new[R_FILE] or 0) >= (old[R_FILE] or 0)


def tools_merge(old: tuple[str, ...], new: Sequence[str]) -> tuple[str, ...]:
    """The tool calls of a key's row merged with another row's (streamed pieces each carry some
    of a response's tool_use blocks): the old row's names in order, then the new row's names
    that the old row has not (a name the new row repeats, each time)."""
    return old + tuple(t for t in new if t not in old)


# --- pricing -----------------------------------------------------------------------------------


def card_cost(tiers: Sequence[tuple[int, Sequence[Any]]], counts: Sequence[int]) -> tuple[Any, ...]:
    """A rate card's cost of one turn: (total, cache savings, cache write cost), exact (the
    caller rounds fractional rates and refuses what does not fit 64 bits).

    `tiers`: ((threshold, rates), ...) by threshold, the first 0; the last tier whose threshold
    is below the turn's total input applies to every token (genai-prices uses `total > start`).
    `rates`: per input, output and cache-read token, per 5m and 1h cache-write token and per
    web search, in picodollars (ints, or Decimals for fractional prices). `counts`: the six in
    the same order. Savings: what the cache reads would have cost as input."""
    i, o, cr, w5, w1, ws = counts
    r = tiers[0][1]
    if len(tiers) > 1:
        above = total_input(counts)
        for threshold, tier_rates in reversed(tiers):
            if above > threshold:
                r = tier_rates
                break
    writes = w5 * r[3] + w1 * r[4]
    total = i * r[0] + o * r[1] + cr * r[2] + w5 * r[3] + w1 * r[4] + ws * r[5]
    return total, cr * (r[0] - r[2]), writes


def uncarded_cost(reported: int | None) -> tuple[int | None, str]:
    """(cost, price source) of a turn no rate card prices: the log's own cost when it gives one
    other than 0, else unpriced."""
    if reported:
        return reported, "reported"
    return None, "none"


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
    total = total_tokens(tokens[0], tokens[1], tokens[2], tokens[3], tokens[4])
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


def tool_calls(tools: Sequence[str]) -> dict[str, int]:
    """A turn's calls per tool name, in first-call order (a name called twice counts twice)."""
    calls: dict[str, int] = {}
    for name in tools:
        calls[name] = calls.get(name, 0) + 1
    return calls


def tool_shares(
    cost: int | None, calc_ok: bool, reported: int | None, n: int
) -> tuple[float, float, float]:
    """Each of a turn's `n` tool calls' share of its cost (auto, calculate and display cost
    modes; `calc_ok`: the cost is ours, not the log's), as floats: float(cost) / n, as the C
    writer and SQLite compute it (exact up to 2^53 picodollars)."""
    auto = float(cost or 0) / n
    return auto, (auto if calc_ok else 0.0), float(reported or 0) / n


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
