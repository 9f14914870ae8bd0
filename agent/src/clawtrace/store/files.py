"""The files of a store: its main database, the derived sums beside it, and the scan lock."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

SUMS_SUFFIX = "-sums"
SCAN_LOCK_SUFFIX = ".scan-lock"


def db_file(conn: sqlite3.Connection) -> str:
    """The path of the connection's main database ('' for an in-memory one)."""
    for _seq, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or ""
    return ""


def sums_file(db: str) -> str:
    """The derived sums' file of the store at `db` ('' for an in-memory store)."""
    return db + SUMS_SUFFIX if db else ""


def database_remove(path: str) -> None:
    """A database file and its WAL files, as far as they can be removed."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(path + suffix).unlink(missing_ok=True)


@contextlib.contextmanager
def scan_lock(db: str, *, wait: bool = True) -> Iterator[bool]:
    """One scan at a time per store, across processes (an advisory lock on a file beside it).
    Yields whether it is held: always when it may `wait`; else False while another has it."""
    if not db:
        yield True
        return
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking is all there is
        yield True
        return
    with open(db + SCAN_LOCK_SUFFIX, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
