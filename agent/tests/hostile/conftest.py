"""Helpers for the hostile-input suite: the real `clawtrace` command in a subprocess, with a
deadline (a hang is a failure, not a stuck CI job)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DEADLINE_SECONDS = 60


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(isolated_home: Path):
    """`cli("scan", ...)` runs `python -m clawtrace scan ...` with the test's home; a run that
    outlives DEADLINE_SECONDS fails the test (it hung)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = DEADLINE_SECONDS):
        full = dict(os.environ, **(env or {}))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "clawtrace", *args],
                capture_output=True,
                env=full,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`clawtrace {' '.join(args)}` hung for {timeout} s")
        return Run(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    return run


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.text, run.text


def pytest_terminal_summary(terminalreporter) -> None:
    """How many kills the kill loop's scans survived, and how many examples the property
    tests ran (a count that depends on the Hypothesis profile)."""
    import sys

    lines = []
    kill_loop = sys.modules.get("tests.hostile.test_kill_loop")
    for mode, outcomes in sorted(getattr(kill_loop, "SURVIVED", {}).items()):
        kills = {kind: n for (kind, what), n in outcomes.items() if what == "killed"}
        finished = sum(n for (_kind, what), n in outcomes.items() if what == "finished")
        parts = ", ".join(f"{n} x {kind}" for kind, n in sorted(kills.items()))
        lines.append(
            f"kill loop ({mode}): survived {sum(kills.values())} kills ({parts}); "
            f"{finished} scans ended before their kill"
        )
    properties = sys.modules.get("tests.hostile.test_properties")
    for name, n in sorted(getattr(properties, "EXAMPLES", {}).items()):
        lines.append(f"property tests: {n} {name}")
    if lines:
        terminalreporter.section("hostile inputs")
        for line in lines:
            terminalreporter.write_line(line)
