"""Several commands at once on a new store, and a disk that fills up during a first scan."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import orjson
import pytest

from tests.conftest import bench_module
from tests.hostile.conftest import DEADLINE_SECONDS, no_traceback

corpus = bench_module("corpus.py")
KEYS = ("turns", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    data = tmp_path_factory.mktemp("corpus")
    truth = corpus.generate(data, 6000, seed=9, workers=1)
    return data, truth


def _dirs(data):
    return ["--claude-dir", str(data / "claude"), "--openclaw-dir", str(data / "openclaw")]


def _totals(cli, data):
    run = cli("cost-report", "--no-scan", "--range", "all", "--json", "--timezone", "UTC")
    assert run.code == 0, run.text
    totals = orjson.loads(run.out)["totals"]
    return {k: totals[k] for k in KEYS}


def test_first_scans_started_together_on_a_new_store_wait_for_each_other(cli, tree, isolated_home):
    data, truth = tree
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "clawtrace", command, *_dirs(data)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for command in ("scan", "scan", "scan", "status", "doctor", "scan")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=DEADLINE_SECONDS)
        assert proc.returncode == 0, err.decode()
        assert b"Traceback" not in out + err
    assert _totals(cli, data) == {k: truth["totals"][k] for k in KEYS}


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB file system of its own (tmpfs): needs root, as CI has."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_that_fills_during_a_first_scan_gets_one_clear_message(cli, tree, small_disk):
    data, truth = tree
    env = {"CLAWTRACE_HOME": str(small_disk / "home")}
    for mode in ("1", "0"):  # the native writers, then the pure-Python ones
        env["CLAWTRACE_NATIVE"] = mode
        run = cli("scan", *_dirs(data), env=env)
        assert run.code == 2, run.text
        no_traceback(run)
        errors = [line for line in run.err.splitlines() if line.strip()]
        assert len(errors) == 1 and "is full" in errors[0], run.err
        assert "free some space" in errors[0]
        for command in (("status",), ("cost-report", "--no-scan")):
            other = cli(*command, env=env)
            assert other.code in (0, 2), other.text
            no_traceback(other)
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    run = cli("scan", *_dirs(data), env=env)
    assert run.code == 0, run.text
    got = cli("cost-report", "--no-scan", "--range", "all", "--json", "--timezone", "UTC", env=env)
    totals = orjson.loads(got.out)["totals"]
    assert {k: totals[k] for k in KEYS} == {k: truth["totals"][k] for k in KEYS}
