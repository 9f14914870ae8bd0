"""Reports: local days across DST and half-hour zones, groupings, blocks, tools, forecast."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from clawtrace import reports
from clawtrace.reports import Filters, ReportError

from .conftest import claude_assistant, run_scan, write_lines


def _scan_turns(conn, tmp_path, specs):
    lines = [
        claude_assistant(msg_id=f"m{i}", ts=ts, inp=inp, out=0, model="claude-haiku-4-5", **extra)
        for i, (ts, inp, extra) in enumerate(specs)
    ]
    write_lines(tmp_path / "claude" / "projects" / "-p" / "s.jsonl", lines)
    run_scan(conn, tmp_path / "claude")


def test_days_follow_a_half_hour_zone(conn, tmp_path):
    # 18:29 UTC is 23:59 in Kolkata; 18:30 UTC is the next local day.
    _scan_turns(
        conn, tmp_path, [("2026-03-01T18:29:00.000Z", 100, {}), ("2026-03-01T18:30:00.000Z", 7, {})]
    )
    kolkata = reports.cost_report(conn, tz="Asia/Kolkata", by="day")["rows"]
    assert [(r["day"], r["input_tokens"]) for r in kolkata] == [
        ("2026-03-01", 100),
        ("2026-03-02", 7),
    ]
    utc = reports.cost_report(conn, tz="UTC", by="day")["rows"]
    assert [(r["day"], r["input_tokens"]) for r in utc] == [("2026-03-01", 107)]
    offset = reports.cost_report(conn, tz="+05:30", by="day")["rows"]
    assert [r["day"] for r in offset] == ["2026-03-01", "2026-03-02"]


def test_days_are_correct_across_a_dst_change(conn, tmp_path):
    # New York: DST starts 2026-03-08 at 07:00 UTC. 04:30 UTC on the 9th is 00:30 EDT on the 9th;
    # 04:30 UTC on the 8th is 23:30 EST on the 7th.
    _scan_turns(
        conn,
        tmp_path,
        [
            ("2026-03-08T04:30:00.000Z", 1, {}),
            ("2026-03-09T04:30:00.000Z", 2, {}),
            ("2026-03-09T03:59:00.000Z", 4, {}),
        ],
    )
    rows = reports.cost_report(conn, tz="America/New_York", by="day")["rows"]
    assert [(r["day"], r["input_tokens"]) for r in rows] == [
        ("2026-03-07", 1),
        ("2026-03-08", 4),
        ("2026-03-09", 2),
    ]
    since, until = reports.range_parse(
        "2026-03-08..2026-03-08",
        reports.zone_resolve("America/New_York"),
        datetime(2026, 3, 10, tzinfo=UTC),
    )
    assert until - since == 23 * 3_600_000  # the spring-forward day is 23 hours long
    assert reports.totals(conn, Filters(since_ms=since, until_ms=until)).input_tokens == 4


def test_cost_report_json_contract_keys(conn, tmp_path):
    _scan_turns(conn, tmp_path, [("2026-03-01T10:00:00.000Z", 100, {})])
    for by in reports.GROUPINGS:
        data = reports.cost_report(conn, tz="UTC", by=by)
        assert set(data["totals"]) == set(reports.TOTAL_KEYS)
        assert all(set(r) == {by, *reports.TOTAL_KEYS} for r in data["rows"])


def test_groupings_by_project_branch_and_week(conn, tmp_path):
    _scan_turns(
        conn,
        tmp_path,
        [
            ("2026-03-02T10:00:00.000Z", 1, {"cwd": "/a", "branch": "main"}),
            ("2026-03-04T10:00:00.000Z", 2, {"cwd": "/b", "branch": "dev"}),
            ("2026-03-09T10:00:00.000Z", 4, {"cwd": "/a", "branch": "dev"}),
        ],
    )
    by_project = {
        r["project"]: r["input_tokens"]
        for r in reports.cost_report(conn, tz="UTC", by="project")["rows"]
    }
    assert by_project == {"/a": 5, "/b": 2}
    by_branch = {
        r["branch"]: r["input_tokens"]
        for r in reports.cost_report(conn, tz="UTC", by="branch")["rows"]
    }
    assert by_branch == {"main": 1, "dev": 6}
    weeks = [
        (r["week"], r["input_tokens"])
        for r in reports.cost_report(conn, tz="UTC", by="week")["rows"]
    ]
    assert weeks == [("2026-03-02", 3), ("2026-03-09", 4)]
    only_a = reports.totals(conn, Filters(project="/a"))
    assert only_a.input_tokens == 5


def test_ranges_select_local_days(conn, tmp_path):
    _scan_turns(
        conn, tmp_path, [("2026-03-01T10:00:00.000Z", 1, {}), ("2026-03-05T10:00:00.000Z", 2, {})]
    )
    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    tz = reports.zone_resolve("UTC")
    for text, expected in (
        ("1d", 2),
        ("5d", 3),
        ("4d", 2),
        ("2026-03-01..2026-03-01", 1),
        ("all", 3),
    ):
        since, until = reports.range_parse(text, tz, now)
        assert (
            reports.totals(conn, Filters(since_ms=since, until_ms=until)).input_tokens == expected
        ), text
    with pytest.raises(ReportError, match="range"):
        reports.range_parse("lastweek", tz, now)
    with pytest.raises(ReportError, match="timezone"):
        reports.zone_resolve("Mars/Olympus")


def test_blocks_are_five_hours_from_the_first_turns_hour(conn, tmp_path):
    _scan_turns(
        conn,
        tmp_path,
        [
            ("2026-03-01T10:20:00.000Z", 1, {}),
            ("2026-03-01T14:50:00.000Z", 2, {}),
            ("2026-03-01T15:10:00.000Z", 4, {}),
        ],
    )
    now = datetime(2026, 3, 1, 16, 10, tzinfo=UTC)
    blocks = reports.blocks(conn, now=now)
    assert [
        (b["start"][11:16], b["end"][11:16], b["input_tokens"], b["active"]) for b in blocks
    ] == [
        ("10:00", "15:00", 3, False),
        ("15:00", "20:00", 4, True),
    ]
    active = blocks[-1]
    assert active["projection"]["remaining_minutes"] == 230.0
    assert active["burn_rate"]["cost_usd_per_hour"] > 0


def test_tool_report_splits_a_turns_cost_over_its_tool_calls(conn, tmp_path):
    _scan_turns(
        conn,
        tmp_path,
        [
            ("2026-03-01T10:00:00.000Z", 1_000_000, {"tools": [("a", "Read"), ("b", "Bash")]}),
            ("2026-03-01T11:00:00.000Z", 1_000_000, {}),
        ],
    )
    data = reports.tools_report(conn)
    assert {r["tool"]: r["cost_usd"] for r in data["rows"]} == {"Read": 0.5, "Bash": 0.5}
    assert data["no_tool_cost_usd"] == 1.0


def test_forecast_gives_a_range_around_the_expected_month_end(conn, tmp_path):
    specs = [(f"2026-03-{d:02d}T10:00:00.000Z", (d % 3 + 1) * 1_000_000, {}) for d in range(1, 11)]
    _scan_turns(conn, tmp_path, specs)
    f = reports.forecast(conn, tz="UTC", now=datetime(2026, 3, 11, 0, 0, tzinfo=UTC))
    assert f["month_to_date_usd"] == pytest.approx(sum((d % 3 + 1) for d in range(1, 11)))
    assert f["low_usd"] < f["expected_usd"] < f["high_usd"]
    assert f["days_in_month"] == 31


def test_sessions_top_orders_by_cost(conn, tmp_path):
    lines = [
        claude_assistant(msg_id="a", session="cheap", inp=10, out=0, model="claude-haiku-4-5"),
        claude_assistant(msg_id="b", session="dear", inp=10_000, out=0, model="claude-haiku-4-5"),
    ]
    write_lines(tmp_path / "claude" / "projects" / "-p" / "s.jsonl", lines)
    run_scan(conn, tmp_path / "claude")
    top = reports.sessions_top(conn, n=1)
    assert [s["session"] for s in top] == ["dear"]
    assert top[0]["models"] == ["claude-haiku-4-5"]


def test_status_counts_today_week_and_month(conn, tmp_path):
    _scan_turns(
        conn, tmp_path, [("2026-03-11T09:30:00.000Z", 5, {}), ("2026-03-02T10:00:00.000Z", 3, {})]
    )
    s = reports.status(conn, tz="UTC", now=datetime(2026, 3, 11, 10, 0, tzinfo=UTC))
    assert (s["today"]["input_tokens"], s["week"]["input_tokens"], s["month"]["input_tokens"]) == (
        5,
        5,
        8,
    )
    assert s["burn_rate"]["turns_last_hour"] == 1
    assert s["today"]["sessions"] == 1


def test_timeseries_is_zero_filled(conn, tmp_path):
    _scan_turns(conn, tmp_path, [("2026-03-02T10:00:00.000Z", 3, {})])
    since, until = reports.range_parse(
        "2026-03-01..2026-03-03", reports.zone_resolve("UTC"), datetime.now(UTC)
    )
    points = reports.timeseries(conn, Filters(since_ms=since, until_ms=until), "UTC", by="day")
    assert [(p["day"], p["input_tokens"]) for p in points] == [
        ("2026-03-01", 0),
        ("2026-03-02", 3),
        ("2026-03-03", 0),
    ]
