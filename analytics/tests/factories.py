"""Factories for analytics tests: raw events (as ingest stores them), API keys, anomalies,
budgets.

`EventFactory` makes `ingest.models.Event` rows directly, with varied labels, times, token
counts, costs (some unpriced) and tool lists, for the tests that compare rollups with the raw
events; `events_random` makes a seeded batch of them."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import Organization
from accounts.tests.factories import OrganizationFactory, OrgOwnedFactory
from analytics.models import Anomaly, AnomalyKind, Budget, OrganizationApiKey
from analytics.services.api_keys import API_KEY_PREFIX
from clawtrace_site.tokens import generate_secret, hash_secret
from devices.models import Device
from devices.tests.factories import DeviceFactory
from ingest.models import Event

MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "gpt-5", "my-local-model")
PROVIDERS = {
    "claude-sonnet-4-5": "anthropic",
    "claude-opus-4-1": "anthropic",
    "claude-haiku-4-5": "anthropic",
    "gpt-5": "openai",
    "my-local-model": "unknown-provider",
}
TOOLS = ("Read", "Edit", "Bash", "Grep", "mcp__github__create_pr")


class EventFactory(OrgOwnedFactory):
    class Meta:
        model = Event

    organization = factory.SubFactory(OrganizationFactory)
    device = factory.SubFactory(DeviceFactory, organization=factory.SelfAttribute("..organization"))
    event_id = factory.LazyFunction(uuid.uuid4)
    source = "claude-code"
    agent = ""
    project = "clawtrace"
    session_id = "session-1"
    model = "claude-sonnet-4-5"
    provider = factory.LazyAttribute(lambda event: PROVIDERS.get(event.model, "anthropic"))
    occurred_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    input_tokens = 1200
    output_tokens = 340
    cache_read_tokens = 50_000
    cache_write_5m_tokens = 2_000
    cache_write_1h_tokens = 0
    web_search_requests = 0
    cost_usd = Decimal("0.031250000000")
    price_source = "genai-prices"
    tools = factory.LazyFunction(lambda: ["Read", "Edit"])


def events_random(
    organization: Organization,
    n: int,
    *,
    seed: int,
    start: datetime = datetime(2026, 2, 20, tzinfo=UTC),
    days: int = 12,
    devices: list[Device] | None = None,
) -> list[Event]:
    """`n` events spread over `days` days from `start`, on the given devices (or two new
    ones), in a few sessions, projects, models and agents; about one in eight unpriced."""
    rng = random.Random(seed)
    devices = devices or [DeviceFactory(organization=organization) for _ in range(2)]
    sessions = [
        (f"s{seed}-{k}", rng.choice(devices), rng.choice(["clawtrace", "site", None]))
        for k in range(max(1, n // 25))
    ]
    rows = []
    for _ in range(n):
        session_id, device, project = rng.choice(sessions)
        model = rng.choice(MODELS)
        tools = [rng.choice(TOOLS) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
        priced = rng.random() > 0.125
        rows.append(
            Event(
                organization=organization,
                device=device,
                event_id=uuid.UUID(int=rng.getrandbits(128)),
                source=rng.choice(["claude-code", "claude-code", "openclaw"]),
                agent=rng.choice(["", "", "reviewer", "explorer"]),
                project=project,
                session_id=session_id,
                model=model,
                provider=PROVIDERS[model],
                occurred_at=start
                + timedelta(seconds=rng.randrange(days * 86400), microseconds=rng.randrange(10**6)),
                input_tokens=rng.randrange(0, 5000),
                output_tokens=rng.randrange(0, 3000),
                cache_read_tokens=rng.randrange(0, 200_000),
                cache_write_5m_tokens=rng.randrange(0, 20_000),
                cache_write_1h_tokens=rng.choice([0, 0, rng.randrange(0, 9000)]),
                web_search_requests=rng.choice([0, 0, 0, 1]),
                cost_usd=(Decimal(rng.randrange(0, 10**11)) / Decimal(10**12)) if priced else None,
                price_source="genai-prices" if priced else "",
                is_sidechain=rng.random() < 0.2,
                tools=tools,
            )
        )
    return Event.all_orgs.bulk_create(rows)


class OrganizationApiKeyFactory(OrgOwnedFactory):
    class Meta:
        model = OrganizationApiKey

    name = factory.Sequence(lambda n: f"script {n}")
    key_digest = factory.LazyFunction(lambda: hash_secret(generate_secret(API_KEY_PREFIX)))
    display_prefix = "cto_abcdefgh"


def api_key_with_value(organization: Organization, **fields) -> tuple[OrganizationApiKey, str]:
    value = generate_secret(API_KEY_PREFIX)
    api_key = OrganizationApiKeyFactory(
        organization=organization,
        key_digest=hash_secret(value),
        display_prefix=value[:12],
        **fields,
    )
    return api_key, value


class AnomalyFactory(OrgOwnedFactory):
    """An hour's spend over the $3 limit, found (and last found) now; as detection stores one."""

    class Meta:
        model = Anomaly

    kind = AnomalyKind.HOURLY_BURN
    window_start = factory.LazyFunction(
        lambda: timezone.now().replace(minute=0, second=0, microsecond=0)
    )
    window_end = factory.LazyAttribute(lambda anomaly: anomaly.window_start + timedelta(hours=1))
    subject = ""
    value = Decimal("4.500000")
    threshold = Decimal("3")
    detected_at = factory.LazyFunction(timezone.now)
    updated_at = factory.SelfAttribute("detected_at")


class BudgetFactory(OrgOwnedFactory):
    class Meta:
        model = Budget

    scope = "organization"
    monthly_usd = Decimal("100.00")


def is_organization_api_path(path: str) -> bool:
    """Whether `path` is served by an organization API view (an organization API key's)."""
    from django.urls import Resolver404, resolve

    from clawtrace_site.api import CredentialScopedAPIView

    try:
        match = resolve(path)
    except Resolver404:
        return False
    view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, CredentialScopedAPIView)
