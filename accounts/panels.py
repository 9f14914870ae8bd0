"""Cards that other apps add to the organization pages.

The overview and settings pages show the organization's plan, which is billing's to describe;
accounts may not import billing (style.md 1: accounts <- billing, ingest, analytics). So
accounts owns this registry and billing fills it from its `AppConfig.ready()`: accounts' views
ask for the panels of a page and place them, knowing nothing of what they show.

A panel's template is rendered inside the page's own context (the organization, the viewer's
membership, the request), plus what the panel's `context` callable returns for the
organization: `{% organization_panel panel %}` from `accounts/templatetags/organization_panels.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from accounts.models import Organization

PANEL_PAGES = ("org_home", "org_settings")


@dataclass(frozen=True)
class OrganizationPanel:
    # Unique: registering a name again replaces the panel (so a second `ready()` is harmless).
    name: str
    page: str
    template_name: str
    context: Callable[..., Mapping[str, Any]]  # (*, organization) -> extra template context


@dataclass(frozen=True)
class PanelContent:
    """One panel, ready for its page: which template, and the context it adds."""

    template_name: str
    context: Mapping[str, Any]


_panels: dict[str, OrganizationPanel] = {}


def organization_panel_register(panel: OrganizationPanel) -> OrganizationPanel:
    if panel.page not in PANEL_PAGES:
        raise ValueError(f"Unknown page {panel.page!r}; panels go on one of {PANEL_PAGES}.")
    _panels[panel.name] = panel
    return panel


def organization_panel_unregister(name: str) -> None:
    _panels.pop(name, None)


def organization_panels(*, page: str, organization: Organization) -> list[PanelContent]:
    """The page's panels for the organization, in registration order."""
    return [
        PanelContent(panel.template_name, dict(panel.context(organization=organization)))
        for panel in _panels.values()
        if panel.page == page
    ]
