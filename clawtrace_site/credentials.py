"""`Authorization: Bearer <secret>` for the credentials that are not users: a device's secret
(the sender's endpoints) and an organization API key (the read-only organization API).

Authentication leaves `request.user` anonymous and puts the credential in `request.auth`; its
organization is the tenant (`clawtrace_site.api.CredentialScopedAPIView` enters its scope).
Each credential refuses the other's secrets like any unknown one, and both answer in the same
words, so that a caller learns nothing from which check failed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request


class BearerSecretAuthentication(authentication.BaseAuthentication, ABC):
    keyword = "Bearer"
    # How messages name the credential: "device secret", "organization API key".
    credential_name: str

    @abstractmethod
    def credential_get(self, value: str) -> Any | None:
        """The credential this secret belongs to (revoked or not), or None."""

    @abstractmethod
    def credential_used(self, credential: Any) -> None:
        """Record that the credential was just used (its last-seen time)."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            value = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(f"Malformed {self.credential_name}.") from None
        credential = self.credential_get(value)
        if credential is None or credential.is_revoked:
            raise exceptions.AuthenticationFailed(f"Unknown or revoked {self.credential_name}.")
        self.credential_used(credential)
        return AnonymousUser(), credential

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when the header is missing.
        return f'{self.keyword} realm="clawtrace"'
