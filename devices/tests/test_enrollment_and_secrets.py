"""Enrollment keys (fleets), the device secret on every call, and revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from devices.models import Device, EnrollmentKey
from devices.services import device_revoke, enrollment_key_revoke
from devices.tests.factories import enrollment_key_with_value
from ingest.tests.factories import event_payload
from ingest.tests.helpers import ingest

pytestmark = pytest.mark.django_db
MACHINE = {"name": "ci-runner-7", "os": "Linux 6.8 aarch64", "agent_version": "0.9.1"}


def _enroll(key: str, **overrides):
    return APIClient().post(
        "/api/v1/devices/enroll", {"enroll_key": key, **MACHINE, **overrides}, format="json"
    )


def test_a_valid_key_enrolls_the_machine_into_its_organization(org, owner):
    key, value = enrollment_key_with_value(org, created_by=owner)
    response = _enroll(value)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["organization"] == {"slug": org.slug, "name": org.name}
    assert body["name"] == "ci-runner-7" and body["device_secret"].startswith("ctd_")
    device = Device.all_orgs.get(pk=body["device_id"])
    assert (device.organization, device.enrollment_key, device.created_by) == (org, key, owner)
    key.refresh_from_db()
    assert key.uses == 1 and key.last_used_at is not None
    # The secret works at once.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['device_secret']}")
    assert client.get("/api/v1/stats").status_code == 200


def test_a_key_enrolls_many_machines(org):
    _key, value = enrollment_key_with_value(org)
    secrets = {_enroll(value, name=f"runner-{n}").json()["device_secret"] for n in range(3)}
    assert len(secrets) == 3
    assert Device.all_orgs.filter(organization=org).count() == 3


@pytest.mark.parametrize("state", ["revoked", "expired", "unknown", "malformed"])
def test_an_unusable_key_is_invalid_enroll_key(org, owner, state):
    key, value = enrollment_key_with_value(org, expires_at=timezone.now() + timedelta(hours=1))
    if state == "revoked":
        enrollment_key_revoke(enrollment_key=key, actor=owner)
    if state == "unknown":
        value = "cte_" + "a" * 52
    if state == "malformed":
        value = "not-a-key"
    with time_machine.travel(timezone.now() + timedelta(hours=2 if state == "expired" else 0)):
        response = _enroll(value)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_enroll_key" and response.json()["detail"]
    assert not Device.all_orgs.exists()


def test_enrollment_refuses_unknown_keys_in_the_body(org):
    _key, value = enrollment_key_with_value(org)
    response = _enroll(value, organization="other")
    assert response.status_code == 400 and response.json()["error"] == "unknown_field"


def test_a_key_is_stored_as_a_digest_only(org, owner):
    from devices.services import enrollment_key_create

    key, value = enrollment_key_create(organization=org, actor=owner, name="fleet")
    assert value.startswith("cte_") and len(value) == 56
    stored = EnrollmentKey.all_orgs.get(pk=key.pk)
    assert value not in (stored.key_digest, stored.display_prefix)
    assert stored.display_prefix == value[:12]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer ctd_" + "a" * 52,
        "Bearer cte_" + "a" * 52,
        "Token ctd_x",
        "Bearer ctd_ extra",
        "Bearer \u00e9",
    ],
)
def test_a_missing_unknown_or_malformed_secret_is_401(db, header):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header.encode("utf-8").decode("latin-1"))
    for response in (
        client.get("/api/v1/stats"),
        client.delete("/api/v1/device"),
        client.post("/api/v1/ingest", {"events": []}, format="json"),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_device_secret"
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_device_gets_401_on_its_next_request(device_client, device, org, owner):
    assert ingest(device_client, [event_payload()]).status_code == 200
    device_revoke(device=device, actor=owner)
    response = ingest(device_client, [event_payload()])
    assert response.status_code == 401 and response.json()["error"] == "invalid_device_secret"
    assert device_client.get("/api/v1/stats").status_code == 401


def test_logout_revokes_the_device_itself(device_client, device):
    response = device_client.delete("/api/v1/device")
    assert response.status_code == 204 and response.content == b""
    device.refresh_from_db()
    assert device.revoked_at is not None
    assert device_client.delete("/api/v1/device").status_code == 401


def test_last_seen_is_written_at_most_once_a_minute(
    device_client, device, django_assert_num_queries
):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        device_client.get("/api/v1/stats")
        device.refresh_from_db()
        first_seen = device.last_seen_at
        assert first_seen is not None
        clock.shift(30)
        with django_assert_num_queries(2):  # the device, the totals; no write
            device_client.get("/api/v1/stats")
        clock.shift(31)
        device_client.get("/api/v1/stats")
        device.refresh_from_db()
        assert device.last_seen_at > first_seen
