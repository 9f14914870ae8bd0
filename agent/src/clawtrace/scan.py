"""Incremental scan: find transcript files, read only what was appended, price, store.

Per file the store keeps its size, mtime, inode, a hash of its first bytes and the offset read so
far. A file whose size and mtime are unchanged is not opened (a warm rescan parses nothing). A
grown file with the same inode and head is read from the stored offset; a truncated, rotated or
replaced one is read again from the start (its turns meet their stored keys, so nothing is
counted twice, and turns of content that vanished stay: history never shrinks).

Work goes out in batches of files; a batch is read, parsed, priced and de-duplicated, then
written in one transaction with its files' new offsets: a scan that stops halfway loses
nothing. A small scan runs in this process (`_Ingest`, the reference pipeline in Python with C
helpers). A big one (a first scan, a new machine's worth of logs) runs in worker processes
(fork), started as soon as discovery finds enough to read so that their start-up overlaps it.
Each worker parses and prices its batches on its own and takes turns writing to the store (a
lock hands it from one to the next); where the C extension is built, a worker does all of that
in C (`_native.Ingest`, held to the Python pipeline by tests/test_native_parity.py).

One scan runs at a time per store (a lock file beside it): the CLI and `serve` never read the
same offsets twice.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from clawtrace import rules, store
from clawtrace.config import Config
from clawtrace.fileio import open_regular
from clawtrace.paths import (
    claude_roots,
    label,
    openclaw_roots,
    path_from_store,
    path_to_store,
)
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
from clawtrace.sources import SOURCES, base
from clawtrace.sources.base import Discovery, FileEntry

HEAD_BYTES = 4096
TAIL_BYTES = 4096
UTF8_BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 4 * 1024 * 1024  # per read: bounds a worker's memory on huge transcripts
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
IN_FLIGHT_PER_WORKER = 2
BATCH_BYTES = 32 * 1024 * 1024
BATCH_BYTES_MIN = 1024 * 1024
SERIAL_BATCH_BYTES = 8 * 1024 * 1024  # the Python writer holds a batch's rows as objects
LIST_AHEAD_FILES = 2048  # files a parallel scan lists ahead of its workers
LISTING_RECORDS_HELD = 8192  # what the listing found, written once there is this much
BATCH_FILES = 256
WORKER_CACHE_KIB = 8_000

# progress(total_bytes, files, growing=...) -> tick(read_bytes, total=..., files=...) or None.
# With growing=True the listing goes on: a later tick(0, total=..., files=...) gives the totals.
ProgressFactory = Callable[..., Callable[..., None] | None]


@dataclass
class ScanResult:
    files_seen: int = 0
    files_read: int = 0
    files_unchanged: int = 0
    files_reset: int = 0
    files_missing: int = 0
    bytes_read: int = 0
    lines: int = 0
    malformed: int = 0
    turn_rows: int = 0
    turns_total: int = 0
    repriced: int = 0
    seconds: float = 0.0
    roots: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def source_roots(
    config: Config, claude_dirs: list[str] | None = None, openclaw_dirs: list[str] | None = None
) -> dict[str, list[Path]]:
    return {
        "claude-code": claude_roots(claude_dirs or config.claude_dirs),
        "openclaw": openclaw_roots(openclaw_dirs or config.openclaw_dirs),
    }


def _block_hash(data: bytes | bytearray | memoryview) -> str:
    return f"{len(data)}:{hashlib.blake2b(data, digest_size=12).hexdigest()}"


def _known_bytes_match(path: str, head: str | None, tail: str | None, offset: int) -> bool:
    """Whether the file still starts with the bytes read first (`head`) and still holds, just
    before `offset`, the last block read (`tail`): only then is what lies past `offset` what
    was appended. A rewritten tail, or a rewrite that kept size and times, fails it, and the
    file is read again from the start (its known turns meet their keys: nothing counts
    twice). A `tail` of None (a row from before it was kept) checks the head alone."""
    if not head:
        return False
    try:
        blocks = [(0, head)]
        if tail:
            n = int(tail.partition(":")[0])
            blocks.append((offset - n, tail))
        fd = open_regular(path)
        try:
            for start, stored in blocks:
                n = int(stored.partition(":")[0])
                if start < 0 or _block_hash(os.pread(fd, n, start)) != stored:
                    return False
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return False
    return True


# --- the writer (in a worker process, or in-process) ----------------------------------------


class _Ingest:
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

        outs = [_read_file(t, parse) for t in tasks]
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


def price_slow(
    pricer: Any,
    source_id: Callable[[str], int],
    provider: str,
    model: str,
    ts: int,
    counts: tuple[int, ...],
    speed: str | None,
    reported: int | None,
) -> tuple[Any, ...]:
    """A turn the C helpers price through Python (`card_for` said False: prices that are not
    whole picodollars, or that change within a day): (cost, price source id, price source,
    cache savings, cache write cost)."""
    cost, src, savings, writes = pricer.price(provider, model, ts, counts, speed, reported)
    return cost, source_id(src), src, savings, writes


def card_for(pricer: Any, provider: str, model: str, ts: int, speed: str | None) -> Any:
    """The C scanner's price for (provider, model, the UTC day of `ts`, speed): None for no
    price, (source id, source name, ((threshold, six integer rates), ...)), or False for "ask
    Python turn by turn" (prices that are not whole picodollars, or that change within a
    day)."""
    from clawtrace.pricing import clean_model

    if model == "<synthetic>" or pricer.is_time_of_day(provider, clean_model(model)):
        return False
    card = pricer.card(provider, model, ts, speed)
    if card is None:
        return None
    if card.int_tiers is None:
        return False
    tiers = tuple((t, *rates) for t, rates in card.int_tiers)
    return (store.dim_id("p", card.source), card.source, tiers)


# A bulk load's writers journal (key, rowid, message, context) of every row here; the main
# process merges the keys met twice and drops the sidechain replays from these (see
# _bulk_settle) instead of sorting every key into an index first.
KEYS_SUFFIX = ".keys-"

# One read buffer per process, reused: a fresh `bytes` per read costs a page fault per 4 KB,
# which over a gigabyte of logs is seconds.
_buf = bytearray()


def _read_file(task: dict[str, Any], parse: Callable[..., Any]) -> dict[str, Any]:
    """Read one file from its offset up to the size it had when discovered, in chunks, each
    through `parse(task, buf, n, state)` (the chunk is buf[:n]; returns a
    sources.base.ParseResult); returns the file's outcome. What was appended since discovery
    waits for the next scan."""
    global _buf
    offset = task["offset"]
    state = task["state"]
    out: dict[str, Any] = {
        "file_id": task["file_id"],
        "lines": 0,
        "malformed": 0,
        "turn_lines": 0,
        "rows": 0,
        "error": None,
        "head": None,
        "tail": task.get("tail"),
    }
    end = task["size"]
    chunk = CHUNK_BYTES
    try:
        # (os-level reads: a file object costs more than reading a typical transcript.)
        fd = open_regular(task["path"])
        try:
            # Whether the last line read had no newline (a whole JSON object at the end:
            # sources.base.lines_end). When it comes, the newline ends that line: it is no
            # empty line of its own (a scan from scratch counts one line there).
            after_tail = False
            if offset:
                first = os.read(fd, HEAD_BYTES)
                out["head"] = _block_hash(first)
                bom_only = offset == len(UTF8_BOM) and first.startswith(UTF8_BOM)
                after_tail = not bom_only and os.pread(fd, 1, offset - 1) != b"\n"
            start = -1  # where the buffer's bytes begin in the file
            while offset < end:
                want = min(chunk, end - offset)
                if len(_buf) < want:
                    _buf = bytearray(max(want, 2 * len(_buf)))
                os.lseek(fd, offset, os.SEEK_SET)
                n = _read_into(fd, memoryview(_buf)[:want])
                start = offset
                if out["head"] is None:
                    out["head"] = _block_hash(_buf[: min(n, HEAD_BYTES)])
                    if _buf[:3] == UTF8_BOM:
                        # A byte order mark before the first line is not part of it.
                        offset += 3
                        continue
                if not n:
                    break  # shorter than it was: the next scan sees it reset
                if after_tail:
                    after_tail = False
                    if _buf[0] == 0x0A:  # (b"\n")
                        offset += 1
                        continue
                res = parse(task, _buf, n, state)
                if res.consumed == 0:
                    if offset + n >= end:
                        break  # only a half-written last line: wait for the rest
                    chunk *= 2  # a line longer than the chunk
                    continue
                offset += res.consumed
                after_tail = _buf[res.consumed - 1] != 0x0A
                state = res.state
                out["lines"] += res.lines
                out["malformed"] += res.malformed
                out["turn_lines"] += res.turn_lines
                out["rows"] += res.records
            if offset and start >= 0:
                # The last block read, for the next scan to know that it is still there.
                lo = max(offset - TAIL_BYTES, 0)
                if lo >= start:
                    out["tail"] = _block_hash(_buf[lo - start : offset - start])
                else:
                    out["tail"] = _block_hash(os.pread(fd, offset - lo, lo))
        finally:
            os.close(fd)
    except OSError as exc:
        out["error"] = f"{exc.__class__.__name__}: {exc.strerror or exc}"
    out["offset"] = offset
    out["state"] = state
    return out


def _read_into_by_copy(fd: int, view: memoryview) -> int:
    data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


def _read_into_directly(fd: int, view: memoryview) -> int:
    return os.readv(fd, [view])


_read_into = _read_into_directly if hasattr(os, "readv") else _read_into_by_copy  # (Windows)


# A new file's row, whole: it goes in with the batch that read it (scan.files_outcome).
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
                (t["file_id"], path_to_store(t["path"]), t["source"], now, _ctx_json(t["ctx"]))
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


class _NativeIngest:
    """A worker's writer in C (`_native.Ingest`): the same rows, rollups and offsets as
    `_Ingest`, without a Python object per turn."""

    def __init__(self, db: str, config: Config, lock: Any, stale: list[int], bulk: bool) -> None:
        from clawtrace.pricing import Pricer

        native = _ingest_module()
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

        outs = [_read_file(t, parse) for t in tasks]
        new_files, updates = files_outcome(tasks, outs, self.now)
        sink.prepare()  # what can be done before taking the store's write lock
        with self.lock:
            new = sink.commit(updates, new_files)
        return {"files": outs, "new": new}


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


_worker: Any = None


def _pool_init(
    db_path: str, config: Config, lock: Any, stale: list[int], rollup_before: int, bulk: bool
) -> None:
    """A worker: its writer, and the price library loaded up front (it is slow to import, and
    this runs while the main process is still discovering files)."""
    global _worker
    gc.disable()  # the scan makes millions of small objects and no cycles
    if _native_workers():
        _worker = _NativeIngest(db_path, config, lock, stale, bulk)
        return
    conn = sqlite3.connect(db_path, timeout=60.0, isolation_level=None)
    store._configure(conn, WORKER_CACHE_KIB)
    if bulk:
        conn.execute("PRAGMA synchronous=OFF")
    _worker = _Ingest(conn, config, rollup_before, lock)
    _worker.pricer.warm()


def _pool_batch(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    assert _worker is not None
    return _worker.batch(tasks)


class _Pool:
    """Worker processes that parse, price and write batches (see the module doc)."""

    def __init__(
        self, n: int, db: str, config: Config, stale: list[int], rollup_before: int, bulk: bool
    ) -> None:
        from clawtrace.workers import ForkPool, SharedLock

        self.n = n
        self.lock = SharedLock(db)
        self._left = -1  # bytes listed and not handed over, once the listing is done
        try:
            self.pool = ForkPool(
                n,
                lambda: _pool_init(db, config, self.lock, stale, rollup_before, bulk),
                _pool_batch,
            )
        except BaseException:
            self.lock.close()
            raise

    def run(
        self,
        tasks: Iterator[dict[str, Any]],
        before_handing_over: Callable[[list[dict[str, Any]]], None],
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """Each batch and its outcome, in completion order. `tasks` is read only as the workers
        need more (a bounded window in flight), so a big tree's listing is never held whole;
        `before_handing_over(batch)` runs before each batch goes to a worker."""
        pool = self.pool
        # While the workers are busy the listing goes on ahead of them, up to a bound: the
        # main process would otherwise idle, then list files while they wait for a batch.
        ahead: collections.deque[dict[str, Any]] = collections.deque()
        listing_done = False
        listed_bytes = handed_bytes = 0

        def list_one() -> None:
            nonlocal listing_done, listed_bytes
            task = next(tasks, None)
            if task is None:
                listing_done = True
                self._left = listed_bytes - handed_bytes
            else:
                ahead.append(task)
                listed_bytes += max(task["size"] - task["offset"], 0)

        def listed() -> Iterator[dict[str, Any]]:
            while True:
                if ahead:
                    yield ahead.popleft()
                elif listing_done:
                    return
                else:
                    list_one()

        todo = _batches(listed(), self._batch_limit)
        sent: dict[int, collections.deque[list[dict[str, Any]]]] = {
            w.pid: collections.deque() for w in pool.workers
        }

        def submit(worker: Any) -> bool:
            nonlocal handed_bytes
            batch = next(todo, None)
            if batch is None:
                return False
            before_handing_over(batch)
            pool.send(worker, batch)
            sent[worker.pid].append(batch)
            size = sum(max(t["size"] - t["offset"], 0) for t in batch)
            handed_bytes += size
            if self._left >= 0:
                self._left -= size
            return True

        # Two batches each (one to work on, one waiting), the first ones in turn so that every
        # worker starts at once.
        in_flight = 0
        for _ in range(IN_FLIGHT_PER_WORKER):
            for worker in pool.workers:
                in_flight += submit(worker)
        while in_flight:
            waiting = listing_done or len(ahead) >= LIST_AHEAD_FILES
            replies = pool.poll(None if waiting else 0)
            if not replies:
                list_one()
                continue
            for worker, done in replies:
                batch = sent[worker.pid].popleft()
                in_flight -= 1
                in_flight += submit(worker)
                yield batch, done

    def _batch_limit(self, listed: int) -> int:
        """Batches of files in discovery order: a session's transcripts sit side by side, and
        the turns they share merge inside one batch instead of after the load (on a
        million-turn tree, half the keys met twice). Big batches cost fewer commits and merge
        more in memory; the first ones are small, so that every worker starts at once and a
        small tree still gets a few batches per worker. Once the listing is done they are cut
        from what is left, so that the workers end together (each has its own queue)."""
        basis = listed if self._left < 0 else self._left
        return min(BATCH_BYTES, max(BATCH_BYTES_MIN, basis // (self.n * 4)))

    def close(self) -> None:
        try:
            self.pool.close()
        finally:
            self.lock.close()

    def terminate(self) -> None:
        try:
            self.pool.terminate()
        finally:
            self.lock.close()


# --- the scan (main process) -----------------------------------------------------------------


def _files_table(conn: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row  # built in C: cheap for tens of thousands of files
    cur.execute(
        f"SELECT {_FILE_COLUMNS} FROM files"  # noqa: S608
    )
    return {path_from_store(row[1]): row for row in cur}


_FILE_COLUMNS = (
    "id, path, source, size, mtime_ns, inode, ctime_ns, head_hash, tail_hash, offset, "
    "state_json, missing_since, ctx_json"
)


def _roots_signature(roots: dict[str, list[Path]]) -> str:
    # (backslashreplace: roots that are not UTF-8 still sign apart, and JSON can hold them)
    return orjson.dumps(
        {
            name: [os.fsencode(p).decode("utf-8", "backslashreplace") for p in paths]
            for name, paths in roots.items()
        }
    ).decode()


def _tree_unchanged(conn: sqlite3.Connection, roots_sig: str) -> tuple[int, list[int]] | None:
    """When no directory or index the last full discovery read has changed since: (files
    checked, ids of the known files whose size, time or identity changed). None when a
    discovery is needed (something changed, a known file went, or there is no record)."""
    if store.meta_get(conn, "watch_roots") != roots_sig:
        return None
    native = _ingest_module()
    db = store.db_file(conn)
    if native is not None and db and hasattr(native, "warm_check"):
        return native.warm_check(db)
    return _warm_check_py(conn)


def _warm_check_py(conn: sqlite3.Connection) -> tuple[int, list[int]] | None:
    """`_ingest.warm_check` without the native module (the same rules)."""
    watch = conn.execute("SELECT path, kind, mtime_ns, size FROM watch").fetchall()
    if not watch:
        return None
    for path, kind, mtime, size in watch:
        try:
            st = os.stat(path)
        except OSError:
            st = None
        is_dir = st is not None and stat.S_ISDIR(st.st_mode)
        if kind == "m":
            if is_dir:
                return None
        elif (
            st is None
            or mtime < 0
            or st.st_mtime_ns != mtime
            or (kind == "d" and not is_dir)
            or (kind == "f" and st.st_size != size)
        ):
            return None
    changed: list[int] = []
    checked = 0
    for fid, path, size, mtime, ino, ctime in conn.execute(
        "SELECT id, path, size, mtime_ns, inode, ctime_ns FROM files WHERE missing_since IS NULL"
    ):
        try:
            st = os.stat(path)
        except OSError:
            return None
        checked += 1
        if (
            st.st_size != size
            or st.st_mtime_ns != mtime
            or st.st_ino != ino
            or st.st_ctime_ns != ctime
        ):
            changed.append(fid)
    return checked, changed


def _tasks_for_ids(
    conn: sqlite3.Connection, ids: list[int], result: ScanResult, pending: list
) -> list[dict[str, Any]] | None:
    """Tasks for known files by id, from their stored context (None: one has none stored)."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    tasks: list[dict[str, Any]] = []
    for chunk, marks in store.in_chunks(ids):
        rows = cur.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE id IN ({marks}) ORDER BY id",  # noqa: S608
            chunk,
        ).fetchall()
        for row in rows:
            if row["ctx_json"] is None:
                return None
            path = path_from_store(row["path"])
            entry = FileEntry(path=path, ctx=orjson.loads(row["ctx_json"]))
            task = _task_for(row["source"], entry, {path: row}, result, pending)
            if task is not None:
                tasks.append(task)
    return tasks


def scan(
    conn: sqlite3.Connection,
    config: Config | None = None,
    *,
    claude_dirs: list[str] | None = None,
    openclaw_dirs: list[str] | None = None,
    workers: int | None = None,
    progress: ProgressFactory | None = None,
) -> ScanResult:
    """Bring the store up to date with the source logs; returns what was done."""
    started = time.perf_counter()
    config = config or Config()
    gc_was_on = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: the collector would only slow us down
    try:
        with store.scan_lock(store.db_file(conn)):
            return _scan_locked(
                conn, config, claude_dirs, openclaw_dirs, workers, progress, started
            )
    finally:
        if gc_was_on:
            gc.enable()


def _scan_locked(
    conn: sqlite3.Connection,
    config: Config,
    claude_dirs: list[str] | None,
    openclaw_dirs: list[str] | None,
    workers: int | None,
    progress: ProgressFactory | None,
    started: float,
) -> ScanResult:
    result = ScanResult()
    now = store.now_ms()
    db = store.db_file(conn)
    _journals_remove(db)  # left by a scan that was stopped
    if store.bulk_load_unfinished(conn):
        # A first scan that was stopped: this one starts over, as a first scan.
        store.bulk_load_discard(conn)
    with conn:
        # A first scan that was stopped leaves the store without some indexes: they are back
        # before any worker starts (the unique key index is what its writes go through).
        store.secondary_indexes_create(conn)
    prices_reprice_if_stale(conn, config, result)
    since_id = store.max_turn_id(conn)
    rollup_before = store.rollup_rowid_max(conn)
    cold = since_id == 0

    n = workers or config.workers or min(os.cpu_count() or 1, 4)
    parallel_ok = n > 1 and bool(db)
    pool: _Pool | None = None
    roots = source_roots(config, claude_dirs, openclaw_dirs)
    roots_sig = _roots_signature(roots)
    tasks: list[dict[str, Any]] = []
    discoveries: dict[str, Discovery] = {}
    pending_files: list[tuple[str, int]] = []
    ctx_updates: list[tuple[str, int]] = []
    to_read = 0
    # Nothing the last discovery listed has changed: only the known files need a look.
    unchanged = None if cold else _tree_unchanged(conn, roots_sig)
    if unchanged is not None:
        checked, changed_ids = unchanged
        found_tasks = _tasks_for_ids(conn, changed_ids, result, pending_files)
        if found_tasks is None:
            unchanged = None
        else:
            tasks = found_tasks
            result.files_seen += checked - len(changed_ids)
            result.files_unchanged += checked - len(changed_ids)
            result.roots = orjson.loads(store.meta_get(conn, "watch_result_roots") or "{}")
            to_read = sum(max(t["size"] - t["offset"], 0) for t in tasks)
            big = to_read > PARALLEL_MIN_BYTES and len(tasks) > 1
            if big and parallel_ok and _fork_available():
                pool = _Pool(n, db, config, store.rollup_buckets(conn), rollup_before, cold)
    known = _files_table(conn) if unchanged is None else {}
    seen_paths: set[str] = set()
    agents_cleared: set[tuple[str, str]] = set()
    if unchanged is None:
        # A full discovery writes its record as it goes: the last one stops counting now (a
        # scan stopped half-way leaves none, and the next one lists everything again).
        with conn:
            conn.execute("DELETE FROM watch")
            conn.execute("DELETE FROM meta WHERE key = 'watch_roots'")

    def discover() -> Iterator[dict[str, Any]]:
        """What to read of each file the sources list, in discovery order."""
        for name, source in SOURCES.items():
            found = discoveries[name] = Discovery()
            for entry in source.walk(roots[name], found):
                row = known.get(entry.path)
                if row is not None and row["ctx_json"] != (ctx_json := _ctx_json(entry.ctx)):
                    ctx_updates.append((ctx_json, row["id"]))
                task = _task_for(name, entry, known, result, pending_files)
                if known:  # (for the files that went: none on a first scan)
                    seen_paths.add(entry.path)
                if task is not None:
                    yield task
            result.roots[name] = {
                "found": [label(str(p)) for p in found.roots_found],
                "missing": [label(str(p)) for p in found.roots_missing],
                "unreadable": found.unreadable,
            }

    next_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM files").fetchone()[0])

    def name_new(task: dict[str, Any]) -> bool:
        """A new file gets its id (in discovery order: the de-dup tie rule reads them); its row
        is written with its batch's turns (files_outcome)."""
        nonlocal next_id
        if task["file_id"] is not None:
            return False
        next_id += 1
        task["file_id"] = next_id
        task["new"] = True
        return True

    def listing_flush(lock: Any, *, unless_below: int = 0) -> None:
        """Write what the listing recorded so far (a big tree's records are not held until it
        ends), under `lock`, once there are `unless_below` of them."""
        if sum(len(d.watch) + len(d.index) for d in discoveries.values()) >= unless_below:
            with lock, conn:
                _listing_flush(conn, discoveries, agents_cleared)

    def discovery_done() -> None:
        """What a finished discovery records: files gone, contexts changed, what was listed."""
        for path, row in known.items():
            if path not in seen_paths and row["missing_since"] is None and not os.path.exists(path):
                pending_files.append(("missing", row["id"]))
                result.files_missing += 1
        known.clear()
        seen_paths.clear()
        with conn:
            for kind, file_id in pending_files:
                if kind == "unreadable":
                    continue
                conn.execute(
                    "UPDATE files SET missing_since = ? WHERE id = ?",
                    (now if kind == "missing" else None, file_id),
                )
            conn.executemany("UPDATE files SET ctx_json = ? WHERE id = ?", ctx_updates)
            if unchanged is None:
                _listing_flush(conn, discoveries, agents_cleared)

    def listing_trusted() -> None:
        """Once every listed file has its row: the next scan may trust this listing (see
        _tree_unchanged). A scan stopped before leaves it untrusted, and the next one lists
        everything again instead of missing the files that got no row."""
        if unchanged is None:
            with conn:
                _watch_save(conn, roots_sig, result, pending_files)

    listed: Iterator[dict[str, Any]] = iter(tasks) if unchanged is not None else discover()
    tasks = []
    # Progress: made once (a parallel scan's while its listing still grows), then told the
    # bytes read and, when the listing is done, the final totals.
    shown: dict[str, Any] = {"tick": None, "made": False}

    def tick(n: int) -> None:
        if shown["tick"] is not None:
            shown["tick"](n)

    def show_progress(growing: bool) -> None:
        if progress is None:
            return
        if not shown["made"]:
            shown["made"] = True
            shown["tick"] = progress(to_read, files_listed, growing=growing)
        elif shown["tick"] is not None and not growing:
            shown["tick"](0, total=to_read, files=files_listed)

    # The store's turn count after the last scan, good only if no scan was stopped since (it
    # would have committed batches): a scan says it started, and says so no more at its end.
    previous = store.meta_get(conn, "last_scan_result")
    before_total = -1
    if previous and store.meta_get(conn, SCAN_STARTED) is None:
        before_total = int(orjson.loads(previous).get("turns_total", -1))
    store.meta_set(conn, SCAN_STARTED, str(now))
    files_listed = 0
    try:
        for task in listed:
            tasks.append(task)
            files_listed += 1
            to_read += max(task["size"] - task["offset"], 0)
            if pool is not None:
                continue
            if parallel_ok and to_read > PARALLEL_MIN_BYTES and (parallel_ok := _fork_available()):
                # Enough to read for the workers to pay: start them now. The rest of the
                # listing streams to them (the main process never holds a big tree's tasks).
                stale = [] if cold else store.rollup_buckets(conn)
                pool = _Pool(n, db, config, stale, rollup_before, cold)
                break

        with conn:
            # Into an empty store, secondary indexes are built once at the end: sorting a
            # million keys is far cheaper than a million random b-tree inserts.
            cold_bulk = cold and pool is not None
            if cold_bulk:
                # Native workers append without the unique key index too, and the keys met
                # twice are merged after the load (store.bulk_dedup): a sort instead of a
                # random index probe per turn. The Python writer needs the index.
                store.secondary_indexes_drop(conn, keys=_native_workers())

        new_turns = removed = 0
        # A first scan into an empty store is a bulk load: no fsync until it is done (see
        # store.bulk_load). Anything else keeps the store's normal durability.
        with store.bulk_load(conn) if cold_bulk else contextlib.nullcontext():
            if pool is None:
                discovery_done()
                for task in tasks:
                    name_new(task)
                show_progress(growing=False)
                ingest = _Ingest(conn, config, rollup_before)
                isolation = conn.isolation_level
                conn.isolation_level = None  # the writer opens its own transactions
                try:
                    for batch in _batches(tasks, lambda _listed: SERIAL_BATCH_BYTES):
                        done = ingest.batch(batch)
                        new_turns += done["new"]
                        _count(result, done, batch, tick)
                finally:
                    conn.isolation_level = isolation
            else:
                # New files get their ids as they are listed; their rows go in with their
                # batches, so the main process writes only what the listing records, under
                # the workers' lock (SQLite's busy handler would sleep it in steps of up to
                # 20 ms), and seldom: a worker waiting on it is a core doing nothing.
                writing = pool.lock

                def stream() -> Iterator[dict[str, Any]]:
                    nonlocal to_read, files_listed
                    for task in tasks:
                        name_new(task)
                        yield task
                    tasks.clear()
                    for task in listed:
                        files_listed += 1
                        to_read += max(task["size"] - task["offset"], 0)
                        name_new(task)
                        yield task
                    with writing:
                        discovery_done()
                    show_progress(growing=False)

                def before_handing_over(_batch: list[dict[str, Any]]) -> None:
                    listing_flush(writing, unless_below=LISTING_RECORDS_HELD)

                show_progress(growing=True)
                for batch, done in pool.run(stream(), before_handing_over):
                    new_turns += done["new"]
                    _count(result, done, batch, tick)
                pool.close()
                pool = None
            tasks.clear()
            listing_trusted()

            settled = cold_bulk and _native_workers()
            if settled:
                # The keys met twice and the sidechain replays, from the workers' journals.
                merged_away, removed = _bulk_settle(db)
                new_turns -= merged_away
            with conn:
                if cold_bulk and not settled:
                    store.secondary_indexes_create(conn, only=("turns_key",))
                # (The sidechain replays went with each batch: store.TurnWriter.write.)
                store.rollups_refresh(conn)
            if cold_bulk:
                # The rollups are final: their derived sums are computed on a thread while the
                # indexes build (both outside the interpreter lock, one per core).
                behind = store.derived_refresh_behind(conn, synced=False)
                store.secondary_indexes_create(conn, deduped=settled)
                if behind is not None:
                    behind.join()
            if not store.derived_fresh(conn):
                store.derived_refresh(conn)
            if before_total >= 0 and not result.repriced:
                result.turns_total = before_total + new_turns - removed
            else:
                result.turns_total = int(conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0])
            result.seconds = round(time.perf_counter() - started, 3)
            # (Inside a bulk load: see store.bulk_load.)
            with conn:
                for key, value in (
                    ("last_scan", str(now)),
                    ("last_scan_result", orjson.dumps(result.as_dict()).decode()),
                ):
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )
                conn.execute("DELETE FROM meta WHERE key = ?", (SCAN_STARTED,))
    finally:
        if pool is not None:
            pool.terminate()
    return result


def _ctx_json(ctx: dict[str, Any]) -> str:
    return orjson.dumps(ctx, option=orjson.OPT_SORT_KEYS).decode()


def _task_for(
    source: str,
    entry: Any,
    known: dict[str, sqlite3.Row],
    result: ScanResult,
    pending_files: list[tuple[str, int]],
) -> dict[str, Any] | None:
    """What to read of one discovered file: None when it has not changed."""
    key = entry.path
    result.files_seen += 1
    try:
        st = os.stat(key)
    except OSError:
        pending_files.append(("unreadable", 0))  # found but not there: list again next time
        return None
    if not stat.S_ISREG(st.st_mode):
        # A FIFO, a device, a directory named *.jsonl: nothing to read (opening a FIFO would
        # wait for a writer for ever); listed again next time.
        pending_files.append(("unreadable", 0))
        return None
    row = known.get(key)
    reset = False
    tail = None
    if row is None:
        offset, state = 0, None
    else:
        if (
            st.st_size == row["size"]
            and st.st_mtime_ns == row["mtime_ns"]
            and st.st_ino == row["inode"]
            and st.st_ctime_ns == row["ctime_ns"]
        ):
            result.files_unchanged += 1
            if row["missing_since"] is not None:
                pending_files.append(("present", row["id"]))
            return None
        if (
            st.st_ino != row["inode"]
            or st.st_size < row["offset"]
            or not _known_bytes_match(key, row["head_hash"], row["tail_hash"], row["offset"])
        ):
            reset = True
            offset, state = 0, None
            result.files_reset += 1
        else:
            offset = row["offset"]
            tail = row["tail_hash"]
            state = orjson.loads(row["state_json"]) if row["state_json"] else None
    return {
        "source": source,
        "path": key,
        "offset": offset,
        "state": state,
        "ctx": entry.ctx,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
        "ctime_ns": st.st_ctime_ns,
        "tail": tail,
        "reset": reset,
        "file_id": row["id"] if row else None,
    }


def _count(
    result: ScanResult,
    done: dict[str, Any],
    batch: list[dict[str, Any]],
    tick: Callable[[int], None] | None,
) -> None:
    start = {t["file_id"]: t["offset"] for t in batch}
    for out in done["files"]:
        read = out["offset"] - start[out["file_id"]]
        result.bytes_read += read
        result.files_read += 1
        result.lines += out["lines"]
        result.malformed += out["malformed"]
        result.turn_rows += out["rows"]
        if tick:
            tick(read)


def _journals_remove(db: str) -> list[str]:
    import glob

    found = glob.glob(glob.escape(db + KEYS_SUFFIX) + "*") if db else []
    for path in found:
        with contextlib.suppress(OSError):
            os.remove(path)
    return found


def _bulk_settle(db: str) -> tuple[int, int]:
    """After a native bulk load: the keys the workers journaled more than once merged, and the
    sidechain replays taken out, in C (the rules of store.bulk_dedup and
    store.sidechain_replays); returns (rows merged away, replays removed)."""
    import glob

    native = _ingest_module()
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
    _journals_remove(db)
    return merged_away, replays


# (meta) Set while a scan runs: one that was stopped leaves it, and the next knows that the
# store changed since the last scan's figures (see scan_unfinished).
SCAN_STARTED = "scan_started"


def scan_unfinished(conn: sqlite3.Connection) -> bool:
    """Whether the last scan was stopped before its end (and none runs now): the store holds
    what its finished batches wrote, the rest waits for the next scan."""
    if store.meta_get(conn, SCAN_STARTED) is None:
        return False
    with store.scan_lock(store.db_file(conn), wait=False) as free:
        return bool(free)


# The native writer, when built and the C scanner is on (CLAWTRACE_NATIVE). Its own name here:
# tests turn it off for the scan alone.
_ingest_module = store._native_ingest


def _native_workers() -> bool:
    return _ingest_module() is not None


def _fork_available() -> bool:
    return hasattr(os, "fork")


def _batches(
    tasks: Iterable[dict[str, Any]], limit: Callable[[int], int]
) -> Iterator[list[dict[str, Any]]]:
    """Files grouped, in order, so that one batch is up to `limit(bytes listed so far)` bytes
    and BATCH_FILES files (small files share a transaction)."""
    batch: list[dict[str, Any]] = []
    batch_bytes = listed = 0
    for t in tasks:
        size = max(t["size"] - t["offset"], 0)
        listed += size
        if batch and (batch_bytes + size > limit(listed) or len(batch) >= BATCH_FILES):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(t)
        batch_bytes += size
    if batch:
        yield batch


def _watch_save(
    conn: sqlite3.Connection,
    roots_sig: str,
    result: ScanResult,
    pending_files: list[tuple[str, int]],
) -> None:
    """Mark what this discovery recorded (`_listing_flush`) as the record `_tree_unchanged`
    trusts, inside the scan's transaction: the record and the files table change together. A
    file that could not be read makes the next scan list everything again."""
    if any(kind == "unreadable" for kind, _ in pending_files):
        conn.execute("DELETE FROM watch")
        conn.execute("DELETE FROM meta WHERE key = 'watch_roots'")
        return
    for key, value in (
        ("watch_roots", roots_sig),
        ("watch_result_roots", orjson.dumps(result.roots).decode()),
    ):
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _listing_flush(
    conn: sqlite3.Connection,
    discoveries: dict[str, Discovery],
    agents_cleared: set[tuple[str, str]],
) -> None:
    """Write what the listing has recorded since the last call (inside the caller's
    transaction) and forget it: the paths it depended on (for `_tree_unchanged`) and the
    sessions indexes it read (an agent's old entries go the first time it is met)."""
    for name, found in discoveries.items():
        if found.watch:
            conn.executemany(
                "INSERT OR REPLACE INTO watch (path, kind, mtime_ns, size) VALUES (?, ?, ?, ?)",
                [(path_to_store(path), *rest) for path, *rest in found.watch],
            )
            found.watch = []
        if not found.index:
            continue
        for agent in {s.agent for s in found.index}:
            if (name, agent) not in agents_cleared:
                agents_cleared.add((name, agent))
                conn.execute(
                    "DELETE FROM index_sessions WHERE source = ? AND agent = ?", (name, agent)
                )
        conn.executemany(
            "INSERT OR REPLACE INTO index_sessions "
            "(source, agent, session_key, session_id, transcript, "
            "transcript_exists, spawned_by, spawn_depth, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    name,
                    s.agent,
                    s.session_key,
                    s.session_id,
                    s.transcript,
                    int(s.transcript_exists),
                    s.spawned_by,
                    s.spawn_depth,
                    s.kind,
                )
                for s in found.index
            ],
        )
        found.index = []


def prices_reprice_if_stale(
    conn: sqlite3.Connection, config: Config, result: ScanResult | None = None
) -> int:
    """Re-price every stored turn when the price library or the user's overrides changed."""
    from clawtrace.pricing import pricing_fingerprint

    fp = pricing_fingerprint(config)
    stored = store.meta_get(conn, "price_fingerprint")
    if stored == fp:
        return 0
    n = 0
    if stored is not None:
        n = prices_reprice(conn, config)
        if result is not None:
            result.repriced = n
    store.meta_set(conn, "price_fingerprint", fp)
    return n


def prices_reprice(conn: sqlite3.Connection, config: Config) -> int:
    """Recompute every turn's cost from its stored tokens; returns the number of turns."""
    from clawtrace.pricing import Pricer

    pricer = Pricer(config)
    dims = store.Dims()
    rows = conn.execute(
        "SELECT t.id, m.provider, m.model, t.ts, t.input_tokens, t.output_tokens, "
        "t.cache_read_tokens, t.cache_write_5m_tokens, t.cache_write_1h_tokens, "
        "t.web_search_requests, m.speed, t.reported_pico "
        "FROM turns AS t JOIN models AS m ON m.id = t.model_id"
    ).fetchall()
    updates = []
    for r in rows:
        cost, source, savings, writes = pricer.price(r[1], r[2], r[3], tuple(r[4:10]), r[10], r[11])
        updates.append((cost, dims.source(source), savings, writes, r[0]))
    with conn:
        dims.flush(conn)
        conn.executemany(
            "UPDATE turns SET cost_pico = ?, price_source_id = ?, cache_savings_pico = ?, "
            "cache_write_pico = ? WHERE id = ?",
            updates,
        )
        conn.execute("DELETE FROM dirty_buckets")
        store.rollups_refresh(conn, full=True)
    store.derived_refresh(conn)
    return len(updates)
