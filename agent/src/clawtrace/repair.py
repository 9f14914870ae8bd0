"""A damaged store, found and replaced without losing what only it holds.

The store keeps turns whose transcripts Claude Code has since deleted (after 30 days by
default), so a damaged one is never thrown away: `store_check` names the damage, and
`store_rebuild` moves every file of the store aside, under one name with the time, and reads
what is still on disk into a new store. The old file stays for `sqlite3 .recover` or a backup.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from clawtrace.paths import label

# More than this many quick_check findings tell nothing new.
_CHECK_LIMIT = 10
_STORE_FILE_SUFFIXES = ("", "-wal", "-shm", "-sums", "-sums-wal", "-sums-shm", ".scan-lock")


@dataclass
class StoreHealth:
    path: Path
    problems: list[str] = field(default_factory=list)
    turns: int | None = None

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": label(str(self.path)),
            "damaged": self.damaged,
            "problems": self.problems,
            "turns": self.turns,
        }


def _expected_tables() -> set[str]:
    """The tables a store of this version holds: those of a new, empty one."""
    from clawtrace import store

    conn = sqlite3.connect(":memory:")
    try:
        store.sql_functions_register(conn)
        store.migrate(conn)
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows if not name.startswith("sqlite_")}
    finally:
        conn.close()


def store_check(path: Path) -> StoreHealth:
    """What is wrong with the store at `path`, read without writing a byte (a damaged file is
    evidence; a repair attempt by SQLite could make it worse)."""
    health = StoreHealth(path)
    for suffix in _STORE_FILE_SUFFIXES:
        part = Path(f"{path}{suffix}")
        try:
            mode = part.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            health.problems.append(f"{label(str(part))}: {exc.strerror}")
            continue
        if not stat.S_ISREG(mode):
            health.problems.append(
                f"{label(str(part))} is not a regular file (a directory or device in its place)"
            )
    if not path.is_file():
        return health
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        health.problems.append(f"cannot open it: {exc}")
        return health
    try:
        from clawtrace import store

        store.sql_functions_register(conn)
        findings = [r[0] for r in conn.execute(f"PRAGMA quick_check({_CHECK_LIMIT})")]
        if findings != ["ok"]:
            health.problems += [f"integrity: {f}" for f in findings]
        tables = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        missing = sorted(_expected_tables() - tables)
        # A store that holds no table at all is a new one, not a damaged one.
        if missing and tables:
            health.problems.append(f"tables missing: {', '.join(missing)}")
        if "turns" in tables:
            health.turns = conn.execute("SELECT count(*) FROM turns").fetchone()[0]
    except sqlite3.Error as exc:
        health.problems.append(f"unreadable: {exc}")
    finally:
        conn.close()
    return health


def store_set_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename every file of the store to `<name>.damaged-<UTC time><suffix>`; returns the
    main file's new path. Renames only: nothing is copied or deleted."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    aside = Path(f"{path}.damaged-{stamp}")
    for suffix in _STORE_FILE_SUFFIXES:
        part = Path(f"{path}{suffix}")
        if not os.path.lexists(part):
            continue
        if suffix == ".scan-lock":
            # An empty lock file (or whatever took its place) holds no history.
            if part.is_dir() and not part.is_symlink():
                os.rename(part, f"{aside}{suffix}")
            else:
                part.unlink()
            continue
        os.rename(part, f"{aside}{suffix}")
    return aside
