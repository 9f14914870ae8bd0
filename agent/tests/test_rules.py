"""Each pure rule of parsing, de-duplication and summing, one table of cases each, run against
the Python rule (clawtrace.rules) and the C rule (native/rules.h, which both extensions compile).

The C half reaches rules.h through `clawtrace._native._rules`, a test hook that applies one rule
to plain values; without the extension (CLAWTRACE_NATIVE=0, or not built) it skips, unless
CLAWTRACE_REQUIRE_NATIVE=1. In the C half tool names and keys are small ints (the extensions
hold them as ids of pooled strings); the adapters below translate.
"""

from __future__ import annotations

from typing import Any

import pytest
from clawtrace import rules, store
from clawtrace.sources import base

from .conftest import needs_native

NATIVE = base.NATIVE
INT64_MAX = 2**63 - 1
MAX_TOK = rules.MAX_TURN_TOKENS - 1  # the largest count the parser accepts
REPORTED_ID, NONE_ID, OUR_SOURCE = 99, 98, 7


@pytest.fixture(params=["python", "c"])
def lang(request: pytest.FixtureRequest) -> str:
    if request.param == "c":
        needs_native(NATIVE)
    return request.param


def c_rule(name: str, *args: Any) -> Any:
    return NATIVE._rules(name, *args)


def turn_row(
    tok: tuple[int, ...] = (0,) * 6,
    ts: int = 1_700_000_000_000,
    file: int | None = 1,
    cost: int | None = None,
    src: int = OUR_SOURCE,
    rep: int | None = None,
    sav: int = 0,
    wc: int = 0,
) -> tuple[Any, ...]:
    """A `turns` row (rules.TURN_COLUMNS) with what a rule reads; the rest fixed."""
    return (11, 12, file, 13, 14, ts, *tok, cost, src, rep, sav, wc, 0)


def tok6(*counts: int) -> tuple[int, ...]:
    return (*counts, *(0,) * (6 - len(counts)))


# --- layouts ---------------------------------------------------------------------------------


def test_layouts_name_every_slot_once() -> None:
    slots = [v for k, v in vars(rules).items() if k.startswith("RT_")]
    assert sorted(slots) == list(range(rules.RAW_TURN_LEN))
    columns = [v for k, v in vars(rules).items() if k.startswith("R_")]
    assert sorted(columns) == list(range(len(rules.TURN_COLUMNS)))
    assert rules.TURN_COLUMNS[rules.R_IN : rules.R_WEB + 1] == store.ROLLUP_METRICS[1:7]
    assert rules.TOTAL_TOKENS_SQL == (
        "input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens"
        " + cache_write_1h_tokens"
    )


def test_c_layouts_and_bounds_are_rules_py() -> None:
    needs_native(NATIVE)
    python = {
        **{k: v for k, v in vars(rules).items() if k.startswith(("RT_", "R_", "MAX_", "MIN_"))},
        "RAW_TURN_LEN": rules.RAW_TURN_LEN,
        "N_COLUMNS": len(rules.TURN_COLUMNS),
        "N_METRICS": store.N_METRICS,
        "BUCKET_MS": store.BUCKET_MS,
        "DAY_MS": 86_400_000,
        "PICO": rules.PICO,
    }
    c = c_rule("layout")
    # Every C constant is the Python one (the config's price bounds have no C counterpart).
    assert {k: python[k] for k in c} == c
    assert set(python) - set(c) == {"MAX_PRICE_PER_MILLION", "MAX_MULTIPLIER"}
    columns, assignments = c_rule("columns_sql")
    assert columns == ", ".join(rules.TURN_COLUMNS)
    assert assignments == ", ".join(f"{c} = ?" for c in rules.TURN_COLUMNS)


# --- total tokens, bounds, the log's cost --------------------------------------------------

TOTAL_TOKENS = [
    ("zeros", tok6(), 0),
    ("five kinds", (1, 2, 3, 4, 5, 6), 15),
    ("web searches are not tokens", tok6(0, 0, 0, 0, 0, 7), 0),
    ("1h writes count", tok6(0, 0, 0, 0, 9), 9),
    ("each at the bound", (MAX_TOK,) * 5 + (rules.MAX_WEB_SEARCHES - 1,), 5 * MAX_TOK),
    ("past 64 bits (a row read back, not parsed)", (INT64_MAX,) * 5 + (0,), 5 * INT64_MAX),
]


@pytest.mark.parametrize(
    ("tok", "expected"), [c[1:] for c in TOTAL_TOKENS], ids=[c[0] for c in TOTAL_TOKENS]
)
def test_total_tokens(lang: str, tok: tuple[int, ...], expected: int) -> None:
    got = rules.total_tokens(*tok[:5]) if lang == "python" else c_rule("total_tokens", tok)
    assert got == expected


TOTAL_INPUT = [
    ("zeros", tok6(), 0),
    ("input, cache read and both writes; not output or searches", (1, 2, 3, 4, 5, 6), 13),
    ("output alone", tok6(0, 50), 0),
    ("at the bound", (MAX_TOK,) * 5 + (0,), 4 * MAX_TOK),
]


@pytest.mark.parametrize(
    ("tok", "expected"), [c[1:] for c in TOTAL_INPUT], ids=[c[0] for c in TOTAL_INPUT]
)
def test_total_input(lang: str, tok: tuple[int, ...], expected: int) -> None:
    got = rules.total_input(tok) if lang == "python" else c_rule("total_input", tok)
    assert got == expected


TOKENS_SANE = [
    ("zeros", 0, 0, True),
    ("just below both bounds", rules.MAX_TURN_TOKENS - 1, rules.MAX_WEB_SEARCHES - 1, True),
    ("tokens at the bound", rules.MAX_TURN_TOKENS, 0, False),
    ("searches at the bound", 0, rules.MAX_WEB_SEARCHES, False),
    ("far past", 10**12, 0, False),
]


@pytest.mark.parametrize(
    ("total", "web", "expected"), [c[1:] for c in TOKENS_SANE], ids=[c[0] for c in TOKENS_SANE]
)
def test_turn_tokens_sane(lang: str, total: int, web: int, expected: bool) -> None:
    if lang == "python":
        assert rules.turn_tokens_sane(total, web) is expected
    else:
        assert c_rule("turn_tokens_sane", total, web) is expected


TS_SANE = [
    ("1970", 0, False),
    ("a millisecond before 2000", rules.MIN_TS_MS - 1, False),
    ("2000-01-01", rules.MIN_TS_MS, True),
    ("2023", 1_700_000_000_000, True),
    ("the last millisecond of 2099", rules.MAX_TS_MS - 1, True),
    ("2100-01-01", rules.MAX_TS_MS, False),
    ("before 1970", -1, False),
]


@pytest.mark.parametrize(("ms", "expected"), [c[1:] for c in TS_SANE], ids=[c[0] for c in TS_SANE])
def test_ts_sane(lang: str, ms: int, expected: bool) -> None:
    got = rules.ts_sane(ms) if lang == "python" else c_rule("ts_sane", ms)
    assert got is expected


REPORTED_PICO = [
    ("zero", 0.0, 0),
    ("a dollar", 1.0, 10**12),
    ("a tenth", 0.1, 10**11),
    ("the bound", float(rules.MAX_LOGGED_USD), 10**17),
    ("half a picodollar rounds to even: 2", 2.5e-12, 2),
    ("half a picodollar rounds to even: 4", 3.5e-12, 4),
    ("below half a picodollar", 4e-13, 0),
]


@pytest.mark.parametrize(
    ("usd", "expected"), [c[1:] for c in REPORTED_PICO], ids=[c[0] for c in REPORTED_PICO]
)
def test_reported_pico(lang: str, usd: float, expected: int) -> None:
    got = rules.reported_pico(usd) if lang == "python" else c_rule("reported_pico", usd)
    assert got == expected


def test_reported_pico_of_nothing_is_nothing() -> None:
    assert rules.reported_pico(None) is None


# --- keep: streamed pieces of one response ------------------------------------------------------

# A piece: (key, token counts, [(tool_use id, name), ...]). Expected: per key, in first-piece
# order, (key, index of the piece kept, [(tool_use id, name), ...]).
KEEP = [
    ("one piece", [(1, tok6(5), [])], [(1, 0, [])]),
    ("a larger later piece wins", [(1, tok6(5), []), (1, tok6(5, 1), [])], [(1, 1, [])]),
    ("a smaller later piece loses", [(1, tok6(5, 1), []), (1, tok6(5), [])], [(1, 0, [])]),
    ("a tie goes to the later piece", [(1, tok6(3, 2), []), (1, tok6(2, 3), [])], [(1, 1, [])]),
    ("zeros tie: the later", [(1, tok6(), []), (1, tok6(), [])], [(1, 1, [])]),
    (
        "web searches do not count: a tie",
        [(1, tok6(1, 0, 0, 0, 0, 9), []), (1, tok6(1), [])],
        [(1, 1, [])],
    ),
    (
        "cache writes count",
        [(1, tok6(0, 0, 0, 0, 2), []), (1, tok6(1), [])],
        [(1, 0, [])],
    ),
    (
        "near the bounds",
        [(1, (MAX_TOK,) * 5 + (0,), []), (1, (MAX_TOK,) * 4 + (MAX_TOK - 1, 0), [])],
        [(1, 0, [])],
    ),
    (
        "tools: the union of every piece's, by id, the kept piece's or not",
        [(1, tok6(9), [(1, 10)]), (1, tok6(1), [(2, 20)])],
        [(1, 0, [(1, 10), (2, 20)])],
    ),
    (
        "tools: a known id keeps its place and takes the later name",
        [(1, tok6(1), [(1, 10), (2, 20)]), (1, tok6(1), [(1, 11)])],
        [(1, 1, [(1, 11), (2, 20)])],
    ),
    (
        "tools: the same call in two pieces, once",
        [(1, tok6(1), [(1, 10)]), (1, tok6(2), [(1, 10)])],
        [(1, 1, [(1, 10)])],
    ),
    (
        "tools: a repeated id within one piece, once, the later name",
        [(1, tok6(1), [(1, 10), (1, 12)])],
        [(1, 0, [(1, 12)])],
    ),
    ("tools: none in any piece", [(1, tok6(1), []), (1, tok6(2), [])], [(1, 1, [])]),
    (
        "keys apart, in the order first met",
        [(2, tok6(1), [(1, 10)]), (1, tok6(4), []), (2, tok6(3), [(2, 20)]), (1, tok6(2), [])],
        [(2, 2, [(1, 10), (2, 20)]), (1, 1, [])],
    ),
]


def keep_python(pieces: list[tuple[int, tuple[int, ...], list[tuple[int, int]]]]) -> list[Any]:
    best: dict[str, list[Any]] = {}
    records = []
    for key, tok, tools in pieces:
        record: list[Any] = [None] * rules.RAW_TURN_LEN
        record[rules.RT_DEDUP_KEY] = f"k{key}"
        record[rules.RT_INPUT : rules.RT_WEB_SEARCH + 1] = tok
        record[rules.RT_TOOLS] = {f"t{i}": f"n{name}" for i, name in tools}
        records.append(tuple(record))
        rules.keep(best, records[-1])
    return [
        (
            int(key[1:]),
            next(i for i, r in enumerate(records) if r is kept),
            [(int(i[1:]), int(name[1:])) for i, name in tools.items()],
        )
        for key, (kept, tools) in best.items()
    ]


@pytest.mark.parametrize(("pieces", "expected"), [c[1:] for c in KEEP], ids=[c[0] for c in KEEP])
def test_keep(lang: str, pieces: list[Any], expected: list[Any]) -> None:
    got = keep_python(pieces) if lang == "python" else c_rule("keep", pieces)
    assert got == expected


# --- replaces: which of two rows of one key stays ------------------------------------------

REPLACES = [
    ("a larger total wins", turn_row(tok6(6)), turn_row(tok6(5)), True),
    ("a smaller total loses", turn_row(tok6(4)), turn_row(tok6(5)), False),
    ("zeros tie, the newcomer", turn_row(), turn_row(), True),
    ("a tie: the later turn", turn_row(tok6(5), ts=2), turn_row(tok6(0, 5), ts=1), True),
    ("a tie: not the earlier turn", turn_row(tok6(5), ts=1), turn_row(tok6(5), ts=2), False),
    ("a tie in time: the later file", turn_row(file=3), turn_row(file=2), True),
    ("a tie in time: not the earlier file", turn_row(file=2), turn_row(file=3), False),
    ("no file counts as 0: a tie, the newcomer", turn_row(file=None), turn_row(file=0), True),
    ("no file loses to a file", turn_row(file=None), turn_row(file=4), False),
    ("a file beats none", turn_row(file=4), turn_row(file=None), True),
    (
        "web searches do not count",
        turn_row(tok6(1, 0, 0, 0, 0, 50), ts=1),
        turn_row(tok6(1), ts=2),
        False,
    ),
    (
        "1h cache writes count",
        turn_row(tok6(0, 0, 0, 0, 1), ts=1),
        turn_row(tok6(), ts=2),
        True,
    ),
    ("at the bounds", turn_row((MAX_TOK,) * 5 + (0,)), turn_row((MAX_TOK,) * 4 + (0, 0)), True),
    (
        "totals past 64 bits compare exactly",
        turn_row(tok6(2**62, 2**62)),
        turn_row(tok6(INT64_MAX)),
        True,
    ),
]


@pytest.mark.parametrize(
    ("new", "old", "expected"), [c[1:] for c in REPLACES], ids=[c[0] for c in REPLACES]
)
def test_replaces(lang: str, new: tuple[Any, ...], old: tuple[Any, ...], expected: bool) -> None:
    got = rules.replaces(new, old) if lang == "python" else c_rule("replaces", new, old)
    assert got is expected


# --- the tool merge of two rows of one key ---------------------------------------------------

TOOLS_MERGE = [
    ("both empty", (), (), ()),
    ("old empty", (), ("Read",), ("Read",)),
    ("new empty", ("Read", "Bash"), (), ("Read", "Bash")),
    (
        "old's order, then new's new names",
        ("Read", "Bash"),
        ("Bash", "Edit"),
        ("Read", "Bash", "Edit"),
    ),
    ("a name already there, not again", ("Read",), ("Read",), ("Read",)),
    ("old's repeats stay", ("Read", "Read"), ("Read",), ("Read", "Read")),
    (
        "a new name the new row repeats, each time",
        ("Read",),
        ("Edit", "Edit"),
        ("Read", "Edit", "Edit"),
    ),
]

_TOOL_IDS = {"Read": 1, "Bash": 2, "Edit": 3}
_TOOL_NAMES = {v: k for k, v in _TOOL_IDS.items()}


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in TOOLS_MERGE], ids=[c[0] for c in TOOLS_MERGE]
)
def test_tools_merge(
    lang: str, old: tuple[str, ...], new: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    if lang == "python":
        got = rules.tools_merge(old, new)
    else:
        ids = c_rule("tools_merge", [_TOOL_IDS[t] for t in old], [_TOOL_IDS[t] for t in new])
        got = tuple(_TOOL_NAMES[i] for i in ids)
    assert got == expected


# --- the rate card's cost ----------------------------------------------------------------------

BASE = (3, 15, 1, 4, 6, 10)  # input, output, cache read, 5m write, 1h write, web search
LONG = (6, 22, 2, 8, 12, 10)
PRICE_MAX = rules.MAX_PRICE_PER_MILLION * rules.MAX_MULTIPLIER * 10**6  # pico per token

# (tiers, counts) -> (total, cache savings, cache write cost), exact.
CARD_COST = [
    ("zero counts", ((0, BASE),), tok6(), (0, 0, 0)),
    (
        "every kind at its rate",
        ((0, BASE),),
        (1, 2, 3, 4, 5, 6),
        (1 * 3 + 2 * 15 + 3 * 1 + 4 * 4 + 5 * 6 + 6 * 10, 3 * (3 - 1), 4 * 4 + 5 * 6),
    ),
    ("5m and 1h writes apart", ((0, BASE),), tok6(0, 0, 0, 1, 0), (4, 0, 4)),
    ("1h writes", ((0, BASE),), tok6(0, 0, 0, 0, 1), (6, 0, 6)),
    (
        "cache reads dearer than input: negative savings",
        ((0, (1, 0, 5, 0, 0, 0)),),
        tok6(0, 0, 10),
        (50, -40, 0),
    ),
    (
        "total input at the threshold: the base tier",
        ((0, BASE), (200_000, LONG)),
        (100_000, 900_000, 50_000, 30_000, 20_000, 0),
        (
            100_000 * 3 + 900_000 * 15 + 50_000 * 1 + 30_000 * 4 + 20_000 * 6,
            50_000 * 2,
            30_000 * 4 + 20_000 * 6,
        ),
    ),
    (
        "total input one above: the long tier for every token",
        ((0, BASE), (200_000, LONG)),
        (100_001, 900_000, 50_000, 30_000, 20_000, 1),
        (
            100_001 * 6 + 900_000 * 22 + 50_000 * 2 + 30_000 * 8 + 20_000 * 12 + 10,
            50_000 * 4,
            30_000 * 8 + 20_000 * 12,
        ),
    ),
    (
        "three tiers: the last below",
        ((0, BASE), (10, LONG), (20, (100,) * 6)),
        tok6(15),
        (15 * 6, 0, 0),
    ),
    (
        "output does not choose the tier",
        ((0, BASE), (10, LONG)),
        tok6(1, 1000),
        (3 + 15_000, 0, 0),
    ),
    (
        "the dearest the config allows, at the bound: fits",
        ((0, (PRICE_MAX,) * 6),),
        tok6(MAX_TOK),
        (MAX_TOK * PRICE_MAX, 0, 0),
    ),
    (
        "past 64 bits: exact in Python, Python's to price in C",
        ((0, (10**12,) * 6),),
        tok6(MAX_TOK, MAX_TOK),
        (2 * MAX_TOK * 10**12, 0, 0),
    ),
]


@pytest.mark.parametrize(
    ("tiers", "counts", "expected"), [c[1:] for c in CARD_COST], ids=[c[0] for c in CARD_COST]
)
def test_card_cost(
    lang: str, tiers: Any, counts: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    if lang == "python":
        assert rules.card_cost(tiers, counts) == expected
        return
    card = (OUR_SOURCE, "test", tuple((t, *rates) for t, rates in tiers))
    fits = all(abs(v) <= INT64_MAX for v in expected)
    assert c_rule("card_cost", card, counts) == (expected if fits else None)


# A turn no card prices: (the log's cost in picodollars) -> (cost, price source).
UNCARDED = [
    ("no cost in the log", None, (None, "none")),
    ("a cost of 0 is none", 0, (None, "none")),
    ("the log's cost", 5, (5, "reported")),
    ("at the bound", 10**17, (10**17, "reported")),
]


@pytest.mark.parametrize(
    ("reported", "expected"), [c[1:] for c in UNCARDED], ids=[c[0] for c in UNCARDED]
)
def test_uncarded_cost(lang: str, reported: int | None, expected: tuple[Any, str]) -> None:
    if lang == "python":
        assert rules.uncarded_cost(reported) == expected
        return
    cost, src, savings, writes = c_rule("row_price", None, tok6(9), reported, REPORTED_ID, NONE_ID)
    assert (cost, {REPORTED_ID: "reported", NONE_ID: "none"}[src]) == expected
    assert (savings, writes) == (0, 0)


def test_c_row_price_by_card_or_asks_python() -> None:
    """The C writer prices a row itself only when plain 64-bit integer arithmetic gives
    rules.card_cost's answer; otherwise it asks Python (None here), which prices it exactly."""
    needs_native(NATIVE)
    card = (OUR_SOURCE, "test", ((0, *BASE),))
    assert c_rule("row_price", card, (1, 2, 3, 4, 5, 6), 77, REPORTED_ID, NONE_ID) == (
        142,
        OUR_SOURCE,
        6,
        46,
    )
    big = (OUR_SOURCE, "test", ((0, *(10**12,) * 6),))
    assert c_rule("row_price", big, tok6(MAX_TOK, MAX_TOK), None, REPORTED_ID, NONE_ID) is None
    for not_integer in (
        False,
        (OUR_SOURCE, "test", ()),
        (OUR_SOURCE, "test", ((0, -1, 0, 0, 0, 0, 0),)),
    ):
        assert c_rule("row_price", not_integer, tok6(1), None, REPORTED_ID, NONE_ID) is None
    nine_tiers = (OUR_SOURCE, "test", tuple((t, *BASE) for t in range(9)))
    assert c_rule("row_price", nine_tiers, tok6(1), None, REPORTED_ID, NONE_ID) is None


# --- rollup sums ---------------------------------------------------------------------------------

TOK = (1, 2, 3, 4, 5, 6)
T15 = 15  # rules.total_tokens of TOK

# (row, sign) -> the 18 deltas of store.ROLLUP_METRICS.
ROLLUP_DELTAS = [
    (
        "priced by us",
        turn_row(TOK, cost=100, rep=None, sav=7, wc=8),
        1,
        [1, *TOK, 100, 0, 0, 100, 0, 0, 0, T15, 1, 7, 8],
    ),
    (
        "priced by us, with the log's cost too",
        turn_row(TOK, cost=100, rep=90),
        1,
        [1, *TOK, 100, 0, 0, 100, 0, 0, 90, 0, 0, 0, 0],
    ),
    (
        "unpriced: tokens and a turn in every mode without a cost",
        turn_row(TOK, cost=None, src=NONE_ID),
        1,
        [1, *TOK, 0, T15, 1, 0, T15, 1, 0, T15, 1, 0, 0],
    ),
    (
        "the log's cost: auto and display have it, calculate counts it unpriced",
        turn_row(TOK, cost=90, src=REPORTED_ID, rep=90),
        1,
        [1, *TOK, 90, 0, 0, 0, T15, 1, 90, 0, 0, 0, 0],
    ),
    (
        "taken away",
        turn_row(TOK, cost=100, sav=7, wc=8),
        -1,
        [-1, *(-t for t in TOK), -100, 0, 0, -100, 0, 0, 0, -T15, -1, -7, -8],
    ),
    (
        "taken away, unpriced",
        turn_row(TOK, cost=None, src=NONE_ID),
        -1,
        [-1, *(-t for t in TOK), 0, -T15, -1, 0, -T15, -1, 0, -T15, -1, 0, 0],
    ),
    (
        "zeros, priced at 0",
        turn_row(cost=0),
        1,
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
    ),
    (
        "at the bounds",
        turn_row((MAX_TOK,) * 5 + (9_999,), cost=INT64_MAX, sav=-INT64_MAX, wc=INT64_MAX),
        1,
        [
            1,
            *(MAX_TOK,) * 5,
            9_999,
            INT64_MAX,
            0,
            0,
            INT64_MAX,
            0,
            0,
            0,
            5 * MAX_TOK,
            1,
            *(-INT64_MAX, INT64_MAX),
        ],
    ),
]


@pytest.mark.parametrize(
    ("row", "sign", "expected"), [c[1:] for c in ROLLUP_DELTAS], ids=[c[0] for c in ROLLUP_DELTAS]
)
def test_rollup_deltas(lang: str, row: tuple[Any, ...], sign: int, expected: list[int]) -> None:
    R = rules
    if lang == "python":
        got = rules.rollup_deltas(
            row[R.R_IN : R.R_WEB + 1],
            row[R.R_COST],
            row[R.R_SRC] == REPORTED_ID,
            row[R.R_REP],
            row[R.R_SAV],
            row[R.R_WC],
            sign,
        )
    else:
        got = c_rule("rollup_deltas", row, REPORTED_ID, sign)
    assert got == expected


ROLLUP_SPLIT = [
    ("nothing", [], [[]]),
    ("small sums: one row", [1, -2, 3], [[1, -2, 3]]),
    ("zeros", [0] * 18, [[0] * 18]),
    ("at the 64-bit bound: one row", [INT64_MAX, -INT64_MAX], [[INT64_MAX, -INT64_MAX]]),
    (
        "one past: two rows, the remainder to the first",
        [INT64_MAX + 1, 1],
        [[2**62, 1], [2**62, 0]],
    ),
    ("negative past: parts keep the sign", [-(2**63) - 1, 5], [[-(2**62) - 1, 3], [-(2**62), 2]]),
    (
        "the widest: three rows",
        [2**64, 7],
        [[6148914691236517206, 3], [6148914691236517205, 2], [6148914691236517205, 2]],
    ),
]


@pytest.mark.parametrize(
    ("sums", "expected"), [c[1:] for c in ROLLUP_SPLIT], ids=[c[0] for c in ROLLUP_SPLIT]
)
def test_rollup_split(lang: str, sums: list[int], expected: list[list[int]]) -> None:
    got = rules.rollup_split(sums) if lang == "python" else c_rule("rollup_split", sums)
    assert got == expected
    # Whatever the case: rows that fit, and sum to the sums.
    assert all(abs(v) <= INT64_MAX for row in got for v in row)
    assert [sum(col) for col in zip(*got, strict=True)] == sums


TOOL_CALLS = [
    ("none", (), []),
    ("one", ("Read",), [("Read", 1)]),
    ("a repeat is a call", ("Read", "Bash", "Read"), [("Read", 2), ("Bash", 1)]),
    ("in first-call order", ("Bash", "Read", "Bash", "Bash"), [("Bash", 3), ("Read", 1)]),
]


@pytest.mark.parametrize(
    ("tools", "expected"), [c[1:] for c in TOOL_CALLS], ids=[c[0] for c in TOOL_CALLS]
)
def test_tool_calls(lang: str, tools: tuple[str, ...], expected: list[tuple[str, int]]) -> None:
    got = list(rules.tool_calls(tools).items()) if lang == "python" else c_rule("tool_calls", tools)
    assert got == expected


# (row, number of tool calls) -> each call's share in the auto, calculate and display modes.
TOOL_SHARES = [
    ("our cost, no log cost", turn_row(cost=90), 3, (30.0, 30.0, 0.0)),
    ("unpriced, the log's cost only", turn_row(cost=None, src=NONE_ID, rep=12), 4, (0.0, 0.0, 3.0)),
    (
        "the log's cost: not ours to calculate",
        turn_row(cost=10, src=REPORTED_ID, rep=10),
        2,
        (5.0, 0.0, 5.0),
    ),
    ("zero", turn_row(cost=0, rep=0), 1, (0.0, 0.0, 0.0)),
    ("one call", turn_row(cost=7), 1, (7.0, 7.0, 0.0)),
    (
        "past 2^53 picodollars: float(cost) / n, as SQLite's rebuild",
        turn_row(cost=2**53 + 1, rep=2**53 + 1),
        3,
        (3002399751580330.5, 3002399751580330.5, 3002399751580330.5),
    ),
]


@pytest.mark.parametrize(
    ("row", "n", "expected"), [c[1:] for c in TOOL_SHARES], ids=[c[0] for c in TOOL_SHARES]
)
def test_tool_shares(lang: str, row: tuple[Any, ...], n: int, expected: tuple[float, ...]) -> None:
    if lang == "python":
        cost = row[rules.R_COST]
        calc_ok = cost is not None and row[rules.R_SRC] != REPORTED_ID
        got = rules.tool_shares(cost, calc_ok, row[rules.R_REP], n)
    else:
        got = c_rule("tool_shares", row, REPORTED_ID, n)
    assert got == expected


# --- sidechain replays (formats.md 1.7) ----------------------------------------------------

# The rows holding one message, (id, is sidechain) in id order -> the ids that are replays.
SIDECHAIN = [
    ("nothing", [], []),
    ("one main row", [(1, False)], []),
    ("one sidechain row, alone: kept", [(1, True)], []),
    ("two main rows: not this rule's", [(1, False), (2, False)], []),
    ("a sidechain row beside the main thread", [(1, False), (2, True)], [2]),
    ("a sidechain row stored before the main one", [(1, True), (2, False)], [1]),
    ("sidechain only: the first stays", [(1, True), (2, True), (3, True)], [2, 3]),
    ("sidechains and the main thread: all of them go", [(1, True), (2, False), (3, True)], [1, 3]),
    ("the first is the smallest id", [(5, True), (3, True), (4, True)], [5, 4]),
    ("ids near the 64-bit bound", [(INT64_MAX - 1, True), (INT64_MAX, True)], [INT64_MAX]),
]


@pytest.mark.parametrize(
    ("held", "expected"), [c[1:] for c in SIDECHAIN], ids=[c[0] for c in SIDECHAIN]
)
def test_sidechain_replays(lang: str, held: list[tuple[int, bool]], expected: list[int]) -> None:
    if lang == "python":
        got = rules.sidechain_replays_of(held)
    else:
        got = c_rule("sidechain_replays", held)
    assert got == expected


def test_c_hook_refuses_what_it_does_not_know() -> None:
    needs_native(NATIVE)
    with pytest.raises(ValueError, match="no rule named"):
        c_rule("no_such_rule")
    with pytest.raises(TypeError, match="arguments"):
        c_rule("total_tokens")
