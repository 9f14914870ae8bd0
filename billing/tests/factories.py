"""Billing's rows, and the Stripe objects its events carry (shaped as Stripe sends them)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import factory
from django.urls import reverse

from accounts.models import Organization
from accounts.tests.factories import OrgOwnedFactory
from billing.models import Payment, PaymentStatus, PlanGrant
from billing.plans import plan_get
from billing.tests.conftest import WEBHOOK_SECRET
from billing.tests.fake_stripe import event_build, signature_header

WEBHOOK_PATH = "/billing/stripe/webhook/"


def _stripe_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(10)}"


class PaymentFactory(OrgOwnedFactory):
    class Meta:
        model = Payment

    checkout_session_id = factory.LazyFunction(lambda: _stripe_id("cs"))
    payment_intent_id = factory.LazyFunction(lambda: _stripe_id("pi"))
    plan = "team"
    amount_total = 19900
    currency = "usd"
    status = PaymentStatus.PAID


class PlanGrantFactory(OrgOwnedFactory):
    class Meta:
        model = PlanGrant

    plan = "team"
    reason = "Design partner"


def checkout_session(
    organization: Organization | int | None,
    plan: str = "team",
    *,
    paid: bool = True,
    session_id: str | None = None,
    payment_intent_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A completed Checkout Session as `checkout.session.completed` carries it."""
    organization_id = organization.pk if isinstance(organization, Organization) else organization
    return {
        "id": session_id or _stripe_id("cs"),
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid" if paid else "unpaid",
        "client_reference_id": None if organization_id is None else str(organization_id),
        "metadata": {"plan": plan},
        "amount_total": int(plan_get(plan).price_usd * 100),
        "currency": "usd",
        "payment_intent": payment_intent_id or _stripe_id("pi"),
        "livemode": False,
        **fields,
    }


def charge(payment_intent_id: str, *, amount: int = 19900, refunded_amount: int | None = None):
    """A charge as `charge.refunded` carries it (refunded in full unless told otherwise)."""
    refunded_amount = amount if refunded_amount is None else refunded_amount
    return {
        "id": _stripe_id("ch"),
        "object": "charge",
        "payment_intent": payment_intent_id,
        "amount": amount,
        "amount_refunded": refunded_amount,
        "currency": "usd",
        "refunded": refunded_amount >= amount,
        "receipt_url": "https://pay.stripe.example/receipts/ch_test",
    }


def dispute(payment_intent_id: str, *, status: str = "lost") -> dict[str, Any]:
    return {
        "id": _stripe_id("dp"),
        "object": "dispute",
        "charge": _stripe_id("ch"),
        "payment_intent": payment_intent_id,
        "status": status,
        "amount": 19900,
    }


def event(event_type: str, data_object: dict[str, Any], **kwargs) -> dict[str, Any]:
    return event_build(event_type, data_object, **kwargs)


def webhook_post(
    client,
    stripe_event: dict[str, Any],
    *,
    secret: str | None = None,
    timestamp: int | None = None,
    header: str | None = None,
):
    """POST the event to the webhook as Stripe does: the JSON body, signed with the real
    scheme (`header` overrides the signature, `None` with `header=""` sends none)."""
    payload = json.dumps(stripe_event)
    if header is None:
        header = signature_header(payload, secret or WEBHOOK_SECRET, timestamp)
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header else {}
    return client.post(
        reverse("billing:stripe_webhook"), data=payload, content_type="application/json", **extra
    )
