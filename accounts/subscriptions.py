"""What a member pays for their agent, as data in one place: the plan a membership records and
its monthly price. The dashboard sets the API-equivalent cost of a member's usage beside it, so
that a team lead sees who would be cheaper on which plan.

Prices are the list prices in USD per month of Anthropic's individual plans; `API` means the
member pays per token (or nothing is known), so there is no flat fee to compare with. This
module imports nothing of the project: `accounts.models` builds its choices from it.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class SubscriptionPlan(models.TextChoices):
    API = "api", "API / none"
    CLAUDE_PRO = "claude_pro", "Claude Pro"
    CLAUDE_MAX_5X = "claude_max_5x", "Claude Max 5x"
    CLAUDE_MAX_20X = "claude_max_20x", "Claude Max 20x"


# USD per month; None: pay as you go, no flat fee.
SUBSCRIPTION_MONTHLY_USD: dict[str, Decimal | None] = {
    SubscriptionPlan.API: None,
    SubscriptionPlan.CLAUDE_PRO: Decimal("20"),
    SubscriptionPlan.CLAUDE_MAX_5X: Decimal("100"),
    SubscriptionPlan.CLAUDE_MAX_20X: Decimal("200"),
}

# The sources a Claude subscription pays for (the agent's source labels): Claude Code runs on
# the subscription; other agents (OpenClaw) bill an API key whatever the member's plan.
SUBSCRIPTION_SOURCES = frozenset({"claude-code"})


def subscription_monthly_usd(plan: str) -> Decimal | None:
    return SUBSCRIPTION_MONTHLY_USD[SubscriptionPlan(plan)]
