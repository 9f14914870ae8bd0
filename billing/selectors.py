"""Reads for billing: which plan an organization is on, as every enforcement point sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from accounts.limits import organization_limits
from accounts.models import Organization
from accounts.selectors import membership_count
from accounts.tenancy import organization_scope
from analytics.selectors import project_count
from billing.models import Payment, PlanGrant
from billing.plans import PLANS, Plan, plan_get
from devices.selectors import device_count_linked

# With billing off (no Stripe key: self-hosting), every organization gets this plan's limits.
LARGEST_PLAN: Plan = max(PLANS.values(), key=lambda plan: plan.price_usd)


def billing_enabled() -> bool:
    return bool(settings.BILLING_ENABLED)


def organization_plan(*, organization: Organization) -> Plan:
    """The plan whose limits apply to `organization` now.

    `Organization.plan` holds the plan its payments give (billing's services are its only
    writers); with billing off the largest plan applies to everyone, whatever was paid."""
    if not billing_enabled():
        return LARGEST_PLAN
    return plan_get(organization.plan)


def organization_usage(*, organization: Organization) -> dict[str, int]:
    """What the organization uses of each limit its plan sets (hidden projects included)."""
    return {
        "devices": device_count_linked(organization=organization),
        "projects": project_count(organization=organization),
        "members": membership_count(organization=organization),
    }


def organization_summary(*, organization: Organization) -> dict[str, Any]:
    """The organization, the plan whose limits apply, those limits (None: unlimited) and its
    usage of each (`GET /api/v1/organization`)."""
    limits = organization_limits(organization=organization)
    return {
        "id": organization.pk,
        "slug": organization.slug,
        "name": organization.name,
        "plan": limits.plan_code,
        "limits": {
            "devices": limits.max_devices,
            "projects": limits.max_projects,
            "members": limits.max_members,
            "retention_days": limits.retention_days,
        },
        "usage": organization_usage(organization=organization),
    }


# --- The billing page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    """One limit of the plan against what the organization uses of it."""

    name: str
    used: int
    limit: int | None  # None: unlimited

    @property
    def is_at_limit(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    @property
    def is_over_limit(self) -> bool:
        return self.limit is not None and self.used > self.limit


def organization_usage_rows(*, organization: Organization) -> list[UsageRow]:
    plan = organization_plan(organization=organization)
    usage = organization_usage(organization=organization)
    return [
        UsageRow("Devices", usage["devices"], plan.max_devices),
        UsageRow("Projects", usage["projects"], plan.max_projects),
        UsageRow("Members", usage["members"], plan.max_members),
    ]


def upgrade_plan_list(*, organization: Organization) -> list[Plan]:
    """The plans the organization can still buy: those better than the one it has."""
    current = organization_plan(organization=organization)
    return [
        plan for plan in PLANS.values() if not plan.is_free and plan.price_usd > current.price_usd
    ]


def payment_list(*, organization: Organization) -> list[Payment]:
    with organization_scope(organization):
        return list(Payment.objects.order_by("-paid_at", "-id"))


def payment_for_session_get(*, organization: Organization, session_id: str) -> Payment | None:
    with organization_scope(organization):
        return Payment.objects.filter(checkout_session_id=session_id).first()


def plan_grant_list_active(*, organization: Organization) -> list[PlanGrant]:
    with organization_scope(organization):
        return list(PlanGrant.objects.filter(revoked_at__isnull=True).order_by("-granted_at"))
