"""Public pages: the landing page and the pricing page.

Both are read-only, so they answer GET/HEAD only; anything else is a 405, not a form error,
because there is no form on them.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from billing.plans import PLANS, PRO

# The plan the pricing page recommends: the one that fits a single developer using agents daily.
FEATURED_PLAN_CODE = PRO.code


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/landing.html", {"plans": list(PLANS.values())})


@require_safe
def pricing(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "pages/pricing.html",
        {"plans": list(PLANS.values()), "featured_plan_code": FEATURED_PLAN_CODE},
    )
