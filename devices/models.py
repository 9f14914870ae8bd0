"""Devices and the two ways of linking one (docs/sync-protocol.md, "Linking a device").

Secrets (device secrets, enrollment keys, device codes) are stored only as SHA-256 digests
(`clawtrace_site.tokens`); the plaintext exists in one response and nowhere else.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import OrgOwnedModel


class EnrollmentKey(OrgOwnedModel):
    """A fleet key (`cte_...`): any machine that shows it joins the organization, until the key
    expires or is revoked. Revoking a key does not unlink the machines it enrolled."""

    name = models.CharField(max_length=100)
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, enough to tell keys apart on the Devices page; never the rest.
    display_prefix = models.CharField(max_length=16, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["organization", "created_at"], name="devices_enrollkey_org_created"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and timezone.now() >= self.expires_at

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"


class Device(OrgOwnedModel):
    """A machine whose agent sends to the organization. Its secret (`ctd_...`) is the only
    credential of every sender call; revoking is one-way."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    os = models.CharField("OS", max_length=100, blank=True)
    agent_version = models.CharField(max_length=64, blank=True)
    secret_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who approved it, or who made the enrollment key it used.",
    )
    enrollment_key = models.ForeignKey(
        EnrollmentKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    # Events this device has delivered that the organization still holds (ingest keeps it).
    event_count = models.PositiveBigIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["name", "created_at"]
        indexes = [models.Index(fields=["organization", "name"], name="devices_device_org_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AuthorizationStatus(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXCHANGED = "exchanged", "Used"


class DeviceAuthorization(models.Model):
    """One run of the device authorization grant (RFC 8628): a machine asked to be linked and
    waits, polling with its device code, until a member approves or denies its user code.

    Not org-owned: the organization is only chosen at approval. The row is the credential's
    state, looked up by the device code's digest or by the user code, never listed.
    """

    device_code_digest = models.CharField(max_length=64, unique=True, editable=False)
    # Eight letters, upper case, no dash (shown as WDJB-MJHT); unique so a code names one row.
    user_code = models.CharField(max_length=8, unique=True, editable=False)
    name = models.CharField(max_length=100)
    os = models.CharField("OS", max_length=100, blank=True)
    agent_version = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=10, choices=AuthorizationStatus.choices, default=AuthorizationStatus.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    interval = models.PositiveSmallIntegerField(default=5, help_text="Seconds between polls.")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    device = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["expires_at"], name="devices_authz_expires")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=AuthorizationStatus.values),
                name="devices_authz_status_known",
            ),
            # An approval always names the organization it links to.
            models.CheckConstraint(
                condition=~models.Q(status__in=["approved", "exchanged"])
                | models.Q(organization__isnull=False),
                name="devices_authz_approved_has_org",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_code_display} ({self.status})"

    @property
    def user_code_display(self) -> str:
        return f"{self.user_code[:4]}-{self.user_code[4:]}"

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at
