"""The sync protocol over real HTTP: a live server thread (pytest-django's `live_server`) and
httpx, as the agent's sender talks to it: link a machine, send gzip batches, check totals,
log out."""

from __future__ import annotations

import gzip

import httpx
import orjson
import pytest
from django.db import connection

from devices.services import device_authorization_decide
from ingest.tests.factories import event_payload

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CANARY = "CANARY-b41f7e"


@pytest.fixture
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def _gzip_post(http: httpx.Client, secret: str, document: dict) -> httpx.Response:
    return http.post(
        "/api/v1/ingest",
        content=gzip.compress(orjson.dumps(document), mtime=0),
        headers={
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )


@pytest.mark.django_db(transaction=True)
def test_link_send_check_and_log_out_over_http(http, org, owner):
    grant = http.post(
        "/api/v1/device/code", json={"name": "laptop", "os": "Linux", "agent_version": "0.9.0"}
    ).json()
    assert (
        http.post(
            "/api/v1/device/token", json={"grant_type": GRANT, "device_code": grant["device_code"]}
        ).json()["error"]
        == "authorization_pending"
    )
    device_authorization_decide(
        user_code=grant["user_code"], actor=owner, approve=True, organization=org
    )
    token = http.post(
        "/api/v1/device/token", json={"grant_type": GRANT, "device_code": grant["device_code"]}
    )
    assert token.status_code == 200, token.text
    secret = token.json()["device_secret"]

    batch = {"events": [event_payload(input_tokens=n) for n in range(1000)]}
    first = _gzip_post(http, secret, batch)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 1000, "duplicates": 0, "updated": 0, "retracted": 0}
    again = _gzip_post(http, secret, batch)
    assert again.json() == {"accepted": 0, "duplicates": 1000, "updated": 0, "retracted": 0}

    stats = http.get("/api/v1/stats", headers={"Authorization": f"Bearer {secret}"}).json()
    assert stats["totals"]["turns"] == 1000
    assert stats["totals"]["input_tokens"] == sum(range(1000))

    assert (
        http.delete("/api/v1/device", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 204
    )
    after = _gzip_post(http, secret, batch)
    assert after.status_code == 401 and after.json()["error"] == "invalid_device_secret"


@pytest.mark.django_db(transaction=True)
def test_text_never_gets_past_the_wire(http, org, caplog):
    """A batch carrying a canary in a text-like key is refused whole over HTTP; the canary is
    in no response, no row of any table and no log line."""
    from devices.tests.factories import device_with_secret

    caplog.set_level("DEBUG")
    _device, secret = device_with_secret(org)
    events = [event_payload(), {**event_payload(), "content": f"secret plans {CANARY}"}]
    response = _gzip_post(http, secret, {"events": events})
    assert response.status_code == 400 and response.json()["error"] == "forbidden_field"
    assert CANARY not in response.text
    assert _gzip_post(http, secret, {"events": events[:1]}).status_code == 200
    assert CANARY not in caplog.text
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            rows = [repr(row) for row in cursor.fetchall()]
            holding = [row for row in rows if CANARY in row]
            assert not holding, table


@pytest.mark.django_db(transaction=True)
def test_oversized_and_non_json_bodies_over_http(http, org):
    from devices.tests.factories import device_with_secret

    _device, secret = device_with_secret(org)
    headers = {"Authorization": f"Bearer {secret}"}
    too_big = http.post(
        "/api/v1/ingest",
        content=b" " * 1_200_000,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
    form = http.post("/api/v1/ingest", data={"events": "x"}, headers=headers)
    assert form.status_code == 415
