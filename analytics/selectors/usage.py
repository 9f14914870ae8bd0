"""Usage reads over the rollups: totals, reports by time or by a dimension, series, top
sessions, cost per tool and cache savings. Never the raw events (`session_detail` in
`analytics.selectors.sessions` is the one drill-down that reads them).

Each read picks its rows with `_usage_rows`: the daily rollups when the organization's daily
rows are in its current zone and the question needs no finer grain than a day, otherwise the
15-minute rows. Both hold the same sums (the daily rows are made from the 15-minute ones), so
the choice changes the speed, never the answer; `tests/test_selectors.py` checks both paths.

Rows and totals have the agent's shape (`clawtrace cost-report --json`): the agent's own
`Totals` class adds them up and writes them out, money as float USD rounded to 10 places from
integer picodollars, so the API answers exactly what the agent prints for the same turns.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clawtrace.reports import TOTAL_KEYS, Totals, usd
from django.db.models import CharField, Count, F, Max, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Concat

from accounts.models import Membership, Organization
from accounts.tenancy import organization_in_scope, organization_scope
from analytics.models import (
    RollupState,
    SessionDailyRollup,
    ToolDailyRollup,
    ToolDailyTotal,
    ToolRollup,
    UsageDailyBreakdown,
    UsageDailyRollup,
    UsageDimension,
    UsageRollup,
)
from analytics.selectors.filters import InvalidParameter, UsageFilter
from analytics.selectors.memo import memo_active, memoized
from analytics.selectors.visibility import any_project_hidden, rows_visible
from devices.models import Device

TIME_GROUPINGS = ("hour", "day", "week", "month")
DIMENSION_GROUPINGS = ("model", "project", "device", "member", "agent", "source")
GROUPINGS = (*TIME_GROUPINGS, *DIMENSION_GROUPINGS)
SERIES_GROUPINGS = ("hour", "day", "week")
# A series of hours is at most this long (three months of hours), so that a chart never asks
# for a million points.
MAX_SERIES_POINTS = 24 * 93

_ALL_TOKENS = Sum(
    F("input_tokens")
    + F("output_tokens")
    + F("cache_read_tokens")
    + F("cache_write_5m_tokens")
    + F("cache_write_1h_tokens")
)
# Distinct sessions in the same scan as the sums (a session is its source and id; the unit
# separator cannot occur in either).
_SESSION_KEY = Concat("source", Value("\x1f"), "session_id", output_field=CharField())
_SESSIONS = Count(_SESSION_KEY, distinct=True)
_SUMS = {
    "s_turns": Sum("turns"),
    "s_input": Sum("input_tokens"),
    "s_output": Sum("output_tokens"),
    "s_cache_read": Sum("cache_read_tokens"),
    "s_cache_write_5m": Sum("cache_write_5m_tokens"),
    "s_cache_write_1h": Sum("cache_write_1h_tokens"),
    "s_cost": Sum("cost_pico"),
    "s_unpriced_tokens": Sum("unpriced_tokens"),
    "s_unpriced_turns": Sum("unpriced_turns"),
}


def _metrics(row: dict[str, Any]) -> tuple[int, ...]:
    """The eight sums of `Totals.add`, from an aggregate row (PostgreSQL sums bigints as
    numeric, hence int())."""
    value = {key: int(row.get(key) or 0) for key in _SUMS}
    return (
        value["s_turns"],
        value["s_input"],
        value["s_output"],
        value["s_cache_read"],
        value["s_cache_write_5m"] + value["s_cache_write_1h"],
        value["s_cost"],
        value["s_unpriced_tokens"],
        value["s_unpriced_turns"],
    )


def _totals(rows: Iterable[dict[str, Any]]) -> Totals:
    total = Totals()
    for row in rows:
        total.add(_metrics(row))
    return total


# --- Choosing the rows --------------------------------------------------------------------------


def daily_rollups_ready(organization: Organization) -> bool:
    """Whether the daily rollups are in the organization's current zone. (Asked each time,
    but for within one request (`memo.reads_memoized`): a zone changed and changed back must
    not find yesterday's answer.)"""
    return memoized(
        ("daily_rollups_ready", organization.pk, organization.time_zone),
        lambda: RollupState.all_orgs.filter(
            organization=organization, daily_time_zone=organization.time_zone
        ).exists(),
    )


class _Summaries:
    """The daily summaries (`UsageDailyBreakdown`, `SessionDailyRollup`, `ToolDailyTotal`) of
    a range, for the reads they can answer: whole local days, no filter but the source, and a
    plan that hides no project (their rows mix every project of a day). `_summaries_for` says
    whether they can; each method's rows are the range's, in the organization's scope."""

    def __init__(self, f: UsageFilter) -> None:
        self.f = f

    def _ranged(self, model) -> QuerySet:
        rows = model.objects.all()
        if self.f.since_day is not None:
            rows = rows.filter(day__gte=self.f.since_day)
        if self.f.until_day is not None:
            rows = rows.filter(day__lt=self.f.until_day)
        if self.f.source is not None:
            rows = rows.filter(source=self.f.source)
        return rows

    def breakdown(self, dimension: UsageDimension) -> QuerySet:
        return self._ranged(UsageDailyBreakdown).filter(dimension=dimension)

    def sessions(self) -> QuerySet:
        return self._ranged(SessionDailyRollup)

    def tools(self) -> QuerySet:
        return self._ranged(ToolDailyTotal)


def _summaries_for(organization: Organization, f: UsageFilter) -> _Summaries | None:
    """The summaries answering `f`, or None when only the daily (or 15-minute) rollups can."""
    if f.device_ids is not None or any(
        getattr(f, name) is not None for name in ("project", "model", "agent")
    ):
        return None
    if not daily_rollups_ready(organization) or any_project_hidden(organization=organization):
        return None
    return _Summaries(f)


@functools.lru_cache(maxsize=4096)
def _device_value(value: str | None) -> uuid.UUID | None:
    # A breakdown's device value is the id as text (with or without hyphens, by database); a
    # month of rows names the same few devices hundreds of times.
    return uuid.UUID(value) if value else None


def _dimension_filters(rows: QuerySet, f: UsageFilter, *, with_session: bool = True) -> QuerySet:
    if f.device_ids is not None:
        rows = rows.filter(device_id__in=sorted(f.device_ids))
    for name in ("project", "model", "agent", "source"):
        value = getattr(f, name)
        if value is not None:
            rows = rows.filter(**{name: value})
    return rows


def _usage_rows(
    organization: Organization, f: UsageFilter, *, fine: bool = False, tools: bool = False
) -> tuple[QuerySet, str]:
    """The rollup rows `f` selects and the name of their time column ("day" or "bucket"),
    without the projects the plan hides. Call inside the organization's scope."""
    daily_model, bucket_model = (
        (ToolDailyRollup, ToolRollup) if tools else (UsageDailyRollup, UsageRollup)
    )
    if not fine and daily_rollups_ready(organization):
        rows = daily_model.objects.all()
        if f.since_day is not None:
            rows = rows.filter(day__gte=f.since_day)
        if f.until_day is not None:
            rows = rows.filter(day__lt=f.until_day)
        time_column = "day"
    else:
        rows = bucket_model.objects.all()
        if f.since is not None:
            rows = rows.filter(bucket__gte=f.since)
        if f.until is not None:
            rows = rows.filter(bucket__lt=f.until)
        time_column = "bucket"
    return _dimension_filters(rows_visible(rows, organization=organization), f), time_column


# --- Totals and reports -------------------------------------------------------------------------


def usage_totals(*, organization: Organization, filters: UsageFilter) -> dict[str, Any]:
    """The cost-report totals of the range, plus its distinct sessions."""
    with organization_scope(organization):
        summaries = _summaries_for(organization, filters)
        if summaries is not None:
            found = summaries.breakdown(UsageDimension.TOTAL).aggregate(**_SUMS)
            found["sessions"] = summaries.sessions().aggregate(sessions=_SESSIONS)["sessions"]
        else:
            rows, _ = _usage_rows(organization, filters)
            found = rows.aggregate(**_SUMS, sessions=_SESSIONS)
    return {**_totals([found]).as_dict(), "sessions": found["sessions"]}


def _time_key(by: str, local: datetime) -> str:
    # As the agent keys its rows (reports._time_key): day, Monday of the week, month, hour.
    if by == "day":
        return local.date().isoformat()
    if by == "hour":
        return local.strftime("%Y-%m-%dT%H:00")
    if by == "week":
        return (local.date() - timedelta(days=local.weekday())).isoformat()
    return local.strftime("%Y-%m")


def _local(value: date | datetime, zone) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(zone)
    return datetime(value.year, value.month, value.day, tzinfo=zone)


def _row(by: str, key: Any, total: Totals, **extra: Any) -> dict[str, Any]:
    return {by: key, **extra, **total.as_dict()}


def _device_labels(device_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int | None]]:
    """device id -> (name, the linking member's user id). Call inside the organization's
    scope. Within one request every device of the organization is read once (a page asks for
    them five times); otherwise just those asked for."""
    wanted = set(device_ids)
    if not wanted:
        return {}
    if memo_active():
        every = memoized(("device_labels", organization_in_scope().pk), _device_labels_all)
        return {device_id: every[device_id] for device_id in wanted if device_id in every}
    return _device_labels_of(Device.objects.filter(pk__in=list(wanted)))


def _device_labels_all() -> dict[uuid.UUID, tuple[str, int | None]]:
    return _device_labels_of(Device.objects.all())


def _device_labels_of(devices: QuerySet) -> dict[uuid.UUID, tuple[str, int | None]]:
    return {
        device_id: (name, user_id)
        for device_id, name, user_id in devices.values_list("pk", "name", "created_by_id")
    }


def _member_labels() -> dict[int, tuple[int, str]]:
    """user id -> (membership id, email) of the organization's members (read once per
    request). Call inside the organization's scope."""
    return memoized(("member_labels", organization_in_scope().pk), _member_labels_read)


def _member_labels_read() -> dict[int, tuple[int, str]]:
    return {
        user_id: (membership_id, email)
        for membership_id, user_id, email in Membership.objects.values_list(
            "pk", "user_id", "user__email"
        )
    }


def _dimension_sort_key(row: dict[str, Any], by: str) -> tuple:
    # The agent's order: most expensive first, then most tokens, then the key.
    tokens = (row["input_tokens"] + row["output_tokens"] + row["cache_read_tokens"]) + row[
        "cache_write_tokens"
    ]
    key = row[by]
    return (-row["cost_usd"], -tokens, key is None, "" if key is None else str(key))


def _grouped(
    organization: Organization, filters: UsageFilter, by: str
) -> list[tuple[Any, Totals, dict[str, Any]]]:
    """(key, totals, extra columns) per group, unordered."""
    zone = organization.zone
    summaries = _summaries_for(organization, filters)
    if by in TIME_GROUPINGS:
        if by != "hour" and summaries is not None:
            rows, time_column = summaries.breakdown(UsageDimension.TOTAL), "day"
        else:
            rows, time_column = _usage_rows(organization, filters, fine=by == "hour")
        groups: dict[str, Totals] = defaultdict(Totals)
        for row in rows.values(time_column).annotate(**_SUMS).order_by():
            key = _time_key(by, _local(row[time_column], zone))
            groups[key].add(_metrics(row))
        return [(key, total, {}) for key, total in groups.items()]
    if summaries is not None:
        if by == "source":
            per_source = summaries.breakdown(UsageDimension.TOTAL).values("source")
            per_source = per_source.annotate(**_SUMS).order_by()
            return [(row["source"], _totals([row]), {}) for row in per_source]
        if by in ("model", "project", "agent"):
            per_value = summaries.breakdown(UsageDimension(by)).values("value")
            per_value = per_value.annotate(**_SUMS).order_by()
            return [(row["value"], _totals([row]), {}) for row in per_value]
    elif by in ("model", "project", "agent", "source"):
        rows, _ = _usage_rows(organization, filters)
        return [
            (row[by], _totals([row]), {}) for row in rows.values(by).annotate(**_SUMS).order_by()
        ]
    # (The page's device and member breakdowns read the same rows: once per request.)
    per_device = memoized(
        ("per_device", organization.pk, organization.time_zone, filters),
        lambda: _per_device_rows(organization, filters, summaries),
    )
    devices = _device_labels(row["device_id"] for row in per_device)
    if by == "device":
        return [
            (
                devices.get(row["device_id"], ("(unknown device)", None))[0],
                _totals([row]),
                {"device_id": str(row["device_id"])},
            )
            for row in per_device
        ]
    members = _member_labels()
    groups_by_member: dict[int | None, list[dict]] = defaultdict(list)
    for row in per_device:
        user_id = devices.get(row["device_id"], ("", None))[1]
        groups_by_member[user_id if user_id in members else None].append(row)
    return [
        (
            members[user_id][1] if user_id is not None else None,
            _totals(rows_of_member),
            {"member_id": members[user_id][0] if user_id is not None else None},
        )
        for user_id, rows_of_member in groups_by_member.items()
    ]


def _per_device_rows(
    organization: Organization, filters: UsageFilter, summaries: _Summaries | None
) -> list[dict[str, Any]]:
    if summaries is not None:
        return [
            {**row, "device_id": _device_value(row.pop("value"))}
            for row in summaries.breakdown(UsageDimension.DEVICE)
            .values("value")
            .annotate(**_SUMS)
            .order_by()
        ]
    rows, _ = _usage_rows(organization, filters)
    return list(rows.values("device_id").annotate(**_SUMS).order_by())


def usage_report(
    *, organization: Organization, filters: UsageFilter, by: str = "day"
) -> dict[str, Any]:
    """`clawtrace cost-report --json` for the organization: `rows` (each the TOTAL_KEYS and
    its grouping key under the name of `by`; device rows add `device_id`, member rows
    `member_id`), `totals`, `by`, `range` and `timezone`. Time rows are in time order; the
    others most expensive first, as the agent orders them."""
    if by not in GROUPINGS:
        raise InvalidParameter("by", f"{by[:40]!r} is not one of {', '.join(GROUPINGS)}.")
    with organization_scope(organization):
        groups = _grouped(organization, filters, by)
    rows = [_row(by, key, total, **extra) for key, total, extra in groups]
    if by in TIME_GROUPINGS:
        rows.sort(key=lambda row: row[by])
    else:
        rows.sort(key=lambda row: _dimension_sort_key(row, by))
    total = Totals()
    for _key, group_total, _extra in groups:
        total.add(
            (
                group_total.turns,
                group_total.input_tokens,
                group_total.output_tokens,
                group_total.cache_read_tokens,
                group_total.cache_write_tokens,
                group_total.cost_pico,
                group_total.unpriced_tokens,
                group_total.unpriced_turns,
            )
        )
    return {
        "rows": rows,
        "totals": total.as_dict(),
        "by": by,
        "range": filters.range,
        "timezone": organization.time_zone,
    }


def usage_breakdown(
    *, organization: Organization, filters: UsageFilter, by: str
) -> list[dict[str, Any]]:
    """Rows by member, device, project, model, agent or source, most expensive first, each
    with its share of the range's cost."""
    if by not in DIMENSION_GROUPINGS:
        raise InvalidParameter("by", f"{by[:40]!r} is not one of {', '.join(DIMENSION_GROUPINGS)}.")
    report = usage_report(organization=organization, filters=filters, by=by)
    whole = report["totals"]["cost_usd"]
    for row in report["rows"]:
        row["share"] = round(row["cost_usd"] / whole, 4) if whole else 0.0
    return report["rows"]


def usage_series(
    *, organization: Organization, filters: UsageFilter, by: str = "day"
) -> list[dict[str, Any]]:
    """Zero-filled points over the range (which must be bounded), by local hour, day or week:
    each point the cost-report keys under its key (`hour`, `day` or `week`)."""
    if by not in SERIES_GROUPINGS:
        raise InvalidParameter("by", f"{by[:40]!r} is not one of {', '.join(SERIES_GROUPINGS)}.")
    if not filters.is_bounded:
        filters = _bounded_by_data(organization, filters)
        if not filters.is_bounded:
            return []
    zone = organization.zone
    step = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}[by]
    if by == "hour" and (filters.until - filters.since) / step > MAX_SERIES_POINTS:
        raise InvalidParameter(
            "by", f"hour needs a range of at most {MAX_SERIES_POINTS // 24} days; use day."
        )
    report = usage_report(organization=organization, filters=filters, by=by)
    found = {row[by]: row for row in report["rows"]}
    points, seen = [], set()
    moment = filters.since
    # Walk in 15-minute steps for hours (a :30 zone's hour starts mid-UTC-hour) and in local
    # days otherwise, so that DST days of 23 or 25 hours fall out right.
    local_day = filters.since_day
    while moment < filters.until:
        key = _time_key(by, moment.astimezone(zone))
        if key not in seen:
            seen.add(key)
            points.append(found.get(key) or {by: key, **Totals().as_dict()})
        if by == "hour":
            moment += timedelta(minutes=15)
        else:
            local_day += timedelta(days=1)
            moment = datetime(local_day.year, local_day.month, local_day.day, tzinfo=zone)
    return points


def _bounded_by_data(organization: Organization, filters: UsageFilter) -> UsageFilter:
    """`all` made concrete: from the first local day with usage to today."""
    with organization_scope(organization):
        rows, _ = _usage_rows(organization, filters, fine=True)
        span = rows.aggregate(first=Min("bucket"), last=Max("bucket"))
    if span["first"] is None:
        return filters
    zone = organization.zone
    first_day = span["first"].astimezone(zone).date()
    last_day = span["last"].astimezone(zone).date() + timedelta(days=1)
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=zone).astimezone(UTC)
    until = datetime(last_day.year, last_day.month, last_day.day, tzinfo=zone).astimezone(UTC)
    return filters.with_range(since, until, zone)


# --- Sessions -----------------------------------------------------------------------------------


def session_top(
    *, organization: Organization, filters: UsageFilter, n: int = 10
) -> list[dict[str, Any]]:
    """The N most expensive sessions of the range (then most tokens), as the agent's
    `sessions --json` rows plus their device and member."""
    if not 1 <= n <= 1000:
        raise InvalidParameter("top", "a number from 1 to 1000.")
    with organization_scope(organization):
        rows, _ = _usage_rows(organization, filters)
        summaries = _summaries_for(organization, filters)
        # (A session's row per day, when the summaries answer: rank those, then read the
        # winners' own rows for their models, projects and devices.)
        ranking = summaries.sessions() if summaries is not None else rows
        # Ranked on the two sums the order needs (every session of the range is a group: the
        # fewer sums, the cheaper), then the winners' full sums.
        winners = list(
            ranking.values("source", "session_id")
            .annotate(s_cost=Sum("cost_pico"), s_tokens=_ALL_TOKENS, s_turns=Sum("turns"))
            .filter(s_turns__gt=0)
            .order_by("-s_cost", "-s_tokens", "session_id", "source")
            .values_list("source", "session_id")[:n]
        )
        if not winners:
            return []
        wanted = Q(session_id__in=sorted({session_id for _source, session_id in winners}))
        one_of = Q()
        for source, session_id in winners:
            one_of |= Q(source=source, session_id=session_id)
        wanted &= one_of
        sums = {
            (row["source"], row["session_id"]): row
            for row in ranking.filter(wanted)
            .values("source", "session_id")
            .annotate(**_SUMS, first=Min("first_at"), last=Max("last_at"))
            .order_by()
        }
        ranked = [sums[key] for key in winners]
        details: dict[tuple[str, str], dict[str, set]] = defaultdict(lambda: defaultdict(set))
        sidechain: dict[tuple[str, str], int] = defaultdict(int)
        for row in rows.filter(wanted).values(
            "source",
            "session_id",
            "model",
            "project",
            "agent",
            "device_id",
            "turns",
            "sidechain_turns",
        ):
            key = (row["source"], row["session_id"])
            for name in ("model", "project", "device_id"):
                details[key][name].add(row[name])
            # The session's agent: a main-thread one when there is one (the agent's rule).
            is_main = row["turns"] > row["sidechain_turns"]
            details[key]["main_agent" if is_main else "side_agent"].add(row["agent"])
            sidechain[key] += row["sidechain_turns"]
        devices = _device_labels({d for item in details.values() for d in item["device_id"]})
        members = _member_labels()
    out = []
    for row in ranked:
        key = (row["source"], row["session_id"])
        item = details[key]
        device_ids = sorted(item["device_id"], key=str)
        device = devices.get(device_ids[0], ("(unknown device)", None)) if device_ids else None
        member = members.get(device[1]) if device and device[1] is not None else None
        projects = sorted((p for p in item["project"] if p is not None), key=str)
        out.append(
            {
                "session": row["session_id"],
                "source": row["source"],
                "agent": max(item["main_agent"])
                if item["main_agent"]
                else min(item["side_agent"], default=""),
                "project": projects[0] if projects else None,
                "device": device[0] if device else None,
                "device_id": str(device_ids[0]) if device_ids else None,
                "member": member[1] if member else None,
                "started_at": row["first"].astimezone(UTC).isoformat(),
                "ended_at": row["last"].astimezone(UTC).isoformat(),
                "models": sorted(item["model"]),
                "sidechain_turns": sidechain[key],
                **_totals([row]).as_dict(),
            }
        )
    return out


def session_count(*, organization: Organization, filters: UsageFilter) -> int:
    with organization_scope(organization):
        summaries = _summaries_for(organization, filters)
        rows = (
            summaries.sessions() if summaries is not None else _usage_rows(organization, filters)[0]
        )
        return rows.aggregate(sessions=_SESSIONS)["sessions"]


# --- Tools and cache ----------------------------------------------------------------------------


def tool_costs(*, organization: Organization, filters: UsageFilter) -> dict[str, Any]:
    """Cost per tool (each turn's cost split evenly over its tool calls), as the agent's
    `tools --json`: rows of tool, calls, turns, cost_usd; what turns without a tool cost; and
    the range's whole cost."""
    with organization_scope(organization):
        summaries = _summaries_for(organization, filters)
        if summaries is not None:
            rows, usage = summaries.tools(), summaries.breakdown(UsageDimension.TOTAL)
        else:
            rows, usage = (
                _usage_rows(organization, filters, tools=True)[0],
                _usage_rows(organization, filters)[0],
            )
        found = list(
            rows.values("tool")
            .annotate(calls=Sum("calls"), tool_turns=Sum("turns"), cost=Sum("cost_pico"))
            .order_by()
        )
        all_cost = int(usage.aggregate(cost=Sum("cost_pico"))["cost"] or 0)
    found.sort(key=lambda r: (-int(r["cost"] or 0), -int(r["calls"] or 0), r["tool"]))
    tool_cost = sum(int(r["cost"] or 0) for r in found)
    return {
        "rows": [
            {
                "tool": r["tool"],
                "calls": int(r["calls"] or 0),
                "turns": int(r["tool_turns"] or 0),
                "cost_usd": usd(int(r["cost"] or 0)),
            }
            for r in found
            if r["tool_turns"]
        ],
        "no_tool_cost_usd": usd(max(all_cost - tool_cost, 0)),
        "total_cost_usd": usd(all_cost),
    }


def cache_savings(*, organization: Organization, filters: UsageFilter) -> dict[str, Any]:
    """Per model: what cache reads saved against the model's full input price and what cache
    writes cost, priced by the agent's price tables (`clawtrace.pricing`) on each day's prices,
    in the agent's `cache --json` shape.

    The rollups hold sums, not turns, so every token is priced at the model's base tier: for the
    few models with a long-context tier (above 200k input tokens) turns past it saved a little
    more than shown."""
    from analytics.selectors.prices import cache_rates

    cache_sums = {
        "cache_read": Sum("cache_read_tokens"),
        "write_5m": Sum("cache_write_5m_tokens"),
        "write_1h": Sum("cache_write_1h_tokens"),
        "input": Sum("input_tokens"),
    }
    with organization_scope(organization):
        summaries = _summaries_for(organization, filters)
        if summaries is not None:
            time_column = "day"
            per_day = [
                {**row, "model": row.pop("value")}
                for row in summaries.breakdown(UsageDimension.MODEL)
                .values("provider", "value", "day")
                .annotate(**cache_sums)
                .order_by()
            ]
        else:
            rows, time_column = _usage_rows(organization, filters)
            per_day = list(
                rows.values("provider", "model", time_column).annotate(**cache_sums).order_by()
            )
    by_model: dict[str, list] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for row in per_day:
        when = row[time_column]
        day = when.astimezone(UTC).date() if isinstance(when, datetime) else when
        counts = [int(row[k] or 0) for k in ("cache_read", "write_5m", "write_1h", "input")]
        rates = cache_rates(row["provider"], row["model"], day)
        acc = by_model[row["model"]]
        for index, value in enumerate(counts):
            acc[index] += value
        if rates is not None:
            read_saving, write_5m, write_1h = rates
            acc[4] += counts[0] * read_saving
            acc[5] += counts[1] * write_5m + counts[2] * write_1h
    out_rows = []
    saved = written = 0
    for model, (read, w5, w1, inp, saving, writes) in sorted(
        by_model.items(), key=lambda item: (-item[1][4], item[0])
    ):
        saving, writes = round(saving), round(writes)
        all_input = read + w5 + w1 + inp
        out_rows.append(
            {
                "model": model,
                "cache_read_tokens": read,
                "cache_write_5m_tokens": w5,
                "cache_write_1h_tokens": w1,
                "hit_ratio": round(read / all_input, 4) if all_input else 0.0,
                "saved_usd": usd(saving),
                "write_cost_usd": usd(writes),
                "net_saved_usd": usd(saving - writes),
            }
        )
        saved += saving
        written += writes
    return {
        "rows": out_rows,
        "totals": {
            "saved_usd": usd(saved),
            "write_cost_usd": usd(written),
            "net_saved_usd": usd(saved - written),
        },
    }


__all__ = [
    "GROUPINGS",
    "TOTAL_KEYS",
    "cache_savings",
    "daily_rollups_ready",
    "session_count",
    "session_top",
    "tool_costs",
    "usage_breakdown",
    "usage_report",
    "usage_series",
    "usage_totals",
]
