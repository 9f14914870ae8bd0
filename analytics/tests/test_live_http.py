"""The organization API over real HTTP (pytest-django's live server and httpx), and against
the agent itself: `clawtrace sync` sends a generated corpus to the live site, and
`GET /api/v1/usage` answers what `clawtrace cost-report --json` prints for the same turns, by
every grouping the two share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from analytics.services import rollups_rebuild
from analytics.tests.factories import api_key_with_value, events_random
from analytics.tests.helpers import raw_events, totals_of
from ingest.tests.test_agent_end_to_end import ENROLL_KEY, corpus

pytestmark = pytest.mark.django_db(transaction=True)

API_KEY = "cto_" + "live" * 12 + "key1"


def test_usage_over_http_with_an_organization_api_key(live_server, org, other_org):
    events_random(org, 200, seed=41)
    events_random(other_org, 50, seed=42)
    rollups_rebuild(organization=org)
    rollups_rebuild(organization=other_org)
    api_key, value = api_key_with_value(org)
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {value}"}
        answer = http.get("/api/v1/usage", params={"range": "all", "by": "model"}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json()["totals"] == totals_of(raw_events(org))
        bad = http.get("/api/v1/usage", params={"range": "soon"}, headers=headers)
        assert bad.status_code == 400 and bad.json()["field"] == "range"
        assert http.get("/api/v1/usage").status_code == 401
        from analytics.services import api_key_revoke

        api_key_revoke(api_key=api_key, actor=None)
        assert http.get("/api/v1/usage", headers=headers).status_code == 401


class Agent:
    """One machine's `clawtrace`, with its own home, reading the corpus's logs."""

    def __init__(self, home: Path, data: Path) -> None:
        self.env = {
            **os.environ,
            "CLAWTRACE_HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(data / "claude"),
            "OPENCLAW_STATE_DIR": str(data / "openclaw"),
            "CLAWTRACE_NO_BROWSER": "1",
            "NO_COLOR": "1",
        }
        for name in ("CLAWTRACE_SERVER", "CLAWTRACE_ENROLL_KEY"):
            self.env.pop(name, None)

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "clawtrace", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    data = tmp_path_factory.mktemp("corpus-usage")
    return data, corpus.generate(data, 2000, seed=43, workers=1)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu"])
def test_the_usage_api_answers_what_the_agent_prints_for_the_same_turns(
    live_server, small_corpus, tmp_path, monkeypatch, zone
):
    for name, value in {
        "CLAWTRACE_INIT_USER_EMAIL": "ops@usage.example",
        "CLAWTRACE_INIT_USER_PASSWORD": "a long usage password 42",
        "CLAWTRACE_INIT_ORG_NAME": "Usage",
        "CLAWTRACE_INIT_ORG_SLUG": "usage",
        "CLAWTRACE_INIT_ENROLL_KEY": ENROLL_KEY,
        "CLAWTRACE_INIT_API_KEY": API_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    call_command("init_from_env")
    from accounts.models import Organization

    Organization.objects.filter(slug="usage").update(time_zone=zone)
    data, _truth = small_corpus
    agent = Agent(tmp_path / "home", data)
    agent.run("login", "--server", live_server.url, "--enroll-key", ENROLL_KEY, "--name", "box")
    agent.run("scan")
    agent.run("sync", "--no-scan")  # each batch's rollups follow it (eager tasks in tests)
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        for by in ("day", "week", "month", "model", "agent", "source", "project"):
            local = json.loads(
                agent.run(
                    "cost-report",
                    "--no-scan",
                    "--json",
                    "--range",
                    "all",
                    "--by",
                    by,
                    "--timezone",
                    zone,
                )
            )
            answer = http.get(
                "/api/v1/usage",
                params={"range": "all", "by": by},
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
            assert answer.status_code == 200, answer.text
            served = answer.json()
            assert served["totals"] == local["totals"], by
            # The agent also lists groups left with no turn at all (contexts whose turns were
            # merged into another's on its side); the server never held those turns apart.
            local_rows = [row for row in local["rows"] if row["turns"]]
            if by == "project":
                # A project leaves the machine as its name, not its path (the agent's default
                # privacy setting), so the server's label is the path's last component.
                local_rows = [{**row, "project": Path(row["project"]).name} for row in local_rows]
                assert len({row["project"] for row in local_rows}) == len(local_rows)
            assert served["rows"] == local_rows, by
            assert {k: served[k] for k in ("by", "range", "mode", "timezone")} == {
                k: local[k] for k in ("by", "range", "mode", "timezone")
            }
