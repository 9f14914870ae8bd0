"""Failures of the machine or of the user's input are one line that says what is wrong and what
to do, with exit code 2, never a traceback: a damaged store (and `doctor --rebuild`), a config
that is wrong in any of the ways a hand-edited file can be, a home that cannot be used, command
line values that are not UTF-8, a tree nested deeper than the system's path limit."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
from clawtrace import store

from tests.conftest import claude_assistant, write_lines
from tests.hostile.conftest import no_traceback

PAGE = store.PAGE_BYTES


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "claude"
    write_lines(
        root / "projects" / "-home-u-proj" / "sess-1.jsonl",
        [claude_assistant(msg_id=f"m{i}", req_id=f"r{i}") for i in range(40)],
    )
    return root


@pytest.fixture
def scanned(cli, tree: Path, isolated_home: Path) -> Path:
    """A store holding the tree's 40 turns; returns the store's file."""
    done = cli("scan", "--claude-dir", str(tree), "--openclaw-dir", str(tree / "none"))
    assert done.code == 0, done.text
    return isolated_home / "clawtrace.db"


def _dirs(tree: Path) -> tuple[str, ...]:
    return ("--claude-dir", str(tree), "--openclaw-dir", str(tree / "none"))


def _overwrite(db: Path, offset: int, data: bytes) -> None:
    with open(db, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _one_error_line(run) -> str:
    no_traceback(run)
    assert run.code == 2, run.text
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.err
    return lines[0]


# --- a damaged store ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda db: _overwrite(db, 3 * PAGE, b"\xde\xad" * (PAGE // 2)), id="garbage"),
        pytest.param(lambda db: _overwrite(db, 2 * PAGE, b"\0" * (3 * PAGE)), id="zeroed"),
        pytest.param(lambda db: _overwrite(db, 0, b"\0" * PAGE), id="header-zeroed"),
        pytest.param(
            lambda db: sqlite3.connect(db).execute("DROP TABLE tool_rollup"), id="dropped-table"
        ),
        pytest.param(lambda db: sqlite3.connect(db).execute("DROP TABLE turns"), id="no-turns"),
    ],
)
def test_doctor_names_a_damaged_store_and_how_to_recover(cli, scanned, tree, damage):
    damage(scanned)
    report = cli("doctor", "--no-scan", *_dirs(tree))
    no_traceback(report)
    assert report.code == 2
    assert "damaged" in report.out and "doctor --rebuild" in report.out
    assert "somewhere safe" in report.out  # (keep a copy first: it may hold history)
    as_json = cli("doctor", "--no-scan", "--json", *_dirs(tree))
    assert json.loads(as_json.out)["store"]["damaged"] is True
    # Every other command fails in one line, or reads what is sound: never a traceback.
    for command in ("status", "cost-report", "tools", "sessions"):
        run = cli(command, "--no-scan")
        no_traceback(run)
        if run.code:
            assert "damaged" in _one_error_line(run) or "cannot" in run.err


def test_doctor_rebuild_keeps_the_old_store_beside_a_new_one(cli, scanned, tree, isolated_home):
    _overwrite(scanned, 3 * PAGE, b"\xde\xad" * (PAGE // 2))
    rebuilt = cli("doctor", "--rebuild", "--json", *_dirs(tree))
    no_traceback(rebuilt)
    assert rebuilt.code == 0, rebuilt.text
    data = json.loads(rebuilt.out)
    assert data["turns"] == 40
    old = Path(data["old_store"])
    assert old.parent == isolated_home and old.name.startswith("clawtrace.db.damaged-")
    assert old.read_bytes()[3 * PAGE : 3 * PAGE + 4] == b"\xde\xad\xde\xad"  # untouched
    healthy = cli("doctor", "--no-scan", "--json", *_dirs(tree))
    assert healthy.code == 0 and json.loads(healthy.out)["store"]["damaged"] is False
    totals = json.loads(cli("cost-report", "--range", "all", "--json", "--no-scan").out)
    assert totals["totals"]["turns"] == 40


def test_a_directory_in_place_of_the_scan_lock_is_named(cli, scanned, tree):
    lock = Path(f"{scanned}{store.SCAN_LOCK_SUFFIX}")
    lock.unlink()
    lock.mkdir()
    assert "scan-lock" in _one_error_line(cli("scan", *_dirs(tree)))
    doctor = cli("doctor", "--no-scan", *_dirs(tree))
    assert doctor.code == 2 and "not a regular file" in doctor.out
    assert cli("doctor", "--rebuild", *_dirs(tree)).code == 0
    assert cli("scan", *_dirs(tree)).code == 0


def test_a_healthy_store_passes_the_check(cli, scanned, tree):
    report = cli("doctor", "--no-scan", "--json", *_dirs(tree))
    assert report.code == 0
    checked = json.loads(report.out)["store"]
    assert checked["damaged"] is False and checked["problems"] == []


# --- the config file ---------------------------------------------------------------------------


def _config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def test_a_misspelt_key_is_a_warning_naming_its_line(cli, isolated_home, tree):
    _config(isolated_home, '[general]\ntimezone = "UTC"\ncost_mod = "calculate"\n')
    run = cli("status", "--json", *_dirs(tree))
    assert run.code == 0, run.text
    json.loads(run.out)  # (the warning is on stderr: the JSON stays one document)
    assert "line 3" in run.err and "general.cost_mod" in run.err
    assert "did you mean 'general.cost_mode'" in run.err


def test_the_config_takes_the_zones_that_the_option_takes(cli, isolated_home, tree):
    _config(isolated_home, '[general]\ntimezone = "+05:30"\n')
    from_config = cli("status", "--json", *_dirs(tree))
    from_option = cli("status", "--json", "--timezone", "+05:30", *_dirs(tree))
    assert from_config.code == 0 and from_option.code == 0, from_config.text + from_option.text
    assert json.loads(from_config.out)["timezone"] == json.loads(from_option.out)["timezone"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a = " + "[" * 5000 + "]" * 5000 + "\n", id="nested-arrays"),
        pytest.param("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n", id="nested-tables"),
        pytest.param('[sources]\nclaude_dirs = ["~nosuchuser-ct/x"]\n', id="other-user"),
        pytest.param('[general]\ncost_mode = "cheap"\n', id="bad-value"),
        pytest.param("[general\n", id="bad-toml"),
    ],
)
def test_a_config_that_cannot_be_used_is_one_line(cli, isolated_home, tree, text):
    _config(isolated_home, text)
    line = _one_error_line(cli("status", *_dirs(tree)))
    assert "config.toml" in line


def test_config_set_refuses_a_misplaced_or_unknown_key(cli, isolated_home):
    line = _one_error_line(cli("config", "set", "cost_mode", "calculate"))
    assert "general.cost_mode" in line
    _one_error_line(cli("config", "set", "nosuchkey", "1"))
    assert not (isolated_home / "config.toml").exists()
    assert cli("config", "set", "general.cost_mode", "calculate").code == 0
    assert 'cost_mode = "calculate"' in (isolated_home / "config.toml").read_text()


def test_config_set_on_a_home_that_cannot_be_written(isolated_home, monkeypatch, capsys):
    """(In process: the suite runs as root in CI, for whom no directory is read-only.)"""
    from clawtrace.__main__ import main

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(sys, "argv", ["clawtrace", "config", "set", "general.cost_mode", "auto"])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Read-only file system" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
def test_config_set_on_a_read_only_home(cli, isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    isolated_home.chmod(0o555)
    try:
        line = _one_error_line(cli("config", "set", "general.cost_mode", "auto"))
    finally:
        isolated_home.chmod(0o755)
    assert "cannot write" in line


# --- the home ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["is-a-file", "under-a-file"])
def test_a_home_that_is_not_a_directory(cli, tmp_path, tree, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    home = blocker if where == "is-a-file" else blocker / "home"
    for command in ("scan", "status", "doctor"):
        run = cli(command, *_dirs(tree), env={"CLAWTRACE_HOME": str(home)})
        assert "CLAWTRACE_HOME" in _one_error_line(run)


# --- the command line --------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="names must be UTF-8 there")
def test_filters_that_are_not_utf8_match_the_names_they_stand_for(cli, tmp_path):
    projects = os.path.join(os.fsencode(tmp_path), b"claude", b"projects")
    session = os.path.join(projects, b"-home-\xff-proj", b"sess-1.jsonl")
    os.makedirs(os.path.dirname(session))
    with open(session, "wb") as fh:
        fh.write((claude_assistant(msg_id="m1", cwd="") + "\n").encode())
    dirs = ("--claude-dir", os.fsdecode(os.path.dirname(projects)), "--openclaw-dir", "/none")
    raw = os.fsdecode(b"-home-\xff-proj")  # (what the shell passes: bytes, not UTF-8)
    for option in ("--project", "--model", "--agent"):
        run = cli("cost-report", "--range", "all", "--json", option, raw, *dirs)
        no_traceback(run)
        assert run.code == 0, run.text
    matched = cli("cost-report", "--range", "all", "--json", "--project", raw, *dirs)
    assert json.loads(matched.out)["totals"]["turns"] == 1


def test_json_and_csv_together_is_an_error(cli, tree):
    for command in ("status", "cost-report", "sessions", "blocks", "tools", "cache", "forecast"):
        assert "--json and --csv" in _one_error_line(cli(command, "--json", "--csv", "--no-scan"))


def test_no_scan_says_when_the_last_scan_did_not_finish(cli, scanned, tree):
    conn = sqlite3.connect(scanned)
    with conn:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('scan_started', '1')")
    conn.close()
    run = cli("status", "--no-scan", "--json")
    assert run.code == 0 and "last scan stopped before its end" in run.err
    cli("scan", *_dirs(tree))
    assert "last scan" not in cli("status", "--no-scan", "--json").err


def test_doctor_counts_in_words(cli, tree, tmp_path):
    write_lines(tree / "projects" / "-home-u-proj" / "sess-2.jsonl", ["{not json"])
    run = cli("doctor", *_dirs(tree))
    assert "1 malformed line," in run.out or "1 malformed line\n" in run.out, run.out
    assert "1 malformed lines" not in run.out


def test_scan_counts_in_words(cli, tree):
    write_lines(tree / "projects" / "-home-u-proj" / "sess-2.jsonl", ["{not json"])
    run = cli("scan", *_dirs(tree))
    assert "1 malformed line," in run.out, run.out
    assert "1 malformed lines" not in run.out


# --- a tree nested deeper than the path limit -------------------------------------------------


def test_a_tree_deeper_than_the_path_limit_is_named_not_skipped_in_silence(cli, tree):
    fd = os.open(tree / "projects", os.O_RDONLY)
    try:
        for _ in range(25):  # 25 x 201 bytes: past Linux's PATH_MAX of 4096
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        log = os.open("deep.jsonl", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(log, (claude_assistant(msg_id="deep", req_id="deep") + "\n").encode())
        os.close(log)
    finally:
        os.close(fd)
    run = cli("scan", *_dirs(tree))
    no_traceback(run)
    assert run.code == 0
    assert "could not be read" in run.err and "longer than this system allows" in run.err
    doctor = cli("doctor", *_dirs(tree))
    assert "cannot read" in doctor.out and "longer than this system allows" in doctor.out
