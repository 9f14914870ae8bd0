from __future__ import annotations

import hashlib
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts import selectors
from accounts.models import Invitation, Membership, Organization, Role
from accounts.services import (
    InvitationInvalidError,
    invitation_accept,
    invitation_create,
    invitation_expired_purge,
    invitation_revoke,
    membership_remove,
    membership_role_change,
    organization_create,
    organization_leave,
    organization_update,
    user_signup_finalize,
)
from accounts.tenancy import organization_scope
from accounts.tests.factories import (
    InvitationFactory,
    MembershipFactory,
    UserFactory,
)
from clawtrace_site.exceptions import ApplicationError, ConflictError, NotAllowedError
from clawtrace_site.tokens import hash_secret

pytestmark = pytest.mark.django_db


def _membership(organization: Organization, user) -> Membership:
    with organization_scope(organization):
        return Membership.objects.select_related("organization", "user").get(user=user)


def _invite(organization, invited_by, email="new@example.com", role=Role.MEMBER):
    return invitation_create(
        organization=organization,
        invited_by=invited_by,
        email=email,
        role=role,
        site_url="http://testserver",
    )


# --- Organizations -------------------------------------------------------------------------------


def test_signup_gives_a_new_user_a_personal_organization_they_own():
    user = UserFactory(email="ada@example.com")

    user_signup_finalize(user=user)

    organizations = list(selectors.organization_list_for_user(user=user))
    assert len(organizations) == 1
    assert organizations[0].is_personal
    assert organizations[0].role == Role.OWNER
    assert organizations[0].name == "ada's workspace"


def test_signup_finalize_gives_each_user_exactly_one_personal_organization():
    first, second = UserFactory(), UserFactory()

    user_signup_finalize(user=first)
    user_signup_finalize(user=second)

    for user in (first, second):
        organizations = list(selectors.organization_list_for_user(user=user))
        assert [org.is_personal for org in organizations] == [True]


def test_organization_create_makes_a_unique_slug_and_the_creator_owner(owner):
    first = organization_create(name="Acme Robotics", owner=owner)
    second = organization_create(name="Acme Robotics", owner=owner)

    assert first.slug == "acme-robotics"
    assert second.slug.startswith("acme-robotics-") and second.slug != first.slug
    assert _membership(second, owner).role == Role.OWNER


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_organization_create_rejects_a_blank_or_overlong_name(owner, name):
    with pytest.raises(ApplicationError):
        organization_create(name=name, owner=owner)
    assert not Organization.objects.filter(memberships__user=owner).exists()


def test_organization_with_an_unsluggable_name_still_gets_a_slug(owner):
    organization = organization_create(name="🦞🦞", owner=owner)
    assert organization.slug.startswith("org")


def test_a_member_cannot_rename_the_organization(org, member):
    with pytest.raises(NotAllowedError):
        organization_update(organization=org, actor=member, name="Renamed")
    org.refresh_from_db()
    assert org.name == "Alpha Labs"


def test_a_user_can_belong_to_several_organizations(owner, org, other_org):
    MembershipFactory(organization=other_org, user=owner)
    slugs = {o.slug for o in selectors.organization_list_for_user(user=owner)}
    assert slugs == {org.slug, other_org.slug}


# --- Roles and the last owner --------------------------------------------------------------------


def test_last_owner_cannot_be_demoted(org, owner):
    with pytest.raises(ConflictError, match="at least one owner"):
        membership_role_change(actor=owner, membership=_membership(org, owner), role=Role.MEMBER)
    assert _membership(org, owner).role == Role.OWNER


def test_last_owner_cannot_leave(org, owner):
    with pytest.raises(ConflictError, match="last owner"):
        organization_leave(user=owner, organization=org)
    assert _membership(org, owner).role == Role.OWNER


def test_an_owner_can_leave_once_another_owner_exists(org, owner, member):
    membership_role_change(actor=owner, membership=_membership(org, member), role=Role.OWNER)

    organization_leave(user=owner, organization=org)

    with organization_scope(org):
        assert list(Membership.objects.values_list("user__email", "role")) == [
            ("member@alpha.example", Role.OWNER)
        ]


def test_last_owner_cannot_be_removed_by_themselves(org, owner):
    with pytest.raises(ConflictError):
        membership_remove(actor=owner, membership=_membership(org, owner))


def test_admin_cannot_grant_owner(org, member):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    with pytest.raises(NotAllowedError, match="owner"):
        membership_role_change(actor=admin, membership=_membership(org, member), role=Role.OWNER)
    assert _membership(org, member).role == Role.MEMBER


def test_admin_cannot_demote_or_remove_an_owner(org, owner):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    with pytest.raises(NotAllowedError):
        membership_role_change(actor=admin, membership=_membership(org, owner), role=Role.MEMBER)
    with pytest.raises(NotAllowedError):
        membership_remove(actor=admin, membership=_membership(org, owner))


def test_admin_can_promote_a_member_to_admin_and_remove_them(org, member):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)

    membership_role_change(actor=admin, membership=_membership(org, member), role=Role.ADMIN)
    assert _membership(org, member).role == Role.ADMIN
    membership_remove(actor=admin, membership=_membership(org, member))

    with organization_scope(org):
        assert not Membership.objects.filter(user=member).exists()


def test_a_member_cannot_change_roles(org, owner, member):
    with pytest.raises(NotAllowedError):
        membership_role_change(actor=member, membership=_membership(org, owner), role=Role.MEMBER)


def test_role_change_rejects_an_unknown_role(org, owner, member):
    with pytest.raises(ApplicationError, match="Unknown role"):
        membership_role_change(actor=owner, membership=_membership(org, member), role="emperor")


def test_owner_can_hand_over_ownership_then_step_down(org, owner, member):
    membership_role_change(actor=owner, membership=_membership(org, member), role=Role.OWNER)
    membership_role_change(actor=owner, membership=_membership(org, owner), role=Role.ADMIN)
    assert _membership(org, owner).role == Role.ADMIN
    assert _membership(org, member).role == Role.OWNER


# --- Invitations ---------------------------------------------------------------------------------


def test_invitation_stores_only_the_hash_of_its_token_and_emails_the_link(
    org, owner, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation, token = _invite(org, owner, email="  New@Example.com ")

    assert invitation.email == "new@example.com"
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in invitation.token_hash
    assert token.startswith("cti_")  # recognisable by secret scanners
    assert len(token) >= 43
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["new@example.com"]
    assert f"http://testserver/invitations/{token}/" in mailoutbox[0].body
    assert "Alpha Labs" in mailoutbox[0].subject


def test_invitation_email_is_not_sent_when_the_transaction_rolls_back(
    org, owner, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _invite(org, owner)
    assert len(callbacks) == 1
    assert mailoutbox == []


def test_reinviting_an_address_withdraws_the_previous_invitation(org, owner):
    first, first_token = _invite(org, owner)
    second, _ = _invite(org, owner)

    first.refresh_from_db()
    assert first.revoked_at is not None
    assert second.revoked_at is None
    with pytest.raises(ConflictError, match="withdrawn"):
        invitation_accept(token=first_token, user=UserFactory(email="new@example.com"))


def test_member_cannot_invite(org, member):
    with pytest.raises(NotAllowedError):
        _invite(org, member)


def test_admin_cannot_invite_an_owner(org):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    with pytest.raises(NotAllowedError):
        _invite(org, admin, role=Role.OWNER)


def test_inviting_an_existing_member_is_refused(org, owner, member):
    with pytest.raises(ConflictError, match="already a member"):
        _invite(org, owner, email="MEMBER@alpha.example")


@pytest.mark.parametrize("email", ["", "not-an-email", "a@b", "x" * 300 + "@example.com"])
def test_invitation_rejects_a_malformed_email(org, owner, email):
    with pytest.raises(ApplicationError):
        _invite(org, owner, email=email)


def test_invitation_accept_adds_the_member_with_the_invited_role(org, owner):
    _, token = _invite(org, owner, role=Role.ADMIN)
    invitee = UserFactory(email="new@example.com")

    membership = invitation_accept(token=token, user=invitee)

    assert membership.organization == org
    assert membership.role == Role.ADMIN
    invitation = Invitation.all_orgs.get()
    assert invitation.accepted_by == invitee
    assert invitation.accepted_at is not None


def test_invitation_is_single_use(org, owner):
    _, token = _invite(org, owner)
    invitee = UserFactory(email="new@example.com")
    invitation_accept(token=token, user=invitee)
    organization_leave(user=invitee, organization=org)

    with pytest.raises(ConflictError, match="already been used"):
        invitation_accept(token=token, user=invitee)
    with organization_scope(org):
        assert not Membership.objects.filter(user=invitee).exists()


def test_invitation_expires_after_seven_days(org, owner):
    _, token = _invite(org, owner)
    invitee = UserFactory(email="new@example.com")

    with (
        time_machine.travel(timezone.now() + timedelta(days=7, seconds=1)),
        pytest.raises(ConflictError, match="expired"),
    ):
        invitation_accept(token=token, user=invitee)

    with organization_scope(org):
        assert not Membership.objects.filter(user=invitee).exists()


def test_invitation_for_another_address_is_refused(org, owner):
    _, token = _invite(org, owner, email="new@example.com")
    stranger = UserFactory(email="stranger@example.com")

    with pytest.raises(NotAllowedError, match="different email"):
        invitation_accept(token=token, user=stranger)


def test_invitation_needs_the_address_to_be_verified(org, owner):
    _, token = _invite(org, owner, email="new@example.com")
    unverified = UserFactory(email="new@example.com", verified=False)

    with pytest.raises(NotAllowedError, match="Confirm your email"):
        invitation_accept(token=token, user=unverified)

    EmailAddress.objects.filter(user=unverified).update(verified=True)
    assert invitation_accept(token=token, user=unverified).role == Role.MEMBER


@pytest.mark.parametrize("token", ["", "short", "x" * 43, "x" * 500, "../../etc/passwd" * 3])
def test_unknown_or_malformed_token_is_invalid(org, owner, token):
    _invite(org, owner)
    with pytest.raises(InvitationInvalidError):
        invitation_accept(token=token, user=UserFactory(email="new@example.com"))


def test_token_digest_is_compared_in_constant_time(org, owner):
    _, token = _invite(org, owner)
    with mock.patch("clawtrace_site.tokens.hmac.compare_digest", return_value=True) as compare:
        invitation_accept(token=token, user=UserFactory(email="new@example.com"))
    compare.assert_called_once()
    computed, stored = compare.call_args.args
    assert stored == computed == hashlib.sha256(token.encode()).hexdigest()


def test_digest_mismatch_rejects_even_when_the_lookup_matched(org, owner):
    _, token = _invite(org, owner)
    with (
        mock.patch("clawtrace_site.tokens.hmac.compare_digest", return_value=False),
        pytest.raises(InvitationInvalidError),
    ):
        invitation_accept(token=token, user=UserFactory(email="new@example.com"))


def test_revoked_invitation_cannot_be_accepted(org, owner):
    invitation, token = _invite(org, owner)
    invitation_revoke(actor=owner, invitation=invitation)

    with pytest.raises(ConflictError, match="withdrawn"):
        invitation_accept(token=token, user=UserFactory(email="new@example.com"))


def test_member_cannot_revoke_an_invitation(org, owner, member):
    invitation, _ = _invite(org, owner)
    with pytest.raises(NotAllowedError):
        invitation_revoke(actor=member, invitation=invitation)
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_accepting_when_already_a_member_is_refused(org, owner, member):
    invitation = InvitationFactory(organization=org, email="member@alpha.example")
    token = "t" * 43
    Invitation.all_orgs.filter(pk=invitation.pk).update(token_hash=hash_secret(token))
    with pytest.raises(ConflictError, match="already a member"):
        invitation_accept(token=token, user=member)


def test_expired_invitations_are_purged_but_open_and_accepted_ones_stay(org, owner):
    now = timezone.now()
    stale = InvitationFactory(organization=org, expires_at=now - timedelta(days=3))
    recently_expired = InvitationFactory(organization=org, expires_at=now - timedelta(hours=1))
    open_invitation = InvitationFactory(organization=org)
    accepted = InvitationFactory(
        organization=org, expires_at=now - timedelta(days=30), accepted_at=now - timedelta(days=31)
    )

    assert invitation_expired_purge() == 1
    assert invitation_expired_purge() == 0  # running twice is harmless

    remaining = set(Invitation.all_orgs.values_list("pk", flat=True))
    assert stale.pk not in remaining
    assert {recently_expired.pk, open_invitation.pk, accepted.pk} <= remaining


def test_logs_carry_ids_but_never_tokens_or_email_addresses(org, owner, caplog):
    caplog.set_level("DEBUG")
    _, token = _invite(org, owner, email="private.person@example.com")
    invitation_accept(token=token, user=UserFactory(email="private.person@example.com"))

    ours = [r for r in caplog.records if r.name.startswith(("accounts", "clawtrace_site"))]
    logged = " ".join(f"{record.getMessage()} {record.__dict__}" for record in ours)
    assert "invitation accepted" in logged
    assert token not in logged
    assert "private.person@example.com" not in logged
    assert hashlib.sha256(token.encode()).hexdigest() not in logged
