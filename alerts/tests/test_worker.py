"""An alert reaches a webhook through a real Celery worker on Redis (CI's services suite), not
only eagerly: committed alert -> on_commit -> broker -> worker -> local webhook -> delivery
marked sent; and a webhook answering 500 leaves the delivery retrying, its retry scheduled
with the broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from alerts.models import AlertDelivery, DeliveryStatus
from alerts.services import Firing, alert_fire
from alerts.tests.factories import AlertRuleFactory
from clawtrace_site.celery import app

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]

DAY = Firing(
    window_key="2026-03-01",
    window_start=datetime(2026, 3, 1, tzinfo=UTC),
    window_end=datetime(2026, 3, 2, tzinfo=UTC),
    value=Decimal("42.00"),
    threshold=Decimal("10.00"),
)


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> bool:
    # Polls for the worker's effect (no assertion on how long it took).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _delivery_status(delivery_id: int) -> tuple[str, int]:
    delivery = AlertDelivery.all_orgs.get(pk=delivery_id)
    return delivery.status, delivery.attempt_count


def test_an_alert_reaches_a_local_webhook_through_a_real_worker(org, receiver, redis_worker):
    rule = AlertRuleFactory(organization=org, name="Daily cap", webhook_url=receiver.url)

    alert, created = alert_fire(rule=rule, firing=DAY)  # commits: the test is transactional

    assert created
    delivery = AlertDelivery.all_orgs.get(alert=alert)
    assert _wait_for(lambda: _delivery_status(delivery.pk) == (DeliveryStatus.SENT, 1))
    (body,) = receiver.bodies
    assert "$42.00" in body["text"] and body["clawtrace"]["window"] == "2026-03-01"


def test_a_500_leaves_the_delivery_retrying_with_a_retry_scheduled(org, receiver, redis_worker):
    receiver.default = 500
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)

    alert, _created = alert_fire(rule=rule, firing=DAY)

    delivery = AlertDelivery.all_orgs.get(alert=alert)
    assert _wait_for(lambda: _delivery_status(delivery.pk) == (DeliveryStatus.RETRYING, 1))
    assert receiver.hits == 1
    # The retry waits in the broker with its backoff (30 s and up): the worker holds it as a
    # scheduled task.
    assert _wait_for(lambda: _scheduled_count() == 1, timeout=20)


def _scheduled_count() -> int:
    replies = app.control.inspect(timeout=1).scheduled() or {}
    return sum(len(tasks) for tasks in replies.values())
