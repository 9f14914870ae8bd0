"""The `clawtrace` command through typer's CliRunner: every command, --json, --csv, NO_COLOR."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from clawtrace.cli import app
from typer.testing import CliRunner

from .conftest import claude_assistant, oc_assistant, oc_header, write_lines

runner = CliRunner()


@pytest.fixture
def trees(tmp_path):
    claude = tmp_path / "claude"
    write_lines(
        claude / "projects" / "-p" / "s.jsonl",
        [
            claude_assistant(msg_id="m1", ts="2026-03-01T10:00:00.000Z", tools=[("t", "Read")]),
            claude_assistant(msg_id="m2", ts="2026-03-02T10:00:00.000Z", cache_read=500),
        ],
    )
    oc = tmp_path / "oc"
    write_lines(
        oc / "agents" / "main" / "sessions" / "s.jsonl",
        [
            oc_header("s"),
            oc_assistant("e1", ts="2026-03-02T11:00:00.000Z", cost=0.01),
            oc_assistant("e2", provider="acme", model="mystery", ts="2026-03-02T11:00:00.000Z"),
        ],
    )
    return ["--claude-dir", str(claude), "--openclaw-dir", str(oc)]


def invoke(*args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_scan_then_cost_report_json_contract(trees):
    out = json.loads(invoke("scan", *trees, "--json"))
    assert out["turns_total"] == 4 and out["malformed"] == 0
    data = json.loads(
        invoke(
            "cost-report", "--range", "all", "--by", "model", "--json", "--no-scan", "--tz", "UTC"
        )
    )
    assert set(data["totals"]) == {
        "turns",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "unpriced_tokens",
    }
    assert data["totals"]["turns"] == 4
    assert data["totals"]["unpriced_tokens"] == 30
    assert {r["model"] for r in data["rows"]} == {
        "claude-haiku-4-5-20251001",
        "claude-sonnet-4-5",
        "mystery",
    }


def test_report_commands_scan_first_unless_told_not_to(trees):
    data = json.loads(invoke("cost-report", "--range", "all", "--json", *trees))
    assert data["totals"]["turns"] == 4


def test_cost_report_csv_has_the_grouping_key_and_totals_columns(trees):
    invoke("scan", *trees)
    out = invoke(
        "cost-report",
        "--range",
        "2026-03-01..2026-03-02",
        "--by",
        "day",
        "--csv",
        "--no-scan",
        "--tz",
        "UTC",
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["day"] for r in rows] == ["2026-03-01", "2026-03-02"]
    assert list(rows[0]) == [
        "day",
        "turns",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "unpriced_tokens",
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["cost-report", "--range", "all"],
        ["cost-report", "--range", "all", "--by", "session"],
        ["sessions", "--top", "3"],
        ["blocks"],
        ["tools", "--range", "all"],
        ["cache", "--range", "all"],
        ["forecast"],
    ],
)
def test_every_report_prints_a_table_json_and_csv(trees, command):
    invoke("scan", *trees)
    table = invoke(*command, "--no-scan")
    assert "\x1b[" not in table  # CliRunner is not a terminal: no colour codes
    json.loads(invoke(*command, "--no-scan", "--json"))
    assert invoke(*command, "--no-scan", "--csv").count("\n") >= 1


COLOUR_SGR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])(?:;[0-9;]*)?m")


def test_no_color_is_honoured(trees):
    invoke("scan", *trees)
    coloured = runner.invoke(app, ["status", "--no-scan"], env={"FORCE_COLOR": "1"}, color=True)
    assert COLOUR_SGR.search(coloured.output)  # the check below can fail
    plain = runner.invoke(
        app, ["status", "--no-scan"], env={"NO_COLOR": "1", "FORCE_COLOR": "1"}, color=True
    )
    assert plain.exit_code == 0
    assert not COLOUR_SGR.search(plain.output)


def test_incomplete_totals_say_so(trees):
    out = invoke("cost-report", "--range", "all", *trees)
    assert "unpriced tokens" in out


def test_doctor_lists_paths_counts_and_unpriced_models(trees):
    out = invoke("doctor", *trees)
    assert "claude-code" in out and "openclaw" in out
    assert "acme/mystery" in out
    assert "cleanupPeriodDays" in out
    data = json.loads(invoke("doctor", "--json", "--no-scan", *trees))
    assert data["unpriced_models"][0]["model"] == "mystery"


def test_bad_options_give_a_message_not_a_traceback(trees):
    for args in (
        ["cost-report", "--range", "yesterday-ish"],
        ["cost-report", "--by", "colour"],
        ["status", "--tz", "Mars/Base"],
        ["status", "--mode", "guess"],
        ["cost-report", "--source", "cursor"],
    ):
        result = runner.invoke(app, [*args, "--no-scan"])
        assert result.exit_code == 2, args
        assert "Traceback" not in result.output
        assert "Error" in result.output


def test_the_sources_a_filter_takes_are_the_registered_ones(trees):
    from clawtrace.sources import SOURCES

    result = runner.invoke(app, ["cost-report", "--source", "cursor", "--no-scan"])
    assert all(name in result.output for name in SOURCES)
    for name in SOURCES:
        assert runner.invoke(app, ["cost-report", "--source", name, "--no-scan"]).exit_code == 0


def test_config_set_show_and_errors(isolated_home):
    invoke("config", "set", "general.cost_mode", "calculate")
    shown = json.loads(invoke("config", "show", "--json"))
    assert shown["cost_mode"] == "calculate"
    bad = runner.invoke(app, ["config", "set", "general.cost_mode", "cheapest"])
    assert bad.exit_code == 2 and "cost_mode" in bad.output
    (isolated_home / "config.toml").write_text(
        '[general]\ncost_mode = "auto"\n[alerts]\ndaily_budget = 10\n'
    )
    invoke("config", "set", "general.timezone", "Asia/Kolkata")
    text = (isolated_home / "config.toml").read_text()
    assert "daily_budget = 10" in text and "Asia/Kolkata" in text


def test_a_corrupt_config_is_reported_with_its_line(trees, isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text('[general]\ncost_mode = "auto"\ntimezone = \n')
    result = runner.invoke(app, ["status", "--no-scan"])
    assert result.exit_code == 2
    assert "line 3" in result.output and "Traceback" not in result.output


def test_prices_show_and_reprice(trees):
    out = invoke("prices", "show", "claude-opus-4-6", "--date", "2026-02-10")
    assert "genai-prices" in out and "input $5/MTok" in out and "total input > 200,000" in out
    invoke("scan", *trees)
    assert "Re-priced 4 turns" in invoke("prices", "reprice")


def test_version():
    assert invoke("version").strip()


# --- `clawtrace scan` without typer (clawtrace.cli_scan, clawtrace.__main__) -------------------


@pytest.mark.parametrize(
    ("args", "options"),
    [
        ([], {}),
        (["--json"], {"json_out": True}),
        (["--workers", "3"], {"workers": 3}),
        (["--workers=64"], {"workers": 64}),
        (
            ["--claude-dir", "a", "--claude-dir=b", "--openclaw-dir", "c"],
            {"claude_dirs": ["a", "b"], "openclaw_dirs": ["c"]},
        ),
    ],
)
def test_the_scan_arguments_it_knows_are_read_without_typer(args, options):
    from clawtrace import cli_scan

    defaults = {"claude_dirs": None, "openclaw_dirs": None, "json_out": False, "workers": None}
    assert cli_scan.parse(args) == {**defaults, **options}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-h"],
        ["--jsn"],
        ["--json=yes"],
        ["--workers"],
        ["--workers", "0"],
        ["--workers", "65"],
        ["--workers", "two"],
        ["--claude-dir"],
        ["--claude-dir", "--json"],
        ["extra"],
    ],
)
def test_any_other_scan_argument_is_left_to_typer(args):
    from clawtrace import cli_scan

    assert cli_scan.parse(args) is None


def _entry(args, env):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from clawtrace.__main__ import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('typer imported' if 'typer' in sys.modules else 'no typer', file=sys.stderr)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_command_scans_without_typer_and_says_the_same(trees, tmp_path, monkeypatch):
    import os

    env = {**os.environ, "CLAWTRACE_HOME": str(tmp_path / "fast"), "NO_COLOR": "1"}
    fast = _entry(["scan", *trees, "--json"], env)
    assert fast.returncode == 0, fast.stderr
    assert fast.stderr.strip().endswith("no typer")
    monkeypatch.setenv("CLAWTRACE_HOME", str(tmp_path / "typer"))
    through_typer = json.loads(invoke("scan", *trees, "--json"))
    fast_out = json.loads(fast.stdout)
    for varying in ("seconds",):
        fast_out.pop(varying), through_typer.pop(varying)
    assert fast_out == through_typer

    plain = _entry(["scan", *trees], env)
    assert plain.returncode == 0 and plain.stdout.startswith("Scanned 2 files (0 read, 2 unchanged")
    assert "Store holds 4 turns." in plain.stdout


def test_a_scan_argument_it_does_not_know_gets_typers_message(tmp_path):
    import os

    env = {**os.environ, "CLAWTRACE_HOME": str(tmp_path / "ct"), "NO_COLOR": "1"}
    out = _entry(["scan", "--workers", "0"], env)
    assert out.returncode == 2
    assert "Invalid value for '--workers'" in out.stderr
    assert out.stderr.strip().endswith("typer imported")
