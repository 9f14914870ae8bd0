"""Reads for devices. A secret is looked up by its digest across organizations (it is the
credential, so it names its organization) and the digest is compared in constant time."""

from __future__ import annotations

import re

from django.db.models import F, QuerySet

from accounts.limits import limit_reached_message, organization_limits
from accounts.models import Organization, Role, User
from accounts.tenancy import organization_scope
from clawtrace_site.tokens import hash_secret, secret_matches
from devices.models import Device, DeviceAuthorization, EnrollmentKey

DEVICE_SECRET_PREFIX = "ctd_"  # noqa: S105  (a prefix, not a secret)
ENROLL_KEY_PREFIX = "cte_"
# `generate_secret`'s body: 32 bytes in lower-case base32 without padding.
_GENERATED_SECRET = re.compile(r"[a-z2-7]{52}")
# Keys given by an operator (`init_from_env`) need not be ours, only long enough.
ENROLL_KEY_MIN_LENGTH = 28
ENROLL_KEY_MAX_LENGTH = 128
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8


def device_get_by_secret(*, secret: str) -> Device | None:
    """The device a secret belongs to (revoked ones too: the caller says no), or None."""
    if not secret.startswith(DEVICE_SECRET_PREFIX) or not _GENERATED_SECRET.fullmatch(
        secret[len(DEVICE_SECRET_PREFIX) :]
    ):
        return None
    digest = hash_secret(secret)
    device = Device.all_orgs.select_related("organization").filter(secret_digest=digest).first()
    if device is None or not secret_matches(secret, device.secret_digest):
        return None
    return device


def enrollment_key_get_by_value(*, key: str) -> EnrollmentKey | None:
    if not (
        key.startswith(ENROLL_KEY_PREFIX)
        and ENROLL_KEY_MIN_LENGTH <= len(key) <= ENROLL_KEY_MAX_LENGTH
    ):
        return None
    digest = hash_secret(key)
    enrollment_key = (
        EnrollmentKey.all_orgs.select_related("organization").filter(key_digest=digest).first()
    )
    if enrollment_key is None or not secret_matches(key, enrollment_key.key_digest):
        return None
    return enrollment_key


def device_authorization_get_by_code(*, device_code: str) -> DeviceAuthorization | None:
    if not 20 <= len(device_code) <= 100:
        return None
    digest = hash_secret(device_code)
    authorization = DeviceAuthorization.objects.filter(device_code_digest=digest).first()
    if authorization is None or not secret_matches(device_code, authorization.device_code_digest):
        return None
    return authorization


def user_code_normalize(value: str) -> str | None:
    """What a person typed (`wdjb-mjht`, ` WDJB MJHT `) as the stored form, or None when it
    cannot be a user code."""
    letters = "".join(ch for ch in value.upper() if ch not in "- \t")
    if len(letters) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in letters):
        return None
    return letters


def device_authorization_get_pending(*, user_code: str) -> DeviceAuthorization | None:
    """The authorization waiting for this user code, or None (unknown, decided or expired:
    the page says the same for all three)."""
    code = user_code_normalize(user_code)
    if code is None:
        return None
    authorization = DeviceAuthorization.objects.filter(user_code=code, status="pending").first()
    if authorization is None or authorization.is_expired:
        return None
    return authorization


def organization_list_for_linking(*, user: User) -> QuerySet[Organization]:
    """The organizations where `user` may approve a device: those they own or administer."""
    return (
        Organization.objects.filter(
            memberships__user=user, memberships__role__in=[Role.OWNER, Role.ADMIN]
        )
        .distinct()
        .order_by("name", "id")
    )


def device_list(*, organization: Organization) -> list[Device]:
    """The organization's devices, linked ones first, each by name."""
    with organization_scope(organization):
        return list(
            Device.objects.select_related("created_by").order_by(
                F("revoked_at").asc(nulls_first=True), "name", "created_at"
            )
        )


def enrollment_key_list(*, organization: Organization) -> list[EnrollmentKey]:
    with organization_scope(organization):
        return list(EnrollmentKey.objects.select_related("created_by").order_by("-created_at"))


def device_count_linked(*, organization: Organization) -> int:
    """Devices that can still send (not revoked): what a plan's device limit counts."""
    with organization_scope(organization):
        return Device.objects.filter(revoked_at__isnull=True).count()


def device_link_refusal(*, organization: Organization) -> str | None:
    """Why the organization's plan lets no more devices link (which plan allows more, where to
    upgrade, or that revoking one frees a place), or None when one more fits. Linking asks it
    under a lock (`devices.services`); the Devices page shows it."""
    limits = organization_limits(organization=organization)
    if limits.allows("devices", device_count_linked(organization=organization) + 1):
        return None
    return limit_reached_message(organization=organization, limits=limits, resource="devices")
