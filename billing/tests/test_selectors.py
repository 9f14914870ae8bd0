import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.models import PlanCode
from analytics.services.rollups import rollups_rebuild
from analytics.tests.factories import EventFactory
from billing.plans import FREE, TEAM
from billing.selectors import LARGEST_PLAN, organization_plan, organization_usage
from devices.tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db


def test_with_billing_off_every_organization_has_the_largest_plans_limits(org):
    org.plan = PlanCode.FREE
    with override_settings(BILLING_ENABLED=False):
        assert organization_plan(organization=org) == LARGEST_PLAN == TEAM


def test_with_billing_on_the_organization_has_the_plan_it_paid_for(org):
    org.plan = PlanCode.FREE
    with override_settings(BILLING_ENABLED=True):
        assert organization_plan(organization=org) == FREE


def test_usage_counts_linked_devices_distinct_projects_and_members(org, owner):
    device = DeviceFactory(organization=org)
    DeviceFactory(organization=org, revoked_at=timezone.now())
    for project in ("api", "api", "web", None):
        EventFactory(organization=org, device=device, project=project)
    rollups_rebuild(organization=org)

    assert organization_usage(organization=org) == {"devices": 1, "projects": 2, "members": 1}
