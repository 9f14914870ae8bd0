"""Alerts' card on the organization's settings page (registered into `accounts.panels`)."""

from __future__ import annotations

from typing import Any

from accounts.models import Organization
from accounts.panels import OrganizationPanel, organization_panel_register
from alerts.selectors import alert_rule_list


def _alerts_context(*, organization: Organization) -> dict[str, Any]:
    rules = alert_rule_list(organization=organization)
    return {
        "alert_rule_count": len(rules),
        "alert_rule_enabled_count": sum(1 for rule in rules if rule.is_enabled),
    }


def alert_panels_register() -> None:
    organization_panel_register(
        OrganizationPanel(
            name="alerts.settings",
            page="org_settings",
            template_name="alerts/_settings_panel.html",
            context=_alerts_context,
        )
    )
