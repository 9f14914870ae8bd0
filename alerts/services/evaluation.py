"""Evaluating an organization's enabled rules: what analytics found, and what it spent.

A periodic task runs this for every organization with a rule on, a couple of minutes after
anomaly detection (the beat schedule in settings), so an anomaly found at :02 is alerted by
:04. Evaluation only reads (through analytics' selectors, the same reads the dashboard makes)
and fires; `alert_fire` records each alert once per (rule, window), so running it twice, from a
retried task or two workers at once, fires nothing new.

- Anomaly rules fire once per `analytics.Anomaly` row of their kind. Detection keeps one row per
  (kind, window, subject) and updates it when it finds it again, so the window key is built from
  those and a re-detection with a larger value is the same alert.
- Spend rules compare the organization's spend today or this month, in its time zone, with the
  rule's threshold; each local day or month is a window of its own.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.utils import timezone

from accounts.models import Organization
from alerts.models import ANOMALY_TRIGGERS, Alert, AlertRule, Trigger
from alerts.selectors import alert_rules_enabled
from alerts.services.delivery import Firing, alert_fire
from analytics.selectors import anomaly_recent_list, period_totals
from analytics.services.rollups import local_midnight

if TYPE_CHECKING:
    from analytics.models import Anomaly

logger = logging.getLogger(__name__)

# How far back an anomaly may have been last seen and still fire. Evaluation runs every five
# minutes, so a day covers any outage of beat or the workers worth catching up on; an anomaly
# nobody alerted within a day (a rule switched back on after a week off) is history, not news.
ANOMALY_LOOKBACK = timedelta(hours=24)

_ANOMALY_UNITS = {Trigger.HOURLY_REQUESTS: "requests", Trigger.HOURLY_TOKENS: "tokens"}
_PLACES = Decimal("0.000001")


def _anomaly_window_key(anomaly: Anomaly) -> str:
    # Alert.window_key holds 64 characters and a session's subject may be 220: the subject
    # goes in as a digest (stable, as the subject is). "anomaly:session_spike:2026-03-18T15:00Z:"
    # plus twelve hex digits is 52 characters.
    start = anomaly.window_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    key = f"anomaly:{anomaly.kind}:{start}"
    if anomaly.subject:
        key += ":" + hashlib.sha256(anomaly.subject.encode()).hexdigest()[:12]
    return key


def _anomaly_firings(
    rules: list[AlertRule], organization: Organization, now: datetime
) -> Iterator[tuple[AlertRule, Firing]]:
    if not rules:
        return
    # Read once for all the organization's anomaly rules, from the earliest moment any of them
    # could fire for; each rule then takes its own kind and its own start.
    since = max(now - ANOMALY_LOOKBACK, min(rule.created_at for rule in rules))
    anomalies = anomaly_recent_list(
        organization=organization,
        kinds={rule.trigger for rule in rules},
        updated_since=since,
    )
    for rule in rules:
        for anomaly in anomalies:
            # Last seen before the rule existed: last week's anomaly is not what a rule made
            # today is about. One still being found (today's spend over budget) fires, as a
            # spend rule over its threshold does when it is made.
            if anomaly.kind != rule.trigger or anomaly.updated_at < rule.created_at:
                continue
            yield (
                rule,
                Firing(
                    window_key=_anomaly_window_key(anomaly),
                    window_start=anomaly.window_start,
                    window_end=anomaly.window_end,
                    value=anomaly.value,
                    # The hour-of-week baseline has no fixed limit: the alert says "over" the
                    # spend expected for that hour, the one yardstick it was judged by.
                    threshold=(
                        anomaly.threshold if anomaly.threshold is not None else anomaly.baseline
                    ),
                    unit=_ANOMALY_UNITS.get(anomaly.kind, "usd"),
                    anomaly_id=anomaly.pk,
                ),
            )


def _spend_firings(
    rules: list[AlertRule], organization: Organization, now: datetime
) -> Iterator[tuple[AlertRule, Firing]]:
    if not rules:
        return
    # The dashboard's own "today" and "this month" (the organization's zone, the projects
    # the plan hides left out), so an alert never quotes a figure the overview does not show.
    totals = period_totals(organization=organization, now=now)
    zone = organization.zone
    today = now.astimezone(zone).date()
    month_start = today.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    windows = {
        Trigger.SPEND_DAY: (
            f"day:{today:%Y-%m-%d}",
            local_midnight(today, zone),
            local_midnight(today + timedelta(days=1), zone),
            totals["today"]["cost_usd"],
        ),
        Trigger.SPEND_MONTH: (
            f"month:{today:%Y-%m}",
            local_midnight(month_start, zone),
            local_midnight(next_month, zone),
            totals["month"]["cost_usd"],
        ),
    }
    for rule in rules:
        window_key, start, end, cost_usd = windows[rule.trigger]
        spent = Decimal(str(cost_usd)).quantize(_PLACES)
        if spent >= rule.threshold_usd:
            yield (
                rule,
                Firing(
                    window_key=window_key,
                    window_start=start,
                    window_end=end,
                    value=spent,
                    threshold=rule.threshold_usd,
                ),
            )


def organization_alerts_evaluate(
    *, organization: Organization, now: datetime | None = None
) -> list[Alert]:
    """Evaluate the organization's enabled rules now; the alerts this run fired (a window that
    already has its alert is not fired again, so a second run returns [])."""
    now = now or timezone.now()
    rules = alert_rules_enabled(organization=organization)
    if not rules:
        return []
    for rule in rules:
        rule.organization = organization  # (one object for alert_fire's scope and texts)
    anomaly_rules = [rule for rule in rules if rule.trigger in ANOMALY_TRIGGERS]
    spend_rules = [rule for rule in rules if rule.is_spend_rule]
    fired = []
    for firings in (
        _anomaly_firings(anomaly_rules, organization, now),
        _spend_firings(spend_rules, organization, now),
    ):
        for rule, firing in firings:
            alert, created = alert_fire(rule=rule, firing=firing)
            if created:
                fired.append(alert)
    if fired:
        logger.info(
            "alerts evaluated",
            extra={"organization_id": organization.pk, "fired": len(fired), "rules": len(rules)},
        )
    return fired
