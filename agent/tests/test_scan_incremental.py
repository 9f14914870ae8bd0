"""Incremental scanning: appended bytes only, half-written lines, truncation, rotation, deletion."""

from __future__ import annotations

import json
import os
import time

import pytest
from clawtrace import reports
from clawtrace import scan as scan_module

from .conftest import (
    append_text,
    claude_assistant,
    oc_assistant,
    oc_header,
    run_scan,
    turn_rows,
    write_lines,
)


def _file(tmp_path):
    return tmp_path / "claude" / "projects" / "-p" / "s.jsonl"


def test_warm_rescan_of_an_unchanged_tree_parses_nothing(conn, tmp_path, monkeypatch):
    write_lines(_file(tmp_path), [claude_assistant(msg_id="m1")])
    run_scan(conn, tmp_path / "claude")
    calls = []
    monkeypatch.setattr(scan_module.reading, "read_file", lambda task, parse: calls.append(task))
    result = run_scan(conn, tmp_path / "claude")
    assert calls == []
    assert (result.files_read, result.files_unchanged, result.bytes_read) == (0, 1, 0)


def test_appended_lines_are_read_from_the_stored_offset(conn, tmp_path):
    f = write_lines(_file(tmp_path), [claude_assistant(msg_id="m1")])
    run_scan(conn, tmp_path / "claude")
    size_before = f.stat().st_size
    append_text(f, claude_assistant(msg_id="m2") + "\n")
    result = run_scan(conn, tmp_path / "claude")
    assert result.bytes_read == f.stat().st_size - size_before
    assert [r["msg_id"] for r in turn_rows(conn)] == ["m1", "m2"]


def test_a_half_written_last_line_is_picked_up_whole_on_the_next_scan(conn, tmp_path):
    f = write_lines(_file(tmp_path), [claude_assistant(msg_id="m1")])
    full = claude_assistant(msg_id="m2", out=99)
    append_text(f, full[:40])
    first = run_scan(conn, tmp_path / "claude")
    assert first.malformed == 0
    assert [r["msg_id"] for r in turn_rows(conn)] == ["m1"]
    append_text(f, full[40:] + "\n")
    second = run_scan(conn, tmp_path / "claude")
    assert second.malformed == 0
    assert [(r["msg_id"], r["output_tokens"]) for r in turn_rows(conn)] == [("m1", 20), ("m2", 99)]
    assert conn.execute("SELECT lines, malformed FROM files").fetchone() == (2, 0)


def test_where_reads_cannot_go_straight_into_the_buffer_scans_store_the_same(
    conn, tmp_path, monkeypatch
):
    """(Windows has no readv: a transcript's bytes are read, then copied into the buffer.)"""
    monkeypatch.setattr(scan_module.reading, "_read_into", scan_module.reading._read_into_by_copy)
    monkeypatch.setattr(scan_module.reading, "CHUNK_BYTES", 300)  # (several reads a file)
    lines = [claude_assistant(msg_id=f"m{n}", out=n + 1) for n in range(6)]
    write_lines(_file(tmp_path), lines)
    append_text(_file(tmp_path), lines[0][:40])  # half-written: waits for the rest
    run_scan(conn, tmp_path / "claude")
    assert sorted(r["output_tokens"] for r in turn_rows(conn)) == [1, 2, 3, 4, 5, 6]


def test_a_complete_last_line_without_newline_is_read(conn, tmp_path):
    write_lines(_file(tmp_path), [claude_assistant(msg_id="m1")], trailing_newline=False)
    run_scan(conn, tmp_path / "claude")
    assert len(turn_rows(conn)) == 1


def test_a_truncated_file_is_reread_from_the_start_and_history_stays(conn, tmp_path):
    f = write_lines(_file(tmp_path), [claude_assistant(msg_id="m1"), claude_assistant(msg_id="m2")])
    run_scan(conn, tmp_path / "claude")
    write_lines(f, [claude_assistant(msg_id="m3")])
    result = run_scan(conn, tmp_path / "claude")
    assert result.files_reset == 1
    assert sorted(r["msg_id"] for r in turn_rows(conn)) == ["m1", "m2", "m3"]
    assert conn.execute("SELECT lines FROM files").fetchone()[0] == 1


def test_a_file_replaced_under_the_same_name_is_reread(conn, tmp_path):
    f = write_lines(_file(tmp_path), [claude_assistant(msg_id="m1", out=10)])
    run_scan(conn, tmp_path / "claude")
    replacement = f.with_name("new.tmp")
    # Same size, different content, new inode: only the identity check can notice.
    write_lines(replacement, [claude_assistant(msg_id="m7", out=10)])
    os.replace(replacement, f)
    result = run_scan(conn, tmp_path / "claude")
    assert result.files_reset == 1
    assert sorted(r["msg_id"] for r in turn_rows(conn)) == ["m1", "m7"]


def test_rewritten_head_with_same_inode_is_detected(conn, tmp_path):
    f = write_lines(_file(tmp_path), [claude_assistant(msg_id="m1", out=10)])
    run_scan(conn, tmp_path / "claude")
    with open(f, "r+b") as fh:  # rewrite in place (same inode), then grow
        fh.write(
            claude_assistant(msg_id="m5", out=10).encode()
            + b"\n"
            + claude_assistant(msg_id="m6").encode()
            + b"\n"
        )
    result = run_scan(conn, tmp_path / "claude")
    assert result.files_reset == 1
    assert {"m5", "m6"} <= {r["msg_id"] for r in turn_rows(conn)}


def test_deleted_logs_keep_their_turns_and_are_reported_gone(conn, tmp_path):
    f = write_lines(_file(tmp_path), [claude_assistant(msg_id="m1")])
    run_scan(conn, tmp_path / "claude")
    before = reports.totals(conn).as_dict()
    f.unlink()
    result = run_scan(conn, tmp_path / "claude")
    assert result.files_missing == 1
    assert reports.totals(conn).as_dict() == before
    assert conn.execute("SELECT missing_since IS NOT NULL FROM files").fetchone()[0] == 1


def test_openclaw_appends_keep_model_state_between_scans(conn, tmp_path):
    import json

    f = write_lines(
        tmp_path / "oc" / "agents" / "main" / "sessions" / "s.jsonl",
        [
            oc_header("s"),
            json.dumps(
                {"type": "model_change", "id": "x", "provider": "zai", "modelId": "glm-4.7"}
            ),
        ],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    append_text(f, oc_assistant("e1", provider=None, model=None) + "\n")
    run_scan(conn, openclaw=tmp_path / "oc")
    row = turn_rows(conn)[0]
    assert (row["session_id"], row["provider"], row["model"]) == ("s", "zai", "glm-4.7")


def test_parallel_and_serial_scans_store_the_same_turns(tmp_path, monkeypatch):
    from clawtrace import store

    for i in range(6):
        write_lines(
            tmp_path / "claude" / "projects" / f"-p{i}" / "s.jsonl",
            [claude_assistant(msg_id=f"m{i}-{j}", out=j + 1, session=f"s{i}") for j in range(50)],
        )
    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    serial = store.connect(tmp_path / "serial.db")
    parallel = store.connect(tmp_path / "parallel.db")
    run_scan(serial, tmp_path / "claude", workers=1)
    run_scan(parallel, tmp_path / "claude", workers=2)
    cols = "key_hash, output_tokens, cost_pico, ts"
    q = f"SELECT {cols} FROM turns_wide ORDER BY key_hash"  # noqa: S608
    assert serial.execute(q).fetchall() == parallel.execute(q).fetchall()
    assert len(serial.execute(q).fetchall()) == 300


def test_the_listing_writes_under_the_workers_write_lock(tmp_path, monkeypatch):
    """While workers run, the main process's own writes (new files' rows, what the listing
    found) take the lock the workers commit under: waiting on SQLite's busy handler instead
    sleeps in steps of up to 20 ms, the listing stops and the workers run out of files."""
    from clawtrace import store

    for i in range(12):
        write_lines(
            tmp_path / "claude" / "projects" / f"-p{i}" / "s.jsonl",
            [claude_assistant(msg_id=f"m{i}-{j}", session=f"s{i}") for j in range(20)],
        )
    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scan_module.pool, "BATCH_FILES", 2)
    monkeypatch.setattr(scan_module.run, "LISTING_RECORDS_HELD", 0)  # (written at every batch)

    class Held:
        """The pool's lock, as the main process takes it."""

        def __init__(self, lock):
            self.lock, self.held = lock, False

        def __enter__(self):
            self.lock.__enter__()
            self.held = True

        def __exit__(self, *exc):
            self.held = False
            self.lock.__exit__(*exc)

        def close(self):
            self.lock.close()

    pools = []
    pool_init = scan_module.pool.Pool.__init__

    def spied_pool(self, *args, **kwargs):
        pool_init(self, *args, **kwargs)
        self.lock = Held(self.lock)  # (the workers were given the lock itself)
        pools.append(self)

    writes = []
    listing_flush = scan_module.discovery.listing_flush

    def spied_flush(*args, **kwargs):
        writes.append(pools[-1].lock.held)
        return listing_flush(*args, **kwargs)

    monkeypatch.setattr(scan_module.pool.Pool, "__init__", spied_pool)
    monkeypatch.setattr(scan_module.discovery, "listing_flush", spied_flush)
    conn = store.connect(tmp_path / "store.db")
    result = run_scan(conn, tmp_path / "claude", workers=2)
    assert result.turns_total == 240
    assert len(pools) == 1
    assert len(writes) > 2
    assert all(writes)


def _eight_sessions(tmp_path):
    for i in range(8):
        write_lines(
            tmp_path / "claude" / "projects" / f"-p{i}" / "s.jsonl",
            [claude_assistant(msg_id=f"m{i}-{j}", session=f"s{i}") for j in range(10)],
        )


def _scan_stopped_half_way(conn, tmp_path, monkeypatch, workers):
    """A scan of `_eight_sessions`, one batch a file, stopped by an error in the batch of the
    sixth (as a full disk or Ctrl-C would stop it)."""
    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scan_module.pool, "BATCH_FILES", 1)

    def failing(original):
        def batch_of(self, tasks):
            if any("-p5" in t["path"] for t in tasks):
                raise RuntimeError("stopped half-way")
            return original(self, tasks)

        return batch_of

    with monkeypatch.context() as patch:
        for writer in (scan_module.ingest.Ingest, scan_module.ingest.NativeIngest):
            patch.setattr(writer, "batch", failing(writer.batch))
        with pytest.raises(RuntimeError, match="stopped half-way"):
            run_scan(conn, tmp_path / "claude", workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_scan_that_stops_half_way_leaves_its_listing_untrusted(tmp_path, monkeypatch, workers):
    """A new file's row is written with its turns. A scan that stops before every batch is
    written must not leave a listing the next scan trusts (a warm check looks only at files
    with a row): the files that got none would never be read."""
    from clawtrace import store

    _eight_sessions(tmp_path)
    # (The listing of a tree that has just changed is never trusted.)
    settled = time.time_ns() - 60 * 10**9
    for path in [tmp_path, *tmp_path.rglob("*")]:
        os.utime(path, ns=(settled, settled))
    conn = store.connect(tmp_path / "store.db")
    _scan_stopped_half_way(conn, tmp_path, monkeypatch, workers)
    assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] < 80
    result = run_scan(conn, tmp_path / "claude", workers=workers)
    assert result.turns_total == 80
    assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 80
    # And the listing this one left is trusted: nothing is listed again.
    assert run_scan(conn, tmp_path / "claude", workers=workers).files_read == 0


def test_a_first_scan_that_was_stopped_starts_over_as_a_first_scan(tmp_path, monkeypatch):
    """What a stopped first scan wrote is read again in a bulk load, instead of the rest being
    added through the unique key index (ten times slower on a big tree)."""
    from clawtrace import store

    _eight_sessions(tmp_path)
    conn = store.connect(tmp_path / "store.db")
    _scan_stopped_half_way(conn, tmp_path, monkeypatch, workers=2)
    assert 0 < conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] < 80
    assert store.bulk_load_unfinished(conn)
    loads = []
    bulk_load = store.bulk_load
    monkeypatch.setattr(store, "bulk_load", lambda c: loads.append(1) or bulk_load(c))
    result = run_scan(conn, tmp_path / "claude", workers=2)
    assert loads == [1]
    assert result.files_read == 8 and result.turns_total == 80
    assert conn.execute("SELECT SUM(turns) FROM rollup").fetchone()[0] == 80
    assert not store.bulk_load_unfinished(conn)
    # A first scan that finished leaves nothing to start over.
    run_scan(conn, tmp_path / "claude", workers=2)
    assert loads == [1]


def _replays_held(conn) -> int:
    """Sidechain rows whose message another row holds (formats.md 1.7: never billed)."""
    return conn.execute(
        "SELECT COUNT(*) FROM turns_wide AS s WHERE s.is_sidechain AND EXISTS (SELECT 1 FROM "
        "turns_wide AS o WHERE o.msg_hash = s.msg_hash AND o.id <> s.id AND (NOT o.is_sidechain "
        "OR o.id < s.id))"
    ).fetchone()[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_incremental_scan_stopped_half_way_leaves_no_replay_billed(
    tmp_path, monkeypatch, workers
):
    """The sidechain-replay rule holds at every commit: a scan stopped between two batches (a
    kill, Ctrl-C, a restart of `serve`) leaves none of the replays its finished batches read,
    and the next scan's count of what the store holds is right."""
    from clawtrace import store

    _eight_sessions(tmp_path)
    conn = store.connect(tmp_path / "store.db")
    run_scan(conn, tmp_path / "claude", workers=workers)
    for i in range(8):
        # A /btw side question replays the parent's first message, then asks one of its own.
        write_lines(
            tmp_path / "claude" / "projects" / f"-p{i}" / "s" / "subagents" / "agent-b.jsonl",
            [
                claude_assistant(
                    msg_id=f"m{i}-0",
                    req_id="req_btw",
                    session=f"s{i}",
                    sidechain=True,
                    agent_id="b",
                ),
                claude_assistant(msg_id=f"side{i}", session=f"s{i}", sidechain=True, agent_id="b"),
            ],
        )
    _scan_stopped_half_way(conn, tmp_path, monkeypatch, workers=workers)
    assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] > 80
    assert _replays_held(conn) == 0
    result = run_scan(conn, tmp_path / "claude", workers=workers)
    assert _replays_held(conn) == 0
    assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 88
    assert result.turns_total == 88
    assert conn.execute("SELECT SUM(turns) FROM rollup").fetchone()[0] == 88


def test_a_store_left_with_replays_by_an_older_version_loses_them_at_upgrade(tmp_path):
    from clawtrace import store

    _eight_sessions(tmp_path)
    write_lines(
        tmp_path / "claude" / "projects" / "-p0" / "s" / "subagents" / "agent-b.jsonl",
        [
            claude_assistant(
                msg_id="m0-0", req_id="req_btw", session="s0", sidechain=True, agent_id="b"
            )
        ],
    )
    conn = store.connect(tmp_path / "store.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store.writer, "sidechain_replays_among", lambda *_a: [])
        run_scan(conn, tmp_path / "claude", workers=1)
    assert _replays_held(conn) == 1
    # The store as the version before that migration left it.
    step = store.MIGRATIONS.index(store.migrations._replays_settle_all)
    with conn:
        conn.execute(f"PRAGMA user_version={step}")
    store.migrate(conn, store.MIGRATIONS[: step + 1])
    assert _replays_held(conn) == 0
    assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 80
    store.rollups_refresh(conn)
    assert conn.execute("SELECT SUM(turns) FROM rollup").fetchone()[0] == 80


@pytest.mark.parametrize("batch_files", [1, 128])
def test_rollups_built_during_the_scan_equal_a_rebuild_from_the_turns(
    conn, tmp_path, monkeypatch, batch_files
):
    from clawtrace import store

    monkeypatch.setattr(scan_module.pool, "BATCH_FILES", batch_files)
    base = tmp_path / "claude" / "projects"
    for i in range(4):
        write_lines(
            base / f"-p{i}" / "s.jsonl",
            [
                claude_assistant(
                    msg_id=f"m{i}-{j}",
                    out=j + 1,
                    session=f"s{i}",
                    ts=f"2026-03-0{1 + j % 3}T1{j % 10}:{j % 60:02d}:00.000Z",
                    tools=[("a", "Read"), ("b", "Bash")] if j % 2 else None,
                )
                for j in range(40)
            ],
        )
    # A resumed session repeats two turns of another file: that batch takes the upsert path.
    write_lines(
        base / "-p0" / "resumed.jsonl", [claude_assistant(msg_id="m0-1", out=99, session="s0")]
    )
    run_scan(conn, tmp_path / "claude")
    dims = "bucket, source, agent, project, session_id, is_sidechain, model, provider, git_branch"
    sums = ", ".join(
        f"SUM({c})"
        for c in (
            "turns",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "web_search_requests",
            "auto_pico",
            "auto_unpriced_tokens",
            "calc_pico",
            "calc_unpriced_turns",
            "display_pico",
            "display_unpriced_tokens",
            "cache_savings_pico",
            "cache_write_pico",
        )
    )
    q = (
        f"SELECT {dims}, {sums}, MIN(first_ts), MAX(last_ts) FROM rollup_wide "  # noqa: S608
        f"GROUP BY {dims} ORDER BY {dims}"
    )
    qt = (
        "SELECT bucket, tool, SUM(calls), SUM(turns), round(SUM(auto_pico)) FROM tool_rollup "
        "GROUP BY bucket, tool ORDER BY bucket, tool"
    )
    scanned, scanned_tools = conn.execute(q).fetchall(), conn.execute(qt).fetchall()
    with conn:
        store.rollups_refresh(conn, full=True)
    assert conn.execute(q).fetchall() == scanned
    assert conn.execute(qt).fetchall() == scanned_tools
    assert len(scanned) > 3


def test_pieces_of_one_response_split_across_read_chunks_count_once(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(scan_module.reading, "CHUNK_BYTES", 1500)
    filler = [claude_assistant(msg_id=f"f{i}") for i in range(6)]
    write_lines(
        _file(tmp_path),
        [
            claude_assistant(msg_id="m1", out=5, tools=[("t1", "Read")]),
            *filler,
            claude_assistant(msg_id="m1", out=70, tools=[("t2", "Grep")]),
        ],
    )
    run_scan(conn, tmp_path / "claude")
    rows = {r["msg_id"]: r for r in turn_rows(conn)}
    assert len(rows) == 7
    assert rows["m1"]["output_tokens"] == 70
    assert sorted(json.loads(rows["m1"]["tools"])) == ["Grep", "Read"]


def test_a_verbatim_copy_in_a_resumed_session_recomputes_no_rollup(conn, tmp_path, monkeypatch):
    from clawtrace import store

    line = claude_assistant(msg_id="m1", out=10)
    write_lines(_file(tmp_path), [line])
    run_scan(conn, tmp_path / "claude")
    rebuilt = []
    original = store.rollups_rebuild
    monkeypatch.setattr(
        store, "rollups_rebuild", lambda c, ranges: rebuilt.append(ranges) or original(c, ranges)
    )
    later = claude_assistant(msg_id="m2", ts="2026-02-11T10:00:00.000Z")  # a bucket of its own
    write_lines(_file(tmp_path).with_name("resumed.jsonl"), [line, later])
    run_scan(conn, tmp_path / "claude")
    assert rebuilt == []
    assert reports.totals(conn).turns == 2
