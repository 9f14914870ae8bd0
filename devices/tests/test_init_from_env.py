"""`manage.py init_from_env`: a self-hosted server set up from CLAWTRACE_INIT_* variables."""

from __future__ import annotations

from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import Membership, Organization, Role, User
from devices.models import EnrollmentKey

pytestmark = pytest.mark.django_db

KEY = "cte_" + "k3y" * 12
ENV = {
    "CLAWTRACE_INIT_USER_EMAIL": "Ops@Example.com",
    "CLAWTRACE_INIT_USER_PASSWORD": "a long and unusual passphrase 42",
    "CLAWTRACE_INIT_ORG_NAME": "Acme Robotics",
    "CLAWTRACE_INIT_ORG_SLUG": "acme",
    "CLAWTRACE_INIT_ENROLL_KEY": KEY,
}


def _run(monkeypatch, **env) -> str:
    for name, value in {**ENV, **env}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    out = StringIO()
    call_command("init_from_env", stdout=out, stderr=StringIO())
    return out.getvalue()


def _state() -> list:
    return [
        sorted(User.objects.values_list("id", "email", "password")),
        sorted(EmailAddress.objects.values_list("id", "email", "verified", "primary")),
        sorted(Organization.objects.values_list("id", "slug", "name")),
        sorted(Membership.all_orgs.values_list("id", "organization_id", "user_id", "role")),
        sorted(EnrollmentKey.all_orgs.values_list("id", "key_digest", "uses", "revoked_at")),
    ]


def test_it_creates_a_verified_owner_an_organization_and_the_key(monkeypatch):
    _run(monkeypatch)
    user = User.objects.get(email="ops@example.com")
    assert user.check_password(ENV["CLAWTRACE_INIT_USER_PASSWORD"])
    address = EmailAddress.objects.get(user=user)
    assert address.verified and address.primary
    organization = Organization.objects.get(slug="acme")
    assert organization.name == "Acme Robotics"
    assert Membership.all_orgs.get(organization=organization, user=user).role == Role.OWNER
    # The key works as given.
    response = APIClient().post(
        "/api/v1/devices/enroll",
        {"enroll_key": KEY, "name": "server-1", "os": "Linux", "agent_version": "0.1.0"},
        format="json",
    )
    assert response.status_code == 201 and response.json()["organization"]["slug"] == "acme"


def test_running_it_twice_changes_nothing(monkeypatch):
    _run(monkeypatch)
    before = _state()
    output = _run(monkeypatch, CLAWTRACE_INIT_USER_PASSWORD="another passphrase entirely 7")
    assert _state() == before
    assert "created" not in output


def test_nothing_set_does_nothing(monkeypatch):
    unset = dict.fromkeys(ENV)
    assert _run(monkeypatch, **unset) == ""
    assert not User.objects.exists()


def test_a_key_without_the_prefix_is_refused_with_a_clear_message(monkeypatch):
    with pytest.raises(CommandError, match="must start with cte_"):
        _run(monkeypatch, CLAWTRACE_INIT_ENROLL_KEY="my-secret-key-for-the-fleet-000")
    assert not User.objects.exists()


def test_a_short_key_is_refused(monkeypatch):
    with pytest.raises(CommandError, match="28 to 128"):
        _run(monkeypatch, CLAWTRACE_INIT_ENROLL_KEY="cte_short")
    assert not User.objects.exists() and not EnrollmentKey.all_orgs.exists()


def test_partial_settings_name_what_is_missing(monkeypatch):
    with pytest.raises(CommandError, match="CLAWTRACE_INIT_ORG_SLUG"):
        _run(monkeypatch, CLAWTRACE_INIT_ORG_SLUG=None)


def test_a_weak_password_is_refused(monkeypatch):
    with pytest.raises(CommandError, match="too weak"):
        _run(monkeypatch, CLAWTRACE_INIT_USER_PASSWORD="password")


def test_the_key_is_optional(monkeypatch):
    _run(monkeypatch, CLAWTRACE_INIT_ENROLL_KEY=None)
    assert Organization.objects.filter(slug="acme").exists()
    assert not EnrollmentKey.all_orgs.exists()
