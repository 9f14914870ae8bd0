"""The store's files beside `clawtrace.db`: the derived sums' file (`-sums`), a cache that is
made again whenever it is missing or damaged, and the marker a first (bulk) load leaves."""

from __future__ import annotations

import fcntl
import os
import sqlite3

import orjson
import pytest
from clawtrace import reports, store

from .conftest import claude_assistant, run_scan, write_lines


@pytest.fixture
def scanned(isolated_home, tmp_path):
    """A store holding a few days of turns, its derived sums in step."""
    lines = [
        claude_assistant(msg_id=f"m{n}", ts=f"2026-03-{1 + n % 5:02d}T1{n % 10}:00:00.000Z")
        for n in range(40)
    ]
    write_lines(tmp_path / "claude" / "projects" / "-p" / "s.jsonl", lines)
    path = isolated_home / "clawtrace.db"
    conn = store.connect(path)
    run_scan(conn, claude=tmp_path / "claude")
    assert store.derived_fresh(conn)
    conn.close()
    return path


def _by_day(path):
    """Reports by day and by session (the derived sums' two shapes), and whether they read
    the derived sums."""
    conn = store.connect(path)
    try:
        filters = reports.Filters(since_ms=None, until_ms=None)
        answers = [reports.cost_report(conn, filters, "UTC", by=by) for by in ("day", "session")]
        return answers, store.derived_fresh(conn)
    finally:
        conn.close()


def test_the_derived_sums_live_in_their_own_file_not_in_the_store(scanned):
    sums = sqlite3.connect(store.sums_file(str(scanned)))
    assert sums.execute("SELECT COUNT(*) FROM rollup_day").fetchone()[0] > 0
    main = sqlite3.connect(scanned)
    tables = {r[0] for r in main.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not tables & {"rollup_model", "rollup_day", "tool_day"}


@pytest.mark.parametrize("damage", ["deleted", "garbage", "another layout"])
def test_a_sums_file_missing_or_damaged_is_made_again_and_refilled(scanned, damage):
    before, _ = _by_day(scanned)
    target = store.sums_file(str(scanned))
    if damage == "deleted":
        for suffix in ("", "-wal", "-shm"):
            (scanned.parent / (scanned.name + store.SUMS_SUFFIX + suffix)).unlink(missing_ok=True)
    elif damage == "garbage":
        with open(target, "r+b") as fh:
            fh.write(b"not a database" * 100)
    else:
        with sqlite3.connect(target) as sums:
            sums.execute("UPDATE sums_meta SET value = 'an older one' WHERE key = 'layout'")
    conn = store.connect(scanned)
    assert not store.derived_fresh(conn)  # until refilled, reports read the rollups
    assert store.derived_refresh(conn) == -1
    assert store.derived_fresh(conn)
    conn.close()
    after, fresh = _by_day(scanned)
    assert fresh and after == before


def test_a_store_from_before_the_sums_file_moves_them_there(isolated_home, tmp_path):
    isolated_home.mkdir(parents=True, exist_ok=True)
    path = isolated_home / "old.db"
    old = sqlite3.connect(path)
    store.configure(old)
    store.migrate(old, store.MIGRATIONS[:6])
    old.execute("INSERT INTO meta (key, value) VALUES ('derived_marks', '0,0')")
    old.commit()
    old.close()
    conn = store.connect(path)
    assert store.schema_version(conn) == len(store.MIGRATIONS)
    assert store.meta_get(conn, "derived_marks") is None
    write_lines(tmp_path / "c" / "projects" / "-p" / "s.jsonl", [claude_assistant(msg_id="m")])
    run_scan(conn, claude=tmp_path / "c")
    assert store.derived_fresh(conn)
    assert conn.execute("SELECT SUM(turns) FROM sums.rollup_day").fetchone()[0] == 1


def test_rebuilt_rollups_take_the_derived_sums_out_of_use_even_with_the_same_rowids(scanned):
    conn = store.connect(scanned)
    with conn:
        store.rollups_rebuild(conn, None)  # rowids start again: the marks alone would match
    assert not store.derived_fresh(conn)
    assert store.derived_refresh(conn) == -1 and store.derived_fresh(conn)


# --- the bulk load's marker ----------------------------------------------------------------------


def _marker(path):
    return path.parent / (path.name + store.BULK_MARKER)


def test_a_bulk_load_ends_with_its_marker_settled_in_this_boot(isolated_home, monkeypatch):
    path = isolated_home / "clawtrace.db"
    conn = store.connect(path)
    monkeypatch.setattr(store.bulk, "_boot_id", lambda: "boot-1")
    with store.bulk_load(conn):
        assert _marker(path).read_text() == "bulk load in progress\n"
    assert _marker(path).read_text() == "settled boot-1\n"
    conn.close()
    store.connect(path).close()
    assert not _marker(path).exists()


def test_without_a_boot_id_a_bulk_load_syncs_and_takes_its_marker_away(isolated_home, monkeypatch):
    path = isolated_home / "clawtrace.db"
    conn = store.connect(path)
    monkeypatch.setattr(store.bulk, "_boot_id", lambda: "")
    synced: list[str] = []
    monkeypatch.setattr(store.bulk, "_fsync_path", synced.append)
    with store.bulk_load(conn):
        pass
    assert not _marker(path).exists()
    sums = store.sums_file(str(path))
    assert synced == [str(path), f"{path}-wal", sums, f"{sums}-wal"]


def test_the_next_connect_in_the_same_boot_syncs_the_store_and_its_sums(isolated_home, monkeypatch):
    path = isolated_home / "clawtrace.db"
    conn = store.connect(path)
    monkeypatch.setattr(store.bulk, "_boot_id", lambda: "boot-1")
    with store.bulk_load(conn):
        pass
    conn.close()
    synced: list[str] = []
    monkeypatch.setattr(store.bulk, "_fsync_path", synced.append)
    store.connect(path).close()
    sums = store.sums_file(str(path))
    assert synced == [str(path), f"{path}-wal", sums, f"{sums}-wal"]


def test_a_bulk_load_leaves_nothing_for_the_close_to_checkpoint(isolated_home, monkeypatch):
    """Closing the last connection checkpoints what its logs hold, and with `synchronous` back
    to NORMAL that syncs the whole new store: a first scan would wait for the disk after all.
    So the scan's last writes go in before the bulk load ends, and both logs end empty."""
    from clawtrace import scan as scan_module

    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)  # the bulk load of a big tree
    monkeypatch.setattr(store.bulk, "_boot_id", lambda: "boot-1")
    root = isolated_home / "logs"
    for n in range(6):
        lines = [claude_assistant(msg_id=f"m{n}-{k}") for k in range(30)]
        write_lines(root / "claude" / "projects" / f"-p{n}" / "s.jsonl", lines)
    path = isolated_home / "clawtrace.db"
    conn = store.connect(path)
    result = run_scan(conn, claude=root / "claude", workers=2)
    assert _marker(path).read_text() == "settled boot-1\n"
    for log in (f"{path}-wal", f"{store.sums_file(str(path))}-wal"):
        assert os.path.getsize(log) == 0, log
    assert store.meta_get(conn, "last_scan_result") == orjson.dumps(result.as_dict()).decode()
    assert store.derived_fresh(conn)
    conn.close()


def _damage(path):
    with open(path, "r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff" * 8192)


@pytest.mark.parametrize(
    ("marker", "damaged", "kept"),
    [
        ("settled boot-1\n", False, True),
        ("settled boot-0\n", False, True),  # another boot: checked, sound
        ("settled boot-0\n", True, False),  # another boot: checked, damaged
        ("bulk load in progress\n", True, False),  # died mid-way
    ],
)
def test_a_store_found_with_a_marker_is_kept_when_sound_else_started_again(
    scanned, monkeypatch, marker, damaged, kept
):
    monkeypatch.setattr(store.bulk, "_boot_id", lambda: "boot-1")
    _marker(scanned).write_text(marker)
    if damaged:
        _damage(scanned)
    sums = store.sums_file(str(scanned))
    with sqlite3.connect(sums) as probe:
        probe.execute("CREATE TABLE left_by_the_load (n)")  # (to tell the file apart)
    conn = store.connect(scanned)
    turns = conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
    sums_kept = conn.execute(
        "SELECT COUNT(*) FROM sums.sqlite_master WHERE name = 'left_by_the_load'"
    ).fetchone()[0]
    conn.close()
    assert not _marker(scanned).exists()
    assert turns == (40 if kept else 0)
    # The derived sums of a load not known to be on disk are a cache made again, not checked.
    assert sums_kept == (marker == "settled boot-1\n")


def test_a_marker_is_left_alone_while_a_scan_holds_the_store(scanned, monkeypatch):
    """(Another process's first scan is running: its store is neither checked nor started
    again, whatever a check would find half-way through.)"""
    monkeypatch.setattr(store.bulk, "_boot_id", lambda: "boot-1")
    _marker(scanned).write_text("bulk load in progress\n")
    with open(str(scanned) + store.SCAN_LOCK_SUFFIX, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        conn = store.connect(scanned)
        assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 40
        conn.close()
        assert _marker(scanned).exists()
    store.connect(scanned).close()
    assert not _marker(scanned).exists()


def test_a_new_store_has_16_kib_pages_and_an_older_one_keeps_its_own(isolated_home, tmp_path):
    new = store.connect(isolated_home / "clawtrace.db")
    assert new.execute("PRAGMA page_size").fetchone()[0] == store.PAGE_BYTES == 16384
    assert new.execute("PRAGMA sums.page_size").fetchone()[0] == store.PAGE_BYTES
    new.close()
    # A store made with SQLite's default pages, with a turn in it: opened, migrated, scanned.
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as raw:
        raw.execute("PRAGMA page_size=4096")
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("CREATE TABLE kept (n)")
    conn = store.connect(older)
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    log = tmp_path / "claude" / "projects" / "-p" / "s.jsonl"
    write_lines(log, [claude_assistant(msg_id="m1")])
    assert run_scan(conn, claude=tmp_path / "claude").turns_total == 1
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    conn.close()
