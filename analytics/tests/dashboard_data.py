"""A team's month of usage for the dashboard's tests and screenshots: members with the plans
they pay for, each with a device or two, sessions in a few projects, models and agents, tool
calls and cache traffic, budgets, and the anomalies the detector finds in it. Events are made
as ingest stores them and rolled up by the real rollup service, so the pages read exactly
what production reads."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from accounts.models import Membership, Organization, Role, User
from accounts.subscriptions import SubscriptionPlan
from accounts.tests.factories import MembershipFactory, UserFactory
from analytics.services import anomalies_detect, rollups_rebuild
from analytics.tests.factories import PROVIDERS, BudgetFactory
from devices.models import Device
from devices.tests.factories import DeviceFactory
from ingest.models import Event

# Per-token list prices in USD (input, output, cache read, cache write 5 min) of the models the
# team uses: the events carry a cost as the agent would have priced them.
MODEL_PRICES = {
    "claude-sonnet-4-5": (3e-6, 15e-6, 0.3e-6, 3.75e-6),
    "claude-opus-4-1": (15e-6, 75e-6, 1.5e-6, 18.75e-6),
    "claude-haiku-4-5": (1e-6, 5e-6, 0.1e-6, 1.25e-6),
}
PROJECTS = ("clawtrace", "billing-service", "infra/terraform", "docs-site")
TOOLS = ("Read", "Edit", "Bash", "Grep", "Write", "WebFetch", "mcp__github__create_pr")


@dataclass
class TeamUsage:
    organization: Organization
    members: list[Membership]
    devices: list[Device]
    events: list[Event] = field(default_factory=list)
    sessions: list[tuple[str, str]] = field(default_factory=list)  # (source, session id)


# (email local part, role, plan, devices, how busy: sessions per day)
TEAM = (
    ("ada", Role.OWNER, SubscriptionPlan.CLAUDE_MAX_20X, ("ada-mbp", "build-box"), 2.2),
    ("grace", Role.ADMIN, SubscriptionPlan.CLAUDE_MAX_5X, ("grace-thinkpad",), 1.4),
    ("linus", Role.MEMBER, SubscriptionPlan.API, ("linus-desktop",), 1.0),
    ("margaret", Role.MEMBER, SubscriptionPlan.CLAUDE_PRO, ("margaret-air",), 0.3),
)


def _cost(model: str, tokens: tuple[int, int, int, int]) -> Decimal:
    prices = MODEL_PRICES[model]
    value = sum(price * count for price, count in zip(prices, tokens, strict=True))
    return Decimal(f"{value:.12f}")


def team_usage_create(
    organization: Organization,
    *,
    now: datetime,
    days: int = 30,
    seed: int = 15,
    owner: User | None = None,
    domain: str = "acme.example",
    with_budgets: bool = True,
) -> TeamUsage:
    """`days` days of a four-person team's usage up to `now`, rolled up; the owner is `owner`
    when given (the test's signed-in user) and the others are new users at `domain`."""
    rng = random.Random(seed)
    members: list[Membership] = []
    devices: list[Device] = []
    busy: list[tuple[Device, float]] = []
    for index, (name, role, plan, device_names, per_day) in enumerate(TEAM):
        if index == 0 and owner is not None:
            membership = Membership.all_orgs.get(organization=organization, user=owner)
            membership.subscription_plan = plan
            membership.save(update_fields=["subscription_plan"])
        else:
            user = UserFactory(email=f"{name}@{domain}")
            membership = MembershipFactory(
                organization=organization, user=user, role=role, subscription_plan=plan
            )
        members.append(membership)
        for device_name in device_names:
            device = DeviceFactory(
                organization=organization,
                name=device_name,
                created_by=membership.user,
                os=rng.choice(["macOS 15.3 arm64", "Linux 6.8 x86_64"]),
                agent_version="0.4.0",
                last_sync_at=now - timedelta(minutes=rng.randrange(2, 90)),
            )
            devices.append(device)
            busy.append((device, per_day / len(device_names)))

    usage = TeamUsage(organization=organization, members=members, devices=devices)
    start = now - timedelta(days=days)
    rows = []
    for device, per_day in busy:
        session_count = max(1, round(per_day * days))
        for _ in range(session_count):
            source = "claude-code" if rng.random() < 0.85 else "openclaw"
            session_id = str(uuid.UUID(int=rng.getrandbits(128)))
            usage.sessions.append((source, session_id))
            project = rng.choice(PROJECTS)
            began = start + timedelta(seconds=rng.randrange(int((now - start).total_seconds())))
            # Working hours weigh more: sessions drift towards 09:00-19:00 UTC.
            began = began.replace(hour=rng.choice([9, 10, 11, 13, 14, 15, 16, 17, 18, began.hour]))
            if began >= now:
                began = now - timedelta(minutes=rng.randrange(5, 300))
            model = rng.choices(list(MODEL_PRICES), weights=[6, 2, 2])[0]
            agent = rng.choice(["", "", "", "reviewer", "explorer"])
            moment = began
            for _turn in range(rng.randrange(4, 40)):
                moment += timedelta(seconds=rng.randrange(5, 240))
                if moment >= now:
                    break
                turn_model = model if rng.random() < 0.9 else "claude-haiku-4-5"
                tokens = (
                    rng.randrange(50, 4000),
                    rng.randrange(100, 6000),
                    rng.randrange(2_000, 180_000),
                    rng.randrange(0, 12_000),
                )
                rows.append(
                    Event(
                        organization=organization,
                        device=device,
                        event_id=uuid.UUID(int=rng.getrandbits(128)),
                        source=source,
                        agent=agent,
                        project=project,
                        session_id=session_id,
                        model=turn_model,
                        provider=PROVIDERS[turn_model],
                        occurred_at=moment,
                        input_tokens=tokens[0],
                        output_tokens=tokens[1],
                        cache_read_tokens=tokens[2],
                        cache_write_5m_tokens=tokens[3],
                        cache_write_1h_tokens=0,
                        web_search_requests=0,
                        cost_usd=_cost(turn_model, tokens),
                        price_source="genai-prices",
                        is_sidechain=agent != "" and rng.random() < 0.5,
                        tools=[rng.choice(TOOLS) for _ in range(rng.choice([0, 1, 1, 2, 3]))],
                    )
                )
    usage.events = Event.all_orgs.bulk_create(rows)
    rollups_rebuild(organization=organization)
    if with_budgets:
        BudgetFactory(organization=organization, scope="organization", monthly_usd=Decimal("900"))
        BudgetFactory(
            organization=organization,
            scope="project",
            project="clawtrace",
            monthly_usd=Decimal("250"),
        )
        BudgetFactory(
            organization=organization,
            scope="member",
            member=members[2].user,
            monthly_usd=Decimal("60"),
        )
    # The detector runs every few minutes in production; once an evening over the month (and
    # now) finds what those runs would have.
    for days_ago in range(days, 0, -1):
        evening = (now - timedelta(days=days_ago)).replace(hour=21, minute=50)
        anomalies_detect(organization=organization, now=evening)
    anomalies_detect(organization=organization, now=now)
    return usage
