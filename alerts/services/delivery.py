"""Firing an alert once per window, and sending each of its deliveries.

Firing records the alert and its deliveries in one transaction, then enqueues one task per
delivery after the commit (style.md 7), so a worker never looks for rows that are not there and
a webhook that hangs or answers 500 holds up nothing but its own task. Nothing here runs in the
ingest request path: the rules are evaluated by a periodic task (`alerts_evaluate_all_task`,
calling `alerts.services.evaluation`), which fires through `alert_fire`.

Sending is idempotent: the delivery row is locked for the attempt (PostgreSQL skips a row
another worker holds), a delivery already sent, failed or skipped is left alone, and the attempt
is logged in the same transaction that updates the delivery. A worker killed mid-request leaves
neither, so the redelivered task tries again: webhooks get at-least-once, never lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from clawtrace.alerts.channels import Alert as AgentAlert
from clawtrace.alerts.channels import webhook_body
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import organization_scope
from alerts.channels import AttemptOutcome, email_send, webhook_post
from alerts.models import (
    FINISHED_STATUSES,
    Alert,
    AlertDelivery,
    AlertRule,
    Channel,
    DeliveryAttempt,
    DeliveryStatus,
    Trigger,
)
from alerts.selectors import alert_rule_recipient_emails, delivery_stale_list

logger = logging.getLogger(__name__)

UNITS = ("usd", "tokens", "requests")


class DeliveryRetryableError(Exception):
    """An attempt failed in a way worth another try; the delivery task retries on it."""


# --- Firing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """One triggered window of a rule, as the evaluation found it."""

    window_key: str
    window_start: datetime
    window_end: datetime
    value: Decimal
    threshold: Decimal | None
    unit: str = "usd"
    anomaly_id: int | None = None


def alert_fire(*, rule: AlertRule, firing: Firing) -> tuple[Alert, bool]:
    """Record the alert for the rule's window, once; (alert, whether it is new). A new alert
    gets one delivery per channel of the rule, each sent by its own task after the commit."""
    if firing.unit not in UNITS:
        raise ValueError(f"unknown unit {firing.unit!r}")
    organization = rule.organization
    with transaction.atomic(), organization_scope(organization):
        # get_or_create retries the read when the insert meets the unique constraint, so two
        # evaluations of one window at once give one alert, and only one of them `created`.
        alert, created = Alert.objects.get_or_create(
            organization=organization,
            rule=rule,
            window_key=firing.window_key,
            defaults={
                "rule_name": rule.name,
                "trigger": rule.trigger,
                "window_start": firing.window_start,
                "window_end": firing.window_end,
                "value": firing.value,
                "threshold": firing.threshold,
                "unit": firing.unit,
                "anomaly_id": firing.anomaly_id,
            },
        )
        if not created:
            return alert, False
        deliveries = AlertDelivery.objects.bulk_create(
            [
                AlertDelivery(organization=organization, alert=alert, channel=channel)
                for channel in rule.channels
            ]
        )
        delivery_ids = [delivery.pk for delivery in deliveries]
        transaction.on_commit(
            lambda: _deliveries_enqueue(organization_id=organization.pk, delivery_ids=delivery_ids)
        )
    logger.info(
        "alert fired",
        extra={
            "organization_id": organization.pk,
            "rule_id": rule.pk,
            "alert_id": alert.pk,
            "window_key": firing.window_key,
        },
    )
    return alert, True


def _deliveries_enqueue(*, organization_id: int, delivery_ids: list[int]) -> None:
    from alerts.tasks import alert_delivery_send_task

    for delivery_id in delivery_ids:
        try:
            alert_delivery_send_task.delay(organization_id=organization_id, delivery_id=delivery_id)
        except Exception:
            # The broker is down: the alert and its deliveries are committed, and the sweep
            # (`alert_deliveries_requeue_stale`) enqueues them again later.
            logger.exception(
                "alert delivery could not be enqueued; the sweep will retry it",
                extra={"organization_id": organization_id, "delivery_id": delivery_id},
            )


# --- What an alert says -------------------------------------------------------------------------


def _figure(value: Decimal | None, unit: str) -> str:
    if value is None:
        return "\N{EN DASH}"
    if unit == "usd":
        return f"${value:,.2f}"
    return f"{int(value):,} {unit}"


_TRIGGER_PHRASES = {
    Trigger.SPEND_DAY: "Spend today",
    Trigger.SPEND_MONTH: "Spend this month",
    Trigger.DAILY_BUDGET: "Daily spend over budget",
    Trigger.SESSION_SPIKE: "A session's spend spiked",
    Trigger.HOURLY_BURN: "Hourly spend over the limit",
    Trigger.HOURLY_REQUESTS: "Requests per hour over the limit",
    Trigger.HOURLY_TOKENS: "Tokens per hour over the limit",
    Trigger.HOUR_OF_WEEK: "An unusual hour against the usual week",
}


@dataclass(frozen=True)
class AlertText:
    title: str
    message: str
    details: dict[str, Any]


def alert_text(alert: Alert) -> AlertText:
    """Title, message and figures of an alert: amounts, counts and the window, nothing of any
    session's content (an alert carries none)."""
    organization = alert.organization
    phrase = _TRIGGER_PHRASES.get(Trigger(alert.trigger), alert.trigger)
    value = _figure(alert.value, alert.unit)
    title = f"{organization.name}: {phrase.lower()}: {value}"
    limit = f", over {_figure(alert.threshold, alert.unit)}" if alert.threshold is not None else ""
    start = alert.window_start.astimezone(UTC)
    end = alert.window_end.astimezone(UTC)
    message = (
        f"{phrase}: {value}{limit} (rule \u201c{alert.rule_name}\u201d, window "
        f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)."
    )
    details = {
        "organization": organization.slug,
        "trigger": alert.trigger,
        "window_key": alert.window_key,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "value": float(alert.value),
        "threshold": float(alert.threshold) if alert.threshold is not None else None,
        "unit": alert.unit,
    }
    return AlertText(title=title, message=message, details=details)


def alert_webhook_body(alert: Alert) -> dict[str, Any]:
    text = alert_text(alert)
    return webhook_body(
        AgentAlert(
            rule=alert.trigger,
            window_key=alert.window_key,
            severity="warning",
            title=text.title,
            message=text.message,
            details=text.details,
        )
    )


def _alert_email(alert: Alert) -> tuple[str, str]:
    text = alert_text(alert)
    context = {
        "alert": alert,
        "text": text,
        "organization": alert.organization,
        "value": _figure(alert.value, alert.unit),
        "threshold": _figure(alert.threshold, alert.unit) if alert.threshold is not None else "",
        "alerts_url": settings.SITE_URL.rstrip("/")
        + reverse("alerts:rule_list", args=[alert.organization.slug]),
    }
    subject = " ".join(render_to_string("alerts/email/alert_subject.txt", context).split())
    body = render_to_string("alerts/email/alert_message.txt", context)
    return f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}", body


# --- Sending ------------------------------------------------------------------------------------


def _attempt(delivery: AlertDelivery) -> AttemptOutcome | None:
    """Send the delivery once; None when there is nothing to send it to."""
    alert = delivery.alert
    rule = alert.rule
    if rule is None or not rule.is_enabled or delivery.channel not in rule.channels:
        return None
    if delivery.channel == Channel.EMAIL:
        recipients = alert_rule_recipient_emails(rule=rule)
        if not recipients:
            return None
        subject, body = _alert_email(alert)
        return email_send(subject=subject, body=body, to=recipients)
    return webhook_post(rule.webhook_url, alert_webhook_body(alert))


def alert_delivery_send(
    *, organization: Organization, delivery_id: int, is_final_attempt: bool
) -> AlertDelivery | None:
    """Try a delivery once. Raises `DeliveryRetryableError` when it failed and is worth
    retrying (and this was not the final attempt); otherwise returns the delivery, marked
    sent, failed or skipped (or None: gone, or being sent by another worker right now)."""
    with organization_scope(organization):
        with transaction.atomic():
            delivery = (
                AlertDelivery.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("alert__rule", "alert__organization")
                .filter(pk=delivery_id)
                .first()
            )
            if delivery is None:
                return None
            if delivery.status in FINISHED_STATUSES:
                return delivery
            outcome = _attempt(delivery)
            now = timezone.now()
            delivery.updated_at = now
            if outcome is None:
                delivery.status = DeliveryStatus.SKIPPED
                delivery.last_error = "Nothing to send to: the rule or its recipients are gone."
            else:
                DeliveryAttempt.objects.create(
                    organization=organization,
                    delivery=delivery,
                    channel=delivery.channel,
                    attempted_at=now,
                    succeeded=outcome.succeeded,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                )
                delivery.attempt_count += 1
                delivery.last_error = outcome.error
                if outcome.succeeded:
                    delivery.status = DeliveryStatus.SENT
                    delivery.sent_at = now
                elif outcome.retryable and not is_final_attempt:
                    delivery.status = DeliveryStatus.RETRYING
                else:
                    delivery.status = DeliveryStatus.FAILED
            delivery.save(
                update_fields=["status", "attempt_count", "last_error", "updated_at", "sent_at"]
            )
        log_extra = {
            "organization_id": organization.pk,
            "delivery_id": delivery.pk,
            "channel": delivery.channel,
            "status": delivery.status,
            "attempt": delivery.attempt_count,
        }
        if delivery.status == DeliveryStatus.RETRYING:
            logger.info("alert delivery failed; retrying", extra=log_extra)
            raise DeliveryRetryableError(delivery.last_error or "retryable failure")
        log = logger.warning if delivery.status == DeliveryStatus.FAILED else logger.info
        log("alert delivery finished", extra=log_extra)
        return delivery


def alert_deliveries_requeue(*, delivery_ids: list[int], now: datetime) -> int:
    """Send failed deliveries again (an operator's action, after fixing a webhook): back to
    pending, with the attempt count and log kept, and enqueued. Cross-organization."""
    rows = list(
        AlertDelivery.all_orgs.filter(
            pk__in=delivery_ids, status=DeliveryStatus.FAILED
        ).values_list("pk", "organization_id")
    )
    for delivery_id, organization_id in rows:
        with transaction.atomic():
            AlertDelivery.all_orgs.filter(pk=delivery_id).update(
                status=DeliveryStatus.PENDING, updated_at=now
            )
            transaction.on_commit(
                lambda d=delivery_id, o=organization_id: _deliveries_enqueue(
                    organization_id=o, delivery_ids=[d]
                )
            )
    return len(rows)


def alert_deliveries_requeue_stale(*, older_than: timedelta | None = None) -> int:
    """Enqueue again the unfinished deliveries nobody touched for `older_than` (longer than
    the longest retry backoff): their task was lost. Sending twice is harmless (see above), so
    a sweep that races a slow retry costs one no-op task. Cross-organization."""
    older_than = older_than or timedelta(seconds=settings.ALERT_DELIVERY_STALE_AFTER_SECONDS)
    stale = list(
        delivery_stale_list(updated_before=timezone.now() - older_than).values_list(
            "pk", "organization_id"
        )
    )
    now = timezone.now()
    for delivery_id, organization_id in stale:
        # Touched first, so that the next sweep does not enqueue it again before it runs.
        AlertDelivery.all_orgs.filter(pk=delivery_id).update(updated_at=now)
        _deliveries_enqueue(organization_id=organization_id, delivery_ids=[delivery_id])
    if stale:
        logger.warning("stale alert deliveries enqueued again", extra={"count": len(stale)})
    return len(stale)
