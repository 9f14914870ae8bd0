"""Alert tasks: each takes ids, calls one service and logs (style.md 7).

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

from accounts.tenancy import org_scoped_task, organization_in_scope
from alerts.services import (
    DeliveryRetryableError,
    alert_deliveries_requeue_stale,
    alert_delivery_send,
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
