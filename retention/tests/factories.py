from __future__ import annotations

import uuid
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.tests.factories import OrgOwnedFactory
from devices.tests.factories import DeviceFactory
from ingest.models import Delivery, Event


class StoredEventFactory(OrgOwnedFactory):
    """An event as ingest stores it (the wire shape is `ingest.tests.factories.event_payload`)."""

    class Meta:
        model = Event

    event_id = factory.LazyFunction(uuid.uuid4)
    device = factory.SubFactory(DeviceFactory, organization=factory.SelfAttribute("..organization"))
    source = "claude-code"
    project = "clawtrace"
    session_id = "3f2c9a1e-6b7d-4c1a-9f00-1234567890ab"
    model = "claude-sonnet-4-5"
    provider = "anthropic"
    occurred_at = factory.LazyFunction(timezone.now)
    input_tokens = 1200
    output_tokens = 340
    cache_read_tokens = 0
    cache_write_5m_tokens = 0
    cache_write_1h_tokens = 0
    web_search_requests = 0
    cost_usd = Decimal("0.031250000000")


class DeliveryFactory(OrgOwnedFactory):
    class Meta:
        model = Delivery

    device = factory.SubFactory(DeviceFactory, organization=factory.SelfAttribute("..organization"))
    event_id = factory.LazyFunction(uuid.uuid4)
