"""The in-repo fixture tree (tests/fixtures/tree, see its README) gives hand-computed figures."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from clawtrace import reports
from clawtrace.reports import Filters

from .conftest import FIXTURES, run_scan, turn_rows

TREE = FIXTURES / "tree"


@pytest.fixture
def scanned(conn):
    result = run_scan(conn, TREE / "claude", TREE / "openclaw")
    return conn, result


def usd(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.0000001"))


def test_claude_code_turns_after_every_rule(scanned):
    conn, _ = scanned
    rows = {r["msg_id"]: r for r in turn_rows(conn) if r["source"] == "claude-code"}
    assert sorted(rows) == ["msg_m1", "msg_m2", "msg_m3", "msg_m4", "msg_s1"]
    m1 = rows["msg_m1"]
    assert (m1["input_tokens"], m1["output_tokens"], json.loads(m1["tools"])) == (
        100,
        50,
        ["Read", "Bash"],
    )
    assert (rows["msg_m2"]["cache_write_1h_tokens"], rows["msg_m2"]["is_sidechain"]) == (2000, 0)
    assert (rows["msg_s1"]["is_sidechain"], rows["msg_s1"]["agent"]) == (1, "f1")
    assert rows["msg_m3"]["web_search_requests"] == 2
    # By hand, USD per MTok: haiku 1 / 5 / read 0.10 / 1h write 2; opus 5 / 25; search $0.01.
    expected = {
        "msg_m1": "0.0003500",
        "msg_m2": "0.0065000",
        "msg_m3": "0.0203000",
        "msg_s1": "0.0004500",
        "msg_m4": "0.0000220",
    }
    assert {k: usd(r["cost_pico"] / 10**12) for k, r in rows.items()} == {
        k: Decimal(v) for k, v in expected.items()
    }
    claude = reports.totals(conn, Filters(source="claude-code"))
    assert usd(claude.cost_pico / 10**12) == Decimal("0.0276220")


def test_claude_code_malformed_and_synthetic_lines(scanned):
    conn, _ = scanned
    files = dict(
        conn.execute("SELECT path, malformed FROM files WHERE source = 'claude-code'").fetchall()
    )
    assert sum(files.values()) == 1
    models = {r["model"] for r in reports.cost_report(conn, tz="UTC", by="model")["rows"]}
    assert "<synthetic>" not in models


def test_days_split_at_local_midnight_in_kolkata(scanned):
    conn, _ = scanned
    f = Filters(source="claude-code")

    def days(tz):
        return {r["day"]: r["turns"] for r in reports.cost_report(conn, f, tz, by="day")["rows"]}

    utc, ist = days("UTC"), days("Asia/Kolkata")
    assert utc == {"2026-03-01": 4, "2026-03-02": 1}
    assert ist == {"2026-03-01": 1, "2026-03-02": 4}


def test_openclaw_archive_backup_mirror_and_unpriced(scanned):
    conn, _ = scanned
    rows = {
        r["dedup_key"].rsplit(":", 1)[1]: r for r in turn_rows(conn) if r["source"] == "openclaw"
    }
    assert sorted(rows) == ["e0000000", "e0000001", "e0000003"]
    assert (rows["e0000001"]["provider"], rows["e0000001"]["model"]) == ("zai", "glm-4.7")
    assert rows["e0000003"]["cost_pico"] is None
    oc = reports.totals(conn, Filters(source="openclaw"))
    assert (oc.turns, oc.unpriced_tokens, oc.unpriced_turns) == (3, 550, 1)
    assert usd(oc.cost_pico / 10**12) == Decimal("0.0015400")
    missing = conn.execute(
        "SELECT session_key FROM index_sessions WHERE transcript_exists = 0"
    ).fetchall()
    assert missing == [("agent:ops:cron:nightly",)]
    assert all(".bak" not in p for (p,) in conn.execute("SELECT path FROM files"))
