"""Every call ClawTrace makes to Stripe, and the webhook signature check (style.md 8): nothing
else imports `stripe`.

Requests go to `settings.STRIPE_API_BASE` with `settings.STRIPE_SECRET_KEY`, through a
`StripeClient` made per call from the current settings (cheap, and tests point it at the local
fake in `billing/tests/fake_stripe.py` by changing the setting). Results come back as plain
dicts, so that the services never hold a library object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import stripe
from django.conf import settings

# Seconds: a Checkout Session is created while the owner's browser waits.
STRIPE_TIMEOUT_SECONDS = 20
# What each Checkout Session should come with so that one list call gives the reconciler
# everything: the payment intent's charge holds the receipt and whether it was refunded.
SESSION_EXPAND = ["payment_intent.latest_charge"]


class StripeUnavailableError(Exception):
    """Stripe could not be reached or refused the call; the message is safe to show."""


class WebhookSignatureError(Exception):
    """A webhook whose `Stripe-Signature` does not verify. `code` says why."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


def _client() -> stripe.StripeClient:
    http_client = stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS)
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        http_client=http_client,
        max_network_retries=1,
    )


def _plain(value: Any) -> Any:
    """A StripeObject (and everything in it) as plain JSON data."""
    return value.to_dict(for_json=True) if isinstance(value, stripe.StripeObject) else value


def checkout_session_create(
    *,
    price_id: str,
    organization_id: int,
    plan_code: str,
    success_url: str,
    cancel_url: str,
    customer_email: str | None = None,
) -> dict[str, Any]:
    """A Checkout Session in payment mode (the plans are one-time payments) for one unit of
    the plan's Price. `client_reference_id` and `metadata.plan` are what the webhook reads to
    know whom to upgrade to what."""
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [{"price": price_id, "quantity": 1}],
        "client_reference_id": str(organization_id),
        "metadata": {"plan": plan_code, "organization_id": str(organization_id)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if customer_email:
        params["customer_email"] = customer_email
    try:
        return _plain(_client().v1.checkout.sessions.create(params=params))
    except stripe.StripeError as error:
        raise StripeUnavailableError(_error_message(error)) from error


def checkout_session_retrieve(*, session_id: str) -> dict[str, Any]:
    """One Checkout Session, its payment intent and charge expanded."""
    try:
        session = _client().v1.checkout.sessions.retrieve(
            session_id, params={"expand": SESSION_EXPAND}
        )
    except stripe.StripeError as error:
        raise StripeUnavailableError(_error_message(error)) from error
    return _plain(session)


def checkout_session_list_complete(*, created_after: int | None = None) -> Iterator[dict[str, Any]]:
    """Every completed Checkout Session (newest first), page after page; `created_after` (a
    Unix time) narrows it to the recent ones."""
    params: dict[str, Any] = {
        "status": "complete",
        "limit": 100,
        "expand": [f"data.{path}" for path in SESSION_EXPAND],
    }
    if created_after is not None:
        params["created"] = {"gte": created_after}
    try:
        for session in _client().v1.checkout.sessions.list(params=params).auto_paging_iter():
            yield _plain(session)
    except stripe.StripeError as error:
        raise StripeUnavailableError(_error_message(error)) from error


def webhook_event_verify(*, payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The event in a webhook body, once its signature is verified with Stripe's scheme
    (HMAC-SHA256 over `timestamp.payload`, the library's timestamp tolerance) against
    `STRIPE_WEBHOOK_SECRET`. Raises `WebhookSignatureError`."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not signature_header:
        raise WebhookSignatureError("No Stripe-Signature header.", code="signature_missing")
    try:
        stripe.Webhook.construct_event(payload, signature_header, secret)
    except stripe.SignatureVerificationError as error:
        if _signature_valid_but_stale(payload, signature_header, secret):
            raise WebhookSignatureError(
                "The signature's timestamp is too old.", code="signature_expired"
            ) from error
        raise WebhookSignatureError(
            "The Stripe-Signature header does not verify.", code="signature_invalid"
        ) from error
    except (ValueError, UnicodeDecodeError) as error:  # signed, but not JSON (or not text)
        raise WebhookSignatureError("The body is not a JSON event.", code="invalid_json") from error
    # The library has parsed it already, into its own objects; the services want plain data.
    event = json.loads(payload)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise WebhookSignatureError("The body is not a Stripe event.", code="invalid_json")
    return event


def _signature_valid_but_stale(payload: bytes, header: str, secret: str) -> bool:
    """Whether only the timestamp failed: the same check without a tolerance passes."""
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError):
        return False
    return True


def _error_message(error: stripe.StripeError) -> str:
    # The user-facing message Stripe gives when there is one; never the request or the key.
    return getattr(error, "user_message", None) or "Stripe could not be reached; try again."
