"""File and directory names that are not UTF-8 (legal on Linux): read, stored, found again,
and shown with replacement characters."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from clawtrace import reports, store
from clawtrace import scan as scan_module

from tests.conftest import claude_assistant, oc_assistant, oc_header, run_scan
from tests.hostile.conftest import no_traceback

pytestmark = pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="this file system refuses names that are not UTF-8"
)


def _bytes_path(base: Path, *parts: bytes) -> bytes:
    return os.path.join(os.fsencode(base), *parts)


def _write(path: bytes, lines: list[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "ab") as fh:
        fh.write("".join(line + "\n" for line in lines).encode())


def _trees(tmp_path: Path) -> tuple[bytes, bytes]:
    projects = _bytes_path(tmp_path, b"claude", b"projects")
    os.makedirs(os.path.join(projects, b"empty-\xfe"))  # (an empty one broke every scan too)
    claude = os.path.join(projects, b"-home-\xff-proj", b"sess-\xe9.jsonl")
    _write(claude, [claude_assistant(msg_id="m1", cwd="")])
    openclaw = _bytes_path(tmp_path, b"oc", b"agents", b"ag\xff", b"sessions", b"s-\xfa.jsonl")
    _write(openclaw, [oc_header(session="s-1"), oc_assistant("e1")])
    return claude, openclaw


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "parallel"])
def test_names_that_are_not_utf8_are_read_and_found_again(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    claude, openclaw = _trees(tmp_path)
    conn = store.connect(tmp_path / "store.db")
    result = run_scan(conn, tmp_path / "claude", tmp_path / "oc", workers=workers)
    assert result.files_read == 2 and result.malformed == 0
    assert run_scan(conn, tmp_path / "claude", tmp_path / "oc", workers=workers).files_read == 0
    _write(claude, [claude_assistant(msg_id="m2", cwd="")])
    _write(openclaw, [oc_assistant("e2")])
    again = run_scan(conn, tmp_path / "claude", tmp_path / "oc", workers=workers)
    assert again.files_read == 2 and again.files_reset == 0
    assert reports.totals(conn).turns == 4
    by_project = reports.cost_report(conn, tz="UTC", by="project", filters=reports.Filters())
    assert "-home-\ufffd-proj" in {row["project"] for row in by_project["rows"]}
    by_agent = reports.cost_report(conn, tz="UTC", by="agent", filters=reports.Filters())
    assert "ag\ufffd" in {row["agent"] for row in by_agent["rows"]}
    stored = {r[0] for r in conn.execute("SELECT path FROM files")}
    assert claude in stored and openclaw in stored  # as bytes, exactly


def test_the_command_line_shows_them_with_replacement_characters(cli, tmp_path):
    _trees(tmp_path)
    dirs = ["--claude-dir", str(tmp_path / "claude"), "--openclaw-dir", str(tmp_path / "oc")]
    for command in (("scan",), ("doctor",), ("cost-report", "--by", "project", "--range", "all")):
        run = cli(*command, *dirs)
        assert run.code == 0, run.text
        no_traceback(run)
    doctor = cli("doctor", "--json", *dirs)
    assert doctor.code == 0
    json.loads(doctor.out)


def test_a_root_that_is_not_utf8_is_scanned(cli, tmp_path):
    root = _bytes_path(tmp_path, b"r\xff")
    _write(os.path.join(root, b"projects", b"-p", b"s.jsonl"), [claude_assistant(msg_id="m1")])
    run = cli("scan", "--claude-dir", os.fsdecode(root), "--openclaw-dir", str(tmp_path / "x"))
    assert run.code == 0 and "1 turn" in run.text, run.text
    no_traceback(run)
