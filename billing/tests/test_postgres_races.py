"""Races only a real database with concurrent connections shows (PostgreSQL; skipped on
SQLite, whose writers take turns anyway): the same event delivered to two workers at the same
instant, and a refund processed at the same instant as the checkout it refunds."""

from __future__ import annotations

import pytest
from django.db import connection

from billing.models import Payment, StripeEvent
from billing.services import stripe_event_receive
from billing.tests.factories import charge, checkout_session, event
from clawtrace_site.tests.concurrency import run_concurrently

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]

ROUNDS = 10


def _deliver(stripe_event):
    """One worker's delivery of the event (a webhook request, past its signature check)."""
    return lambda: stripe_event_receive(event=stripe_event)


def _plan(organization) -> str:
    organization.refresh_from_db()
    return organization.plan


def test_the_same_event_delivered_to_two_workers_at_once_is_processed_once(org):
    for round_number in range(ROUNDS):
        stripe_event = event(
            "checkout.session.completed",
            checkout_session(org, "team"),
            event_id=f"evt_race_{round_number}",
        )

        outcomes = run_concurrently(
            _deliver(stripe_event),
            _deliver(stripe_event),
        )

        assert sorted(outcome.duplicate for outcome in outcomes) == [False, True]
        assert {outcome.status_code for outcome in outcomes} == {200}
        stored = StripeEvent.objects.get(stripe_id=stripe_event["id"])
        assert stored.attempts == 1 and stored.processed_at is not None
    assert Payment.all_orgs.filter(organization=org).count() == ROUNDS
    assert _plan(org) == "team"


def test_a_refund_racing_its_checkout_always_leaves_the_payment_refunded(org):
    for _ in range(ROUNDS):
        session = checkout_session(org, "team")
        completed = event("checkout.session.completed", session)
        refunded = event("charge.refunded", charge(session["payment_intent"]))

        run_concurrently(
            _deliver(completed),
            _deliver(refunded),
        )

        payment = Payment.all_orgs.get(checkout_session_id=session["id"])
        assert payment.status == "refunded"
    assert _plan(org) == "free"
