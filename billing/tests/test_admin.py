"""Operators' admin: webhook events with their processing result and a replay, payments,
plans granted by hand with a required reason, and the plan shown read-only."""

from __future__ import annotations

import pytest
from django.db import IntegrityError
from django.urls import reverse

from accounts.models import Organization
from accounts.tests.factories import UserFactory
from billing.models import Payment, PaymentReversal, PlanGrant, StripeEvent
from billing.tests.factories import (
    PaymentFactory,
    PlanGrantFactory,
    charge,
    checkout_session,
    event,
    webhook_post,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return UserFactory(email="ops@clawtrace.example", is_staff=True, is_superuser=True)


@pytest.fixture
def operator_client(client_for, operator):
    return client_for(operator)


def _plan(organization: Organization) -> str:
    organization.refresh_from_db()
    return organization.plan


@pytest.mark.parametrize("model", ["payment", "paymentreversal", "stripeevent", "plangrant"])
def test_operator_lists_searches_and_opens_every_billing_model(client, operator_client, org, model):
    session = checkout_session(org)
    webhook_post(client, event("checkout.session.completed", session))
    webhook_post(client, event("charge.refunded", charge(session["payment_intent"])))
    PlanGrantFactory(organization=org)
    changelist = reverse(f"admin:billing_{model}_changelist")

    assert operator_client.get(changelist).status_code == 200
    assert operator_client.get(changelist, {"q": "alpha"}).status_code == 200
    first = {
        "payment": Payment.all_orgs,
        "paymentreversal": PaymentReversal.objects,
        "stripeevent": StripeEvent.objects,
        "plangrant": PlanGrant.all_orgs,
    }[model].first()
    assert (
        operator_client.get(reverse(f"admin:billing_{model}_change", args=[first.pk])).status_code
        == 200
    )


def test_the_event_list_shows_what_processing_made_of_each_event(client, operator_client, org):
    webhook_post(client, event("checkout.session.completed", checkout_session(org)))
    webhook_post(client, event("customer.created", {"id": "cus_1"}))

    html = operator_client.get(reverse("admin:billing_stripeevent_changelist")).content.decode()

    assert "upgraded alpha-labs to team" in html
    assert "ignored: unknown type" in html


def test_stripe_data_cannot_be_edited_or_deleted_in_the_admin(operator_client, org):
    payment = PaymentFactory(organization=org)

    page = operator_client.get(reverse("admin:billing_payment_change", args=[payment.pk]))
    assert 'name="checkout_session_id"' not in page.content.decode()
    response = operator_client.post(reverse("admin:billing_payment_delete", args=[payment.pk]))
    assert response.status_code == 403
    assert operator_client.get(reverse("admin:billing_stripeevent_add")).status_code == 403


def test_replaying_an_event_that_failed_applies_it(client, operator_client, org, monkeypatch):
    from billing import services

    real = services.payment_record_from_session
    monkeypatch.setattr(services, "payment_record_from_session", lambda **kw: 1 / 0)
    webhook_post(client, event("checkout.session.completed", checkout_session(org)))
    stored = StripeEvent.objects.get()
    assert stored.result.startswith("error: ZeroDivisionError") and _plan(org) == "free"
    monkeypatch.setattr(services, "payment_record_from_session", real)

    response = operator_client.post(
        reverse("admin:billing_stripeevent_changelist"),
        {"action": "replay", "_selected_action": [stored.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "upgraded alpha-labs to team" in response.content.decode()
    stored.refresh_from_db()
    assert stored.result.startswith("replayed: upgraded alpha-labs to team")
    assert stored.processed_at is not None and stored.attempts == 2
    assert _plan(org) == "team"


def test_replaying_an_applied_event_changes_nothing(client, operator_client, org):
    webhook_post(client, event("checkout.session.completed", checkout_session(org)))
    stored = StripeEvent.objects.get()

    for _ in range(2):
        operator_client.post(
            reverse("admin:billing_stripeevent_changelist"),
            {"action": "replay", "_selected_action": [stored.pk]},
        )

    stored.refresh_from_db()
    assert stored.result == "replayed: alpha-labs stays on team (payment " + (
        Payment.all_orgs.get().checkout_session_id + ")"
    )
    assert Payment.all_orgs.count() == 1 and _plan(org) == "team"


def test_an_operator_grants_a_plan_with_a_reason(operator_client, operator, org):
    response = operator_client.post(
        reverse("admin:billing_plangrant_add"),
        {"organization": org.pk, "plan": "team", "reason": "Design partner, agreed by mail"},
    )

    assert response.status_code == 302, response.content.decode()
    grant = PlanGrant.all_orgs.get()
    assert (grant.organization, grant.plan, grant.granted_by) == (org, "team", operator)
    assert grant.reason == "Design partner, agreed by mail"
    assert _plan(org) == "team"


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_grant_without_a_reason_is_refused(operator_client, org, reason):
    response = operator_client.post(
        reverse("admin:billing_plangrant_add"),
        {"organization": org.pk, "plan": "team", "reason": reason},
    )

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not PlanGrant.all_orgs.exists() and _plan(org) == "free"


def test_the_database_refuses_a_grant_without_a_reason(org):
    with pytest.raises(IntegrityError):
        PlanGrant.all_orgs.create(organization=org, plan="team", reason="")


def test_revoking_a_grant_returns_the_organization_to_what_it_paid_for(operator_client, org):
    PaymentFactory(organization=org, plan="pro")
    operator_client.post(
        reverse("admin:billing_plangrant_add"),
        {"organization": org.pk, "plan": "team", "reason": "Trial of the team dashboard"},
    )
    grant = PlanGrant.all_orgs.get()
    assert _plan(org) == "team"

    operator_client.post(
        reverse("admin:billing_plangrant_changelist"),
        {"action": "revoke", "_selected_action": [grant.pk]},
    )

    grant.refresh_from_db()
    assert grant.revoked_at is not None
    assert _plan(org) == "pro"


def test_the_organization_admin_shows_the_plan_read_only_with_the_plans_and_limits(
    operator_client, org
):
    html = operator_client.get(
        reverse("admin:accounts_organization_change", args=[org.pk])
    ).content.decode()

    assert 'name="plan"' not in html  # derived from payments and grants: grant one instead
    assert "Limits in force: Free." in html
    for name in ("Free (in force)", "Pro", "Team"):
        assert name in html
    assert "Uses 0 device(s), 0 project(s), 1 member(s)." in html


def test_the_organization_admin_says_when_billing_is_off(operator_client, org, billing_off):
    html = operator_client.get(
        reverse("admin:accounts_organization_change", args=[org.pk])
    ).content.decode()

    assert "Billing is off: every organization has Team&#x27;s limits." in html


def test_an_operator_resyncs_a_payment_from_stripe(operator_client, org, fake_stripe):
    session = fake_stripe.paid_session_add(organization_id=org.pk, plan="team")
    payment = PaymentFactory(
        organization=org,
        checkout_session_id=session["id"],
        payment_intent_id=session["payment_intent"],
    )
    fake_stripe.charge_refund(session["id"])

    response = operator_client.post(
        reverse("admin:billing_payment_changelist"),
        {"action": "sync_from_stripe", "_selected_action": [payment.pk]},
        follow=True,
    )

    assert "missed refund recorded" in response.content.decode()
    payment.refresh_from_db()
    assert payment.status == "refunded"
