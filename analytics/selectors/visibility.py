"""Which usage the organization's plan shows: on a plan with a project count (Free: one),
only the first projects the organization sent, by when their first event arrived
(`analytics.models.Project`); the others' usage is stored, counted by the device's own sync
check (`GET /api/v1/stats`, ingest's), and shown again as soon as the plan allows more. Usage
without a project label is not a project and is always shown.

Every read of usage rows, rollups and raw events alike, narrows its rows with `rows_visible`:
`_usage_rows` (which every usage selector of the dashboard and the organization API uses), the
session drill-down, a project's page and the anomalies of a session. The plan's count is asked
of accounts' limits registry (`accounts.limits`, billing's to fill).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from accounts.limits import organization_limits
from accounts.models import Organization
from accounts.tenancy import organization_scope
from analytics.models import Project, UsageDailyRollup
from analytics.selectors.memo import memoized


def projects_shown(*, organization: Organization) -> list[str] | None:
    """The labels of the projects the plan shows, or None when it shows every project."""
    return memoized(("projects_shown", organization.pk), lambda: _projects_shown(organization))


def _projects_shown(organization: Organization) -> list[str] | None:
    limit = organization_limits(organization=organization).max_projects
    if limit is None:
        return None
    with organization_scope(organization):
        return list(
            Project.objects.order_by("first_received_at", "pk").values_list("label", flat=True)[
                :limit
            ]
        )


def any_project_hidden(*, organization: Organization) -> bool:
    """Whether the plan hides any project the organization has sent."""

    def hidden() -> bool:
        shown = projects_shown(organization=organization)
        if shown is None:
            return False
        with organization_scope(organization):
            return Project.objects.exclude(label__in=shown).exists()

    return memoized(("any_project_hidden", organization.pk), hidden)


def _shown_q(shown: list[str], field: str = "project") -> Q:
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__in": shown})


def rows_visible(rows: QuerySet, *, organization: Organization) -> QuerySet:
    """`rows` (any model with a `project` label: rollups, events) without those of projects
    the plan hides."""
    shown = projects_shown(organization=organization)
    if shown is None:
        return rows
    return rows.filter(_shown_q(shown))


def hidden_projects(*, organization: Organization) -> dict[str, Any] | None:
    """What the dashboard says about projects the plan hides: how many hold usage, the plan,
    the cheapest plan that shows them and where to upgrade; None when none is hidden."""
    shown = projects_shown(organization=organization)
    if shown is None:
        return None
    with organization_scope(organization):
        count = (
            UsageDailyRollup.objects.exclude(_shown_q(shown))
            .values("project")
            .distinct()
            .order_by()
            .count()
        )
    if not count:
        return None
    limits = organization_limits(organization=organization)
    return {
        "count": count,
        "plan_name": limits.plan_name,
        "shown": len(shown),
        "upgrade": limits.upgrades.get("projects"),
        "upgrade_url": limits.upgrade_url,
    }
