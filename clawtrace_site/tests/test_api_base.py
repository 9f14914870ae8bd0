from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.test import Client
from django.urls import path
from rest_framework import serializers
from rest_framework.exceptions import Throttled

from accounts.models import Membership
from clawtrace_site import api
from clawtrace_site.api import OrgScopedAPIView, OrgScopedViewSet, StrictFieldsMixin
from clawtrace_site.exceptions import ConflictError


@pytest.mark.parametrize("base", [OrgScopedAPIView, OrgScopedViewSet])
@pytest.mark.parametrize("method", ["get_queryset", "get_object", "dispatch", "initial"])
def test_org_scoped_views_refuse_subclasses_that_bypass_the_scope(base, method):
    with pytest.raises(TypeError, match=method):
        type("Sneaky", (base,), {"model": Membership, method: lambda self, *a, **k: None})


def test_org_scoped_views_refuse_a_class_level_queryset():
    with pytest.raises(TypeError, match="queryset"):
        type("Eager", (OrgScopedViewSet,), {"model": Membership, "queryset": object()})


def test_org_scoped_views_accept_the_narrowing_hook():
    view = type(
        "Narrow",
        (OrgScopedViewSet,),
        {"model": Membership, "filter_org_queryset": lambda self, qs: qs.filter(role="owner")},
    )
    assert issubclass(view, OrgScopedViewSet)


class _Strict(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=5)


def test_strict_serializer_rejects_unknown_keys():
    serializer = _Strict(data={"name": "ok", "organization": 1, "message_text": "secret"})
    assert not serializer.is_valid()
    assert set(serializer.errors) == {"organization", "message_text"}


def test_strict_serializer_accepts_known_keys():
    serializer = _Strict(data={"name": "ok"})
    assert serializer.is_valid(), serializer.errors


@pytest.mark.parametrize(
    ("exception", "status", "code"),
    [
        (DjangoValidationError({"name": ["Too long."]}), 400, "invalid_value"),
        (Http404(), 404, "not_found"),
        (ConflictError("No.", code="last_owner"), 409, "last_owner"),
        (Throttled(wait=3), 429, "throttled"),
    ],
)
def test_exception_handler_gives_every_error_one_shape(exception, status, code):
    response = api.exception_handler(exception, {})
    assert response.status_code == status
    assert {"error", "detail"} <= set(response.data) <= {"error", "detail", "field"}
    assert response.data["error"] == code


def test_throttled_keeps_the_retry_after_header():
    assert api.exception_handler(Throttled(wait=3), {})["Retry-After"] == "3"


def _boom(request):
    raise RuntimeError("secret traceback detail")


urlpatterns = [path("api/v1/boom/", _boom), path("boom/", _boom)]
handler500 = "clawtrace_site.api.handler500"


@pytest.mark.urls(__name__)
def test_unexpected_api_errors_answer_json_without_a_traceback():
    response = Client(raise_request_exception=False).get("/api/v1/boom/")
    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert b"secret traceback detail" not in response.content


@pytest.mark.urls(__name__)
def test_unexpected_page_errors_answer_the_html_500_page():
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert b"secret traceback detail" not in response.content


def test_unknown_api_paths_answer_json_even_in_debug(client, settings):
    settings.DEBUG = True
    response = client.get("/api/v2/whatever/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
