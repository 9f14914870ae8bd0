"""Members and invitations are Team's: on Free and Pro the invitation service refuses, saying
which plan allows it and where to upgrade, and the members page says so instead of offering
the form. With billing off every organization has Team's limits. The limits come from accounts'
registry, which billing fills (accounts itself knows no plan)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from accounts import limits
from accounts.limits import PlanLimitReachedError
from accounts.models import Invitation, Membership, Organization, PlanCode, Role
from accounts.services import invitation_accept, invitation_create
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BILLING_URL = "https://clawtrace.example/o/alpha-labs/billing/"
REFUSAL = (
    "Alpha Labs is on the {plan} plan, which has no other members. Members and invitations come "
    f"with the Team plan: upgrade at {BILLING_URL}."
)


@pytest.fixture(autouse=True)
def _billing_on(settings):
    settings.BILLING_ENABLED = True
    settings.SITE_URL = "https://clawtrace.example"


def _on_plan(org: Organization, code: str) -> Organization:
    Organization.objects.filter(pk=org.pk).update(plan=code)
    org.refresh_from_db()
    return org


def _invite(org, owner, email="new@example.com"):
    return invitation_create(
        organization=org,
        invited_by=owner,
        email=email,
        role=Role.MEMBER,
        site_url="http://testserver",
    )


@pytest.mark.parametrize(("plan", "name"), [(PlanCode.FREE, "Free"), (PlanCode.PRO, "Pro")])
def test_inviting_on_free_or_pro_is_refused_saying_team_allows_it(org, owner, plan, name):
    _on_plan(org, plan)

    with pytest.raises(PlanLimitReachedError) as refused:
        _invite(org, owner)

    assert refused.value.status_code == 403
    assert refused.value.code == "member_limit_reached"
    assert refused.value.message == REFUSAL.format(plan=name)
    assert not Invitation.all_orgs.exists() and mail.outbox == []


def test_inviting_on_team_sends_the_invitation(org, owner, django_capture_on_commit_callbacks):
    _on_plan(org, PlanCode.TEAM)
    with django_capture_on_commit_callbacks(execute=True):
        invitation, _token = _invite(org, owner)
    assert invitation.email == "new@example.com" and len(mail.outbox) == 1


def test_with_billing_off_a_free_organization_invites_as_team_does(org, owner, settings):
    settings.BILLING_ENABLED = False
    assert org.plan == PlanCode.FREE
    invitation, _token = _invite(org, owner)
    assert invitation.pk is not None


def test_an_invitation_sent_on_team_cannot_be_accepted_after_a_downgrade(org, owner):
    _on_plan(org, PlanCode.TEAM)
    _invitation, token = _invite(org, owner)
    invitee = UserFactory(email="new@example.com")
    _on_plan(org, PlanCode.FREE)

    with pytest.raises(PlanLimitReachedError) as refused:
        invitation_accept(token=token, user=invitee)

    assert refused.value.message == REFUSAL.format(plan="Free")
    assert Membership.all_orgs.filter(organization=org).count() == 1
    # Still open: upgrading again lets the invitee in with the same link.
    _on_plan(org, PlanCode.TEAM)
    assert invitation_accept(token=token, user=invitee).organization == org


def test_without_a_limits_provider_accounts_enforces_nothing(org, owner):
    """accounts on its own (no billing registered) has no plan to enforce."""
    registered = limits._provider
    limits.organization_limits_provider_reset()
    try:
        assert limits.organization_limits(organization=org) == limits.UNLIMITED
        invitation, _token = _invite(org, owner)
        assert invitation.pk is not None
    finally:
        limits.organization_limits_provider_register(registered)


# --- The members page ---------------------------------------------------------------------------


def test_the_members_page_on_free_shows_why_instead_of_the_invitation_button(org, owner_client):
    page = owner_client.get(reverse("accounts:member_list", args=[org.slug])).content.decode()

    assert "Invite someone" not in page
    assert "Members and invitations come with the Team plan" in page
    assert f'<a href="{BILLING_URL}"' in page


def test_the_members_page_on_team_offers_the_invitation(org, owner_client):
    _on_plan(org, PlanCode.TEAM)
    page = owner_client.get(reverse("accounts:member_list", args=[org.slug])).content.decode()
    assert "Invite someone" in page
    assert "Members and invitations come with" not in page


def test_a_plain_member_is_not_shown_the_plans_refusal(org, member, member_client):
    page = member_client.get(reverse("accounts:member_list", args=[org.slug])).content.decode()
    assert "Members and invitations come with" not in page


def test_the_invitation_page_on_free_shows_the_refusal_instead_of_the_form(org, owner_client):
    url = reverse("accounts:invitation_create", args=[org.slug])
    page = owner_client.get(url)
    assert page.status_code == 200
    assert "Members and invitations come with the Team plan" in page.content.decode()
    assert 'name="email"' not in page.content.decode()

    posted = owner_client.post(url, {"email": "new@example.com", "role": "member"})

    assert posted.status_code == 403
    assert "Members and invitations come with the Team plan" in posted.content.decode()
    assert not Invitation.all_orgs.exists()
