"""The billing pages: what an owner sees, who else may not, the upgrade button (a Checkout
Session, checked by what the fake Stripe received), success and cancel, and billing off."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.models import Organization, Role
from accounts.tests.factories import MembershipFactory, UserFactory
from billing.tests.conftest import PRICE_PRO, PRICE_TEAM
from billing.tests.factories import PaymentFactory, PlanGrantFactory
from devices.tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db


def _billing_url(organization: Organization, page: str = "page") -> str:
    return reverse(f"billing:{page}", args=[organization.slug])


def _html(response) -> str:
    return response.content.decode()


# --- The page -----------------------------------------------------------------------------------


def test_the_owner_sees_plan_usage_against_each_limit_and_upgrades(owner_client, org, member):
    DeviceFactory(organization=org)

    response = owner_client.get(_billing_url(org))

    assert response.status_code == 200
    html = _html(response)
    current = re.search(r'id="current-plan".*?</section>', html, re.S).group(0)
    assert "<strong>Free</strong>" in current
    usage = re.search(r'id="usage".*?</section>', html, re.S).group(0)
    assert re.search(r"Devices</th>\s*<td>1</td>\s*<td>1", usage)
    assert re.search(r"Projects</th>\s*<td>0</td>\s*<td>1", usage)
    assert re.search(r"Members</th>\s*<td>2</td>\s*<td>1", usage)  # owner and member
    assert "Over" in usage
    assert "Upgrade to Pro" in html and "Upgrade to Team" in html
    assert f'action="{_billing_url(org, "checkout")}"' in html
    assert "No payments yet." in html


def test_the_payment_history_lists_payments_with_their_receipts(owner_client, org):
    PaymentFactory(
        organization=org, plan="team", receipt_url="https://pay.stripe.example/receipts/r1"
    )
    PaymentFactory(organization=org, plan="pro", amount_total=7900, status="refunded")
    Organization.objects.filter(pk=org.pk).update(plan="team")

    html = _html(owner_client.get(_billing_url(org)))

    payments = re.search(r'id="payments".*?</section>', html, re.S).group(0)
    assert "199.00 USD" in payments and "79.00 USD" in payments
    assert 'href="https://pay.stripe.example/receipts/r1"' in payments
    assert "Refunded" in payments and "Paid" in payments
    # On Team, nothing is left to buy.
    assert "Upgrade to" not in html


def test_on_pro_only_team_is_offered(owner_client, org):
    PaymentFactory(organization=org, plan="pro")
    Organization.objects.filter(pk=org.pk).update(plan="pro")

    html = _html(owner_client.get(_billing_url(org)))

    assert "Upgrade to Team" in html and "Upgrade to Pro" not in html


def test_a_granted_plan_says_it_was_given(owner_client, org):
    PlanGrantFactory(organization=org, plan="team", reason="Design partner")
    Organization.objects.filter(pk=org.pk).update(plan="team")

    html = _html(owner_client.get(_billing_url(org)))

    assert "Team given by ClawTrace" in html
    assert "Design partner" not in html  # the reason is for operators


@pytest.mark.parametrize("page", ["page", "success", "cancel"])
def test_a_member_who_is_not_an_owner_gets_403(member_client, org, page):
    assert member_client.get(_billing_url(org, page)).status_code == 403


def test_an_admin_who_is_not_an_owner_gets_403(org, client_for):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)

    assert client_for(admin).get(_billing_url(org)).status_code == 403
    assert (
        client_for(admin).post(_billing_url(org, "checkout"), {"plan": "team"}).status_code == 403
    )


def test_another_organizations_billing_page_is_a_404(owner_client, other_org):
    assert owner_client.get(_billing_url(other_org)).status_code == 404
    assert (
        owner_client.post(_billing_url(other_org, "checkout"), {"plan": "team"}).status_code == 404
    )


def test_an_anonymous_visitor_is_sent_to_log_in(client, org):
    response = client.get(_billing_url(org))

    assert response.status_code == 302 and reverse("account_login") in response["Location"]


def test_the_org_nav_links_billing_for_owners_only(owner_client, member_client, org):
    link = f'href="{_billing_url(org)}"'

    assert link in _html(owner_client.get(reverse("accounts:org_home", args=[org.slug])))
    assert link in _html(owner_client.get(reverse("accounts:org_settings", args=[org.slug])))
    assert link not in _html(member_client.get(reverse("accounts:org_home", args=[org.slug])))
    assert link not in _html(member_client.get(reverse("accounts:org_settings", args=[org.slug])))


# --- Billing off --------------------------------------------------------------------------------


@pytest.mark.usefixtures("billing_off")
def test_with_billing_off_the_page_says_so_and_offers_nothing_to_buy(owner_client, org, member):
    html = _html(owner_client.get(_billing_url(org)))

    assert "Billing is not configured" in html
    assert "every organization has the\n      Team plan's limits" in html
    assert "Upgrade to" not in html and "<form" not in html.split('id="billing-off"')[1]
    # The largest plan's limits apply: two members of unlimited.
    assert re.search(r"Members</th>\s*<td>2</td>\s*<td>Unlimited", html)


@pytest.mark.usefixtures("billing_off")
def test_with_billing_off_a_checkout_is_refused(owner_client, org, fake_stripe):
    response = owner_client.post(_billing_url(org, "checkout"), {"plan": "team"})

    assert response.status_code == 409
    assert "Billing is not configured on this server." in _html(response)
    assert not fake_stripe.requests


# --- Upgrading: the Checkout Session ------------------------------------------------------------


def test_upgrading_creates_a_checkout_session_and_redirects_to_it(owner_client, org, fake_stripe):
    response = owner_client.post(_billing_url(org, "checkout"), {"plan": "team"})

    assert response.status_code == 303
    (request,) = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    session = next(iter(fake_stripe.sessions.values()))
    assert response["Location"] == session["url"] == f"{fake_stripe.url}/pay/{session['id']}"
    assert request.authorization == "Bearer sk_test_clawtrace"
    params = request.params
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == str(org.pk)
    assert params["metadata"]["plan"] == "team"
    assert params["line_items"] == [{"price": PRICE_TEAM, "quantity": "1"}]
    assert params["customer_email"] == "owner@alpha.example"
    assert params["success_url"] == (
        f"http://testserver{_billing_url(org, 'success')}?session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert params["cancel_url"] == f"http://testserver{_billing_url(org, 'cancel')}"
    # Starting a checkout changes nothing: only the signed webhook upgrades.
    org.refresh_from_db()
    assert org.plan == "free"


def test_upgrading_to_pro_charges_pros_price(owner_client, org, fake_stripe):
    owner_client.post(_billing_url(org, "checkout"), {"plan": "pro"})

    (request,) = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert request.params["line_items"][0]["price"] == PRICE_PRO
    assert request.params["metadata"]["plan"] == "pro"


@pytest.mark.parametrize("plan", ["free", "gold", ""])
def test_a_plan_that_cannot_be_bought_is_refused(owner_client, org, fake_stripe, plan):
    response = owner_client.post(_billing_url(org, "checkout"), {"plan": plan})

    assert response.status_code == 400
    assert not fake_stripe.requests


def test_buying_the_plan_the_organization_has_is_refused(owner_client, org, fake_stripe):
    Organization.objects.filter(pk=org.pk).update(plan="team")

    response = owner_client.post(_billing_url(org, "checkout"), {"plan": "pro"})

    assert response.status_code == 409
    assert "Alpha Labs is on Team already." in _html(response)
    assert not fake_stripe.requests


def test_a_plan_without_a_configured_price_cannot_be_bought(owner_client, org, settings):
    settings.STRIPE_PRICE_TEAM = ""

    response = owner_client.post(_billing_url(org, "checkout"), {"plan": "team"})

    assert response.status_code == 503
    assert "its Stripe price is not configured" in _html(response)


def test_stripe_being_down_shows_the_page_again_with_a_503(owner_client, org, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # the discard port: nothing listens

    response = owner_client.post(_billing_url(org, "checkout"), {"plan": "team"})

    assert response.status_code == 503
    assert "nothing was charged" in _html(response)


def test_a_stripe_error_answer_is_shown_without_a_500(owner_client, org, settings):
    settings.STRIPE_SECRET_KEY = "rk_wrong_key"  # the fake answers 401 like Stripe

    response = owner_client.post(_billing_url(org, "checkout"), {"plan": "team"})

    assert response.status_code == 503


# --- After Checkout -----------------------------------------------------------------------------


def test_the_success_page_waits_for_the_webhook_and_reloads_itself(owner_client, org):
    response = owner_client.get(_billing_url(org, "success"), {"session_id": "cs_test_pending"})

    html = _html(response)
    assert response.status_code == 200
    assert "waiting for Stripe to confirm" in html
    assert '<meta http-equiv="refresh" content="3">' in html
    assert "Current plan: <strong>Free</strong>" in html
    org.refresh_from_db()
    assert org.plan == "free"  # the page never upgrades by itself


def test_the_success_page_shows_the_plan_once_the_webhook_applied_it(owner_client, org):
    payment = PaymentFactory(organization=org, plan="team")
    Organization.objects.filter(pk=org.pk).update(plan="team")

    html = _html(
        owner_client.get(_billing_url(org, "success"), {"session_id": payment.checkout_session_id})
    )

    assert "Payment received" in html and "<strong>Team</strong>" in html
    assert "http-equiv" not in html


def test_the_success_page_ignores_another_organizations_session(owner_client, org, other_org):
    payment = PaymentFactory(organization=other_org, plan="team")

    html = _html(
        owner_client.get(_billing_url(org, "success"), {"session_id": payment.checkout_session_id})
    )

    assert "waiting for Stripe" in html


def test_the_cancel_page_says_nothing_was_charged(owner_client, org):
    html = _html(owner_client.get(_billing_url(org, "cancel")))

    assert "Nothing was charged" in html and "<strong>Free</strong>" in html


# --- From the pricing page ----------------------------------------------------------------------


def test_pricing_buttons_lead_a_signed_in_user_to_billing(owner_client, org):
    html = _html(owner_client.get(reverse("pricing")))

    assert 'href="/billing/?plan=team"' in html and 'href="/billing/?plan=pro"' in html


def test_billing_leads_to_the_billing_page_of_the_organization_the_user_owns(owner_client, org):
    response = owner_client.get("/billing/", {"plan": "team"})

    assert response.status_code == 302
    assert response["Location"] == f"{_billing_url(org)}?plan=team#plan-team"


def test_billing_picks_an_owned_organization_over_one_the_user_is_only_a_member_of(
    org, other_org, client_for
):
    user = UserFactory()
    MembershipFactory(organization=other_org, user=user, role=Role.MEMBER)
    MembershipFactory(organization=org, user=user, role=Role.OWNER)
    client = client_for(user)
    client.get(reverse("accounts:org_home", args=[other_org.slug]))  # works in other_org now

    response = client.get("/billing/")

    assert response["Location"] == _billing_url(org)


def test_the_chosen_plan_is_highlighted_on_the_billing_page(owner_client, org):
    html = _html(owner_client.get(_billing_url(org), {"plan": "team"}))

    assert 'class="card plan plan-featured" id="plan-team"' in html
