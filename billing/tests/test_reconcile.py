"""`manage.py billing_reconcile` and the hourly task: Stripe's paid Checkout Sessions repair
organizations whose webhook was missed; a second run finds nothing to do."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Organization
from billing.models import Payment, PaymentReversal
from billing.tasks import payments_reconcile_task
from billing.tests.factories import checkout_session, event, webhook_post

pytestmark = pytest.mark.django_db


def _reconcile(*args: str) -> str:
    out = io.StringIO()
    call_command("billing_reconcile", *args, stdout=out)
    return out.getvalue()


def _plan(organization: Organization) -> str:
    organization.refresh_from_db()
    return organization.plan


def test_reconcile_records_a_payment_whose_webhook_was_missed(org, other_org, fake_stripe):
    session = fake_stripe.paid_session_add(organization_id=org.pk, plan="team")

    output = _reconcile()

    assert f"fixed {session['id']}: missed payment recorded; upgraded alpha-labs to team" in output
    assert "1 repaired." in output
    assert _plan(org) == "team" and _plan(other_org) == "free"
    payment = Payment.all_orgs.get()
    charge = fake_stripe.charge_of(session["id"])
    assert (payment.organization, payment.plan, payment.amount_total) == (org, "team", 19900)
    assert (payment.charge_id, payment.receipt_url) == (charge["id"], charge["receipt_url"])
    # It listed completed sessions with the charge expanded, through the real list call.
    (listing,) = fake_stripe.requests_to("GET", "/v1/checkout/sessions")
    assert listing.params["status"] == "complete"
    assert listing.params["expand"] == ["data.payment_intent.latest_charge"]


def test_reconcile_is_idempotent(org, fake_stripe):
    fake_stripe.paid_session_add(organization_id=org.pk, plan="pro")
    _reconcile()

    output = _reconcile()

    assert output.strip() == "Nothing to repair."
    assert Payment.all_orgs.count() == 1 and _plan(org) == "pro"


def test_reconcile_leaves_payments_the_webhook_recorded_alone(client, org, fake_stripe):
    session = fake_stripe.paid_session_add(organization_id=org.pk, plan="team")
    charge = fake_stripe.charge_of(session["id"])
    delivered = {
        **session,
        "payment_intent": {"id": session["payment_intent"], "latest_charge": charge},
    }
    webhook_post(client, event("checkout.session.completed", delivered))

    assert _reconcile().strip() == "Nothing to repair."


def test_reconcile_adds_the_receipt_the_webhook_could_not_fetch(client, org, fake_stripe):
    session = fake_stripe.paid_session_add(organization_id=org.pk, plan="team")
    webhook_post(client, event("checkout.session.completed", session))
    assert Payment.all_orgs.get().receipt_url == ""

    output = _reconcile()

    assert f"fixed {session['id']}: receipt link added" in output
    assert Payment.all_orgs.get().receipt_url == fake_stripe.charge_of(session["id"])["receipt_url"]


def test_reconcile_reads_every_page_of_sessions(org, other_org, fake_stripe):
    # The gateway asks for 100 a page; the paid ones are on the first and the third page.
    first = fake_stripe.paid_session_add(organization_id=org.pk, plan="pro", created=1)
    for _ in range(230):
        session = fake_stripe.session_create(
            {"mode": "payment", "line_items": [{"price": "price_test_pro"}], "metadata": {}}
        )
        session.update(status="complete", payment_status="paid", created=2)
    fake_stripe.paid_session_add(organization_id=other_org.pk, plan="team", created=3)

    output = _reconcile()

    assert "2 repaired." in output and first["id"] in output
    assert len(fake_stripe.requests_to("GET", "/v1/checkout/sessions")) == 3
    assert (_plan(org), _plan(other_org)) == ("pro", "team")


def test_reconcile_records_a_refund_whose_webhook_was_missed(client, org, fake_stripe):
    session = fake_stripe.paid_session_add(organization_id=org.pk, plan="team")
    _reconcile()
    fake_stripe.charge_refund(session["id"])

    output = _reconcile()

    assert f"fixed {session['id']}: missed refund recorded; downgraded alpha-labs to free" in output
    assert _plan(org) == "free"
    assert PaymentReversal.objects.get().payment_intent_id == session["payment_intent"]
    assert _reconcile().strip() == "Nothing to repair."


def test_reconcile_skips_unpaid_foreign_and_orphaned_sessions(org, fake_stripe):
    unpaid = fake_stripe.session_create(
        {"mode": "payment", "client_reference_id": str(org.pk), "metadata": {"plan": "team"}}
    )
    unpaid["status"] = "complete"  # e.g. a bank debit not cleared yet
    fake_stripe.paid_session_add(organization_id=999_999, plan="team")  # organization deleted
    fake_stripe.paid_session_add(organization_id=org.pk, plan="team", metadata={})  # not ours

    assert _reconcile().strip() == "Nothing to repair."
    assert _plan(org) == "free"


def test_reconcile_with_days_only_asks_for_recent_sessions(org, fake_stripe):
    fake_stripe.paid_session_add(organization_id=org.pk, plan="team", created=1_000)

    assert _reconcile("--days", "3").strip() == "Nothing to repair."

    (listing,) = fake_stripe.requests_to("GET", "/v1/checkout/sessions")
    assert int(listing.params["created"]["gte"]) > time.time() - 3 * 86400 - 60


def test_reconcile_with_billing_off_says_there_is_nothing_to_do(billing_off):
    with pytest.raises(CommandError, match="Billing is off"):
        _reconcile()


def test_reconcile_says_when_stripe_cannot_be_listed(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    with pytest.raises(CommandError, match="Stripe could not be listed"):
        _reconcile()


def test_the_hourly_task_repairs_and_counts(org, fake_stripe):
    fake_stripe.paid_session_add(organization_id=org.pk, plan="team")

    assert payments_reconcile_task.delay().get() == 1
    assert payments_reconcile_task.delay().get() == 0
    assert _plan(org) == "team"


def test_the_hourly_task_shrugs_off_stripe_being_away(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    assert payments_reconcile_task.delay().get() == 0


def test_the_hourly_task_is_in_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["payments_reconcile"]

    assert entry["task"] == "billing.tasks.payments_reconcile_task"
    assert entry["options"]["expires"] < 60 * 60


def test_a_second_checkout_of_the_same_session_by_webhook_and_reconcile_is_one_payment(
    client, org, fake_stripe
):
    session = fake_stripe.paid_session_add(organization_id=org.pk, plan="team")
    _reconcile()
    webhook_post(
        client,
        event(
            "checkout.session.completed",
            checkout_session(
                org, session_id=session["id"], payment_intent_id=session["payment_intent"]
            ),
        ),
    )

    assert Payment.all_orgs.count() == 1
