"""Opening the store: the connection's settings and SQL functions, the migrations, and the
derived sums' file attached beside it."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from clawtrace.paths import label
from clawtrace.store.bulk import bulk_load_recover
from clawtrace.store.dims import sql_dim_id
from clawtrace.store.files import database_remove, sums_file
from clawtrace.store.migrations import StoreError, migrate
from clawtrace.store.schema import SUMS_LAYOUT, SUMS_SCHEMA, SUMS_TABLES


def connect(
    path: Path | str | None = None, *, readonly: bool = False, cache_kib: int = 32_000
) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the store; WAL mode, foreign keys on."""
    if path is None:
        from clawtrace.paths import db_path

        path = db_path()
    path = Path(path)
    if readonly and not path.exists():
        # A report before any scan reads an empty in-memory store rather than creating files.
        conn = sqlite3.connect(":memory:")
        configure(conn, cache_kib)
        migrate(conn)
        _sums_attach(conn, None)
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    bulk_load_recover(path)
    try:
        conn = sqlite3.connect(path, timeout=60.0)
        configure(conn, cache_kib)
        migrate(conn)
        _sums_attach(conn, path)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(turns)")}
    except sqlite3.DatabaseError as exc:
        from clawtrace.failures import explain

        raise StoreError(
            explain(exc) or f"cannot open the store at {label(str(path))}: {exc}"
        ) from exc
    if not columns:
        conn.close()
        from clawtrace.failures import StoreDamaged, explain

        raise StoreError(explain(StoreDamaged("its table of turns is missing")))
    if "key_hash" not in columns:
        conn.close()
        # Only stores written by pre-release development builds lack it; the logs are still
        # on disk (or were copied into that store), so nothing is silently reinterpreted.
        raise StoreError(
            f"the store at {path} was written by a development build of ClawTrace with an "
            "older layout; move it aside and run `clawtrace scan` again"
        )
    return conn


def _sums_attach(conn: sqlite3.Connection, path: Path | None) -> None:
    """Attach the derived sums as `sums`, made (again) when missing, damaged or of another
    layout: they are recomputed from the rollups by the next refresh."""
    target = sums_file(str(path)) if path is not None else ""
    for attempt in (1, 2):
        try:
            conn.execute("ATTACH DATABASE ? AS sums", (target or ":memory:",))
            conn.execute(f"PRAGMA sums.page_size={PAGE_BYTES}")
            conn.execute("PRAGMA sums.journal_mode=WAL")
            conn.execute("PRAGMA sums.synchronous=NORMAL")
            conn.executescript(SUMS_SCHEMA)
            layout = conn.execute("SELECT value FROM sums_meta WHERE key = 'layout'").fetchone()
            if layout is None or layout[0] != SUMS_LAYOUT:
                conn.executescript(
                    "".join(f"DROP TABLE sums.{t};" for t in SUMS_TABLES) + SUMS_SCHEMA
                )
                with conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO sums_meta (key, value) VALUES ('layout', ?)",
                        (SUMS_LAYOUT,),
                    )
            return
        except sqlite3.DatabaseError:
            if attempt == 2 or not target:
                raise
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("DETACH DATABASE sums")
            database_remove(target)  # (what cannot go, the second try says why)


# A new store's page size (SQLite's default is 4 KiB; a store made before keeps its own). A first
# scan writes the store once through the WAL, page by page, each worker under the write lock the
# other waits for: a quarter of the pages is a quarter of the frames, b-trees one level shallower
# for index builds to walk. 100k turns: 10 % less CPU, the scan 0.575 -> 0.52 s (8 KiB and 32
# KiB were both slower than 16 KiB).
PAGE_BYTES = 16384


def configure(conn: sqlite3.Connection, cache_kib: int = 32_000) -> None:
    conn.execute(f"PRAGMA page_size={PAGE_BYTES}")  # (only a file with nothing in it yet)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    # Sorts (index builds, GROUP BY) in helper threads: without them SQLite spills a big sort
    # to temporary files, an order of magnitude slower on a million rows.
    conn.execute("PRAGMA threads=2")
    sql_functions_register(conn)


def sql_functions_register(conn: sqlite3.Connection) -> None:
    """The functions the store's own SQL calls (any connection that reads its schema needs
    them, a read-only check included)."""
    conn.create_function("ct_dim_id", -1, sql_dim_id, deterministic=True)
