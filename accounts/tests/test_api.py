from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Membership, Organization, Role, User
from accounts.tenancy import organization_scope
from accounts.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _membership_id(organization: Organization, user: User) -> int:
    with organization_scope(organization):
        return Membership.objects.get(user=user).pk


def _detail_url(organization: Organization, membership_id: int) -> str:
    return reverse("api:membership_detail", args=[organization.slug, membership_id])


def _assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) <= {"error", "detail", "field"}
    assert body["error"] == code
    assert body["detail"]
    return body


def test_organization_list_shows_only_the_users_organizations_with_roles(
    api_client_for, owner, org, other_org
):
    response = api_client_for(owner).get(reverse("api:organization_list"))
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(o["slug"], o["role"]) for o in results] == [(org.slug, Role.OWNER)]


def test_member_list_is_paginated_and_scoped(api_client_for, owner, org, member, other_org):
    response = api_client_for(owner).get(reverse("api:membership_list", args=[org.slug]))
    body = response.json()
    assert body["count"] == 2
    assert {m["email"] for m in body["results"]} == {"owner@alpha.example", "member@alpha.example"}


def test_api_requires_authentication(client, org):
    response = client.get(reverse("api:membership_list", args=[org.slug]))
    _assert_error_shape(response, 403, "not_authenticated")


def test_other_orgs_members_are_a_json_404(api_client_for, owner, org, other_org, other_owner):
    client = api_client_for(owner)
    _assert_error_shape(
        client.get(reverse("api:membership_list", args=[other_org.slug])), 404, "not_found"
    )
    other_id = _membership_id(other_org, other_owner)
    for response in (
        client.get(_detail_url(org, other_id)),
        client.patch(_detail_url(org, other_id), {"role": "member"}, format="json"),
        client.delete(_detail_url(org, other_id)),
    ):
        error = _assert_error_shape(response, 404, "not_found")
        assert "bravo" not in str(error).lower()
    assert _membership_id(other_org, other_owner)


def test_owner_changes_a_role_through_the_api(api_client_for, owner, org, member):
    response = api_client_for(owner).patch(
        _detail_url(org, _membership_id(org, member)), {"role": "admin"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["role"] == "admin"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "emperor"}, "role"),
        ({}, "role"),
        ({"role": ["admin"]}, "role"),
        ({"role": "admin", "organization": 999}, "organization"),
    ],
)
def test_bad_role_input_is_a_400_naming_the_field(api_client_for, owner, org, member, body, field):
    response = api_client_for(owner).patch(
        _detail_url(org, _membership_id(org, member)), body, format="json"
    )
    error = _assert_error_shape(response, 400, "invalid_value")
    assert error["field"] == field
    with organization_scope(org):
        assert Membership.objects.get(user=member).role == Role.MEMBER


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2, 3]", "application/json"),
        ("role=admin", "application/x-www-form-urlencoded"),
        ("\x00\xff", "application/json"),
    ],
)
def test_malformed_bodies_are_4xx_json(api_client_for, owner, org, member, payload, content_type):
    response = api_client_for(owner).generic(
        "PATCH", _detail_url(org, _membership_id(org, member)), payload, content_type
    )
    assert 400 <= response.status_code < 500
    assert {"error", "detail"} <= set(response.json()) <= {"error", "detail", "field"}


def test_demoting_the_last_owner_through_the_api_is_a_409(api_client_for, owner, org):
    response = api_client_for(owner).patch(
        _detail_url(org, _membership_id(org, owner)), {"role": "member"}, format="json"
    )
    _assert_error_shape(response, 409, "last_owner")


def test_a_member_cannot_write_through_the_api(api_client_for, owner, org, member):
    response = api_client_for(member).patch(
        _detail_url(org, _membership_id(org, owner)), {"role": "member"}, format="json"
    )
    _assert_error_shape(response, 403, "permission_denied")


def test_admin_removing_an_owner_is_refused_by_the_service(api_client_for, owner, org):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    response = api_client_for(admin).delete(_detail_url(org, _membership_id(org, owner)))
    _assert_error_shape(response, 403, "not_allowed")


def test_owner_removes_a_member_through_the_api(api_client_for, owner, org, member):
    response = api_client_for(owner).delete(_detail_url(org, _membership_id(org, member)))
    assert response.status_code == 204
    with organization_scope(org):
        assert not Membership.objects.filter(user=member).exists()


def test_session_api_writes_still_need_the_csrf_token(owner, org, member):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.patch(
        _detail_url(org, _membership_id(org, member)), {"role": "admin"}, format="json"
    )
    error = _assert_error_shape(response, 403, "permission_denied")
    assert "CSRF" in error["detail"]


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here/", "/api/v1/organizations/x/members/abc/", "/api/zzz"]
)
def test_unknown_api_urls_answer_json_404(api_client_for, owner, path):
    response = api_client_for(owner).get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_unknown_page_urls_answer_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_api_schema_is_published(client):
    response = client.get(reverse("api_schema"))
    assert response.status_code == 200
    assert b"/api/v1/organizations/" in response.content


def test_an_oversized_body_is_a_4xx_json_answer(api_client_for, owner, org, member):
    body = '{"role": "admin", "padding": "' + "x" * (3 * 1024 * 1024) + '"}'
    response = api_client_for(owner).generic(
        "PATCH", _detail_url(org, _membership_id(org, member)), body, "application/json"
    )
    assert 400 <= response.status_code < 500
    assert response.json()["error"] == "payload_too_large"
    with organization_scope(org):
        assert Membership.objects.get(user=member).role == Role.MEMBER
