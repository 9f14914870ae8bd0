"""Stripe's webhook: signed events, each processed once, in any order; the plan follows the
payments still paid, and a downgrade deletes nothing."""

from __future__ import annotations

import json
import time

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse

from accounts.models import Organization
from accounts.tenancy import OrgOwnedModel
from analytics.services.rollups import rollups_rebuild
from analytics.tests.factories import EventFactory
from billing.models import Payment, PaymentReversal, PaymentStatus, StripeEvent
from billing.services import payment_record_from_session
from billing.tests.conftest import WEBHOOK_SECRET
from billing.tests.factories import (
    PaymentFactory,
    PlanGrantFactory,
    charge,
    checkout_session,
    dispute,
    event,
    webhook_post,
)
from billing.tests.fake_stripe import signature_header
from devices.tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db


def _plan(organization: Organization) -> str:
    organization.refresh_from_db()
    return organization.plan


def _payments(organization: Organization) -> list[tuple[str, str]]:
    return list(Payment.all_orgs.filter(organization=organization).values_list("plan", "status"))


def _paid(client, organization, plan="team", **fields):
    session = checkout_session(organization, plan, **fields)
    response = webhook_post(client, event("checkout.session.completed", session))
    assert response.status_code == 200, response.content
    return session


# --- Signatures ---------------------------------------------------------------------------------


def test_a_bad_signature_is_refused_with_400_and_nothing_is_stored(client, org):
    stripe_event = event("checkout.session.completed", checkout_session(org))

    response = webhook_post(client, stripe_event, secret="whsec_someone_elses")

    assert response.status_code == 400
    assert response.json() == {
        "error": "signature_invalid",
        "detail": "The Stripe-Signature header does not verify.",
    }
    assert not StripeEvent.objects.exists()
    assert _plan(org) == "free"


def test_a_missing_signature_is_refused_with_400(client, org):
    response = webhook_post(
        client, event("checkout.session.completed", checkout_session(org)), header=""
    )

    assert response.status_code == 400
    assert response.json()["error"] == "signature_missing"
    assert not StripeEvent.objects.exists()


def test_a_signature_over_a_different_body_is_refused(client, org):
    genuine = event("checkout.session.completed", checkout_session(org, "pro"))

    from billing.tests.fake_stripe import signature_header

    header = signature_header(json.dumps(genuine), WEBHOOK_SECRET)
    forged = event("checkout.session.completed", checkout_session(org, "team"))

    response = webhook_post(client, forged, header=header)

    assert response.status_code == 400
    assert _plan(org) == "free"


def test_a_stale_timestamp_is_refused_even_with_a_valid_signature(client, org):
    # The library's tolerance is five minutes; a replay of a captured delivery is older.
    stripe_event = event("checkout.session.completed", checkout_session(org))

    response = webhook_post(client, stripe_event, timestamp=int(time.time()) - 301)

    assert response.status_code == 400
    assert response.json()["error"] == "signature_expired"
    assert not StripeEvent.objects.exists()
    assert _plan(org) == "free"


def test_a_signed_body_that_is_not_json_is_refused(client):
    payload = "not json at all"
    response = client.post(
        reverse("billing:stripe_webhook"),
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature_header(payload, WEBHOOK_SECRET),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_the_webhook_answers_get_with_a_json_405(client):
    response = client.get("/billing/stripe/webhook/")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"] == "method_not_allowed"


def test_without_a_webhook_secret_the_endpoint_asks_stripe_to_come_back(client, org, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""

    response = webhook_post(client, event("checkout.session.completed", checkout_session(org)))

    assert response.status_code == 503
    assert response.json()["error"] == "webhook_not_configured"


# --- Checkout -----------------------------------------------------------------------------------


def test_a_paid_checkout_upgrades_the_organization_it_names(client, org, other_org):
    session = checkout_session(org, "team")

    response = webhook_post(client, event("checkout.session.completed", session, event_id="evt_1"))

    assert response.status_code == 200
    assert response.json()["result"] == f"upgraded alpha-labs to team (payment {session['id']})"
    assert _plan(org) == "team" and _plan(other_org) == "free"
    payment = Payment.all_orgs.get()
    assert (payment.organization, payment.plan, payment.status) == (org, "team", "paid")
    assert (payment.amount_total, payment.payment_intent_id) == (19900, session["payment_intent"])
    stored = StripeEvent.objects.get()
    assert (stored.stripe_id, stored.type, stored.organization) == (
        "evt_1",
        "checkout.session.completed",
        org,
    )
    assert stored.processed_at is not None and stored.result.startswith("upgraded alpha-labs")
    assert stored.payload["data"]["object"]["id"] == session["id"]


def test_an_unpaid_checkout_is_recorded_without_an_upgrade(client, org):
    session = checkout_session(org, "team", paid=False)

    response = webhook_post(client, event("checkout.session.completed", session))

    assert response.status_code == 200
    assert _plan(org) == "free"
    assert not Payment.all_orgs.exists()
    stored = StripeEvent.objects.get()
    assert stored.organization == org and stored.processed_at is not None
    assert stored.result == (
        f"recorded: checkout {session['id']} for alpha-labs is unpaid; no upgrade until it is paid"
    )


def test_a_delayed_payment_upgrades_when_it_succeeds(client, org):
    session = checkout_session(org, "pro", paid=False)
    webhook_post(client, event("checkout.session.completed", session))
    assert _plan(org) == "free"

    session["payment_status"] = "paid"
    response = webhook_post(client, event("checkout.session.async_payment_succeeded", session))

    assert response.status_code == 200
    assert _plan(org) == "pro"
    assert _payments(org) == [("pro", "paid")]


def test_buying_pro_after_team_keeps_team(client, org):
    _paid(client, org, "team")
    _paid(client, org, "pro")

    assert _plan(org) == "team"
    assert sorted(_payments(org)) == [("pro", "paid"), ("team", "paid")]


def test_a_checkout_for_an_organization_deleted_since_is_recorded_as_gone(client, org):
    organization_id = org.pk
    org.delete()

    response = webhook_post(
        client, event("checkout.session.completed", checkout_session(organization_id))
    )

    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert stored.result == "organization gone" and stored.organization is None
    assert stored.processed_at is not None
    assert not Payment.all_orgs.exists()


def test_a_refund_for_an_organization_deleted_since_is_recorded_and_answers_200(client, org):
    session = _paid(client, org)
    org.delete()  # its payments go with it; the events stay, for the record

    response = webhook_post(client, event("charge.refunded", charge(session["payment_intent"])))

    assert response.status_code == 200
    assert StripeEvent.objects.count() == 2
    assert PaymentReversal.objects.get().payment_intent_id == session["payment_intent"]


def test_an_event_without_an_organization_id_is_kept_as_an_error_without_a_retry(client):
    # The same bytes would fail again: a 200 stops Stripe's retries, the admin shows the error.
    response = webhook_post(client, event("checkout.session.completed", checkout_session(None)))

    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert (
        stored.result.startswith("error: checkout cs_") and "client_reference_id" in stored.result
    )
    assert stored.processed_at is not None


def test_a_checkout_naming_an_unknown_plan_is_kept_as_an_error(client, org):
    session = checkout_session(org, "team")
    session["metadata"]["plan"] = "platinum"

    response = webhook_post(client, event("checkout.session.completed", session))

    assert response.status_code == 200
    assert StripeEvent.objects.get().result.startswith("error:")
    assert _plan(org) == "free" and not Payment.all_orgs.exists()


# --- Each event once ----------------------------------------------------------------------------


def test_a_duplicate_event_answers_200_and_changes_nothing(client, org):
    session = checkout_session(org, "team")
    stripe_event = event("checkout.session.completed", session, event_id="evt_twice")
    webhook_post(client, stripe_event)
    stored = StripeEvent.objects.get()
    processed_at, result = stored.processed_at, stored.result

    response = webhook_post(client, stripe_event)

    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    stored.refresh_from_db()
    assert (stored.processed_at, stored.result, stored.attempts) == (processed_at, result, 1)
    assert StripeEvent.objects.count() == 1 and Payment.all_orgs.count() == 1


def test_the_same_refund_delivered_twice_is_applied_once(client, org):
    session = _paid(client, org)
    refund = event("charge.refunded", charge(session["payment_intent"]), event_id="evt_refund")

    assert webhook_post(client, refund).json()["duplicate"] is False
    assert webhook_post(client, refund).json()["duplicate"] is True

    assert PaymentReversal.objects.count() == 1
    assert _payments(org) == [("team", "refunded")]


def test_an_unknown_event_type_is_stored_and_ignored_with_200(client, org):
    response = webhook_post(
        client, event("customer.created", {"id": "cus_1", "object": "customer"})
    )

    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert (stored.type, stored.result) == ("customer.created", "ignored: unknown type")
    assert stored.processed_at is not None and stored.organization is None
    assert _plan(org) == "free"


def test_a_failure_is_recorded_answered_503_and_processed_by_stripes_retry(
    client, org, monkeypatch
):
    from billing import services

    stripe_event = event("checkout.session.completed", checkout_session(org), event_id="evt_f")

    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "payment_record_from_session", broken)
    response = webhook_post(client, stripe_event)

    assert response.status_code == 503
    assert response.json()["error"] == "processing_failed" and response["Retry-After"]
    stored = StripeEvent.objects.get()
    assert stored.result == "error: RuntimeError: disk on fire"
    assert stored.processed_at is None and stored.attempts == 1
    assert _plan(org) == "free" and not Payment.all_orgs.exists()

    monkeypatch.setattr(services, "payment_record_from_session", payment_record_from_session)
    retry = webhook_post(client, stripe_event)

    assert retry.status_code == 200 and retry.json()["duplicate"] is False
    stored.refresh_from_db()
    assert stored.attempts == 2 and stored.result.startswith("upgraded alpha-labs to team")
    assert _plan(org) == "team"


# --- Refunds and disputes -----------------------------------------------------------------------


def _usage_rows_create(organization):
    device = DeviceFactory(organization=organization)
    for project in ("api", "web", "docs"):
        EventFactory(organization=organization, device=device, project=project)
    rollups_rebuild(organization=organization)


def _row_counts(organization) -> dict[str, int]:
    """Rows of every org-owned table for the organization, and every Stripe event."""
    counts = {
        model._meta.label: model.all_orgs.filter(organization=organization).count()
        for model in apps.get_models()
        if issubclass(model, OrgOwnedModel)
    }
    return {**counts, "billing.StripeEvent": StripeEvent.objects.count()}


def test_a_full_refund_returns_the_organization_to_free_without_deleting_a_row(client, org):
    _usage_rows_create(org)
    session = _paid(client, org, "team")
    before = _row_counts(org)
    assert before["ingest.Event"] == 3
    assert before["analytics.UsageRollup"] > 0 and before["analytics.UsageDailyRollup"] > 0

    response = webhook_post(client, event("charge.refunded", charge(session["payment_intent"])))

    assert response.status_code == 200
    assert response.json()["result"] == (
        f"downgraded alpha-labs to free (payment {session['id']} refunded in full)"
    )
    assert _plan(org) == "free"
    assert _payments(org) == [("team", "refunded")]
    after = _row_counts(org)
    assert after == {**before, "billing.StripeEvent": before["billing.StripeEvent"] + 1}


def test_a_full_refund_of_one_payment_keeps_the_plan_another_payment_gives(client, org):
    pro = _paid(client, org, "pro")
    _paid(client, org, "team")

    webhook_post(client, event("charge.refunded", charge(pro["payment_intent"], amount=7900)))

    assert _plan(org) == "team"


def test_a_full_refund_keeps_a_plan_an_operator_granted(client, org):
    PlanGrantFactory(organization=org, plan="pro")
    session = _paid(client, org, "team")

    webhook_post(client, event("charge.refunded", charge(session["payment_intent"])))

    assert _plan(org) == "pro"


def test_a_partial_refund_changes_nothing(client, org):
    session = _paid(client, org, "team")

    response = webhook_post(
        client,
        event("charge.refunded", charge(session["payment_intent"], refunded_amount=5000)),
    )

    assert response.status_code == 200
    assert response.json()["result"].startswith("partial refund of ch_")
    assert _plan(org) == "team"
    assert _payments(org) == [("team", "paid")]
    assert not PaymentReversal.objects.exists()
    assert StripeEvent.objects.filter(type="charge.refunded").get().organization == org


def test_a_lost_dispute_returns_the_organization_to_free(client, org):
    session = _paid(client, org, "team")

    response = webhook_post(
        client, event("charge.dispute.closed", dispute(session["payment_intent"]))
    )

    assert response.status_code == 200
    assert _plan(org) == "free"
    assert _payments(org) == [("team", PaymentStatus.DISPUTED_LOST)]


def test_a_won_dispute_changes_nothing(client, org):
    session = _paid(client, org, "team")

    response = webhook_post(
        client, event("charge.dispute.closed", dispute(session["payment_intent"], status="won"))
    )

    assert response.json()["result"].endswith("closed as won; no change")
    assert _plan(org) == "team"


# --- In any order -------------------------------------------------------------------------------


def test_a_refund_delivered_before_its_checkout_makes_the_checkout_land_refunded(client, org):
    session = checkout_session(org, "team")

    early = webhook_post(client, event("charge.refunded", charge(session["payment_intent"])))
    assert early.status_code == 200
    assert early.json()["result"].startswith(f"recorded {session['payment_intent']} as refunded")

    late = webhook_post(client, event("checkout.session.completed", session))

    assert late.status_code == 200
    assert late.json()["result"] == (
        f"alpha-labs stays on free (payment {session['id']} recorded as already refunded)"
    )
    assert _plan(org) == "free"
    assert _payments(org) == [("team", "refunded")]


def test_a_lost_dispute_before_its_checkout_makes_the_checkout_land_reversed(client, org):
    session = checkout_session(org, "pro")
    webhook_post(client, event("charge.dispute.closed", dispute(session["payment_intent"])))

    webhook_post(client, event("checkout.session.completed", session))

    assert _plan(org) == "free"
    assert _payments(org) == [("pro", PaymentStatus.DISPUTED_LOST)]


def test_an_async_success_after_the_completed_event_records_one_payment(client, org):
    session = checkout_session(org, "team")
    webhook_post(client, event("checkout.session.async_payment_succeeded", session))
    webhook_post(client, event("checkout.session.completed", session))

    assert Payment.all_orgs.count() == 1 and _plan(org) == "team"


def test_a_refund_of_a_payment_made_by_hand_elsewhere_only_records_the_fact(client, org):
    PaymentFactory(organization=org, plan="pro", payment_intent_id="pi_other")

    webhook_post(client, event("charge.refunded", charge("pi_unrelated")))

    assert Payment.all_orgs.get().status == "paid"
    assert PaymentReversal.objects.get().payment_intent_id == "pi_unrelated"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="(the PostgreSQL race is its own test)")
def test_events_are_stored_before_they_are_processed(client, org, monkeypatch):
    from billing import services

    seen = []
    real = services._event_apply

    def spy(stripe_event):
        seen.append(StripeEvent.objects.filter(stripe_id=stripe_event.stripe_id).exists())
        return real(stripe_event)

    monkeypatch.setattr(services, "_event_apply", spy)
    webhook_post(client, event("checkout.session.completed", checkout_session(org)))

    assert seen == [True]


def test_an_oversized_signed_body_is_refused_with_a_json_413(client, settings):
    payload = json.dumps({"id": "evt_big", "padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})

    response = client.post(
        reverse("billing:stripe_webhook"),
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature_header(payload, WEBHOOK_SECRET),
    )

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert not StripeEvent.objects.exists()
