"""The local SQLite store: one row per de-duplicated assistant turn, plus rollups the reports read.

Money is kept as integer picodollars (1e-12 USD): every list price in genai-prices has at most
six decimals per million tokens, so a token's price is an exact integer and sums never drift the
way float sums do.

Layout (schema 3). A turn row is narrow: integers only, plus its readable de-dup key. What many
turns share lives in small dimension tables keyed by a 64-bit hash of their fields, so that the
scanner's parallel workers agree on ids without asking each other:

- `contexts`: source, agent, project, session, sub-agent, sidechain flag, git branch;
- `models`: provider, model, speed;
- `price_sources`: which price produced a cost (`genai-prices:<version>`, `override:<name>`,
  `reported`, `local`, `none`);
- `toolsets`: the JSON list of tool names a turn called (id 0 is "none").

`turns_wide` and `rollup_wide` are views with the names spelled out, for people and for the
less frequent queries. Rollups are sums per 15-minute bucket, context and model; a bucket may
hold several rows for the same key (a scan adds its own, and a de-dup that replaces a turn adds
a negative row for the one it replaced), and every reader sums them. A bucket a scan cannot
simply add to is marked dirty and recomputed from `turns`.

Migrations are a plain ordered list: each entry is applied once, in order, and the schema version
is the number applied. Never edit or reorder an entry that has shipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from clawtrace import rules
from clawtrace.paths import label
from clawtrace.rules import (
    R_COST,
    R_CTX,
    R_IN,
    R_KEY,
    R_MODEL,
    R_MSG,
    R_REP,
    R_SAV,
    R_SRC,
    R_TOOLS,
    R_TS,
    R_WC,
    R_WEB,
    TURN_COLUMNS,
)

PICO = rules.PICO
BUCKET_MS = 900_000  # 15 minutes: every real zone offset is a multiple of it
DAY_BUCKETS = 86_400_000 // BUCKET_MS


# The UTC day of a bucket, in SQL (SQLite's `/` truncates toward zero; days are floored).
SQL_BUCKET_DAY = "((bucket - ((bucket % 96) + 96) % 96) / 96)"

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
    # 3: narrow turns with dimension tables, rollups keyed by (bucket, context, model). The
    # hashed ids come from `dim_id`, registered on every connection as ct_dim_id().
    """
    CREATE TABLE contexts (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        agent TEXT NOT NULL,
        project TEXT NOT NULL,
        session_id TEXT NOT NULL,
        subagent TEXT,
        is_sidechain INTEGER NOT NULL,
        git_branch TEXT NOT NULL
    );
    CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        speed TEXT
    );
    CREATE TABLE price_sources (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE toolsets (id INTEGER PRIMARY KEY, tools TEXT NOT NULL);
    INSERT INTO toolsets (id, tools) VALUES (0, '[]');

    INSERT OR IGNORE INTO contexts
        SELECT ct_dim_id('c', source, agent, project, session_id, subagent, is_sidechain,
                         git_branch),
               source, agent, project, session_id, subagent, is_sidechain, git_branch
        FROM turns GROUP BY source, agent, project, session_id, subagent, is_sidechain,
                            git_branch;
    INSERT OR IGNORE INTO models
        SELECT ct_dim_id('m', provider, model, speed), provider, model, speed
        FROM turns GROUP BY provider, model, speed;
    INSERT OR IGNORE INTO price_sources
        SELECT ct_dim_id('p', price_source), price_source FROM turns GROUP BY price_source;
    INSERT OR IGNORE INTO toolsets
        SELECT ct_dim_id('t', tools), tools FROM turns WHERE tools <> '[]' GROUP BY tools;

    CREATE TABLE turns_v3 (
        id INTEGER PRIMARY KEY,
        key_hash INTEGER NOT NULL,
        msg_hash INTEGER NOT NULL,
        file_id INTEGER,
        context_id INTEGER NOT NULL,
        model_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_write_5m_tokens INTEGER NOT NULL,
        cache_write_1h_tokens INTEGER NOT NULL,
        web_search_requests INTEGER NOT NULL,
        cost_pico INTEGER,
        price_source_id INTEGER NOT NULL,
        reported_pico INTEGER,
        cache_savings_pico INTEGER NOT NULL,
        cache_write_pico INTEGER NOT NULL,
        toolset_id INTEGER NOT NULL
    );
    INSERT INTO turns_v3
        SELECT id, key_hash, COALESCE(msg_hash, key_hash), file_id,
               ct_dim_id('c', source, agent, project, session_id, subagent, is_sidechain,
                         git_branch),
               ct_dim_id('m', provider, model, speed), ts, input_tokens, output_tokens,
               cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
               web_search_requests, cost_pico, ct_dim_id('p', price_source), reported_pico,
               cache_savings_pico, cache_write_pico,
               CASE WHEN tools = '[]' THEN 0 ELSE ct_dim_id('t', tools) END
        FROM turns;
    DROP TRIGGER turns_dirty_on_update;
    DROP TRIGGER turns_dirty_on_delete;
    DROP TABLE turns;
    ALTER TABLE turns_v3 RENAME TO turns;
    -- One index for both lookups: by de-dup key (a key always has the same message id) and by
    -- message id (the sidechain-replay rule). Sources without message ids store the key twice.
    UPDATE turns SET msg_hash = key_hash WHERE msg_hash IS NULL;
    CREATE UNIQUE INDEX turns_key ON turns (msg_hash, key_hash);
    CREATE INDEX turns_ts ON turns (ts);

    DROP TABLE rollup;
    DROP TABLE tool_rollup;
    CREATE TABLE rollup (
        bucket INTEGER NOT NULL,
        context_id INTEGER NOT NULL,
        model_id INTEGER NOT NULL,
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
        -- NULL on the negative rows a replaced turn leaves; MIN/MAX skip them.
        first_ts INTEGER,
        last_ts INTEGER
    );
    CREATE INDEX rollup_bucket ON rollup (bucket);
    CREATE TABLE tool_rollup (
        bucket INTEGER NOT NULL,
        context_id INTEGER NOT NULL,
        model_id INTEGER NOT NULL,
        tool TEXT NOT NULL,
        calls INTEGER NOT NULL,
        turns INTEGER NOT NULL,
        auto_pico REAL NOT NULL,
        calc_pico REAL NOT NULL,
        display_pico REAL NOT NULL
    );
    CREATE INDEX tool_rollup_bucket ON tool_rollup (bucket);
    DELETE FROM dirty_buckets;

    CREATE VIEW turns_wide AS
        SELECT t.id, t.key_hash, t.msg_hash, c.source, c.agent, c.project, c.session_id,
               c.subagent, c.is_sidechain, m.model, m.provider, t.ts, t.input_tokens,
               t.output_tokens, t.cache_read_tokens,
               t.cache_write_5m_tokens, t.cache_write_1h_tokens, t.web_search_requests,
               t.input_tokens + t.output_tokens + t.cache_read_tokens + t.cache_write_5m_tokens
                   + t.cache_write_1h_tokens AS total_tokens,
               m.speed, t.cost_pico, p.name AS price_source, t.reported_pico,
               t.cache_savings_pico, t.cache_write_pico, c.git_branch, s.tools, t.file_id,
               t.context_id, t.model_id
        FROM turns AS t
        JOIN contexts AS c ON c.id = t.context_id
        JOIN models AS m ON m.id = t.model_id
        JOIN price_sources AS p ON p.id = t.price_source_id
        JOIN toolsets AS s ON s.id = t.toolset_id;
    CREATE VIEW rollup_wide AS
        SELECT r.*, c.source, c.agent, c.project, c.session_id, c.subagent, c.is_sidechain,
               c.git_branch, m.model, m.provider, m.speed
        FROM rollup AS r
        JOIN contexts AS c ON c.id = r.context_id
        JOIN models AS m ON m.id = r.model_id;
    """,
]


def _rollups_rebuild_all(conn: sqlite3.Connection) -> None:
    rollups_rebuild(conn, None)


# 4: rollups for the turns migration 3 carried over (derived data: rebuilt by the current code).
MIGRATIONS.append(_rollups_rebuild_all)


def _derived_tables(into: str) -> str:
    """The derived sums' tables (see `derived_refresh`), created with `into` before each name
    (migration 5 made them in the store; they now live in the sums file, `_SUMS_SCHEMA`)."""
    return f"""
    CREATE TABLE {into}rollup_model (
        bucket INTEGER NOT NULL,
        model_id INTEGER NOT NULL,
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
        first_ts INTEGER,
        last_ts INTEGER,
        PRIMARY KEY (bucket, model_id)
    ) WITHOUT ROWID;
    CREATE TABLE {into}rollup_day (
        day INTEGER NOT NULL,
        context_id INTEGER NOT NULL,
        model_id INTEGER NOT NULL,
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
        first_ts INTEGER,
        last_ts INTEGER,
        PRIMARY KEY (day, context_id, model_id)
    ) WITHOUT ROWID;
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


# 5: coarser sums for the reports, derived from the rollups (see `derived_refresh`): per bucket
# and model (reports over time), per UTC day, context and model (reports by project, session...),
# and per UTC day, model and tool. On a million turns they are 6x to 100x smaller than `rollup`.
MIGRATIONS.append(
    _derived_tables("")
    + """
    -- UTC days whose rollup rows were recomputed (and may have gone) since the derived sums
    -- were last brought in step; rows added since are found by rowid.
    CREATE TABLE derived_dirty (day INTEGER PRIMARY KEY);
    """
)

# 6: what a rescan needs to skip discovery when nothing in the trees changed: each file's
# context as discovery gave it, and the directories (and index files) the listing read.
MIGRATIONS.append(
    """
    ALTER TABLE files ADD COLUMN ctx_json TEXT;
    CREATE TABLE watch (
        path TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        mtime_ns INTEGER NOT NULL,
        size INTEGER NOT NULL
    ) WITHOUT ROWID;
    """
)


# 7: the derived sums move to a file of their own (see SUMS_SUFFIX); they are rebuilt there.
MIGRATIONS.append(
    """
    DROP TABLE rollup_model;
    DROP TABLE rollup_day;
    DROP TABLE tool_day;
    DELETE FROM meta WHERE key = 'derived_marks';
    """
)


def _replays_settle_all(conn: sqlite3.Connection) -> None:
    """Take out the sidechain replays that scans stopped half-way left billed before the rule
    held at every commit (they were settled only at a scan's end, among its own rows)."""
    replays = sidechain_replays(conn, 0)
    if replays:
        TurnWriter(Dims(), rollup_rowid_max(conn)).delete(conn, replays)
        rollups_refresh(conn)


# 8: the replays an interrupted scan could leave (see _replays_settle_all).
MIGRATIONS.append(_replays_settle_all)

# 9: what tells a file rewritten in place from one that only grew: its status-change time
# (no program can set it back, unlike the modification time) and a hash of the last block read
# before `offset` (scan._known_bytes_match).
MIGRATIONS.append(
    """
    ALTER TABLE files ADD COLUMN ctime_ns INTEGER;
    ALTER TABLE files ADD COLUMN tail_hash TEXT;
    """
)


def _turns_out_of_bounds_remove(conn: sqlite3.Connection) -> None:
    """Take out the turns older versions accepted that the parser's bounds now refuse (rules.py:
    far-off dates, token counts near a trillion): they were corrupt lines, and they made reports
    raise or sums overflow."""
    total = rules.TOTAL_TOKENS_SQL
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM turns WHERE ts < ? OR ts >= ? OR {total} >= ? "  # noqa: S608
            "OR web_search_requests >= ?",
            (rules.MIN_TS_MS, rules.MAX_TS_MS, rules.MAX_TURN_TOKENS, rules.MAX_WEB_SEARCHES),
        )
    ]
    if ids:
        TurnWriter(Dims(), rollup_rowid_max(conn)).delete(conn, ids)
        rollups_refresh(conn)


# 10: see _turns_out_of_bounds_remove.
MIGRATIONS.append(_turns_out_of_bounds_remove)

# The derived sums (`derived_refresh`) live beside the store in `<store>-sums`, attached to every
# connection as `sums`: they are a cache of the rollups, so a file that is missing or damaged is
# made again and refilled, and a scan's derive writes them on a connection of its own while the
# store's connection builds its indexes (SQLite lets one connection write a file at a time).
# `sums_meta` holds the marks of what they were computed from and the layout below.
SUMS_SUFFIX = "-sums"
SUMS_LAYOUT = "1"
_SUMS_SCHEMA = (
    _derived_tables("IF NOT EXISTS sums.")
    + """
    CREATE TABLE IF NOT EXISTS sums.sums_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """
)


class StoreError(Exception):
    """The store cannot be opened or is from a newer ClawTrace."""


def dim_id(kind: str, *fields: Any) -> int:
    """The id of a dimension row: a signed 64-bit hash of its kind and fields.

    Workers assign ids on their own and agree, and a store rebuilt from the same logs gets the
    same ids. 64 bits make a collision among even a million distinct values a 1-in-10^7 event.
    """
    digest = hashlib.blake2b(orjson.dumps([kind, *fields]), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _sql_dim_id(*args: Any) -> int:
    return dim_id(*args)


REPORTED_SOURCE = "reported"
REPORTED_SOURCE_ID = dim_id("p", REPORTED_SOURCE)
NONE_SOURCE_ID = dim_id("p", "none")


def connect(
    path: Path | str | None = None, *, readonly: bool = False, cache_kib: int = 32_000
) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the store; WAL mode, foreign keys on."""
    if path is None:
        from clawtrace.paths import db_path

        path = db_path()
    path = Path(path)
    if readonly and not path.exists():
        # A report before any scan reads an empty in-memory store rather than creating files.
        conn = sqlite3.connect(":memory:")
        _configure(conn, cache_kib)
        migrate(conn)
        _sums_attach(conn, None)
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    _bulk_load_recover(path)
    try:
        conn = sqlite3.connect(path, timeout=60.0)
        _configure(conn, cache_kib)
        migrate(conn)
        _sums_attach(conn, path)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(turns)")}
    except sqlite3.DatabaseError as exc:
        from clawtrace.failures import explain

        raise StoreError(
            explain(exc) or f"cannot open the store at {label(str(path))}: {exc}"
        ) from exc
    if not columns:
        conn.close()
        from clawtrace.failures import StoreDamaged, explain

        raise StoreError(explain(StoreDamaged("its table of turns is missing")))
    if "key_hash" not in columns:
        conn.close()
        # Only stores written by pre-release development builds lack it; the logs are still
        # on disk (or were copied into that store), so nothing is silently reinterpreted.
        raise StoreError(
            f"the store at {path} was written by a development build of ClawTrace with an "
            "older layout; move it aside and run `clawtrace scan` again"
        )
    return conn


def sums_file(db: str) -> str:
    """The derived sums' file of the store at `db` ('' for an in-memory store)."""
    return db + SUMS_SUFFIX if db else ""


def _sums_attach(conn: sqlite3.Connection, path: Path | None) -> None:
    """Attach the derived sums as `sums`, made (again) when missing, damaged or of another
    layout: they are recomputed from the rollups by the next refresh."""
    target = sums_file(str(path)) if path is not None else ""
    for attempt in (1, 2):
        try:
            conn.execute("ATTACH DATABASE ? AS sums", (target or ":memory:",))
            conn.execute(f"PRAGMA sums.page_size={PAGE_BYTES}")
            conn.execute("PRAGMA sums.journal_mode=WAL")
            conn.execute("PRAGMA sums.synchronous=NORMAL")
            conn.executescript(_SUMS_SCHEMA)
            layout = conn.execute("SELECT value FROM sums_meta WHERE key = 'layout'").fetchone()
            if layout is None or layout[0] != SUMS_LAYOUT:
                conn.executescript(
                    "".join(
                        f"DROP TABLE sums.{t};"
                        for t in ("rollup_model", "rollup_day", "tool_day", "sums_meta")
                    )
                    + _SUMS_SCHEMA
                )
                with conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO sums_meta (key, value) VALUES ('layout', ?)",
                        (SUMS_LAYOUT,),
                    )
            return
        except sqlite3.DatabaseError:
            if attempt == 2 or not target:
                raise
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("DETACH DATABASE sums")
            _database_remove(target)  # (what cannot go, the second try says why)


# A new store's page size (SQLite's default is 4 KiB; a store made before keeps its own). A first
# scan writes the store once through the WAL, page by page, each worker under the write lock the
# other waits for: a quarter of the pages is a quarter of the frames, b-trees one level shallower
# for index builds to walk. 100k turns: 10 % less CPU, the scan 0.575 -> 0.52 s (8 KiB and 32
# KiB were both slower than 16 KiB).
PAGE_BYTES = 16384


def _configure(conn: sqlite3.Connection, cache_kib: int = 32_000) -> None:
    conn.execute(f"PRAGMA page_size={PAGE_BYTES}")  # (only a file with nothing in it yet)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    # Sorts (index builds, GROUP BY) in helper threads: without them SQLite spills a big sort
    # to temporary files, an order of magnitude slower on a million rows.
    conn.execute("PRAGMA threads=2")
    sql_functions_register(conn)


def sql_functions_register(conn: sqlite3.Connection) -> None:
    """The functions the store's own SQL calls (any connection that reads its schema needs
    them, a read-only check included)."""
    conn.create_function("ct_dim_id", -1, _sql_dim_id, deterministic=True)


BULK_MARKER = ".bulk-load"
BULK_UNFINISHED = "bulk_load_unfinished"  # (meta key) set while a bulk load runs
SCAN_LOCK_SUFFIX = ".scan-lock"


@contextlib.contextmanager
def bulk_load(conn: sqlite3.Connection) -> Iterator[None]:
    """Fill an empty store and its derived sums without waiting for the disk: `synchronous=OFF`
    throughout, for this connection and the derive (`derived_refresh_behind(synced=False)`).

    A crash of the process loses nothing (WAL stays consistent). A power cut could damage the
    files, so a marker beside them says a bulk load ran; `connect` checks a store found with the
    marker, and one that fails the check is started again (it held nothing but what the logs
    on disk still hold: a bulk load only runs into an empty store); the derived sums, a cache,
    are made again. The caller's last writes belong inside: one after it would make the
    connection's close sync the whole new store. At the end the marker is
    marked settled with the machine's boot id instead of waiting for the disk: the next
    `connect` in the same boot (the page cache then holds all that was written, and the kernel
    has usually written it by then) syncs the files and takes the marker away without a check.
    Where there is no boot id the end syncs and takes it away at once, as the check would
    otherwise run on every first connect.

    Until the load finishes, a flag in `meta` says so (`bulk_load_unfinished`): the next scan
    then starts over instead of adding the rest to a half-filled store (`bulk_load_discard`).
    """
    db = db_file(conn)
    marker = Path(db + BULK_MARKER) if db else None
    if marker is not None:
        with open(marker, "wb") as fh:
            fh.write(b"bulk load in progress\n")
            fh.flush()
            os.fsync(fh.fileno())
    conn.execute("PRAGMA main.synchronous=OFF")
    conn.execute("PRAGMA sums.synchronous=OFF")
    meta_set(conn, BULK_UNFINISHED, "1")
    finished = False
    try:
        yield
        with conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (BULK_UNFINISHED,))
        finished = True
    finally:
        try:
            _bulk_load_end(conn, db, marker)
        except (sqlite3.Error, OSError):
            # What stopped the load (a full disk, most likely) stops its end too: the marker
            # stays, and the next connect checks the store. The first error is the one to tell.
            if finished:
                raise


def _bulk_load_end(conn: sqlite3.Connection, db: str, marker: Path | None) -> None:
    # Both files' logs are emptied while nothing syncs: closing the connection then has
    # nothing left to checkpoint, which would sync the whole new store.
    conn.execute("PRAGMA main.wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA sums.wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA main.synchronous=NORMAL")
    conn.execute("PRAGMA sums.synchronous=NORMAL")
    boot = _boot_id()
    if marker is not None and boot:
        marker.write_text(f"settled {boot}\n")
    elif marker is not None:
        for file in _bulk_files(db):
            _fsync_path(file)
        marker.unlink(missing_ok=True)


def bulk_load_unfinished(conn: sqlite3.Connection) -> bool:
    """Whether the store holds a bulk load that did not finish (stopped or killed)."""
    return meta_get(conn, BULK_UNFINISHED) is not None


def bulk_load_discard(conn: sqlite3.Connection) -> None:
    """Empty the store of what an unfinished bulk load wrote, for the next scan to start over:
    it came from logs still on disk, and reading them again as a bulk load takes a fraction of
    the time that adding the rest to a half-filled store would (1M turns: 5 s instead of 45).
    Dimensions and fired alerts stay."""
    with conn:
        for table in (
            "turns",
            "rollup",
            "tool_rollup",
            "dirty_buckets",
            "derived_dirty",
            "files",
            "watch",
            "index_sessions",
        ):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608  (fixed names)
        conn.execute(
            "DELETE FROM meta WHERE key IN (?, 'watch_roots', 'watch_result_roots', "
            "'last_scan_result')",
            (BULK_UNFINISHED,),
        )
    derived_forget(conn)


def _boot_id() -> str:
    """This boot of the machine (Linux), '' where unknown: a power cut means another boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _database_remove(path: str) -> None:
    """A database file and its WAL files, as far as they can be removed."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(path + suffix).unlink(missing_ok=True)


def _bulk_files(db: str) -> tuple[str, ...]:
    """What a bulk load writes without syncing: the store and its derived sums, and their logs."""
    return (db, db + "-wal", sums_file(db), sums_file(db) + "-wal")


def _fsync_path(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _bulk_load_recover(path: Path) -> None:
    """A store a bulk load left (see `bulk_load`): settled in this boot, synced; else kept if
    it is sound, or started over. Left alone while a scan holds the store (one is running)."""
    marker = Path(str(path) + BULK_MARKER)
    if not marker.exists():
        return
    try:
        with scan_lock(str(path), wait=False) as held:
            if held:
                _bulk_load_settle(path, marker)
    except OSError:  # (no lock file can be made beside it: nor can the marker be removed)
        return


def _bulk_load_settle(path: Path, marker: Path) -> None:
    with contextlib.suppress(OSError):
        boot = _boot_id()
        # (bytes: a power cut can leave any garbage in it, which then means "check the store")
        if boot and marker.read_bytes().split() == [b"settled", boot.encode()]:
            for file in _bulk_files(str(path)):
                _fsync_path(file)
            marker.unlink(missing_ok=True)
            return
    # The derived sums are a cache: rather than checked, they are made again.
    _database_remove(sums_file(str(path)))
    sound = False
    if path.exists():
        try:
            probe = sqlite3.connect(path)
            try:
                sound = probe.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            finally:
                probe.close()
        except sqlite3.DatabaseError:
            sound = False
    if not sound:
        _database_remove(str(path))
    marker.unlink(missing_ok=True)


@contextlib.contextmanager
def scan_lock(db: str, *, wait: bool = True) -> Iterator[bool]:
    """One scan at a time per store, across processes (an advisory lock on a file beside it).
    Yields whether it is held: always when it may `wait`; else False while another has it."""
    if not db:
        yield True
        return
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking is all there is
        yield True
        return
    with open(db + SCAN_LOCK_SUFFIX, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def db_file(conn: sqlite3.Connection) -> str:
    """The path of the connection's main database ('' for an in-memory one)."""
    for _seq, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or ""
    return ""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


Migration = str | Any  # SQL text, or a callable run on the connection inside a transaction


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] | None = None) -> int:
    """Apply pending migrations in order; returns the resulting schema version."""
    steps = MIGRATIONS if migrations is None else migrations
    current = schema_version(conn)
    if current > len(steps):
        raise StoreError(
            f"the store has schema version {current}, newer than this ClawTrace knows "
            f"({len(steps)}); upgrade ClawTrace"
        )
    if current == len(steps):
        return current
    # Several commands may open a new store at once (a first `scan` beside `serve`): each
    # step runs in a write transaction that reads the version again once it holds the lock,
    # so the second one waits, then finds the step done ("table meta already exists" else).
    isolation = conn.isolation_level
    conn.isolation_level = None
    try:
        for number, step in enumerate(steps, start=1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                if schema_version(conn) < number:
                    if callable(step):
                        step(conn)
                    else:
                        for statement in _statements(step):
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={number}")
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (str(number),),
                    )
                conn.execute("COMMIT")
            except BaseException:
                # (Ctrl-C can land after the COMMIT: then there is nothing to roll back.)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    finally:
        conn.isolation_level = isolation
    return schema_version(conn)


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time (so that they run inside a transaction
    the caller holds; `executescript` would commit it first). Triggers' bodies stay whole."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                yield pending
            pending = ""
    if pending.strip() and not pending.strip().startswith("--"):
        yield pending


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


def key_hash(key: str) -> int:
    """Signed 64-bit hash of a de-dup key (stable across runs and processes)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


# --- turn rows -------------------------------------------------------------------------------

# The row layout (TURN_COLUMNS, R_*) is a rule shared with the C writer: rules.py.

_INSERT_SQL = (
    f"INSERT INTO turns ({', '.join(TURN_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(TURN_COLUMNS))}) ON CONFLICT(msg_hash, key_hash) DO NOTHING"
)
_SELECT_BY_KEY = f"SELECT {', '.join(TURN_COLUMNS)} FROM turns WHERE msg_hash = ? AND key_hash = ?"  # noqa: S608
_UPDATE_BY_KEY = (
    "UPDATE turns SET "  # noqa: S608
    + ", ".join(f"{c} = ?" for c in TURN_COLUMNS[1:])
    + " WHERE msg_hash = ? AND key_hash = ?"
)


def merge_rows(
    dims: Dims, old: tuple[Any, ...], new: tuple[Any, ...], conn: sqlite3.Connection | None = None
) -> tuple[Any, ...]:
    """The row to keep for a key seen twice: `rules.replaces` picks the winner, and the tool
    calls are the union of both (`rules.tools_merge`)."""
    old_tools = dims.tools_of(conn, old[R_TOOLS])
    new_tools = dims.tools_of(conn, new[R_TOOLS])
    winner = new if rules.replaces(new, old) else old
    merged = rules.tools_merge(old_tools, new_tools)
    tid = old[R_TOOLS] if merged == old_tools else dims.toolset(merged)
    return winner if winner[R_TOOLS] == tid else (*winner[:R_TOOLS], tid)


def rows_dedup(dims: Dims, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One row per key among `rows` (several files of one batch may hold the same turn)."""
    if len({row[R_KEY] for row in rows}) == len(rows):
        return rows
    at: dict[int, int] = {}
    out: list[tuple[Any, ...]] = []
    for row in rows:
        i = at.get(row[R_KEY])
        if i is None:
            at[row[R_KEY]] = len(out)
            out.append(row)
        else:
            out[i] = merge_rows(dims, out[i], row)
    return out


class Dims:
    """Dimension ids for one process, and the rows it still has to write."""

    def __init__(self) -> None:
        self.contexts: dict[tuple[Any, ...], int] = {}
        self.models: dict[tuple[Any, ...], int] = {}
        self.sources: dict[str, int] = {}
        self.toolsets: dict[tuple[str, ...], int] = {(): 0}
        self.tool_names: dict[int, tuple[str, ...]] = {0: ()}
        self.pending: dict[str, list[tuple[Any, ...]]] = {
            "contexts": [],
            "models": [],
            "price_sources": [],
            "toolsets": [],
        }
        # Ids the C scanner uses without asking.
        self.source(REPORTED_SOURCE)
        self.source("none")

    def context(self, key: tuple[Any, ...]) -> int:
        cid = self.contexts.get(key)
        if cid is None:
            cid = self.contexts[key] = dim_id("c", *key)
            self.pending["contexts"].append((cid, *key))
        return cid

    def model(self, key: tuple[Any, ...]) -> int:
        mid = self.models.get(key)
        if mid is None:
            mid = self.models[key] = dim_id("m", *key)
            self.pending["models"].append((mid, *key))
        return mid

    def source(self, name: str) -> int:
        sid = self.sources.get(name)
        if sid is None:
            sid = self.sources[name] = dim_id("p", name)
            self.pending["price_sources"].append((sid, name))
        return sid

    def toolset(self, names: tuple[str, ...]) -> int:
        tid = self.toolsets.get(names)
        if tid is None:
            text = orjson.dumps(list(names)).decode()
            tid = self.toolsets[names] = dim_id("t", text)
            self.tool_names[tid] = names
            self.pending["toolsets"].append((tid, text))
        return tid

    def tools_of(self, conn: sqlite3.Connection | None, tid: int) -> tuple[str, ...]:
        names = self.tool_names.get(tid)
        if names is None:
            if conn is None:
                raise KeyError(tid)
            row = conn.execute("SELECT tools FROM toolsets WHERE id = ?", (tid,)).fetchone()
            names = tuple(orjson.loads(row[0])) if row else ()
            self.tool_names[tid] = names
            self.toolsets.setdefault(names, tid)
        return names

    def flush(self, conn: sqlite3.Connection) -> None:
        """Write the dimension rows first seen since the last flush (inside the caller's
        transaction)."""
        p = self.pending
        if p["contexts"]:
            conn.executemany(
                "INSERT OR IGNORE INTO contexts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", p["contexts"]
            )
        if p["models"]:
            conn.executemany("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?)", p["models"])
        if p["price_sources"]:
            conn.executemany(
                "INSERT OR IGNORE INTO price_sources VALUES (?, ?)", p["price_sources"]
            )
        if p["toolsets"]:
            conn.executemany("INSERT OR IGNORE INTO toolsets VALUES (?, ?)", p["toolsets"])
        for rows in p.values():
            rows.clear()


def in_chunks(values: Sequence[Any], size: int = 500) -> Iterator[tuple[Sequence[Any], str]]:
    """`values` in chunks under SQLite's bound-variable limit, each with its `?,?,...` for an
    `IN (...)`."""
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        yield chunk, ",".join("?" * len(chunk))


# --- rollups ---------------------------------------------------------------------------------

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

_TOTAL_SQL = f"({rules.TOTAL_TOKENS_SQL})"
_ROLLUP_SELECT = f"""
    SELECT ts / {BUCKET_MS} AS bucket, context_id, model_id,
        COUNT(*),
        SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),
        SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(web_search_requests),
        COALESCE(SUM(cost_pico), 0),
        SUM(CASE WHEN cost_pico IS NULL THEN {_TOTAL_SQL} ELSE 0 END),
        SUM(cost_pico IS NULL),
        COALESCE(SUM(CASE WHEN price_source_id <> {REPORTED_SOURCE_ID} THEN cost_pico END), 0),
        SUM(CASE WHEN cost_pico IS NULL OR price_source_id = {REPORTED_SOURCE_ID}
            THEN {_TOTAL_SQL} ELSE 0 END),
        SUM(cost_pico IS NULL OR price_source_id = {REPORTED_SOURCE_ID}),
        COALESCE(SUM(reported_pico), 0),
        SUM(CASE WHEN reported_pico IS NULL THEN {_TOTAL_SQL} ELSE 0 END),
        SUM(reported_pico IS NULL),
        SUM(cache_savings_pico), SUM(cache_write_pico),
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


def rollups_rebuild(
    conn: sqlite3.Connection, bucket_ranges: Iterable[tuple[int, int]] | None
) -> None:
    """Recompute rollups for inclusive 15-minute bucket ranges, or everything when None."""
    if bucket_ranges is None:
        conn.execute("DELETE FROM rollup")
        conn.execute("DELETE FROM tool_rollup")
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
        conn.execute("DELETE FROM rollup WHERE bucket BETWEEN ? AND ?", (first, last))
        conn.execute("DELETE FROM tool_rollup WHERE bucket BETWEEN ? AND ?", (first, last))
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


# --- derived sums ----------------------------------------------------------------------------

_SUMS = ", ".join(f"SUM({m})" for m in ROLLUP_METRICS)


def _native_ingest() -> Any:
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
    fast = _native_ingest()
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
        for table in ("rollup_model", "rollup_day", "tool_day"):
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
    fast = _native_ingest()
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
            if m[18] is None or ts < m[18]:
                m[18] = ts
            if m[19] is None or ts > m[19]:
                m[19] = ts
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
                f"INSERT INTO rollup VALUES ({', '.join('?' * (N_METRICS + 5))})",  # noqa: S608
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


# --- writing turns ---------------------------------------------------------------------------


class TurnWriter:
    """Writes priced turn rows and keeps rollups right, de-duplicating against the store.

    One per process; `write` runs inside the caller's write transaction. Rows whose key is new
    are inserted and added to the rollups; a row whose key is stored goes through `replaces`
    (with the union of both rows' tool calls), and when it wins the stored row is updated and
    the rollups get its difference. Buckets that cannot simply be added to (see
    `buckets_stale`) are marked dirty instead.
    """

    def __init__(self, dims: Dims, rollup_before: int) -> None:
        self.dims = dims
        self.rollup_before = rollup_before
        self.rollups = Rollups()

    def write(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
        """Insert or merge `rows` (keys unique among them); returns how many turns are new.

        The sidechain-replay rule holds when it returns (inside the caller's transaction, so at
        every commit): a scan stopped between two batches leaves no replay billed."""
        if not rows:
            return 0
        dims = self.dims
        dims.flush(conn)
        before_id = max_turn_id(conn)
        before = conn.total_changes
        conn.executemany(_INSERT_SQL, rows)
        inserted = conn.total_changes - before
        if inserted == len(rows):
            self._add(conn, rows)
        else:
            # Ids are handed out in insert order: the keys of the ids after `before_id` are the
            # rows that went in; the others met a stored turn.
            new_keys = {
                k for (k,) in conn.execute("SELECT key_hash FROM turns WHERE id > ?", (before_id,))
            }
            self._add(conn, [row for row in rows if row[R_KEY] in new_keys])
            for row in rows:
                if row[R_KEY] not in new_keys:
                    self._collide(conn, row)
        self._flush_rollups(conn)
        # Rows keyed by a message id of their own (Claude Code) are the ones a replay can meet.
        messages = {row[R_MSG] for row in rows if row[R_MSG] != row[R_KEY]}
        replays = sidechain_replays_among(conn, messages)
        return inserted - (self.delete(conn, replays) if replays else 0)

    def _add(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Add stored rows to the rollup sums."""
        from clawtrace.sources.base import native

        dims = self.dims
        for row in rows:
            if row[R_TOOLS] not in dims.tool_names:
                dims.tools_of(conn, row[R_TOOLS])
        acc = self.rollups
        fast = native()
        if fast is not None:
            fast.rollup_rows(rows, dims.tool_names, acc.agg, acc.tools, REPORTED_SOURCE_ID)
            return
        names = dims.tool_names
        for row in rows:
            acc.add(row, names[row[R_TOOLS]], REPORTED_SOURCE_ID)

    def _collide(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        stored = conn.execute(_SELECT_BY_KEY, (row[R_MSG], row[R_KEY])).fetchone()
        dims = self.dims
        if stored is None:  # gone since the insert tried (cannot happen in one transaction)
            conn.execute(_INSERT_SQL, row)
            self.rollups.add(row, dims.tools_of(conn, row[R_TOOLS]), REPORTED_SOURCE_ID)
            return
        stored = tuple(stored)
        result = merge_rows(dims, stored, row, conn)
        if result == stored:
            return
        dims.flush(conn)
        conn.execute(_UPDATE_BY_KEY, (*result[1:], row[R_MSG], row[R_KEY]))
        # Only what a rollup holds matters there: the file a turn came from does not.
        if result[R_CTX:] == stored[R_CTX:]:
            return
        buckets = {stored[R_TS] // BUCKET_MS, result[R_TS] // BUCKET_MS}
        if buckets_stale(conn, buckets, self.rollup_before):
            dirty_buckets_mark(conn, buckets)
            return
        self.rollups.add(stored, dims.tools_of(conn, stored[R_TOOLS]), REPORTED_SOURCE_ID, -1)
        self.rollups.add(result, dims.tools_of(conn, result[R_TOOLS]), REPORTED_SOURCE_ID)

    def _flush_rollups(self, conn: sqlite3.Connection) -> None:
        acc = self.rollups
        if not acc:
            return
        stale = buckets_stale(conn, acc.buckets(), self.rollup_before)
        if stale:
            dirty_buckets_mark(conn, stale)
        acc.flush(conn, stale)

    def delete(self, conn: sqlite3.Connection, ids: list[int]) -> int:
        """Delete turns by id, taking them out of the rollups; returns how many went."""
        removed = 0
        for chunk, marks in in_chunks(ids):
            gone = conn.execute(
                f"DELETE FROM turns WHERE id IN ({marks}) RETURNING {', '.join(TURN_COLUMNS)}",  # noqa: S608
                chunk,
            ).fetchall()
            for row in gone:
                self.rollups.add(
                    row, self.dims.tools_of(conn, row[R_TOOLS]), REPORTED_SOURCE_ID, -1
                )
            removed += len(gone)
        self._flush_rollups(conn)
        return removed


def turns_write_named(conn: sqlite3.Connection, turns: Iterable[dict[str, Any]]) -> int:
    """Write turns given by their `turns_wide` column names (imports, fixtures), with the
    scanner's de-dup and rollup rules; inside the caller's transaction. Returns new turns."""
    dims = Dims()
    rows = []
    for t in turns:
        cid = dims.context(
            (
                t["source"],
                t["agent"],
                t["project"],
                t["session_id"],
                t.get("subagent"),
                int(t.get("is_sidechain") or 0),
                t.get("git_branch") or "",
            )
        )
        mid = dims.model((t["provider"], t["model"], t.get("speed")))
        tools = t.get("tools") or ()
        if isinstance(tools, str):
            tools = orjson.loads(tools)
        rows.append(
            (
                t.get("key_hash") or key_hash(t["dedup_key"]),
                t.get("msg_hash") or t.get("key_hash") or key_hash(t["dedup_key"]),
                t.get("file_id"),
                cid,
                mid,
                t["ts"],
                t.get("input_tokens", 0),
                t.get("output_tokens", 0),
                t.get("cache_read_tokens", 0),
                t.get("cache_write_5m_tokens", 0),
                t.get("cache_write_1h_tokens", 0),
                t.get("web_search_requests", 0),
                t.get("cost_pico"),
                dims.source(t.get("price_source") or "none"),
                t.get("reported_pico"),
                t.get("cache_savings_pico", 0),
                t.get("cache_write_pico", 0),
                dims.toolset(tuple(tools)) if tools else 0,
            )
        )
    writer = TurnWriter(dims, rollup_rowid_max(conn))
    return writer.write(conn, rows_dedup(dims, rows))


SECONDARY_INDEXES = {
    "turns_key": "CREATE UNIQUE INDEX IF NOT EXISTS turns_key ON turns (msg_hash, key_hash)",
    "turns_ts": "CREATE INDEX IF NOT EXISTS turns_ts ON turns (ts)",
    "rollup_bucket": "CREATE INDEX IF NOT EXISTS rollup_bucket ON rollup (bucket)",
    "tool_rollup_bucket": "CREATE INDEX IF NOT EXISTS tool_rollup_bucket ON tool_rollup (bucket)",
}


def secondary_indexes_drop(conn: sqlite3.Connection, *, keys: bool = False) -> None:
    """Drop the indexes `secondary_indexes_create` rebuilds (inside the caller's transaction);
    the unique key index only with `keys` (then `bulk_dedup` must run before the rebuild)."""
    for name in SECONDARY_INDEXES:
        if name != "turns_key" or keys:
            conn.execute(f"DROP INDEX IF EXISTS {name}")


def bulk_dedup(conn: sqlite3.Connection, writer: TurnWriter) -> int:
    """After a bulk load that appended without the unique key index: merge the turns whose key
    came more than once (by `merge_rows`, in the order a serial scan meets them: by file, then
    by position) and take the extra rows out of the rollups; returns how many rows went."""
    groups = conn.execute(
        "SELECT group_concat(id) FROM turns GROUP BY key_hash HAVING COUNT(*) > 1"
    ).fetchall()
    if not groups:
        return 0
    cols = ", ".join(TURN_COLUMNS)
    dims = writer.dims
    add = writer.rollups.add
    removed = 0
    for (ids_text,) in groups:
        marks = ",".join("?" * len(ids_text.split(",")))
        found = conn.execute(
            f"SELECT id, {cols} FROM turns WHERE id IN ({marks}) ORDER BY file_id, id",  # noqa: S608
            [int(i) for i in ids_text.split(",")],
        ).fetchall()
        ids = [r[0] for r in found]
        rows = [tuple(r[1:]) for r in found]
        merged = rows[0]
        for row in rows[1:]:
            merged = merge_rows(dims, merged, row, conn)
        for row in rows:
            add(row, dims.tools_of(conn, row[R_TOOLS]), REPORTED_SOURCE_ID, -1)
        add(merged, dims.tools_of(conn, merged[R_TOOLS]), REPORTED_SOURCE_ID)
        dims.flush(conn)
        conn.execute(
            "UPDATE turns SET "  # noqa: S608
            + ", ".join(f"{c} = ?" for c in TURN_COLUMNS)
            + " WHERE id = ?",
            (*merged, ids[0]),
        )
        extra = ",".join("?" * (len(ids) - 1))
        conn.execute(f"DELETE FROM turns WHERE id IN ({extra})", ids[1:])  # noqa: S608
        removed += len(ids) - 1
    writer._flush_rollups(conn)
    return removed


def secondary_indexes_create(
    conn: sqlite3.Connection, only: Sequence[str] | None = None, *, deduped: bool = False
) -> None:
    """Build what `secondary_indexes_drop` dropped (`only` those named). A bulk load that died
    before it was settled may have left a key twice and sidechain replays: they are merged and
    taken out first (and the rollups refreshed), unless the caller has just done so
    (`deduped`): the check is a full sort of the turns, most of the cost of the index itself."""
    if (
        not deduped
        and not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'turns_key'"
        ).fetchone()
    ):
        writer = TurnWriter(Dims(), rollup_rowid_max(conn))
        merged = bulk_dedup(conn, writer)
        # Its sidechain replays were never taken out either (every row is the bulk load's,
        # and the next scan looks only at rows it adds).
        replays = sidechain_replays(conn, 0)
        if replays:
            writer.delete(conn, replays)
        if merged or replays:
            rollups_refresh(conn, full=True)
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    # A small cache makes SQLite sort an index build in runs that its helper thread merges:
    # about twice as fast as one big in-memory sort on a million keys (and less memory).
    conn.execute("PRAGMA cache_size=-2000")
    try:
        for name, sql in SECONDARY_INDEXES.items():
            if only is None or name in only:
                conn.execute(sql)
    finally:
        conn.execute(f"PRAGMA cache_size={int(cache)}")


def max_turn_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM turns").fetchone()[0])


def sidechain_replays_among(conn: sqlite3.Connection, messages: Iterable[int]) -> list[int]:
    """formats.md 1.7 on the rows holding one of `messages` (message hashes): the ids of the
    sidechain rows that replay a message another row holds (rules.sidechain_replays_of)."""
    replays: list[int] = []
    for chunk, marks in in_chunks(sorted(messages)):
        rows = conn.execute(
            "SELECT t.msg_hash, t.id, c.is_sidechain FROM turns AS t "  # noqa: S608
            f"JOIN contexts AS c ON c.id = t.context_id WHERE t.msg_hash IN ({marks}) "
            "ORDER BY t.msg_hash, t.id",
            chunk,
        )
        for _msg, group in itertools.groupby(rows, key=lambda r: r[0]):
            replays.extend(rules.sidechain_replays_of([(r[1], bool(r[2])) for r in group]))
    return replays


def sidechain_replays(conn: sqlite3.Connection, since_id: int) -> list[int]:
    """formats.md 1.7 on rows added after `since_id`: the ids of sidechain rows that replay a
    message another row holds (a main-thread row, or a sidechain row seen earlier)."""
    if since_id <= 0:
        # Everything is new: the message ids held more than once, straight off their index.
        wanted = "SELECT msg_hash FROM turns GROUP BY msg_hash HAVING COUNT(*) > 1"
        params: tuple[int, ...] = ()
    else:
        wanted = "SELECT msg_hash FROM turns WHERE id > ?"
        params = (since_id,)
    # Every row holding one of those message ids, in one query, grouped here. (`wanted` is one
    # of the two fixed queries above.)
    query = (
        "SELECT t.msg_hash, t.id, c.is_sidechain FROM turns AS t "  # noqa: S608
        f"JOIN contexts AS c ON c.id = t.context_id WHERE t.msg_hash IN ({wanted}) "
        "ORDER BY t.msg_hash, t.id"
    )
    rows = conn.execute(query, params)
    replays: list[int] = []
    for _msg, group in itertools.groupby(rows, key=lambda r: r[0]):
        # (The rows at most `since_id` were settled when they were written.)
        replays.extend(rules.sidechain_replays_of([(r[1], bool(r[2])) for r in group]))
    return replays
