"""Every endpoint answers what `clawtrace/schema/openapi.json` promises, and the examples the
macOS app's tests decode (`macos/Fixtures/api/*.json`) are exactly what the server returns."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from clawtrace.server.app import ServerState, app_create
from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "macos" / "Fixtures" / "api"
OPENAPI = json.loads((resources.files("clawtrace") / "schema" / "openapi.json").read_text())

# (example name, path with query) — one example per endpoint, plus variants the contract covers.
EXAMPLE_REQUESTS = {
    "health": "/api/health",
    "summary": "/api/summary",
    "costs": "/api/costs?range=7d&by=day",
    "models": "/api/models?range=30d",
    "projects": "/api/projects?range=30d",
    "agents": "/api/agents?range=30d",
    "sessions": "/api/sessions?n=5",
    "tools": "/api/tools?range=30d",
    "blocks": "/api/blocks",
    "anomalies": "/api/anomalies?range=7d",
    "alerts": "/api/alerts",
    "forecast": "/api/forecast",
}
VARIANTS = [
    "/api/costs?range=30d&by=day",
    "/api/costs?range=90d&by=day",
    "/api/costs?range=1d&by=hour",
    "/api/costs?range=2026-11-01..2026-11-03&by=hour",
    "/api/costs?range=all",
    "/api/costs?range=all&by=auto",
    "/api/costs?range=90d&by=week",
    "/api/costs?range=all&by=month",
    "/api/models?range=7d&project=/home/ada/src/webshop",
    "/api/projects?model=claude-opus-4-1&agent=claude",
    "/api/sessions?n=1&range=today",
    "/api/sessions?range=90d&source=openclaw",
    "/api/tools?range=today&agent=claude",
    "/api/blocks?range=7d",
    "/api/anomalies?range=30d&project=/home/ada/src/webshop",
    "/api/alerts?range=90d&n=3",
    "/api/forecast?model=claude-sonnet-4-5",
    "/api/summary?project=/home/ada/notes",
    "/api/models?range=2000-01-01..2000-01-02",
]


def schema_for(path: str, status: str = "200") -> dict:
    route = path.split("?")[0]
    op = OPENAPI["paths"][route]["get"]
    response = op["responses"][status]
    if "$ref" in response:
        response = OPENAPI["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    ref = response["content"]["application/json"]["schema"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **ref,
        "components": OPENAPI["components"],
    }


def assert_valid(path: str, body: object, status: str = "200") -> None:
    jsonschema.Draft202012Validator(schema_for(path, status)).validate(body)


def test_the_openapi_document_is_valid_openapi_shaped_json_schema():
    assert OPENAPI["openapi"].startswith("3.1")
    for name, schema in OPENAPI["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name


def test_every_route_of_the_server_is_in_the_contract(client):
    documented = {p for p in OPENAPI["paths"] if p.startswith("/api/")}
    served = {r.path for r in client.app.routes if getattr(r, "path", "").startswith("/api/")}
    assert served == documented


@pytest.mark.parametrize("path", list(EXAMPLE_REQUESTS.values()) + VARIANTS)
def test_each_endpoint_answers_according_to_the_contract(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert_valid(path, response.json())


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/costs?range=bogus", "range"),
        ("/api/costs?range=2026-11-05..2026-11-01", "range"),
        ("/api/costs?by=year", "by"),
        ("/api/costs?range=36600d&by=month", "range"),
        ("/api/costs?range=365d&by=hour", "by"),
        ("/api/sessions?n=0", "n"),
        ("/api/sessions?n=ten", "n"),
        ("/api/models?source=cursor", "source"),
        ("/api/projects?colour=red", "colour"),
        ("/api/tools?range=7d&range=30d", "range"),
        ("/api/alerts?n=-1", "n"),
        ("/api/health?verbose=1", "verbose"),
        ("/api/anomalies?agent=%01", "agent"),
    ],
)
def test_a_bad_parameter_gets_a_400_json_body_naming_it(client, path, parameter):
    response = client.get(path)
    assert response.status_code == 400
    body = response.json()
    assert body["parameter"] == parameter
    assert body["error"]
    assert_valid(path, body, "400")


def test_the_server_publishes_its_contract(client):
    assert client.get("/openapi.json").json() == OPENAPI


def test_an_unknown_path_is_a_json_404_not_a_page(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]


def test_filters_narrow_the_numbers(client):
    everything = client.get("/api/models?range=30d").json()["totals"]["cost_usd"]
    one_project = client.get("/api/models?range=30d&project=/home/ada/notes").json()["totals"][
        "cost_usd"
    ]
    projects = client.get("/api/projects?range=30d").json()["rows"]
    notes = next(r for r in projects if r["project"] == "/home/ada/notes")
    assert 0 < one_project < everything
    assert one_project == pytest.approx(notes["cost_usd"])


def test_the_cost_series_is_zero_filled_over_the_whole_range(client):
    daily = client.get("/api/costs?range=30d&by=day").json()
    assert len(daily["points"]) == 30
    assert any(p["cost_usd"] == 0 for p in daily["points"])  # the fixture has empty weekend days
    assert sum(p["cost_usd"] for p in daily["points"]) == pytest.approx(daily["totals"]["cost_usd"])
    hourly = client.get("/api/costs?range=1d&by=hour").json()
    assert len(hourly["points"]) == 24


def test_the_most_expensive_sessions_come_first_and_n_limits_them(client):
    rows = client.get("/api/sessions?n=5&range=90d").json()["rows"]
    assert len(rows) == 5
    costs = [r["cost_usd"] for r in rows]
    assert costs == sorted(costs, reverse=True)


def test_the_runaway_session_in_the_fixture_is_reported_as_an_anomaly(client):
    body = client.get("/api/anomalies?range=today").json()
    assert [s["session_id"] for s in body["sessions"]] == ["sess-loop-0001"]
    assert body["baseline"]["ready"] is True


def _normalised(body: dict) -> dict:
    body = json.loads(json.dumps(body))
    if "schema_version" in body:
        # Grows with every store migration (agent-core's or ours); the app only decodes it as an
        # integer, so the example pins it rather than failing on each new migration.
        body["schema_version"] = 1
    return body


@pytest.mark.parametrize("name", sorted(EXAMPLE_REQUESTS))
def test_the_saved_example_for_the_macos_app_matches_what_the_server_returns(client, name):
    """Regenerate with CLAWTRACE_UPDATE_FIXTURES=1 after a deliberate contract change."""
    path = EXAMPLE_REQUESTS[name]
    body = _normalised(client.get(path).json())
    assert_valid(path, body)
    target = EXAMPLES / f"{name}.json"
    if os.environ.get("CLAWTRACE_UPDATE_FIXTURES") == "1":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    assert target.exists(), f"{target} is missing: run with CLAWTRACE_UPDATE_FIXTURES=1"
    saved = json.loads(target.read_text())
    assert saved == body, f"{target.name} drifted from what {path} returns"


def test_the_examples_index_names_the_request_behind_each_example():
    index = json.loads((EXAMPLES / "index.json").read_text())
    expected = {f"{name}.json": path for name, path in EXAMPLE_REQUESTS.items()}
    expected["error-400.json"] = ERROR_EXAMPLES["error-400"][0]
    expected["error-421.json"] = "/api/summary (Host: rebound.example:19898)"
    assert index == expected


def test_a_fresh_install_with_no_store_yet_answers_every_endpoint(tmp_path):
    state = ServerState(db_path=tmp_path / "absent" / "clawtrace.db", tz=ZoneInfo("UTC"))
    with TestClient(app_create(state, 19898), base_url="http://127.0.0.1:19898") as c:
        for path in [*EXAMPLE_REQUESTS.values(), *VARIANTS]:
            response = c.get(path)
            assert response.status_code == 200, (path, response.text)
            assert_valid(path, response.json())
    assert not (tmp_path / "absent").exists()  # reading never creates the store


SAMPLE_VALUES = {
    "range": "7d",
    "project": "p",
    "model": "m",
    "agent": "a",
    "source": "openclaw",
    "by": "day",
    "n": "3",
}


def _documented_params(route: str) -> list[str]:
    names = []
    for param in OPENAPI["paths"][route]["get"].get("parameters", []):
        if "$ref" in param:
            param = OPENAPI["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        names.append(param["name"])
    return names


@pytest.mark.parametrize(
    "route",
    sorted(p for p in OPENAPI["paths"] if p.startswith("/api/") and "get" in OPENAPI["paths"][p]),
)
def test_every_documented_parameter_is_accepted_and_nothing_else(client, route):
    names = _documented_params(route)
    for name in names:
        response = client.get(route, params={name: SAMPLE_VALUES[name]})
        assert response.status_code == 200, (route, name, response.text)
    if {"range", "project", "model", "agent"} & set(names):
        assert {"range", "project", "model", "agent"} <= set(names) or route == "/api/summary"
    assert client.get(route, params={"undocumented": "1"}).status_code == 400


def test_hourly_series_follow_a_half_hour_zone(server_state):

    server_state.tz = ZoneInfo("Asia/Kolkata")
    with TestClient(app_create(server_state, 19898), base_url="http://127.0.0.1:19898") as c:
        body = c.get("/api/costs?range=1d&by=hour").json()
    assert body["timezone"] == "Asia/Kolkata"
    assert len(body["points"]) == 24
    assert [p["t"][11:] for p in body["points"]] == [f"{h:02d}:00" for h in range(24)]
    assert sum(p["cost_usd"] for p in body["points"]) == pytest.approx(body["totals"]["cost_usd"])


def test_the_unusual_hour_of_the_loop_is_in_the_anomalies(client):
    hours = client.get("/api/anomalies?range=today").json()["hours"]
    loop_hour = next(h for h in hours if h["hour"] == "2026-11-20T16:00")  # 15:xx UTC in Paris
    assert loop_hour["cost_usd"] > 5 * max(loop_hour["expected_usd"], 0.5)


ERROR_EXAMPLES = {
    "error-400": ("/api/costs?range=fortnight", "127.0.0.1:19898", 400),
    "error-421": ("/api/summary", "rebound.example:19898", 421),
}


@pytest.mark.parametrize("name", sorted(ERROR_EXAMPLES))
def test_the_saved_error_examples_match_what_the_server_returns(server_state, name):
    path, host, status = ERROR_EXAMPLES[name]
    with TestClient(app_create(server_state, 19898), base_url=f"http://{host}") as c:
        response = c.get(path)
    assert response.status_code == status
    body = response.json()
    jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/Error", "components": OPENAPI["components"]}
    ).validate(body)
    target = EXAMPLES / f"{name}.json"
    if os.environ.get("CLAWTRACE_UPDATE_FIXTURES") == "1":
        target.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    assert json.loads(target.read_text()) == body
