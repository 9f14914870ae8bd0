"""Each organization's Devices page: devices with their last sync and event count; renaming
and revoking, and enrollment keys, for owners and admins only."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from devices.models import Device, EnrollmentKey
from devices.tests.factories import DeviceFactory, EnrollmentKeyFactory
from ingest.tests.factories import event_payload
from ingest.tests.helpers import ingest

pytestmark = pytest.mark.django_db


def _page(client, org):
    return client.get(reverse("devices:device_list", args=[org.slug]))


def test_the_page_lists_devices_with_last_sync_event_count_and_agent(
    org, member_client, device_client, device
):
    for size in (1000, 234):
        assert ingest(device_client, [event_payload() for _ in range(size)]).status_code == 200
    DeviceFactory(organization=org, name="old-box", agent_version="0.0.9")
    response = _page(member_client, org)
    assert response.status_code == 200
    text = response.content.decode()
    assert "alpha-laptop" in text and "old-box" in text
    assert "1,234" in text and "0.0.9" in text
    assert "never" in text  # old-box never synced
    assert "Rename" not in text and "Enrollment keys" not in text  # a member only looks


def test_an_admin_renames_and_revokes(org, owner_client, device):
    rename = owner_client.post(
        reverse("devices:device_rename", args=[org.slug, device.pk]), {"name": "  new name "}
    )
    assert rename.status_code == 302
    revoke = owner_client.post(reverse("devices:device_revoke", args=[org.slug, device.pk]))
    assert revoke.status_code == 302
    device.refresh_from_db()
    assert device.name == "new name" and device.revoked_at is not None
    assert "Revoked" in _page(owner_client, org).content.decode()


def test_a_member_cannot_rename_revoke_or_make_keys(org, member_client, device):
    key = EnrollmentKeyFactory(organization=org)
    for url, data in (
        (reverse("devices:device_rename", args=[org.slug, device.pk]), {"name": "x"}),
        (reverse("devices:device_revoke", args=[org.slug, device.pk]), {}),
        (reverse("devices:enrollment_key_create", args=[org.slug]), {"name": "k"}),
        (reverse("devices:enrollment_key_revoke", args=[org.slug, key.pk]), {}),
    ):
        assert member_client.post(url, data).status_code == 403, url
    device.refresh_from_db()
    key.refresh_from_db()
    assert device.name == "alpha-laptop" and device.revoked_at is None
    assert key.revoked_at is None
    assert EnrollmentKey.all_orgs.count() == 1


def test_a_blank_name_is_refused(org, owner_client, device):
    response = owner_client.post(
        reverse("devices:device_rename", args=[org.slug, device.pk]), {"name": "   "}
    )
    assert response.status_code == 400
    device.refresh_from_db()
    assert device.name == "alpha-laptop"


def test_a_key_is_shown_once_then_only_its_prefix(org, owner_client):
    response = owner_client.post(
        reverse("devices:enrollment_key_create", args=[org.slug]),
        {"name": "CI runners", "expires_at": "2099-01-01T00:00"},
    )
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    [value] = re.findall(r"cte_[a-z2-7]{52}", response.content.decode())
    key = EnrollmentKey.all_orgs.get()
    assert key.name == "CI runners" and key.expires_at.year == 2099
    later = _page(owner_client, org).content.decode()
    assert value not in later and key.display_prefix in later


def test_a_key_with_an_expiry_in_the_past_is_refused(org, owner_client):
    response = owner_client.post(
        reverse("devices:enrollment_key_create", args=[org.slug]),
        {"name": "late", "expires_at": "2001-01-01T00:00"},
    )
    assert response.status_code == 400
    assert not EnrollmentKey.all_orgs.exists()


def test_an_admin_revokes_a_key(org, owner_client):
    key = EnrollmentKeyFactory(organization=org)
    response = owner_client.post(reverse("devices:enrollment_key_revoke", args=[org.slug, key.pk]))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_another_organizations_device_is_404(org, owner_client, other_org):
    theirs = DeviceFactory(organization=other_org, name="bravo-secret-box")
    key = EnrollmentKeyFactory(organization=other_org)
    for url in (
        reverse("devices:device_rename", args=[org.slug, theirs.pk]),
        reverse("devices:device_revoke", args=[org.slug, theirs.pk]),
        reverse("devices:enrollment_key_revoke", args=[org.slug, key.pk]),
    ):
        assert owner_client.post(url, {"name": "mine"}).status_code == 404
    assert _page(owner_client, other_org).status_code == 404
    assert "bravo-secret-box" not in _page(owner_client, org).content.decode()
    theirs.refresh_from_db()
    assert theirs.name == "bravo-secret-box" and theirs.revoked_at is None


def test_the_organization_nav_links_the_devices_page(org, owner_client):
    home = owner_client.get(reverse("accounts:org_home", args=[org.slug])).content.decode()
    assert reverse("devices:device_list", args=[org.slug]) in home


def test_devices_are_listed_linked_first(org, owner_client):
    DeviceFactory(organization=org, name="a-revoked", revoked_at="2026-01-01T00:00Z")
    DeviceFactory(organization=org, name="b-linked")
    text = _page(owner_client, org).content.decode()
    assert text.index("b-linked") < text.index("a-revoked")
    assert Device.all_orgs.count() == 2
