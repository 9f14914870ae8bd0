"""POST /api/v1/ingest: the allowlist, the bounds, the body's encodings and sizes, and the
statuses the sender relies on (docs/sync-protocol.md, "Ingest")."""

from __future__ import annotations

import gzip
import zlib
from decimal import Decimal
from unittest import mock

import orjson
import pytest
from django.db import OperationalError, connection

from accounts.tenancy import organization_scope
from ingest.models import Event
from ingest.serializers import EVENT_FIELDS
from ingest.tests.factories import batch_body, event_payload, gzipped
from ingest.tests.helpers import ingest

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["detail"], str) and body["detail"]
    return body


def _stored(org) -> list[Event]:
    with organization_scope(org):
        return list(Event.objects.order_by("id"))


def test_a_gzip_batch_is_stored_with_every_field(device_client, device, org):
    event = event_payload(tools=["Bash", "Read", "Bash"], logged_cost_usd="0.03", project=None)
    response = ingest(device_client, [event])
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0, "updated": 0, "retracted": 0}
    [stored] = _stored(org)
    assert stored.event_id.hex == event["event_id"]
    assert stored.device == device
    assert stored.source == "claude-code" and stored.model == "claude-sonnet-4-5"
    assert stored.project is None and stored.git_branch == "main"
    assert stored.occurred_at.isoformat() == "2026-03-01T12:00:00+00:00"
    assert (stored.input_tokens, stored.output_tokens) == (1200, 340)
    assert (stored.cache_read_tokens, stored.cache_write_5m_tokens) == (50_000, 2_000)
    assert stored.cost_usd == Decimal("0.03125") and stored.logged_cost_usd == Decimal("0.03")
    assert stored.tools == ["Bash", "Read", "Bash"]
    device.refresh_from_db()
    assert device.event_count == 1 and device.last_sync_at is not None


def test_a_plain_json_batch_is_accepted_too(device_client):
    response = ingest(device_client, [event_payload()], gzip=False)
    assert response.status_code == 200 and response.json()["accepted"] == 1


def test_the_event_model_has_no_text_field():
    from django.db import models

    for field in Event._meta.get_fields():
        assert not isinstance(field, models.TextField), field.name
        if isinstance(field, models.CharField):
            assert field.max_length <= 200, field.name


def test_the_allowlist_is_the_contracts_table():
    assert set(EVENT_FIELDS) == {
        "event_id",
        "source",
        "agent",
        "project",
        "session_id",
        "model",
        "provider",
        "timestamp",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "web_search_requests",
        "cost_usd",
        "logged_cost_usd",
        "price_source",
        "is_sidechain",
        "tools",
        "git_branch",
    }


def test_an_unknown_key_rejects_the_whole_batch_and_is_named(device_client, org):
    events = [event_payload(), event_payload(), {**event_payload(), "colour": "blue"}]
    response = ingest(device_client, events)
    assert response.status_code == 400
    assert _error(response)["error"] == "unknown_field"
    assert response.json()["field"] == "events.2.colour"
    assert _stored(org) == []


@pytest.mark.parametrize(
    "key", ["message", "content", "prompt", "text", "thinking", "title", "input", "path"]
)
def test_a_key_that_could_carry_text_is_forbidden_and_named(device_client, org, key):
    events = [event_payload(), {**event_payload(), key: "CANARY words of a message"}]
    response = ingest(device_client, events)
    assert response.status_code == 400
    body = _error(response)
    assert body["error"] == "forbidden_field" and body["field"] == f"events.1.{key}"
    assert "CANARY" not in response.content.decode()
    assert _stored(org) == []


def test_a_forbidden_key_is_named_before_any_bad_value(device_client):
    events = [event_payload(input_tokens=-1), {**event_payload(), "content": "x"}]
    response = ingest(device_client, events)
    assert response.json()["error"] == "forbidden_field"


def test_an_unknown_top_level_key_is_named(device_client):
    response = device_client.post("/api/v1/ingest", {"events": [], "messages": []}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "forbidden_field" and response.json()["field"] == "messages"


def test_a_missing_key_is_invalid_value_naming_it(device_client):
    event = event_payload()
    del event["model"]
    response = ingest(device_client, [event])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_value"
    assert response.json()["field"] == "events.0.model"


MAX = 2**53 - 1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("event_id", "ABCDEF0123456789abcdef0123456789"),
        ("event_id", "abc"),
        ("event_id", 12),
        ("source", "cursor"),
        ("agent", "a" * 129),
        ("project", "p" * 201),
        ("project", 5),
        ("session_id", "s" * 201),
        ("session_id", None),
        ("model", "m" * 201),
        ("model", "nul\x00byte"),
        ("provider", "p" * 65),
        ("timestamp", "2026-03-01T12:00:00+00:00"),
        ("timestamp", "2026-03-01 12:00:00Z"),
        ("timestamp", "1999-12-31T23:59:59Z"),
        ("timestamp", "2100-01-01T00:00:00Z"),
        ("timestamp", "2026-02-30T00:00:00Z"),
        ("timestamp", 1767225600),
        ("input_tokens", -1),
        ("input_tokens", MAX + 1),
        ("output_tokens", 1.5),
        ("cache_read_tokens", "10"),
        ("cache_write_5m_tokens", True),
        ("cache_write_1h_tokens", 2**70),
        ("web_search_requests", 10_001),
        ("cost_usd", 0.5),
        ("cost_usd", "-1"),
        ("cost_usd", "1000000.000000000001"),
        ("cost_usd", "0.0000000000001"),
        ("cost_usd", "1e3"),
        ("logged_cost_usd", "NaN"),
        ("price_source", "p" * 33),
        ("is_sidechain", "false"),
        ("is_sidechain", 0),
        ("tools", "Read"),
        ("tools", ["t"] * 65),
        ("tools", ["t" * 65]),
        ("tools", [1]),
        ("git_branch", "b" * 201),
    ],
)
def test_values_out_of_bounds_are_refused_naming_the_field(device_client, org, key, value):
    response = ingest(device_client, [event_payload(), event_payload(**{key: value})])
    assert response.status_code == 400, response.content
    body = _error(response)
    assert body["error"] == "invalid_value" and body["field"] == f"events.1.{key}"
    assert _stored(org) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("input_tokens", MAX),
        ("web_search_requests", 10_000),
        ("cost_usd", "1000000"),
        ("cost_usd", "0.000000000001"),
        ("cost_usd", None),
        ("timestamp", "2000-01-01T00:00:00Z"),
        ("timestamp", "2099-12-31T23:59:59.999999Z"),
        ("tools", ["t" * 64] * 64),
        ("tools", []),
        ("project", None),
        ("git_branch", None),
        ("source", "openclaw"),
    ],
)
def test_values_at_the_bounds_are_accepted(device_client, key, value):
    response = ingest(device_client, [event_payload(**{key: value})])
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], "events"),
        ({}, "events"),
        ({"events": {}}, "events"),
        ({"events": [1]}, "events.0"),
        ({"events": [], "retract": "x"}, "retract"),
        ({"events": [], "retract": ["nothex"]}, "retract.0"),
    ],
)
def test_a_body_of_the_wrong_shape_is_invalid_value(device_client, document, field):
    response = device_client.post("/api/v1/ingest", document, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_value" and response.json()["field"] == field


def test_invalid_json_and_invalid_gzip_are_named(device_client):
    broken = device_client.post(
        "/api/v1/ingest", data=b'{"events": [', content_type="application/json"
    )
    assert broken.status_code == 400 and _error(broken)["error"] == "invalid_json"
    not_gzip = device_client.post(
        "/api/v1/ingest",
        data=b'{"events": []}',
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert not_gzip.status_code == 400 and _error(not_gzip)["error"] == "invalid_gzip"
    truncated = device_client.post(
        "/api/v1/ingest",
        data=gzipped(batch_body([event_payload()]))[:-12],
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert truncated.status_code == 400 and _error(truncated)["error"] == "invalid_gzip"


def test_nan_and_deep_nesting_are_invalid_json(device_client):
    for raw in (b'{"events": [], "x": NaN}', b"[" * 5000 + b"]" * 5000):
        response = device_client.post("/api/v1/ingest", data=raw, content_type="application/json")
        assert response.status_code == 400 and _error(response)["error"] == "invalid_json"


def test_more_than_a_thousand_events_is_413_stating_the_limits(device_client, org):
    response = ingest(device_client, [event_payload() for _ in range(1001)])
    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "detail": "at most 1000 events and 1000000 bytes (uncompressed) per batch",
    }
    assert _stored(org) == []


def test_events_plus_retractions_count_together_toward_the_limit(device_client):
    events = [event_payload() for _ in range(600)]
    retract = [event_payload()["event_id"] for _ in range(401)]
    assert ingest(device_client, events, retract).status_code == 413
    assert ingest(device_client, events, retract[:400]).status_code == 200


def test_a_body_over_a_megabyte_is_413(device_client):
    padding = " " * 1_000_001
    raw = b'{"events": []' + padding.encode() + b"}"
    plain = device_client.post("/api/v1/ingest", data=raw, content_type="application/json")
    assert plain.status_code == 413 and plain.json()["error"] == "payload_too_large"
    packed = device_client.post(
        "/api/v1/ingest",
        data=gzip.compress(raw),
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert packed.status_code == 413 and packed.json()["error"] == "payload_too_large"


def test_a_gzip_bomb_is_413_without_inflating_it(device_client):
    # 1 GB of zeros in about a megabyte: the decompressor must stop at the limit.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(compressor.compress(chunk) for _ in range(1024)) + compressor.flush()
    assert len(bomb) < 1_100_000
    with mock.patch("devices.protocol.orjson.loads") as parse:
        response = device_client.post(
            "/api/v1/ingest",
            data=bomb[:999_000],
            content_type="application/json",
            HTTP_CONTENT_ENCODING="gzip",
        )
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    parse.assert_not_called()


def test_a_concatenated_gzip_stream_is_read_whole_and_bounded(device_client):
    body = batch_body([event_payload()])
    half = len(body) // 2
    two_members = gzip.compress(body[:half]) + gzip.compress(body[half:])
    response = device_client.post(
        "/api/v1/ingest",
        data=two_members,
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200 and response.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("text/plain", ""),
        ("application/x-www-form-urlencoded", ""),
        ("application/xml", ""),
        ("application/json", "br"),
        ("application/json", "deflate"),
    ],
)
def test_anything_but_json_is_415(device_client, content_type, encoding):
    extra = {"HTTP_CONTENT_ENCODING": encoding} if encoding else {}
    response = device_client.post(
        "/api/v1/ingest", data=b'{"events": []}', content_type=content_type, **extra
    )
    assert response.status_code == 415 and _error(response)["error"] == "unsupported_media_type"


def test_a_post_without_a_content_type_is_415(device_client):
    response = device_client.generic("POST", "/api/v1/ingest", b'{"events": []}', content_type="")
    assert response.status_code == 415


def test_the_device_throttle_answers_429_with_retry_after(device_client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"device": "3/min"},
    }
    statuses = [ingest(device_client, [event_payload()]).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = ingest(device_client, [event_payload()])
    assert _error(response)["error"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_the_throttle_is_per_device(org, device_client, settings, device_client_for):
    from devices.tests.factories import device_with_secret

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"device": "1/min"},
    }
    _second, secret = device_with_secret(org)
    assert ingest(device_client, [event_payload()]).status_code == 200
    assert ingest(device_client, [event_payload()]).status_code == 429
    assert ingest(device_client_for(secret), [event_payload()]).status_code == 200


def test_two_devices_behind_one_address_have_a_bucket_each_and_one_device_one_bucket(
    org, settings, device_client_for
):
    """Keyed by the authenticated device, never the client address: two machines behind one
    NAT (and one proxy, whose X-Forwarded-For entry is the address the site trusts) do not
    share a budget, and a device that changes address keeps its own."""
    from devices.tests.factories import device_with_secret

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "NUM_PROXIES": 1,
        "DEFAULT_THROTTLE_RATES": {"device": "2/min"},
    }
    _laptop, laptop_secret = device_with_secret(org, name="laptop")
    _desktop, desktop_secret = device_with_secret(org, name="desktop")
    office = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    laptop, desktop = device_client_for(laptop_secret), device_client_for(desktop_secret)
    laptop.defaults.update(office)
    desktop.defaults.update(office)

    assert [ingest(laptop, [event_payload()]).status_code for _ in range(2)] == [200, 200]
    refused = ingest(laptop, [event_payload()])
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert _error(refused)["error"] == "throttled"
    # The desktop, same address: its own bucket.
    assert [ingest(desktop, [event_payload()]).status_code for _ in range(2)] == [200, 200]
    # The laptop from home: still its own (spent) bucket.
    laptop.defaults.update({"HTTP_X_FORWARDED_FOR": "203.0.113.50"})
    assert ingest(laptop, [event_payload()]).status_code == 429


def test_the_throttle_has_a_default_rate_when_settings_name_none(device_client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}
    from devices.authentication import DEFAULT_RATES, DeviceRateThrottle

    throttle = DeviceRateThrottle()
    throttle.scope = "device"
    assert throttle.get_rate() == DEFAULT_RATES["device"]
    assert ingest(device_client, [event_payload()]).status_code == 200


def test_a_database_that_is_away_is_503_with_retry_after(device_client, org):
    with mock.patch(
        "ingest.apis.usage_batch_ingest", side_effect=OperationalError("server closed")
    ):
        response = ingest(device_client, [event_payload()])
    assert response.status_code == 503
    assert _error(response)["error"] == "database_unavailable"
    assert int(response["Retry-After"]) >= 1
    assert "server closed" not in response.content.decode()


def test_errors_are_json_even_when_html_is_asked_for(device_client):
    response = device_client.post(
        "/api/v1/ingest",
        data=b"{",
        content_type="application/json",
        HTTP_ACCEPT="text/html",
    )
    assert response.status_code == 400 and _error(response)["error"] == "invalid_json"


def test_other_methods_are_405_in_the_error_shape(device_client):
    response = device_client.get("/api/v1/ingest")
    assert response.status_code == 405 and _error(response)["error"] == "method_not_allowed"
    assert "POST" in response["Allow"]


def test_organization_in_the_body_is_refused_not_obeyed(device_client, org, other_org):
    response = device_client.post(
        "/api/v1/ingest",
        {"events": [event_payload()], "organization": other_org.slug},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "organization"
    response = ingest(device_client, [{**event_payload(), "organization_id": other_org.pk}])
    assert response.json()["field"] == "events.0.organization_id"


def test_no_per_event_query(device_client, django_assert_max_num_queries):
    """A fixed handful of statements per batch on PostgreSQL; on SQLite the ORM splits the
    inserts to fit its limit on parameters per statement, still far from one per event."""
    ingest(device_client, [event_payload()])  # (last_seen is written once a minute)
    events = [event_payload() for _ in range(1000)]
    limit = 10 if connection.vendor == "postgresql" else 60
    with django_assert_max_num_queries(limit):
        assert ingest(device_client, events).json()["accepted"] == 1000
    with django_assert_max_num_queries(limit):
        assert ingest(device_client, events).json()["duplicates"] == 1000


def test_the_response_body_is_exactly_the_four_counts(device_client):
    body = orjson.loads(ingest(device_client, []).content)
    assert body == {"accepted": 0, "duplicates": 0, "updated": 0, "retracted": 0}
