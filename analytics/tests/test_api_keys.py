"""Organization API keys: made by owners and admins on the settings page, shown once, stored
as digests, revocable; and `CLAWTRACE_INIT_API_KEY` in the headless set-up."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import Organization, Role
from accounts.tests.factories import MembershipFactory, UserFactory
from analytics.models import OrganizationApiKey
from analytics.selectors import api_key_get_by_value
from analytics.services import api_key_create, api_key_revoke
from analytics.tests.factories import api_key_with_value
from clawtrace_site.exceptions import ApplicationError, NotAllowedError
from clawtrace_site.tokens import hash_secret

pytestmark = pytest.mark.django_db


def test_a_key_is_shown_once_and_stored_as_a_digest(org, owner):
    api_key, value = api_key_create(organization=org, actor=owner, name="  menu   bar ")
    assert value.startswith("cto_") and len(value) > 50
    assert api_key.name == "menu bar"
    assert api_key.key_digest == hash_secret(value)
    assert value not in str(list(OrganizationApiKey.all_orgs.values_list()))
    assert api_key.display_prefix == value[:12]
    assert api_key_get_by_value(value=value) == api_key
    assert api_key_get_by_value(value=value[:-1] + "x") is None
    assert api_key_get_by_value(value="ctd_" + value[4:]) is None


def test_only_owners_and_admins_make_and_revoke_keys(org, member):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    api_key, _value = api_key_create(organization=org, actor=admin, name="ci")
    with pytest.raises(NotAllowedError):
        api_key_create(organization=org, actor=member, name="mine")
    with pytest.raises(NotAllowedError):
        api_key_revoke(api_key=api_key, actor=member)
    with pytest.raises(ApplicationError):
        api_key_create(organization=org, actor=admin, name="   ")
    api_key_revoke(api_key=api_key, actor=admin)
    revoked_at = api_key.revoked_at
    api_key_revoke(api_key=api_key, actor=admin)
    api_key.refresh_from_db()
    assert api_key.revoked_at == revoked_at  # one-way, and once


def test_the_settings_page_creates_a_key_shown_once(owner_client, org):
    page = owner_client.get(f"/o/{org.slug}/settings/api-keys/")
    assert page.status_code == 200
    created = owner_client.post(f"/o/{org.slug}/settings/api-keys/new/", {"name": "export"})
    assert created.status_code == 201
    assert created["Cache-Control"] == "no-store"
    (api_key,) = OrganizationApiKey.all_orgs.filter(organization=org)
    html = created.content.decode()
    value = html.split('<code class="secret">')[1].split("</code>")[0]
    assert api_key.key_digest == hash_secret(value)
    again = owner_client.get(f"/o/{org.slug}/settings/api-keys/").content.decode()
    assert value not in again and api_key.display_prefix in again
    # The settings page links to it.
    assert (
        f"/o/{org.slug}/settings/api-keys/"
        in owner_client.get(f"/o/{org.slug}/settings/").content.decode()
    )
    # And the key works.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {value}")
    assert client.get("/api/v1/usage").status_code == 200


def test_the_settings_page_revokes_and_refuses_members_and_other_organizations(
    owner_client, member_client, org, other_org
):
    api_key, _value = api_key_with_value(org)
    theirs, _ = api_key_with_value(other_org)
    assert (
        member_client.post(f"/o/{org.slug}/settings/api-keys/new/", {"name": "x"}).status_code
        == 403
    )
    assert (
        member_client.post(f"/o/{org.slug}/settings/api-keys/{api_key.pk}/revoke/").status_code
        == 403
    )
    page = member_client.get(f"/o/{org.slug}/settings/api-keys/").content.decode()
    assert api_key.display_prefix not in page  # members do not see the keys
    assert (
        owner_client.post(f"/o/{org.slug}/settings/api-keys/{theirs.pk}/revoke/").status_code == 404
    )
    assert owner_client.post(f"/o/{other_org.slug}/settings/api-keys/").status_code == 404
    response = owner_client.post(f"/o/{org.slug}/settings/api-keys/{api_key.pk}/revoke/")
    assert response.status_code == 302
    api_key.refresh_from_db()
    theirs.refresh_from_db()
    assert api_key.revoked_at is not None and theirs.revoked_at is None
    assert (
        owner_client.post(f"/o/{org.slug}/settings/api-keys/new/", {"name": ""}).status_code == 400
    )


INIT_KEY = "cto_" + "init" * 12 + "k3y"
ENV = {
    "CLAWTRACE_INIT_USER_EMAIL": "ops@example.com",
    "CLAWTRACE_INIT_USER_PASSWORD": "a long and unusual passphrase 42",
    "CLAWTRACE_INIT_ORG_NAME": "Acme Robotics",
    "CLAWTRACE_INIT_ORG_SLUG": "acme",
    "CLAWTRACE_INIT_API_KEY": INIT_KEY,
}


def _init(monkeypatch, **env) -> str:
    for name, value in {**ENV, **env}.items():
        monkeypatch.setenv(name, value)
    out = StringIO()
    call_command("init_from_env", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_init_from_env_creates_an_api_key_of_the_given_value_once(monkeypatch):
    output = _init(monkeypatch)
    assert "organization API key cto_initinit…" in output
    assert INIT_KEY not in output
    organization = Organization.objects.get(slug="acme")
    (api_key,) = OrganizationApiKey.all_orgs.all()
    assert api_key.organization == organization
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {INIT_KEY}")
    assert client.get("/api/v1/usage").status_code == 200
    _init(monkeypatch)
    assert OrganizationApiKey.all_orgs.count() == 1


@pytest.mark.parametrize("bad", ["ctd_" + "x" * 40, "cto_short", "cto_" + "x" * 30 + " y"])
def test_init_from_env_refuses_an_api_key_that_is_not_one(monkeypatch, bad):
    with pytest.raises(CommandError, match="CLAWTRACE_INIT_API_KEY"):
        _init(monkeypatch, CLAWTRACE_INIT_API_KEY=bad)
    assert not Organization.objects.exists()


def test_init_from_env_refuses_another_organizations_api_key(monkeypatch, other_org):
    api_key_with_value(other_org)
    existing = OrganizationApiKey.all_orgs.get()
    existing.key_digest = hash_secret(INIT_KEY)
    existing.save()
    with pytest.raises(CommandError, match="another organization"):
        _init(monkeypatch)
