from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.tests.factories import OrgOwnedFactory
from alerts.models import Alert, AlertDelivery, AlertRecipient, AlertRule, Trigger


class AlertRuleFactory(OrgOwnedFactory):
    """A daily spend rule with a webhook; pass `email_enabled=True` and add recipients with
    `AlertRecipientFactory` for e-mail. The default webhook is a closed loopback port: a test
    that sends without pointing it at its receiver gets a refused connection, never a DNS
    query or a request that leaves the machine."""

    class Meta:
        model = AlertRule

    name = factory.Sequence(lambda n: f"Daily spend {n}")
    trigger = Trigger.SPEND_DAY
    threshold_usd = Decimal("10.00")
    webhook_url = "https://127.0.0.1:9/services/T000/B000/XXXX"


class AlertRecipientFactory(OrgOwnedFactory):
    class Meta:
        model = AlertRecipient

    rule = factory.SubFactory(
        AlertRuleFactory, organization=factory.SelfAttribute("..organization")
    )
    membership = None


class AlertFactory(OrgOwnedFactory):
    class Meta:
        model = Alert

    rule = factory.SubFactory(
        AlertRuleFactory, organization=factory.SelfAttribute("..organization")
    )
    rule_name = factory.SelfAttribute("rule.name")
    trigger = factory.SelfAttribute("rule.trigger")
    window_key = factory.Sequence(lambda n: f"2026-03-{(n % 28) + 1:02d}")
    window_start = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    window_end = factory.LazyFunction(timezone.now)
    value = Decimal("12.50")
    threshold = Decimal("10.00")


class AlertDeliveryFactory(OrgOwnedFactory):
    class Meta:
        model = AlertDelivery

    alert = factory.SubFactory(AlertFactory, organization=factory.SelfAttribute("..organization"))
    channel = "webhook"
