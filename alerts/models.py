"""Alert rules, the alerts they fire, and how each alert was delivered.

An `AlertRule` says what to watch (an anomaly kind that analytics detects, or the
organization's spend over a threshold per day or month) and where to say so (e-mail to chosen
members, a webhook). When it triggers, an `Alert` is recorded for the rule and the window it
triggered in, once: UNIQUE(rule, window_key) makes a second evaluation of the same window, a
retried task or two workers at once a no-op. Each alert has one `AlertDelivery` per channel,
sent by its own task, and every try of a delivery leaves a `DeliveryAttempt` (the log an admin
reads). Nothing here holds message text: an alert carries figures (amounts, counts, windows)
and the rule's own name.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.tenancy import OrgOwnedModel


class Trigger(models.TextChoices):
    # The anomaly kinds analytics detects (`analytics.Anomaly.kind`): fixed thresholds of the
    # original design and the hour-of-week baseline.
    DAILY_BUDGET = "daily_budget", "Anomaly: daily budget"
    SESSION_SPIKE = "session_spike", "Anomaly: session spike"
    HOURLY_BURN = "hourly_burn", "Anomaly: hourly burn"
    HOURLY_REQUESTS = "hourly_requests", "Anomaly: requests per hour"
    HOURLY_TOKENS = "hourly_tokens", "Anomaly: tokens per hour"
    HOUR_OF_WEEK = "hour_of_week", "Anomaly: unusual hour for the week (baseline)"
    # The organization's own spend against the rule's threshold, in its time zone.
    SPEND_DAY = "spend_day", "Spend per day over a threshold"
    SPEND_MONTH = "spend_month", "Spend per month over a threshold"


ANOMALY_TRIGGERS = frozenset(
    {
        Trigger.DAILY_BUDGET,
        Trigger.SESSION_SPIKE,
        Trigger.HOURLY_BURN,
        Trigger.HOURLY_REQUESTS,
        Trigger.HOURLY_TOKENS,
        Trigger.HOUR_OF_WEEK,
    }
)
SPEND_TRIGGERS = frozenset({Trigger.SPEND_DAY, Trigger.SPEND_MONTH})
# Sorted, for the check constraint: a set's order changes between runs, and with it the
# migration autodetector's idea of the constraint.
_SPEND_TRIGGER_VALUES = sorted(trigger.value for trigger in SPEND_TRIGGERS)


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class AlertRule(OrgOwnedModel):
    name = models.CharField(max_length=100)
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    # Only for the spend triggers (a check constraint says so): dollars per day or per month.
    threshold_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    email_enabled = models.BooleanField(default=False)
    # An incoming-webhook URL (Slack, Discord or anything taking their JSON). It is a
    # credential of sorts (whoever has it can post to the channel): members see its host only.
    webhook_url = models.CharField(max_length=500, blank=True)
    is_enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["organization", "is_enabled"], name="alerts_rule_org_enabled"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(trigger__in=Trigger.values), name="alerts_rule_trigger_known"
            ),
            models.CheckConstraint(
                condition=(
                    Q(trigger__in=_SPEND_TRIGGER_VALUES, threshold_usd__gt=0)
                    | (~Q(trigger__in=_SPEND_TRIGGER_VALUES) & Q(threshold_usd__isnull=True))
                ),
                name="alerts_rule_threshold_iff_spend",
            ),
            models.CheckConstraint(
                condition=Q(email_enabled=True) | ~Q(webhook_url=""),
                name="alerts_rule_has_a_channel",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_spend_rule(self) -> bool:
        return self.trigger in SPEND_TRIGGERS

    @property
    def channels(self) -> list[str]:
        return [
            channel
            for channel, on in (
                (Channel.EMAIL, self.email_enabled),
                (Channel.WEBHOOK, bool(self.webhook_url)),
            )
            if on
        ]


class AlertRecipient(OrgOwnedModel):
    """A member who gets a rule's e-mail. By membership, so that someone who leaves the
    organization stops getting its alerts without anyone editing the rule."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="recipients")
    membership = models.ForeignKey(
        "accounts.Membership", on_delete=models.CASCADE, related_name="+"
    )

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "rule", "membership"],
                name="alerts_recipient_org_rule_membership_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.membership_id} for rule {self.rule_id}"


class Alert(OrgOwnedModel):
    """A rule that triggered, for one window. Kept when its rule is deleted (the delivery log
    still makes sense), with the rule's name as it was."""

    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    rule_name = models.CharField(max_length=100)
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    # What makes the window unique for the rule (`alerts.services.evaluation`): "day:2026-03-01"
    # or "month:2026-03" (local) for spend, "anomaly:<kind>:<window start, UTC>[:<subject
    # digest>]" for an anomaly.
    window_key = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    value = models.DecimalField(max_digits=24, decimal_places=6)
    threshold = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    # usd, tokens or requests: what `value` and `threshold` count.
    unit = models.CharField(max_length=16, default="usd")
    # The analytics anomaly it came from, if any (an id, not a key: anomalies may be pruned
    # by retention before the alert history is).
    anomaly_id = models.BigIntegerField(null=True, blank=True)
    fired_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["-fired_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-fired_at"], name="alerts_alert_org_fired"),
        ]
        constraints = [
            # Once per window: what makes evaluation and its task safe to run twice.
            models.UniqueConstraint(
                fields=["organization", "rule", "window_key"],
                name="alerts_alert_org_rule_window_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_name} ({self.window_key})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # Nothing to send to (no recipients left, the rule was deleted or disabled meanwhile).
    SKIPPED = "skipped", "Skipped"


FINISHED_STATUSES = frozenset({DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED})


class AlertDelivery(OrgOwnedModel):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempt_count = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta(OrgOwnedModel.Meta):
        verbose_name_plural = "alert deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweep that re-enqueues deliveries whose task was lost reads unfinished ones.
            # (cross-organization and small: only unfinished rows are in it).
            models.Index(
                fields=["updated_at"],
                condition=Q(status__in=["pending", "retrying"]),
                name="alerts_delivery_unfinished",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "alert", "channel"],
                name="alerts_delivery_org_alert_channel_unique",
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="alerts_delivery_status_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} for alert {self.alert_id}: {self.status}"


class DeliveryAttempt(OrgOwnedModel):
    """One try of a delivery: when, the answer (HTTP status, or the error), how long."""

    delivery = models.ForeignKey(AlertDelivery, on_delete=models.CASCADE, related_name="attempts")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    attempted_at = models.DateTimeField(default=timezone.now)
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["-attempted_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-attempted_at"], name="alerts_attempt_org_time"),
        ]

    def __str__(self) -> str:
        outcome = self.status_code or self.error or ("ok" if self.succeeded else "failed")
        return f"{self.channel} attempt at {self.attempted_at:%Y-%m-%d %H:%M:%S}: {outcome}"
