"""The derived sums: coarser sums of the rollups for the reports, per bucket and model (reports
over time), per UTC day, context and model (reports by project, session...), and per UTC day,
model and tool. On a million turns they are 6x to 100x smaller than `rollup`.

They live in a file of their own beside the store (files.sums_file), a cache of the rollups:
readers use them only while their marks say they hold what the rollups hold (`derived_fresh`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import Any

from clawtrace.store.files import db_file
from clawtrace.store.rollups import buckets_to_ranges
from clawtrace.store.schema import DAY_BUCKETS, DERIVED_TABLES, ROLLUP_METRICS, SQL_BUCKET_DAY

_SUMS = ", ".join(f"SUM({m})" for m in ROLLUP_METRICS)


def native_ingest() -> Any:
    """The native writer (`clawtrace._ingest`), when built and the C scanner is on
    (CLAWTRACE_NATIVE); else None."""
    from clawtrace.sources import base

    if base.native() is None:
        return None
    try:
        from clawtrace import _ingest
    except ImportError:
        return None
    return _ingest


def derived_refresh(conn: sqlite3.Connection) -> int:
    """Bring `rollup_model`, `rollup_day` and `tool_day` in step with the rollups, in a
    transaction of its own (so the caller must have none open); returns the UTC days recomputed,
    -1 for all of them.

    What changed is found without triggers: rollup rows added since the last refresh have a
    larger rowid than it recorded (its marks in `sums_meta`), and `rollups_rebuild` lists the
    days whose rows it replaced in `derived_dirty`. Readers use the derived sums only while the
    marks match (`derived_fresh`), so a refresh that never ran, or failed, costs speed, not
    correctness.
    """
    if conn.in_transaction:
        raise RuntimeError("derived_refresh needs the connection outside a transaction")
    db = db_file(conn)
    fast = native_ingest()
    try:
        if db and fast is not None:
            return int(fast.derive(db))
        with conn:
            return _derived_refresh_sql(conn)
    except (OverflowError, sqlite3.OperationalError) as exc:
        if "overflow" not in str(exc).lower() and not isinstance(exc, OverflowError):
            raise
        # A sum beyond 64 bits (only hostile logs get there): reports read the rollups.
        derived_forget(conn)
        return 0


def derived_forget(conn: sqlite3.Connection) -> None:
    """Take the derived sums out of use until the next full refresh."""
    with conn:
        conn.execute("DELETE FROM sums_meta WHERE key = 'marks'")


def _derived_marks(conn: sqlite3.Connection) -> tuple[str, int, int]:
    """The marks the derived sums must carry to hold what the rollups hold now: the rollups'
    generation (see rollups_rebuild), the largest rollup and tool rollup rowids."""
    generation, rmax, tmax = conn.execute(
        "SELECT (SELECT value FROM meta WHERE key = 'rollups_generation'), "
        "(SELECT COALESCE(MAX(rowid), 0) FROM rollup), "
        "(SELECT COALESCE(MAX(rowid), 0) FROM tool_rollup)"
    ).fetchone()
    return str(int(generation or 0)), int(rmax), int(tmax)


def _derived_refresh_sql(conn: sqlite3.Connection) -> int:
    """`_ingest.derive` in SQL (the same rules; used without the native module)."""
    generation, rmax, tmax = _derived_marks(conn)
    row = conn.execute("SELECT value FROM sums_meta WHERE key = 'marks'").fetchone()
    rmark = tmark = -1
    if row and row[0].partition(":")[0] == generation:
        with contextlib.suppress(ValueError):
            rmark, tmark = (int(v) for v in row[0].partition(":")[2].split(","))
    days_done = -1
    ranges: list[tuple[int, int]] | None = None
    if rmark < 0 or tmark < 0 or rmax < rmark or tmax < tmark:
        for table in DERIVED_TABLES:
            conn.execute(f"DELETE FROM {table}")  # noqa: S608  (fixed names)
    else:
        days = [
            r[0]
            for r in conn.execute(
                f"SELECT {SQL_BUCKET_DAY} FROM rollup WHERE rowid > ? UNION "  # noqa: S608
                f"SELECT {SQL_BUCKET_DAY} FROM tool_rollup WHERE rowid > ? UNION "
                "SELECT day FROM derived_dirty",
                (rmark, tmark),
            )
        ]
        days_done = len(days)
        ranges = buckets_to_ranges(days)
    spans = [(None, None)] if ranges is None else ranges
    for first_day, last_day in spans:
        where_b, params_b = "", ()
        if first_day is not None:
            lo, hi = first_day * DAY_BUCKETS, last_day * DAY_BUCKETS + DAY_BUCKETS - 1
            conn.execute("DELETE FROM rollup_model WHERE bucket BETWEEN ? AND ?", (lo, hi))
            conn.execute("DELETE FROM rollup_day WHERE day BETWEEN ? AND ?", (first_day, last_day))
            conn.execute("DELETE FROM tool_day WHERE day BETWEEN ? AND ?", (first_day, last_day))
            where_b, params_b = " WHERE bucket BETWEEN ? AND ?", (lo, hi)
        conn.execute(
            f"INSERT INTO rollup_model SELECT bucket, model_id, {_SUMS}, MIN(first_ts), "  # noqa: S608
            f"MAX(last_ts) FROM rollup{where_b} GROUP BY bucket, model_id",
            params_b,
        )
        conn.execute(
            f"INSERT INTO rollup_day SELECT {SQL_BUCKET_DAY}, context_id, model_id, {_SUMS}, "  # noqa: S608
            f"MIN(first_ts), MAX(last_ts) FROM rollup{where_b} GROUP BY 1, 2, 3",
            params_b,
        )
        conn.execute(
            f"INSERT INTO tool_day SELECT {SQL_BUCKET_DAY}, model_id, tool, SUM(calls), "  # noqa: S608
            "SUM(turns), "
            f"SUM(auto_pico), SUM(calc_pico), SUM(display_pico) FROM tool_rollup{where_b} "
            "GROUP BY 1, 2, 3",
            params_b,
        )
    conn.execute("DELETE FROM derived_dirty")
    conn.execute(
        "INSERT INTO sums_meta (key, value) VALUES ('marks', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (f"{generation}:{rmax},{tmax}",),
    )
    return days_done


def derived_refresh_behind(
    conn: sqlite3.Connection, *, synced: bool = True
) -> threading.Thread | None:
    """Start `derived_refresh` on a thread that reads the rollups now, without the interpreter
    lock, and writes once the write lock is free: a scan builds its indexes meanwhile. None
    without the native module. Whatever goes wrong there (the rollups changed in between, an
    error) leaves the sums stale, for the caller's `derived_refresh` to redo. Not `synced`
    inside `bulk_load`."""
    fast = native_ingest()
    db = db_file(conn)
    if fast is None or not db:
        return None

    def run() -> None:
        with contextlib.suppress(Exception):
            fast.derive(db, True, synced=synced)

    thread = threading.Thread(target=run, name="clawtrace-derive", daemon=True)
    thread.start()
    return thread


def derived_fresh(conn: sqlite3.Connection) -> bool:
    """Whether the derived sums hold exactly what the rollups hold."""
    try:
        marks, dirty = conn.execute(
            "SELECT (SELECT value FROM sums_meta WHERE key = 'marks'), "
            "EXISTS (SELECT 1 FROM derived_dirty)"
        ).fetchone()
        generation, rmax, tmax = _derived_marks(conn)
    except sqlite3.OperationalError:  # a store opened without its sums
        return False
    return not dirty and marks == f"{generation}:{rmax},{tmax}"
