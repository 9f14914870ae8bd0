"""Firing and delivering: once per window, one task per channel, retried with backoff, every
attempt logged, and a webhook that fails or hangs loses neither the alert nor ingestion.

The webhooks are a real HTTP server on a loopback port (`webhook_server.py`); e-mail is
Django's locmem backend. Tasks run eagerly here; `test_worker.py` runs a real worker.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import Membership
from accounts.tenancy import organization_scope
from alerts.models import Alert, AlertDelivery, DeliveryAttempt, DeliveryStatus, Trigger
from alerts.services import (
    DeliveryRetryableError,
    Firing,
    alert_deliveries_requeue_stale,
    alert_delivery_send,
    alert_fire,
)
from alerts.tasks import alert_delivery_send_task
from alerts.tests.factories import AlertRecipientFactory, AlertRuleFactory
from alerts.tests.webhook_server import HANG
from devices.tests.factories import device_with_secret
from ingest.models import Event
from ingest.tests.factories import batch_body, event_payload

pytestmark = pytest.mark.django_db

DAY = Firing(
    window_key="2026-03-01",
    window_start=datetime(2026, 3, 1, tzinfo=UTC),
    window_end=datetime(2026, 3, 2, tzinfo=UTC),
    value=Decimal("12.345678"),
    threshold=Decimal("10.00"),
)


def _fire(rule, firing=DAY, *, capture):
    with capture(execute=True):
        return alert_fire(rule=rule, firing=firing)


def _deliveries(org) -> list[AlertDelivery]:
    with organization_scope(org):
        return list(AlertDelivery.objects.order_by("channel"))


def _attempts(org) -> list[DeliveryAttempt]:
    with organization_scope(org):
        return list(DeliveryAttempt.objects.order_by("attempted_at", "id"))


@pytest.fixture
def max_retries(monkeypatch):
    def set_to(count: int) -> None:
        monkeypatch.setattr(alert_delivery_send_task, "max_retries", count)

    return set_to


# --- Once per window ----------------------------------------------------------------------------


def test_a_rule_fires_once_per_window(org, receiver, django_capture_on_commit_callbacks):
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)

    first, created = _fire(rule, capture=django_capture_on_commit_callbacks)
    again, created_again = _fire(rule, capture=django_capture_on_commit_callbacks)

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert receiver.hits == 1
    with organization_scope(org):
        assert Alert.objects.count() == 1
        assert AlertDelivery.objects.count() == 1


def test_the_next_window_fires_again(org, receiver, django_capture_on_commit_callbacks):
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    next_day = Firing(
        window_key="2026-03-02",
        window_start=datetime(2026, 3, 2, tzinfo=UTC),
        window_end=datetime(2026, 3, 3, tzinfo=UTC),
        value=Decimal("11"),
        threshold=Decimal("10"),
    )

    _fire(rule, capture=django_capture_on_commit_callbacks)
    _fire(rule, next_day, capture=django_capture_on_commit_callbacks)

    assert [body["clawtrace"]["window"] for body in receiver.bodies] == ["2026-03-01", "2026-03-02"]


def test_the_same_window_of_two_rules_fires_each(org, receiver, django_capture_on_commit_callbacks):
    first = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    second = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    assert _fire(first, capture=django_capture_on_commit_callbacks)[1]
    assert _fire(second, capture=django_capture_on_commit_callbacks)[1]
    assert receiver.hits == 2


def test_deliveries_are_enqueued_only_after_the_alert_is_committed(org, receiver):
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    # Without running the on-commit callbacks (the test's transaction never commits), nothing
    # is sent: a worker can never look for an alert that is not there yet.
    alert_fire(rule=rule, firing=DAY)
    assert receiver.hits == 0
    assert [d.status for d in _deliveries(org)] == [DeliveryStatus.PENDING]


# --- Webhooks -----------------------------------------------------------------------------------


def test_webhook_success_sends_a_slack_and_discord_body_and_logs_the_attempt(
    org, receiver, django_capture_on_commit_callbacks
):
    rule = AlertRuleFactory(organization=org, name="Daily cap", webhook_url=receiver.url)

    _fire(rule, capture=django_capture_on_commit_callbacks)

    (body,) = receiver.bodies
    assert "$12.35" in body["text"] and "$10.00" in body["text"]
    assert body["content"] == body["text"].replace("*", "**")
    assert body["clawtrace"]["rule"] == Trigger.SPEND_DAY
    assert body["clawtrace"]["details"]["value"] == pytest.approx(12.345678)
    (delivery,) = _deliveries(org)
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.SENT, 1)
    (attempt,) = _attempts(org)
    assert (attempt.succeeded, attempt.status_code, attempt.error) == (True, 200, "")
    assert attempt.duration_ms >= 0


def test_webhook_answering_500_then_200_is_retried_and_sent(
    org, receiver, eager_retries, django_capture_on_commit_callbacks
):
    receiver.script = [500, 500, 200]
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)

    _fire(rule, capture=django_capture_on_commit_callbacks)

    assert receiver.hits == 3
    assert [(a.succeeded, a.status_code, a.error) for a in _attempts(org)] == [
        (False, 500, "HTTP 500"),
        (False, 500, "HTTP 500"),
        (True, 200, ""),
    ]
    (delivery,) = _deliveries(org)
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.SENT, 3)


def test_webhook_that_keeps_failing_ends_failed_and_visible(
    org, receiver, eager_retries, max_retries, django_capture_on_commit_callbacks
):
    max_retries(3)
    receiver.default = 503
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)

    _fire(rule, capture=django_capture_on_commit_callbacks)

    assert receiver.hits == 4  # the first try and three retries
    (delivery,) = _deliveries(org)
    assert (delivery.status, delivery.attempt_count, delivery.last_error) == (
        DeliveryStatus.FAILED,
        4,
        "HTTP 503",
    )
    with organization_scope(org):
        assert Alert.objects.count() == 1


def test_a_4xx_answer_is_not_retried(
    org, receiver, eager_retries, django_capture_on_commit_callbacks
):
    receiver.default = 404
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    _fire(rule, capture=django_capture_on_commit_callbacks)
    assert receiver.hits == 1
    assert _deliveries(org)[0].status == DeliveryStatus.FAILED


def test_429_is_retried(org, receiver, eager_retries, django_capture_on_commit_callbacks):
    receiver.script = [429]
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    _fire(rule, capture=django_capture_on_commit_callbacks)
    assert [a.status_code for a in _attempts(org)] == [429, 200]


def test_webhook_timeout_keeps_the_alert_and_ingestion_carries_on(
    org,
    receiver,
    eager_retries,
    max_retries,
    short_webhook_timeouts,
    client,
    django_capture_on_commit_callbacks,
):
    max_retries(1)
    receiver.default = HANG
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    _device, secret = device_with_secret(org)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

    # Ingest never evaluates or sends alerts: a batch goes in while the webhook is dead and
    # the receiver hears nothing from it.
    response = client.post(
        reverse("api:ingest"),
        batch_body([event_payload() for _ in range(3)]),
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 200, response.content
    assert receiver.hits == 0

    _fire(rule, capture=django_capture_on_commit_callbacks)

    attempts = _attempts(org)
    assert [a.status_code for a in attempts] == [None, None]
    assert all("Timeout" in a.error for a in attempts)
    (delivery,) = _deliveries(org)
    assert delivery.status == DeliveryStatus.FAILED
    with organization_scope(org):
        assert Alert.objects.count() == 1  # the alert stays, with its failed delivery

    # And ingestion is as before: the next batch is stored too.
    response = client.post(
        reverse("api:ingest"),
        batch_body([event_payload() for _ in range(2)]),
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 200
    with organization_scope(org):
        assert Event.objects.count() == 5


def test_a_timeout_before_the_last_attempt_leaves_the_delivery_retrying(
    org, receiver, short_webhook_timeouts
):
    receiver.default = HANG
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    alert_fire(rule=rule, firing=DAY)
    (delivery,) = _deliveries(org)

    # One attempt, as a worker runs it before its last retry: the service asks for a retry
    # (the task's autoretry catches exactly this) and the delivery says so meanwhile.
    with pytest.raises(DeliveryRetryableError):
        alert_delivery_send(organization=org, delivery_id=delivery.pk, is_final_attempt=False)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.RETRYING, 1)
    assert "Timeout" in delivery.last_error


def test_a_delivery_already_sent_is_not_sent_again(
    org, receiver, django_capture_on_commit_callbacks
):
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    _fire(rule, capture=django_capture_on_commit_callbacks)
    (delivery,) = _deliveries(org)

    for _ in range(2):  # a redelivered task, a duplicate from the sweep
        alert_delivery_send_task.delay(organization_id=org.pk, delivery_id=delivery.pk)

    assert receiver.hits == 1
    assert len(_attempts(org)) == 1


def test_a_delivery_of_a_deleted_or_disabled_rule_is_skipped(
    org, receiver, django_capture_on_commit_callbacks
):
    disabled = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    deleted = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    with organization_scope(org):
        alert_fire(rule=disabled, firing=DAY)
        alert_fire(rule=deleted, firing=DAY)
    disabled.is_enabled = False
    disabled.save()
    deleted.delete()

    for delivery in _deliveries(org):
        alert_delivery_send_task.delay(organization_id=org.pk, delivery_id=delivery.pk)

    assert receiver.hits == 0
    assert {d.status for d in _deliveries(org)} == {DeliveryStatus.SKIPPED}


def test_a_redirect_to_another_host_is_refused(
    org, receiver, eager_retries, django_capture_on_commit_callbacks
):
    receiver.redirects["/hooks/team"] = "https://elsewhere.example/steal"
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    _fire(rule, capture=django_capture_on_commit_callbacks)
    (attempt,) = _attempts(org)
    assert (attempt.status_code, attempt.error) == (307, "Redirect to another host refused.")
    assert _deliveries(org)[0].status == DeliveryStatus.FAILED


def test_a_redirect_on_the_same_host_is_followed(org, receiver, django_capture_on_commit_callbacks):
    receiver.redirects["/hooks/team"] = "/hooks/moved"
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    _fire(rule, capture=django_capture_on_commit_callbacks)
    assert receiver.paths == ["/hooks/team", "/hooks/moved"]
    assert _deliveries(org)[0].status == DeliveryStatus.SENT


def test_a_webhook_to_a_private_address_is_refused_at_send_time(
    org, settings, django_capture_on_commit_callbacks
):
    # Saved while a self-hosted operator allowed it; no longer allowed when it fires.
    rule = AlertRuleFactory(organization=org, webhook_url="https://10.1.2.3/hook")
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    _fire(rule, capture=django_capture_on_commit_callbacks)
    (attempt,) = _attempts(org)
    assert "private or reserved" in attempt.error
    assert _deliveries(org)[0].status == DeliveryStatus.FAILED


def test_the_sweep_enqueues_again_a_delivery_whose_task_was_lost(org, receiver):
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    alert_fire(rule=rule, firing=DAY)  # on-commit never runs: as if the broker was down
    AlertDelivery.all_orgs.update(updated_at=datetime(2026, 1, 1, tzinfo=UTC))

    assert alert_deliveries_requeue_stale() == 1
    assert receiver.hits == 1
    assert _deliveries(org)[0].status == DeliveryStatus.SENT
    assert alert_deliveries_requeue_stale() == 0


# --- E-mail -------------------------------------------------------------------------------------


def test_email_goes_to_the_chosen_members_with_figures_only(
    org, owner, member, django_capture_on_commit_callbacks, settings
):
    settings.SITE_URL = "https://clawtrace.example"
    canary = "CANARY-prompt-text-7f3a9c"
    rule = AlertRuleFactory(
        organization=org, name="Team daily cap", email_enabled=True, webhook_url=""
    )
    with organization_scope(org):
        AlertRecipientFactory(
            organization=org, rule=rule, membership=Membership.objects.get(user=member)
        )
    # Events whose labels must never reach an alert (they are not figures).
    device, _secret = device_with_secret(org)
    Event.all_orgs.create(
        organization=org,
        device=device,
        event_id="0" * 31 + "1",
        source="claude-code",
        project=canary,
        session_id=canary,
        model="claude-sonnet-4-5",
        occurred_at=datetime(2026, 3, 1, 12, tzinfo=UTC),
        input_tokens=1,
        output_tokens=1,
        cache_read_tokens=0,
        cache_write_5m_tokens=0,
        cache_write_1h_tokens=0,
        web_search_requests=0,
        cost_usd=Decimal("12.345678"),
    )

    _fire(rule, capture=django_capture_on_commit_callbacks)

    (message,) = mail.outbox
    assert message.to == ["member@alpha.example"]
    assert message.subject == "[ClawTrace] Alpha Labs: spend today: $12.35"
    assert "$12.35" in message.body and "$10.00" in message.body
    assert "Team daily cap" in message.body
    assert "2026-03-01 00:00 to 2026-03-02 00:00 UTC" in message.body
    assert f"https://clawtrace.example/o/{org.slug}/settings/alerts/" in message.body
    assert canary not in message.subject + message.body
    (attempt,) = _attempts(org)
    assert attempt.succeeded and attempt.channel == "email"


def test_email_and_webhook_are_separate_deliveries(
    org, owner, receiver, django_capture_on_commit_callbacks
):
    rule = AlertRuleFactory(organization=org, email_enabled=True, webhook_url=receiver.url)
    with organization_scope(org):
        AlertRecipientFactory(
            organization=org, rule=rule, membership=Membership.objects.get(user=owner)
        )
    receiver.default = 404  # the webhook fails for good; the e-mail still goes

    _fire(rule, capture=django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 1
    assert {(d.channel, d.status) for d in _deliveries(org)} == {
        ("email", DeliveryStatus.SENT),
        ("webhook", DeliveryStatus.FAILED),
    }


def test_email_to_a_member_who_left_is_skipped(org, member, django_capture_on_commit_callbacks):
    rule = AlertRuleFactory(organization=org, email_enabled=True, webhook_url="")
    with organization_scope(org):
        membership = Membership.objects.get(user=member)
        AlertRecipientFactory(organization=org, rule=rule, membership=membership)
    membership.delete()

    _fire(rule, capture=django_capture_on_commit_callbacks)

    assert mail.outbox == []
    assert _deliveries(org)[0].status == DeliveryStatus.SKIPPED


def test_email_server_errors_are_retried(
    org, owner, settings, eager_retries, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.mail.backends.locmem import EmailBackend

    sent = EmailBackend.send_messages
    failures = iter([ConnectionRefusedError("smtp down"), None])

    def flaky(self, messages):
        failure = next(failures)
        if failure is not None:
            raise failure
        return sent(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", flaky)
    rule = AlertRuleFactory(organization=org, email_enabled=True, webhook_url="")
    with organization_scope(org):
        AlertRecipientFactory(
            organization=org, rule=rule, membership=Membership.objects.get(user=owner)
        )

    _fire(rule, capture=django_capture_on_commit_callbacks)

    assert [(a.succeeded, a.error) for a in _attempts(org)] == [
        (False, "ConnectionRefusedError"),
        (True, ""),
    ]
    assert len(mail.outbox) == 1


def test_the_webhook_body_is_valid_json_with_figures_only(
    org, receiver, django_capture_on_commit_callbacks
):
    rule = AlertRuleFactory(organization=org, webhook_url=receiver.url)
    _fire(rule, capture=django_capture_on_commit_callbacks)
    (body,) = receiver.bodies
    assert set(body) == {"text", "content", "username", "clawtrace"}
    assert json.loads(json.dumps(body)) == body
    assert set(body["clawtrace"]["details"]) == {
        "organization",
        "trigger",
        "window_key",
        "window_start",
        "window_end",
        "value",
        "threshold",
        "unit",
    }
