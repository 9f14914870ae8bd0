"""Billing answers accounts' limits registry from the plans table: each plan's counts and days,
the cheapest plan that allows more of each, and the largest plan's limits with billing off."""

import pytest
from django.test import override_settings

from accounts.limits import PlanOffer, organization_limits
from accounts.models import Organization, PlanCode
from billing.limits import organization_limits_of_plan, plan_offer_for_more
from billing.plans import FREE, PRO, TEAM

pytestmark = pytest.mark.django_db


def _on(org: Organization, code: str) -> Organization:
    org.plan = code
    return org


def test_billing_is_the_registered_provider(org):
    with override_settings(BILLING_ENABLED=True):
        assert organization_limits(organization=org) == organization_limits_of_plan(
            organization=org
        )


@pytest.mark.parametrize("plan", [FREE, PRO, TEAM])
def test_the_limits_are_the_plans_own(org, plan):
    with override_settings(BILLING_ENABLED=True):
        limits = organization_limits(organization=_on(org, plan.code))
    assert (limits.plan_code, limits.plan_name) == (plan.code, plan.name)
    assert (limits.max_devices, limits.max_projects, limits.max_members) == (
        plan.max_devices,
        plan.max_projects,
        plan.max_members,
    )
    assert limits.retention_days == plan.retention_days


def test_each_limit_names_the_cheapest_plan_that_allows_more():
    assert plan_offer_for_more(plan=FREE, resource="devices") == PlanOffer("Team", 3)
    assert plan_offer_for_more(plan=FREE, resource="projects") == PlanOffer("Pro", None)
    assert plan_offer_for_more(plan=FREE, resource="members") == PlanOffer("Team", None)
    assert plan_offer_for_more(plan=PRO, resource="devices") == PlanOffer("Team", 3)
    assert plan_offer_for_more(plan=PRO, resource="projects") is None
    for resource in ("devices", "projects", "members"):
        assert plan_offer_for_more(plan=TEAM, resource=resource) is None


def test_a_free_organization_is_sent_to_its_billing_page(org, settings):
    settings.SITE_URL = "https://clawtrace.example/"
    with override_settings(BILLING_ENABLED=True):
        limits = organization_limits(organization=org)
    assert limits.upgrade_url == "https://clawtrace.example/o/alpha-labs/billing/"
    assert set(limits.upgrades) == {"devices", "projects", "members"}


def test_with_billing_off_everyone_has_teams_limits_and_nothing_to_buy(org):
    with override_settings(BILLING_ENABLED=False):
        limits = organization_limits(organization=_on(org, PlanCode.FREE))
    assert (limits.plan_code, limits.max_devices, limits.retention_days) == ("team", 3, 90)
    assert limits.upgrades == {} and limits.upgrade_url == ""
