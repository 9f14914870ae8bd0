"""What the store's tables hold: the units, the columns of a turn row and of a rollup row, the
tables generated from `ROLLUP_METRICS`, and the small helpers every part of the store reads
them with (the `meta` table, chunked `IN (...)` lists).

Every list of rollup sums (the `rollup` table, the derived sums' tables, the rows a writer
inserts, the sums a reader takes) is generated from `ROLLUP_METRICS`, so that a metric is named
once here; its SQL sum is in rollups._ROLLUP_SUMS, and its Python delta in rules.rollup_deltas.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

from clawtrace import rules

PICO = rules.PICO
BUCKET_MS = 900_000  # 15 minutes: every real zone offset is a multiple of it
DAY_BUCKETS = 86_400_000 // BUCKET_MS


# The UTC day of a bucket, in SQL (SQLite's `/` truncates toward zero; days are floored).
SQL_BUCKET_DAY = "((bucket - ((bucket % 96) + 96) % 96) / 96)"


# --- turn rows -------------------------------------------------------------------------------

# The row layout (TURN_COLUMNS, R_*) is a rule shared with the C writer: rules.py.


# --- rollup rows -----------------------------------------------------------------------------

# The sums of a rollup row, in the order every rollup table holds them (rules.rollup_deltas
# gives one turn's share in this order).
ROLLUP_METRICS = (
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "web_search_requests",
    "auto_pico",
    "auto_unpriced_tokens",
    "auto_unpriced_turns",
    "calc_pico",
    "calc_unpriced_tokens",
    "calc_unpriced_turns",
    "display_pico",
    "display_unpriced_tokens",
    "display_unpriced_turns",
    "cache_savings_pico",
    "cache_write_pico",
)
N_METRICS = len(ROLLUP_METRICS)

# The store's rollup tables: sums per 15-minute bucket, context and model (`rollup`), and per
# tool as well (`tool_rollup`, whose sums are the tool calls and their share of the cost).
ROLLUP_TABLES = ("rollup", "tool_rollup")
# The columns of `rollup`, in order (a writer inserts rows of exactly these).
ROLLUP_COLUMNS = ("bucket", "context_id", "model_id", *ROLLUP_METRICS, "first_ts", "last_ts")

# The metrics the `rollup` table got from migrations 1 and 3, as they shipped. A metric added
# to ROLLUP_METRICS later goes at its end, with a migration that adds its column.
METRICS_OF_MIGRATION_3 = ROLLUP_METRICS[:18]


def metric_columns(metrics: Sequence[str] = ROLLUP_METRICS) -> str:
    """The lines of a CREATE TABLE that declare `metrics` (each indented as the store's
    schema texts indent a column)."""
    return ",\n        ".join(f"{m} INTEGER NOT NULL" for m in metrics)


# The derived sums' tables (see derived.py; they live in the sums file): the rollups by bucket
# and model, and by UTC day, context and model, each with every metric; and the tool rollups by
# UTC day, model and tool.
_DERIVED_SUMS_KEYS = {
    "rollup_model": ("bucket", "model_id"),
    "rollup_day": ("day", "context_id", "model_id"),
}
DERIVED_TABLES = (*_DERIVED_SUMS_KEYS, "tool_day")


def derived_tables(into: str) -> str:
    """The CREATE TABLE of each of DERIVED_TABLES, with `into` before each name (migration 5
    made them in the store; they now live in the sums file, SUMS_SCHEMA)."""
    sums = "".join(
        f"""
    CREATE TABLE {into}{table} (
        {metric_columns((*keys, *ROLLUP_METRICS))},
        first_ts INTEGER,
        last_ts INTEGER,
        PRIMARY KEY ({", ".join(keys)})
    ) WITHOUT ROWID;"""
        for table, keys in _DERIVED_SUMS_KEYS.items()
    )
    return (
        sums
        + f"""
    CREATE TABLE {into}tool_day (
        day INTEGER NOT NULL,
        model_id INTEGER NOT NULL,
        tool TEXT NOT NULL,
        calls INTEGER NOT NULL,
        turns INTEGER NOT NULL,
        auto_pico REAL NOT NULL,
        calc_pico REAL NOT NULL,
        display_pico REAL NOT NULL,
        PRIMARY KEY (day, model_id, tool)
    ) WITHOUT ROWID;
    """
    )


# The derived sums live beside the store in `<store>-sums` (files.SUMS_SUFFIX), attached to
# every connection as `sums`: see connection._sums_attach. `sums_meta` holds the marks of what
# they were computed from, and SUMS_LAYOUT: a file of another layout is made again.
SUMS_LAYOUT = "1"
SUMS_SCHEMA = (
    derived_tables("IF NOT EXISTS sums.")
    + """
    CREATE TABLE IF NOT EXISTS sums.sums_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """
)
SUMS_TABLES = (*DERIVED_TABLES, "sums_meta")

# Every table a scan fills (what a bulk load that did not finish leaves to empty): the
# dimension tables and the fired alerts are not among them.
SCANNED_TABLES = (
    "turns",
    *ROLLUP_TABLES,
    "dirty_buckets",
    "derived_dirty",
    "files",
    "watch",
    "index_sessions",
)


# --- small helpers ---------------------------------------------------------------------------


def meta_get(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def meta_set(conn: sqlite3.Connection, key: str, value: str) -> None:
    with conn:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def now_ms() -> int:
    return int(time.time() * 1000)


def in_chunks(values: Sequence[Any], size: int = 500) -> Iterator[tuple[Sequence[Any], str]]:
    """`values` in chunks under SQLite's bound-variable limit, each with its `?,?,...` for an
    `IN (...)`."""
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        yield chunk, ",".join("?" * len(chunk))
