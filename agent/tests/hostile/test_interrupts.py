"""Ctrl-C at any moment of a command's start-up ends it cleanly, never with a crash.

Found by the kill loop (test_kill_loop.py): a SIGINT that lands while orjson's extension
initialises makes one of the imports it does then fail, which orjson does not expect, and the
interpreter dies of a segmentation fault (ijl/orjson#310). Here the Ctrl-C is sent at exactly
that moment, from an import hook, instead of at a random one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Runs `clawtrace ARGS` and sends itself SIGINT from the first import made while WHEN holds
# (what a Ctrl-C at that moment does).
_INTERRUPTED_START = """
import os, runpy, signal, sys

class CtrlC:
    sent = False

    def find_spec(self, name, path=None, target=None):
        if not CtrlC.sent and WHEN:
            CtrlC.sent = True
            print("sent SIGINT while importing", name, file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = ["clawtrace", *sys.argv[1:]]
runpy.run_module("clawtrace", run_name="__main__", alter_sys=True)
"""


def _interrupted(tmp_path: Path, when: str, args: tuple[str, ...]) -> tuple[int, str]:
    env = dict(os.environ, CLAWTRACE_HOME=str(tmp_path / "home"), HOME=str(tmp_path / "user"))
    empty = tmp_path / "none"
    extra = ("--claude-dir", str(empty), "--openclaw-dir", str(empty))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _INTERRUPTED_START.replace("WHEN", when),
            *args,
            *(extra if args[0] != "status" else ()),
        ],
        capture_output=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).parent,
    )
    err = done.stderr.decode(errors="replace")
    assert "sent SIGINT while importing" in err, f"the hook never fired ({when})"
    return done.returncode, err


COMMANDS = [("scan",), ("scan", "--json"), ("status",), ("doctor", "--no-scan")]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_ctrl_c_while_the_json_library_loads_aborts_instead_of_crashing(tmp_path, args):
    code, err = _interrupted(tmp_path, '"orjson.orjson" in sys.modules', args)
    assert code != -signal.SIGSEGV
    assert (code, "Aborted!" in err, "Traceback" in err) == (1, True, False), (code, err)


@pytest.mark.parametrize("args", COMMANDS[2:], ids=" ".join)
def test_ctrl_c_while_the_cli_library_loads_aborts_without_a_traceback(tmp_path, args):
    """(typer prints "Aborted!" for a Ctrl-C once a command runs; before, a traceback.)"""
    code, err = _interrupted(tmp_path, 'name == "typer"', args)
    assert (code, "Aborted!" in err, "Traceback" in err) == (1, True, False), (code, err)


class _CtrlCAfterCommit:
    """A store connection on which Ctrl-C lands just after a migration step's COMMIT (between
    two bytecodes of `store.migrate`, where a SIGINT raises KeyboardInterrupt)."""

    def __init__(self, conn) -> None:
        object.__setattr__(self, "conn", conn)
        object.__setattr__(self, "fired", False)

    def __getattr__(self, name):
        return getattr(self.conn, name)

    def __setattr__(self, name, value) -> None:
        setattr(self.conn, name, value)

    def execute(self, sql, *args):
        cursor = self.conn.execute(sql, *args)
        if sql == "COMMIT" and not self.fired:
            object.__setattr__(self, "fired", True)
            raise KeyboardInterrupt
        return cursor


def test_ctrl_c_just_after_a_migration_step_commits_is_a_ctrl_c_and_the_store_is_whole(tmp_path):
    """(Found by the kill loop: the step's ROLLBACK, with no transaction left to roll back,
    raised an error that stood for the Ctrl-C: 'cannot open the store ...', exit 2.)"""
    import sqlite3

    from clawtrace import store

    conn = sqlite3.connect(tmp_path / "clawtrace.db")
    with pytest.raises(KeyboardInterrupt):
        store.migrate(_CtrlCAfterCommit(conn))
    assert store.schema_version(conn) == 1  # the step that committed stays
    conn.close()
    again = store.connect(tmp_path / "clawtrace.db")
    assert store.schema_version(again) == len(store.MIGRATIONS)
    again.close()
