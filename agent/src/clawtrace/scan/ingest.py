"""The writer of a scan, one per process: it reads a batch of files, parses and prices their
turns, and writes them with the files' new offsets in one transaction (`Ingest`, the reference
pipeline in Python with C helpers; `NativeIngest`, a worker's writer in C, held to it by
tests/test_native_parity.py). And what a native bulk load leaves to settle at its end.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any

import orjson

from clawtrace import rules, store
from clawtrace.config import Config
from clawtrace.paths import path_to_store
from clawtrace.rules import (
    RT_AGENT,
    RT_CACHE_READ,
    RT_CACHE_WRITE_1H,
    RT_CACHE_WRITE_5M,
    RT_GIT_BRANCH,
    RT_INPUT,
    RT_KEY_HASH,
    RT_MODEL,
    RT_MSG_HASH,
    RT_OUTPUT,
    RT_PROJECT,
    RT_PROVIDER,
    RT_REPORTED_USD,
    RT_SESSION,
    RT_SIDECHAIN,
    RT_SPEED,
    RT_SUBAGENT,
    RT_TOOLS,
    RT_TS,
    RT_WEB_SEARCH,
)
from clawtrace.scan import reading
from clawtrace.scan.prices import card_for, price_slow
from clawtrace.sources import SOURCES, base

# The native writer, when built and the C scanner is on (CLAWTRACE_NATIVE). Its own name here:
# tests turn it off for the scan alone.
ingest_module = store.native_ingest


def native_workers() -> bool:
    return ingest_module() is not None


# A bulk load's writers journal (key, rowid, message, context) of every row here; the main
# process merges the keys met twice and drops the sidechain replays from these (see
# bulk_settle) instead of sorting every key into an index first.
KEYS_SUFFIX = ".keys-"


class Ingest:
    """Reads, parses and prices files, and writes their turns: one per process."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        config: Config,
        rollup_before: int,
        lock: Any = None,
    ) -> None:
        from clawtrace.pricing import Pricer

        self.conn = conn
        self.pricer = Pricer(config)
        self.dims = store.Dims()
        self.writer = store.TurnWriter(self.dims, rollup_before)
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.now = store.now_ms()
        # (provider, model, UTC day, speed) → what the C scanner needs to price a turn
        # (see _card_for); filled as models and days turn up.
        self.cards: dict[tuple[Any, ...], Any] = {}

    def batch(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """Read and write a batch of files in one transaction; returns per-file outcomes
        (`files`) and how many turns were new to the store (`new`)."""
        rows: list[tuple[Any, ...]] = []

        def parse(task: dict[str, Any], buf: bytearray, n: int, state: Any) -> Any:
            res = SOURCES[task["source"]].parse(bytes(buf[:n]), task["ctx"], state)
            self._price(task["source"], task["file_id"], res.turns, rows)
            res.records = len(res.turns)
            return res

        outs = [reading.read_file(t, parse) for t in tasks]
        rows = store.rows_dedup(self.dims, rows)
        conn = self.conn
        new_files, updates = files_outcome(tasks, outs, self.now)
        with self.lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(FILES_NEW_SQL, new_files)
                new = self.writer.write(conn, rows)
                files_done(conn, updates)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return {"files": outs, "new": new}

    def _price(
        self, source: str, file_id: int, turns: list[tuple[Any, ...]], rows: list[tuple[Any, ...]]
    ) -> None:
        """Raw turns (sources.base.RawTurn) → `turns` rows (store.TURN_COLUMNS)."""
        native = base.native()
        if native is not None:
            native.finish(
                turns,
                source,
                file_id,
                self.dims,
                self.cards,
                self._card_for,
                self._price_slow,
                rows,
                store.REPORTED_SOURCE_ID,
                store.NONE_SOURCE_ID,
            )
            return
        dims = self.dims
        contexts, models, toolsets = dims.contexts, dims.models, dims.toolsets
        price = self.pricer.price
        sources = dims.sources
        reported_pico = rules.reported_pico
        for r in turns:
            ckey = (
                source,
                r[RT_AGENT],
                r[RT_PROJECT],
                r[RT_SESSION],
                r[RT_SUBAGENT],
                r[RT_SIDECHAIN],
                r[RT_GIT_BRANCH],
            )
            cid = contexts.get(ckey)
            if cid is None:
                cid = dims.context(ckey)
            mkey = (r[RT_PROVIDER], r[RT_MODEL], r[RT_SPEED])
            mid = models.get(mkey)
            if mid is None:
                mid = dims.model(mkey)
            rep = reported_pico(r[RT_REPORTED_USD])
            counts = r[RT_INPUT : RT_WEB_SEARCH + 1]
            cost, src, savings, writes = price(
                r[RT_PROVIDER], r[RT_MODEL], r[RT_TS], counts, r[RT_SPEED], rep
            )
            sid = sources.get(src)
            if sid is None:
                sid = dims.source(src)
            tools = r[RT_TOOLS]
            if tools:
                tid = toolsets.get(tools)
                if tid is None:
                    tid = dims.toolset(tools)
            else:
                tid = 0
            rows.append(  # (rules.TURN_COLUMNS)
                (
                    r[RT_KEY_HASH],
                    r[RT_MSG_HASH],
                    file_id,
                    cid,
                    mid,
                    r[RT_TS],
                    r[RT_INPUT],
                    r[RT_OUTPUT],
                    r[RT_CACHE_READ],
                    r[RT_CACHE_WRITE_5M],
                    r[RT_CACHE_WRITE_1H],
                    r[RT_WEB_SEARCH],
                    cost,
                    sid,
                    rep,
                    savings,
                    writes,
                    tid,
                )
            )

    def _card_for(self, provider: str, model: str, ts: int, speed: str | None) -> Any:
        """`card_for`, remembered for the C helpers."""
        value = card_for(self.pricer, provider, model, ts, speed)
        if value:
            self.dims.source(value[1])
        self.cards[(provider, model, ts // 86_400_000, speed)] = value
        return value

    def _price_slow(self, *turn: Any) -> tuple[Any, ...]:
        return price_slow(self.pricer, self.dims.source, *turn)


class NativeIngest:
    """A worker's writer in C (`_native.Ingest`): the same rows, rollups and offsets as
    `Ingest`, without a Python object per turn."""

    def __init__(self, db: str, config: Config, lock: Any, stale: list[int], bulk: bool) -> None:
        from clawtrace.pricing import Pricer

        native = ingest_module()
        assert native is not None
        self.pricer = Pricer(config)
        self.pricer.warm()
        self.sink = native.Ingest(
            db,
            self._card_for,
            self._price_slow,
            store.REPORTED_SOURCE_ID,
            store.NONE_SOURCE_ID,
            stale,
            1 if bulk else 0,
            f"{db}{KEYS_SUFFIX}{os.getpid()}" if bulk else None,
        )
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.now = store.now_ms()

    def _card_for(self, provider: str, model: str, ts: int, speed: str | None) -> Any:
        return card_for(self.pricer, provider, model, ts, speed)

    def _price_slow(self, *turn: Any) -> tuple[Any, ...]:
        return price_slow(self.pricer, lambda name: store.dim_id("p", name), *turn)

    def batch(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        sink = self.sink

        def parse(task: dict[str, Any], buf: bytearray, n: int, state: Any) -> Any:
            return SOURCES[task["source"]].ingest(sink, buf, n, task["ctx"], state, task["file_id"])

        outs = [reading.read_file(t, parse) for t in tasks]
        new_files, updates = files_outcome(tasks, outs, self.now)
        sink.prepare()  # what can be done before taking the store's write lock
        with self.lock:
            new = sink.commit(updates, new_files)
        return {"files": outs, "new": new}


# A new file's row, whole: it goes in with the batch that read it (files_outcome).
FILES_NEW_SQL = (
    "INSERT INTO files (id, path, source, first_seen, ctx_json, size, mtime_ns, inode, "
    "ctime_ns, head_hash, tail_hash, offset, lines, malformed, turn_lines, state_json, "
    "last_scan) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def files_outcome(
    tasks: list[dict[str, Any]], outs: list[dict[str, Any]], now: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What a batch's files leave in the store: the rows of the files it does not know yet
    (FILES_NEW_SQL), and the updates of the others (files_done)."""
    new_rows: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    for t, o in zip(tasks, outs, strict=True):
        update = _file_update(t, o, now)
        if t.get("new"):
            new_rows.append(
                (t["file_id"], path_to_store(t["path"]), t["source"], now, ctx_json(t["ctx"]))
            )
            new_rows[-1] += update[1:13]  # size ... state_json, last_scan
        else:
            updates.append(update)
    return new_rows, updates


def _file_update(t: dict[str, Any], out: dict[str, Any], now: int) -> tuple[Any, ...]:
    return (
        t["reset"],
        t["size"] if out["error"] is None else 0,
        t["mtime_ns"],
        t["inode"],
        t["ctime_ns"],
        out["head"],
        out["tail"],
        out["offset"],
        out["lines"],
        out["malformed"],
        out["turn_lines"],
        orjson.dumps(out["state"]).decode() if out["state"] else None,
        now,
        out["file_id"],
    )


def files_done(conn: sqlite3.Connection, updates: list[tuple[Any, ...]]) -> None:
    """Each known file's new size, offset, counts and parser state (`_file_update`; inside the
    caller's transaction: offsets move exactly when their turns are stored)."""
    head = (
        "UPDATE files SET size = ?, mtime_ns = ?, inode = ?, ctime_ns = ?, head_hash = ?, "
        "tail_hash = ?, offset = ?, "
    )
    tail = ", state_json = ?, last_scan = ?, missing_since = NULL WHERE id = ?"
    fresh = [u[1:] for u in updates if u[0]]
    grown = [u[1:] for u in updates if not u[0]]
    if fresh:
        conn.executemany(head + "lines = ?, malformed = ?, turn_lines = ?" + tail, fresh)
    if grown:
        conn.executemany(
            head
            + "lines = lines + ?, malformed = malformed + ?, turn_lines = turn_lines + ?"
            + tail,
            grown,
        )


def ctx_json(ctx: dict[str, Any]) -> str:
    return orjson.dumps(ctx, option=orjson.OPT_SORT_KEYS).decode()


def journals_remove(db: str) -> list[str]:
    import glob

    found = glob.glob(glob.escape(db + KEYS_SUFFIX) + "*") if db else []
    for path in found:
        with contextlib.suppress(OSError):
            os.remove(path)
    return found


def bulk_settle(db: str) -> tuple[int, int]:
    """After a native bulk load: the keys the workers journaled more than once merged, and the
    sidechain replays taken out, in C (the rules of store.bulk_dedup and
    store.sidechain_replays); returns (rows merged away, replays removed)."""
    import glob

    native = ingest_module()
    assert native is not None
    journals = glob.glob(glob.escape(db + KEYS_SUFFIX) + "*")
    settler = native.Ingest(
        db,
        lambda *_a: None,  # (settling merges priced rows: it never prices)
        lambda *_a: False,
        store.REPORTED_SOURCE_ID,
        store.NONE_SOURCE_ID,
        [],
        2,
    )
    merged_away, replays = settler.settle(journals)
    del settler
    journals_remove(db)
    return merged_away, replays
