"""Organization API keys (`cto_...`): made, shown once, stored as a digest, revoked for good.

The same rules as device secrets and enrollment keys (clawtrace_site/tokens.py): 256 random
bits, a recognisable prefix for secret scanners, SHA-256 at rest, constant-time comparison.
Owners and admins make and revoke them; `init_from_env` makes one of a given value.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization, User
from accounts.tenancy import organization_scope
from analytics.models import OrganizationApiKey
from analytics.selectors.records import API_KEY_PREFIX
from analytics.services.roles import admin_ensure
from clawtrace_site.exceptions import ApplicationError
from clawtrace_site.tokens import generate_secret, hash_secret

logger = logging.getLogger(__name__)

API_KEY_NAME_MAX_LENGTH = 100
# A key given by an operator (CLAWTRACE_INIT_API_KEY) need not be one of ours, only long
# enough to be unguessable and short enough to be a header value.
API_KEY_MIN_LENGTH = 28
API_KEY_MAX_LENGTH = 128
KEY_DISPLAY_PREFIX_LENGTH = 12
# last_used_at is written at most once a minute per key, whatever the call rate.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_value_check(value: str) -> None:
    if not value.startswith(API_KEY_PREFIX):
        raise ApplicationError(
            f"An organization API key starts with {API_KEY_PREFIX}.", code="invalid_value"
        )
    if not API_KEY_MIN_LENGTH <= len(value) <= API_KEY_MAX_LENGTH or not value.isprintable():
        raise ApplicationError(
            f"An organization API key is {API_KEY_MIN_LENGTH} to {API_KEY_MAX_LENGTH} "
            "printable characters.",
            code="invalid_value",
        )
    if any(ch.isspace() for ch in value):
        raise ApplicationError("An organization API key has no spaces.", code="invalid_value")


def api_key_create(
    *, organization: Organization, actor: User, name: str, value: str | None = None
) -> tuple[OrganizationApiKey, str]:
    """A new key and its value, which exists in the caller's hands only. `value` is for
    `init_from_env`, which is given the key by the operator."""
    admin_ensure(organization=organization, actor=actor, what="manage API keys")
    name = " ".join((name or "").split())
    if not name:
        raise ApplicationError(
            "Give the key a name.", code="invalid_input", extra={"fields": {"name": ["Required."]}}
        )
    key = value if value is not None else generate_secret(API_KEY_PREFIX)
    api_key_value_check(key)
    with organization_scope(organization):
        api_key = OrganizationApiKey(
            organization=organization,
            name=name[:API_KEY_NAME_MAX_LENGTH],
            key_digest=hash_secret(key),
            display_prefix=key[:KEY_DISPLAY_PREFIX_LENGTH],
            created_by=actor,
        )
        try:
            with transaction.atomic():
                api_key.save(force_insert=True)
        except IntegrityError:
            raise ApplicationError("That key exists already.", code="conflict") from None
    logger.info(
        "organization API key created",
        extra={"organization_id": organization.pk, "api_key_id": api_key.pk},
    )
    return api_key, key


@transaction.atomic
def api_key_revoke(*, api_key: OrganizationApiKey, actor: User | None) -> OrganizationApiKey:
    """`actor` None: an operator, from the admin. Revoking twice changes nothing."""
    if actor is not None:
        admin_ensure(organization=api_key.organization, actor=actor, what="manage API keys")
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        OrganizationApiKey.all_orgs.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=api_key.revoked_at
        )
        logger.info(
            "organization API key revoked",
            extra={"organization_id": api_key.organization_id, "api_key_id": api_key.pk},
        )
    return api_key


def api_key_used(*, api_key: OrganizationApiKey) -> None:
    """Note the call; one write a minute at most."""
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    OrganizationApiKey.all_orgs.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
