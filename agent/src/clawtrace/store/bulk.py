"""The bulk load: a first scan fills an empty store without waiting for the disk and without
its secondary indexes, which are built once at the end (sorting a million keys is far cheaper
than a million random b-tree inserts); and what a load that was stopped, or cut by a power
failure, leaves to the next connect and the next scan."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from clawtrace.rules import (
    R_TOOLS,
    TURN_COLUMNS,
)
from clawtrace.store.derived import derived_forget
from clawtrace.store.dims import REPORTED_SOURCE_ID, Dims
from clawtrace.store.files import database_remove, db_file, scan_lock, sums_file
from clawtrace.store.rollups import rollup_rowid_max, rollups_refresh
from clawtrace.store.schema import (
    ROLLUP_TABLES,
    SCANNED_TABLES,
    meta_get,
    meta_set,
)
from clawtrace.store.writer import TurnWriter, merge_rows, sidechain_replays

BULK_MARKER = ".bulk-load"
BULK_UNFINISHED = "bulk_load_unfinished"  # (meta key) set while a bulk load runs


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
        for table in SCANNED_TABLES:
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


def bulk_load_recover(path: Path) -> None:
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
    database_remove(sums_file(str(path)))
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
        database_remove(str(path))
    marker.unlink(missing_ok=True)


# --- secondary indexes ---------------------------------------------------------------------

# The indexes a bulk load goes without (the unique key index only in native workers: see
# secondary_indexes_drop), built again at its end.
SECONDARY_INDEXES = {
    "turns_key": "CREATE UNIQUE INDEX IF NOT EXISTS turns_key ON turns (msg_hash, key_hash)",
    "turns_ts": "CREATE INDEX IF NOT EXISTS turns_ts ON turns (ts)",
    **{
        f"{table}_bucket": f"CREATE INDEX IF NOT EXISTS {table}_bucket ON {table} (bucket)"
        for table in ROLLUP_TABLES
    },
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
