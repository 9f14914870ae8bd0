import pytest
from django.urls import reverse

from accounts.tenancy import organization_in_scope

pytestmark = pytest.mark.django_db


def test_html_views_leave_the_scope_after_the_request(owner_client, org):
    assert owner_client.get(reverse("accounts:member_list", args=[org.slug])).status_code == 200
    assert organization_in_scope() is None


def test_api_views_leave_the_scope_after_the_request_even_on_error(api_client_for, owner, org):
    client = api_client_for(owner)
    assert client.get(reverse("api:membership_list", args=[org.slug])).status_code == 200
    assert organization_in_scope() is None
    response = client.patch(
        reverse("api:membership_detail", args=[org.slug, 1]), {"role": "x"}, format="json"
    )
    assert response.status_code in {400, 404}
    assert organization_in_scope() is None


def test_current_organization_falls_back_to_the_first_when_the_remembered_one_is_gone(
    owner_client, org, other_org
):
    session = owner_client.session
    session["current_organization_slug"] = other_org.slug  # not a member there
    session.save()
    response = owner_client.get(reverse("home"))
    assert response.url == reverse("accounts:org_home", args=[org.slug])
