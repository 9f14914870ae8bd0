from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Organization, Role, User
from accounts.resolvers import SESSION_KEY_CURRENT_ORGANIZATION
from accounts.services import invitation_create
from accounts.tenancy import organization_scope
from accounts.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _role_of(organization: Organization, user: User) -> str | None:
    with organization_scope(organization):
        membership = Membership.objects.filter(user=user).first()
    return membership.role if membership else None


def _membership_id(organization: Organization, user: User) -> int:
    with organization_scope(organization):
        return Membership.objects.get(user=user).pk


# --- Signed-in entry and switching ---------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_login_from_org_pages(org):
    response = Client().get(reverse("accounts:org_home", args=[org.slug]))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_app_entry_redirects_to_the_current_organization(owner_client, org):
    response = owner_client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url == reverse("accounts:org_home", args=[org.slug])


def test_app_entry_without_any_organization_offers_to_create_one(client_for):
    response = client_for(UserFactory()).get(reverse("home"))
    assert response.url == reverse("accounts:org_create")


def test_org_home_shows_the_org_and_the_users_organizations(owner_client, org, owner, other_org):
    MembershipFactory(organization=other_org, user=owner)
    response = owner_client.get(reverse("accounts:org_home", args=[org.slug]))
    assert response.status_code == 200
    assert response.context["current_organization"] == org
    assert {o.slug for o in response.context["user_organizations"]} == {org.slug, other_org.slug}
    assert b"Alpha Labs" in response.content


def test_switching_remembers_the_organization_for_the_next_visit(owner_client, owner, other_org):
    MembershipFactory(organization=other_org, user=owner)

    response = owner_client.post(reverse("accounts:org_switch"), {"organization": other_org.slug})

    assert response.url == reverse("accounts:org_home", args=[other_org.slug])
    assert owner_client.session[SESSION_KEY_CURRENT_ORGANIZATION] == other_org.slug
    assert owner_client.get(reverse("home")).url == reverse(
        "accounts:org_home", args=[other_org.slug]
    )


def test_visiting_an_org_url_switches_to_it(owner_client, owner, other_org):
    MembershipFactory(organization=other_org, user=owner)
    owner_client.get(reverse("accounts:org_home", args=[other_org.slug]))
    assert owner_client.session[SESSION_KEY_CURRENT_ORGANIZATION] == other_org.slug


def test_switching_to_an_org_you_are_not_in_is_a_404(owner_client, other_org):
    response = owner_client.post(reverse("accounts:org_switch"), {"organization": other_org.slug})
    assert response.status_code == 404
    assert owner_client.session.get(SESSION_KEY_CURRENT_ORGANIZATION) != other_org.slug


@pytest.mark.parametrize("body", [{}, {"organization": ""}, {"organization": "<script>"}])
def test_switching_with_a_malformed_body_is_a_400(owner_client, body):
    assert owner_client.post(reverse("accounts:org_switch"), body).status_code == 400


# --- Creating and renaming organizations ---------------------------------------------------------


def test_creating_an_organization_makes_you_its_owner(owner_client, owner):
    response = owner_client.post(reverse("accounts:org_create"), {"name": "Acme Robotics"})

    organization = Organization.objects.get(name="Acme Robotics")
    assert response.url == reverse("accounts:org_home", args=[organization.slug])
    assert _role_of(organization, owner) == Role.OWNER


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_creating_an_organization_with_a_bad_name_is_a_form_error(owner_client, owner, name):
    response = owner_client.post(reverse("accounts:org_create"), {"name": name})
    assert response.status_code == 400
    assert response.context["form"].errors["name"]


def test_organization_names_are_escaped(owner_client):
    owner_client.post(reverse("accounts:org_create"), {"name": "<script>alert(1)</script>"})
    organization = Organization.objects.get(name="<script>alert(1)</script>")
    response = owner_client.get(reverse("accounts:org_home", args=[organization.slug]))
    assert b"<script>alert(1)</script>" not in response.content
    assert b"&lt;script&gt;" in response.content


def test_owner_renames_the_organization(owner_client, org):
    response = owner_client.post(
        reverse("accounts:org_settings", args=[org.slug]), {"name": "Beta"}
    )
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.name == "Beta"


def test_member_cannot_rename_the_organization(member_client, org):
    response = member_client.post(
        reverse("accounts:org_settings", args=[org.slug]), {"name": "Mine now"}
    )
    assert response.status_code == 403
    org.refresh_from_db()
    assert org.name == "Alpha Labs"


# --- Members -------------------------------------------------------------------------------------


def test_member_list_shows_members_and_manage_controls_only_to_managers(
    owner_client, member_client, org, member
):
    as_owner = owner_client.get(reverse("accounts:member_list", args=[org.slug]))
    as_member = member_client.get(reverse("accounts:member_list", args=[org.slug]))

    assert b"member@alpha.example" in as_owner.content
    assert b"owner@alpha.example" in as_member.content
    assert b"Invite someone" in as_owner.content
    assert b"Invite someone" not in as_member.content
    assert b"Change role" not in as_member.content


def test_owner_changes_a_members_role(owner_client, org, member):
    url = reverse("accounts:member_role_change", args=[org.slug, _membership_id(org, member)])
    response = owner_client.post(url, {"role": Role.ADMIN})
    assert response.status_code == 302
    assert _role_of(org, member) == Role.ADMIN


@pytest.mark.parametrize("role", ["", "emperor", "OWNER"])
def test_role_change_with_a_bad_role_is_a_400_with_a_message(owner_client, org, member, role):
    url = reverse("accounts:member_role_change", args=[org.slug, _membership_id(org, member)])
    response = owner_client.post(url, {"role": role})
    assert response.status_code == 400
    assert b"Choose owner, admin or member" in response.content
    assert _role_of(org, member) == Role.MEMBER


def test_demoting_the_last_owner_is_refused_with_a_message(owner_client, org, owner):
    url = reverse("accounts:member_role_change", args=[org.slug, _membership_id(org, owner)])
    response = owner_client.post(url, {"role": Role.MEMBER})
    assert response.status_code == 409
    assert b"at least one owner" in response.content
    assert _role_of(org, owner) == Role.OWNER


def test_member_cannot_change_roles(member_client, org, owner, member):
    url = reverse("accounts:member_role_change", args=[org.slug, _membership_id(org, owner)])
    response = member_client.post(url, {"role": Role.MEMBER})
    assert response.status_code == 403
    assert _role_of(org, owner) == Role.OWNER


def test_owner_removes_a_member(owner_client, org, member):
    url = reverse("accounts:member_remove", args=[org.slug, _membership_id(org, member)])
    assert owner_client.post(url).status_code == 302
    assert _role_of(org, member) is None


def test_last_owner_cannot_leave(owner_client, org, owner):
    response = owner_client.post(reverse("accounts:org_leave", args=[org.slug]))
    assert response.status_code == 409
    assert b"last owner" in response.content
    assert _role_of(org, owner) == Role.OWNER


def test_member_leaves_and_loses_access(member_client, org, member):
    response = member_client.post(reverse("accounts:org_leave", args=[org.slug]))
    assert response.status_code == 302
    assert _role_of(org, member) is None
    assert member_client.get(reverse("accounts:org_home", args=[org.slug])).status_code == 404


def test_action_urls_refuse_get(owner_client, org, member):
    url = reverse("accounts:member_remove", args=[org.slug, _membership_id(org, member)])
    assert owner_client.get(url).status_code == 405
    assert _role_of(org, member) == Role.MEMBER


# --- Invitations ---------------------------------------------------------------------------------


def test_owner_invites_by_email(owner_client, org, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("accounts:invitation_create", args=[org.slug]),
            {"email": "teammate@example.com", "role": Role.MEMBER},
        )
    assert response.status_code == 302
    assert mailoutbox[0].to == ["teammate@example.com"]
    listing = owner_client.get(reverse("accounts:member_list", args=[org.slug]))
    assert b"teammate@example.com" in listing.content


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "not-an-email", "role": Role.MEMBER},
        {"email": "a@example.com", "role": "emperor"},
        {"email": "x" * 300 + "@example.com", "role": Role.MEMBER},
    ],
)
def test_invitation_form_answers_bad_input_with_form_errors(owner_client, org, body):
    response = owner_client.post(reverse("accounts:invitation_create", args=[org.slug]), body)
    assert response.status_code == 400
    assert response.context["form"].errors
    assert not Invitation.all_orgs.exists()


def test_inviting_an_existing_member_is_a_form_error(owner_client, org, member):
    response = owner_client.post(
        reverse("accounts:invitation_create", args=[org.slug]),
        {"email": "member@alpha.example", "role": Role.MEMBER},
    )
    assert response.status_code == 409
    assert "already a member" in str(response.context["form"].errors)


def test_admin_is_not_offered_the_owner_role_and_cannot_post_it(org, client_for):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    client = client_for(admin)
    url = reverse("accounts:invitation_create", args=[org.slug])

    assert b'value="owner"' not in client.get(url).content
    response = client.post(url, {"email": "boss@example.com", "role": Role.OWNER})
    assert response.status_code == 400
    assert not Invitation.all_orgs.exists()


def test_member_cannot_open_the_invitation_form(member_client, org):
    response = member_client.get(reverse("accounts:invitation_create", args=[org.slug]))
    assert response.status_code == 403


def test_owner_withdraws_an_invitation(owner_client, org, owner):
    invitation, _token = invitation_create(
        organization=org,
        invited_by=owner,
        email="x@example.com",
        role=Role.MEMBER,
        site_url="http://testserver",
    )
    url = reverse("accounts:invitation_revoke", args=[org.slug, invitation.pk])
    assert owner_client.post(url).status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


def _email_link(message) -> str:
    return re.search(r"https?://testserver(/\S+)", message.body).group(1)


def test_new_user_joins_through_an_invitation_link_via_signup(
    org, owner, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(
            organization=org,
            invited_by=owner,
            email="teammate@example.com",
            role=Role.MEMBER,
            site_url="http://testserver",
        )
    invitation_path = _email_link(mailoutbox[-1])
    browser = Client()

    # An anonymous visitor is sent to signup with the email prefilled and a way back.
    response = browser.get(invitation_path)
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_signup"))
    signup_page = browser.get(response.url)
    assert signup_page.context["form"]["email"].value() == "teammate@example.com"

    response = browser.post(
        response.url,
        {
            "email": "teammate@example.com",
            "password1": "a-long unusual passphrase 42",
            "password2": "a-long unusual passphrase 42",
        },
    )
    assert response.status_code == 302
    teammate = User.objects.get(email="teammate@example.com")
    assert [o.is_personal for o in Organization.objects.filter(memberships__user=teammate)] == [
        True
    ]

    # Confirm the address through the link allauth emailed, which logs the user in.
    confirm_path = _email_link(mailoutbox[-1])
    browser.post(confirm_path)
    response = browser.get(reverse("home"), follow=True)
    assert response.request["PATH_INFO"] == invitation_path
    assert b"Alpha Labs" in response.content

    response = browser.post(invitation_path)
    assert response.url == reverse("accounts:org_home", args=[org.slug])
    assert _role_of(org, teammate) == Role.MEMBER
    page = browser.get(response.url)
    listed = [o.slug for o in page.context["user_organizations"]]
    assert org.slug in listed
    assert len(listed) == 2  # Alpha Labs and the teammate's own personal workspace


def test_invitation_link_for_someone_else_is_a_404_that_names_no_org(org, owner, client_for):
    _, token = invitation_create(
        organization=org,
        invited_by=owner,
        email="teammate@example.com",
        role=Role.MEMBER,
        site_url="http://testserver",
    )
    stranger = client_for(UserFactory(email="stranger@example.com"))
    url = reverse("accounts:invitation_accept", args=[token])

    for response in (stranger.get(url), stranger.post(url)):
        assert response.status_code == 404
        assert b"Alpha Labs" not in response.content
    assert _role_of(org, User.objects.get(email="stranger@example.com")) is None


@pytest.mark.parametrize("token", ["nope", "x" * 43, "%00" * 20])
def test_unknown_invitation_token_is_a_404(client_for, token):
    client = client_for(UserFactory())
    assert client.get(f"/invitations/{token}/").status_code == 404
    assert client.post(f"/invitations/{token}/").status_code == 404


def test_expired_invitation_shows_a_clear_error(org, owner, client_for):
    _, token = invitation_create(
        organization=org,
        invited_by=owner,
        email="teammate@example.com",
        role=Role.MEMBER,
        site_url="http://testserver",
    )
    client = client_for(UserFactory(email="teammate@example.com"))
    url = reverse("accounts:invitation_accept", args=[token])
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        page = client.get(url)
        accepted = client.post(url)
    assert page.status_code == 410
    assert b"expired" in page.content
    assert accepted.status_code == 409
    assert _role_of(org, User.objects.get(email="teammate@example.com")) is None


def test_used_invitation_cannot_be_used_again(org, owner, client_for):
    _, token = invitation_create(
        organization=org,
        invited_by=owner,
        email="teammate@example.com",
        role=Role.MEMBER,
        site_url="http://testserver",
    )
    teammate = UserFactory(email="teammate@example.com")
    client = client_for(teammate)
    url = reverse("accounts:invitation_accept", args=[token])
    assert client.post(url).status_code == 302
    client.post(reverse("accounts:org_leave", args=[org.slug]))

    response = client.post(url)
    assert response.status_code == 409
    assert b"already been used" in response.content
    assert _role_of(org, teammate) is None


def test_signup_without_an_invitation_creates_a_personal_organization(mailoutbox):
    browser = Client()
    response = browser.post(
        reverse("account_signup"),
        {
            "email": "solo@example.com",
            "password1": "a-long unusual passphrase 42",
            "password2": "a-long unusual passphrase 42",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="solo@example.com")
    organizations = list(Organization.objects.filter(memberships__user=user))
    assert [o.is_personal for o in organizations] == [True]
    assert "Confirm" in mailoutbox[0].subject or "confirm" in mailoutbox[0].body.lower()


def test_an_oversized_form_post_is_a_400(owner_client):
    response = owner_client.post(reverse("accounts:org_create"), {"name": "x" * (3 * 1024 * 1024)})
    assert response.status_code == 400
    assert not Organization.objects.filter(name__startswith="xxx").exists()


def test_existing_user_accepts_an_invitation_by_logging_in(org, owner):
    teammate = UserFactory(email="teammate@example.com")
    _, token = invitation_create(
        organization=org,
        invited_by=owner,
        email="teammate@example.com",
        role=Role.ADMIN,
        site_url="http://testserver",
    )
    invitation_path = reverse("accounts:invitation_accept", args=[token])
    browser = Client()
    browser.get(invitation_path)

    response = browser.post(
        f"{reverse('account_login')}?next={invitation_path}",
        {"login": "teammate@example.com", "password": "correct horse battery staple"},
    )
    assert response.url == invitation_path
    assert browser.post(invitation_path).url == reverse("accounts:org_home", args=[org.slug])
    assert _role_of(org, teammate) == Role.ADMIN
    # The organization just joined becomes the current one.
    assert browser.get(reverse("home")).url == reverse("accounts:org_home", args=[org.slug])
