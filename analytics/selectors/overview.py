"""The overview's reads that are about "now": today, this week and this month in the
organization's time zone, the month-end forecast, budgets against it, and each member's
API-equivalent cost beside their subscription."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from clawtrace.reports import Totals, forecast_from_daily, usd
from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts.models import Membership, Organization
from accounts.subscriptions import (
    SUBSCRIPTION_MONTHLY_USD,
    SUBSCRIPTION_SOURCES,
    SubscriptionPlan,
    subscription_monthly_usd,
)
from accounts.tenancy import organization_scope
from analytics.models import Budget, BudgetScope, UsageDimension
from analytics.selectors.filters import UsageFilter, usage_range_bounds
from analytics.selectors.memo import memoized
from analytics.selectors.usage import (
    _SESSION_KEY,
    _SUMS,
    _device_labels,
    _device_value,
    _metrics,
    _summaries_for,
    _usage_rows,
)

PERIODS = ("today", "week", "month")


def _period_filter(
    organization: Organization, base: UsageFilter, period: str, now: datetime
) -> UsageFilter:
    since, until = usage_range_bounds(period, organization=organization, now=now)
    return base.with_range(since, until, organization.zone)


def period_totals(
    *, organization: Organization, filters: UsageFilter | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Today, this week (from Monday) and this month so far, in the organization's zone: the
    cost-report totals and the distinct sessions of each, under the other filters. Two
    queries whatever the periods: the days since the earliest period start, and the three
    distinct session counts in one aggregate."""
    now = now or timezone.now()
    base = filters or UsageFilter()
    zone = organization.zone
    spans = {period: _period_filter(organization, base, period, now) for period in PERIODS}
    earliest = min(spans.values(), key=lambda f: f.since)
    with organization_scope(organization):
        summaries = _summaries_for(organization, earliest)
        if summaries is not None:
            rows, session_rows = summaries.breakdown(UsageDimension.TOTAL), summaries.sessions()
            time_column = "day"
        else:
            rows, time_column = _usage_rows(organization, earliest)
            session_rows = rows
        per_time = list(rows.values(time_column).annotate(**_SUMS).order_by())
        bounds = {
            period: (f.since_day if time_column == "day" else f.since)
            for period, f in spans.items()
        }
        sessions = session_rows.aggregate(
            **{
                period: Count(
                    _SESSION_KEY, distinct=True, filter=Q(**{f"{time_column}__gte": bound})
                )
                for period, bound in bounds.items()
            }
        )
    out: dict[str, Any] = {"timezone": organization.time_zone, "now": now.isoformat()}
    for period, f in spans.items():
        total = Totals()
        for row in per_time:
            when = row[time_column]
            day = when.astimezone(zone).date() if isinstance(when, datetime) else when
            if day >= f.since_day:
                total.add(_metrics(row))
        out[period] = {**total.as_dict(), "sessions": sessions[period]}
    return out


def _month_days_cost(
    organization: Organization, base: UsageFilter, now: datetime, by: str = "total"
) -> list[dict[str, Any]]:
    """This month's spend per local day (picodollars) and source, and per device or project
    when `by` says so: rows of day, source, cost and (but for "total") `device_id` or
    `project`."""
    month = _period_filter(organization, base, "month", now)
    # (The plans table and the budgets both read the month per device: once per request.)
    return memoized(
        ("month_days_cost", organization.pk, organization.time_zone, by, month),
        lambda: _month_days_cost_read(organization, month, by),
    )


def _month_days_cost_read(
    organization: Organization, month: UsageFilter, by: str
) -> list[dict[str, Any]]:
    column = {"total": None, "device": "device_id", "project": "project"}[by]
    with organization_scope(organization):
        summaries = _summaries_for(organization, month)
        if summaries is not None:
            time_column = "day"
            found = list(
                summaries.breakdown(UsageDimension(by))
                .values("day", "source", *(["value"] if column else []))
                .annotate(cost=Sum("cost_pico"))
                .order_by()
            )
            for row in found:
                if column:
                    value = row.pop("value")
                    row[column] = _device_value(value) if by == "device" else value
        else:
            rows, time_column = _usage_rows(organization, month)
            found = list(
                rows.values(time_column, "source", *([column] if column else []))
                .annotate(cost=Sum("cost_pico"))
                .order_by()
            )
    zone = organization.zone
    for row in found:
        when = row.pop(time_column)
        row["day"] = when.astimezone(zone).date() if isinstance(when, datetime) else when
        row["cost"] = int(row["cost"] or 0)
    return found


def _forecast(per_day_pico: dict, now: datetime, zone) -> dict[str, Any]:
    local_now = now.astimezone(zone)
    today = local_now.date()
    first = today.replace(day=1)
    completed = [
        usd(per_day_pico.get(first + timedelta(days=n), 0)) for n in range((today - first).days)
    ]
    month_to_date = usd(sum(per_day_pico.values()))
    return forecast_from_daily(completed, usd(per_day_pico.get(today, 0)), month_to_date, local_now)


def month_forecast(
    *, organization: Organization, filters: UsageFilter | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Month-end spend as a range (low / expected / high) from this month's daily spend so far,
    by the agent's rule (`clawtrace.reports.forecast_from_daily`)."""
    now = now or timezone.now()
    rows = _month_days_cost(organization, filters or UsageFilter(), now)
    per_day: dict = defaultdict(int)
    for row in rows:
        per_day[row["day"]] += row["cost"]
    local_now = now.astimezone(organization.zone)
    return {
        "month": local_now.strftime("%Y-%m"),
        "timezone": organization.time_zone,
        **_forecast(per_day, now, organization.zone),
    }


def budget_status_list(
    *, organization: Organization, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every budget of the organization with this month's spend and forecast against it:
    the organization's first, then members', then projects'."""
    now = now or timezone.now()
    with organization_scope(organization):
        budgets = list(Budget.objects.select_related("member").order_by("scope", "project", "pk"))
    if not budgets:
        return []
    # Each scope's spend from the rows of its own grain: the day, the device, the project.
    grain = {
        BudgetScope.ORGANIZATION: "total",
        BudgetScope.MEMBER: "device",
        BudgetScope.PROJECT: "project",
    }
    rows_by = {
        by: _month_days_cost(organization, UsageFilter(), now, by)
        for by in sorted({grain[budget.scope] for budget in budgets})
    }
    with organization_scope(organization):
        devices = _device_labels({row["device_id"] for row in rows_by.get("device", [])})
    order = {BudgetScope.ORGANIZATION: 0, BudgetScope.MEMBER: 1, BudgetScope.PROJECT: 2}
    out = []
    for budget in sorted(budgets, key=lambda b: (order[b.scope], b.project, b.pk)):
        per_day: dict = defaultdict(int)
        for row in rows_by[grain[budget.scope]]:
            if budget.scope == BudgetScope.MEMBER:
                if devices.get(row["device_id"], ("", None))[1] != budget.member_id:
                    continue
            elif budget.scope == BudgetScope.PROJECT and row["project"] != budget.project:
                continue
            per_day[row["day"]] += row["cost"]
        forecast = _forecast(per_day, now, organization.zone)
        limit = float(budget.monthly_usd)
        spent = forecast["month_to_date_usd"]
        out.append(
            {
                "id": budget.pk,
                "scope": budget.scope,
                "member": budget.member.email if budget.member else None,
                "member_id": budget.member_id,
                "project": budget.project or None,
                "monthly_usd": limit,
                "spent_usd": spent,
                "percent_used": round(100 * spent / limit, 1),
                "forecast": forecast,
                "forecast_percent": round(100 * forecast["expected_usd"] / limit, 1),
                "is_over": spent >= limit,
                "is_forecast_over": forecast["expected_usd"] > limit,
            }
        )
    return out


def member_plan_comparison(
    *, organization: Organization, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per member, this month: the API-equivalent cost of their usage (what the tokens would
    cost at API prices; Claude Code's share is what a Claude subscription pays for) beside
    what their recorded subscription costs, and the month-end forecast of both."""
    now = now or timezone.now()
    rows = _month_days_cost(organization, UsageFilter(), now, "device")
    with organization_scope(organization):
        devices = _device_labels({row["device_id"] for row in rows})
        memberships = list(Membership.objects.select_related("user").order_by("pk"))
    by_user: dict[int | None, dict] = defaultdict(
        lambda: {"covered": defaultdict(int), "other": defaultdict(int)}
    )
    for row in rows:
        user_id = devices.get(row["device_id"], ("", None))[1]
        part = "covered" if row["source"] in SUBSCRIPTION_SOURCES else "other"
        by_user[user_id][part][row["day"]] += row["cost"]
    out = []
    for membership in memberships:
        usage = by_user.get(membership.user_id, {"covered": {}, "other": {}})
        covered = _forecast(usage["covered"], now, organization.zone)
        other = _forecast(usage["other"], now, organization.zone)
        price = subscription_monthly_usd(membership.subscription_plan)
        expected = covered["expected_usd"]
        out.append(
            {
                "member": membership.user.email,
                "member_id": membership.pk,
                "subscription_plan": membership.subscription_plan,
                "subscription_label": membership.get_subscription_plan_display(),
                "subscription_usd": float(price) if price is not None else None,
                # Claude Code usage at API prices: what the subscription stands in for.
                "api_equivalent_usd": covered["month_to_date_usd"],
                "api_equivalent_forecast_usd": expected,
                # Other agents (OpenClaw...) bill API keys whatever the plan.
                "other_api_usd": other["month_to_date_usd"],
                # Positive: the subscription costs less than paying per token would this month.
                "subscription_saves_usd": (
                    round(expected - float(price), 2) if price is not None else None
                ),
                "plans": _per_plan(expected),
            }
        )
    out.sort(key=lambda r: (-r["api_equivalent_forecast_usd"], r["member"]))
    return out


def _per_plan(api_month_usd: float) -> list[dict[str, Any]]:
    """What each flat plan would save against paying per token for this usage (negative: it
    costs more). On price alone: the plans' usage limits are not published in dollars."""
    return [
        {
            "plan": str(plan),
            "label": SubscriptionPlan(plan).label,
            "monthly_usd": float(price),
            "saves_usd": round(api_month_usd - float(price), 2),
        }
        for plan, price in SUBSCRIPTION_MONTHLY_USD.items()
        if price is not None
    ]
