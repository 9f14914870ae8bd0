"""Celery tasks of analytics: thin, idempotent, safe to run twice or at once (acks_late is
global). Each calls one service; the beat schedule (settings) runs the sweeps."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db import OperationalError
from django.db.models import F, Q
from django.utils import timezone

from accounts.tenancy import org_scoped_task, organization_in_scope
from analytics.models import RollupDirtyBucket, RollupState
from analytics.services import anomalies_detect, rollups_refresh
from analytics.services.rollups import (
    REFRESH_DEBOUNCE_SECONDS,
    rollups_refresh_schedule,
    rollups_refresh_unschedule,
)

logger = logging.getLogger(__name__)

# Transactions (of up to REFRESH_BUCKETS_PER_RUN buckets each) per task run before it hands
# the rest to a fresh run, so one run stays well inside the task time limits.
REFRESH_ROUNDS_PER_RUN = 10
# Organizations with usage refreshed this recently are checked for anomalies.
ANOMALY_ACTIVE_WITHIN = timedelta(hours=6)

_RETRY = {
    # A database that restarts or a lock that times out: try again, a little later each time.
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 120,
    "max_retries": 8,
}


@shared_task(**_RETRY)
@org_scoped_task
def rollups_refresh_task(*, organization_id: int) -> int:
    """Recompute the organization's queued buckets (after ingest batches, debounced)."""
    # Cleared before the queue is read: a batch marked from now on schedules its own run.
    rollups_refresh_unschedule(organization_id=organization_id)
    organization = organization_in_scope()
    buckets = 0
    for _ in range(REFRESH_ROUNDS_PER_RUN):
        result = rollups_refresh(organization=organization)
        buckets += result.buckets
        if not result.more:
            break
    else:
        rollups_refresh_task.apply_async(kwargs={"organization_id": organization_id})
    return buckets


@shared_task
def rollups_sweep_task() -> int:
    """Every few minutes: a refresh for every organization with buckets still queued a while
    after they were marked (a lost task, a broker that was down) or whose daily rollups are not
    in its time zone (the zone was changed). How many were scheduled."""
    stale = timezone.now() - timedelta(seconds=REFRESH_DEBOUNCE_SECONDS * 12)
    # (The queue holds seconds' worth of rows when all is well: scanning it is cheap.)
    queued = set(
        RollupDirtyBucket.all_orgs.filter(marked_at__lt=stale)
        .values_list("organization_id", flat=True)
        .distinct()
    )
    rezoned = set(
        RollupState.all_orgs.exclude(daily_time_zone=F("organization__time_zone")).values_list(
            "organization_id", flat=True
        )
    )
    scheduled = 0
    for organization_id in sorted(queued | rezoned):
        scheduled += rollups_refresh_schedule(organization_id=organization_id)
    if scheduled:
        logger.info("rollup sweep scheduled refreshes", extra={"organizations": scheduled})
    return scheduled


@shared_task(**_RETRY)
@org_scoped_task
def anomalies_detect_task(*, organization_id: int) -> int:
    return len(anomalies_detect(organization=organization_in_scope()))


@shared_task
def anomalies_detect_all_task() -> int:
    """Fan out: one detection per organization with recent usage."""
    since = timezone.now() - ANOMALY_ACTIVE_WITHIN
    organization_ids = RollupState.all_orgs.filter(
        Q(refreshed_at__gte=since) | Q(rebuilt_at__gte=since)
    ).values_list("organization_id", flat=True)
    count = 0
    for organization_id in organization_ids.iterator():
        anomalies_detect_task.delay(organization_id=organization_id)
        count += 1
    return count
