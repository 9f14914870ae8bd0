import pytest
from django.urls import reverse

from accounts.models import Invitation, Membership, Role
from accounts.services import invitation_create
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client_for):
    return client_for(UserFactory(email="ops@clawtrace.example", is_staff=True, is_superuser=True))


@pytest.mark.parametrize("model", ["user", "organization", "membership", "invitation"])
def test_operator_lists_search_and_open_every_accounts_model(
    operator_client, org, owner, member, model
):
    invitation_create(
        organization=org,
        invited_by=owner,
        email="x@example.com",
        role=Role.MEMBER,
        site_url="http://testserver",
    )
    changelist = reverse(f"admin:accounts_{model}_changelist")
    assert operator_client.get(changelist).status_code == 200
    assert operator_client.get(changelist, {"q": "alpha"}).status_code == 200
    first = {
        "user": owner.pk,
        "organization": org.pk,
        "membership": Membership.all_orgs.first().pk,
        "invitation": Invitation.all_orgs.first().pk,
    }[model]
    assert (
        operator_client.get(reverse(f"admin:accounts_{model}_change", args=[first])).status_code
        == 200
    )


def test_invitation_admin_never_shows_the_token_hash(operator_client, org, owner):
    invitation, _ = invitation_create(
        organization=org,
        invited_by=owner,
        email="x@example.com",
        role=Role.MEMBER,
        site_url="http://testserver",
    )
    page = operator_client.get(reverse("admin:accounts_invitation_change", args=[invitation.pk]))
    assert invitation.token_hash.encode() not in page.content


def test_memberships_cannot_be_deleted_or_edited_in_the_admin(operator_client, org, owner):
    membership = Membership.all_orgs.get(user=owner)
    delete_url = reverse("admin:accounts_membership_delete", args=[membership.pk])
    assert operator_client.post(delete_url, {"post": "yes"}).status_code == 403
    operator_client.post(
        reverse("admin:accounts_membership_change", args=[membership.pk]), {"role": "member"}
    )
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_operator_withdraws_invitations_with_an_admin_action(operator_client, org, owner):
    invitation, _ = invitation_create(
        organization=org,
        invited_by=owner,
        email="x@example.com",
        role=Role.MEMBER,
        site_url="http://testserver",
    )
    operator_client.post(
        reverse("admin:accounts_invitation_changelist"),
        {"action": "revoke_selected", "_selected_action": [invitation.pk]},
    )
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


def test_admin_login_goes_through_allauth(client):
    response = client.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("account_login"))


def test_non_staff_user_is_refused_by_the_admin(client_for, owner):
    response = client_for(owner).get(reverse("admin:index"), follow=True)
    assert response.status_code == 403


def test_user_admin_lists_the_users_organizations(operator_client, org, owner):
    page = operator_client.get(reverse("admin:accounts_user_change", args=[owner.pk]))
    assert b"Alpha Labs" in page.content
