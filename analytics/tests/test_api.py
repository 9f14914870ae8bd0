"""The organization API: `GET /api/v1/usage`, `/sessions`, `/anomalies` with an organization
API key; over the test client here, over real HTTP in test_live_http.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from analytics.models import Anomaly
from analytics.services import api_key_revoke, rollups_rebuild
from analytics.tests.factories import EventFactory, api_key_with_value, events_random
from analytics.tests.helpers import grouped, raw_events, totals_of
from devices.tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

TOTAL_KEYS = {
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "unpriced_tokens",
}


@pytest.fixture
def usage(org, owner, member):
    laptop = DeviceFactory(organization=org, name="alpha-laptop", created_by=owner)
    server = DeviceFactory(organization=org, name="alpha-ci", created_by=member)
    events_random(org, 400, seed=31, devices=[laptop, server])
    rollups_rebuild(organization=org)
    return raw_events(org)


def _get(client: APIClient, path: str, **params):
    return client.get(path, params)


def test_usage_answers_the_cost_report_keys_by_day(key_client, usage):
    response = _get(key_client, "/api/v1/usage", range="all", by="day")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"rows", "totals", "by", "range", "mode", "timezone"}
    assert set(body["totals"]) == TOTAL_KEYS
    assert body["totals"] == totals_of(usage)
    assert all(set(row) == TOTAL_KEYS | {"day"} for row in body["rows"])
    assert [row["day"] for row in body["rows"]] == sorted(row["day"] for row in body["rows"])
    assert (body["by"], body["range"], body["mode"], body["timezone"]) == (
        "day",
        "all",
        "auto",
        "UTC",
    )


@pytest.mark.parametrize("by", ["model", "project", "agent", "source"])
def test_usage_by_a_label_groups_like_the_raw_events(key_client, usage, by):
    body = _get(key_client, "/api/v1/usage", range="all", by=by).json()
    assert {row[by]: {k: row[k] for k in TOTAL_KEYS} for row in body["rows"]} == grouped(
        usage, lambda e: getattr(e, by)
    )
    costs = [row["cost_usd"] for row in body["rows"]]
    assert costs == sorted(costs, reverse=True)  # most expensive first, as the agent


def test_usage_by_device_and_by_member_name_them(key_client, usage, owner, member):
    by_device = _get(key_client, "/api/v1/usage", range="all", by="device").json()["rows"]
    assert {row["device"] for row in by_device} == {"alpha-laptop", "alpha-ci"}
    assert all("device_id" in row for row in by_device)
    by_member = _get(key_client, "/api/v1/usage", range="all", by="member").json()["rows"]
    assert {row["member"] for row in by_member} == {owner.email, member.email}
    ours = {row["member"]: row["turns"] for row in by_member}
    assert ours[member.email] == sum(1 for e in usage if e.device.name == "alpha-ci")


def test_usage_filters_narrow_the_rows(key_client, usage, member):
    body = _get(
        key_client,
        "/api/v1/usage",
        range="all",
        by="model",
        member=member.email,
        project="site",
        agent="reviewer",
    ).json()
    expected = [
        e
        for e in usage
        if e.device.name == "alpha-ci" and e.project == "site" and e.agent == "reviewer"
    ]
    assert body["totals"] == totals_of(expected)
    device = next(e.device for e in usage if e.device.name == "alpha-laptop")
    for value in (str(device.pk), "alpha-laptop"):
        body = _get(key_client, "/api/v1/usage", range="all", device=value).json()
        assert body["totals"] == totals_of([e for e in usage if e.device_id == device.pk])


def test_usage_ranges_are_whole_local_days(key_client, org, device):
    now = datetime.now(UTC)
    EventFactory(organization=org, device=device, occurred_at=now, input_tokens=7)
    EventFactory(organization=org, device=device, occurred_at=now - timedelta(days=40))
    rollups_rebuild(organization=org)
    assert _get(key_client, "/api/v1/usage", range="today").json()["totals"]["turns"] == 1
    assert _get(key_client, "/api/v1/usage", range="30d").json()["totals"]["turns"] == 1
    assert _get(key_client, "/api/v1/usage", range="90d").json()["totals"]["turns"] == 2
    day = (now - timedelta(days=40)).date().isoformat()
    ranged = _get(key_client, "/api/v1/usage", range=f"{day}..{day}").json()
    assert ranged["totals"]["turns"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"range": "yesterday"}, "range"),
        ({"range": "2026-02-30"}, "range"),
        ({"range": "2026-03-05..2026-03-01"}, "range"),
        ({"range": "24h"}, "range"),
        ({"by": "colour"}, "by"),
        ({"member": "not-an-id"}, "member"),
        ({"project": "x" * 201}, "project"),
        ({"model": "a\x00b"}, "model"),
        ({"devise": "laptop"}, "devise"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(key_client, params, field):
    response = key_client.get("/api/v1/usage", params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert response["Content-Type"].startswith("application/json")
    assert field in str(body)
    assert body["field"] == field


def test_a_repeated_parameter_is_a_400(key_client):
    response = key_client.get("/api/v1/usage?by=day&by=model")
    assert response.status_code == 400
    assert response.json()["field"] == "by"


def test_sessions_top_n(key_client, usage):
    body = _get(key_client, "/api/v1/sessions", range="all", top=3).json()
    assert len(body["rows"]) == 3
    session = body["rows"][0]
    mine = [
        e for e in usage if e.session_id == session["session"] and e.source == session["source"]
    ]
    assert {k: session[k] for k in TOTAL_KEYS} == totals_of(mine)
    assert session["models"] == sorted({e.model for e in mine})
    costs = [row["cost_usd"] for row in body["rows"]]
    assert costs == sorted(costs, reverse=True)
    for bad in ("0", "1001", "x", "-1"):
        response = key_client.get("/api/v1/sessions", {"top": bad})
        assert response.status_code == 400
        assert response.json()["field"] == "top"


def test_anomalies_lists_the_organizations_anomalies(key_client, org, other_org):
    now = datetime.now(UTC).replace(microsecond=0)
    Anomaly.all_orgs.create(
        organization=org,
        kind="hourly_burn",
        window_start=now - timedelta(hours=1),
        window_end=now,
        value=Decimal("4.5"),
        threshold=Decimal("3"),
    )
    Anomaly.all_orgs.create(
        organization=other_org,
        kind="daily_budget",
        window_start=now - timedelta(hours=1),
        window_end=now,
        value=Decimal("99"),
    )
    body = key_client.get("/api/v1/anomalies").json()
    assert [(row["kind"], row["value"], row["threshold"]) for row in body["rows"]] == [
        ("hourly_burn", 4.5, 3.0)
    ]


def test_no_key_a_revoked_key_or_a_device_secret_is_a_401(
    api_key_and_value, key_client_for, device_and_secret, owner_client
):
    api_key, value = api_key_and_value
    assert APIClient().get("/api/v1/usage").status_code == 401
    assert key_client_for("cto_" + "a" * 52).get("/api/v1/usage").status_code == 401
    assert key_client_for(device_and_secret[1]).get("/api/v1/usage").status_code == 401
    assert owner_client.get("/api/v1/usage").status_code == 401  # a session is not a key
    assert key_client_for(value).get("/api/v1/usage").status_code == 200
    api_key_revoke(api_key=api_key, actor=None)
    response = key_client_for(value).get("/api/v1/usage")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_key_records_when_it_was_last_used(api_key_and_value, key_client_for):
    api_key, value = api_key_and_value
    assert api_key.last_used_at is None
    key_client_for(value).get("/api/v1/usage")
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_a_key_of_organization_a_never_sees_organization_b(org, other_org, key_client):
    mine = DeviceFactory(organization=org, name="same-name")
    theirs = DeviceFactory(organization=other_org, name="same-name")
    EventFactory(organization=org, device=mine, model="ours", session_id="shared")
    for _ in range(3):
        EventFactory(organization=other_org, device=theirs, model="theirs", session_id="shared")
    rollups_rebuild(organization=org)
    rollups_rebuild(organization=other_org)
    body = key_client.get("/api/v1/usage", {"range": "all", "by": "model"}).json()
    assert [row["model"] for row in body["rows"]] == ["ours"]
    assert body["totals"]["turns"] == 1
    # Their ids select nothing (the same answer as an id that never existed).
    their_member = other_org.memberships.first()
    for params in ({"device": str(theirs.pk)}, {"member": str(their_member.pk)}):
        response = key_client.get("/api/v1/usage", {"range": "all", **params})
        assert response.status_code == 200
        assert response.json()["totals"]["turns"] == 0
    sessions = key_client.get("/api/v1/sessions", {"range": "all"}).json()["rows"]
    assert [row["turns"] for row in sessions] == [1]
    # Their key sees theirs only.
    _key, value = api_key_with_value(other_org)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {value}")
    assert client.get("/api/v1/usage", {"range": "all"}).json()["totals"]["turns"] == 3


def test_the_api_is_in_the_openapi_document(client):
    document = client.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/usage", "/api/v1/sessions", "/api/v1/anomalies"):
        operation = document["paths"][path]["get"]
        assert {"organizationApiKey": []} in operation["security"]
        assert "400" in operation["responses"] and "401" in operation["responses"]
    parameters = {p["name"] for p in document["paths"]["/api/v1/usage"]["get"]["parameters"]}
    assert {"range", "by", "device", "project", "model", "member", "agent"} <= parameters


def test_an_organization_api_key_is_no_credential_for_other_apis(key_client, org):
    assert key_client.get("/api/v1/stats").status_code == 401
    assert key_client.get(f"/api/v1/organizations/{org.slug}/members/").status_code in (401, 403)
