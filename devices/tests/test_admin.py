"""The operators' admin opens every devices and ingest model, and never shows a digest."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from devices.models import Device, DeviceAuthorization, EnrollmentKey
from devices.tests.factories import (
    DeviceAuthorizationFactory,
    EnrollmentKeyFactory,
    device_with_secret,
)
from ingest.models import Delivery, Event
from ingest.tests.factories import event_payload
from ingest.tests.helpers import ingest

pytestmark = pytest.mark.django_db

MODELS = [
    ("devices", Device),
    ("devices", EnrollmentKey),
    ("devices", DeviceAuthorization),
    ("ingest", Event),
    ("ingest", Delivery),
]


@pytest.fixture
def operator_client(client_for):
    return client_for(UserFactory(email="ops@clawtrace.example", is_staff=True, is_superuser=True))


@pytest.fixture
def rows(org, owner, device, device_client, device_client_for):
    event = event_payload()
    ingest(device_client, [event])
    ingest(device_client_for(device_with_secret(org)[1]), [event])  # a Delivery row
    EnrollmentKeyFactory(organization=org, created_by=owner)
    DeviceAuthorizationFactory()


@pytest.mark.parametrize(
    ("app", "model"), MODELS, ids=lambda value: getattr(value, "__name__", value)
)
def test_operator_lists_searches_and_opens_every_model(operator_client, rows, app, model):
    name = model._meta.model_name
    changelist = reverse(f"admin:{app}_{name}_changelist")
    assert operator_client.get(changelist).status_code == 200
    assert operator_client.get(changelist, {"q": "alpha"}).status_code == 200
    row = model._default_manager.order_by("pk").first()
    page = operator_client.get(reverse(f"admin:{app}_{name}_change", args=[row.pk]))
    assert page.status_code == 200
    for digest_field in ("secret_digest", "key_digest", "device_code_digest"):
        value = getattr(row, digest_field, None)
        if value:
            assert value not in page.content.decode()


def test_the_revoke_action_goes_through_the_service(operator_client, device):
    response = operator_client.post(
        reverse("admin:devices_device_changelist"),
        {"action": "revoke_devices", "_selected_action": [str(device.pk)]},
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.revoked_at is not None


def test_the_key_revoke_action(operator_client, org):
    key = EnrollmentKeyFactory(organization=org)
    operator_client.post(
        reverse("admin:devices_enrollmentkey_changelist"),
        {"action": "revoke_keys", "_selected_action": [str(key.pk)]},
    )
    key.refresh_from_db()
    assert key.revoked_at is not None
