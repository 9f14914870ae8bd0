"""The device authorization grant (RFC 8628) end to end: the agent's two calls, and the
member's `/device/` page in between."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from devices.models import AuthorizationStatus, Device, DeviceAuthorization

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MACHINE = {"name": "laptop", "os": "Linux 6.1 x86_64", "agent_version": "0.9.0"}


def _start(client: APIClient | None = None) -> dict:
    response = (client or APIClient()).post("/api/v1/device/code", MACHINE, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _poll(device_code: str):
    return APIClient().post(
        "/api/v1/device/token", {"grant_type": GRANT, "device_code": device_code}, format="json"
    )


def _look_up(client, user_code: str):
    return client.post(reverse("devices:device_verify"), {"user_code": user_code})


def _decide(client, user_code: str, decision: str, organization_slug: str = ""):
    return client.post(
        reverse("devices:device_decide"),
        {"user_code": user_code, "decision": decision, "organization": organization_slug},
    )


def _offered(page: str) -> list[str]:
    return re.findall(r'<option value="([^"]+)"', page)


@pytest.mark.django_db
def test_device_code_answers_the_contracts_fields():
    grant = _start()
    assert set(grant) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert grant["expires_in"] == 900 and grant["interval"] == 5
    assert len(grant["user_code"]) == 8 and set(grant["user_code"]) <= set("BCDFGHJKLMNPQRSTVWXZ")
    assert grant["verification_uri"] == "http://testserver/device/"
    assert grant["verification_uri_complete"] == (
        f"http://testserver/device/?user_code={grant['user_code']}"
    )
    stored = DeviceAuthorization.objects.get()
    assert grant["device_code"] not in stored.device_code_digest  # only the digest is kept
    assert len(stored.device_code_digest) == 64


def test_a_member_approves_and_the_agent_gets_a_device_secret_once(org, owner, client_for):
    grant = _start()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert _poll(grant["device_code"]).json()["error"] == "authorization_pending"

        page = client_for(owner)
        prefilled = page.get(reverse("devices:device_verify"), {"user_code": grant["user_code"]})
        assert grant["user_code"] in prefilled.content.decode()
        confirm = _look_up(page, grant["user_code"][:4].lower() + "-" + grant["user_code"][4:])
        assert confirm.status_code == 200
        text = confirm.content.decode()
        assert "laptop" in text and "Linux 6.1 x86_64" in text and "0.9.0" in text
        assert org.name in text
        done = _decide(page, grant["user_code"], "approve", org.slug)
        assert done.status_code == 200 and "Approved" in done.content.decode()

        clock.shift(5)
        response = _poll(grant["device_code"])
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["device_secret"].startswith("ctd_") and len(body["device_secret"]) == 56
        assert body["organization"] == {"slug": org.slug, "name": org.name}
        assert body["name"] == "laptop"
        device = Device.all_orgs.get(pk=body["device_id"])
        assert device.organization == org and device.created_by == owner
        assert device.os == "Linux 6.1 x86_64" and device.agent_version == "0.9.0"
        assert body["device_secret"] not in device.secret_digest

        clock.shift(5)
        again = _poll(grant["device_code"])
        assert again.status_code == 400 and again.json()["error"] == "expired_token"
    assert Device.all_orgs.count() == 1


def test_polling_faster_than_the_interval_is_slow_down_and_the_interval_grows(db):
    grant = _start()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert _poll(grant["device_code"]).json()["error"] == "authorization_pending"
        clock.shift(1)
        response = _poll(grant["device_code"])
        assert response.status_code == 400 and response.json()["error"] == "slow_down"
        assert response.json()["detail"]
        clock.shift(5)  # the old interval is no longer enough after a slow_down
        assert _poll(grant["device_code"]).json()["error"] == "slow_down"
        clock.shift(15)
        assert _poll(grant["device_code"]).json()["error"] == "authorization_pending"


def test_a_denied_request_is_access_denied(org, owner, client_for):
    grant = _start()
    done = _decide(client_for(owner), grant["user_code"], "deny")
    assert done.status_code == 200 and "Denied" in done.content.decode()
    response = _poll(grant["device_code"])
    assert response.status_code == 400 and response.json()["error"] == "access_denied"
    assert not Device.all_orgs.exists()


def test_codes_expire_after_fifteen_minutes(org, owner, client_for):
    grant = _start()
    with time_machine.travel(timezone.now() + timedelta(minutes=15, seconds=1)):
        assert _poll(grant["device_code"]).json()["error"] == "expired_token"
        page = _look_up(client_for(owner), grant["user_code"])
        assert page.status_code == 404 and "not valid" in page.content.decode()
        assert (
            _decide(client_for(owner), grant["user_code"], "approve", org.slug).status_code == 404
        )
    assert DeviceAuthorization.objects.get().status == AuthorizationStatus.PENDING


def test_a_user_code_is_single_use(org, owner, client_for):
    grant = _start()
    page = client_for(owner)
    assert _decide(page, grant["user_code"], "approve", org.slug).status_code == 200
    assert _decide(page, grant["user_code"], "deny").status_code == 404
    assert _look_up(page, grant["user_code"]).status_code == 404
    assert DeviceAuthorization.objects.get().status == AuthorizationStatus.APPROVED


def test_the_member_picks_the_organization(org, owner, client_for):
    second = OrganizationFactory(name="Second Team", slug="second-team")
    MembershipFactory(organization=second, user=owner, role=Role.ADMIN)
    grant = _start()
    page = client_for(owner)
    confirm = _look_up(page, grant["user_code"]).content.decode()
    assert sorted(_offered(confirm)) == sorted([org.slug, second.slug])
    _decide(page, grant["user_code"], "approve", second.slug)
    body = _poll(grant["device_code"]).json()
    assert body["organization"]["slug"] == second.slug
    assert Device.all_orgs.get().organization == second


def test_a_plain_member_cannot_approve(org, member, client_for):
    grant = _start()
    page = client_for(member)
    # The member's personal workspace is the only place they could link it to: here they
    # have none, so the page says who can.
    response = page.get(reverse("devices:device_verify"))
    assert response.status_code == 403
    assert "owners and admins" in response.content.decode()
    assert _look_up(page, grant["user_code"]).status_code == 403
    assert _decide(page, grant["user_code"], "approve", org.slug).status_code == 403
    assert DeviceAuthorization.objects.get().status == AuthorizationStatus.PENDING


def test_an_organization_not_offered_is_refused(org, owner, member, client_for, other_org):
    """Offered: the organizations the member owns or administers; never one where they are a
    plain member, nor one they do not belong to."""
    member_only = OrganizationFactory(name="Member Only Co", slug="member-only")
    MembershipFactory(organization=member_only, user=owner, role=Role.MEMBER)
    grant = _start()
    page = client_for(owner)
    confirm = _look_up(page, grant["user_code"]).content.decode()
    assert _offered(confirm) == [org.slug]
    for slug in (member_only.slug, other_org.slug, "no-such-org"):
        response = _decide(page, grant["user_code"], "approve", slug)
        assert response.status_code == 400
        assert "Choose one of the organizations" in response.content.decode()
    assert DeviceAuthorization.objects.get().status == AuthorizationStatus.PENDING
    assert _poll(grant["device_code"]).json()["error"] == "authorization_pending"


def test_the_page_needs_a_signed_in_user_and_keeps_the_code_through_login(db, client):
    response = client.get(reverse("devices:device_verify"), {"user_code": "WDJBMJHT"})
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    assert "user_code%3DWDJBMJHT" in response["Location"]


def test_guessing_user_codes_is_rate_limited(org, owner, client_for):
    page = client_for(owner)
    statuses = [_look_up(page, "BBBB-BBBB").status_code for _ in range(12)]
    assert statuses[:10] == [404] * 10
    assert statuses[10:] == [429, 429]
    assert int(_look_up(page, "BBBB-BBBB")["Retry-After"]) >= 1


def test_a_malformed_code_is_refused_without_a_lookup(org, owner, client_for):
    response = _look_up(client_for(owner), "AAAA-AAAA")  # vowels are not in the alphabet
    assert response.status_code == 400
    assert "eight letters" in response.content.decode()


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"grant_type": "password", "device_code": "x" * 43}, "invalid_value", "grant_type"),
        ({"grant_type": GRANT}, "invalid_value", "device_code"),
        ({"grant_type": GRANT, "device_code": "x" * 43, "scope": "all"}, "unknown_field", "scope"),
    ],
)
def test_the_token_endpoint_refuses_malformed_requests(db, body, code, field):
    response = APIClient().post("/api/v1/device/token", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == code and response.json()["field"] == field


def test_an_unknown_device_code_is_invalid_grant(db):
    response = _poll("y" * 43)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_device_code_refuses_unknown_and_text_like_keys(db):
    response = APIClient().post(
        "/api/v1/device/code", {**MACHINE, "prompt": "hello"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "forbidden_field",
        "detail": response.json()["detail"],
        "field": "prompt",
    }


def test_a_fresh_users_personal_workspace_is_offered(db, client_for):
    user = UserFactory(email="solo@example.com")
    personal = OrganizationFactory(name="solo's workspace", slug="solo")
    MembershipFactory(organization=personal, user=user, role=Role.OWNER)
    grant = _start()
    confirm = _look_up(client_for(user), grant["user_code"])
    assert confirm.status_code == 200 and "solo&#x27;s workspace" in confirm.content.decode()
