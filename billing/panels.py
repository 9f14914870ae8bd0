"""Billing's cards on the organization pages (registered into `accounts.panels`)."""

from __future__ import annotations

from typing import Any

from accounts.models import Organization
from accounts.panels import OrganizationPanel, organization_panel_register
from billing.selectors import billing_enabled, organization_plan


def _plan_context(*, organization: Organization) -> dict[str, Any]:
    # The plan whose limits apply, as every enforcement point sees it: with billing off
    # (self-hosting) that is the largest plan, whatever the organization once paid for.
    return {
        "plan": organization_plan(organization=organization),
        "billing_enabled": billing_enabled(),
    }


def plan_panels_register() -> None:
    organization_panel_register(
        OrganizationPanel(
            name="billing.plan_summary",
            page="org_home",
            template_name="billing/_plan_summary.html",
            context=_plan_context,
        )
    )
    organization_panel_register(
        OrganizationPanel(
            name="billing.plan_details",
            page="org_settings",
            template_name="billing/_plan_details.html",
            context=_plan_context,
        )
    )
