"""Who is calling a sender endpoint: `Authorization: Bearer ctd_...`, and how often it may.

A device is not a user: authentication leaves `request.user` anonymous and puts the `Device`
in `request.auth`; `HasDevice` is the permission. The tenant is the device's organization
(`protocol.DeviceScopedAPIView` enters its scope).
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions, throttling
from rest_framework.request import Request
from rest_framework.settings import api_settings

from clawtrace_site.credentials import BearerSecretAuthentication
from devices.models import Device
from devices.selectors import device_get_by_secret
from devices.services import device_seen

# Fallback rates while settings do not name the scopes (REST_FRAMEWORK's
# DEFAULT_THROTTLE_RATES wins when it does). Load control, not security: the secrets have 256
# bits. A device syncing a million turns sends 1,000 batches, hence room for that in a minute.
DEFAULT_RATES = {
    "device": "1800/min",
    # Unauthenticated linking calls, per client address: a machine polls every 5 s (12/min),
    # and a fleet behind one address may enroll many machines at once.
    "device_link": "120/min",
}


class DeviceSecretAuthentication(BearerSecretAuthentication):
    credential_name = "device secret"

    def credential_get(self, value: str) -> Device | None:
        return device_get_by_secret(secret=value)

    def credential_used(self, credential: Device) -> None:
        device_seen(device=credential)


class HasDevice(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Device)


class _ScopedRateWithDefault(throttling.ScopedRateThrottle):
    def get_rate(self) -> str | None:
        # Read the settings now, not at import: DRF binds THROTTLE_RATES to the class when
        # it is defined, so tests (and reloaded settings) would not be seen.
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return rates.get(self.scope) or DEFAULT_RATES.get(self.scope)


class DeviceRateThrottle(_ScopedRateWithDefault):
    """Per device (scope `device`): the key is the device id, so two devices behind one
    address do not share a budget, and one device cannot spread over addresses."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        device = request.auth
        if not isinstance(device, Device):
            return None
        return self.cache_format % {"scope": self.scope, "ident": device.pk}


class LinkRateThrottle(_ScopedRateWithDefault):
    """Per client address (scope `device_link`) for the unauthenticated linking calls."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
