"""What an organization's plan allows, as every enforcement point asks it.

The limits are billing's (`billing/plans.py` is the one table of them, and whether billing is
on at all is billing's to say), but the apps that enforce them stand below billing or beside
it: accounts refuses invitations, devices refuses a device too many, analytics hides the
projects past the plan's count, retention deletes on the plan's schedule. accounts may not
import billing (style.md 1), and devices and analytics may not either, because billing's
selectors read theirs (a cycle). So accounts owns this small registry and billing fills it from
its `AppConfig.ready()` (`billing/limits.py`): each enforcement point calls
`organization_limits(organization=...)` and knows nothing of plans or Stripe.

Before billing registers (or in a deployment without it) the default provider allows
everything: no limit is enforced that no plan table defines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from accounts.models import Organization
from clawtrace_site.exceptions import ApplicationError

# The limits a plan sets on a count, by the name `organization_usage` gives that count.
LIMITED_RESOURCES = ("devices", "projects", "members")


@dataclass(frozen=True)
class PlanOffer:
    """The cheapest plan that allows more of something: its name and how many it allows
    (None: unlimited)."""

    plan_name: str
    limit: int | None


@dataclass(frozen=True)
class OrganizationLimits:
    """What applies to one organization now. None means unlimited (and, for
    `retention_days`, that history is kept for ever)."""

    plan_code: str
    plan_name: str
    max_devices: int | None
    max_projects: int | None
    max_members: int | None
    retention_days: int | None
    # Per limited resource, the cheapest plan that allows more of it, when one does.
    upgrades: dict[str, PlanOffer] = field(default_factory=dict)
    # Where an owner upgrades (billing's page, absolute), or "" when there is nowhere to go.
    upgrade_url: str = ""

    def limit_of(self, resource: str) -> int | None:
        if resource not in LIMITED_RESOURCES:
            raise ValueError(f"{resource!r} is not one of {LIMITED_RESOURCES}")
        return getattr(self, f"max_{resource}")

    def allows(self, resource: str, count: int) -> bool:
        """Whether `count` of `resource` fit in the plan."""
        limit = self.limit_of(resource)
        return limit is None or count <= limit


class PlanLimitReachedError(ApplicationError):
    """The action would take the organization past what its plan allows (403: the actor may
    do it, the plan may not). The message says which plan allows it and where to upgrade."""

    code = "plan_limit_reached"
    status_code = 403


UNLIMITED = OrganizationLimits(
    plan_code="",
    plan_name="unlimited",
    max_devices=None,
    max_projects=None,
    max_members=None,
    retention_days=None,
)

LimitsProvider = Callable[..., OrganizationLimits]  # (*, organization) -> OrganizationLimits


def _no_limits(*, organization: Organization) -> OrganizationLimits:
    return UNLIMITED


_provider: LimitsProvider = _no_limits


def organization_limits_provider_register(provider: LimitsProvider) -> None:
    """Billing's `ready()` calls this once; calling it again replaces the provider."""
    global _provider
    _provider = provider


def organization_limits_provider_reset() -> None:
    """Back to allowing everything (tests that look at accounts without billing)."""
    global _provider
    _provider = _no_limits


def organization_limits(*, organization: Organization) -> OrganizationLimits:
    return _provider(organization=organization)


_NOUNS = {"devices": ("linked device", "linked devices"), "projects": ("project", "projects")}


def _count_of(resource: str, count: int | None) -> str:
    if resource == "members":
        return "members" if count is None else ("1 member" if count == 1 else f"{count} members")
    singular, plural = _NOUNS[resource]
    if count is None:
        return f"unlimited {plural}"
    return f"{count} {singular if count == 1 else plural}"


def limit_reached_message(
    *, organization: Organization, limits: OrganizationLimits, resource: str
) -> str:
    """One or two sentences for a refusal: what the plan allows, which plan allows more and
    where to upgrade (or, when no plan does, what to do instead). Shown on the site and printed
    by the agent as they are, so they name the organization and the absolute link."""
    limit = limits.limit_of(resource)
    offer = limits.upgrades.get(resource)
    if resource == "members" and limit is not None and limit <= 1:
        said = f"{organization.name} is on the {limits.plan_name} plan, which has no other members."
    else:
        said = (
            f"{organization.name} is on the {limits.plan_name} plan, which allows "
            f"{_count_of(resource, limit)}."
        )
    if offer is not None:
        more = f"The {offer.plan_name} plan allows {_count_of(resource, offer.limit)}"
        if resource == "members":
            more = f"Members and invitations come with the {offer.plan_name} plan"
        where = f": upgrade at {limits.upgrade_url}" if limits.upgrade_url else ""
        said += f" {more}{where}."
    if resource == "devices":
        said += " Revoking a device on the Devices page frees its place."
    return said
