from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Organization, PlanCode
from billing.plans import PLANS, plan_get

pytestmark = pytest.mark.django_db


def test_every_plan_code_an_organization_can_store_has_exactly_one_plan():
    assert set(PLANS) == set(PlanCode.values)
    for code, label in PlanCode.choices:
        assert plan_get(code).name == label


@pytest.mark.parametrize("code", PlanCode.values)
def test_the_overview_shows_the_organizations_plan(owner_client, org, code):
    Organization.objects.filter(pk=org.pk).update(plan=code)
    plan = plan_get(code)

    html = owner_client.get(reverse("accounts:org_home", args=[org.slug])).content.decode()

    assert f"<strong>{plan.name}</strong>" in html
    assert plan.tagline.replace("'", "&#x27;") in html
    assert f"{plan.retention_days} days of history" in html


def test_the_settings_page_shows_the_plans_price_and_features(member_client, org):
    Organization.objects.filter(pk=org.pk).update(plan=PlanCode.TEAM)
    team = plan_get(PlanCode.TEAM)

    html = member_client.get(reverse("accounts:org_settings", args=[org.slug])).content.decode()

    assert f"${team.price_usd} one-time" in html
    for feature in team.features:
        assert f"<li>{feature}</li>" in html
    assert reverse("pricing") in html


def test_the_free_plan_shows_no_price(owner_client, org):
    html = owner_client.get(reverse("accounts:org_settings", args=[org.slug])).content.decode()
    assert "<strong>Free</strong>" in html
    assert "one-time" not in html


def test_with_billing_off_the_pages_show_the_largest_plans_limits_and_say_why(
    owner_client, org, billing_off
):
    html = owner_client.get(reverse("accounts:org_home", args=[org.slug])).content.decode()

    assert "<strong>Team</strong>" in html
    assert "billing is off on this server" in html
