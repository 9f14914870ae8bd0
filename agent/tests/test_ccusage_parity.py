"""Our token totals per day and per model equal ccusage@20.0.24's on the same logs, exactly.

ccusage is found through `CCUSAGE_BIN`, else `<repo>/bench/peers/node_modules/.bin/ccusage`
(`bench/peers.sh`), else installed once with npm into `~/.cache/clawtrace-tests/`; with no npm
the tests skip and say why. ccusage runs offline, with HOME pointed at an empty directory so
only the generated logs are read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from clawtrace import reports, scan, store
from clawtrace.reports import Filters

from tests.conftest import bench_module

pytestmark = pytest.mark.ccusage

VERSION = "20.0.24"  # 20.0.26, the newest, ships no Linux binary
REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "samples"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clawtrace-tests"


def _version_ok(binary: Path) -> bool:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return VERSION in out.stdout


def _ccusage() -> Path:
    env = os.environ.get("CCUSAGE_BIN")
    if env:
        if not _version_ok(Path(env)):
            pytest.skip(f"CCUSAGE_BIN={env} is not ccusage {VERSION}")
        return Path(env)
    for candidate in (
        REPO / "bench" / "peers" / "node_modules" / ".bin" / "ccusage",
        CACHE / f"ccusage-{VERSION}" / "node_modules" / ".bin" / "ccusage",
    ):
        if candidate.exists() and _version_ok(candidate):
            return candidate
    npm = shutil.which("npm")
    if not npm:
        pytest.skip(f"ccusage {VERSION} not found and npm is not on PATH to install it")
    prefix = CACHE / f"ccusage-{VERSION}"
    prefix.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"ccusage@{VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    binary = prefix / "node_modules" / ".bin" / "ccusage"
    if proc.returncode != 0 or not binary.exists():
        pytest.skip(f"npm could not install ccusage@{VERSION}: {proc.stderr.strip()[-300:]}")
    if not _version_ok(binary):
        pytest.skip(f"ccusage {VERSION} was installed but does not run on this platform")
    return binary


@pytest.fixture(scope="module")
def ccusage() -> Path:
    return _ccusage()


def _ccusage_daily(binary: Path, claude_config: Path, home: Path) -> dict[tuple[str, str], tuple]:
    """ccusage's per-(UTC day, model) tokens: input, output, cache read, cache write."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TZ": "UTC",
        "CLAUDE_CONFIG_DIR": str(claude_config),
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        [str(binary), "claude", "daily", "--json", "--offline", "--breakdown", "--timezone", "UTC"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[tuple[str, str], tuple] = {}
    for day in json.loads(proc.stdout)["daily"]:
        for m in day["modelBreakdowns"]:
            if m["modelName"] == "<synthetic>":
                continue
            out[(day["date"], m["modelName"])] = (
                m["inputTokens"],
                m["outputTokens"],
                m["cacheReadTokens"],
                m["cacheCreationTokens"],
            )
    return out


def _ccusage_openclaw_daily(
    binary: Path, state_dir: Path, home: Path
) -> dict[tuple[str, str], tuple]:
    """ccusage's all-agents daily report over an OpenClaw state dir only."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TZ": "UTC",
        "OPENCLAW_DIR": str(state_dir),
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        [str(binary), "daily", "--json", "--offline", "--timezone", "UTC", "--by-agent"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[tuple[str, str], tuple] = {}
    for day in json.loads(proc.stdout)["daily"]:
        for agent in day["agents"]:
            assert agent["agent"] == "openclaw", agent["agent"]
            for m in agent["modelBreakdowns"]:
                out[(day["period"], m["modelName"].removeprefix("[openclaw] "))] = (
                    m["inputTokens"],
                    m["outputTokens"],
                    m["cacheReadTokens"],
                    m["cacheCreationTokens"],
                )
    return out


def _ours_daily(
    claude_config: Path, home: Path, openclaw_dir: Path | None = None
) -> dict[tuple[str, str], tuple]:
    conn = store.connect(home / "clawtrace.db")
    try:
        scan.scan(
            conn,
            claude_dirs=[str(claude_config)],
            openclaw_dirs=[str(openclaw_dir or home / "no-openclaw")],
        )
        out: dict[tuple[str, str], tuple] = {}
        models = [r["model"] for r in reports.cost_report(conn, tz="UTC", by="model")["rows"]]
        for model in models:
            report = reports.cost_report(conn, Filters(model=model), tz="UTC", by="day")
            for row in report["rows"]:
                out[(row["day"], model)] = (
                    row["input_tokens"],
                    row["output_tokens"],
                    row["cache_read_tokens"],
                    row["cache_write_tokens"],
                )
        return out
    finally:
        conn.close()


def _diff(ours: dict, theirs: dict, truth: dict | None = None) -> str:
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    lines = [f"{len(keys)} (day, model) rows differ (input, output, cache read, cache write):"]
    for k in keys[:10]:
        extra = f" truth={truth.get(k)}" if truth is not None else ""
        lines.append(f"  {k}: ours={ours.get(k)} ccusage={theirs.get(k)}{extra}")
    return "\n".join(lines)


def test_token_totals_per_day_and_model_equal_ccusage_on_a_generated_claude_code_corpus(
    ccusage, tmp_path
):
    corpus = bench_module("corpus.py")
    data = tmp_path / "corpus"
    truth_doc = corpus.generate(
        data, 6000, seed=11, formats=["claude"], workers=1, malformed_rate=0.03
    )
    truth = {
        (r["day"], r["model"]): (
            r["input_tokens"],
            r["output_tokens"],
            r["cache_read_tokens"],
            r["cache_write_tokens"],
        )
        for r in truth_doc["by_day_model"]
    }
    theirs = _ccusage_daily(ccusage, data / "claude", tmp_path / "ccusage-home")
    ours = _ours_daily(data / "claude", tmp_path / "clawtrace-home")
    assert len(ours) > 30  # many days and models, not a trivial match
    assert ours == theirs, _diff(ours, theirs, truth)
    # Both also equal the generator's own record of what it billed.
    assert ours == truth, _diff(ours, truth)


def test_token_totals_per_day_and_model_equal_ccusage_on_the_shared_samples(ccusage, tmp_path):
    source = SAMPLES / "claude-code"
    if not source.is_dir():
        pytest.skip(f"{source} is absent (a clone without ../shared)")
    config = tmp_path / "claude"
    config.mkdir()
    (config / "projects").symlink_to(source, target_is_directory=True)
    theirs = _ccusage_daily(ccusage, config, tmp_path / "ccusage-home")
    ours = _ours_daily(config, tmp_path / "clawtrace-home")
    assert ours == theirs, _diff(ours, theirs)
    assert sum(v[1] for v in ours.values()) == 942  # EXPECTED.md: output after de-dup


def test_malformed_corpus_lines_are_rejected_by_ccusage_too(ccusage, tmp_path):
    """Every malformed kind the generator writes is one ccusage also skips, so parity above is
    not parity by accident of both ignoring nothing."""
    corpus = bench_module("corpus.py")
    data = tmp_path / "corpus"
    truth_doc = corpus.generate(
        data, 800, seed=5, formats=["claude"], workers=1, malformed_rate=0.5
    )
    kinds = defaultdict(int)
    for f in truth_doc["files"].values():
        for kind, n in f["malformed"].items():
            kinds[kind] += n
    assert set(kinds) == set(corpus.MALFORMED_KINDS_CLAUDE)
    theirs = _ccusage_daily(ccusage, data / "claude", tmp_path / "ccusage-home")
    want = {
        (r["day"], r["model"]): (
            r["input_tokens"],
            r["output_tokens"],
            r["cache_read_tokens"],
            r["cache_write_tokens"],
        )
        for r in truth_doc["by_day_model"]
    }
    assert theirs == want, _diff(want, theirs)


def test_token_totals_per_day_and_model_equal_ccusage_on_a_generated_openclaw_corpus(
    ccusage, tmp_path
):
    """Archives, mirrors, zero-usage errors, total-only usage and `.bak` backups included."""
    corpus = bench_module("corpus.py")
    data = tmp_path / "corpus"
    corpus.generate(data, 5000, seed=13, formats=["openclaw"], workers=1, malformed_rate=0.03)
    theirs = _ccusage_openclaw_daily(ccusage, data / "openclaw", tmp_path / "ccusage-home")
    ours = _ours_daily(tmp_path / "no-claude", tmp_path / "clawtrace-home", data / "openclaw")
    assert len(ours) > 30
    assert ours == theirs, _diff(ours, theirs)
