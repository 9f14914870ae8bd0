"""What billing knows, as facts: payments, their reversals, operators' grants, and every Stripe
event received.

An organization's paid plan is never stored as a decision of its own: it is derived from these
facts each time one arrives (`billing.services.organization_plan_recompute`) and written to
`Organization.plan`. The best plan among the payments still paid and the grants not revoked
applies, else Free. So the order in which Stripe delivers events does not matter: a refund that
arrives before its checkout is kept as a `PaymentReversal` (keyed by the payment intent, since
the charge does not name the organization) and the checkout lands already refunded.

Plans themselves are data (`billing/plans.py`).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import PlanCode
from accounts.tenancy import OrgOwnedModel


class PaymentStatus(models.TextChoices):
    PAID = "paid", "Paid"
    REFUNDED = "refunded", "Refunded"
    DISPUTED_LOST = "disputed_lost", "Dispute lost"


# Plans a Checkout Session can buy: every plan but Free.
PAID_PLAN_CODES = [PlanCode.PRO, PlanCode.TEAM]


class Payment(OrgOwnedModel):
    """One paid Checkout Session (a one-time payment for a plan)."""

    checkout_session_id = models.CharField(max_length=255, unique=True, editable=False)
    payment_intent_id = models.CharField(max_length=255, blank=True, editable=False)
    charge_id = models.CharField(max_length=255, blank=True, editable=False)
    plan = models.CharField(max_length=20, choices=PlanCode.choices)
    # In the currency's smallest unit, as Stripe sends it (19900 for $199.00).
    amount_total = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PAID
    )
    receipt_url = models.URLField(max_length=2000, blank=True)
    livemode = models.BooleanField(default=False)
    paid_at = models.DateTimeField(default=timezone.now)
    reversed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["-paid_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "status"], name="billing_payment_org_status"),
            # Refunds and disputes name the payment intent, not the session.
            models.Index(fields=["payment_intent_id"], name="billing_payment_intent"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(plan__in=PAID_PLAN_CODES), name="billing_payment_plan_paid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=PaymentStatus.values),
                name="billing_payment_status_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.checkout_session_id} ({self.plan}, {self.status})"

    @property
    def amount(self) -> Decimal:
        # Every currency we sell in has two decimals (the Prices are USD).
        return (Decimal(self.amount_total) / 100).quantize(Decimal("0.01"))

    @property
    def is_paid(self) -> bool:
        return self.status == PaymentStatus.PAID


class ReversalKind(models.TextChoices):
    REFUNDED = "refunded", "Refunded in full"
    DISPUTED_LOST = "disputed_lost", "Dispute lost"


class PaymentReversal(models.Model):
    """A payment taken back: a full refund or a lost dispute, keyed by its payment intent.

    Not org-owned: the charge and the dispute Stripe sends do not name the organization, and
    the payment they reverse may not have arrived yet. A `Payment` with the same payment intent
    takes its status from here, whenever either of them lands."""

    payment_intent_id = models.CharField(max_length=255, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=ReversalKind.choices)
    charge_id = models.CharField(max_length=255, blank=True, editable=False)
    stripe_event_id = models.CharField(max_length=255, blank=True, editable=False)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=ReversalKind.values),
                name="billing_paymentreversal_kind_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.payment_intent_id} {self.kind}"


class PlanGrant(OrgOwnedModel):
    """A plan an operator gives by hand (a partner, a support gesture), with the reason why.
    Counts like a paid payment until revoked."""

    plan = models.CharField(max_length=20, choices=PlanCode.choices)
    reason = models.TextField()
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(OrgOwnedModel.Meta):
        ordering = ["-granted_at", "-id"]
        indexes = [
            models.Index(
                fields=["organization", "revoked_at"], name="billing_plangrant_org_active"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(plan__in=PAID_PLAN_CODES), name="billing_plangrant_plan_paid"
            ),
            # A grant nobody can explain later is the one an auditor asks about.
            models.CheckConstraint(
                condition=~models.Q(reason=""), name="billing_plangrant_reason_required"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan} for {self.organization_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class StripeEvent(models.Model):
    """Every signed event Stripe delivered, stored before it is processed (the unique id makes
    a replay, or the same event delivered to two workers at once, processed exactly once).

    Not org-owned: an unknown event type names no organization, and the organization an event
    names may be gone (the event stays, for the record)."""

    stripe_id = models.CharField(max_length=255, unique=True, editable=False)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    livemode = models.BooleanField(default=False)
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="stripe_events",
    )
    received_at = models.DateTimeField(default=timezone.now)
    # Set once the event needs nothing more (applied, ignored, or unusable as sent); left empty
    # after an error that a later delivery could get past, so that Stripe's retry runs it.
    processed_at = models.DateTimeField(null=True, blank=True)
    # What processing did: "upgraded acme to team", "ignored: unknown type", "error: ...".
    result = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["type", "received_at"], name="billing_stripeevent_type"),
            models.Index(fields=["organization", "received_at"], name="billing_stripeevent_org"),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_id} ({self.type})"

    @property
    def is_error(self) -> bool:
        return self.result.startswith("error:")
