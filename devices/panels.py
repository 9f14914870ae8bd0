"""The devices card on the organization's home page (registered into `accounts.panels`, which
accounts' views place without importing devices)."""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from accounts.models import Organization
from accounts.panels import OrganizationPanel, organization_panel_register
from accounts.tenancy import organization_scope
from devices.models import Device


def _devices_context(*, organization: Organization) -> dict[str, Any]:
    with organization_scope(organization):
        linked = Device.objects.filter(revoked_at__isnull=True).aggregate(
            last_sync_at=Max("last_sync_at")
        )
        linked_count = Device.objects.filter(revoked_at__isnull=True).count()
    return {"linked_device_count": linked_count, "last_sync_at": linked["last_sync_at"]}


def device_panels_register() -> None:
    organization_panel_register(
        OrganizationPanel(
            name="devices.linked_devices",
            page="org_home",
            template_name="devices/_org_home_devices.html",
            context=_devices_context,
        )
    )
