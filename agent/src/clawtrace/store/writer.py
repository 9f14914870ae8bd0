"""Writing turns: the de-dup rule across files and scans (formats.md 1.6), the sidechain-replay
rule (1.7), and the rollups kept right as turns go in, are replaced or are taken out."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson

from clawtrace import rules
from clawtrace.rules import (
    R_CTX,
    R_KEY,
    R_MSG,
    R_TOOLS,
    R_TS,
    TURN_COLUMNS,
)
from clawtrace.store.dims import REPORTED_SOURCE_ID, Dims, key_hash
from clawtrace.store.rollups import (
    Rollups,
    buckets_stale,
    dirty_buckets_mark,
    rollup_rowid_max,
)
from clawtrace.store.schema import (
    BUCKET_MS,
    in_chunks,
)

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
