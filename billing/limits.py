"""Billing's answer to `accounts.limits`: an organization's limits are those of the plan that
applies to it now (`billing.selectors.organization_plan`: the paid plan, or the largest with
billing off), read from the one table in `billing/plans.py`."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from accounts.limits import (
    LIMITED_RESOURCES,
    OrganizationLimits,
    PlanOffer,
    organization_limits_provider_register,
)
from accounts.models import Organization
from billing.plans import PLANS, Plan
from billing.selectors import billing_enabled, organization_plan

# The billing page's name, once billing's views define it; until then its path.


def _limit(plan: Plan, resource: str) -> int | None:
    return getattr(plan, f"max_{resource}")


def _is_more(limit: int | None, than: int | None) -> bool:
    if than is None:
        return False
    return limit is None or limit > than


def plan_offer_for_more(*, plan: Plan, resource: str) -> PlanOffer | None:
    """The cheapest plan that allows more `resource` than `plan` does, or None."""
    current = _limit(plan, resource)
    for candidate in sorted(PLANS.values(), key=lambda p: (p.price_usd, p.code)):
        if _is_more(_limit(candidate, resource), current):
            return PlanOffer(plan_name=candidate.name, limit=_limit(candidate, resource))
    return None


def billing_page_url(*, organization: Organization) -> str:
    """The organization's billing page, absolute (the agent prints it, far from any request)."""
    path = reverse("billing:page", kwargs={"org_slug": organization.slug})
    return settings.SITE_URL.rstrip("/") + path


def organization_limits_of_plan(*, organization: Organization) -> OrganizationLimits:
    plan = organization_plan(organization=organization)
    # With billing off there is nothing to buy: the refusals say what to do instead.
    upgrades = (
        {
            resource: offer
            for resource in LIMITED_RESOURCES
            if (offer := plan_offer_for_more(plan=plan, resource=resource)) is not None
        }
        if billing_enabled()
        else {}
    )
    return OrganizationLimits(
        plan_code=plan.code,
        plan_name=plan.name,
        max_devices=plan.max_devices,
        max_projects=plan.max_projects,
        max_members=plan.max_members,
        retention_days=plan.retention_days,
        upgrades=upgrades,
        upgrade_url=billing_page_url(organization=organization) if upgrades else "",
    )


def organization_limits_register() -> None:
    organization_limits_provider_register(organization_limits_of_plan)
