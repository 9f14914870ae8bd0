"""Writes for accounts: organizations, memberships, invitations.

Rules enforced here (never only in views): roles rank owner > admin > member; admins invite and
manage members and admins but not owners; only owners grant or take away owner; an organization
always keeps at least one owner. Errors are domain errors (`clawtrace_site.exceptions`).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts.limits import PlanLimitReachedError
from accounts.models import (
    Invitation,
    Membership,
    Organization,
    PlanCode,
    Role,
    User,
    time_zone_validate,
)
from accounts.selectors import (
    invitation_email_matches,
    invitation_get_by_token,
    membership_limit_refusal,
)
from accounts.subscriptions import SubscriptionPlan
from accounts.tenancy import organization_scope
from clawtrace_site.exceptions import ApplicationError, ConflictError, NotAllowedError
from clawtrace_site.tokens import generate_secret, hash_secret

logger = logging.getLogger(__name__)

INVITATION_LIFETIME = timedelta(days=7)
# Rows per DELETE of the retention purge: a few milliseconds of locks each.
INVITATION_PURGE_BATCH_SIZE = 5_000
# Recognisable in a leaked link or a paste (see clawtrace_site/tokens.py).
INVITATION_TOKEN_PREFIX = "cti_"  # noqa: S105 (a prefix, not a secret)
ORGANIZATION_NAME_MAX_LENGTH = 100
EMAIL_MAX_LENGTH = 254


class InvitationInvalidError(ApplicationError):
    """Unknown token: answered like a missing page, so tokens cannot be probed."""

    code = "invitation_invalid"
    status_code = 404


# --- Organizations ------------------------------------------------------------------------------


def _organization_name_clean(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        message = "Give the organization a name."
    elif len(name) > ORGANIZATION_NAME_MAX_LENGTH:
        message = f"Keep the name under {ORGANIZATION_NAME_MAX_LENGTH} characters."
    else:
        return name
    raise ApplicationError(message, code="invalid_input", extra={"fields": {"name": [message]}})


def _organization_slug_unique(name: str) -> str:
    base = slugify(name)[:48].strip("-") or "org"
    slug = base
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


@transaction.atomic
def organization_create(*, name: str, owner: User, is_personal: bool = False) -> Organization:
    organization = Organization(
        name=_organization_name_clean(name), is_personal=is_personal, plan=PlanCode.FREE
    )
    organization.slug = _organization_slug_unique(organization.name)
    organization.full_clean()
    organization.save()
    with organization_scope(organization):
        Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    logger.info(
        "organization created", extra={"organization_id": organization.pk, "user_id": owner.pk}
    )
    return organization


@transaction.atomic
def organization_update(*, organization: Organization, actor: User, name: str) -> Organization:
    _actor_membership_get(organization=organization, actor=actor, at_least=Role.ADMIN)
    organization.name = _organization_name_clean(name)
    organization.full_clean()
    organization.save(update_fields=["name"])
    return organization


@transaction.atomic
def organization_time_zone_update(
    *, organization: Organization, actor: User, time_zone: str
) -> Organization:
    """Owners and admins set the zone of the organization's days. Nothing else needs telling:
    the daily rollups carry the zone they were built in, the dashboard falls back to the
    15-minute ones while they differ, and analytics' sweep rebuilds them in the new zone."""
    _actor_membership_get(organization=organization, actor=actor, at_least=Role.ADMIN)
    time_zone = (time_zone or "").strip()
    try:
        time_zone_validate(time_zone)
    except ValidationError as error:
        message = " ".join(error.messages)
        raise ApplicationError(
            message, code="invalid_input", extra={"fields": {"time_zone": [message]}}
        ) from None
    if organization.time_zone != time_zone:
        organization.time_zone = time_zone
        organization.save(update_fields=["time_zone"])
        logger.info(
            "organization time zone changed",
            extra={"organization_id": organization.pk, "time_zone": time_zone},
        )
    return organization


def organization_plan_set(*, organization: Organization, plan: str) -> Organization:
    """Store the tier that applies to the organization. Billing is the only caller: it decides
    the tier from the organization's payments and grants (accounts only keeps the column,
    since it may not import billing), under the organization's row lock it already holds."""
    plan = PlanCode(plan)
    if organization.plan != plan:
        previous = organization.plan
        organization.plan = plan
        organization.save(update_fields=["plan"])
        logger.info(
            "organization plan changed",
            extra={"organization_id": organization.pk, "plan": plan.value, "previous": previous},
        )
    return organization


def user_signup_finalize(*, user: User) -> None:
    """Called once per new user, from the allauth adapter's `save_user`.

    Every new user gets a personal organization, including one who signed up through an
    invitation: their own devices belong somewhere that is not their employer's org.
    """
    local_part = user.email.split("@", 1)[0]
    organization_create(
        name=f"{local_part}'s workspace"[:ORGANIZATION_NAME_MAX_LENGTH],
        owner=user,
        is_personal=True,
    )


# --- Memberships --------------------------------------------------------------------------------


def _actor_membership_get(*, organization: Organization, actor: User, at_least: str) -> Membership:
    with organization_scope(organization):
        membership = Membership.objects.filter(user=actor).first()
    if membership is None:
        # Callers resolve the org through the actor's membership first; reaching this means
        # the membership vanished meanwhile.
        raise NotAllowedError("You are not a member of this organization.")
    if not membership.has_role_at_least(at_least):
        raise NotAllowedError(f"This needs the {Role(at_least).label.lower()} role or higher.")
    return membership


def _owner_count_locked(organization: Organization) -> int:
    # Lock the owner rows so two concurrent demotions cannot both see "another owner exists".
    with organization_scope(organization):
        return len(
            Membership.objects.select_for_update()
            .filter(role=Role.OWNER)
            .values_list("id", flat=True)
        )


def _role_clean(role: str) -> Role:
    if role not in Role.values:
        raise ApplicationError(
            f"Unknown role {str(role)[:20]!r}; choose owner, admin or member.",
            code="invalid_input",
            extra={"fields": {"role": ["Choose owner, admin or member."]}},
        )
    return Role(role)


@transaction.atomic
def membership_role_change(*, actor: User, membership: Membership, role: str) -> Membership:
    new_role = _role_clean(role)
    organization = membership.organization
    actor_membership = _actor_membership_get(
        organization=organization, actor=actor, at_least=Role.ADMIN
    )
    is_actor_owner = actor_membership.role == Role.OWNER
    if (membership.role == Role.OWNER or new_role == Role.OWNER) and not is_actor_owner:
        raise NotAllowedError("Only an owner can grant or take away the owner role.")
    if membership.role == new_role:
        return membership
    if membership.role == Role.OWNER and _owner_count_locked(organization) <= 1:
        raise ConflictError(
            "An organization needs at least one owner: make someone else owner first.",
            code="last_owner",
        )
    membership.role = new_role
    membership.full_clean()
    membership.save(update_fields=["role"])
    logger.info(
        "membership role changed",
        extra={
            "organization_id": organization.pk,
            "membership_id": membership.pk,
            "role": new_role,
        },
    )
    return membership


@transaction.atomic
def membership_subscription_plan_set(
    *, actor: User, membership: Membership, plan: str
) -> Membership:
    """Record what a member pays for their agent: the member themself, or an owner or admin."""
    if plan not in SubscriptionPlan.values:
        message = "Choose one of " + ", ".join(label for _, label in SubscriptionPlan.choices)
        raise ApplicationError(
            message, code="invalid_input", extra={"fields": {"subscription_plan": [message]}}
        )
    if membership.user_id != actor.pk:
        _actor_membership_get(
            organization=membership.organization, actor=actor, at_least=Role.ADMIN
        )
    if membership.subscription_plan != plan:
        membership.subscription_plan = plan
        membership.save(update_fields=["subscription_plan"])
    return membership


@transaction.atomic
def membership_remove(*, actor: User, membership: Membership) -> None:
    organization = membership.organization
    if membership.user_id == actor.pk:
        organization_leave(user=actor, organization=organization)
        return
    actor_membership = _actor_membership_get(
        organization=organization, actor=actor, at_least=Role.ADMIN
    )
    if membership.role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise NotAllowedError("Only an owner can remove an owner.")
    if membership.role == Role.OWNER and _owner_count_locked(organization) <= 1:
        raise ConflictError("An organization needs at least one owner.", code="last_owner")
    membership.delete()
    logger.info(
        "membership removed",
        extra={"organization_id": organization.pk, "membership_id": membership.pk},
    )


@transaction.atomic
def organization_leave(*, user: User, organization: Organization) -> None:
    with organization_scope(organization):
        membership = Membership.objects.filter(user=user).first()
    if membership is None:
        raise NotAllowedError("You are not a member of this organization.")
    if membership.role == Role.OWNER and _owner_count_locked(organization) <= 1:
        raise ConflictError(
            "You are the last owner: make someone else owner before leaving.", code="last_owner"
        )
    membership.delete()
    logger.info("organization left", extra={"organization_id": organization.pk, "user_id": user.pk})


# --- Invitations --------------------------------------------------------------------------------


def _email_clean(email: str) -> str:
    email = (email or "").strip().lower()
    try:
        if len(email) > EMAIL_MAX_LENGTH:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError as error:
        raise ApplicationError(
            "Enter a valid email address.",
            code="invalid_input",
            extra={"fields": {"email": ["Enter a valid email address."]}},
        ) from error
    return email


def invitation_accept_path(token: str) -> str:
    return reverse("accounts:invitation_accept", kwargs={"token": token})


@transaction.atomic
def invitation_create(
    *, organization: Organization, invited_by: User, email: str, role: str, site_url: str
) -> tuple[Invitation, str]:
    """Create an invitation and email its link. Returns the invitation and the plaintext token
    (the only time it exists outside the email)."""
    email = _email_clean(email)
    new_role = _role_clean(role)
    actor_membership = _actor_membership_get(
        organization=organization, actor=invited_by, at_least=Role.ADMIN
    )
    if new_role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise NotAllowedError("Only an owner can invite another owner.")
    _members_limit_ensure(organization)
    now = timezone.now()
    with organization_scope(organization):
        if Membership.objects.filter(user__email__iexact=email).exists():
            message = f"{email} is already a member."
            raise ConflictError(
                message, code="already_member", extra={"fields": {"email": [message]}}
            )
        # A new invitation replaces any open one for the address (one open per email).
        Invitation.objects.filter(
            email=email, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        token = generate_secret(INVITATION_TOKEN_PREFIX)
        invitation = Invitation(
            organization=organization,
            email=email,
            role=new_role,
            token_hash=hash_secret(token),
            invited_by=invited_by,
            created_at=now,
            expires_at=now + INVITATION_LIFETIME,
        )
        invitation.full_clean()
        invitation.save()
    accept_url = site_url.rstrip("/") + invitation_accept_path(token)
    # Sent in-process after commit rather than through Celery: a task message would carry the
    # plaintext token into the broker's storage, and the token must exist only in the email.
    transaction.on_commit(
        lambda: _invitation_email_send(invitation=invitation, accept_url=accept_url)
    )
    logger.info(
        "invitation created",
        extra={"organization_id": organization.pk, "invitation_id": invitation.pk},
    )
    return invitation, token


def _members_limit_ensure(organization: Organization) -> None:
    """Refuse one more member past the plan's count (on Free and Pro, anyone at all: members
    and invitations are Team's). The organization's row is locked first, so two acceptances
    at once cannot both take the last place, and the plan is read as it is now."""
    locked = Organization.objects.select_for_update().get(pk=organization.pk)
    refusal = membership_limit_refusal(organization=locked)
    if refusal is not None:
        raise PlanLimitReachedError(refusal, code="member_limit_reached")


def _invitation_email_send(*, invitation: Invitation, accept_url: str) -> None:
    context = {
        "organization_name": invitation.organization.name,
        "inviter": invitation.invited_by.email if invitation.invited_by else "A ClawTrace user",
        "role": invitation.get_role_display(),
        "accept_url": accept_url,
        "expires_at": invitation.expires_at,
    }
    subject = render_to_string("accounts/email/invitation_subject.txt", context).strip()
    body = render_to_string("accounts/email/invitation_message.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email])


def _invitation_usable_ensure(invitation: Invitation) -> None:
    if invitation.accepted_at is not None:
        raise ConflictError("This invitation has already been used.", code="invitation_used")
    if invitation.revoked_at is not None:
        raise ConflictError("This invitation was withdrawn.", code="invitation_revoked")
    if invitation.is_expired:
        raise ConflictError(
            "This invitation has expired; ask for a new one.", code="invitation_expired"
        )


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Single use, expires, and only for the address it was sent to, once verified."""
    from allauth.account.models import EmailAddress

    invitation = invitation_get_by_token(token=token, for_update=True)
    if invitation is None:
        raise InvitationInvalidError("This invitation link is not valid.")
    _invitation_usable_ensure(invitation)
    if not invitation_email_matches(invitation=invitation, user=user):
        raise NotAllowedError(
            "This invitation was sent to a different email address. Sign in with that address."
        )
    if not EmailAddress.objects.filter(
        user=user, email__iexact=invitation.email, verified=True
    ).exists():
        raise NotAllowedError("Confirm your email address first, then accept the invitation.")
    organization = invitation.organization
    with organization_scope(organization):
        if Membership.objects.filter(user=user).exists():
            raise ConflictError(
                "You are already a member of this organization.", code="already_member"
            )
        # Checked again here: the invitation may date from before a downgrade.
        _members_limit_ensure(organization)
        membership = Membership.objects.create(
            organization=organization, user=user, role=invitation.role
        )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    logger.info(
        "invitation accepted",
        extra={"organization_id": organization.pk, "invitation_id": invitation.pk},
    )
    return membership


@transaction.atomic
def invitation_revoke(*, actor: User | None, invitation: Invitation) -> Invitation:
    """`actor=None` is an operator acting through the admin (no membership to check)."""
    if actor is not None:
        _actor_membership_get(
            organization=invitation.organization, actor=actor, at_least=Role.ADMIN
        )
    if invitation.accepted_at is not None:
        raise ConflictError("This invitation was already accepted.", code="invitation_used")
    if invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


def invitation_expired_purge(
    *,
    older_than: timedelta = timedelta(days=1),
    batch_size: int = INVITATION_PURGE_BATCH_SIZE,
    max_batches: int | None = None,
) -> int:
    """Delete invitations that can no longer be used (expired or revoked) once they are
    `older_than` past that point. They hold email addresses and serve no purpose. Returns how
    many were deleted; with `max_batches`, a result of `max_batches * batch_size` means more
    may remain.

    Deletes in primary-key order, at most `batch_size` rows per statement, each batch in its own
    short transaction: one unbounded DELETE after a backlog (a missed week, a spam wave of
    invitations) would hold its locks and grow the WAL for as long as it runs. A batch covers a
    pk range whose purgeable rows were just listed, and the DELETE repeats the purge condition,
    so it removes exactly those rows even if others in the range changed meanwhile.

    Cross-org maintenance, hence `all_orgs`.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = timezone.now() - older_than
    purgeable = Invitation.all_orgs.filter(accepted_at__isnull=True).filter(
        Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff)
    )
    deleted_total = 0
    last_pk = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            chunk = list(
                purgeable.filter(pk__gt=last_pk)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not chunk:
                break
            deleted, _ = purgeable.filter(pk__gt=last_pk, pk__lte=chunk[-1]).delete()
        deleted_total += deleted
        batches += 1
        last_pk = chunk[-1]
        if len(chunk) < batch_size:
            break
    return deleted_total
