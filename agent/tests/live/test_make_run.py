"""`make run` prints the local page's URL, and it is the port the Procfile starts the agent on.

The Makefile is read with `make -n` (nothing runs); the Procfile's agent line is run by a shell,
as honcho runs it, from a directory whose `.venv/bin/clawtrace` only reports its arguments.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from clawtrace.server.runner import DEFAULT_PORT

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make_run_dry(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_PORT", "MAKEFLAGS")}
    done = subprocess.run(
        ["make", "-n", "-C", str(REPO), "run", *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout


def agent_started_with(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """The arguments the Procfile's agent line gives `clawtrace`."""
    line = next(
        line.split(":", 1)[1].strip()
        for line in (REPO / "Procfile").read_text().splitlines()
        if line.startswith("agent:")
    )
    fake = tmp_path / ".venv" / "bin" / "clawtrace"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if k != "CLAWTRACE_AGENT_PORT"}
    done = subprocess.run(
        ["/bin/sh", "-c", line],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**clean, **env},
        check=True,
    )
    return done.stdout.split()


def printed_port(output: str) -> int:
    found = re.findall(r"local page\s+http://127\.0\.0\.1:(\d+)/", output)
    assert len(found) == 1, output
    return int(found[0])


def test_make_run_prints_the_local_page_the_agent_serves_by_default(tmp_path):
    output = make_run_dry()
    assert printed_port(output) == DEFAULT_PORT == 19898
    assert "CLAWTRACE_AGENT_PORT=19898" in output
    assert agent_started_with(tmp_path, {}) == ["serve", "--port", "19898"]


def test_agent_port_moves_the_printed_url_and_the_agent_together(tmp_path):
    output = make_run_dry("AGENT_PORT=19911")
    assert printed_port(output) == 19911
    handed = re.search(r"CLAWTRACE_AGENT_PORT=(\d+) .*honcho -f Procfile start", output)
    assert handed and handed.group(1) == "19911"
    started = agent_started_with(tmp_path, {"CLAWTRACE_AGENT_PORT": handed.group(1)})
    assert started == ["serve", "--port", "19911"]
