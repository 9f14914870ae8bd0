"""Migrations: a plain ordered list, each entry applied once, in order; the schema version is
the number applied. Never edit or reorder an entry that has shipped. (The rollup tables' metric
columns are generated from schema.ROLLUP_METRICS as those entries shipped them:
METRICS_OF_MIGRATION_3.)

Layout (schema 3). A turn row is narrow: integers only, plus its readable de-dup key. What many
turns share lives in small dimension tables keyed by a 64-bit hash of their fields (dims.py):

- `contexts`: source, agent, project, session, sub-agent, sidechain flag, git branch;
- `models`: provider, model, speed;
- `price_sources`: which price produced a cost (`genai-prices:<version>`, `override:<name>`,
  `reported`, `local`, `none`);
- `toolsets`: the JSON list of tool names a turn called (id 0 is "none").

`turns_wide` and `rollup_wide` are views with the names spelled out, for people and for the
less frequent queries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from clawtrace import rules
from clawtrace.store.dims import Dims
from clawtrace.store.rollups import rollup_rowid_max, rollups_rebuild, rollups_refresh
from clawtrace.store.schema import (
    DERIVED_TABLES,
    METRICS_OF_MIGRATION_3,
    derived_tables,
    metric_columns,
)
from clawtrace.store.writer import TurnWriter, sidechain_replays


class StoreError(Exception):
    """The store cannot be opened or is from a newer ClawTrace."""


MIGRATIONS: list[str] = [
    # 1: the initial schema.
    f"""
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
        {metric_columns(METRICS_OF_MIGRATION_3)},
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
        details_json TEXT NOT NULL DEFAULT '{{}}',
        channels_json TEXT NOT NULL DEFAULT '[]',
        UNIQUE (rule, window_key)
    );
    """,  # noqa: S608  (fixed text: the metric columns)
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
    f"""
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
        {metric_columns(METRICS_OF_MIGRATION_3)},
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
    """,  # noqa: S608  (fixed text: the metric columns)
]


def _rollups_rebuild_all(conn: sqlite3.Connection) -> None:
    rollups_rebuild(conn, None)


# 4: rollups for the turns migration 3 carried over (derived data: rebuilt by the current code).
MIGRATIONS.append(_rollups_rebuild_all)


# 5: coarser sums for the reports, derived from the rollups (see `derived_refresh`): per bucket
# and model (reports over time), per UTC day, context and model (reports by project, session...),
# and per UTC day, model and tool. On a million turns they are 6x to 100x smaller than `rollup`.
MIGRATIONS.append(
    derived_tables("")
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
_DERIVED_DROP = "".join(f"    DROP TABLE {table};\n" for table in DERIVED_TABLES)
MIGRATIONS.append(f"\n{_DERIVED_DROP}    DELETE FROM meta WHERE key = 'derived_marks';\n    ")  # noqa: S608


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
# before `offset` (scan.discovery.known_bytes_match).
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
