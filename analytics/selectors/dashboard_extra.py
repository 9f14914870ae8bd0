"""Reads only the browser dashboard needs, beside the shared ones: what the filter bar offers,
whether an organization has any usage at all (the first-device empty state), the subjects of
the drill-down pages, and which subscription would cost a member least.

Like the rest of the package they take the organization, enter its scope themselves and read
the rollups, never the raw events.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from accounts.models import Membership, Organization
from accounts.subscriptions import SUBSCRIPTION_MONTHLY_USD, SubscriptionPlan
from accounts.tenancy import organization_scope
from analytics.models import Budget, UsageDimension, UsageRollup
from analytics.selectors.filters import UsageFilter
from analytics.selectors.overview import member_plan_comparison
from analytics.selectors.usage import _summaries_for, _usage_rows
from analytics.selectors.visibility import rows_visible
from devices.models import Device

# The filter bar lists at most this many values of a label (the most recent range's); a value
# beyond them can still be typed into the URL.
CHOICES_MAX = 200


def usage_exists(*, organization: Organization) -> bool:
    """Whether any usage at all has been rolled up for the organization (any time, any
    device): the dashboard says how to link a first device when not."""
    with organization_scope(organization):
        return UsageRollup.objects.exists()


def filter_choices(*, organization: Organization, filters: UsageFilter) -> dict[str, Any]:
    """What the filter bar offers: every member and device of the organization, and the
    projects, models and agents seen in the filter's range. The labels ignore the other label
    filters, so that choosing a model does not empty the model list."""
    unfiltered = replace(
        filters, device_ids=None, member_id=None, project=None, model=None, agent=None, source=None
    )
    with organization_scope(organization):
        summaries = _summaries_for(organization, unfiltered)

        def values_of(name: str):
            if summaries is not None:
                return summaries.breakdown(UsageDimension(name)).values_list("value", flat=True)
            return _usage_rows(organization, unfiltered)[0].values_list(name, flat=True)

        labels = {
            name: sorted(
                value for value in values_of(name).order_by().distinct()[: CHOICES_MAX + 1] if value
            )[:CHOICES_MAX]
            for name in ("project", "model", "agent")
        }
        members = list(
            Membership.objects.select_related("user")
            .order_by("user__email")
            .values("pk", "user__email")
        )
        devices = list(Device.objects.order_by("name", "pk").values("pk", "name", "revoked_at"))
    return {
        "members": [{"id": m["pk"], "label": m["user__email"]} for m in members],
        "devices": [
            {"id": str(d["pk"]), "label": d["name"], "is_revoked": d["revoked_at"] is not None}
            for d in devices
        ],
        "projects": labels["project"],
        "models": labels["model"],
        "agents": labels["agent"],
    }


def device_for_usage_get(*, organization: Organization, device_id: uuid.UUID) -> Device | None:
    """A device of the organization with the member who linked it, or None (another
    organization's device included)."""
    with organization_scope(organization):
        return Device.objects.select_related("created_by").filter(pk=device_id).first()


def device_owner_membership(*, organization: Organization, device: Device) -> Membership | None:
    """The membership of the member who linked the device (None when they have left)."""
    if device.created_by_id is None:
        return None
    with organization_scope(organization):
        return Membership.objects.filter(user_id=device.created_by_id).first()


def member_for_usage_get(*, organization: Organization, membership_id: int) -> Membership | None:
    with organization_scope(organization):
        return Membership.objects.select_related("user").filter(pk=membership_id).first()


def budget_get(*, organization: Organization, budget_id: int) -> Budget | None:
    with organization_scope(organization):
        return Budget.objects.select_related("member").filter(pk=budget_id).first()


def project_has_usage(*, organization: Organization, project: str) -> bool:
    """Whether the project has any rolled-up usage in the organization that its plan shows
    (its page is a 404 otherwise: a project exists only as a label on usage)."""
    if not project or len(project) > 200 or "\x00" in project:
        return False
    with organization_scope(organization):
        return rows_visible(
            UsageRollup.objects.filter(project=project), organization=organization
        ).exists()


def _plan_cheapest(api_month_usd: float) -> tuple[str, str, float]:
    """(plan, label, monthly USD) of the option that costs a member least for this usage.

    Plans cap usage, and their caps are not published in dollars, so "cheapest on price alone"
    would send every heavy user to the smallest plan. The rule here: the biggest flat plan
    whose price is still below what the same usage costs per token (it pays for itself with
    the most room), else paying per token."""
    flat = [(plan, float(price)) for plan, price in SUBSCRIPTION_MONTHLY_USD.items() if price]
    paying_off = [(plan, price) for plan, price in flat if price < api_month_usd]
    if paying_off:
        plan, price = max(paying_off, key=lambda option: option[1])
        return str(plan), SubscriptionPlan(plan).label, price
    return str(SubscriptionPlan.API), SubscriptionPlan.API.label, round(api_month_usd, 2)


def member_plan_advice(
    *, organization: Organization, now: datetime | None = None
) -> list[dict[str, Any]]:
    """`member_plan_comparison`'s rows, each with the option that would cost least for its
    month-end forecast (`cheapest_plan`, `cheapest_label`, `cheapest_usd`), what the member's
    current arrangement costs this month (`current_usd`: the plan's price, or the usage at API
    prices) and what switching would save (`switch_saves_usd`, 0 when they are on it)."""
    rows = member_plan_comparison(organization=organization, now=now)
    for row in rows:
        forecast = row["api_equivalent_forecast_usd"]
        plan, label, cost = _plan_cheapest(forecast)
        current = (
            row["subscription_usd"] if row["subscription_usd"] is not None else round(forecast, 2)
        )
        row["current_usd"] = current
        row["cheapest_plan"] = plan
        row["cheapest_label"] = label
        row["cheapest_usd"] = cost
        row["switch_saves_usd"] = (
            0.0 if plan == row["subscription_plan"] else round(max(current - cost, 0.0), 2)
        )
    return rows
