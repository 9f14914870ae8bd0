"""Billing's tests run with billing on, against the local fake Stripe (`fake_stripe.py`):
stripe-python's `api_base` is the fake's address, so nothing reaches the internet."""

from __future__ import annotations

import pytest

# The browser fixture of the accounts journey (Debian's Chromium), shared as devices does.
from accounts.tests.test_browser_journey import browser  # noqa: F401  (fixture)
from billing.tests.fake_stripe import FakeStripe, FakeStripeServer

WEBHOOK_SECRET = "whsec_test_clawtrace_webhook_secret"
PRICE_PRO = "price_test_pro"
PRICE_TEAM = "price_test_team"


@pytest.fixture(scope="session")
def fake_stripe_server():
    server = FakeStripeServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fake_stripe(fake_stripe_server, settings) -> FakeStripe:
    """Billing on, with test keys and prices, every Stripe call answered by the fake."""
    fake = fake_stripe_server.fake
    fake.reset()
    settings.STRIPE_SECRET_KEY = "sk_test_clawtrace"
    settings.BILLING_ENABLED = True
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_PRICE_PRO = PRICE_PRO
    settings.STRIPE_PRICE_TEAM = PRICE_TEAM
    settings.STRIPE_API_BASE = fake.url
    fake.webhook_secret = WEBHOOK_SECRET
    fake.webhook_url = ""  # a live-server test sets it to the site's endpoint
    return fake


@pytest.fixture
def billing_off(settings) -> None:
    """A self-hosted server: no Stripe keys."""
    settings.STRIPE_SECRET_KEY = ""
    settings.BILLING_ENABLED = False
