"""Discovery: what each source lists and what of each file is still to read (`task_for`), the
record of what a full listing read, and the warm check that trusts that record: while no
directory or index it read has changed, a rescan only stats the files it knows."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import orjson

from clawtrace import store
from clawtrace.config import Config
from clawtrace.fileio import open_regular
from clawtrace.paths import path_from_store, path_to_store
from clawtrace.scan import ingest
from clawtrace.scan.reading import block_hash
from clawtrace.scan.result import ScanResult
from clawtrace.sources import SOURCES, source_dirs
from clawtrace.sources.base import Discovery, FileEntry


def source_roots(config: Config, **dirs: list[str] | None) -> dict[str, list[Path]]:
    """Each source's roots: the directories `dirs` gives it (by Source.dirs_key, as
    `claude_dirs=[...]`), else the config's, else its own defaults."""
    given = source_dirs(dirs, "source_roots")
    return {
        name: source.roots(given[source.dirs_key] or config.source_dirs.get(source.dirs_key))
        for name, source in SOURCES.items()
    }


def known_bytes_match(path: str, head: str | None, tail: str | None, offset: int) -> bool:
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
                if start < 0 or block_hash(os.pread(fd, n, start)) != stored:
                    return False
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return False
    return True


def files_table(conn: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row  # built in C: cheap for tens of thousands of files
    cur.execute(
        f"SELECT {FILE_COLUMNS} FROM files"  # noqa: S608
    )
    return {path_from_store(row[1]): row for row in cur}


FILE_COLUMNS = (
    "id, path, source, size, mtime_ns, inode, ctime_ns, head_hash, tail_hash, offset, "
    "state_json, missing_since, ctx_json"
)


def roots_signature(roots: dict[str, list[Path]]) -> str:
    # (backslashreplace: roots that are not UTF-8 still sign apart, and JSON can hold them)
    return orjson.dumps(
        {
            name: [os.fsencode(p).decode("utf-8", "backslashreplace") for p in paths]
            for name, paths in roots.items()
        }
    ).decode()


def tree_unchanged(conn: sqlite3.Connection, roots_sig: str) -> tuple[int, list[int]] | None:
    """When no directory or index the last full discovery read has changed since: (files
    checked, ids of the known files whose size, time or identity changed). None when a
    discovery is needed (something changed, a known file went, or there is no record)."""
    if store.meta_get(conn, "watch_roots") != roots_sig:
        return None
    native = ingest.ingest_module()
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


def tasks_for_ids(
    conn: sqlite3.Connection, ids: list[int], result: ScanResult, pending: list
) -> list[dict[str, Any]] | None:
    """Tasks for known files by id, from their stored context (None: one has none stored)."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    tasks: list[dict[str, Any]] = []
    for chunk, marks in store.in_chunks(ids):
        rows = cur.execute(
            f"SELECT {FILE_COLUMNS} FROM files WHERE id IN ({marks}) ORDER BY id",  # noqa: S608
            chunk,
        ).fetchall()
        for row in rows:
            if row["ctx_json"] is None:
                return None
            path = path_from_store(row["path"])
            entry = FileEntry(path=path, ctx=orjson.loads(row["ctx_json"]))
            task = task_for(row["source"], entry, {path: row}, result, pending)
            if task is not None:
                tasks.append(task)
    return tasks


def task_for(
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
            or not known_bytes_match(key, row["head_hash"], row["tail_hash"], row["offset"])
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


def watch_save(
    conn: sqlite3.Connection,
    roots_sig: str,
    result: ScanResult,
    pending_files: list[tuple[str, int]],
) -> None:
    """Mark what this discovery recorded (`listing_flush`) as the record `tree_unchanged`
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


def listing_flush(
    conn: sqlite3.Connection,
    discoveries: dict[str, Discovery],
    agents_cleared: set[tuple[str, str]],
) -> None:
    """Write what the listing has recorded since the last call (inside the caller's
    transaction) and forget it: the paths it depended on (for `tree_unchanged`) and the
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
