"""Operators read rules, alerts, deliveries and the attempt log in the admin, and send a failed
delivery again through the service."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from alerts.models import AlertDelivery, DeliveryAttempt, DeliveryStatus
from alerts.tests.factories import AlertDeliveryFactory, AlertFactory, AlertRuleFactory

pytestmark = pytest.mark.django_db

SECRET_PATH = "/services/T000/B000/very-secret"


@pytest.fixture
def operator_client(client_for):
    return client_for(UserFactory(email="ops@clawtrace.example", is_staff=True, is_superuser=True))


@pytest.fixture
def rows(org):
    rule = AlertRuleFactory(organization=org, webhook_url="https://hooks.slack.com" + SECRET_PATH)
    alert = AlertFactory(organization=org, rule=rule)
    delivery = AlertDeliveryFactory(
        organization=org, alert=alert, status=DeliveryStatus.FAILED, last_error="HTTP 500"
    )
    attempt = DeliveryAttempt.all_orgs.create(
        organization=org, delivery=delivery, channel="webhook", status_code=500, error="HTTP 500"
    )
    return {
        "alerts_alertrule": rule,
        "alerts_alert": alert,
        "alerts_alertdelivery": delivery,
        "alerts_deliveryattempt": attempt,
    }


@pytest.mark.parametrize(
    "model",
    [
        "alerts_alertrule",
        "alerts_alert",
        "alerts_alertdelivery",
        "alerts_deliveryattempt",
    ],
)
def test_operator_lists_searches_and_opens_every_model(operator_client, rows, model):
    changelist = reverse(f"admin:{model}_changelist")
    listing = operator_client.get(changelist)
    assert listing.status_code == 200
    assert SECRET_PATH.encode() not in listing.content  # webhook URLs listed by host only
    assert operator_client.get(changelist, {"q": "alpha"}).status_code == 200
    change = reverse(f"admin:{model}_change", args=[rows[model].pk])
    assert operator_client.get(change).status_code == 200


def test_the_attempt_log_is_read_only(operator_client, rows):
    attempt = rows["alerts_deliveryattempt"]
    assert operator_client.get(reverse("admin:alerts_deliveryattempt_add")).status_code == 403
    operator_client.post(
        reverse("admin:alerts_deliveryattempt_change", args=[attempt.pk]), {"status_code": 200}
    )
    attempt.refresh_from_db()
    assert attempt.status_code == 500


def test_send_again_requeues_a_failed_delivery_through_the_service(
    operator_client, rows, receiver, django_capture_on_commit_callbacks
):
    rule = rows["alerts_alertrule"]
    rule.webhook_url = receiver.url
    rule.save()
    delivery = rows["alerts_alertdelivery"]

    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(
            reverse("admin:alerts_alertdelivery_changelist"),
            {"action": "send_again", "_selected_action": [delivery.pk]},
        )

    delivery = AlertDelivery.all_orgs.get(pk=delivery.pk)
    assert delivery.status == DeliveryStatus.SENT
    assert receiver.hits == 1
    assert DeliveryAttempt.all_orgs.filter(delivery=delivery).count() == 2
