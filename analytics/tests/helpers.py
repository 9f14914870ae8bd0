"""What the rollup tests compare against: the same questions answered from the raw events
in plain Python, the slow obvious way."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from accounts.models import Organization
from accounts.tenancy import organization_scope
from analytics.services.rollups import ROLLUP_MODELS
from ingest.models import Event

PICO = Decimal(10**12)


def raw_events(organization: Organization) -> list[Event]:
    with organization_scope(organization):
        return list(Event.objects.select_related("device"))


def totals_of(events) -> dict:
    """`clawtrace cost-report`'s totals, summed event by event."""
    cost = sum((int(e.cost_usd * PICO) for e in events if e.cost_usd is not None), 0)
    return {
        "turns": len(events),
        "input_tokens": sum(e.input_tokens for e in events),
        "output_tokens": sum(e.output_tokens for e in events),
        "cache_read_tokens": sum(e.cache_read_tokens for e in events),
        "cache_write_tokens": sum(
            e.cache_write_5m_tokens + e.cache_write_1h_tokens for e in events
        ),
        "cost_usd": round(cost / 10**12, 10),
        "unpriced_tokens": sum(e.total_tokens for e in events if e.cost_usd is None),
    }


def grouped(events, key) -> dict:
    groups = defaultdict(list)
    for event in events:
        groups[key(event)].append(event)
    return {k: totals_of(v) for k, v in groups.items()}


def by_local_day(events, zone: str) -> dict[str, dict]:
    tz = ZoneInfo(zone)
    return grouped(events, lambda e: e.occurred_at.astimezone(tz).date().isoformat())


def sessions_of(events) -> int:
    return len({(e.source, e.session_id) for e in events})


def rollup_snapshot(organization: Organization) -> dict[str, list]:
    """Every rollup row of the organization, without ids, in a stable order."""
    out = {}
    with organization_scope(organization):
        for model in ROLLUP_MODELS:
            fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
            out[model.__name__] = sorted(
                (tuple(str(v) for v in row) for row in model.objects.values_list(*fields)),
            )
    return out


def local(day: str) -> date:
    return date.fromisoformat(day)
