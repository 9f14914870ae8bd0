"""The webhook over real HTTP: a live server thread (pytest-django's `live_server`), events
signed and posted by the fake Stripe the way Stripe delivers them; and the Pay button of the
fake Checkout, whose webhook upgrades the organization with no browser coming back."""

from __future__ import annotations

import time

import httpx
import pytest

from billing.models import Payment, StripeEvent
from billing.tests.factories import charge, checkout_session, event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stripe(live_server, fake_stripe):
    fake_stripe.webhook_url = f"{live_server.url}/billing/stripe/webhook/"
    return fake_stripe


def _plan(organization) -> str:
    organization.refresh_from_db()
    return organization.plan


def test_a_signed_checkout_over_http_upgrades_and_a_replay_answers_200(stripe, org):
    stripe_event = event("checkout.session.completed", checkout_session(org, "team"))

    status, body = stripe.webhook_send(stripe_event)
    again, again_body = stripe.webhook_send(stripe_event)

    assert status == 200 and '"duplicate": false' in body
    assert again == 200 and '"duplicate": true' in again_body
    assert _plan(org) == "team"
    assert StripeEvent.objects.count() == 1


def test_over_http_a_bad_or_stale_signature_is_a_json_400(stripe, live_server, org):
    stripe_event = event("checkout.session.completed", checkout_session(org))
    stripe.webhook_secret = "whsec_wrong"
    assert stripe.webhook_send(stripe_event)[0] == 400
    stripe.webhook_secret = "whsec_test_clawtrace_webhook_secret"
    stale, body = stripe.webhook_send(stripe_event, timestamp=int(time.time()) - 3600)

    assert stale == 400 and '"signature_expired"' in body
    missing = httpx.post(f"{live_server.url}/billing/stripe/webhook/", content=b"{}")
    assert missing.status_code == 400
    assert missing.headers["Content-Type"] == "application/json"
    assert missing.json()["error"] == "signature_missing"
    assert not StripeEvent.objects.exists() and _plan(org) == "free"


def test_paying_on_the_fake_checkout_upgrades_through_the_webhook_alone(stripe, org, owner):
    session = stripe.session_create(
        {
            "mode": "payment",
            "line_items": [{"price": "price_test_team", "quantity": "1"}],
            "client_reference_id": str(org.pk),
            "metadata": {"plan": "team"},
            "success_url": "http://127.0.0.1:1/never-visited?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1:1/cancel",
        }
    )

    pay = httpx.post(f"{stripe.url}/pay/{session['id']}", follow_redirects=False)

    assert pay.status_code == 303
    assert pay.headers["Location"] == f"http://127.0.0.1:1/never-visited?session_id={session['id']}"
    assert stripe.webhook_responses[0][0] == 200
    assert _plan(org) == "team"
    payment = Payment.all_orgs.get()
    # The receipt came from the charge, fetched once the payment was committed.
    assert payment.receipt_url == stripe.charge_of(session["id"])["receipt_url"]
    assert stripe.requests_to("GET", f"/v1/checkout/sessions/{session['id']}")


def test_a_refund_over_http_returns_the_organization_to_free(stripe, org):
    session = checkout_session(org, "team")
    stripe.webhook_send(event("checkout.session.completed", session))

    status, _ = stripe.webhook_send(event("charge.refunded", charge(session["payment_intent"])))

    assert status == 200 and _plan(org) == "free"
