"""`Authorization: Bearer cto_...`: the organization API's credential.

A key is not a user: authentication leaves `request.user` anonymous and puts the
`OrganizationApiKey` in `request.auth`, whose organization is the tenant
(`clawtrace_site.api.CredentialScopedAPIView` enters its scope). Device secrets (`ctd_`) are
another credential for other endpoints and are refused here like any unknown key.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions, throttling
from rest_framework.request import Request
from rest_framework.settings import api_settings

from analytics.models import OrganizationApiKey
from analytics.selectors import api_key_get_by_value
from analytics.services import api_key_used
from clawtrace_site.credentials import BearerSecretAuthentication

# Fallback while settings do not name the scope: scripts and a menu bar app polling every few
# seconds fit in it many times over. Load control, not security (the keys have 256 bits).
DEFAULT_RATE = "600/min"


class OrganizationApiKeyAuthentication(BearerSecretAuthentication):
    credential_name = "organization API key"

    def credential_get(self, value: str) -> OrganizationApiKey | None:
        return api_key_get_by_value(value=value)

    def credential_used(self, credential: OrganizationApiKey) -> None:
        api_key_used(api_key=credential)


class HasOrganizationApiKey(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, OrganizationApiKey)


class OrganizationApiKeyThrottle(throttling.SimpleRateThrottle):
    """Per key (scope `org_api`), so that two scripts of one organization behind one address
    do not share a budget."""

    scope = "org_api"

    def get_rate(self) -> str:
        # Read at request time, not import: DRF binds THROTTLE_RATES when the class is made.
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return rates.get(self.scope) or DEFAULT_RATE

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        api_key = request.auth
        if not isinstance(api_key, OrganizationApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.pk}
