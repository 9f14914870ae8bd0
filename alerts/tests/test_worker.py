"""An alert reaches a webhook through a real Celery worker on Redis (CI's services suite), not
only eagerly: committed alert -> on_commit -> broker -> worker -> local webhook -> delivery
marked sent; and a webhook answering 500 leaves the delivery retrying, its retry scheduled
with the broker. The whole way too: usage rolled up, an anomaly detected, the beat task's
evaluation run by the worker, and the webhook answering 500 and then 200 gets the alert once."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import Alert, AlertDelivery, DeliveryAttempt, DeliveryStatus, Trigger
from alerts.services import Firing, alert_fire
from alerts.tasks import alerts_evaluate_all_task, alerts_evaluate_task
from alerts.tests.factories import AlertRuleFactory
from analytics.services import anomalies_detect, rollups_rebuild
from analytics.tests.factories import EventFactory
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


@pytest.fixture
def retry_after_a_second(monkeypatch):
    """The delivery task's backoff (30 s and up, fixed when the task is declared) down to one
    second, so the retry runs while the test waits for it."""
    monkeypatch.setattr(
        "celery.app.autoretry.get_exponential_backoff_interval", lambda **_kwargs: 1
    )


def _an_hour_over_the_burn_limit(org, device) -> None:
    # $4 now: over the $3 an hour of the fixed thresholds, whichever local hour "now" is in.
    EventFactory(organization=org, device=device, occurred_at=timezone.now(), cost_usd=4)
    rollups_rebuild(organization=org)
    (anomaly,) = anomalies_detect(organization=org)
    assert anomaly.kind == Trigger.HOURLY_BURN


def test_usage_over_a_rule_reaches_its_webhook_through_the_beat_task_on_a_real_worker(
    org, device, receiver, redis_worker
):
    rule = AlertRuleFactory(
        organization=org, trigger=Trigger.HOURLY_BURN, threshold_usd=None, webhook_url=receiver.url
    )
    _an_hour_over_the_burn_limit(org, device)

    assert alerts_evaluate_all_task.delay().get(timeout=30) == 1

    assert _wait_for(lambda: receiver.hits == 1)
    alert = Alert.all_orgs.get(rule=rule)
    delivery = AlertDelivery.all_orgs.get(alert=alert)
    assert _wait_for(lambda: _delivery_status(delivery.pk) == (DeliveryStatus.SENT, 1))
    (body,) = receiver.bodies
    # Slack reads `text`, Discord `content`.
    assert body["text"].startswith("*Alpha Labs: hourly spend over the limit: $4.00*")
    assert body["content"].startswith("**Alpha Labs: hourly spend over the limit: $4.00**")
    assert body["clawtrace"]["window"] == alert.window_key
    assert body["clawtrace"]["rule"] == "hourly_burn"


def test_a_webhook_answering_500_then_200_gets_the_evaluated_alert_once(
    org, device, receiver, redis_worker, retry_after_a_second
):
    receiver.script = [500]
    rule = AlertRuleFactory(
        organization=org, trigger=Trigger.HOURLY_BURN, threshold_usd=None, webhook_url=receiver.url
    )
    _an_hour_over_the_burn_limit(org, device)

    alerts_evaluate_all_task.delay()

    assert _wait_for(lambda: AlertDelivery.all_orgs.filter(alert__rule=rule).exists())
    delivery = AlertDelivery.all_orgs.get(alert__rule=rule)
    assert _wait_for(lambda: _delivery_status(delivery.pk) == (DeliveryStatus.SENT, 2))
    attempts = DeliveryAttempt.all_orgs.filter(delivery=delivery).order_by("attempted_at", "id")
    assert [(a.status_code, a.succeeded) for a in attempts] == [(500, False), (200, True)]
    # Evaluated again (the next beat run): the window has its alert, nothing is sent again.
    assert alerts_evaluate_task.delay(organization_id=org.pk).get(timeout=30) == 0
    assert receiver.hits == 2 and receiver.bodies[0] == receiver.bodies[1]
    assert Alert.all_orgs.filter(rule=rule).count() == 1
