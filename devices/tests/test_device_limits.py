"""A plan's device count holds at both ways of linking a machine (an enrollment key, the
device flow's approval and its token poll): the refusal is a 403 `device_limit_reached` whose
message says which plan allows more and where to upgrade. Revoked devices do not count, and
with billing off every organization has the largest plan's count."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Organization, PlanCode
from devices.models import AuthorizationStatus, Device, DeviceAuthorization
from devices.services import can_link_device, device_revoke
from devices.tests.factories import DeviceFactory, enrollment_key_with_value

pytestmark = pytest.mark.django_db

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MACHINE = {"name": "second-laptop", "os": "Linux 6.8 x86_64", "agent_version": "0.9.1"}
BILLING_URL = "https://clawtrace.example/o/alpha-labs/billing/"


@pytest.fixture(autouse=True)
def _billing_on(settings):
    settings.BILLING_ENABLED = True
    settings.SITE_URL = "https://clawtrace.example"


def _on_plan(org: Organization, code: str) -> Organization:
    Organization.objects.filter(pk=org.pk).update(plan=code)
    org.refresh_from_db()
    return org


def _enroll(key: str, name: str = "second-laptop"):
    return APIClient().post(
        "/api/v1/devices/enroll", {"enroll_key": key, **MACHINE, "name": name}, format="json"
    )


def _linked(org: Organization) -> int:
    return Device.all_orgs.filter(organization=org, revoked_at__isnull=True).count()


def _start() -> dict:
    response = APIClient().post("/api/v1/device/code", MACHINE, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _poll(device_code: str):
    return APIClient().post(
        "/api/v1/device/token", {"grant_type": GRANT, "device_code": device_code}, format="json"
    )


def _approve(client, user_code: str, org: Organization):
    return client.post(
        reverse("devices:device_decide"),
        {"user_code": user_code, "decision": "approve", "organization": org.slug},
    )


# --- Enrollment keys ----------------------------------------------------------------------------


def test_a_free_organizations_second_device_is_refused_at_enrollment_naming_team_and_billing(
    org,
):
    _key, value = enrollment_key_with_value(org)
    assert _enroll(value, name="first-laptop").status_code == 201

    refused = _enroll(value)

    assert refused.status_code == 403
    body = refused.json()
    assert set(body) == {"error", "detail"}  # the flat shape; no field is at fault
    assert body["error"] == "device_limit_reached"
    assert body["detail"] == (
        "Alpha Labs is on the Free plan, which allows 1 linked device. The Team plan allows 3 "
        f"linked devices: upgrade at {BILLING_URL}. Revoking a device on the Devices page "
        "frees its place."
    )
    assert _linked(org) == 1


def test_a_refused_enrollment_does_not_count_as_a_use_of_the_key(org):
    key, value = enrollment_key_with_value(org)
    DeviceFactory(organization=org)

    assert _enroll(value).status_code == 403

    key.refresh_from_db()
    assert (key.uses, key.last_used_at) == (0, None)


def test_pro_allows_one_device_too_and_sends_to_team_for_more(org):
    _on_plan(org, PlanCode.PRO)
    DeviceFactory(organization=org)
    _key, value = enrollment_key_with_value(org)

    refused = _enroll(value)

    assert refused.status_code == 403
    assert "on the Pro plan, which allows 1 linked device" in refused.json()["detail"]
    assert "The Team plan allows 3 linked devices" in refused.json()["detail"]


def test_team_links_a_third_device_and_refuses_a_fourth(org):
    _on_plan(org, PlanCode.TEAM)
    DeviceFactory.create_batch(2, organization=org)
    _key, value = enrollment_key_with_value(org)

    assert _enroll(value, name="third").status_code == 201
    refused = _enroll(value, name="fourth")

    assert refused.status_code == 403
    # No plan allows more than Team: the message says what can be done instead.
    assert refused.json()["detail"] == (
        "Alpha Labs is on the Team plan, which allows 3 linked devices. Revoking a device on "
        "the Devices page frees its place."
    )
    assert _linked(org) == 3


def test_revoking_a_device_frees_its_place(org, owner):
    laptop = DeviceFactory(organization=org)
    _key, value = enrollment_key_with_value(org)
    assert _enroll(value).status_code == 403

    device_revoke(device=laptop, actor=owner)

    assert _enroll(value).status_code == 201
    assert _linked(org) == 1 and Device.all_orgs.filter(organization=org).count() == 2


def test_with_billing_off_every_organization_has_teams_three_devices(org, settings):
    settings.BILLING_ENABLED = False
    assert org.plan == PlanCode.FREE
    _key, value = enrollment_key_with_value(org)

    assert [_enroll(value, name=f"box-{n}").status_code for n in range(4)] == [201, 201, 201, 403]
    # Nothing to buy with billing off, so nowhere to send the owner.
    assert "upgrade" not in _enroll(value).json()["detail"]


def test_the_limit_is_each_organizations_own(org, other_org):
    DeviceFactory(organization=other_org)
    _key, value = enrollment_key_with_value(org)
    assert _enroll(value).status_code == 201


def test_can_link_device_says_whether_one_more_fits(org):
    assert can_link_device(org)
    DeviceFactory(organization=org)
    assert not can_link_device(org)
    _on_plan(org, PlanCode.TEAM)
    assert can_link_device(org)


# --- The device flow ----------------------------------------------------------------------------


def test_approving_a_free_organizations_second_device_is_refused_on_the_page(
    org, owner, client_for
):
    DeviceFactory(organization=org)
    grant = _start()

    page = _approve(client_for(owner), grant["user_code"], org)

    assert page.status_code == 403
    text = page.content.decode()
    assert "Alpha Labs is on the Free plan, which allows 1 linked device." in text
    assert "The Team plan allows 3 linked devices" in text
    assert f'<a href="{BILLING_URL}"' in text  # a link the owner can follow
    # Still waiting: nothing was decided, the machine keeps polling.
    assert DeviceAuthorization.objects.get().status == AuthorizationStatus.PENDING
    assert _poll(grant["device_code"]).json()["error"] == "authorization_pending"
    assert _linked(org) == 1


def test_two_codes_approved_into_the_last_place_link_one_device(org, owner, client_for):
    page = client_for(owner)
    first, second = _start(), _start()
    # Both approvals see the place free: nothing is linked until a machine polls.
    assert _approve(page, first["user_code"], org).status_code == 200
    assert _approve(page, second["user_code"], org).status_code == 200

    assert _poll(first["device_code"]).status_code == 200
    refused = _poll(second["device_code"])

    assert refused.status_code == 403
    assert refused.json()["error"] == "device_limit_reached"
    assert BILLING_URL in refused.json()["detail"]
    assert _linked(org) == 1


def test_a_refused_poll_links_once_a_device_was_revoked(org, owner, client_for):
    page = client_for(owner)
    grant = _start()
    assert _approve(page, grant["user_code"], org).status_code == 200
    laptop = DeviceFactory(organization=org)  # (linked meanwhile, by a key)
    assert _poll(grant["device_code"]).status_code == 403

    device_revoke(device=laptop, actor=owner)

    answer = _poll(grant["device_code"])
    assert answer.status_code == 200, answer.content
    assert answer.json()["name"] == "second-laptop"


def test_team_approves_a_third_device_and_refuses_a_fourth(org, owner, client_for):
    _on_plan(org, PlanCode.TEAM)
    DeviceFactory.create_batch(2, organization=org)
    page = client_for(owner)
    third, fourth = _start(), _start()

    assert _approve(page, third["user_code"], org).status_code == 200
    assert _poll(third["device_code"]).status_code == 200
    refused = _approve(page, fourth["user_code"], org)

    assert refused.status_code == 403
    assert "on the Team plan, which allows 3 linked devices" in refused.content.decode()
    assert _linked(org) == 3


# --- The Devices page ---------------------------------------------------------------------------


def test_the_devices_page_says_when_the_plans_count_is_reached(org, owner_client):
    url = reverse("devices:device_list", args=[org.slug])
    assert b'id="device-limit"' not in owner_client.get(url).content

    DeviceFactory(organization=org)

    text = owner_client.get(url).content.decode()
    assert "Alpha Labs is on the Free plan, which allows 1 linked device." in text
    assert f'<a href="{BILLING_URL}"' in text
