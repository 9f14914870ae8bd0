"""A device of organization A can never write into or read from organization B."""

from __future__ import annotations

import pytest

from accounts.tenancy import organization_scope
from devices.tests.factories import device_with_secret
from ingest.models import Event
from ingest.tests.factories import event_payload
from ingest.tests.helpers import ingest, totals

pytestmark = pytest.mark.django_db


def test_the_same_event_id_in_two_organizations_is_two_events(org, other_org, device_client_for):
    _a, secret_a = device_with_secret(org)
    _b, secret_b = device_with_secret(other_org)
    shared = event_payload(output_tokens=5)
    assert ingest(device_client_for(secret_b), [shared]).json()["accepted"] == 1
    # A's copy is fuller: in B it would replace B's row; it must not touch B at all.
    fuller = {**shared, "output_tokens": 99_999}
    assert ingest(device_client_for(secret_a), [fuller]).json() == {
        "accepted": 1,
        "duplicates": 0,
        "updated": 0,
        "retracted": 0,
    }
    with organization_scope(other_org):
        assert Event.objects.get().output_tokens == 5
    with organization_scope(org):
        assert Event.objects.get().output_tokens == 99_999


def test_a_device_cannot_retract_another_organizations_event(org, other_org, device_client_for):
    _a, secret_a = device_with_secret(org)
    _b, secret_b = device_with_secret(other_org)
    theirs = event_payload()
    ingest(device_client_for(secret_b), [theirs])
    response = ingest(device_client_for(secret_a), [], retract=[theirs["event_id"]])
    assert response.json()["retracted"] == 0
    with organization_scope(other_org):
        assert Event.objects.count() == 1


def test_stats_never_include_another_organizations_events(org, other_org, device_client_for):
    _a, secret_a = device_with_secret(org)
    _b, secret_b = device_with_secret(other_org)
    ingest(device_client_for(secret_b), [event_payload(input_tokens=777) for _ in range(3)])
    client_a = device_client_for(secret_a)
    assert totals(client_a)["turns"] == 0
    assert totals(client_a, "organization")["turns"] == 0
    assert totals(device_client_for(secret_b), "organization")["turns"] == 3


def test_the_organization_comes_from_the_secret_not_the_request(org, other_org, device_client_for):
    _a, secret_a = device_with_secret(org)
    client = device_client_for(secret_a)
    for query in ({"organization": other_org.slug}, {"organization_id": other_org.pk}):
        response = client.get("/api/v1/stats", {"scope": "organization", **query})
        assert response.status_code == 200
        assert response.json()["device"]["organization"] == org.slug
    ingest(client, [event_payload()])
    with organization_scope(other_org):
        assert not Event.objects.exists()
