import pytest
from django.test import override_settings

from accounts.models import PlanCode
from billing.plans import FREE, TEAM
from billing.selectors import LARGEST_PLAN, organization_plan

pytestmark = pytest.mark.django_db


def test_with_billing_off_every_organization_has_the_largest_plans_limits(org):
    org.plan = PlanCode.FREE
    with override_settings(BILLING_ENABLED=False):
        assert organization_plan(organization=org) == LARGEST_PLAN == TEAM


def test_with_billing_on_the_organization_has_the_plan_it_paid_for(org):
    org.plan = PlanCode.FREE
    with override_settings(BILLING_ENABLED=True):
        assert organization_plan(organization=org) == FREE
