"""Writes for billing: starting a Checkout, applying Stripe's events, reconciling with Stripe,
operators' grants, and the one place an organization's plan is decided.

The plan is derived, never set: `organization_plan_recompute` takes the best plan among the
organization's payments still paid and its grants not revoked (else Free) and writes it to
`Organization.plan` through accounts' `organization_plan_set`. Every fact (a payment, a refund,
a lost dispute, a grant, a revocation) is stored first and followed by a recompute, under the
organization's row lock; so the result does not depend on the order Stripe delivers events in,
and applying the same fact twice changes nothing.

Two locks, always in this order: the payment intent's (a transaction-scoped advisory lock on
PostgreSQL) so that a refund and the checkout it refunds, processed at the same instant by two
workers, cannot both miss each other; then the organization's row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from accounts.models import Organization, PlanCode, Role, User
from accounts.selectors import membership_for_user_get
from accounts.services import organization_plan_set
from accounts.tenancy import organization_scope
from billing import stripe_gateway
from billing.models import (
    PAID_PLAN_CODES,
    Payment,
    PaymentReversal,
    PaymentStatus,
    PlanGrant,
    ReversalKind,
    StripeEvent,
)
from billing.plans import FREE, PLANS, Plan
from billing.selectors import billing_enabled, organization_plan
from clawtrace_site.exceptions import ApplicationError, ConflictError, NotAllowedError

logger = logging.getLogger(__name__)

# Worst to best: the order in which plans supersede each other.
PLAN_ORDER = [plan.code for plan in sorted(PLANS.values(), key=lambda plan: plan.price_usd)]
RESULT_MAX_LENGTH = 2000


class BillingDisabledError(ApplicationError):
    code = "billing_disabled"
    status_code = 409


class CheckoutUnavailableError(ApplicationError):
    """Stripe could not start the Checkout, or the plan's Price is not configured."""

    code = "checkout_unavailable"
    status_code = 503


class WebhookPayloadError(Exception):
    """A signed event that lacks what processing needs (no organization id, an unknown plan):
    the same payload would fail again, so Stripe is not asked to retry it."""


def plan_rank(code: str) -> int:
    return PLAN_ORDER.index(code)


# --- The plan, from the facts -------------------------------------------------------------------


@dataclass(frozen=True)
class PlanChange:
    organization: Organization
    before: str
    after: str

    def describe(self) -> str:
        slug = self.organization.slug
        if self.before == self.after:
            return f"{slug} stays on {self.after}"
        verb = "upgraded" if plan_rank(self.after) > plan_rank(self.before) else "downgraded"
        return f"{verb} {slug} to {self.after}"


def _organization_lock(organization: Organization) -> Organization:
    return Organization.objects.select_for_update().get(pk=organization.pk)


@transaction.atomic
def organization_plan_recompute(*, organization: Organization) -> PlanChange:
    """Write the plan the organization's facts give it: the best of its paid payments and
    active grants, else Free. Nothing is deleted on a downgrade: retention applies the shorter
    history later, after warning the owners, and hidden projects come back on upgrade."""
    locked = _organization_lock(organization)
    with organization_scope(locked):
        codes = set(
            Payment.objects.filter(status=PaymentStatus.PAID).values_list("plan", flat=True)
        )
        codes |= set(
            PlanGrant.objects.filter(revoked_at__isnull=True).values_list("plan", flat=True)
        )
    best = max(codes, key=plan_rank, default=FREE.code)
    before = locked.plan
    organization_plan_set(organization=locked, plan=best)
    organization.plan = locked.plan
    return PlanChange(organization=locked, before=before, after=best)


# --- Checkout -----------------------------------------------------------------------------------


def _price_id(plan: Plan) -> str:
    # The Prices live in settings (the environment) so that an operator changes them without a
    # deploy; the plan table keeps the amounts shown on the pricing page.
    return getattr(settings, f"STRIPE_PRICE_{plan.code.upper()}", "")


def checkout_session_start(
    *,
    organization: Organization,
    actor: User,
    plan_code: str,
    success_url: str,
    cancel_url: str,
) -> str:
    """A Stripe Checkout Session for the organization to buy `plan_code`; its URL, where the
    owner's browser goes next. Nothing changes here: the signed webhook upgrades."""
    if not billing_enabled():
        raise BillingDisabledError("Billing is not configured on this server.")
    membership = membership_for_user_get(user=actor, organization_slug=organization.slug)
    if membership is None or membership.role != Role.OWNER:
        raise NotAllowedError("Only the organization's owners can pay for a plan.")
    plan = PLANS.get(plan_code)
    if plan is None or plan.code not in PAID_PLAN_CODES:
        raise ApplicationError("Choose Pro or Team.", code="invalid_plan", extra={"field": "plan"})
    current = organization_plan(organization=organization)
    if plan_rank(plan.code) <= plan_rank(current.code):
        raise ConflictError(f"{organization.name} is on {current.name} already.")
    price_id = _price_id(plan)
    if not price_id:
        raise CheckoutUnavailableError(
            f"{plan.name} cannot be bought yet: its Stripe price is not configured."
        )
    try:
        session = stripe_gateway.checkout_session_create(
            price_id=price_id,
            organization_id=organization.pk,
            plan_code=plan.code,
            success_url=success_url,
            cancel_url=cancel_url,
            customer_email=actor.email,
        )
    except stripe_gateway.StripeUnavailableError as error:
        logger.warning("checkout session not created", extra={"organization_id": organization.pk})
        raise CheckoutUnavailableError(
            f"Stripe could not start the checkout ({error}); nothing was charged."
        ) from None
    logger.info(
        "checkout session created",
        extra={
            "organization_id": organization.pk,
            "plan": plan.code,
            "checkout_session_id": session.get("id"),
        },
    )
    return str(session["url"])


# --- Payments and their reversals ---------------------------------------------------------------


def _id_of(value: Any) -> str:
    """A Stripe reference, whether it came as an id or expanded into its object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def _payment_intent_lock(payment_intent_id: str) -> None:
    """Serialize everything done about one payment intent until the transaction ends. SQLite
    lets one writer at a time anyway."""
    if payment_intent_id and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"billing.payment_intent:{payment_intent_id}"],
            )


def _session_organization(session: dict[str, Any]) -> Organization | None:
    """The organization a Checkout Session pays for (its `client_reference_id`), or None when
    it has been deleted since."""
    reference = session.get("client_reference_id")
    try:
        organization_id = int(reference)
    except (TypeError, ValueError):
        raise WebhookPayloadError(
            f"checkout {session.get('id')} has no organization id (client_reference_id)"
        ) from None
    return Organization.objects.filter(pk=organization_id).first()


def _session_plan(session: dict[str, Any]) -> str:
    plan = (session.get("metadata") or {}).get("plan")
    if plan not in PAID_PLAN_CODES:
        raise WebhookPayloadError(f"checkout {session.get('id')} names no paid plan ({plan!r})")
    return str(plan)


@dataclass(frozen=True)
class PaymentRecorded:
    payment: Payment
    created: bool
    change: PlanChange

    def describe(self) -> str:
        session_id = self.payment.checkout_session_id
        if self.payment.is_paid:
            return f"{self.change.describe()} (payment {session_id})"
        return (
            f"{self.change.describe()} (payment {session_id} recorded as already "
            f"{self.payment.get_status_display().lower()})"
        )


@transaction.atomic
def payment_record_from_session(
    *, organization: Organization, session: dict[str, Any]
) -> PaymentRecorded:
    """Record a paid Checkout Session as the organization's payment (once per session; a
    second call only fills what the first lacked, such as the receipt) and recompute the plan.
    A reversal stored before it (a refund delivered first) applies at once."""
    session_id = _id_of(session)
    if not session_id:
        raise WebhookPayloadError("checkout session without an id")
    plan = _session_plan(session)
    payment_intent = session.get("payment_intent")
    payment_intent_id = _id_of(payment_intent)
    charge = payment_intent.get("latest_charge") if isinstance(payment_intent, dict) else None
    charge = charge if isinstance(charge, dict) else {}
    _payment_intent_lock(payment_intent_id)
    organization = _organization_lock(organization)
    now = timezone.now()
    with organization_scope(organization):
        payment, created = Payment.objects.get_or_create(
            checkout_session_id=session_id,
            defaults={
                "organization": organization,
                "payment_intent_id": payment_intent_id,
                "charge_id": _id_of(charge),
                "plan": plan,
                "amount_total": int(session.get("amount_total") or 0),
                "currency": str(session.get("currency") or "usd")[:3],
                "receipt_url": str(charge.get("receipt_url") or ""),
                "livemode": bool(session.get("livemode")),
                "paid_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
    changed = []
    for field, value in (
        ("payment_intent_id", payment_intent_id),
        ("charge_id", _id_of(charge)),
        ("receipt_url", str(charge.get("receipt_url") or "")),
    ):
        if value and not getattr(payment, field):
            setattr(payment, field, value)
            changed.append(field)
    reversal = (
        PaymentReversal.objects.filter(payment_intent_id=payment.payment_intent_id).first()
        if payment.payment_intent_id
        else None
    )
    if reversal is not None and payment.is_paid:
        payment.status = PaymentStatus(reversal.kind)
        payment.reversed_at = reversal.occurred_at
        changed += ["status", "reversed_at"]
    if changed:
        payment.updated_at = now
        payment.save(update_fields=[*changed, "updated_at"])
    change = organization_plan_recompute(organization=organization)
    if created and not payment.receipt_url:
        payment_id = payment.pk
        transaction.on_commit(lambda: _receipt_fetch_enqueue(payment_id=payment_id))
    if created:
        logger.info(
            "payment recorded",
            extra={
                "organization_id": organization.pk,
                "payment_id": payment.pk,
                "plan": plan,
                "status": payment.status,
            },
        )
    return PaymentRecorded(payment=payment, created=created, change=change)


@dataclass(frozen=True)
class ReversalRecorded:
    reversal: PaymentReversal
    payment: Payment | None
    change: PlanChange | None

    def describe(self) -> str:
        what = self.reversal.get_kind_display().lower()
        if self.payment is None:
            return (
                f"recorded {self.reversal.payment_intent_id} as {what} before its payment "
                "arrived; it will land reversed"
            )
        return f"{self.change.describe()} (payment {self.payment.checkout_session_id} {what})"


@transaction.atomic
def payment_reversal_record(
    *, payment_intent_id: str, kind: str, charge_id: str = "", stripe_event_id: str = ""
) -> ReversalRecorded:
    """Record that the payment with this intent was taken back (a full refund, a lost dispute)
    and, if the payment is known, mark it and recompute its organization's plan. The first
    reversal stands: a dispute lost after a refund changes nothing more."""
    _payment_intent_lock(payment_intent_id)
    reversal, _created = PaymentReversal.objects.get_or_create(
        payment_intent_id=payment_intent_id,
        defaults={"kind": kind, "charge_id": charge_id, "stripe_event_id": stripe_event_id},
    )
    # The charge and the dispute name no organization: find it through the payment. A lookup
    # across organizations by Stripe's own unique id, before any tenant is known.
    payment = Payment.all_orgs.filter(payment_intent_id=payment_intent_id).first()
    if payment is None:
        return ReversalRecorded(reversal=reversal, payment=None, change=None)
    organization = _organization_lock(payment.organization)
    payment.refresh_from_db()
    if payment.is_paid:
        payment.status = PaymentStatus(reversal.kind)
        payment.reversed_at = reversal.occurred_at
        payment.updated_at = timezone.now()
        payment.save(update_fields=["status", "reversed_at", "updated_at"])
        logger.info(
            "payment reversed",
            extra={
                "organization_id": organization.pk,
                "payment_id": payment.pk,
                "status": payment.status,
            },
        )
    change = organization_plan_recompute(organization=organization)
    return ReversalRecorded(reversal=reversal, payment=payment, change=change)


# --- Webhook events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EventOutcome:
    """How the webhook answers Stripe: 2xx when the event needs nothing more (applied,
    ignored, a duplicate, or unusable as sent), 503 when a retry could succeed."""

    status_code: int
    result: str
    duplicate: bool = False


# What applying an event did, and the organization it concerned (shown with the event).
Applied = tuple[str, Organization | None]


def _checkout_session_apply(
    session: dict[str, Any], *, event_id: str
) -> tuple[str, Organization | None]:
    if session.get("mode") not in (None, "payment"):
        return f"ignored: checkout {session.get('id')} is not a one-time payment", None
    organization = _session_organization(session)
    if organization is None:
        return "organization gone", None
    if session.get("payment_status") != "paid":
        # e.g. a bank debit still on its way: `checkout.session.async_payment_succeeded`
        # follows when it clears.
        return (
            f"recorded: checkout {session.get('id')} for {organization.slug} is "
            f"{session.get('payment_status')}; no upgrade until it is paid"
        ), organization
    return payment_record_from_session(organization=organization, session=session).describe(), (
        organization
    )


def _reversal_apply(
    *, payment_intent_id: str, kind: str, charge_id: str, event_id: str
) -> tuple[str, Organization | None]:
    recorded = payment_reversal_record(
        payment_intent_id=payment_intent_id,
        kind=kind,
        charge_id=charge_id,
        stripe_event_id=event_id,
    )
    return recorded.describe(), recorded.payment.organization if recorded.payment else None


def _payment_organization(payment_intent_id: str) -> Organization | None:
    payment = Payment.all_orgs.filter(payment_intent_id=payment_intent_id).first()
    return payment.organization if payment else None


def _charge_refunded_apply(
    charge: dict[str, Any], *, event_id: str
) -> tuple[str, Organization | None]:
    payment_intent_id = _id_of(charge.get("payment_intent"))
    if not payment_intent_id:
        return f"ignored: charge {charge.get('id')} has no payment intent", None
    if not charge.get("refunded"):
        # Stripe sets `refunded` only once the whole amount is back.
        return (
            f"partial refund of {charge.get('id')} ({charge.get('amount_refunded')} of "
            f"{charge.get('amount')} {charge.get('currency')}); no change"
        ), _payment_organization(payment_intent_id)
    return _reversal_apply(
        payment_intent_id=payment_intent_id,
        kind=ReversalKind.REFUNDED,
        charge_id=_id_of(charge),
        event_id=event_id,
    )


def _dispute_closed_apply(
    dispute: dict[str, Any], *, event_id: str
) -> tuple[str, Organization | None]:
    payment_intent_id = _id_of(dispute.get("payment_intent"))
    if not payment_intent_id:
        return f"ignored: dispute {dispute.get('id')} has no payment intent", None
    if dispute.get("status") != "lost":
        return (
            f"dispute {dispute.get('id')} closed as {dispute.get('status')}; no change"
        ), _payment_organization(payment_intent_id)
    return _reversal_apply(
        payment_intent_id=payment_intent_id,
        kind=ReversalKind.DISPUTED_LOST,
        charge_id=_id_of(dispute.get("charge")),
        event_id=event_id,
    )


EVENT_HANDLERS = {
    "checkout.session.completed": _checkout_session_apply,
    "checkout.session.async_payment_succeeded": _checkout_session_apply,
    "charge.refunded": _charge_refunded_apply,
    "charge.dispute.closed": _dispute_closed_apply,
}


def _event_apply(stripe_event: StripeEvent) -> tuple[str, Organization | None]:
    handler = EVENT_HANDLERS.get(stripe_event.type)
    if handler is None:
        return "ignored: unknown type", None
    data_object = (stripe_event.payload.get("data") or {}).get("object")
    if not isinstance(data_object, dict):
        raise WebhookPayloadError("the event has no data.object")
    return handler(data_object, event_id=stripe_event.stripe_id)


def _stripe_event_process(stripe_event: StripeEvent) -> EventOutcome:
    """Apply a stored, locked event and record what happened on it. Called inside the
    transaction that holds the event's row lock; the handler runs in a savepoint so that its
    failure is rolled back while the record of it is kept."""
    stripe_event.attempts += 1
    status_code, processed = 200, True
    try:
        with transaction.atomic():
            result, organization = _event_apply(stripe_event)
        if organization is not None:
            stripe_event.organization = organization
    except WebhookPayloadError as error:
        # The same bytes would fail the same way: keep it for an operator (admin replay once
        # the cause is fixed) rather than have Stripe retry it for three days.
        result = f"error: {error}"
        logger.error(
            "stripe event unusable",
            extra={"stripe_event_id": stripe_event.stripe_id, "type": stripe_event.type},
        )
    except Exception as error:
        result = f"error: {type(error).__name__}: {error}"
        status_code, processed = 503, False
        logger.exception(
            "stripe event failed; Stripe will retry",
            extra={"stripe_event_id": stripe_event.stripe_id, "type": stripe_event.type},
        )
    stripe_event.result = result[:RESULT_MAX_LENGTH]
    stripe_event.processed_at = timezone.now() if processed else None
    stripe_event.save(update_fields=["attempts", "result", "processed_at", "organization"])
    return EventOutcome(status_code=status_code, result=stripe_event.result)


def stripe_event_receive(*, event: dict[str, Any]) -> EventOutcome:
    """Store a verified event and process it exactly once.

    The row goes in first (unique Stripe id), then is locked: a second delivery of the same
    event, even to another worker at the same instant, waits for the first to commit and then
    finds it processed, and answers 200 without doing anything. An event left unprocessed by
    an error that a retry could get past is processed by the next delivery."""
    try:
        with transaction.atomic():
            StripeEvent.objects.get_or_create(
                stripe_id=event["id"],
                defaults={
                    "type": str(event.get("type") or "")[:100],
                    "payload": event,
                    "livemode": bool(event.get("livemode")),
                },
            )
            stripe_event = StripeEvent.objects.select_for_update().get(stripe_id=event["id"])
            if stripe_event.processed_at is not None:
                return EventOutcome(status_code=200, result=stripe_event.result, duplicate=True)
            return _stripe_event_process(stripe_event)
    except DatabaseError:
        logger.exception("stripe event not stored", extra={"stripe_event_id": event.get("id")})
        return EventOutcome(status_code=503, result="error: database unavailable")


@transaction.atomic
def stripe_event_replay(*, stripe_event: StripeEvent) -> EventOutcome:
    """Process a stored event again (an operator, from the admin: after fixing what made it
    fail, or to re-apply it). Every handler stores facts and recomputes, so replaying an event
    that was applied already changes nothing."""
    locked = StripeEvent.objects.select_for_update().get(pk=stripe_event.pk)
    outcome = _stripe_event_process(locked)
    locked.result = f"replayed: {locked.result}"[:RESULT_MAX_LENGTH]
    locked.save(update_fields=["result"])
    stripe_event.refresh_from_db()
    return outcome


# --- Reconciling with Stripe --------------------------------------------------------------------


def _session_reconcile(session: dict[str, Any]) -> str | None:
    """Repair what billing misses of one completed Checkout Session; what it fixed, or None.
    Stripe is the source of truth: its charge says whether the payment was refunded."""
    if session.get("mode") != "payment" or session.get("payment_status") != "paid":
        return None
    if (session.get("metadata") or {}).get("plan") not in PAID_PLAN_CODES:
        return None  # not one of ours
    session_id = _id_of(session)
    try:
        organization = _session_organization(session)
    except WebhookPayloadError:
        return None
    if organization is None:
        return None
    payment_intent = session.get("payment_intent")
    charge = payment_intent.get("latest_charge") if isinstance(payment_intent, dict) else None
    charge = charge if isinstance(charge, dict) else {}
    existing = Payment.all_orgs.filter(checkout_session_id=session_id).first()
    refunded = bool(charge.get("refunded"))
    needs_receipt = bool(charge.get("receipt_url")) and existing and not existing.receipt_url
    needs_refund = refunded and (existing is None or existing.is_paid)
    if existing is not None and not needs_receipt and not needs_refund:
        return None
    reversal = (
        payment_reversal_record(
            payment_intent_id=_id_of(payment_intent),
            kind=ReversalKind.REFUNDED,
            charge_id=_id_of(charge),
            stripe_event_id="reconcile",
        )
        if refunded
        else None
    )
    recorded = payment_record_from_session(organization=organization, session=session)
    if recorded.created:
        return f"{session_id}: missed payment recorded; {recorded.describe()}"
    if needs_refund and reversal is not None and reversal.change is not None:
        return f"{session_id}: missed refund recorded; {reversal.change.describe()}"
    return f"{session_id}: receipt link added"


def payments_reconcile(*, created_after: int | None = None) -> list[str]:
    """Compare Stripe's completed Checkout Sessions with the payments billing holds and
    repair any organization whose webhook was missed (its payment recorded, its plan
    recomputed). Running it again finds nothing more to do. Raises
    `stripe_gateway.StripeUnavailableError` when Stripe cannot be listed."""
    fixes = []
    for session in stripe_gateway.checkout_session_list_complete(created_after=created_after):
        fix = _session_reconcile(session)
        if fix:
            fixes.append(fix)
            logger.info("billing reconcile repaired", extra={"checkout_session_id": session["id"]})
    return fixes


def _receipt_fetch_enqueue(*, payment_id: int) -> None:
    from billing.tasks import payment_sync_from_stripe_task

    try:
        payment_sync_from_stripe_task.delay(payment_id=payment_id)
    except Exception:
        # The broker is down: the payment is committed, and the hourly reconcile adds the
        # receipt link.
        logger.exception("receipt fetch not enqueued", extra={"payment_id": payment_id})


def payment_sync_from_stripe(*, payment_id: int) -> str | None:
    """Fetch the payment's Checkout Session from Stripe and take what it says (its receipt,
    a refund billing missed); what changed, or None. After a new payment (the checkout event
    does not carry the receipt link; its charge does) and from the admin. Raises
    `stripe_gateway.StripeUnavailableError`."""
    payment = Payment.all_orgs.filter(pk=payment_id).first()
    if payment is None:
        return None
    session = stripe_gateway.checkout_session_retrieve(session_id=payment.checkout_session_id)
    return _session_reconcile(session)


# --- Operators' grants --------------------------------------------------------------------------


@transaction.atomic
def plan_grant_create(
    *, organization: Organization, plan: str, reason: str, granted_by: User | None
) -> PlanGrant:
    """Give the organization a plan by hand, saying why (kept with the grant)."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise ApplicationError(
            "Say why the plan is granted.", code="invalid_input", extra={"field": "reason"}
        )
    if plan not in PAID_PLAN_CODES:
        raise ApplicationError("Grant Pro or Team.", code="invalid_plan", extra={"field": "plan"})
    with organization_scope(organization):
        grant = PlanGrant(
            organization=organization, plan=PlanCode(plan), reason=reason, granted_by=granted_by
        )
        grant.full_clean()
        grant.save()
    change = organization_plan_recompute(organization=organization)
    logger.info(
        "plan granted",
        extra={"organization_id": organization.pk, "plan": plan, "plan_now": change.after},
    )
    return grant


@transaction.atomic
def plan_grant_revoke(*, grant: PlanGrant, revoked_by: User | None) -> PlanGrant:
    if grant.revoked_at is None:
        grant.revoked_at = timezone.now()
        grant.revoked_by = revoked_by
        grant.save(update_fields=["revoked_at", "revoked_by"])
        organization_plan_recompute(organization=grant.organization)
    return grant
