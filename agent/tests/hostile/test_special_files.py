"""Special files where logs, indexes or the config are expected: nothing waits on them."""

from __future__ import annotations

import os
import threading
import time

import pytest
from clawtrace import watch

from tests.conftest import claude_assistant, oc_assistant, oc_header, write_lines
from tests.hostile.conftest import no_traceback

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")

COMMANDS = (("scan",), ("status",), ("cost-report", "--json", "--range", "all"), ("doctor",))


def _trees(tmp_path):
    claude = tmp_path / "claude"
    project = claude / "projects" / "-home-u-proj"
    write_lines(project / "real.jsonl", [claude_assistant(msg_id="m1")])
    os.mkfifo(project / "pipe.jsonl")
    os.mkfifo(project / "target-fifo")
    os.symlink(project / "target-fifo", project / "link-to-fifo.jsonl")
    sessions = tmp_path / "openclaw" / "agents" / "main" / "sessions"
    write_lines(sessions / "s-1.jsonl", [oc_header(), oc_assistant("e1")])
    os.mkfifo(sessions / "sessions.json")
    os.mkfifo(sessions / "s-2.jsonl")
    return ["--claude-dir", str(claude), "--openclaw-dir", str(tmp_path / "openclaw")]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_fifos_in_the_log_trees_are_skipped_without_waiting(cli, tmp_path, command):
    dirs = _trees(tmp_path)
    run = cli(*command, *dirs)
    assert run.code == 0, run.text
    no_traceback(run)
    if command[0] == "cost-report":
        assert '"turns":2' in run.out.replace(" ", "")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_fifo_config_file_is_a_clear_error(cli, isolated_home, command):
    isolated_home.mkdir(parents=True, exist_ok=True)
    os.mkfifo(isolated_home / "config.toml")
    run = cli(*command)
    # (doctor reports the problem among the others; every other command stops on it)
    assert run.code == (0 if command[0] == "doctor" else 2), run.text
    assert "config.toml" in run.text and "not a regular file" in run.text
    no_traceback(run)


def test_a_stalled_scan_is_reported_by_health_and_logged_once(tmp_path, monkeypatch, caplog):
    release = threading.Event()

    def stuck_scan(*_args, **_kwargs):
        release.wait(30)
        raise OSError("gave up")

    monkeypatch.setattr("clawtrace.scan.scan", stuck_scan)
    live = watch.LiveScanner(tmp_path / "db.sqlite", watch.Config(), use_events=False)
    live.stall_seconds = 0.2
    caplog.set_level("WARNING", logger="clawtrace.watch")
    runner = threading.Thread(target=live._safe_scan)
    runner.start()
    deadline = time.monotonic() + 10
    while live.status()["stalled_seconds"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    status = live.status()
    release.set()
    runner.join(10)
    assert status["scanning"] and status["stalled_seconds"] is not None
    warnings = [r for r in caplog.records if "no progress" in r.getMessage()]
    assert len(warnings) == 1
    after = live.status()
    assert not after["scanning"] and after["stalled_seconds"] is None
    assert "gave up" in after["last_error"]
