"""Reads of single records: organization API keys, anomalies (for the dashboard and for the
alert rules), and the drill-down into one session (the only read of raw events, bounded by the
session's span from the rollups so that it uses the events' (organization, occurred_at) index)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from clawtrace.reports import Totals, usd
from django.db.models import Max, Min, Q, QuerySet

from accounts.models import Organization
from accounts.tenancy import organization_scope
from analytics.models import (
    Anomaly,
    AnomalyKind,
    OrganizationApiKey,
    UsageDailyRollup,
    UsageRollup,
)
from analytics.selectors.filters import InvalidParameter, UsageFilter
from analytics.selectors.visibility import projects_shown, rows_visible
from clawtrace_site.tokens import hash_secret, secret_matches
from ingest.models import Event

API_KEY_PREFIX = "cto_"  # (analytics.services.api_keys makes them)
SESSION_TURNS_MAX = 5000


def api_key_get_by_value(*, value: str) -> OrganizationApiKey | None:
    """The key a value belongs to (revoked ones too: the caller says no), or None. Looked up
    across organizations by digest: the key is the credential and names its organization."""
    if not value.startswith(API_KEY_PREFIX) or not 28 <= len(value) <= 128:
        return None
    digest = hash_secret(value)
    api_key = (
        OrganizationApiKey.all_orgs.select_related("organization").filter(key_digest=digest).first()
    )
    if api_key is None or not secret_matches(value, api_key.key_digest):
        return None
    return api_key


def api_key_list(*, organization: Organization) -> list[OrganizationApiKey]:
    with organization_scope(organization):
        return list(OrganizationApiKey.objects.select_related("created_by"))


def api_key_get(*, organization: Organization, api_key_id: int) -> OrganizationApiKey | None:
    with organization_scope(organization):
        return OrganizationApiKey.objects.filter(pk=api_key_id).first()


def anomaly_list(
    *, organization: Organization, filters: UsageFilter | None = None, limit: int = 100
) -> QuerySet[Anomaly]:
    """Anomalies whose window overlaps the range, newest first. A session's spike in a project
    the plan hides is hidden with it; the organization-wide ones (a day's or an hour's spend
    over a limit) are about all the money spent and stay."""
    if not 1 <= limit <= 1000:
        raise InvalidParameter("limit", "a number from 1 to 1000.")
    with organization_scope(organization):
        rows = _anomalies_visible(organization)
        if filters is not None and filters.since is not None:
            rows = rows.filter(window_end__gt=filters.since)
        if filters is not None and filters.until is not None:
            rows = rows.filter(window_start__lt=filters.until)
        return rows.order_by("-window_start", "-pk")[:limit]


def anomaly_recent_list(
    *, organization: Organization, kinds: Iterable[str], updated_since: datetime
) -> list[Anomaly]:
    """The anomalies of those kinds that detection found or found again since
    `updated_since`, oldest window first (what alert rules are evaluated against). The same
    rows the dashboard shows: a spike in a project the plan hides stays hidden here too."""
    with organization_scope(organization):
        return list(
            _anomalies_visible(organization)
            .filter(kind__in=list(kinds), updated_at__gte=updated_since)
            .order_by("window_start", "pk")
        )


def _anomalies_visible(organization: Organization) -> QuerySet[Anomaly]:
    """The organization's anomalies without the session spikes of projects the plan hides.
    Call inside the organization's scope."""
    rows = Anomaly.objects.all()
    shown = projects_shown(organization=organization)
    if shown is not None:
        rows = rows.exclude(
            Q(kind=AnomalyKind.SESSION_SPIKE)
            & Q(details__project__isnull=False)
            & ~Q(details__project=None)
            & ~Q(details__project__in=shown)
        )
    return rows


def session_detail(
    *, organization: Organization, session_id: str, source: str | None = None
) -> dict[str, Any] | None:
    """One session: its turns over time (metadata only: there is no text on this side), its
    models and tools, and its totals; None when the organization has no such session."""
    if not session_id or len(session_id) > 200 or "\x00" in session_id:
        raise InvalidParameter("session", "a session id of 1 to 200 characters.")
    with organization_scope(organization):
        spans = rows_visible(
            UsageRollup.objects.filter(session_id=session_id), organization=organization
        )
        if source is not None:
            spans = spans.filter(source=source)
        span = spans.aggregate(first=Min("first_at"), last=Max("last_at"))
        if span["first"] is None:
            return None
        events = rows_visible(
            Event.objects.filter(
                session_id=session_id,
                occurred_at__gte=span["first"],
                occurred_at__lte=span["last"],
            ),
            organization=organization,
        )
        if source is not None:
            events = events.filter(source=source)
        turns = list(
            events.order_by("occurred_at", "pk").values(
                "occurred_at",
                "source",
                "agent",
                "project",
                "model",
                "device_id",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_5m_tokens",
                "cache_write_1h_tokens",
                "cost_usd",
                "is_sidechain",
                "tools",
            )[:SESSION_TURNS_MAX]
        )
    total = Totals()
    models: Counter = Counter()
    tools: Counter = Counter()
    out_turns = []
    for turn in turns:
        cost_pico = (
            None
            if turn["cost_usd"] is None
            else int((turn["cost_usd"] * 10**12).to_integral_value())
        )
        tokens = (
            turn["input_tokens"],
            turn["output_tokens"],
            turn["cache_read_tokens"],
            turn["cache_write_5m_tokens"] + turn["cache_write_1h_tokens"],
        )
        total.add((1, *tokens, cost_pico or 0, 0 if cost_pico is not None else sum(tokens), 0))
        models[turn["model"]] += 1
        tools.update(turn["tools"] or [])
        out_turns.append(
            {
                "occurred_at": _iso(turn["occurred_at"]),
                "model": turn["model"],
                "agent": turn["agent"],
                "is_sidechain": turn["is_sidechain"],
                "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "cache_read_tokens": tokens[2],
                "cache_write_tokens": tokens[3],
                "cost_usd": usd(cost_pico) if cost_pico is not None else None,
                "tools": list(turn["tools"] or []),
            }
        )
    first = turns[0] if turns else {}
    return {
        "session": session_id,
        "source": first.get("source"),
        "project": first.get("project"),
        "device_id": str(first["device_id"]) if first else None,
        "started_at": _iso(span["first"]),
        "ended_at": _iso(span["last"]),
        "models": dict(models.most_common()),
        "tools": dict(tools.most_common()),
        "turns": out_turns,
        "is_truncated": len(turns) >= SESSION_TURNS_MAX,
        "totals": total.as_dict(),
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def project_count(*, organization: Organization) -> int:
    """Distinct project labels the organization has usage for (hidden ones included): what a
    plan's project limit counts. Read from the daily rollups, not the raw events."""
    with organization_scope(organization):
        return (
            UsageDailyRollup.objects.exclude(project__isnull=True)
            .values("project")
            .distinct()
            .count()
        )
