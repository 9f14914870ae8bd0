"""The local SQLite store: one row per de-duplicated assistant turn, plus rollups the reports read.

Money is kept as integer picodollars (1e-12 USD): every list price in genai-prices has at most
six decimals per million tokens, so a token's price is an exact integer and sums never drift the
way float sums do.

Migrations are a plain ordered list: each entry is applied once, in order, and the schema version
is the number applied. Other modules (the live server, alerts) append to `MIGRATIONS`; never edit
or reorder an entry that has shipped.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PICO = 10**12
BUCKET_MS = 900_000  # 15 minutes: every real zone offset is a multiple of it

# Columns of `turns` written by the scanner, in the order of the tuples parsers produce.
TURN_COLUMNS: tuple[str, ...] = (
    "key_hash",
    "msg_hash",
    "dedup_key",
    "msg_id",
    "source",
    "agent",
    "project",
    "session_id",
    "subagent",
    "is_sidechain",
    "model",
    "provider",
    "ts",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "web_search_requests",
    "total_tokens",
    "speed",
    "cost_pico",
    "price_source",
    "reported_pico",
    "cache_savings_pico",
    "cache_write_pico",
    "git_branch",
    "tools",
    "file_id",
)

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        mtime_ns INTEGER NOT NULL DEFAULT 0,
        inode INTEGER,
        head_hash TEXT,
        offset INTEGER NOT NULL DEFAULT 0,
        lines INTEGER NOT NULL DEFAULT 0,
        malformed INTEGER NOT NULL DEFAULT 0,
        turn_lines INTEGER NOT NULL DEFAULT 0,
        state_json TEXT,
        first_seen INTEGER NOT NULL,
        last_scan INTEGER NOT NULL,
        missing_since INTEGER
    );

    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        -- 64-bit hashes of the de-dup key and message id: integer indexes cost a third of
        -- text ones on a million-row cold scan. The readable key is kept beside them.
        key_hash INTEGER NOT NULL UNIQUE,
        msg_hash INTEGER,
        dedup_key TEXT NOT NULL,
        msg_id TEXT,
        source TEXT NOT NULL,
        agent TEXT NOT NULL,
        project TEXT NOT NULL,
        session_id TEXT NOT NULL,
        subagent TEXT,
        is_sidechain INTEGER NOT NULL DEFAULT 0,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        ts INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
        web_search_requests INTEGER NOT NULL DEFAULT 0,
        total_tokens INTEGER NOT NULL DEFAULT 0,
        speed TEXT,
        cost_pico INTEGER,
        price_source TEXT NOT NULL DEFAULT 'none',
        reported_pico INTEGER,
        cache_savings_pico INTEGER NOT NULL DEFAULT 0,
        cache_write_pico INTEGER NOT NULL DEFAULT 0,
        git_branch TEXT NOT NULL DEFAULT '',
        tools TEXT NOT NULL DEFAULT '[]',
        file_id INTEGER
    );
    CREATE INDEX turns_ts ON turns (ts);
    CREATE INDEX turns_msg_hash ON turns (msg_hash) WHERE msg_hash IS NOT NULL;

    CREATE TABLE rollup (
        bucket INTEGER NOT NULL,
        source TEXT NOT NULL,
        agent TEXT NOT NULL,
        project TEXT NOT NULL,
        session_id TEXT NOT NULL,
        is_sidechain INTEGER NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        git_branch TEXT NOT NULL,
        turns INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_write_5m_tokens INTEGER NOT NULL,
        cache_write_1h_tokens INTEGER NOT NULL,
        web_search_requests INTEGER NOT NULL,
        auto_pico INTEGER NOT NULL,
        auto_unpriced_tokens INTEGER NOT NULL,
        auto_unpriced_turns INTEGER NOT NULL,
        calc_pico INTEGER NOT NULL,
        calc_unpriced_tokens INTEGER NOT NULL,
        calc_unpriced_turns INTEGER NOT NULL,
        display_pico INTEGER NOT NULL,
        display_unpriced_tokens INTEGER NOT NULL,
        display_unpriced_turns INTEGER NOT NULL,
        cache_savings_pico INTEGER NOT NULL,
        cache_write_pico INTEGER NOT NULL,
        first_ts INTEGER NOT NULL,
        last_ts INTEGER NOT NULL
    );
    CREATE INDEX rollup_bucket ON rollup (bucket);

    CREATE TABLE tool_rollup (
        bucket INTEGER NOT NULL,
        source TEXT NOT NULL,
        agent TEXT NOT NULL,
        project TEXT NOT NULL,
        model TEXT NOT NULL,
        tool TEXT NOT NULL,
        calls INTEGER NOT NULL,
        turns INTEGER NOT NULL,
        auto_pico REAL NOT NULL,
        calc_pico REAL NOT NULL,
        display_pico REAL NOT NULL
    );
    CREATE INDEX tool_rollup_bucket ON tool_rollup (bucket);

    CREATE TABLE index_sessions (
        source TEXT NOT NULL,
        agent TEXT NOT NULL,
        session_key TEXT NOT NULL,
        session_id TEXT,
        transcript TEXT,
        transcript_exists INTEGER NOT NULL,
        spawned_by TEXT,
        spawn_depth INTEGER,
        kind TEXT NOT NULL,
        PRIMARY KEY (source, agent, session_key)
    );

    -- 15-minute buckets whose rollups are stale. Updates and deletes of turns record themselves
    -- here; inserts are recorded by the scanner, which knows their timestamps (a trigger per
    -- insert would cost seconds on a cold scan of a million turns).
    CREATE TABLE dirty_buckets (bucket INTEGER PRIMARY KEY);
    -- (NOT EXISTS rather than OR IGNORE: an upsert's conflict policy overrides a trigger's.)
    CREATE TRIGGER turns_dirty_on_update AFTER UPDATE ON turns BEGIN
        INSERT INTO dirty_buckets (bucket) SELECT old.ts / 900000
            WHERE NOT EXISTS (SELECT 1 FROM dirty_buckets WHERE bucket = old.ts / 900000);
        INSERT INTO dirty_buckets (bucket) SELECT new.ts / 900000
            WHERE NOT EXISTS (SELECT 1 FROM dirty_buckets WHERE bucket = new.ts / 900000);
    END;
    CREATE TRIGGER turns_dirty_on_delete AFTER DELETE ON turns BEGIN
        INSERT INTO dirty_buckets (bucket) SELECT old.ts / 900000
            WHERE NOT EXISTS (SELECT 1 FROM dirty_buckets WHERE bucket = old.ts / 900000);
    END;

    CREATE TABLE alerts_fired (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        window_key TEXT NOT NULL,
        fired_at INTEGER NOT NULL,
        severity TEXT NOT NULL DEFAULT 'warning',
        title TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT '',
        details_json TEXT NOT NULL DEFAULT '{}',
        channels_json TEXT NOT NULL DEFAULT '[]',
        UNIQUE (rule, window_key)
    );
    """,
    # 2: an update that changes nothing a rollup holds (a resumed session re-writing a turn
    # verbatim from another file) no longer marks its bucket for recomputation.
    """
    DROP TRIGGER turns_dirty_on_update;
    CREATE TRIGGER turns_dirty_on_update AFTER UPDATE ON turns
        WHEN old.ts IS NOT new.ts
            OR old.total_tokens IS NOT new.total_tokens
            OR old.cost_pico IS NOT new.cost_pico
            OR old.reported_pico IS NOT new.reported_pico
            OR old.price_source IS NOT new.price_source
            OR old.tools IS NOT new.tools
            OR old.session_id IS NOT new.session_id
            OR old.agent IS NOT new.agent
            OR old.project IS NOT new.project
            OR old.model IS NOT new.model
            OR old.provider IS NOT new.provider
            OR old.git_branch IS NOT new.git_branch
            OR old.is_sidechain IS NOT new.is_sidechain
            OR old.source IS NOT new.source
            OR old.input_tokens IS NOT new.input_tokens
            OR old.output_tokens IS NOT new.output_tokens
            OR old.cache_read_tokens IS NOT new.cache_read_tokens
            OR old.cache_write_5m_tokens IS NOT new.cache_write_5m_tokens
            OR old.cache_write_1h_tokens IS NOT new.cache_write_1h_tokens
            OR old.web_search_requests IS NOT new.web_search_requests
            OR old.cache_savings_pico IS NOT new.cache_savings_pico
            OR old.cache_write_pico IS NOT new.cache_write_pico
    BEGIN
        INSERT INTO dirty_buckets (bucket) SELECT old.ts / 900000
            WHERE NOT EXISTS (SELECT 1 FROM dirty_buckets WHERE bucket = old.ts / 900000);
        INSERT INTO dirty_buckets (bucket) SELECT new.ts / 900000
            WHERE NOT EXISTS (SELECT 1 FROM dirty_buckets WHERE bucket = new.ts / 900000);
    END;
    """,
]


class StoreError(Exception):
    """The store cannot be opened or is from a newer ClawTrace."""


def connect(path: Path | str | None = None, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the store; WAL mode, foreign keys on."""
    if path is None:
        from clawtrace.paths import db_path

        path = db_path()
    path = Path(path)
    if readonly and not path.exists():
        # A report before any scan reads an empty in-memory store rather than creating files.
        conn = sqlite3.connect(":memory:")
        _configure(conn)
        migrate(conn)
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=30.0)
        _configure(conn)
        migrate(conn)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(turns)")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open the store at {path}: {exc}") from exc
    if "key_hash" not in columns:
        conn.close()
        # Only stores written by pre-release development builds lack it; the logs are still
        # on disk (or were copied into that store), so nothing is silently reinterpreted.
        raise StoreError(
            f"the store at {path} was written by a development build of ClawTrace with an "
            "older layout; move it aside and run `clawtrace scan` again"
        )
    return conn


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-32000")


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] | None = None) -> int:
    """Apply pending migrations in order; returns the resulting schema version."""
    steps = MIGRATIONS if migrations is None else migrations
    current = schema_version(conn)
    if current > len(steps):
        raise StoreError(
            f"the store has schema version {current}, newer than this ClawTrace knows "
            f"({len(steps)}); upgrade ClawTrace"
        )
    for number, sql in enumerate(steps[current:], start=current + 1):
        with conn:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")
        meta_set(conn, "schema_version", str(number))
    return schema_version(conn)


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


# --- writing turns ---------------------------------------------------------------------------

_KEEP_NEW = "excluded.total_tokens >= turns.total_tokens"
_UPSERT_SQL = (
    f"INSERT INTO turns ({', '.join(TURN_COLUMNS)}) VALUES ({', '.join('?' * len(TURN_COLUMNS))}) "  # noqa: S608
    "ON CONFLICT(key_hash) DO UPDATE SET "
    + ", ".join(
        f"{col} = CASE WHEN {_KEEP_NEW} THEN excluded.{col} ELSE turns.{col} END"
        for col in TURN_COLUMNS
        if col not in ("key_hash", "tools")
    )
    # Streamed pieces of one response each carry some of its tool_use blocks: keep the union.
    + ", tools = CASE WHEN excluded.tools = '[]' OR excluded.tools = turns.tools THEN turns.tools "
    "WHEN turns.tools = '[]' THEN excluded.tools "
    "ELSE (SELECT json_group_array(value) FROM (SELECT value FROM json_each(turns.tools) "
    "UNION ALL SELECT value FROM json_each(excluded.tools) "
    "WHERE value NOT IN (SELECT value FROM json_each(turns.tools)))) END"
    " WHERE excluded.total_tokens >= turns.total_tokens OR excluded.tools <> turns.tools"
)


_INSERT_NEW_SQL = (
    f"INSERT INTO turns ({', '.join(TURN_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(TURN_COLUMNS))}) ON CONFLICT(key_hash) DO NOTHING"
)


def turns_upsert(conn: sqlite3.Connection, rows: Iterable[Sequence[object]]) -> None:
    """Insert turns; on a repeated dedup key the row with the larger total wins (ties: newer)."""
    conn.executemany(_UPSERT_SQL, rows)


def turns_insert_new(conn: sqlite3.Connection, rows: Sequence[Sequence[object]]) -> bool:
    """Insert rows whose keys are all new; True when none collided (nothing was skipped).

    When this returns False the caller must run `turns_upsert` on the same rows, which applies
    the largest-total rule to the collisions (rows inserted here are then rewritten unchanged).
    """
    before = conn.total_changes
    conn.executemany(_INSERT_NEW_SQL, rows)
    return conn.total_changes - before == len(rows)


def key_hash(key: str) -> int:
    """Signed 64-bit hash of a de-dup key (stable across runs and processes)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


SECONDARY_INDEXES = {
    "turns_ts": "CREATE INDEX IF NOT EXISTS turns_ts ON turns (ts)",
    "turns_msg_hash": (
        "CREATE INDEX IF NOT EXISTS turns_msg_hash ON turns (msg_hash) WHERE msg_hash IS NOT NULL"
    ),
}


def secondary_indexes_drop(conn: sqlite3.Connection) -> bool:
    """Drop the indexes `secondary_indexes_create` rebuilds (inside the caller's transaction)."""
    for name in SECONDARY_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    return True


def secondary_indexes_create(conn: sqlite3.Connection) -> None:
    for sql in SECONDARY_INDEXES.values():
        conn.execute(sql)


def max_turn_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM turns").fetchone()[0])


def sidechain_replays_drop(conn: sqlite3.Connection, since_id: int) -> int:
    """Apply formats.md 1.7 to rows added after `since_id`; returns rows deleted.

    A sidechain row whose message id is also held by another row is a replay when that other
    row is on the main thread, or is a sidechain row seen earlier.
    """
    cur = conn.execute(
        """
        DELETE FROM turns WHERE id IN (
            SELECT s.id FROM turns AS s JOIN turns AS o
              ON o.msg_hash = s.msg_hash AND o.id <> s.id
            WHERE s.is_sidechain = 1 AND s.msg_hash IS NOT NULL
              AND (o.is_sidechain = 0 OR o.id < s.id)
              AND (s.id > :since OR o.id > :since)
        )
        """,
        {"since": since_id},
    )
    return cur.rowcount


# --- rollups ---------------------------------------------------------------------------------

_ROLLUP_DIMS = "source, agent, project, session_id, is_sidechain, model, provider, git_branch"
_ROLLUP_SELECT = f"""
    SELECT ts / {BUCKET_MS} AS bucket, {_ROLLUP_DIMS},
        COUNT(*),
        SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),
        SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(web_search_requests),
        COALESCE(SUM(cost_pico), 0),
        SUM(CASE WHEN cost_pico IS NULL THEN total_tokens ELSE 0 END),
        SUM(cost_pico IS NULL),
        COALESCE(SUM(CASE WHEN price_source <> 'reported' THEN cost_pico END), 0),
        SUM(CASE WHEN cost_pico IS NULL OR price_source = 'reported' THEN total_tokens ELSE 0 END),
        SUM(cost_pico IS NULL OR price_source = 'reported'),
        COALESCE(SUM(reported_pico), 0),
        SUM(CASE WHEN reported_pico IS NULL THEN total_tokens ELSE 0 END),
        SUM(reported_pico IS NULL),
        SUM(cache_savings_pico), SUM(cache_write_pico),
        MIN(ts), MAX(ts)
    FROM turns
"""  # noqa: S608
_TOOL_SELECT = f"""
    SELECT t.ts / {BUCKET_MS} AS bucket, t.source, t.agent, t.project, t.model, j.value,
        COUNT(*),
        COUNT(DISTINCT t.id),
        SUM(COALESCE(t.cost_pico, 0) * 1.0 / json_array_length(t.tools)),
        SUM(CASE WHEN t.price_source <> 'reported' THEN COALESCE(t.cost_pico, 0) ELSE 0 END
            * 1.0 / json_array_length(t.tools)),
        SUM(COALESCE(t.reported_pico, 0) * 1.0 / json_array_length(t.tools))
    FROM turns AS t, json_each(t.tools) AS j
"""  # noqa: S608


def rollups_rebuild(
    conn: sqlite3.Connection, bucket_ranges: Iterable[tuple[int, int]] | None
) -> None:
    """Recompute rollups for inclusive 15-minute bucket ranges, or everything when None."""
    if bucket_ranges is None:
        conn.execute("DELETE FROM rollup")
        conn.execute("DELETE FROM tool_rollup")
        conn.execute(f"INSERT INTO rollup {_ROLLUP_SELECT} GROUP BY bucket, {_ROLLUP_DIMS}")
        conn.execute(
            f"INSERT INTO tool_rollup {_TOOL_SELECT} WHERE t.tools <> '[]' "
            "GROUP BY bucket, t.source, t.agent, t.project, t.model, j.value"
        )
        return
    for first, last in bucket_ranges:
        lo, hi = first * BUCKET_MS, (last + 1) * BUCKET_MS
        conn.execute("DELETE FROM rollup WHERE bucket BETWEEN ? AND ?", (first, last))
        conn.execute("DELETE FROM tool_rollup WHERE bucket BETWEEN ? AND ?", (first, last))
        conn.execute(
            f"INSERT INTO rollup {_ROLLUP_SELECT} WHERE ts >= ? AND ts < ? "
            f"GROUP BY bucket, {_ROLLUP_DIMS}",
            (lo, hi),
        )
        conn.execute(
            f"INSERT INTO tool_rollup {_TOOL_SELECT} WHERE t.ts >= ? AND t.ts < ? "
            "AND t.tools <> '[]' GROUP BY bucket, t.source, t.agent, t.project, t.model, j.value",
            (lo, hi),
        )


def dirty_buckets_mark(conn: sqlite3.Connection, buckets: Iterable[int]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO dirty_buckets (bucket) VALUES (?)", ((b,) for b in buckets)
    )


_T = {c: i for i, c in enumerate(TURN_COLUMNS)}
_I_TS, _I_TOTAL, _I_COST = _T["ts"], _T["total_tokens"], _T["cost_pico"]
_I_SRC, _I_REP = _T["price_source"], _T["reported_pico"]
_DIM_NAMES = "source agent project session_id is_sidechain model provider git_branch"
_COUNT_NAMES = (
    "input_tokens output_tokens cache_read_tokens cache_write_5m_tokens cache_write_1h_tokens "
    "web_search_requests"
)
_I_DIMS = tuple(_T[c] for c in _DIM_NAMES.split())
_I_TOKENS = tuple(_T[c] for c in _COUNT_NAMES.split())
_I_SAV, _I_WC, _I_TOOLS = _T["cache_savings_pico"], _T["cache_write_pico"], _T["tools"]


def rollup_accumulate(
    rows: Iterable[Sequence[Any]],
    agg: dict[tuple[Any, ...], list[int]],
    tool_agg: dict[tuple[Any, ...], list[float]],
    tools_seq: Sequence[Sequence[str]] | None = None,
) -> None:
    """Add turn rows (TURN_COLUMNS tuples) to rollup accumulators; mirrors `_ROLLUP_SELECT`.

    Runs in the scan's workers so the main process only merges small per-file dictionaries.
    `tools_seq[i]` are row i's tool names (default: decode the row's JSON column).
    """
    for n_row, r in enumerate(rows):
        ts = r[_I_TS]
        bucket = ts // BUCKET_MS
        key = (bucket, *(r[i] for i in _I_DIMS))
        m = agg.get(key)
        if m is None:
            m = agg[key] = [0] * 18 + [ts, ts]
        m[0] += 1
        for j, i in enumerate(_I_TOKENS, start=1):
            m[j] += r[i]
        total, cost, src, rep = r[_I_TOTAL], r[_I_COST], r[_I_SRC], r[_I_REP]
        if cost is None:
            m[8] += total
            m[9] += 1
        else:
            m[7] += cost
        if cost is None or src == "reported":
            m[11] += total
            m[12] += 1
        else:
            m[10] += cost
        if rep is None:
            m[14] += total
            m[15] += 1
        else:
            m[13] += rep
        m[16] += r[_I_SAV]
        m[17] += r[_I_WC]
        if ts < m[18]:
            m[18] = ts
        if ts > m[19]:
            m[19] = ts
        tools = tools_seq[n_row] if tools_seq is not None else json.loads(r[_I_TOOLS])
        if tools:
            n = len(tools)
            auto = (cost or 0) / n
            calc = (cost or 0) / n if src != "reported" else 0.0
            disp = (rep or 0) / n
            for name in set(tools):
                calls = tools.count(name)
                tkey = (bucket, r[_I_DIMS[0]], r[_I_DIMS[1]], r[_I_DIMS[2]], r[_I_DIMS[5]], name)
                t = tool_agg.get(tkey)
                if t is None:
                    t = tool_agg[tkey] = [0, 0, 0.0, 0.0, 0.0]
                t[0] += calls
                t[1] += 1
                t[2] += auto * calls
                t[3] += calc * calls
                t[4] += disp * calls


def rollup_merge(
    into: dict[tuple[Any, ...], list[Any]], other: dict[tuple[Any, ...], list[Any]], minmax: bool
) -> None:
    for key, vals in other.items():
        cur = into.get(key)
        if cur is None:
            into[key] = vals
            continue
        if minmax:
            for j in range(18):
                cur[j] += vals[j]
            cur[18] = min(cur[18], vals[18])
            cur[19] = max(cur[19], vals[19])
        else:
            for j in range(len(vals)):
                cur[j] += vals[j]


def rollup_flush(
    conn: sqlite3.Connection,
    agg: dict[tuple[Any, ...], list[int]],
    tool_agg: dict[tuple[Any, ...], list[float]],
    flushed: set[int],
) -> None:
    """Write accumulated rollup rows (from turns that were all new) and empty the accumulators.

    A bucket that is dirty, or had rollup rows before this scan (not written by an earlier
    flush of the same scan), is left to `rollups_refresh`, which recomputes it from `turns`.
    Several rows with the same dimensions in one bucket are fine: reports sum them.
    """
    if not agg:
        return
    buckets = {k[0] for k in agg}
    dirty = {r[0] for r in conn.execute("SELECT bucket FROM dirty_buckets")}
    lo, hi = min(buckets), max(buckets)
    existing = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT bucket FROM rollup WHERE bucket BETWEEN ? AND ?", (lo, hi)
        )
    }
    stale = (buckets & existing) - flushed - dirty
    if stale:
        dirty_buckets_mark(conn, stale)
        dirty |= stale
    conn.executemany(
        f"INSERT INTO rollup VALUES ({', '.join('?' * 29)})",  # noqa: S608
        ((*k, *v) for k, v in agg.items() if k[0] not in dirty),
    )
    conn.executemany(
        "INSERT INTO tool_rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((*k, *v) for k, v in tool_agg.items() if k[0] not in dirty),
    )
    flushed |= buckets - dirty
    agg.clear()
    tool_agg.clear()


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
