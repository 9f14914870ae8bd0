"""Far-off dates: a timestamp outside 2000..2099 is a malformed line, a range outside them is a
400 (or exit 2) that says so, and nothing of this kind reaches a 500."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from clawtrace import reports, store
from clawtrace.server.app import ServerState, app_create
from starlette.testclient import TestClient

from tests.conftest import claude_assistant, oc_assistant, oc_header, run_scan, write_lines
from tests.hostile.conftest import no_traceback

FAR = [
    "0001-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z",
    "9999-12-31T23:59:59-05:00",  # past year 9999 once in UTC
    "0001-01-01T00:00:00+05:00",  # before year 1 once in UTC
    "1999-12-31T23:59:59.999Z",
    "2100-01-01T00:00:00.000Z",
]
LIST_ENDPOINTS = (
    "costs",
    "models",
    "projects",
    "agents",
    "sessions",
    "tools",
    "blocks",
    "anomalies",
    "alerts",
    "summary",
    "forecast",
)


def test_far_off_claude_timestamps_are_malformed_lines(conn, tmp_path):
    lines = [claude_assistant(msg_id=f"far{i}", ts=ts) for i, ts in enumerate(FAR)]
    lines.append(claude_assistant(msg_id="near", ts="2026-02-10T10:00:00.000Z"))
    write_lines(tmp_path / "claude" / "projects" / "-p" / "s.jsonl", lines)
    assert run_scan(conn, tmp_path / "claude").malformed == len(FAR)
    assert reports.totals(conn).turns == 1


def test_far_off_openclaw_timestamps_are_malformed_lines(conn, tmp_path):
    sessions = tmp_path / "oc" / "agents" / "main" / "sessions"
    lines = [oc_header()]
    for i, ts in enumerate(FAR):
        entry = json.loads(oc_assistant(f"e{i}", ts=ts))
        entry["message"]["timestamp"] = 5  # the fallback (epoch ms) is out of range too
        lines.append(json.dumps(entry))
    lines.append(oc_assistant("near"))
    write_lines(sessions / "s-1.jsonl", lines)
    assert run_scan(conn, openclaw=tmp_path / "oc").malformed == len(FAR)
    assert reports.totals(conn).turns == 1


def test_every_report_answers_over_the_whole_window(conn, tmp_path):
    write_lines(
        tmp_path / "claude" / "projects" / "-p" / "s.jsonl",
        [
            claude_assistant(msg_id="first", ts="2000-01-01T00:00:00.000Z"),
            claude_assistant(msg_id="last", ts="2099-12-31T23:59:59.999Z"),
        ],
    )
    run_scan(conn, tmp_path / "claude")
    for by in reports.GROUPINGS:
        got = reports.cost_report(conn, tz="Pacific/Kiritimati", by=by, filters=reports.Filters())
        assert got["totals"]["turns"] == 2, by
    for tz in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        assert reports.cost_report(conn, tz=tz, by="day")["totals"]["turns"] >= 0


@pytest.fixture
def api(tmp_path):
    db = tmp_path / "clawtrace.db"
    store.connect(db).close()
    state = ServerState(
        db_path=db, tz=ZoneInfo("UTC"), now=lambda: datetime(2026, 2, 10, tzinfo=UTC)
    )
    with TestClient(
        app_create(state, 19898), base_url="http://127.0.0.1:19898", raise_server_exceptions=False
    ) as client:
        yield client


@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS)
@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31..9999-12-31",
        "0001-01-01",
        "1999-12-31..2000-01-02",
        "2026-01-01..2100-01-01",
        "99999999999999999999h",
        "99999999999999999999d",
    ],
)
def test_a_far_off_range_is_a_400_naming_it_on_every_list_endpoint(api, endpoint, value):
    answer = api.get(f"/api/{endpoint}", params={"range": value})
    if endpoint in ("alerts", "summary", "forecast") and answer.status_code == 200:
        return  # (endpoints that take no range say so in their own way, tested elsewhere)
    assert answer.status_code == 400, (endpoint, value, answer.text)
    body = answer.json()
    assert body["parameter"] == "range" and "range" in body["error"], body


@pytest.mark.parametrize("value", ["9999-12-31..9999-12-31", "0001-01-01", "99999999999999h"])
def test_a_far_off_range_on_the_command_line_is_exit_2(cli, value):
    run = cli("cost-report", "--no-scan", "--range", value)
    assert run.code == 2 and "range" in run.text
    no_traceback(run)


def test_a_store_holding_far_off_turns_from_an_older_version_is_cleaned_at_upgrade(tmp_path):
    conn = store.connect(tmp_path / "store.db")
    with conn:
        store.turns_write_named(
            conn,
            [
                {
                    "source": "claude-code",
                    "agent": "claude",
                    "project": "p",
                    "session_id": "s",
                    "provider": "anthropic",
                    "model": "m",
                    "dedup_key": k,
                    "ts": ts,
                    "output_tokens": out,
                }
                for k, ts, out in (
                    ("far", -62135596800000, 5),  # 0001-01-01
                    ("huge", 1770717600000, 370_000_000_000),
                    ("fine", 1770717600000, 7),
                )
            ],
        )
    step = store.MIGRATIONS.index(store.migrations._turns_out_of_bounds_remove)
    with conn:
        conn.execute(f"PRAGMA user_version={step}")
    store.migrate(conn, store.MIGRATIONS[: step + 1])
    assert conn.execute("SELECT output_tokens FROM turns").fetchall() == [(7,)]
    assert conn.execute("SELECT SUM(turns), SUM(output_tokens) FROM rollup").fetchone() == (1, 7)
