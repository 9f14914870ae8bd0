"""What the sender sends: one row per assistant turn, metadata only.

No field here can hold message text: every string is a bounded label (model, project label,
session id, branch label, tool names) and the rest are counts, costs and times. The columns
are the contract's table (docs/sync-protocol.md, "Ingest").
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.tenancy import OrgOwnedModel


def _organization_fk() -> models.ForeignKey:
    """`OrgOwnedModel`'s foreign key without its own index: these tables take a thousand rows a
    batch, and each has a composite index leading with `organization_id` that serves every
    organization filter (and the cascade when an organization is deleted)."""
    return models.ForeignKey(
        "accounts.Organization",
        on_delete=models.CASCADE,
        related_name="%(class)ss",
        db_index=False,
    )


class Source(models.TextChoices):
    CLAUDE_CODE = "claude-code", "Claude Code"
    OPENCLAW = "openclaw", "OpenClaw"


class Event(OrgOwnedModel):
    """One turn, once per organization whichever device sent it: the unique constraint on
    (organization, event_id) is what makes a retried batch or a second machine harmless."""

    organization = _organization_fk()
    # 32 hex digits on the wire (the agent's two 64-bit hashes); stored as the 128-bit value
    # it is, which keeps the unique index small.
    event_id = models.UUIDField()
    # The device that first sent it (others that send it too are in Delivery). Devices are
    # revoked, never deleted while their events exist; no index: Delivery answers "whose".
    device = models.ForeignKey(
        "devices.Device", on_delete=models.RESTRICT, related_name="+", db_index=False
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    agent = models.CharField(max_length=128, blank=True)
    # null: the privacy setting left it out, which is not the same as an empty label.
    project = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    session_id = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    occurred_at = models.DateTimeField()
    input_tokens = models.PositiveBigIntegerField()
    output_tokens = models.PositiveBigIntegerField()
    cache_read_tokens = models.PositiveBigIntegerField()
    cache_write_5m_tokens = models.PositiveBigIntegerField()
    cache_write_1h_tokens = models.PositiveBigIntegerField()
    web_search_requests = models.PositiveIntegerField()
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    logged_cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    price_source = models.CharField(max_length=32, blank=True)
    is_sidechain = models.BooleanField(default=False)
    tools = models.JSONField(default=list, blank=True)
    git_branch = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    received_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "event_id"], name="ingest_event_org_event_id_unique"
            ),
        ]
        indexes = [
            # The dashboards' and reports' ranges (a later issue) read by time.
            models.Index(fields=["organization", "occurred_at"], name="ingest_event_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id.hex} ({self.model})"

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
        )


class Delivery(OrgOwnedModel):
    """That a device sent an event the organization already held from another device.

    A device's own totals (`GET /api/v1/stats`) are over what it sent: the events it sent
    first (`Event.device`) and these, so that two machines with one history each agree with
    the server. The common case (one machine, one history) writes no row here."""

    organization = _organization_fk()
    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    event_id = models.UUIDField()

    class Meta(OrgOwnedModel.Meta):
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "device", "event_id"],
                name="ingest_delivery_org_device_event_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id.hex} from {self.device_id}"
