"""What the server has not acknowledged yet, kept in the store itself.

Three things must reach the server: turns it has never seen, turns that changed after they
were sent (a streamed reply whose fuller copy arrived later, a re-price), and turns the store
no longer counts (a sidechain replay found after its row was sent). The first are every turn
past a cursor (turn ids only grow); the other two are recorded by triggers, which exist only
once the machine is linked, so a scan of an unlinked store pays nothing for them.

`sync_high` is the highest turn id ever handed to the sender. A row at or below it that changes
is queued again even while its batch is in flight, so an acknowledgement can never swallow a
change made after the batch was read; each queued change carries a sequence number and only
the change that was sent is taken off the queue.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import orjson

from clawtrace import store

BATCH_EVENTS = 1000
CURSOR = "sync_cursor"  # (meta) every turn id at or below it has been acknowledged
HIGH = "sync_high"  # (meta) the highest turn id read for sending


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_seq (n INTEGER NOT NULL);
INSERT INTO sync_seq SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM sync_seq);
CREATE TABLE IF NOT EXISTS sync_changed (turn_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sync_retract (
    event_id TEXT PRIMARY KEY,
    key_hash INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS sync_turn_changed AFTER UPDATE ON turns
WHEN OLD.id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'sync_high')
BEGIN
    UPDATE sync_seq SET n = n + 1;
    INSERT OR REPLACE INTO sync_changed VALUES (NEW.id, (SELECT n FROM sync_seq));
    INSERT OR REPLACE INTO sync_retract
        SELECT printf('%016x%016x', COALESCE(OLD.msg_hash, 0), OLD.key_hash), OLD.key_hash,
               (SELECT n FROM sync_seq)
        WHERE OLD.key_hash != NEW.key_hash OR OLD.msg_hash IS NOT NEW.msg_hash;
END;
CREATE TRIGGER IF NOT EXISTS sync_turn_removed AFTER DELETE ON turns
WHEN OLD.id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'sync_high')
BEGIN
    UPDATE sync_seq SET n = n + 1;
    DELETE FROM sync_changed WHERE turn_id = OLD.id;
    INSERT OR REPLACE INTO sync_retract VALUES (
        printf('%016x%016x', COALESCE(OLD.msg_hash, 0), OLD.key_hash), OLD.key_hash,
        (SELECT n FROM sync_seq)
    );
END;
"""

_DROP = """
DROP TRIGGER IF EXISTS sync_turn_changed;
DROP TRIGGER IF EXISTS sync_turn_removed;
DROP TABLE IF EXISTS sync_changed;
DROP TABLE IF EXISTS sync_retract;
DROP TABLE IF EXISTS sync_seq;
"""


def _usd_sql(column: str) -> str:
    """Picodollars as an exact decimal string, in SQL (see `usd`: the same text)."""
    return (
        f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} >= 0 THEN "
        f"printf('%d.%012d', {column} / 1000000000000, {column} % 1000000000000) ELSE "
        f"printf('-%d.%012d', -{column} / 1000000000000, -{column} % 1000000000000) END"
    )


_EVENT_COLUMNS = (
    "id, printf('%016x%016x', COALESCE(msg_hash, 0), key_hash), source, agent, project, "
    "session_id, model, provider, "
    # ISO 8601 in UTC from whole milliseconds, in integer arithmetic (exact, and done by SQLite's
    # C rather than a datetime per row: a sync of a million turns formats a million of them)
    "strftime('%Y-%m-%dT%H:%M:%S', ts / 1000, 'unixepoch') || printf('.%03dZ', ts % 1000), "
    "input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, "
    f"{_usd_sql('cost_pico')}, price_source, {_usd_sql('reported_pico')}, "
    "is_sidechain, tools, git_branch"
)


@dataclass(frozen=True)
class Privacy:
    """How labels leave the machine: `name` (a path's last component), `hash` (salted, so a
    team still sees one project as one), `omit`, or `path` (only when asked for)."""

    project_names: str = "name"
    git_branches: str = "name"
    salt: str = ""

    def project(self, value: str) -> str | None:
        return _label(value, self.project_names, self.salt, last_component=True)

    def branch(self, value: str) -> str | None:
        return _label(value, self.git_branches, self.salt, last_component=False)


@functools.lru_cache(maxsize=65536)  # (a store has few projects and branches, read per turn)
def _label(value: str, choice: str, salt: str, *, last_component: bool) -> str | None:
    if not value or choice == "omit":
        return None
    if choice == "hash":
        digest = hashlib.blake2b(value.encode(), key=salt.encode()[:64], digest_size=8)
        return f"h:{digest.hexdigest()}"
    if choice == "name" and last_component:
        parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
        return parts[-1][:200] if parts else None
    return value[:200]


@functools.lru_cache(maxsize=4096)
def _tool_names(stored: str | None) -> tuple[str, ...]:
    return tuple(str(t)[:64] for t in orjson.loads(stored or "[]"))[:64]


@dataclass
class Batch:
    """One request's worth: events (new or changed) and retractions, and what acknowledging it
    takes off the queue."""

    events: list[dict[str, Any]] = field(default_factory=list)
    retract: list[str] = field(default_factory=list)
    high: int = 0  # the cursor once acknowledged (0: this batch moves no cursor)
    changed: list[tuple[int, int]] = field(default_factory=list)  # (turn id, seq)
    retracted: list[tuple[str, int]] = field(default_factory=list)  # (event id, seq)
    stale_retracts: list[tuple[str, int]] = field(default_factory=list)

    def body(self) -> bytes:
        doc: dict[str, Any] = {"events": self.events}
        if self.retract:
            doc["retract"] = self.retract
        return orjson.dumps(doc)

    def __bool__(self) -> bool:
        return bool(self.events or self.retract or self.stale_retracts)


def outbox_enable(conn: sqlite3.Connection) -> None:
    """Start keeping the queue (at login): idempotent."""
    with conn:
        conn.executescript(_SCHEMA)
        for key in (CURSOR, HIGH):
            conn.execute("INSERT OR IGNORE INTO meta VALUES (?, '0')", (key,))


def outbox_disable(conn: sqlite3.Connection) -> None:
    """Stop keeping it (at logout): the next server linked gets every turn again."""
    with conn:
        conn.executescript(_DROP)
        conn.execute("DELETE FROM meta WHERE key IN (?, ?)", (CURSOR, HIGH))


def outbox_reset(conn: sqlite3.Connection) -> None:
    """`sync --resync`: everything is sent again (the server's idempotency absorbs it)."""
    outbox_enable(conn)
    with conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = ?", (CURSOR,))
        conn.execute("DELETE FROM sync_changed")
        conn.execute("DELETE FROM sync_retract")


def enabled(conn: sqlite3.Connection) -> bool:
    return store.meta_get(conn, CURSOR) is not None


def pending(conn: sqlite3.Connection) -> dict[str, int]:
    cursor = int(store.meta_get(conn, CURSOR) or 0)
    new = conn.execute("SELECT count(*) FROM turns WHERE id > ?", (cursor,)).fetchone()[0]
    changed = conn.execute("SELECT count(*) FROM sync_changed").fetchone()[0]
    retract = conn.execute("SELECT count(*) FROM sync_retract").fetchone()[0]
    return {"new": new, "changed": changed, "retract": retract}


def next_batch(
    conn: sqlite3.Connection,
    privacy: Privacy,
    *,
    after: int | None = None,
    peek: bool = False,
    limit: int = BATCH_EVENTS,
) -> Batch:
    """The next request to send: retractions and changed turns first (few, and older than any
    new turn), then new turns in the order they were recorded. `peek` marks nothing as handed
    out (a dry run); `after` reads only new turns past that id (a dry run's later batches)."""
    batch = Batch()
    with conn:
        conn.execute("BEGIN IMMEDIATE")  # (so that sync_high and the read are one moment)
        if after is None:
            _queued(conn, batch, privacy, limit)
        room = limit - len(batch.retract) - len(batch.events)
        if room > 0:
            cursor = after if after is not None else int(store.meta_get(conn, CURSOR) or 0)
            rows = _events(conn, "id > ?", (cursor,), privacy, limit=room, keep_ids=True)
            if rows:
                for row in rows:
                    batch.high = row.pop("_id")
                batch.events += rows
                high = int(store.meta_get(conn, HIGH) or 0)
                if not peek and batch.high > high:
                    conn.execute("UPDATE meta SET value = ? WHERE key = ?", (str(batch.high), HIGH))
    return batch


def _queued(conn: sqlite3.Connection, batch: Batch, privacy: Privacy, limit: int) -> None:
    for event_id, key_hash, seq in conn.execute(
        "SELECT event_id, key_hash, seq FROM sync_retract ORDER BY seq LIMIT ?", (limit,)
    ).fetchall():
        if conn.execute("SELECT 1 FROM turns WHERE key_hash = ?", (key_hash,)).fetchone():
            batch.stale_retracts.append((event_id, seq))  # (back again: nothing to take out)
        else:
            batch.retract.append(event_id)
            batch.retracted.append((event_id, seq))
    batch.changed = conn.execute(
        "SELECT turn_id, seq FROM sync_changed ORDER BY turn_id LIMIT ?",
        (limit - len(batch.retract),),
    ).fetchall()
    ids = [turn_id for turn_id, _ in batch.changed]
    for chunk, marks in store.in_chunks(ids):
        batch.events += _events(conn, f"id IN ({marks})", tuple(chunk), privacy)


def acknowledge(conn: sqlite3.Connection, batch: Batch) -> None:
    """The server stored `batch`: move the cursor past it and take what it sent off the queue
    (only the versions that were sent: a change since then stays queued)."""
    with conn:
        if batch.high:
            conn.execute(
                "UPDATE meta SET value = CAST(MAX(CAST(value AS INTEGER), ?) AS TEXT) "
                "WHERE key = ?",
                (batch.high, CURSOR),
            )
        conn.executemany("DELETE FROM sync_changed WHERE turn_id = ? AND seq = ?", batch.changed)
        conn.executemany(
            "DELETE FROM sync_retract WHERE event_id = ? AND seq = ?",
            batch.retracted + batch.stale_retracts,
        )


def _events(
    conn: sqlite3.Connection,
    where: str,
    params: tuple[Any, ...],
    privacy: Privacy,
    *,
    limit: int | None = None,
    keep_ids: bool = False,
) -> list[dict[str, Any]]:
    sql = f"SELECT {_EVENT_COLUMNS} FROM turns_wide WHERE {where} ORDER BY id"  # noqa: S608
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    out = []
    for row in conn.execute(sql, params):
        event = event_from_row(row, privacy)
        if keep_ids:
            event["_id"] = row[0]
        out.append(event)
    return out


def event_from_row(row: tuple[Any, ...], privacy: Privacy) -> dict[str, Any]:
    """One turn as the ingest API takes it (docs/sync-protocol.md). Every value comes from a
    column of counts, ids, labels or times: the store holds no message text to leak."""
    (
        _id,
        event_id,
        source,
        agent,
        project,
        session_id,
        model,
        provider,
        ts,
        inp,
        out,
        cread,
        w5,
        w1,
        web,
        cost,
        price_source,
        reported,
        sidechain,
        tools,
        branch,
    ) = row
    return {
        "event_id": event_id,
        "source": source,
        "agent": (agent or "")[:128],
        "project": privacy.project(project or ""),
        "session_id": (session_id or "")[:200],
        "model": (model or "")[:200],
        "provider": (provider or "")[:64],
        "timestamp": ts,
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": cread,
        "cache_write_5m_tokens": w5,
        "cache_write_1h_tokens": w1,
        "web_search_requests": web,
        "cost_usd": cost,
        "logged_cost_usd": reported,
        "price_source": (price_source or "")[:32],
        "is_sidechain": bool(sidechain),
        "tools": list(_tool_names(tools)),
        "git_branch": privacy.branch(branch or ""),
    }


def usd(pico: int | None) -> str | None:
    """Picodollars as an exact decimal string (a float would round a big sum)."""
    if pico is None:
        return None
    sign = "-" if pico < 0 else ""
    whole, frac = divmod(abs(int(pico)), 10**12)
    return f"{sign}{whole}.{frac:012d}"
