"""Values at and past the bounds of rules.py: a line past one is malformed, the config refuses
what would overflow, and sums of any number of turns within the bounds never stop a scan or a
report (rollup rows are split to fit 64 bits; readers sum wider)."""

from __future__ import annotations

import json

import pytest
from clawtrace import reports, rules, store
from clawtrace import scan as scan_module
from clawtrace.config import ConfigError, config_parse

from tests.conftest import claude_assistant, run_scan, write_lines
from tests.hostile.conftest import no_traceback

OPUS_41 = "claude-opus-4-1-20250805"  # $75 per million output tokens, the dearest Claude


def _project(tmp_path, name="-home-u-proj"):
    return tmp_path / "claude" / "projects" / name


@pytest.mark.parametrize(
    "usage",
    [
        {"output_tokens": 370_000_000_000},  # the 3.7e11 Opus output tokens
        {"output_tokens": rules.MAX_TURN_TOKENS},
        {"input_tokens": 60_000_000, "cache_read_input_tokens": 60_000_000},  # over in sum
        {
            "cache_creation_input_tokens": 1,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 99_999_999,
                "ephemeral_1h_input_tokens": 99_999_999,
            },
        },
        {"output_tokens": 5, "server_tool_use": {"web_search_requests": rules.MAX_WEB_SEARCHES}},
    ],
    ids=["3.7e11-output", "at-the-bound", "over-in-sum", "cache-split", "web-searches"],
)
def test_a_turn_past_a_bound_is_malformed_and_later_scans_go_on(conn, tmp_path, usage):
    line = json.loads(claude_assistant(msg_id="huge", model=OPUS_41))
    line["message"]["usage"] = {"input_tokens": 0, "output_tokens": 0, **usage}
    write_lines(_project(tmp_path) / "s.jsonl", [json.dumps(line), claude_assistant(msg_id="ok")])
    first = run_scan(conn, tmp_path / "claude")
    assert first.malformed == 1
    assert reports.totals(conn).turns == 1
    write_lines(_project(tmp_path) / "t.jsonl", [claude_assistant(msg_id="later")])
    assert run_scan(conn, tmp_path / "claude").malformed == 0
    assert reports.totals(conn).turns == 2


def test_just_under_the_bounds_is_a_turn(conn, tmp_path):
    write_lines(
        _project(tmp_path) / "s.jsonl",
        [claude_assistant(msg_id="big", model=OPUS_41, inp=0, out=rules.MAX_TURN_TOKENS - 1)],
    )
    assert run_scan(conn, tmp_path / "claude").malformed == 0
    t = reports.totals(conn)
    assert t.turns == 1 and t.output_tokens == rules.MAX_TURN_TOKENS - 1
    assert t.cost_pico == (rules.MAX_TURN_TOKENS - 1) * 75_000_000  # $75/M = 7.5e7 pico a token


def _pile(tmp_path, n, *, name="s.jsonl", start=0):
    """`n` turns of Opus 4.1, each just under the token bound, in one 15-minute bucket: their
    cost sums past 2^63 picodollars from about 1,230 of them."""
    write_lines(
        _project(tmp_path) / name,
        [
            claude_assistant(
                msg_id=f"pile-{start + i}",
                model=OPUS_41,
                inp=0,
                out=rules.MAX_TURN_TOKENS - 1,
                ts=f"2026-02-10T10:0{i % 10}:00.000Z",
            )
            for i in range(n)
        ],
    )
    return n * (rules.MAX_TURN_TOKENS - 1) * 75_000_000


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "parallel"])
def test_sums_past_64_bits_neither_stop_a_scan_nor_a_report(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(scan_module.run, "PARALLEL_MIN_BYTES", 0)
    expected = _pile(tmp_path, 1500)
    assert expected > 2**63
    conn = store.connect(tmp_path / "store.db")
    run_scan(conn, tmp_path / "claude", workers=workers)
    # A later scan into the same bucket recomputes it from the turns (SQL SUM overflows there).
    expected += _pile(tmp_path, 300, name="t.jsonl", start=1500)
    run_scan(conn, tmp_path / "claude", workers=workers)
    totals = reports.totals(conn)
    assert totals.turns == 1800
    assert totals.output_tokens == 1800 * (rules.MAX_TURN_TOKENS - 1)
    assert totals.cost_pico == pytest.approx(expected, rel=1e-12)
    for by in ("day", "model", "project", "session", "hour"):
        report = reports.cost_report(conn, tz="UTC", by=by, filters=reports.Filters())
        assert report["totals"]["turns"] == 1800
        assert report["totals"]["cost_usd"] == pytest.approx(expected / 1e12, rel=1e-12)
    # Every rollup row still fits a column, and they sum to the figures.
    biggest = conn.execute("SELECT MAX(ABS(calc_pico)) FROM rollup").fetchone()[0]
    assert biggest <= 2**63 - 1
    assert conn.execute("SELECT SUM(turns) FROM rollup").fetchone()[0] == 1800


def test_a_rollup_split_keeps_every_sum_and_every_sign():
    sums = [3, -(2**64) - 5, 2**66 + 7, 0]
    rows = rules.rollup_split(sums)
    assert len(rows) == 9
    assert [sum(col) for col in zip(*rows, strict=True)] == sums
    assert all(abs(v) <= rules.INT64_MAX for row in rows for v in row)
    assert rules.rollup_split([1, 2]) == [[1, 2]]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[prices.x]\nmodel = "x"\ninput = inf\noutput = 1\n', "prices.x.input"),
        ('[prices.x]\nmodel = "x"\ninput = 1\noutput = 1e300\n', "prices.x.output"),
        ('[prices.x]\nmodel = "x"\ninput = nan\noutput = 1\n', "prices.x.input"),
        (
            '[prices.x]\nmodel = "x"\ninput = 1\noutput = 1\nweb_search_per_1k = 1e20\n',
            "prices.x.web_search_per_1k",
        ),
        (
            '[prices.x]\nmodel = "x"\ninput = 1\noutput = 1\ntiers = [{above = 5, input = inf}]\n',
            "prices.x.tiers",
        ),
        ("[providers.openrouter]\nmultiplier = nan\n", "providers.openrouter.multiplier"),
        ("[providers.openrouter]\nmultiplier = 1e300\n", "providers.openrouter.multiplier"),
    ],
    ids=["inf", "1e300", "nan", "web-search", "tier", "nan-multiplier", "huge-multiplier"],
)
def test_config_values_that_would_overflow_a_cost_are_refused_by_name(toml, key):
    import tomllib

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_parse(tomllib.loads(toml), text=toml)


def test_a_refused_price_is_a_clear_cli_error(cli, isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text('[prices.x]\nmodel = "x"\ninput = inf\noutput = 1\n')
    run = cli("status")
    assert run.code == 2 and "prices.x.input" in run.text and "line 3" in run.text
    no_traceback(run)


def test_every_library_price_is_within_what_the_config_may_set():
    """The bounds of rules.py hold for the pinned genai-prices too (else a turn could cost more
    than a 64-bit integer holds)."""
    from decimal import Decimal

    from clawtrace import price_table

    table = json.loads(price_table.TABLE_PATH.read_bytes())
    per_token = Decimal(rules.MAX_PRICE_PER_MILLION) * 10**6  # picodollars
    for card in table["cards"]:
        for _threshold, rates in card:
            assert all(Decimal(r) <= per_token for r in rates[:5]), card
            assert Decimal(rates[5]) <= per_token * 1000, card  # (per search)
