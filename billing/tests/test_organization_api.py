"""`GET /api/v1/organization` with an organization API key: the organization, the plan whose
limits apply, those limits (null: unlimited) and its usage of each; documented in the OpenAPI
document; 401 without a key; a key sees its own organization only."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Organization, PlanCode, Role
from accounts.tests.factories import MembershipFactory
from analytics.services import api_key_revoke, rollups_rebuild
from analytics.tests.factories import EventFactory, api_key_with_value
from devices.tests.factories import DeviceFactory, device_with_secret

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _billing_on(settings):
    settings.BILLING_ENABLED = True


def _client(value: str | None) -> APIClient:
    client = APIClient()
    if value:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {value}")
    return client


def _get(org: Organization, **params):
    return _client(api_key_with_value(org)[1]).get("/api/v1/organization", params)


@pytest.fixture
def used(org):
    """One linked device and a revoked one, two projects (one hidden on Free) and the owner."""
    laptop = DeviceFactory(organization=org)
    DeviceFactory(organization=org, revoked_at=timezone.now())
    for project in ("api", "web", None):
        EventFactory(organization=org, device=laptop, project=project)
    rollups_rebuild(organization=org)
    return org


def test_a_free_organization_answers_its_plan_limits_and_usage(used):
    response = _get(used)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "id": used.pk,
        "slug": "alpha-labs",
        "name": "Alpha Labs",
        "plan": "free",
        "limits": {"devices": 1, "projects": 1, "members": 1, "retention_days": 7},
        "usage": {"devices": 1, "projects": 2, "members": 1},
    }


def test_team_has_no_project_or_member_limit(used):
    Organization.objects.filter(pk=used.pk).update(plan=PlanCode.TEAM)
    body = _get(used).json()
    assert body["plan"] == "team"
    assert body["limits"] == {"devices": 3, "projects": None, "members": None, "retention_days": 90}


def test_with_billing_off_every_organization_answers_the_largest_plans_limits(used, settings):
    settings.BILLING_ENABLED = False
    body = _get(used).json()
    assert body["plan"] == "team" and body["limits"]["devices"] == 3


def test_no_key_an_unknown_or_revoked_key_a_device_secret_or_a_session_is_a_401(
    org, owner, client_for
):
    api_key, value = api_key_with_value(org)
    assert _client(None).get("/api/v1/organization").status_code == 401
    assert _client("cto_" + "a" * 52).get("/api/v1/organization").status_code == 401
    assert _client(device_with_secret(org)[1]).get("/api/v1/organization").status_code == 401
    assert client_for(owner).get("/api/v1/organization").status_code == 401
    assert _client(value).get("/api/v1/organization").status_code == 200
    api_key_revoke(api_key=api_key, actor=None)
    refused = _client(value).get("/api/v1/organization")
    assert refused.status_code == 401
    assert set(refused.json()) == {"error", "detail"}
    assert refused["WWW-Authenticate"].startswith("Bearer")


def test_a_key_of_one_organization_never_sees_another(org, other_org):
    Organization.objects.filter(pk=other_org.pk).update(plan=PlanCode.TEAM)
    DeviceFactory.create_batch(3, organization=other_org)
    MembershipFactory(organization=other_org, role=Role.MEMBER)

    mine, theirs = _get(org).json(), _get(other_org).json()

    assert (mine["slug"], mine["plan"], mine["usage"]) == (
        "alpha-labs",
        "free",
        {"devices": 0, "projects": 0, "members": 1},
    )
    assert (theirs["slug"], theirs["plan"], theirs["usage"]) == (
        "bravo-secret-works",
        "team",
        {"devices": 3, "projects": 0, "members": 2},
    )


def test_the_endpoint_takes_no_parameters(org):
    response = _get(org, organization="bravo-secret-works")
    assert response.status_code == 400
    assert response.json()["field"] == "organization"


def test_it_is_in_the_openapi_document_with_its_response_schema(client):
    document = client.get("/api/schema/", {"format": "json"}).json()
    operation = document["paths"]["/api/v1/organization"]["get"]
    assert {"organizationApiKey": []} in operation["security"]
    assert "401" in operation["responses"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    component = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert set(component["properties"]) == {"id", "slug", "name", "plan", "limits", "usage"}
