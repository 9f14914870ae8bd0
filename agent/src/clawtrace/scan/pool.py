"""The worker pool of a big scan: processes forked as soon as discovery finds enough to read, so
that their start-up overlaps it. Each parses and prices its batches on its own and takes turns
writing to the store (a lock hands it from one to the next); where the C extension is built, a
worker does all of that in C (ingest.NativeIngest)."""

from __future__ import annotations

import collections
import gc
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from clawtrace import store
from clawtrace.config import Config
from clawtrace.scan import ingest

IN_FLIGHT_PER_WORKER = 2
BATCH_BYTES = 32 * 1024 * 1024
BATCH_BYTES_MIN = 1024 * 1024
LIST_AHEAD_FILES = 2048  # files a parallel scan lists ahead of its workers
BATCH_FILES = 256
WORKER_CACHE_KIB = 8_000


_worker: Any = None


def _pool_init(
    db_path: str, config: Config, lock: Any, stale: list[int], rollup_before: int, bulk: bool
) -> None:
    """A worker: its writer, and the price library loaded up front (it is slow to import, and
    this runs while the main process is still discovering files)."""
    global _worker
    gc.disable()  # the scan makes millions of small objects and no cycles
    if ingest.native_workers():
        _worker = ingest.NativeIngest(db_path, config, lock, stale, bulk)
        return
    conn = sqlite3.connect(db_path, timeout=60.0, isolation_level=None)
    store.configure(conn, WORKER_CACHE_KIB)
    if bulk:
        conn.execute("PRAGMA synchronous=OFF")
    _worker = ingest.Ingest(conn, config, rollup_before, lock)
    _worker.pricer.warm()


def _pool_batch(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    assert _worker is not None
    return _worker.batch(tasks)


class Pool:
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

        todo = batches(listed(), self._batch_limit)
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


def fork_available() -> bool:
    return hasattr(os, "fork")


def batches(
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
