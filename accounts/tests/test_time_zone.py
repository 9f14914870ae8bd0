"""The organization's time zone: UTC by default, any zone zoneinfo knows, set by owners and
admins on the settings page."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Organization, time_zone_validate
from accounts.services import organization_time_zone_update
from clawtrace_site.exceptions import ApplicationError

pytestmark = pytest.mark.django_db


def test_an_organization_starts_in_utc(org):
    assert Organization.objects.get(pk=org.pk).time_zone == "UTC"


@pytest.mark.parametrize(
    "bad", ["", "Mars/Olympus", "../../etc/passwd", "utc ", "Asia/Kolkata\x00"]
)
def test_only_real_zone_names_are_accepted(bad, org, owner):
    with pytest.raises(ValidationError):
        time_zone_validate(bad)
    if bad.strip() != "utc":
        with pytest.raises(ApplicationError) as caught:
            organization_time_zone_update(organization=org, actor=owner, time_zone=bad)
        assert "time_zone" in caught.value.extra["fields"]


def test_owners_set_it_on_the_settings_page(owner_client, org):
    page = owner_client.get(f"/o/{org.slug}/settings/").content.decode()
    assert 'name="time_zone"' in page and "Asia/Kathmandu" in page
    response = owner_client.post(
        f"/o/{org.slug}/settings/time-zone/", {"time_zone": "Asia/Kathmandu"}
    )
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.time_zone == "Asia/Kathmandu"
    bad = owner_client.post(f"/o/{org.slug}/settings/time-zone/", {"time_zone": "Nowhere/Land"})
    assert bad.status_code == 400
    assert owner_client.get(f"/o/{org.slug}/settings/time-zone/").status_code == 405


def test_a_member_sees_it_and_cannot_change_it(member_client, org):
    page = member_client.get(f"/o/{org.slug}/settings/").content.decode()
    assert "UTC" in page and 'name="time_zone"' not in page
    response = member_client.post(
        f"/o/{org.slug}/settings/time-zone/", {"time_zone": "Europe/Paris"}
    )
    assert response.status_code == 403
    org.refresh_from_db()
    assert org.time_zone == "UTC"
