import pytest
from django.utils import timezone

from devices.tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db


def test_an_organization_without_devices_is_told_how_to_link_one(owner_client, org):
    page = owner_client.get(f"/o/{org.slug}/").content.decode()

    assert "No devices are sending usage" in page
    assert "clawtrace login --server http://testserver" in page


def test_an_organization_with_devices_sees_how_many_and_their_last_sync(owner_client, org):
    DeviceFactory(organization=org, last_sync_at=timezone.now())
    DeviceFactory(organization=org)
    DeviceFactory(organization=org, revoked_at=timezone.now())

    page = owner_client.get(f"/o/{org.slug}/").content.decode()

    assert "No devices are sending usage" not in page
    assert "<strong>2</strong> devices linked, last sync" in page
    assert f"/o/{org.slug}/usage/" in page
