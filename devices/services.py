"""Writes for devices: linking a machine (device grant, enrollment key), renaming, revoking,
and enrollment keys.

Rules kept here (never only in views): only an organization's owners and admins approve
devices, rename or revoke them and manage keys; device codes are single-use and expire after
15 minutes; a revoked device or key stays revoked; every new device passes
`_device_link_ensure` first (the plan's device count, under a lock). Errors are domain errors
(`clawtrace_site.exceptions`).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.limits import PlanLimitReachedError
from accounts.models import Membership, Organization, Role, User
from accounts.tenancy import organization_scope
from clawtrace_site.exceptions import ApplicationError, NotAllowedError
from clawtrace_site.tokens import generate_secret, hash_secret
from devices.models import AuthorizationStatus, Device, DeviceAuthorization, EnrollmentKey
from devices.selectors import (
    DEVICE_SECRET_PREFIX,
    ENROLL_KEY_MAX_LENGTH,
    ENROLL_KEY_MIN_LENGTH,
    ENROLL_KEY_PREFIX,
    USER_CODE_ALPHABET,
    USER_CODE_LENGTH,
    device_authorization_get_by_code,
    device_authorization_get_pending,
    device_link_refusal,
    enrollment_key_get_by_value,
)

logger = logging.getLogger(__name__)

AUTHORIZATION_LIFETIME = timedelta(minutes=15)
POLL_INTERVAL_SECONDS = 5
# RFC 8628 3.5: after a slow_down the client waits 5 s more on every later poll.
SLOW_DOWN_STEP_SECONDS = 5
# A poll that arrives up to this much early still counts as on time: the previous request may
# have spent longer on the network than this one.
POLL_TOLERANCE = timedelta(seconds=1)
# Expired authorizations are kept a day (a late poll still gets expired_token), then purged.
AUTHORIZATION_RETENTION = timedelta(days=1)
DEVICE_NAME_MAX_LENGTH = 100
KEY_DISPLAY_PREFIX_LENGTH = 12
# last_seen_at is written at most this often per device: authentication runs on every call.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


class DeviceGrantError(ApplicationError):
    """An RFC 8628 token-endpoint error; `code` is the RFC's error code."""

    status_code = 400


class InvalidEnrollKeyError(ApplicationError):
    code = "invalid_enroll_key"
    status_code = 401


class DeviceLimitReachedError(PlanLimitReachedError):
    code = "device_limit_reached"
    status_code = 403


class UserCodeInvalidError(ApplicationError):
    """Unknown, used, denied or expired: the page says the same for each, so codes cannot be
    probed for their state."""

    code = "invalid_user_code"
    status_code = 404


def can_link_device(organization: Organization) -> bool:
    """Whether `organization` may link one more device: its linked (not revoked) devices stay
    within the plan's count (`accounts.limits`, which billing fills from its plans table).

    A check alone; linking itself goes through `_device_link_ensure`, which counts under a
    lock."""
    return device_link_refusal(organization=organization) is None


def _device_link_ensure(organization: Organization) -> Organization:
    """Refuse a device past the plan's count, or return the organization locked until the
    caller's transaction ends. Call it inside the transaction that creates the device.

    The organization's row is the lock: two enrollments (or an enrollment and a device-flow
    exchange) at the same instant would otherwise both count one device below the limit and
    both link. It also re-reads the plan under the lock, so an organization downgraded a moment
    ago is held to its new plan."""
    locked = Organization.objects.select_for_update().get(pk=organization.pk)
    refusal = device_link_refusal(organization=locked)
    if refusal is not None:
        raise DeviceLimitReachedError(refusal)
    return locked


def _ensure_admin(*, organization: Organization, actor: User) -> Membership:
    with organization_scope(organization):
        membership = Membership.objects.filter(user=actor).first()
    if membership is None or not membership.has_role_at_least(Role.ADMIN):
        raise NotAllowedError("Only the organization's owners and admins can do this.")
    return membership


def _label_clean(value: str, *, what: str, max_length: int, required: bool) -> str:
    value = " ".join((value or "").split())
    if required and not value:
        raise ApplicationError(f"Give the {what} a name.", code="invalid_value")
    return value[:max_length]


def _device_create(
    *,
    organization: Organization,
    name: str,
    os: str,
    agent_version: str,
    created_by: User | None,
    enrollment_key: EnrollmentKey | None = None,
) -> tuple[Device, str]:
    secret = generate_secret(DEVICE_SECRET_PREFIX)
    with organization_scope(organization):
        device = Device(
            organization=organization,
            name=_label_clean(
                name, what="device", max_length=DEVICE_NAME_MAX_LENGTH, required=False
            )
            or "unnamed device",
            os=(os or "")[:100],
            agent_version=(agent_version or "")[:64],
            secret_digest=hash_secret(secret),
            created_by=created_by,
            enrollment_key=enrollment_key,
        )
        device.save(force_insert=True)
    logger.info(
        "device linked",
        extra={"organization_id": organization.pk, "device_id": str(device.pk)},
    )
    return device, secret


# --- The device authorization grant (RFC 8628) ---------------------------------------------------


def _user_code_generate() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def device_authorization_start(
    *, name: str, os: str, agent_version: str
) -> tuple[DeviceAuthorization, str]:
    """A new pending authorization and its device code (returned once, stored as a digest)."""
    now = timezone.now()
    DeviceAuthorization.objects.filter(expires_at__lt=now - AUTHORIZATION_RETENTION).delete()
    # The contract's device code: 32 random bytes, URL-safe base64 (RFC 8628's examples).
    device_code = secrets.token_urlsafe(32)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                authorization = DeviceAuthorization.objects.create(
                    device_code_digest=hash_secret(device_code),
                    user_code=_user_code_generate(),
                    name=(name or "")[:DEVICE_NAME_MAX_LENGTH],
                    os=(os or "")[:100],
                    agent_version=(agent_version or "")[:64],
                    created_at=now,
                    expires_at=now + AUTHORIZATION_LIFETIME,
                    interval=POLL_INTERVAL_SECONDS,
                )
        except IntegrityError:
            continue  # two live user codes collided (1 in 2.5e10); draw another
        return authorization, device_code
    raise ApplicationError("Could not make a unique user code; try again.", code="conflict")


def device_authorization_poll(*, device_code: str) -> tuple[Device, str]:
    """The token endpoint: the new device and its secret once approved, else a
    `DeviceGrantError` with the RFC's code (authorization_pending, slow_down, access_denied,
    expired_token)."""
    authorization = device_authorization_get_by_code(device_code=device_code)
    if authorization is None:
        raise DeviceGrantError("Unknown device code.", code="invalid_grant")
    now = timezone.now()
    if authorization.status == AuthorizationStatus.EXCHANGED or authorization.is_expired:
        raise DeviceGrantError(
            "The device code has expired or was already used; run `clawtrace login` again.",
            code="expired_token",
        )
    if authorization.status == AuthorizationStatus.DENIED:
        raise DeviceGrantError("The request was denied.", code="access_denied")
    if authorization.status == AuthorizationStatus.PENDING:
        previous = authorization.last_polled_at
        too_soon = (
            previous is not None
            and now - previous < timedelta(seconds=authorization.interval) - POLL_TOLERANCE
        )
        fields = {"last_polled_at": now}
        if too_soon:
            fields["interval"] = authorization.interval + SLOW_DOWN_STEP_SECONDS
        DeviceAuthorization.objects.filter(pk=authorization.pk).update(**fields)
        if too_soon:
            raise DeviceGrantError(
                f"Polling too fast: wait {fields['interval']} s between polls.", code="slow_down"
            )
        raise DeviceGrantError("Waiting for a member to approve.", code="authorization_pending")
    return _device_authorization_exchange(authorization=authorization)


@transaction.atomic
def _device_authorization_exchange(*, authorization: DeviceAuthorization) -> tuple[Device, str]:
    # Counted again here, not only at the approval: two codes approved one after the other
    # would each have seen a free place. A refusal rolls back, so the approval stands and a
    # later poll links once a device was revoked.
    organization = _device_link_ensure(authorization.organization)
    # Compare-and-set: of two polls racing after the approval, exactly one gets the secret.
    won = DeviceAuthorization.objects.filter(
        pk=authorization.pk, status=AuthorizationStatus.APPROVED
    ).update(status=AuthorizationStatus.EXCHANGED)
    if not won:
        raise DeviceGrantError("The device code was already used.", code="expired_token")
    device, secret = _device_create(
        organization=organization,
        name=authorization.name,
        os=authorization.os,
        agent_version=authorization.agent_version,
        created_by=authorization.approved_by,
    )
    DeviceAuthorization.objects.filter(pk=authorization.pk).update(device=device)
    return device, secret


@transaction.atomic
def device_authorization_decide(
    *, user_code: str, actor: User, approve: bool, organization: Organization | None = None
) -> DeviceAuthorization:
    """A member approves (into `organization`, which they must own or administer) or denies the
    machine that shows `user_code`."""
    authorization = device_authorization_get_pending(user_code=user_code)
    if authorization is None:
        raise UserCodeInvalidError("That code is not valid: it may have expired or been used.")
    now = timezone.now()
    if approve:
        if organization is None:
            raise ApplicationError("Choose the organization to link it to.", code="invalid_value")
        _ensure_admin(organization=organization, actor=actor)
        # Refused on the page, where the member can act on it, rather than only when the
        # machine polls.
        _device_link_ensure(organization)
        changes = {
            "status": AuthorizationStatus.APPROVED,
            "organization": organization,
            "approved_by": actor,
            "decided_at": now,
        }
    else:
        changes = {"status": AuthorizationStatus.DENIED, "approved_by": actor, "decided_at": now}
    # Compare-and-set, so a code decided twice at once is decided once.
    decided = DeviceAuthorization.objects.filter(
        pk=authorization.pk, status=AuthorizationStatus.PENDING, expires_at__gt=now
    ).update(**changes)
    if not decided:
        raise UserCodeInvalidError("That code is not valid: it may have expired or been used.")
    authorization.refresh_from_db()
    logger.info(
        "device authorization decided",
        extra={
            "authorization_id": authorization.pk,
            "status": authorization.status,
            "organization_id": authorization.organization_id,
            "user_id": actor.pk,
        },
    )
    return authorization


# --- Enrollment keys ----------------------------------------------------------------------------


def _enroll_key_check(value: str) -> None:
    if not value.startswith(ENROLL_KEY_PREFIX):
        raise ApplicationError(
            f"An enrollment key must start with {ENROLL_KEY_PREFIX}.", code="invalid_value"
        )
    if not ENROLL_KEY_MIN_LENGTH <= len(value) <= ENROLL_KEY_MAX_LENGTH or any(
        ch.isspace() or not ch.isprintable() for ch in value
    ):
        raise ApplicationError(
            f"An enrollment key is {ENROLL_KEY_MIN_LENGTH} to {ENROLL_KEY_MAX_LENGTH} printable "
            "characters without spaces.",
            code="invalid_value",
        )


@transaction.atomic
def enrollment_key_create(
    *,
    organization: Organization,
    actor: User,
    name: str,
    expires_at: datetime | None = None,
    value: str | None = None,
) -> tuple[EnrollmentKey, str]:
    """A new key and its value (shown once). `value` is for `init_from_env`, which is given
    the key by the operator; otherwise a random one is made."""
    _ensure_admin(organization=organization, actor=actor)
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", code="invalid_value")
    key = value if value is not None else generate_secret(ENROLL_KEY_PREFIX)
    _enroll_key_check(key)
    with organization_scope(organization):
        enrollment_key = EnrollmentKey(
            organization=organization,
            name=_label_clean(name, what="key", max_length=100, required=True),
            key_digest=hash_secret(key),
            display_prefix=key[:KEY_DISPLAY_PREFIX_LENGTH],
            created_by=actor,
            expires_at=expires_at,
        )
        try:
            with transaction.atomic():
                enrollment_key.save(force_insert=True)
        except IntegrityError:
            raise ApplicationError("That key exists already.", code="conflict") from None
    return enrollment_key, key


@transaction.atomic
def enrollment_key_revoke(*, enrollment_key: EnrollmentKey, actor: User | None) -> EnrollmentKey:
    """`actor` None: an operator, from the admin."""
    if actor is not None:
        _ensure_admin(organization=enrollment_key.organization, actor=actor)
    if enrollment_key.revoked_at is None:
        enrollment_key.revoked_at = timezone.now()
        enrollment_key.save(update_fields=["revoked_at"])
    return enrollment_key


@transaction.atomic
def device_enroll(*, key: str, name: str, os: str, agent_version: str) -> tuple[Device, str]:
    """A machine joins the key's organization (`clawtrace login --enroll-key`)."""
    enrollment_key = enrollment_key_get_by_value(key=key)
    if enrollment_key is None or not enrollment_key.is_usable:
        raise InvalidEnrollKeyError("The enrollment key is unknown, revoked or expired.")
    organization = _device_link_ensure(enrollment_key.organization)
    now = timezone.now()
    EnrollmentKey.all_orgs.filter(pk=enrollment_key.pk).update(uses=F("uses") + 1, last_used_at=now)
    return _device_create(
        organization=organization,
        name=name,
        os=os,
        agent_version=agent_version,
        created_by=enrollment_key.created_by,
        enrollment_key=enrollment_key,
    )


# --- A device's life ----------------------------------------------------------------------------


def device_seen(*, device: Device) -> None:
    """Note that the device called; one write a minute at most, whatever the call rate."""
    now = timezone.now()
    if device.last_seen_at is not None and now - device.last_seen_at < LAST_SEEN_RESOLUTION:
        return
    Device.all_orgs.filter(pk=device.pk).update(last_seen_at=now)
    device.last_seen_at = now


def device_revoke(*, device: Device, actor: User | None = None) -> Device:
    """Unlink the device: its secret stops working on its next call. `actor` is None when the
    device revokes itself (`clawtrace logout`)."""
    if actor is not None:
        _ensure_admin(organization=device.organization, actor=actor)
    if device.revoked_at is None:
        device.revoked_at = timezone.now()
        Device.all_orgs.filter(pk=device.pk, revoked_at__isnull=True).update(
            revoked_at=device.revoked_at
        )
        logger.info(
            "device revoked",
            extra={"organization_id": device.organization_id, "device_id": str(device.pk)},
        )
    return device


def device_rename(*, device: Device, actor: User, name: str) -> Device:
    _ensure_admin(organization=device.organization, actor=actor)
    device.name = _label_clean(
        name, what="device", max_length=DEVICE_NAME_MAX_LENGTH, required=True
    )
    Device.all_orgs.filter(pk=device.pk).update(name=device.name)
    return device
