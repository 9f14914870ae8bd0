"""Alert tasks: each takes ids, calls one service and logs (style.md 7).

Evaluation fans out from beat, a couple of minutes after anomaly detection: one task per
organization with a rule on. It is safe to run twice (an alert is recorded once per rule and
window before anything is sent), so it retries on a database hiccup like analytics' tasks do.

The delivery task is the one that talks to the outside world, so it is the one that retries:
on a timeout, a refused connection, 429 or 5xx, with exponential backoff and jitter (so a
webhook that comes back is not hit by every queued alert in the same second), up to
`ALERT_DELIVERY_MAX_RETRIES`; the last attempt marks the delivery failed, where the delivery
log shows it. `acks_late` (global) plus the service's row lock and "already finished" check
make a redelivered or duplicated task harmless.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from accounts.tenancy import org_scoped_task, organization_in_scope
from alerts.selectors import organization_ids_with_enabled_rules
from alerts.services import (
    DeliveryRetryableError,
    alert_deliveries_requeue_stale,
    alert_delivery_send,
    organization_alerts_evaluate,
)

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(DeliveryRetryableError,),
    retry_backoff=settings.ALERT_DELIVERY_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=settings.ALERT_DELIVERY_RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=settings.ALERT_DELIVERY_MAX_RETRIES,
)
@org_scoped_task
def alert_delivery_send_task(self, *, organization_id: int, delivery_id: int) -> str | None:
    delivery = alert_delivery_send(
        organization=organization_in_scope(),
        delivery_id=delivery_id,
        is_final_attempt=self.request.retries >= self.max_retries,
    )
    return None if delivery is None else delivery.status


@shared_task
def alert_deliveries_requeue_stale_task() -> int:
    return alert_deliveries_requeue_stale()


@shared_task(
    acks_late=True,
    # A database that restarts or a lock that times out: try again, a little later each time.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=8,
)
@org_scoped_task
def alerts_evaluate_task(*, organization_id: int) -> int:
    """Evaluate one organization's enabled rules; how many alerts fired."""
    return len(organization_alerts_evaluate(organization=organization_in_scope()))


@shared_task(acks_late=True)
def alerts_evaluate_all_task() -> int:
    """Fan out: one evaluation per organization with a rule on; how many were enqueued."""
    organization_ids = organization_ids_with_enabled_rules()
    for organization_id in organization_ids:
        alerts_evaluate_task.delay(organization_id=organization_id)
    return len(organization_ids)
