"""The canary planted in every content field of the shared samples never reaches the API, the
page or an alert."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from clawtrace import store
from clawtrace.alerts.engine import AlertEngine, alerts_run
from clawtrace.alerts.settings import AlertSettings
from clawtrace.config import Config
from clawtrace.scan import scan
from clawtrace.server.app import ServerState, app_create
from starlette.testclient import TestClient

from .test_api_contract import EXAMPLE_REQUESTS, VARIANTS

SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "samples"
CANARY = "CANARY-7f3a9c"

pytestmark = [
    pytest.mark.samples,
    pytest.mark.skipif(not SAMPLES.is_dir(), reason="needs ../shared/samples beside the repo"),
]


def test_no_api_answer_or_alert_carries_message_content(tmp_path):
    samples = tmp_path / "samples"
    shutil.copytree(SAMPLES, samples)
    db = tmp_path / "clawtrace.db"
    conn = store.connect(db)
    scan(
        conn,
        Config(),
        claude_dirs=[str(samples / "claude-code")],
        openclaw_dirs=[str(samples / "openclaw")],
    )
    last = conn.execute("SELECT MAX(ts) FROM turns").fetchone()[0]
    now = datetime.fromtimestamp(last / 1000 + 60, UTC)
    tiny = AlertSettings(
        daily_budget_usd=0.0001,
        session_spike_usd=0.0001,
        hourly_burn_usd=0.0001,
        hourly_requests=1,
        hourly_tokens=1,
        monthly_budget_usd=0.0001,
        desktop=False,
    )
    fired = alerts_run(conn, AlertEngine(tiny, ZoneInfo("UTC")), now, None)
    conn.close()
    assert fired  # the thresholds are tiny: the rules did fire on this data

    state = ServerState(db_path=db, tz=ZoneInfo("UTC"), now=lambda: now, alert_settings=tiny)
    client = TestClient(app_create(state, 19898), base_url="http://127.0.0.1:19898")
    paths = [
        *EXAMPLE_REQUESTS.values(),
        *VARIANTS,
        "/api/sessions?n=500&range=all",
        "/api/alerts?range=all",
        "/api/anomalies?range=all",
        "/",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        assert CANARY not in response.text, path

    with sqlite3.connect(db) as raw:
        for row in raw.execute("SELECT title, message, details_json FROM alerts_fired"):
            assert CANARY not in "".join(row)
