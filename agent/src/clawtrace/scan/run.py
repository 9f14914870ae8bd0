"""A scan of one store, start to end (`ScanRun`), under the store's scan lock (`scan`)."""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from clawtrace import store
from clawtrace.config import Config
from clawtrace.paths import label
from clawtrace.scan import discovery, ingest, pool
from clawtrace.scan.prices import prices_reprice_if_stale
from clawtrace.scan.result import ProgressFactory, ScanResult
from clawtrace.sources import SOURCES, SourceDirs, source_dirs
from clawtrace.sources.base import Discovery

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
SERIAL_BATCH_BYTES = 8 * 1024 * 1024  # the Python writer holds a batch's rows as objects
LISTING_RECORDS_HELD = 8192  # what the listing found, written once there is this much

# (meta) Set while a scan runs: one that was stopped leaves it, and the next knows that the
# store changed since the last scan's figures (see scan_unfinished).
SCAN_STARTED = "scan_started"


def scan(
    conn: sqlite3.Connection,
    config: Config | None = None,
    *,
    workers: int | None = None,
    progress: ProgressFactory | None = None,
    **dirs: list[str] | None,
) -> ScanResult:
    """Bring the store up to date with the source logs; returns what was done. `dirs`: each
    source's directories by Source.dirs_key (`claude_dirs=[...]`), instead of the config's."""
    given = source_dirs(dirs, "scan")
    started = time.perf_counter()
    config = config or Config()
    gc_was_on = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: the collector would only slow us down
    try:
        with store.scan_lock(store.db_file(conn)):
            return ScanRun(conn, config, given, workers, progress, started).run()
    finally:
        if gc_was_on:
            gc.enable()


class ScanRun:
    """One scan, in the order `run` calls its steps: the store made ready; what to read, from
    the known files alone when nothing the last listing read has changed (the warm check), else
    from a full discovery; the files read in batches, in this process or in worker processes
    started once there is enough to read for them to pay; then the rollups, derived sums and
    indexes settled, and the scan's figures recorded.

    A batch's turns and its files' new offsets are written in one transaction: a scan that
    stops halfway loses nothing, and the next one goes on from there.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        config: Config,
        dirs: SourceDirs,
        workers: int | None,
        progress: ProgressFactory | None,
        started: float,
    ) -> None:
        self.conn = conn
        self.config = config
        self.dirs = dirs
        self.workers = workers
        self.progress = progress
        self.started = started
        self.result = ScanResult()
        self.now = store.now_ms()
        self.db = store.db_file(conn)
        # The store as the scan found it (store_ready): the last turn id and rollup rowid
        # before it, and whether it is empty (a first scan).
        self.since_id = 0
        self.rollup_before = 0
        self.cold = False
        # Where to read and with how many processes (read_plan).
        self.roots: dict[str, list[Path]] = {}
        self.roots_sig = ""
        self.n = 1
        self.parallel_ok = False
        self.pool: pool.Pool | None = None
        # What to read: the tasks listed (before workers start, or all of them in this
        # process), the rest of the listing, and what they add up to.
        self.tasks: list[dict[str, Any]] = []
        self.listed: Iterator[dict[str, Any]] = iter(())
        self.files_listed = 0
        self.to_read = 0
        # What discovery found and the store must learn: each source's listing (written as it
        # goes), files gone, back or unreadable, and contexts that changed.
        self.discoveries: dict[str, Discovery] = {}
        self.pending_files: list[tuple[str, int]] = []
        self.ctx_updates: list[tuple[str, int]] = []
        self.known: dict[str, sqlite3.Row] = {}
        self.seen_paths: set[str] = set()
        self.agents_cleared: set[tuple[str, str]] = set()
        self.next_file_id = 0
        # (files checked, ids of those that changed) when the warm check trusted the last
        # listing; None when this scan lists everything.
        self.unchanged: tuple[int, list[int]] | None = None
        # Progress: made once (a parallel scan's while its listing still grows), then told the
        # bytes read and, when the listing is done, the final totals.
        self.progress_tick: Callable[..., None] | None = None
        self.progress_made = False
        # The store's turn count after the last scan, when no scan was stopped since.
        self.before_total = -1
        self.new_turns = 0
        self.removed = 0
        self.cold_bulk = False

    def run(self) -> ScanResult:
        self.store_ready()
        self.read_plan()
        self.started_mark()
        try:
            self.list_until_workers_pay()
            self.bulk_load_prepare()
            # A first scan into an empty store is a bulk load: no fsync until it is done (see
            # store.bulk_load). Anything else keeps the store's normal durability.
            with store.bulk_load(self.conn) if self.cold_bulk else contextlib.nullcontext():
                if self.pool is None:
                    self.read_here()
                else:
                    self.read_in_workers()
                self.tasks.clear()
                self.listing_trust()
                self.sums_settle()
                self.figures_record()
        finally:
            if self.pool is not None:
                self.pool.terminate()
        return self.result

    # -- before reading --------------------------------------------------------------------------

    def store_ready(self) -> None:
        """What a scan that was stopped left, put right; prices brought up to date."""
        conn = self.conn
        ingest.journals_remove(self.db)  # left by a scan that was stopped
        if store.bulk_load_unfinished(conn):
            # A first scan that was stopped: this one starts over, as a first scan.
            store.bulk_load_discard(conn)
        with conn:
            # A first scan that was stopped leaves the store without some indexes: they are
            # back before any worker starts (the unique key index is what its writes go
            # through).
            store.secondary_indexes_create(conn)
        prices_reprice_if_stale(conn, self.config, self.result)
        self.since_id = store.max_turn_id(conn)
        self.rollup_before = store.rollup_rowid_max(conn)
        self.cold = self.since_id == 0

    def read_plan(self) -> None:
        """Where the tasks come from: the known files that changed, when nothing the last
        discovery listed has changed (the workers start at once when they are many); else a
        full discovery, whose record the last one's stops counting now."""
        conn, config, result = self.conn, self.config, self.result
        self.n = self.workers or config.workers or min(os.cpu_count() or 1, 4)
        self.parallel_ok = self.n > 1 and bool(self.db)
        self.roots = discovery.source_roots(config, **self.dirs)
        self.roots_sig = discovery.roots_signature(self.roots)
        unchanged = None if self.cold else discovery.tree_unchanged(conn, self.roots_sig)
        if unchanged is not None:
            checked, changed_ids = unchanged
            found = discovery.tasks_for_ids(conn, changed_ids, result, self.pending_files)
            if found is None:
                unchanged = None
            else:
                self.tasks = found
                result.files_seen += checked - len(changed_ids)
                result.files_unchanged += checked - len(changed_ids)
                result.roots = orjson.loads(store.meta_get(conn, "watch_result_roots") or "{}")
                self.to_read = sum(max(t["size"] - t["offset"], 0) for t in self.tasks)
                big = self.to_read > PARALLEL_MIN_BYTES and len(self.tasks) > 1
                if big and self.parallel_ok and pool.fork_available():
                    self.workers_start(store.rollup_buckets(conn))
        self.unchanged = unchanged
        self.known = discovery.files_table(conn) if unchanged is None else {}
        if unchanged is None:
            # A full discovery writes its record as it goes: the last one stops counting now
            # (a scan stopped half-way leaves none, and the next one lists everything again).
            with conn:
                conn.execute("DELETE FROM watch")
                conn.execute("DELETE FROM meta WHERE key = 'watch_roots'")
        self.next_file_id = int(
            conn.execute("SELECT COALESCE(MAX(id), 0) FROM files").fetchone()[0]
        )
        self.listed = iter(self.tasks) if unchanged is not None else self.discover()
        self.tasks = []

    def started_mark(self) -> None:
        """Say in the store that a scan runs (it says so no more at its end), having read the
        last scan's turn count: good only if no scan was stopped since (it would have
        committed batches)."""
        conn = self.conn
        previous = store.meta_get(conn, "last_scan_result")
        if previous and store.meta_get(conn, SCAN_STARTED) is None:
            self.before_total = int(orjson.loads(previous).get("turns_total", -1))
        store.meta_set(conn, SCAN_STARTED, str(self.now))

    def workers_start(self, stale: list[int]) -> None:
        self.pool = pool.Pool(self.n, self.db, self.config, stale, self.rollup_before, self.cold)

    def list_until_workers_pay(self) -> None:
        """List tasks until there is enough to read for worker processes to pay, and start
        them: the rest of the listing then streams to them (the main process never holds a
        big tree's tasks). A small tree is listed whole here."""
        for task in self.listed:
            self.tasks.append(task)
            self.files_listed += 1
            self.to_read += max(task["size"] - task["offset"], 0)
            if self.pool is not None:
                continue
            if self.parallel_ok and self.to_read > PARALLEL_MIN_BYTES:
                self.parallel_ok = pool.fork_available()
                if self.parallel_ok:
                    self.workers_start([] if self.cold else store.rollup_buckets(self.conn))
                    break

    def bulk_load_prepare(self) -> None:
        """Into an empty store, secondary indexes are built once at the end: sorting a million
        keys is far cheaper than a million random b-tree inserts."""
        with self.conn:
            self.cold_bulk = self.cold and self.pool is not None
            if self.cold_bulk:
                # Native workers append without the unique key index too, and the keys met
                # twice are merged after the load (store.bulk_dedup): a sort instead of a
                # random index probe per turn. The Python writer needs the index.
                store.secondary_indexes_drop(self.conn, keys=ingest.native_workers())

    # -- discovery -------------------------------------------------------------------------------

    def discover(self) -> Iterator[dict[str, Any]]:
        """What to read of each file the sources list, in discovery order."""
        result, known = self.result, self.known
        for name, source in SOURCES.items():
            found = self.discoveries[name] = Discovery()
            for entry in source.walk(self.roots[name], found):
                row = known.get(entry.path)
                if row is not None and row["ctx_json"] != (ctx := ingest.ctx_json(entry.ctx)):
                    self.ctx_updates.append((ctx, row["id"]))
                task = discovery.task_for(name, entry, known, result, self.pending_files)
                if known:  # (for the files that went: none on a first scan)
                    self.seen_paths.add(entry.path)
                if task is not None:
                    yield task
            result.roots[name] = {
                "found": [label(str(p)) for p in found.roots_found],
                "missing": [label(str(p)) for p in found.roots_missing],
                "unreadable": found.unreadable,
            }

    def file_id_assign(self, task: dict[str, Any]) -> bool:
        """A new file gets its id (in discovery order: the de-dup tie rule reads them); its row
        is written with its batch's turns (ingest.files_outcome)."""
        if task["file_id"] is not None:
            return False
        self.next_file_id += 1
        task["file_id"] = self.next_file_id
        task["new"] = True
        return True

    def listing_write(self, lock: Any, *, unless_below: int = 0) -> None:
        """Write what the listing recorded so far (a big tree's records are not held until it
        ends), under `lock`, once there are `unless_below` of them."""
        if sum(len(d.watch) + len(d.index) for d in self.discoveries.values()) >= unless_below:
            with lock, self.conn:
                discovery.listing_flush(self.conn, self.discoveries, self.agents_cleared)

    def discovery_done(self) -> None:
        """What a finished discovery records: files gone, contexts changed, what was listed."""
        conn, result = self.conn, self.result
        for path, row in self.known.items():
            if (
                path not in self.seen_paths
                and row["missing_since"] is None
                and not os.path.exists(path)
            ):
                self.pending_files.append(("missing", row["id"]))
                result.files_missing += 1
        self.known.clear()
        self.seen_paths.clear()
        with conn:
            for kind, file_id in self.pending_files:
                if kind == "unreadable":
                    continue
                conn.execute(
                    "UPDATE files SET missing_since = ? WHERE id = ?",
                    (self.now if kind == "missing" else None, file_id),
                )
            conn.executemany("UPDATE files SET ctx_json = ? WHERE id = ?", self.ctx_updates)
            if self.unchanged is None:
                discovery.listing_flush(conn, self.discoveries, self.agents_cleared)

    def listing_trust(self) -> None:
        """Once every listed file has its row: the next scan may trust this listing (see
        discovery.tree_unchanged). A scan stopped before leaves it untrusted, and the next one
        lists everything again instead of missing the files that got no row."""
        if self.unchanged is None:
            with self.conn:
                discovery.watch_save(self.conn, self.roots_sig, self.result, self.pending_files)

    # -- reading ---------------------------------------------------------------------------------

    def tick(self, n: int) -> None:
        if self.progress_tick is not None:
            self.progress_tick(n)

    def progress_show(self, growing: bool) -> None:
        if self.progress is None:
            return
        if not self.progress_made:
            self.progress_made = True
            self.progress_tick = self.progress(self.to_read, self.files_listed, growing=growing)
        elif self.progress_tick is not None and not growing:
            self.progress_tick(0, total=self.to_read, files=self.files_listed)

    def read_here(self) -> None:
        """Read every task in this process, in batches (each its own transaction)."""
        conn = self.conn
        self.discovery_done()
        for task in self.tasks:
            self.file_id_assign(task)
        self.progress_show(growing=False)
        writer = ingest.Ingest(conn, self.config, self.rollup_before)
        isolation = conn.isolation_level
        conn.isolation_level = None  # the writer opens its own transactions
        try:
            for batch in pool.batches(self.tasks, lambda _listed: SERIAL_BATCH_BYTES):
                done = writer.batch(batch)
                self.new_turns += done["new"]
                count(self.result, done, batch, self.tick)
        finally:
            conn.isolation_level = isolation

    def read_in_workers(self) -> None:
        """Hand every task to the workers, the listing going on meanwhile.

        New files get their ids as they are listed; their rows go in with their batches, so
        the main process writes only what the listing records, under the workers' lock
        (SQLite's busy handler would sleep it in steps of up to 20 ms), and seldom: a worker
        waiting on it is a core doing nothing."""
        workers = self.pool
        assert workers is not None
        self.progress_show(growing=True)
        for batch, done in workers.run(self.stream(), self.before_handing_over):
            self.new_turns += done["new"]
            count(self.result, done, batch, self.tick)
        workers.close()
        self.pool = None

    def stream(self) -> Iterator[dict[str, Any]]:
        """The tasks listed so far, then the rest of the listing, each with its file id; at
        its end, what discovery records."""
        assert self.pool is not None
        writing = self.pool.lock
        for task in self.tasks:
            self.file_id_assign(task)
            yield task
        self.tasks.clear()
        for task in self.listed:
            self.files_listed += 1
            self.to_read += max(task["size"] - task["offset"], 0)
            self.file_id_assign(task)
            yield task
        with writing:
            self.discovery_done()
        self.progress_show(growing=False)

    def before_handing_over(self, _batch: list[dict[str, Any]]) -> None:
        assert self.pool is not None
        self.listing_write(self.pool.lock, unless_below=LISTING_RECORDS_HELD)

    # -- after reading ---------------------------------------------------------------------------

    def sums_settle(self) -> None:
        """A bulk load's keys met twice and sidechain replays settled; the dirty rollups
        recomputed; the derived sums and (after a bulk load) the indexes built."""
        conn = self.conn
        settled = self.cold_bulk and ingest.native_workers()
        if settled:
            # The keys met twice and the sidechain replays, from the workers' journals.
            merged_away, self.removed = ingest.bulk_settle(self.db)
            self.new_turns -= merged_away
        with conn:
            if self.cold_bulk and not settled:
                store.secondary_indexes_create(conn, only=("turns_key",))
            # (The sidechain replays went with each batch: store.TurnWriter.write.)
            store.rollups_refresh(conn)
        if self.cold_bulk:
            # The rollups are final: their derived sums are computed on a thread while the
            # indexes build (both outside the interpreter lock, one per core).
            behind = store.derived_refresh_behind(conn, synced=False)
            store.secondary_indexes_create(conn, deduped=settled)
            if behind is not None:
                behind.join()
        if not store.derived_fresh(conn):
            store.derived_refresh(conn)

    def figures_record(self) -> None:
        """The store's turn count and the scan's figures, recorded as the last scan's (inside
        a bulk load: see store.bulk_load)."""
        conn, result = self.conn, self.result
        if self.before_total >= 0 and not result.repriced:
            result.turns_total = self.before_total + self.new_turns - self.removed
        else:
            result.turns_total = int(conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0])
        result.seconds = round(time.perf_counter() - self.started, 3)
        with conn:
            for key, value in (
                ("last_scan", str(self.now)),
                ("last_scan_result", orjson.dumps(result.as_dict()).decode()),
            ):
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            conn.execute("DELETE FROM meta WHERE key = ?", (SCAN_STARTED,))


def count(
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


def scan_unfinished(conn: sqlite3.Connection) -> bool:
    """Whether the last scan was stopped before its end (and none runs now): the store holds
    what its finished batches wrote, the rest waits for the next scan."""
    if store.meta_get(conn, SCAN_STARTED) is None:
        return False
    with store.scan_lock(store.db_file(conn), wait=False) as free:
        return bool(free)
