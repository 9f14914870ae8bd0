"""HTML pages of billing (owners only) and Stripe's webhook endpoint.

The pages are thin: they read through `billing.selectors` and write through
`billing.services`. The upgrade itself never happens here: the success page only shows what
the signed webhook has applied (and reloads itself while it has not).
"""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.mixins import OrgMemberRequiredMixin
from accounts.models import Role
from accounts.resolvers import current_organization_resolve
from accounts.selectors import organization_list_for_user
from billing import stripe_gateway
from billing.plans import PLANS
from billing.selectors import (
    LARGEST_PLAN,
    billing_enabled,
    organization_plan,
    organization_usage_rows,
    payment_for_session_get,
    payment_list,
    plan_grant_list_active,
    upgrade_plan_list,
)
from billing.services import checkout_session_start, stripe_event_receive
from clawtrace_site.api import error_body
from clawtrace_site.exceptions import ApplicationError
from clawtrace_site.views import ServiceErrorMixin

logger = logging.getLogger(__name__)

# Seconds between reloads of the success page while the webhook has not landed.
SUCCESS_PAGE_REFRESH_SECONDS = 3


class CheckoutForm(forms.Form):
    plan = forms.ChoiceField(choices=[(code, plan.name) for code, plan in PLANS.items()])


class _BillingPageMixin(OrgMemberRequiredMixin, ServiceErrorMixin):
    """Owners only: they pay. Another member gets 403 (they can see the organization anyway),
    a non-member the site's 404."""

    required_role = Role.OWNER

    def billing_page(
        self, request: HttpRequest, *, status: int = 200, error: str | None = None
    ) -> HttpResponse:
        organization = self.organization
        return render(
            request,
            "billing/billing.html",
            {
                "organization": organization,
                "membership": self.membership,
                "billing_enabled": billing_enabled(),
                "largest_plan": LARGEST_PLAN,
                "plan": organization_plan(organization=organization),
                "usage_rows": organization_usage_rows(organization=organization),
                "upgrade_plans": upgrade_plan_list(organization=organization)
                if billing_enabled()
                else [],
                "chosen_plan_code": request.GET.get("plan", ""),
                "payments": payment_list(organization=organization),
                "grants": plan_grant_list_active(organization=organization),
                "action_error": error,
            },
            status=status,
        )

    def service_error_response(self, request: HttpRequest, error: ApplicationError) -> HttpResponse:
        return self.billing_page(request, status=error.status_code, error=error.message)


class BillingPageView(_BillingPageMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return self.billing_page(request)


class CheckoutStartView(_BillingPageMixin, View):
    """The upgrade button: a Checkout Session for the plan, then 303 to Stripe's page."""

    def post(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        form = CheckoutForm(request.POST)
        if not form.is_valid():
            return self.billing_page(request, status=400, error="Choose Pro or Team.")
        slug = self.organization.slug
        success_url = request.build_absolute_uri(reverse("billing:success", args=[slug]))
        url = checkout_session_start(
            organization=self.organization,
            actor=request.user,
            plan_code=form.cleaned_data["plan"],
            # Stripe fills in the session's id, so the success page knows which payment to show.
            success_url=f"{success_url}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=request.build_absolute_uri(reverse("billing:cancel", args=[slug])),
        )
        return HttpResponseRedirect(url, status=303)


class CheckoutSuccessView(_BillingPageMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        session_id = request.GET.get("session_id", "")[:255]
        payment = (
            payment_for_session_get(organization=self.organization, session_id=session_id)
            if session_id
            else None
        )
        return render(
            request,
            "billing/success.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "plan": organization_plan(organization=self.organization),
                "payment": payment,
                "is_pending": payment is None,
                "refresh_seconds": SUCCESS_PAGE_REFRESH_SECONDS,
            },
        )


class CheckoutCancelView(_BillingPageMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return render(
            request,
            "billing/cancel.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "plan": organization_plan(organization=self.organization),
            },
        )


@login_required
def billing_current(request: HttpRequest) -> HttpResponse:
    """`/billing/`: where the pricing page's buttons go. The billing page of the organization
    the user works in when they own it, else of the first one they own (signup gives everyone
    a personal one)."""
    organization = current_organization_resolve(request)
    # (`role` is the user's own role there, annotated by the selector.)
    owned = organization_list_for_user(user=request.user).filter(role=Role.OWNER)
    if organization is None or not owned.filter(pk=organization.pk).exists():
        organization = owned.first()
    if organization is None:
        raise Http404("You own no organization to pay for.")
    url = reverse("billing:page", args=[organization.slug])
    plan = request.GET.get("plan")
    if plan in PLANS:
        url = f"{url}?plan={plan}#plan-{plan}"
    elif not billing_enabled():
        messages.info(request, "Billing is not configured on this server.")
    return redirect(url)


# --- Stripe's webhook ---------------------------------------------------------------------------


def _json_error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse(error_body(code, detail), status=status)


@csrf_exempt
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """`POST /billing/stripe/webhook/`: Stripe's events, signed.

    CSRF-exempt and without a session: the `Stripe-Signature` header is the credential. The
    view is not atomic (nor are requests: ATOMIC_REQUESTS is off) because the service commits
    the event's record, a failure included, and answers how Stripe should go on: 400 for a
    signature that does not verify (nothing stored), 200 for an event handled or not needing
    handling (a duplicate, an unknown type, an organization gone), 503 when processing failed
    in a way a retry can get past, which Stripe does on its own."""
    if request.method != "POST":
        response = _json_error(405, "method_not_allowed", "Stripe posts its events here.")
        response["Allow"] = "POST"
        return response
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        # Refused before anything else, as dj-stripe does: whatever else it is, it is not
        # from Stripe.
        return _json_error(400, "signature_missing", "No Stripe-Signature header.")
    if not settings.STRIPE_WEBHOOK_SECRET:
        # A signed delivery we cannot check yet: an operator fixes this, and Stripe keeps
        # retrying for three days meanwhile.
        return _json_error(503, "webhook_not_configured", "STRIPE_WEBHOOK_SECRET is not set.")
    try:
        payload = request.body
    except RequestDataTooBig:
        return _json_error(413, "payload_too_large", "The body is too large for an event.")
    try:
        event = stripe_gateway.webhook_event_verify(payload=payload, signature_header=signature)
    except stripe_gateway.WebhookSignatureError as error:
        logger.warning("stripe webhook refused", extra={"reason": error.code})
        return _json_error(400, error.code, str(error))
    outcome = stripe_event_receive(event=event)
    if outcome.status_code >= 400:
        response = _json_error(
            outcome.status_code,
            "processing_failed",
            "The event could not be processed now; it is recorded and a retry will run it.",
        )
        response["Retry-After"] = "60"
        return response
    return JsonResponse(
        {"received": True, "duplicate": outcome.duplicate, "result": outcome.result},
        status=outcome.status_code,
    )


billing_page = BillingPageView.as_view()
checkout_start = CheckoutStartView.as_view()
checkout_success = CheckoutSuccessView.as_view()
checkout_cancel = CheckoutCancelView.as_view()
