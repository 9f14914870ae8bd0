"""Operators' admin for billing: payments, reversals, Stripe's webhook events with what
processing made of them, and plans granted by hand.

Everything Stripe sent is read-only (Stripe is the source of truth; a row edited here would
disagree with it). Operators act through admin actions that call the services: replay an
event, re-sync a payment from Stripe, grant a plan (with a reason) and revoke a grant. The
organization's plan column is derived from those facts, so the Organization admin shows it
read-only, with the limits in force and the table of plans beside it.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.admin import OrganizationAdmin
from accounts.models import Organization
from billing.models import PAID_PLAN_CODES, Payment, PaymentReversal, PlanGrant, StripeEvent
from billing.plans import PLANS
from billing.selectors import billing_enabled, organization_plan, organization_usage
from billing.services import (
    payment_sync_from_stripe,
    plan_grant_create,
    plan_grant_revoke,
    stripe_event_replay,
)
from billing.stripe_gateway import StripeUnavailableError
from clawtrace_site.exceptions import ApplicationError


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(_ReadOnlyAdmin):
    list_display = ["checkout_session_id", "organization", "plan", "amount_display", "status"]
    list_display += ["paid_at", "reversed_at"]
    list_filter = ["status", "plan", "livemode", "paid_at"]
    list_select_related = ["organization"]
    search_fields = [
        "checkout_session_id",
        "payment_intent_id",
        "charge_id",
        "organization__name",
        "organization__slug",
    ]
    readonly_fields = [
        "organization",
        "checkout_session_id",
        "payment_intent_id",
        "charge_id",
        "plan",
        "amount_display",
        "status",
        "receipt_url",
        "livemode",
        "paid_at",
        "reversed_at",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields
    actions = ["sync_from_stripe"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Payment]:
        return Payment.all_orgs.select_related("organization")

    @admin.display(description="Amount", ordering="amount_total")
    def amount_display(self, obj: Payment) -> str:
        return f"{obj.amount} {obj.currency.upper()}"

    @admin.action(description="Re-sync the selected payments from Stripe")
    def sync_from_stripe(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        for payment in queryset:
            try:
                change = payment_sync_from_stripe(payment_id=payment.pk)
            except StripeUnavailableError as error:
                self.message_user(request, f"{payment}: {error}", messages.ERROR)
                continue
            self.message_user(
                request, f"{payment.checkout_session_id}: {change or 'already in step'}."
            )


@admin.register(PaymentReversal)
class PaymentReversalAdmin(_ReadOnlyAdmin):
    list_display = ["payment_intent_id", "kind", "charge_id", "stripe_event_id", "occurred_at"]
    list_filter = ["kind", "occurred_at"]
    search_fields = ["payment_intent_id", "charge_id", "stripe_event_id"]
    readonly_fields = list_display
    fields = list_display


@admin.register(StripeEvent)
class StripeEventAdmin(_ReadOnlyAdmin):
    list_display = ["stripe_id", "type", "organization", "received_at", "processed_at"]
    list_display += ["attempts", "result"]
    list_filter = ["type", ("processed_at", admin.EmptyFieldListFilter), "received_at"]
    list_select_related = ["organization"]
    search_fields = ["stripe_id", "type", "result", "organization__slug"]
    readonly_fields = [
        "stripe_id",
        "type",
        "organization",
        "livemode",
        "received_at",
        "processed_at",
        "attempts",
        "result",
        "payload_display",
    ]
    fields = readonly_fields
    actions = ["replay"]
    date_hierarchy = "received_at"

    @admin.display(description="Payload")
    def payload_display(self, obj: StripeEvent):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    @admin.action(description="Replay the selected events (process them again)")
    def replay(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        for stripe_event in queryset.order_by("received_at", "id"):
            outcome = stripe_event_replay(stripe_event=stripe_event)
            level = messages.ERROR if outcome.result.startswith("error:") else messages.SUCCESS
            self.message_user(request, f"{stripe_event.stripe_id}: {outcome.result}", level)


class PlanGrantForm(forms.ModelForm):
    plan = forms.ChoiceField(choices=[(code, PLANS[code].name) for code in PAID_PLAN_CODES])

    class Meta:
        model = PlanGrant
        fields = ["organization", "plan", "reason"]
        help_texts = {"reason": "Required: why this organization gets the plan without paying."}


GRANT_FIELDS_AFTER_CREATION = [
    "organization",
    "plan",
    "reason",
    "granted_by",
    "granted_at",
    "revoked_at",
    "revoked_by",
]


@admin.register(PlanGrant)
class PlanGrantAdmin(admin.ModelAdmin):
    """Grant a plan by hand (the add form); a grant is then only ever revoked, never edited,
    so that its record says what was given, by whom and why."""

    form = PlanGrantForm
    list_display = ["organization", "plan", "reason", "granted_by", "granted_at", "revoked_at"]
    list_filter = ["plan", ("revoked_at", admin.EmptyFieldListFilter), "granted_at"]
    list_select_related = ["organization", "granted_by"]
    search_fields = ["organization__name", "organization__slug", "reason"]
    # (Not autocomplete: its widget fails on a malformed id in the query string or the form,
    # where the raw id widget shows an empty label; the hostile-input walk found it.)
    raw_id_fields = ["organization"]
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PlanGrant]:
        return PlanGrant.all_orgs.select_related("organization", "granted_by", "revoked_by")

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ["organization", "plan", "reason"]
        return [*GRANT_FIELDS_AFTER_CREATION]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # revoke instead: the record of the grant stays

    def save_model(self, request: HttpRequest, obj: PlanGrant, form, change: bool) -> None:
        if change:
            return
        grant = plan_grant_create(
            organization=form.cleaned_data["organization"],
            plan=form.cleaned_data["plan"],
            reason=form.cleaned_data["reason"],
            granted_by=request.user,
        )
        obj.pk = grant.pk
        obj.granted_at, obj.granted_by = grant.granted_at, grant.granted_by

    @admin.action(description="Revoke the selected grants")
    def revoke(self, request: HttpRequest, queryset: QuerySet[PlanGrant]) -> None:
        revoked = 0
        for grant in queryset.filter(revoked_at__isnull=True):
            try:
                plan_grant_revoke(grant=grant, revoked_by=request.user)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.WARNING)
            else:
                revoked += 1
        self.message_user(request, f"Revoked {revoked} grant(s).", messages.SUCCESS)


class PaymentInline(admin.TabularInline):
    model = Payment
    fields = ["checkout_session_id", "plan", "amount_total", "currency", "status", "paid_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class PlanGrantInline(admin.TabularInline):
    model = PlanGrant
    fields = ["plan", "reason", "granted_by", "granted_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # grants are made on their own page, where the reason is required


# accounts' Organization admin, with billing's part added: accounts may not import billing
# (style.md 1), so billing registers the admin again with its panel rather than accounts
# reaching up for it.
admin.site.unregister(Organization)


@admin.register(Organization)
class BillingOrganizationAdmin(OrganizationAdmin):
    fields = [*OrganizationAdmin.fields, "plan_limits"]
    inlines = [*OrganizationAdmin.inlines, PaymentInline, PlanGrantInline]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        # The plan is derived from payments and grants (billing.services): grant one instead.
        return [*super().get_readonly_fields(request, obj), "plan", "plan_limits"]

    @admin.display(description="Plans and limits")
    def plan_limits(self, obj: Organization):
        if obj.pk is None:
            return "-"
        in_force = organization_plan(organization=obj)
        usage = organization_usage(organization=obj)
        note = (
            f"Limits in force: {in_force.name}."
            if billing_enabled()
            else f"Billing is off: every organization has {in_force.name}'s limits."
        )
        rows = format_html_join(
            "",
            "<tr{}><td>{}</td><td>${}</td><td>{}</td><td>{}</td><td>{}</td><td>{} days</td></tr>",
            (
                (
                    mark_safe(' style="font-weight:bold"') if plan == in_force else "",
                    plan.name + (" (in force)" if plan == in_force else ""),
                    plan.price_usd,
                    _limit(plan.max_devices),
                    _limit(plan.max_projects),
                    _limit(plan.max_members),
                    plan.retention_days,
                )
                for plan in PLANS.values()
            ),
        )
        return format_html(
            "<p>{} Uses {} device(s), {} project(s), {} member(s).</p>"
            "<table><thead><tr><th>Plan</th><th>Price</th><th>Devices</th><th>Projects</th>"
            "<th>Members</th><th>History</th></tr></thead><tbody>{}</tbody></table>",
            note,
            usage["devices"],
            usage["projects"],
            usage["members"],
            rows,
        )


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)
