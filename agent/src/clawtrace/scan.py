"""Incremental scan: find transcript files, read only what was appended, price, store.

Per file the store keeps its size, mtime, inode, a hash of its first bytes and the offset read so
far. A file whose size and mtime are unchanged is not opened (a warm rescan parses nothing). A
grown file with the same inode and head is read from the stored offset; a truncated, rotated or
replaced one is read again from the start (its turns are upserted under the same de-dup keys, so
nothing is counted twice, and turns of content that vanished stay: history never shrinks).

Parsing and pricing run in worker processes (fork) when there is enough to read; the main
process alone writes SQLite, in one transaction.
"""

from __future__ import annotations

import hashlib
import itertools
import marshal
import os
import queue
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from clawtrace import store
from clawtrace.config import Config
from clawtrace.paths import claude_roots, openclaw_roots
from clawtrace.sources import SOURCES
from clawtrace.sources.base import Discovery

HEAD_BYTES = 4096
CHUNK_BYTES = 4 * 1024 * 1024  # per read: bounds a worker's memory on huge transcripts
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
AGG_FLUSH_ROWS = 10_000  # bounds the main process's memory on huge first scans
IN_FLIGHT_PER_WORKER = 2
BATCH_BYTES = 2 * 1024 * 1024
BATCH_FILES = 64

ProgressFactory = Callable[[int, int], Callable[[int], None] | None]


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


def _head_matches(path: str, stored: str | None) -> bool:
    if not stored:
        return False
    n_text, _, digest = stored.partition(":")
    try:
        n = int(n_text)
        with open(path, "rb") as fh:
            data = fh.read(n)
    except (OSError, ValueError):
        return False
    return len(data) == n and hashlib.blake2b(data, digest_size=12).hexdigest() == digest


# --- worker side ---------------------------------------------------------------------------

_worker_pricer: Any = None
_worker_config: Config | None = None


def _pricer() -> Any:
    global _worker_pricer
    if _worker_pricer is None:
        from clawtrace.pricing import Pricer

        _worker_pricer = Pricer(_worker_config)
    return _worker_pricer


def _pool_init(config: Config) -> None:
    global _worker_config, _worker_pricer
    _worker_config = config
    _worker_pricer = None


def parse_task(task: dict[str, Any]) -> dict[str, Any]:
    """Read one file from `offset`, parse and price its turns. Runs in a worker process."""
    source = SOURCES[task["source"]]
    path = Path(task["path"])
    offset = task["offset"]
    state = task["state"]
    pricer = _pricer()
    _interned.clear()
    out: dict[str, Any] = {
        "file_id": task["file_id"],
        "rows": [],
        "lines": 0,
        "malformed": 0,
        "turn_lines": 0,
        "skipped": 0,
        "error": None,
        "head": None,
    }
    rows = out["rows"]
    tools_seq: list[tuple[str, ...]] = []
    chunk = CHUNK_BYTES
    try:
        with open(path, "rb") as fh:
            out["head"] = _head_of(fh.read(HEAD_BYTES))
            fh.seek(offset)
            while True:
                data = fh.read(chunk)
                if not data:
                    break
                res = source.parse(data, task["ctx"], state)
                if res.consumed == 0:
                    if len(data) < chunk:
                        break  # only a half-written last line: wait for the rest
                    chunk *= 2  # a line longer than the chunk
                    fh.seek(offset)
                    continue
                offset += res.consumed
                state = res.state
                out["lines"] += res.lines
                out["malformed"] += res.malformed
                out["turn_lines"] += res.turn_lines
                out["skipped"] += res.skipped
                file_id = task["file_id"]
                for r in res.turns:
                    rows.append(_priced(pricer, r, file_id))
                    tools_seq.append(r[20])
                if res.consumed < len(data):
                    fh.seek(offset)
                    if len(data) < chunk:
                        break
    except OSError as exc:
        out["error"] = f"{exc.__class__.__name__}: {exc.strerror or exc}"
    out["offset"] = offset
    out["state"] = state
    if len(rows) > 1 and offset - task["offset"] > CHUNK_BYTES:
        rows, tools_seq = _dedup_across_chunks(rows, tools_seq)
        out["rows"] = rows
    # Pre-aggregate here, in parallel: the main process merges small dictionaries instead of
    # recomputing rollups over every row it stored.
    agg: dict[tuple[Any, ...], list[int]] = {}
    tool_agg: dict[tuple[Any, ...], list[float]] = {}
    store.rollup_accumulate(rows, agg, tool_agg, tools_seq)
    # marshal, not pickle, carries the rows between processes: several times faster for
    # plain tuples of ints and strings, and this process boundary is on the hot path.
    out["rows"] = marshal.dumps(rows)
    out["agg"] = marshal.dumps(agg)
    out["tool_agg"] = marshal.dumps(tool_agg)
    return out


_TOTAL = store.TURN_COLUMNS.index("total_tokens")
_TOOLS = store.TURN_COLUMNS.index("tools")


def _dedup_across_chunks(
    rows: list[tuple[Any, ...]], tools_seq: list[tuple[str, ...]]
) -> tuple[list[tuple[Any, ...]], list[tuple[str, ...]]]:
    """Streamed pieces of one response split across read chunks: keep one row per key (the
    largest total, ties to the later) with the union of their tool names, as the store would."""
    at: dict[int, int] = {}
    out_rows: list[tuple[Any, ...]] = []
    out_tools: list[tuple[str, ...]] = []
    for row, tools in zip(rows, tools_seq, strict=True):
        i = at.get(row[0])
        if i is None:
            at[row[0]] = len(out_rows)
            out_rows.append(row)
            out_tools.append(tools)
            continue
        merged = out_tools[i] + tuple(t for t in tools if t not in out_tools[i])
        keep = row if row[_TOTAL] >= out_rows[i][_TOTAL] else out_rows[i]
        tools_json = orjson.dumps(list(merged)).decode() if merged else "[]"
        out_rows[i] = (*keep[:_TOOLS], tools_json, *keep[_TOOLS + 1 :])
        out_tools[i] = merged
    return out_rows, out_tools


def parse_batch(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [parse_task(t) for t in tasks]


def _head_of(data: bytes) -> str:
    return f"{len(data)}:{hashlib.blake2b(data, digest_size=12).hexdigest()}"


_interned: dict[str, str] = {}


def _priced(pricer: Any, r: tuple[Any, ...], file_id: int) -> tuple[Any, ...]:
    reported = r[18]
    reported_pico = round(reported * store.PICO) if reported is not None else None
    cost, source, savings, writes = pricer.price(
        r[9], r[8], r[10], (r[11], r[12], r[13], r[14], r[15], r[16]), r[17], reported_pico
    )
    total = r[11] + r[12] + r[13] + r[14] + r[15]
    msg_id = r[1]
    # One object per distinct dimension string: pickle then sends each once per batch.
    intern = _interned.setdefault
    return (
        store.key_hash(r[0]),
        store.key_hash(msg_id) if msg_id else None,
        r[0],
        msg_id,
        intern(r[2], r[2]),
        intern(r[3], r[3]),
        intern(r[4], r[4]),
        intern(r[5], r[5]),
        r[6],
        r[7],
        intern(r[8], r[8]),
        intern(r[9], r[9]),
        *r[10:17],
        total,
        r[17],
        cost,
        source,
        reported_pico,
        savings,
        writes,
        intern(r[19], r[19]),
        orjson.dumps(list(r[20])).decode() if r[20] else "[]",
        file_id,
    )


# --- main side -----------------------------------------------------------------------------


def _files_table(conn: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row  # built in C: cheap for tens of thousands of files
    cur.execute(
        "SELECT id, path, source, size, mtime_ns, inode, head_hash, offset, state_json, "
        "missing_since FROM files"
    )
    return {row[1]: row for row in cur}


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
    result = ScanResult()
    now = store.now_ms()
    prices_reprice_if_stale(conn, config, result)

    roots = source_roots(config, claude_dirs, openclaw_dirs)
    # Two scans at once (the CLI while `serve` runs) must not both start from the same
    # offsets: the write lock is taken before the file table is read.
    conn.execute("BEGIN IMMEDIATE")
    try:
        known = _files_table(conn)
        tasks: list[dict[str, Any]] = []
        seen_paths: set[str] = set()
        discoveries: dict[str, Discovery] = {}
        pending_files: list[tuple[Any, ...]] = []
        for name, source in SOURCES.items():
            found = source.discover(roots[name])
            discoveries[name] = found
            result.roots[name] = {
                "found": [str(p) for p in found.roots_found],
                "missing": [str(p) for p in found.roots_missing],
            }
            for entry in found.files:
                key = entry.path
                seen_paths.add(key)
                result.files_seen += 1
                try:
                    st = os.stat(key)
                except OSError:
                    continue
                row = known.get(key)
                reset = False
                if row is None:
                    offset, state = 0, None
                else:
                    unchanged = st.st_size == row["size"] and st.st_mtime_ns == row["mtime_ns"]
                    if unchanged and st.st_ino == row["inode"]:
                        result.files_unchanged += 1
                        if row["missing_since"] is not None:
                            pending_files.append(("present", row["id"]))
                        continue
                    if (
                        st.st_ino != row["inode"]
                        or st.st_size < row["offset"]
                        or not _head_matches(key, row["head_hash"])
                    ):
                        reset = True
                        offset, state = 0, None
                        result.files_reset += 1
                    else:
                        offset = row["offset"]
                        state = orjson.loads(row["state_json"]) if row["state_json"] else None
                tasks.append(
                    {
                        "source": name,
                        "path": key,
                        "offset": offset,
                        "state": state,
                        "ctx": entry.ctx,
                        "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                        "inode": st.st_ino,
                        "reset": reset,
                        "file_id": row["id"] if row else None,
                    }
                )

        for path, row in known.items():
            if path not in seen_paths and row["missing_since"] is None and not os.path.exists(path):
                pending_files.append(("missing", row["id"]))
                result.files_missing += 1

        to_read = sum(max(t["size"] - t["offset"], 0) for t in tasks)
        for found in discoveries.values():
            found.files = []  # only the index is needed from here on; a big tree has many files
    except BaseException:
        conn.rollback()
        raise

    tick = progress(to_read, len(tasks)) if progress else None

    bulk = to_read > PARALLEL_MIN_BYTES
    # The offsets are in the same transaction as the turns: a crash mid-scan loses nothing.
    with conn:
        for kind, file_id in pending_files:
            conn.execute(
                "UPDATE files SET missing_since = ? WHERE id = ?",
                (now if kind == "missing" else None, file_id),
            )
        # New files need ids before workers tag their turns.
        for t in tasks:
            if t["file_id"] is None:
                cur = conn.execute(
                    "INSERT INTO files (path, source, first_seen, last_scan) VALUES (?, ?, ?, ?)",
                    (t["path"], t["source"], now, now),
                )
                t["file_id"] = cur.lastrowid
        since_id = store.max_turn_id(conn)
        # On a first (bulk) scan, secondary indexes are built once at the end: sorting a
        # million keys is far cheaper than a million random b-tree inserts.
        deferred = since_id == 0 and bulk and store.secondary_indexes_drop(conn)
        by_id = {t["file_id"]: t for t in tasks}
        flushed: set[int] = set()
        agg: dict[tuple[Any, ...], list[int]] = {}
        tool_agg: dict[tuple[Any, ...], list[float]] = {}
        for out in _run(tasks, config, workers, to_read):
            t = by_id[out["file_id"]]
            rows = marshal.loads(out["rows"])  # noqa: S302 (our own worker wrote it)
            if rows:
                before_id = store.max_turn_id(conn)
                if store.turns_insert_new(conn, rows):
                    store.rollup_merge(agg, marshal.loads(out["agg"]), True)  # noqa: S302
                    store.rollup_merge(tool_agg, marshal.loads(out["tool_agg"]), False)  # noqa: S302
                    if len(agg) > AGG_FLUSH_ROWS:
                        store.rollup_flush(conn, agg, tool_agg, flushed)
                else:
                    # Some keys were seen before (a resumed session, a re-read file). The new
                    # ones are in; the others go through the largest-total rule, and only rows
                    # it actually changes mark their buckets for recomputation (a trigger).
                    new_keys = {
                        k
                        for (k,) in conn.execute(
                            "SELECT key_hash FROM turns WHERE id > ?", (before_id,)
                        )
                    }
                    store.rollup_accumulate([r for r in rows if r[0] in new_keys], agg, tool_agg)
                    store.turns_upsert(conn, [r for r in rows if r[0] not in new_keys])
                result.turn_rows += len(rows)
            read = out["offset"] - t["offset"]
            result.bytes_read += read
            result.files_read += 1
            result.lines += out["lines"]
            result.malformed += out["malformed"]
            head = out["head"]
            counts_sql = (
                "lines = ?, malformed = ?, turn_lines = ?"
                if t["reset"]
                else "lines = lines + ?, malformed = malformed + ?, turn_lines = turn_lines + ?"
            )
            conn.execute(
                f"UPDATE files SET size = ?, mtime_ns = ?, inode = ?, head_hash = ?, offset = ?, "  # noqa: S608
                f"{counts_sql}, state_json = ?, last_scan = ?, missing_since = NULL WHERE id = ?",
                (
                    t["size"] if out["error"] is None else 0,
                    t["mtime_ns"],
                    t["inode"],
                    head,
                    out["offset"],
                    out["lines"],
                    out["malformed"],
                    out["turn_lines"],
                    orjson.dumps(out["state"]).decode() if out["state"] else None,
                    now,
                    out["file_id"],
                ),
            )
            if tick:
                tick(read)
        if deferred:
            store.secondary_indexes_create(conn)
        if result.turn_rows:
            store.sidechain_replays_drop(conn, since_id)
        store.rollup_flush(conn, agg, tool_agg, flushed)
        store.rollups_refresh(conn)
        _index_store(conn, discoveries)
    previous = store.meta_get(conn, "last_scan_result")
    if result.turn_rows == 0 and not result.repriced and previous:
        result.turns_total = int(orjson.loads(previous).get("turns_total", 0))
    else:
        result.turns_total = int(conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0])
    result.seconds = round(time.perf_counter() - started, 3)
    store.meta_set(conn, "last_scan", str(now))
    store.meta_set(conn, "last_scan_result", orjson.dumps(result.as_dict()).decode())
    return result


def _run(tasks: list[dict[str, Any]], config: Config, workers: int | None, to_read: int):
    n = workers or config.workers or min(os.cpu_count() or 1, 4)
    if n <= 1 or to_read < PARALLEL_MIN_BYTES or len(tasks) < 2:
        _pool_init(config)
        for t in tasks:
            yield parse_task(t)
        return
    import multiprocessing

    ordered = sorted(tasks, key=lambda t: t["offset"] - t["size"])  # largest first

    def batches() -> Any:
        # Small files travel in batches: one round trip per file costs more than parsing it.
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        for t in ordered:
            size = t["size"] - t["offset"]
            if batch and (batch_bytes + size > BATCH_BYTES or len(batch) >= BATCH_FILES):
                yield batch
                batch, batch_bytes = [], 0
            batch.append(t)
            batch_bytes += size
        if batch:
            yield batch

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(n, initializer=_pool_init, initargs=(config,)) as pool:
        # A bounded window of tasks in flight, taken in completion order: when SQLite writes
        # lag behind the parsers, work waits in the queue instead of piling up as results here.
        done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        todo = batches()
        in_flight = 0
        for batch in itertools.islice(todo, n * IN_FLIGHT_PER_WORKER):
            pool.apply_async(parse_batch, (batch,), callback=done.put, error_callback=done.put)
            in_flight += 1
        while in_flight:
            outs = done.get()
            in_flight -= 1
            if isinstance(outs, BaseException):
                raise outs
            nxt = next(todo, None)
            if nxt is not None:
                pool.apply_async(parse_batch, (nxt,), callback=done.put, error_callback=done.put)
                in_flight += 1
            yield from outs


def _index_store(conn: sqlite3.Connection, discoveries: dict[str, Discovery]) -> None:
    for name, found in discoveries.items():
        agents = {s.agent for s in found.index}
        for agent in agents:
            conn.execute("DELETE FROM index_sessions WHERE source = ? AND agent = ?", (name, agent))
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
    rows = conn.execute(
        "SELECT id, provider, model, ts, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, speed, reported_pico "
        "FROM turns"
    ).fetchall()
    updates = []
    for r in rows:
        cost, source, savings, writes = pricer.price(r[1], r[2], r[3], tuple(r[4:10]), r[10], r[11])
        updates.append((cost, source, savings, writes, r[0]))
    with conn:
        conn.executemany(
            "UPDATE turns SET cost_pico = ?, price_source = ?, cache_savings_pico = ?, "
            "cache_write_pico = ? WHERE id = ?",
            updates,
        )
        conn.execute("DELETE FROM dirty_buckets")
        store.rollups_refresh(conn, full=True)
    return len(updates)
