"""The three tiers as data: limits are enforced in services, prices shown on the pricing page.

Pro and Team are one-time payments (Stripe Checkout in payment mode), not subscriptions.
`None` means unlimited. The codes are `accounts.models.PlanCode` (the column an organization
stores); each has exactly one plan here.
"""

from dataclasses import dataclass
from decimal import Decimal

from accounts.models import Organization, PlanCode


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    price_usd: Decimal
    tagline: str
    max_devices: int | None
    max_projects: int | None
    max_members: int | None
    retention_days: int
    has_team_dashboard: bool
    features: tuple[str, ...]

    @property
    def is_free(self) -> bool:
        return self.price_usd == 0


FREE = Plan(
    code=PlanCode.FREE.value,
    name="Free",
    price_usd=Decimal("0"),
    tagline="For one developer trying it out.",
    max_devices=1,
    max_projects=1,
    max_members=1,
    retention_days=7,
    has_team_dashboard=False,
    features=("1 device", "1 project", "7 days of history", "Local agent, CLI and alerts"),
)

PRO = Plan(
    code=PlanCode.PRO.value,
    name="Pro",
    price_usd=Decimal("79"),
    tagline="For a developer who lives in their agents.",
    max_devices=1,
    max_projects=None,
    max_members=1,
    retention_days=90,
    has_team_dashboard=False,
    features=("1 device", "Unlimited projects", "90 days of history", "Anomaly alerts by email"),
)

TEAM = Plan(
    code=PlanCode.TEAM.value,
    name="Team",
    price_usd=Decimal("199"),
    tagline="For a small team sharing one bill.",
    max_devices=3,
    max_projects=None,
    max_members=None,
    retention_days=90,
    has_team_dashboard=True,
    features=("3 devices", "Unlimited projects", "90 days of history", "Team dashboard"),
)

PLANS: dict[str, Plan] = {plan.code: plan for plan in (FREE, PRO, TEAM)}


def plan_get(code: str) -> Plan:
    return PLANS[code]


# The longest history any plan keeps: what the retention job assumes an organization had
# before it first ran, so that its first run on a shorter plan warns before deleting.
LONGEST_RETENTION_DAYS = max(plan.retention_days for plan in PLANS.values())


def retention_days_for(*, organization: Organization) -> int:
    """Days of history the organization's plan keeps (the retention job asks this each night,
    so a change of plan takes effect on the next run)."""
    return plan_get(organization.plan).retention_days
