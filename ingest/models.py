"""What the sender sends: one row per assistant turn, metadata only.

No field here can hold message text: every string is a bounded label (model, project label,
session id, branch label, tool names) and the rest are counts, costs and times. The columns
are the contract's table (docs/sync-protocol.md, "Ingest").
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.tenancy import OrgOwnedModel


def _organization_fk(**options) -> models.ForeignKey:
    """`OrgOwnedModel`'s foreign key without its own index: these tables take a thousand rows a
    batch, and each has a composite index leading with `organization_id` that serves every
    organization filter (and the cascade when an organization is deleted)."""
    return models.ForeignKey(
        "accounts.Organization",
        on_delete=models.CASCADE,
        related_name="%(class)ss",
        db_index=False,
        **options,
    )


class Source(models.TextChoices):
    CLAUDE_CODE = "claude-code", "Claude Code"
    OPENCLAW = "openclaw", "OpenClaw"


class Event(OrgOwnedModel):
    """One turn, once per organization whichever device sent it (`EventKey` makes it once).

    On PostgreSQL the table is partitioned by month of `occurred_at` (migration 0002,
    `ingest/partitions.py`), so retention drops whole months and a dashboard's range reads only
    its months. A partitioned table's unique constraints must contain the partition key, so
    (organization, event_id) cannot be unique here: `EventKey`, a small table that is not
    partitioned, holds that constraint instead (docs/scaling.md, "Raw events table"). `id`
    stays unique (one sequence) but has no unique index on PostgreSQL; a BRIN index finds a
    row by it for the admin.
    """

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
        indexes = [
            # The dashboards' and rollups' ranges read by time; ingest finds a held row by
            # (organization, occurred_at from its EventKey, event_id).
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


class EventKey(OrgOwnedModel):
    """That the organization holds the event of this id, and where: its `occurred_at`, which
    names the partition of `Event` the row is in.

    Its primary key (organization, event_id) is what makes an event once per organization:
    ingest claims ids with `INSERT ... ON CONFLICT DO NOTHING RETURNING`, so what comes back is
    exactly the events this batch adds, whatever other batches do at the same moment, and the
    key row is the lock that orders two batches holding the same event (ingest/services.py).
    Not partitioned, and narrow (three columns), so that the check stays cheap at any size.
    """

    # No foreign-key constraint: the Event row of the same transaction has one, and a
    # deferred check per row here cost a third of a batch's insert (bench/README.md).
    organization = _organization_fk(db_constraint=False)
    event_id = models.UUIDField()
    occurred_at = models.DateTimeField()
    pk = models.CompositePrimaryKey("organization", "event_id")

    class Meta(OrgOwnedModel.Meta):
        db_table = "ingest_event_key"

    def __str__(self) -> str:
        return self.event_id.hex


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
