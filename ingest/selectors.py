"""Reads for ingest: the totals a device checks its own store against (`sync --check`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum

from accounts.models import Organization
from accounts.tenancy import organization_scope
from devices.models import Device
from ingest.models import Delivery, Event

COST_PLACES = 10  # as `clawtrace cost-report --json` rounds


def event_totals(*, organization: Organization, device: Device | None = None) -> dict[str, Any]:
    """The keys and meaning of `clawtrace cost-report --json`'s `totals`, in the agent's
    `auto` cost mode (an event's `cost_usd`; unpriced counts as 0). With `device`, over the
    events that device sent (whichever device sent them first); without, over the
    organization's events, each once."""
    with organization_scope(organization):
        events = Event.objects.all()
        if device is not None:
            events = events.filter(
                Q(device=device)
                | Q(event_id__in=Delivery.objects.filter(device=device).values("event_id"))
            )
        sums = events.aggregate(
            turns=Count("pk"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cache_read_tokens=Sum("cache_read_tokens"),
            cache_write_5m_tokens=Sum("cache_write_5m_tokens"),
            cache_write_1h_tokens=Sum("cache_write_1h_tokens"),
            cost_usd=Sum("cost_usd"),
        )
    cost = Decimal(sums["cost_usd"] or 0)
    return {
        "turns": int(sums["turns"] or 0),
        "input_tokens": int(sums["input_tokens"] or 0),
        "output_tokens": int(sums["output_tokens"] or 0),
        "cache_read_tokens": int(sums["cache_read_tokens"] or 0),
        "cache_write_tokens": int(sums["cache_write_5m_tokens"] or 0)
        + int(sums["cache_write_1h_tokens"] or 0),
        "cost_usd": float(round(cost, COST_PLACES)),
    }


def event_exists_between(*, organization: Organization, start: datetime, end: datetime) -> bool:
    """Whether the organization holds an event with `start <= occurred_at < end` (the
    retention job's "would a shorter retention delete anything?"; one probe of the
    (organization, occurred_at) index)."""
    with organization_scope(organization):
        return Event.objects.filter(occurred_at__gte=start, occurred_at__lt=end).exists()
