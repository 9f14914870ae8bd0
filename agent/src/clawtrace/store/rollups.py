"""Rollups: sums per 15-minute bucket, context and model (`rollup`) and per tool as well
(`tool_rollup`), which the reports read instead of the turns.

A bucket may hold several rows for the same key (a scan adds its own, and a de-dup that
replaces a turn adds a negative row for the one it replaced), and every reader sums them. A
bucket a scan cannot simply add to is marked dirty and recomputed from `turns`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from clawtrace import rules
from clawtrace.rules import (
    R_COST,
    R_CTX,
    R_IN,
    R_MODEL,
    R_REP,
    R_SAV,
    R_SRC,
    R_TS,
    R_WC,
    R_WEB,
    TURN_COLUMNS,
)
from clawtrace.store.dims import REPORTED_SOURCE_ID
from clawtrace.store.schema import (
    BUCKET_MS,
    DAY_BUCKETS,
    N_METRICS,
    ROLLUP_COLUMNS,
    ROLLUP_METRICS,
    ROLLUP_TABLES,
    in_chunks,
)

_TOTAL_SQL = f"({rules.TOTAL_TOKENS_SQL})"
_CALC_UNPRICED = f"cost_pico IS NULL OR price_source_id = {REPORTED_SOURCE_ID}"
# Each metric of ROLLUP_METRICS as SQL sums it over `turns` (Rollups.add sums the same in
# Python, from rules.rollup_deltas; test_scan_incremental holds the two to each other).
_ROLLUP_SUMS = {
    "turns": "COUNT(*)",
    "input_tokens": "SUM(input_tokens)",
    "output_tokens": "SUM(output_tokens)",
    "cache_read_tokens": "SUM(cache_read_tokens)",
    "cache_write_5m_tokens": "SUM(cache_write_5m_tokens)",
    "cache_write_1h_tokens": "SUM(cache_write_1h_tokens)",
    "web_search_requests": "SUM(web_search_requests)",
    "auto_pico": "COALESCE(SUM(cost_pico), 0)",
    "auto_unpriced_tokens": f"SUM(CASE WHEN cost_pico IS NULL THEN {_TOTAL_SQL} ELSE 0 END)",
    "auto_unpriced_turns": "SUM(cost_pico IS NULL)",
    "calc_pico": (
        f"COALESCE(SUM(CASE WHEN price_source_id <> {REPORTED_SOURCE_ID} THEN cost_pico END), 0)"
    ),
    "calc_unpriced_tokens": f"SUM(CASE WHEN {_CALC_UNPRICED} THEN {_TOTAL_SQL} ELSE 0 END)",
    "calc_unpriced_turns": f"SUM({_CALC_UNPRICED})",
    "display_pico": "COALESCE(SUM(reported_pico), 0)",
    "display_unpriced_tokens": f"SUM(CASE WHEN reported_pico IS NULL THEN {_TOTAL_SQL} ELSE 0 END)",
    "display_unpriced_turns": "SUM(reported_pico IS NULL)",
    "cache_savings_pico": "SUM(cache_savings_pico)",
    "cache_write_pico": "SUM(cache_write_pico)",
}
_ROLLUP_SELECT = f"""
    SELECT ts / {BUCKET_MS} AS bucket, context_id, model_id,
        {", ".join(_ROLLUP_SUMS[m] for m in ROLLUP_METRICS)},
        MIN(ts), MAX(ts)
    FROM turns
"""  # noqa: S608
_TOOL_SELECT = f"""
    SELECT t.ts / {BUCKET_MS} AS bucket, t.context_id, t.model_id, j.value,
        COUNT(*),
        COUNT(DISTINCT t.id),
        SUM(COALESCE(t.cost_pico, 0) * 1.0 / json_array_length(s.tools)),
        SUM(CASE WHEN t.price_source_id <> {REPORTED_SOURCE_ID} THEN COALESCE(t.cost_pico, 0)
            ELSE 0 END * 1.0 / json_array_length(s.tools)),
        SUM(COALESCE(t.reported_pico, 0) * 1.0 / json_array_length(s.tools))
    FROM turns AS t JOIN toolsets AS s ON s.id = t.toolset_id, json_each(s.tools) AS j
"""  # noqa: S608
_INSERT_ROLLUP = f"INSERT INTO rollup VALUES ({', '.join('?' * len(ROLLUP_COLUMNS))})"  # noqa: S608


def rollups_rebuild(
    conn: sqlite3.Connection, bucket_ranges: Iterable[tuple[int, int]] | None
) -> None:
    """Recompute rollups for inclusive 15-minute bucket ranges, or everything when None."""
    if bucket_ranges is None:
        for table in ROLLUP_TABLES:
            conn.execute(f"DELETE FROM {table}")  # noqa: S608  (fixed names)
        # All derived sums go stale: the rollups' rowids may start again from 1, so the marks
        # say which generation of rollups they were computed from (in this file, with them).
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('rollups_generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )
        _rollup_insert(conn, "", ())
        conn.execute(
            f"INSERT INTO tool_rollup {_TOOL_SELECT} WHERE t.toolset_id <> 0 GROUP BY 1, 2, 3, 4"
        )
        return
    for first, last in bucket_ranges:
        lo, hi = first * BUCKET_MS, (last + 1) * BUCKET_MS
        conn.executemany(
            "INSERT OR IGNORE INTO derived_dirty (day) VALUES (?)",
            ((d,) for d in range(first // DAY_BUCKETS, last // DAY_BUCKETS + 1)),
        )
        for table in ROLLUP_TABLES:
            conn.execute(
                f"DELETE FROM {table} WHERE bucket BETWEEN ? AND ?",  # noqa: S608  (fixed names)
                (first, last),
            )
        _rollup_insert(conn, " WHERE ts >= ? AND ts < ?", (lo, hi))
        conn.execute(
            f"INSERT INTO tool_rollup {_TOOL_SELECT} WHERE t.ts >= ? AND t.ts < ? "
            "AND t.toolset_id <> 0 GROUP BY 1, 2, 3, 4",
            (lo, hi),
        )


def _rollup_insert(conn: sqlite3.Connection, where: str, params: tuple[int, ...]) -> None:
    """The rollups of the turns `where` selects, in SQL; where a sum leaves 64 bits (only
    hostile logs get there: many turns at the bounds in one bucket), summed here instead and
    written in rows that fit (rules.rollup_split)."""
    try:
        conn.execute(f"INSERT INTO rollup {_ROLLUP_SELECT}{where} GROUP BY 1, 2, 3", params)
    except sqlite3.OperationalError as exc:
        if "integer overflow" not in str(exc):
            raise
        acc = Rollups()
        cols = ", ".join(TURN_COLUMNS)
        for row in conn.execute(f"SELECT {cols} FROM turns{where}", params):  # noqa: S608
            acc.add(row, (), REPORTED_SOURCE_ID)
        acc.flush(conn, frozenset())


def sums_fetch(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[Any]:
    """The rows of a query that sums rollups. Where a sum leaves 64 bits (SQLite's SUM raises;
    only hostile logs get there), the query runs again with TOTAL, which sums in floating point:
    the figures are then right to 15 digits instead of to the picodollar, and no report fails."""
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "integer overflow" not in str(exc):
            raise
        return conn.execute(_SUM_CALL.sub("TOTAL(", sql), params).fetchall()


_SUM_CALL = re.compile(r"\bSUM\(", re.IGNORECASE)


# Where a rollup row's first and last timestamps follow its sums (ROLLUP_COLUMNS).
_FIRST, _LAST = N_METRICS, N_METRICS + 1


class Rollups:
    """Rollup sums of turns added (or taken away) by a writer, until they are flushed.

    Mirrors `_ROLLUP_SELECT` / `_TOOL_SELECT` exactly; `test_scan_incremental` holds the two to
    each other.
    """

    def __init__(self) -> None:
        self.agg: dict[tuple[int, int, int], list[Any]] = {}
        self.tools: dict[tuple[int, int, int, str], list[float]] = {}

    def __bool__(self) -> bool:
        return bool(self.agg)

    def add(
        self, row: Sequence[Any], tools: Sequence[str], reported_id: int, sign: int = 1
    ) -> None:
        ts = row[R_TS]
        bucket = ts // BUCKET_MS
        key = (bucket, row[R_CTX], row[R_MODEL])
        m = self.agg.get(key)
        if m is None:
            m = self.agg[key] = [0] * N_METRICS + [None, None]
        cost, rep = row[R_COST], row[R_REP]
        deltas = rules.rollup_deltas(
            row[R_IN : R_WEB + 1],
            cost,
            row[R_SRC] == reported_id,
            rep,
            row[R_SAV],
            row[R_WC],
            sign,
        )
        for k, d in enumerate(deltas):
            m[k] += d
        if sign > 0:
            if m[_FIRST] is None or ts < m[_FIRST]:
                m[_FIRST] = ts
            if m[_LAST] is None or ts > m[_LAST]:
                m[_LAST] = ts
        if tools:
            calc_ok = cost is not None and row[R_SRC] != reported_id
            auto, calc, disp = rules.tool_shares(cost, calc_ok, rep, len(tools))
            for name, calls in rules.tool_calls(tools).items():
                tkey = (bucket, row[R_CTX], row[R_MODEL], name)
                t = self.tools.get(tkey)
                if t is None:
                    t = self.tools[tkey] = [0, 0, 0.0, 0.0, 0.0]
                t[0] += sign * calls
                t[1] += sign
                t[2] += sign * auto * calls
                t[3] += sign * calc * calls
                t[4] += sign * disp * calls

    def flush(self, conn: sqlite3.Connection, skip_buckets: set[int] | frozenset[int]) -> None:
        """Insert the sums (inside the caller's transaction), leaving out buckets that will be
        recomputed anyway, and start over."""
        if self.agg:
            conn.executemany(
                _INSERT_ROLLUP,
                [
                    (*k, *part, *v[N_METRICS:])
                    for k, v in self.agg.items()
                    if k[0] not in skip_buckets
                    for part in rules.rollup_split(v[:N_METRICS])
                ],
            )
        if self.tools:
            conn.executemany(
                "INSERT INTO tool_rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*k, *v) for k, v in self.tools.items() if k[0] not in skip_buckets],
            )
        self.agg.clear()
        self.tools.clear()

    def buckets(self) -> set[int]:
        return {k[0] for k in self.agg}


def rollup_buckets(conn: sqlite3.Connection) -> list[int]:
    """Every bucket that holds rollup rows (a scan adds to none of them: see buckets_stale)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT bucket FROM rollup")]


def rollup_rowid_max(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM rollup").fetchone()[0])


def buckets_stale(conn: sqlite3.Connection, buckets: Iterable[int], rollup_before: int) -> set[int]:
    """Buckets (of `buckets`) that held rollup rows before the scan began (rowid at most
    `rollup_before`) or are already dirty: adding to them would pile up rows, so they are
    recomputed from `turns` at the end of the scan instead."""
    wanted = sorted(set(buckets))
    if not wanted:
        return set()
    dirty = {
        r[0]
        for r in conn.execute(
            "SELECT bucket FROM dirty_buckets WHERE bucket BETWEEN ? AND ?", (wanted[0], wanted[-1])
        )
    }
    if rollup_before <= 0:
        return dirty & set(wanted)
    stale = set()
    for chunk, marks in in_chunks(wanted):
        stale.update(
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT bucket FROM rollup WHERE bucket IN ({marks}) AND rowid <= ?",  # noqa: S608
                [*chunk, rollup_before],
            )
        )
    return stale | (dirty & set(wanted))


def dirty_buckets_mark(conn: sqlite3.Connection, buckets: Iterable[int]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO dirty_buckets (bucket) VALUES (?)", ((b,) for b in buckets)
    )


def rollups_refresh(conn: sqlite3.Connection, *, full: bool = False) -> None:
    """Recompute the rollups of dirty buckets from `turns` (all of them when `full`)."""
    if full:
        rollups_rebuild(conn, None)
    else:
        dirty = [r[0] for r in conn.execute("SELECT bucket FROM dirty_buckets")]
        if dirty:
            rollups_rebuild(conn, buckets_to_ranges(dirty))
    conn.execute("DELETE FROM dirty_buckets")


def buckets_to_ranges(buckets: Iterable[int]) -> list[tuple[int, int]]:
    """Collapse bucket numbers into inclusive contiguous ranges."""
    ranges: list[tuple[int, int]] = []
    for b in sorted(set(buckets)):
        if ranges and b == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((b, b))
    return ranges
