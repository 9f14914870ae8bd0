"""Public pages: the landing page and the pricing page.

Both are read-only, so they answer GET/HEAD only; anything else is a 405, not a form error,
because there is no form on them.
"""

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from billing.plans import PLANS, PRO, Plan

# The plan the pricing page recommends: the one that fits a single developer using agents daily.
FEATURED_PLAN_CODE = PRO.code


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/landing.html", {"plans": list(PLANS.values())})


def _plan_href(request: HttpRequest, plan: Plan) -> str:
    """Where a plan's button goes: the billing page of the user's organization (through
    `/billing/`, which picks one they own), or signup first, coming back there after."""
    billing = f"{reverse('billing:current')}?{urlencode({'plan': plan.code})}"
    if request.user.is_authenticated:
        return billing
    return f"{reverse('account_signup')}?{urlencode({'plan': plan.code, 'next': billing})}"


@require_safe
def pricing(request: HttpRequest) -> HttpResponse:
    plans = list(PLANS.values())
    return render(
        request,
        "pages/pricing.html",
        {
            "plans": plans,
            "plan_offers": [(plan, _plan_href(request, plan)) for plan in plans],
            "featured_plan_code": FEATURED_PLAN_CODE,
        },
    )
