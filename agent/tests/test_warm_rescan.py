"""A rescan skips discovery while nothing the last one listed has changed, and misses nothing.

Directory modification times say when entries were added, removed or renamed; appends move
only the file's own. So a rescan stats the directories and index files the last discovery read
and, when none moved, stats only the known files. These tests age the directories (a listing
is trusted only once its directory has been still for two seconds) and hold every kind of
change to the same result as a full discovery.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from clawtrace import scan as scan_module
from clawtrace.sources import claude_code, openclaw

from .conftest import (
    append_text,
    claude_assistant,
    needs_native,
    oc_assistant,
    oc_header,
    run_scan,
    turn_rows,
)
from .conftest import write_lines as _write


def _age(*roots: Path) -> None:
    """Move every directory's (and index file's) time a minute back, as if long settled."""
    t = time.time_ns() - 60 * 10**9
    for root in roots:
        for p in [root, *root.rglob("*")]:
            if p.is_dir() or p.name == "sessions.json":
                os.utime(p, ns=(t, t))


@pytest.fixture
def spy(monkeypatch):
    """Records whether each scan took the short way (a list of booleans)."""
    taken: list[bool] = []
    real = scan_module.discovery.tree_unchanged

    def wrapped(conn, sig):
        out = real(conn, sig)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(scan_module.discovery, "tree_unchanged", wrapped)
    return taken


@pytest.fixture(params=["native", "python"])
def checker(request, monkeypatch):
    if request.param == "python":
        monkeypatch.setattr(scan_module.ingest, "ingest_module", lambda: None)
    else:
        needs_native(scan_module.ingest.ingest_module())
    return request.param


def _tree(tmp_path: Path) -> Path:
    claude = tmp_path / "claude"
    _write(claude / "projects" / "-a" / "s1.jsonl", [claude_assistant(msg_id="m1")])
    _write(claude / "projects" / "-b" / "s2.jsonl", [claude_assistant(msg_id="m2")])
    return claude


def _settled(conn, claude: Path, openclaw: Path | None = None) -> None:
    """A scan, then directories aged and scanned again: the record is now trusted."""
    run_scan(conn, claude, openclaw)
    _age(claude, *([openclaw] if openclaw else []))
    run_scan(conn, claude, openclaw)


def test_an_unchanged_tree_is_not_listed_again(conn, tmp_path, spy, checker, monkeypatch):
    claude = _tree(tmp_path)
    _settled(conn, claude)

    def no_listing(self, roots):
        raise AssertionError("discovery ran")

    monkeypatch.setattr(claude_code.ClaudeCode, "discover", no_listing)
    result = run_scan(conn, claude)
    assert spy[-1] is True
    assert (result.files_seen, result.files_unchanged, result.files_read) == (2, 2, 0)
    assert result.roots["claude-code"]["found"] == [str(claude / "projects")]


def test_appended_lines_are_read_without_a_listing(conn, tmp_path, spy, checker):
    claude = _tree(tmp_path)
    _settled(conn, claude)
    f = claude / "projects" / "-a" / "s1.jsonl"
    before = f.stat().st_size
    append_text(f, claude_assistant(msg_id="m3", out=7) + "\n")
    result = run_scan(conn, claude)
    assert spy[-1] is True
    assert (result.files_read, result.bytes_read) == (1, f.stat().st_size - before)
    assert sorted(r["msg_id"] for r in turn_rows(conn)) == ["m1", "m2", "m3"]


def test_a_new_file_in_a_known_directory_is_found(conn, tmp_path, spy, checker):
    claude = _tree(tmp_path)
    _settled(conn, claude)
    _write(claude / "projects" / "-a" / "s3.jsonl", [claude_assistant(msg_id="m4")])
    run_scan(conn, claude)
    assert spy[-1] is False
    assert sorted(r["msg_id"] for r in turn_rows(conn)) == ["m1", "m2", "m4"]


def test_a_new_project_and_a_new_subagent_directory_are_found(conn, tmp_path, spy, checker):
    claude = _tree(tmp_path)
    _settled(conn, claude)
    _write(claude / "projects" / "-c" / "s9.jsonl", [claude_assistant(msg_id="m5")])
    _write(
        claude / "projects" / "-a" / "s1" / "subagents" / "agent-x.jsonl",
        [claude_assistant(msg_id="m6", sidechain=True)],
    )
    run_scan(conn, claude)
    assert spy[-1] is False
    assert sorted(r["msg_id"] for r in turn_rows(conn)) == ["m1", "m2", "m5", "m6"]
    _age(claude)
    run_scan(conn, claude)
    result = run_scan(conn, claude)
    assert spy[-1] is True
    assert result.files_unchanged == 4


def test_a_listing_stopped_half_way_leaves_no_record_to_trust(
    conn, tmp_path, spy, checker, monkeypatch
):
    """A full listing writes its record as it goes (a big tree's is not held until it ends). One
    that stops half-way must leave nothing the next scan trusts: the part written could vouch
    for a directory whose new transcripts were never listed."""
    claude = _tree(tmp_path)
    _settled(conn, claude)
    _write(claude / "projects" / "-c" / "s9.jsonl", [claude_assistant(msg_id="m9")])
    _write(claude / "projects" / "-d" / "s10.jsonl", [claude_assistant(msg_id="m10")])
    # Workers and one file a batch: the first new file's batch is handed over (and the record
    # so far written) before the listing reaches its end, where it stops.
    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scan_module.pool, "BATCH_FILES", 1)
    real = claude_code.ClaudeCode.walk

    def stops_after_the_last_file(self, roots, found):
        for entry in real(self, roots, found):
            yield entry
            if entry.path.endswith("s10.jsonl"):
                raise RuntimeError("listing stopped")

    monkeypatch.setattr(claude_code.ClaudeCode, "walk", stops_after_the_last_file)
    with pytest.raises(RuntimeError, match="listing stopped"):
        run_scan(conn, claude, workers=2)
    assert conn.execute("SELECT value FROM meta WHERE key = 'watch_roots'").fetchone() is None
    monkeypatch.setattr(claude_code.ClaudeCode, "walk", real)
    run_scan(conn, claude, workers=2)
    assert spy[-1] is False
    assert sorted(r["msg_id"] for r in turn_rows(conn)) == ["m1", "m10", "m2", "m9"]


def test_a_deleted_log_is_noticed_and_its_turns_kept(conn, tmp_path, spy, checker):
    claude = _tree(tmp_path)
    _settled(conn, claude)
    (claude / "projects" / "-b" / "s2.jsonl").unlink()
    result = run_scan(conn, claude)
    assert spy[-1] is False
    assert result.files_missing == 1
    assert sorted(r["msg_id"] for r in turn_rows(conn)) == ["m1", "m2"]
    _age(claude)
    run_scan(conn, claude)
    result = run_scan(conn, claude)
    assert spy[-1] is True  # the missing file is history, not a change
    assert result.files_seen == 1


def test_a_directory_changed_just_before_its_listing_is_not_trusted(conn, tmp_path, spy):
    claude = _tree(tmp_path)
    run_scan(conn, claude)
    run_scan(conn, claude)
    # The directories were written within the last two seconds: a file added in the same
    # clock tick would not have moved their times, so the listing is done again.
    assert spy == [False]  # (the first scan, into an empty store, always lists)
    stored = conn.execute("SELECT MIN(mtime_ns) FROM watch WHERE kind = 'd'").fetchone()[0]
    assert stored == -1


def test_other_roots_mean_a_new_listing(conn, tmp_path, spy, checker):
    claude = _tree(tmp_path)
    _settled(conn, claude)
    other = tmp_path / "other-claude"
    _write(other / "projects" / "-z" / "z.jsonl", [claude_assistant(msg_id="m7")])
    run_scan(conn, other)
    assert spy[-1] is False
    assert "m7" in {r["msg_id"] for r in turn_rows(conn)}


def _sessions_json(sessions: Path, entries: dict) -> None:
    # Written in place, as an editor or a careless writer would: the directory does not move.
    with open(
        sessions / "sessions.json", "r+" if (sessions / "sessions.json").exists() else "w"
    ) as fh:
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(entries))


def test_an_index_rewritten_in_place_is_read_again(conn, tmp_path, spy, checker):
    oc = tmp_path / "openclaw"
    sessions = oc / "agents" / "main" / "sessions"
    _write(sessions / "s-1.jsonl", [oc_header("s-1"), oc_assistant("a1")])
    _sessions_json(sessions, {"agent:main:main": {"sessionId": "s-1"}})
    _settled(conn, tmp_path / "no-claude", oc)
    (ctx,) = conn.execute("SELECT ctx_json FROM files").fetchone()
    assert json.loads(ctx)["session_key"] == "agent:main:main"
    dir_time = sessions.stat().st_mtime_ns
    _sessions_json(sessions, {"agent:main:subagent:x": {"sessionId": "s-1"}})
    os.utime(sessions, ns=(dir_time, dir_time))
    run_scan(conn, tmp_path / "no-claude", oc)
    assert spy[-1] is False
    (ctx,) = conn.execute("SELECT ctx_json FROM files").fetchone()
    assert json.loads(ctx) == {**json.loads(ctx), "session_key": "agent:main:subagent:x"}
    assert json.loads(ctx)["subagent"] is True
    rows = conn.execute("SELECT session_key FROM index_sessions").fetchall()
    assert rows == [("agent:main:subagent:x",)]


def test_the_stored_context_is_what_discovery_gives(conn, tmp_path, checker):
    oc = tmp_path / "openclaw"
    sessions = oc / "agents" / "ops" / "sessions"
    _write(sessions / "s-2.jsonl", [oc_header("s-2"), oc_assistant("b1")])
    _sessions_json(sessions, {"agent:ops:cron:nightly": {"sessionId": "s-2"}})
    claude = _tree(tmp_path)
    run_scan(conn, claude, oc)
    sources = ((claude_code.ClaudeCode(), [claude / "projects"]), (openclaw.OpenClaw(), [oc]))
    listed = {e.path: e.ctx for src, roots in sources for e in src.discover(roots).files}
    stored = {p: json.loads(c) for p, c in conn.execute("SELECT path, ctx_json FROM files")}
    assert stored == listed
