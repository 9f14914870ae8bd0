"""What the nightly retention job remembers about each organization.

The job deletes what is older than the plan allows. A downgrade (a refund, a lost dispute)
shortens that at once, which would delete weeks of history overnight; instead the job keeps
applying the retention it enforced before, e-mails the owners, and shortens it only once the
grace period has passed. This row is that memory: the retention in force, and the pending
shorter one with when the owners were warned and from when it applies.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.tenancy import OrgOwnedModel


class RetentionState(OrgOwnedModel):
    # Days of history the job keeps at the moment (the plan's, or the longer one it had
    # before a downgrade whose grace period is still running).
    enforced_days = models.PositiveIntegerField()
    # A shorter retention announced to the owners, applied from `applies_from` on.
    pending_days = models.PositiveIntegerField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    applies_from = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    # Events the last run deleted (its rollup rows are in its log line).
    last_deleted_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="retention_state_org_unique"),
            models.CheckConstraint(
                condition=Q(pending_days__isnull=True)
                | Q(pending_days__lt=F("enforced_days"), applies_from__isnull=False),
                name="retention_state_pending_is_shorter",
            ),
        ]

    def __str__(self) -> str:
        pending = (
            f", {self.pending_days} from {self.applies_from:%Y-%m-%d}" if self.pending_days else ""
        )
        return f"{self.organization_id}: {self.enforced_days} days{pending}"
