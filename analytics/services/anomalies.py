"""Finding anomalies in an organization's usage, from its rollups.

Two kinds of rule, as the agent's alert engine has them (`clawtrace/alerts/engine.py`):
- fixed thresholds, with the agent's defaults (`clawtrace.alerts.settings.DEFAULTS`): today's
  spend over $10, a session over $5 in the last six hours, and per local clock hour spend over
  $3, more than 400 requests (turns) or 30 million tokens;
- an hour-of-week baseline of the organization's own history: the hourly spend of the eight
  weeks before, zero hours included, in the organization's zone, judged by the agent's robust
  statistics (`clawtrace.anomaly`: median and MAD per hour of the week, pooled with the
  neighbouring hours), once there are two weeks of history.

Windows are fixed (a local day, a local clock hour, a session), so a finding is one `Anomaly`
row per (kind, window, subject): a run over the same window again updates its value and keeps
when it was first detected. Runs of one organization take its rollup lock, so two at once do
not both create a row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from clawtrace import anomaly as agent_anomaly
from clawtrace.alerts.settings import DEFAULTS as AGENT_ALERT_DEFAULTS
from clawtrace.reports import usd
from django.db import transaction
from django.db.models import F, Max, Min, Sum
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import organization_scope
from analytics.models import Anomaly, AnomalyKind, UsageRollup
from analytics.services.rollups import BUCKET, _state_lock, local_midnight

logger = logging.getLogger(__name__)

DAILY_BUDGET_USD = Decimal(str(AGENT_ALERT_DEFAULTS["daily_budget_usd"]))
SESSION_SPIKE_USD = Decimal(str(AGENT_ALERT_DEFAULTS["session_spike_usd"]))
HOURLY_BURN_USD = Decimal(str(AGENT_ALERT_DEFAULTS["hourly_burn_usd"]))
HOURLY_REQUESTS = int(AGENT_ALERT_DEFAULTS["hourly_requests"])
HOURLY_TOKENS = int(AGENT_ALERT_DEFAULTS["hourly_tokens"])
# As the agent's engine: a session's spend over the last six hours; a baseline of eight weeks
# once there are two weeks of history to learn from.
SESSION_LOOKBACK = timedelta(hours=6)
BASELINE_WEEKS = 8
MIN_HISTORY = timedelta(days=14)
_PLACES = Decimal("0.000001")

_ALL_TOKENS = Sum(
    F("input_tokens")
    + F("output_tokens")
    + F("cache_read_tokens")
    + F("cache_write_5m_tokens")
    + F("cache_write_1h_tokens")
)


@dataclass
class _Finding:
    kind: str
    window_start: datetime
    window_end: datetime
    value: Decimal
    threshold: Decimal | None = None
    baseline: Decimal | None = None
    subject: str = ""
    details: dict[str, Any] | None = None


def _money(pico: int) -> Decimal:
    return Decimal(str(usd(pico))).quantize(_PLACES)


def _local_hour_start(moment: datetime, zone) -> datetime:
    local = moment.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def _next_local_hour(start: datetime, zone) -> datetime:
    # One hour on, on the local clock's hour (zoneinfo resolves the hours DST repeats).
    return _local_hour_start(start + timedelta(hours=1), zone)


def _hourly(since: datetime, until: datetime, zone) -> dict[datetime, list[int]]:
    """{local hour start (UTC): [cost pico, turns, tokens]} of the buckets in [since, until)."""
    hours: dict[datetime, list[int]] = defaultdict(lambda: [0, 0, 0])
    rows = (
        UsageRollup.objects.filter(bucket__gte=since, bucket__lt=until)
        .values("bucket")
        .annotate(cost=Sum("cost_pico"), turns=Sum("turns"), tokens=_ALL_TOKENS)
        .order_by()
    )
    for row in rows:
        acc = hours[_local_hour_start(row["bucket"], zone)]
        acc[0] += int(row["cost"] or 0)
        acc[1] += int(row["turns"] or 0)
        acc[2] += int(row["tokens"] or 0)
    return hours


def _fixed_thresholds(organization: Organization, now: datetime) -> list[_Finding]:
    zone = organization.zone
    found: list[_Finding] = []
    today = now.astimezone(zone).date()
    day_start, day_end = local_midnight(today, zone), local_midnight(today + timedelta(1), zone)
    spent = int(
        UsageRollup.objects.filter(bucket__gte=day_start, bucket__lt=day_end).aggregate(
            cost=Sum("cost_pico")
        )["cost"]
        or 0
    )
    if _money(spent) >= DAILY_BUDGET_USD:
        found.append(
            _Finding(AnomalyKind.DAILY_BUDGET, day_start, day_end, _money(spent), DAILY_BUDGET_USD)
        )

    # This local hour and the one before (the last run may have missed its end).
    this_hour = _local_hour_start(now, zone)
    previous_hour = _local_hour_start(this_hour - BUCKET, zone)
    hours = _hourly(previous_hour, this_hour + timedelta(hours=1), zone)
    for start in (previous_hour, this_hour):
        cost, turns, tokens = hours.get(start, (0, 0, 0))
        end = _next_local_hour(start, zone)
        for kind, value, limit in (
            (AnomalyKind.HOURLY_BURN, _money(cost), HOURLY_BURN_USD),
            (AnomalyKind.HOURLY_REQUESTS, Decimal(turns), Decimal(HOURLY_REQUESTS)),
            (AnomalyKind.HOURLY_TOKENS, Decimal(tokens), Decimal(HOURLY_TOKENS)),
        ):
            if limit and value >= limit:
                found.append(_Finding(kind, start, end, value, limit))

    sessions = (
        UsageRollup.objects.filter(bucket__gte=now - SESSION_LOOKBACK, bucket__lte=now)
        .values("source", "session_id")
        .annotate(
            cost=Sum("cost_pico"),
            first=Min("first_at"),
            last=Max("last_at"),
            project=Max("project"),
            agent=Max("agent"),
        )
        .filter(cost__gte=int(SESSION_SPIKE_USD * 10**12))
        .order_by()
    )
    for row in sessions:
        found.append(
            _Finding(
                AnomalyKind.SESSION_SPIKE,
                row["first"],
                row["last"],
                _money(int(row["cost"])),
                SESSION_SPIKE_USD,
                subject=f"{row['source']}:{row['session_id']}"[:220],
                details={
                    "session_id": row["session_id"],
                    "source": row["source"],
                    "project": row["project"],
                    "agent": row["agent"],
                    "lookback_hours": SESSION_LOOKBACK.total_seconds() / 3600,
                },
            )
        )
    return found


def _hour_of_week(organization: Organization, now: datetime) -> list[_Finding]:
    zone = organization.zone
    this_hour = _local_hour_start(now, zone)
    first_bucket = UsageRollup.objects.aggregate(first=Min("bucket"))["first"]
    if first_bucket is None or this_hour - first_bucket < MIN_HISTORY:
        return []
    since = max(_local_hour_start(first_bucket, zone), this_hour - timedelta(weeks=BASELINE_WEEKS))
    previous_hour = _local_hour_start(this_hour - BUCKET, zone)
    hours = _hourly(since, this_hour + timedelta(hours=1), zone)
    # Zero-filled, in local wall-clock hours (the agent's baseline is of local hours).
    history = []
    moment = since
    while moment < previous_hour:
        history.append(
            (moment.astimezone(zone).replace(tzinfo=None), usd(hours.get(moment, (0,))[0]))
        )
        moment = _next_local_hour(moment, zone)
    baseline = agent_anomaly.baseline_build(history)
    if baseline.typical_active_hour <= 0:
        return []
    found = []
    for start in (previous_hour, this_hour):
        cost = usd(hours.get(start, (0,))[0])
        local = start.astimezone(zone).replace(tzinfo=None)
        if baseline.is_unusual(local, cost):
            found.append(
                _Finding(
                    AnomalyKind.HOUR_OF_WEEK,
                    start,
                    _next_local_hour(start, zone),
                    Decimal(str(cost)).quantize(_PLACES),
                    baseline=Decimal(str(baseline.expected(local))).quantize(_PLACES),
                    details={
                        "score": round(baseline.score(local, cost), 2),
                        "z_threshold": baseline.settings.z_threshold,
                        "local_hour": local.isoformat(timespec="minutes"),
                    },
                )
            )
    return found


def anomalies_detect(*, organization: Organization, now: datetime | None = None) -> list[Anomaly]:
    """Evaluate every rule for the organization now; the anomalies found (new or updated)."""
    now = now or timezone.now()
    with transaction.atomic(), organization_scope(organization):
        _state_lock(organization)
        findings = _fixed_thresholds(organization, now) + _hour_of_week(organization, now)
        stored = []
        for finding in findings:
            if finding.kind == AnomalyKind.SESSION_SPIKE:
                # A session's window is its span, which grows while it runs: it is the same
                # anomaly whatever its start, so it is found by the session alone.
                held = Anomaly.objects.filter(kind=finding.kind, subject=finding.subject).first()
                if held is not None:
                    finding.window_start = held.window_start
            values = {
                "window_end": finding.window_end,
                "value": finding.value,
                "threshold": finding.threshold,
                "baseline": finding.baseline,
                "details": finding.details or {},
                "updated_at": now,
            }
            anomaly, _created = Anomaly.objects.update_or_create(
                organization=organization,
                kind=finding.kind,
                window_start=finding.window_start,
                subject=finding.subject,
                defaults=values,
                create_defaults={**values, "detected_at": now},
            )
            stored.append(anomaly)
    if stored:
        logger.info(
            "anomalies found",
            extra={"organization_id": organization.pk, "anomalies": len(stored)},
        )
    return stored


# The name the issue gives it.
detect_anomalies = anomalies_detect
