"""Analytics' card on the organization settings page (registered into `accounts.panels`):
a link to the API keys page."""

from __future__ import annotations

from typing import Any

from accounts.models import Organization
from accounts.panels import OrganizationPanel, organization_panel_register
from accounts.tenancy import organization_scope
from analytics.models import OrganizationApiKey


def _api_keys_context(*, organization: Organization) -> dict[str, Any]:
    with organization_scope(organization):
        active = OrganizationApiKey.objects.filter(revoked_at__isnull=True).count()
    return {"active_api_keys": active}


def analytics_panels_register() -> None:
    organization_panel_register(
        OrganizationPanel(
            name="analytics.api_keys",
            page="org_settings",
            template_name="analytics/_api_keys_panel.html",
            context=_api_keys_context,
        )
    )
