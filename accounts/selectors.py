"""Reads for accounts. Views and APIs call these; they never build queries themselves."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.db.models import Case, F, IntegerField, QuerySet, Value, When

from accounts.limits import limit_reached_message, organization_limits
from accounts.models import Invitation, Membership, Organization, Role, User
from accounts.tenancy import organization_scope
from clawtrace_site.tokens import hash_secret, secret_matches


def organization_list_for_user(*, user: User) -> QuerySet[Organization]:
    """The user's organizations, each annotated with `role` (their role there)."""
    return (
        Organization.objects.filter(memberships__user=user)
        .annotate(role=F("memberships__role"))
        .order_by("name", "id")
    )


def organization_id_list() -> list[int]:
    """Every organization's id, in order: the nightly jobs fan out one task per organization."""
    return list(Organization.objects.order_by("pk").values_list("pk", flat=True))


def owner_email_list(*, organization: Organization) -> list[str]:
    """The addresses of the organization's active owners (who hear about billing and data)."""
    with organization_scope(organization):
        return sorted(
            Membership.objects.filter(role=Role.OWNER, user__is_active=True).values_list(
                "user__email", flat=True
            )
        )


def membership_for_user_get(*, user: User, organization_slug: str) -> Membership | None:
    """The user's membership in the org with that slug, or None (unknown slug or not a member:
    callers answer both with the same 404)."""
    organization = Organization.objects.filter(
        slug=organization_slug, memberships__user=user
    ).first()
    if organization is None:
        return None
    with organization_scope(organization):
        return Membership.objects.select_related("organization", "user").get(user=user)


def membership_get(*, organization: Organization, membership_id: int) -> Membership | None:
    """A membership of the org by id, or None (also for another org's membership)."""
    with organization_scope(organization):
        return (
            Membership.objects.select_related("user", "organization")
            .filter(pk=membership_id)
            .first()
        )


def membership_count(*, organization: Organization) -> int:
    with organization_scope(organization):
        return Membership.objects.count()


def membership_limit_refusal(*, organization: Organization, adding: int = 1) -> str | None:
    """Why the organization's plan does not let `adding` more people join (which plan would,
    and where to upgrade), or None when it does. The invitation services refuse with it and
    the members page shows it in place of the invitation form."""
    limits = organization_limits(organization=organization)
    if limits.allows("members", membership_count(organization=organization) + adding):
        return None
    return limit_reached_message(organization=organization, limits=limits, resource="members")


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    """Members of the org, owners first, then admins, then members, each by email."""
    role_order = Case(
        When(role=Role.OWNER, then=Value(0)),
        When(role=Role.ADMIN, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    with organization_scope(organization):
        # The scoped manager applies the org filter here; the queryset stays bound to it.
        return Membership.objects.select_related("user", "organization").order_by(
            role_order, "user__email"
        )


def invitation_list_pending(*, organization: Organization) -> list[Invitation]:
    """Open invitations of the org (expired ones are shown as such until purged)."""
    with organization_scope(organization):
        invitations = list(
            Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True)
            .select_related("invited_by")
            .order_by("-created_at", "-id")
        )
    return invitations


def invitation_count_pending(*, organization: Organization) -> int:
    with organization_scope(organization):
        return Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True).count()


def invitation_get(*, organization: Organization, invitation_id: int) -> Invitation | None:
    """An invitation of the org by id, or None (also for another org's invitation)."""
    with organization_scope(organization):
        return (
            Invitation.objects.select_related("organization", "invited_by")
            .filter(pk=invitation_id)
            .first()
        )


def invitation_email_matches(*, invitation: Invitation, user: User) -> bool:
    """Whether the invitation was sent to one of the user's addresses (verified or not: the
    accept service checks verification itself)."""
    if user.email.lower() == invitation.email:
        return True
    return EmailAddress.objects.filter(user=user, email__iexact=invitation.email).exists()


def invitation_get_by_token(*, token: str, for_update: bool = False) -> Invitation | None:
    """The invitation a link's token belongs to, or None.

    The token is the credential here (the visitor is not a member yet), so the lookup spans
    organizations through `all_orgs`, like device-token authentication will. Only the SHA-256
    is stored; the final comparison is constant-time.
    """
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    invitations = Invitation.all_orgs.select_related("organization", "invited_by")
    if for_update:
        invitations = invitations.select_for_update(of=("self",))
    invitation = invitations.filter(token_hash=hash_secret(token)).first()
    if invitation is None or not secret_matches(token, invitation.token_hash):
        return None
    return invitation
