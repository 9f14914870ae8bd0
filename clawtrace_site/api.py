"""Shared API plumbing: the org-scoped base views, strict input, and one error shape.

Every API error, whatever raised it, answers
`{"error": {"code": "...", "message": "...", "fields": {...}}}` with a 4xx (or a JSON 500 from
`handler500`), so no API path ever returns HTML or a traceback.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults
from rest_framework import exceptions, serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.viewsets import GenericViewSet

from accounts.models import Membership, Organization, Role
from accounts.selectors import membership_for_user_get
from accounts.tenancy import OrgOwnedModel, organization_scope
from clawtrace_site.exceptions import ApplicationError

logger = logging.getLogger(__name__)

API_PATH_PREFIX = "/api/"


# --- Error shape --------------------------------------------------------------------------------


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def error_body(code: str, message: str, fields: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's `EXCEPTION_HANDLER`: DRF errors, Django `ValidationError`, `Http404`,
    `PermissionDenied` and our `ApplicationError` all leave in one body shape."""
    if isinstance(exc, ApplicationError):
        return Response(
            error_body(exc.code, exc.message, exc.extra.get("fields")), status=exc.status_code
        )
    if isinstance(exc, RequestDataTooBig):
        # Django refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE when DRF reads them; left
        # alone it reached handler400 as a vague "not valid". Say what is wrong, with a 413.
        exc = RequestTooLarge()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: handler500 answers JSON, the log keeps the traceback
    _render_as_json(context)
    if isinstance(exc, exceptions.ValidationError):
        detail = response.data
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = error_body("invalid_input", "The request is not valid.", fields)
    else:
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        message = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(code if isinstance(code, str) else "error", str(message))
    return response


def _render_as_json(context: dict[str, Any]) -> None:
    """Errors leave as JSON whatever renderer the request negotiated: the browsable API (on in
    DEBUG, `?format=api`) would otherwise render them as an HTML page, and drf-spectacular's
    schema view as OpenAPI YAML, neither of which has the error shape. Found by the
    hostile-input walk (`clawtrace_site/tests/test_hostile_input.py`)."""
    request = context.get("request")
    if request is not None:
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type


def _is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PATH_PREFIX)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api_request(request):
        return JsonResponse(error_body("bad_request", "The request is not valid."), status=400)
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api_request(request):
        return JsonResponse(error_body("permission_denied", "Not allowed."), status=403)
    return defaults.permission_denied(request, exception)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api_request(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """`CSRF_FAILURE_VIEW`: Django's own answers an HTML page, also under `/api/` for views that
    are not DRF's (the `/api/` catch-all; DRF views are CSRF-exempt and check it themselves).
    Found by the hostile-input walk."""
    if _is_api_request(request):
        return JsonResponse(
            error_body("csrf_failed", "CSRF verification failed; reload and try again."),
            status=403,
        )
    return csrf.csrf_failure(request, reason)


def api_not_found(request: HttpRequest) -> HttpResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api_request(request):
        return JsonResponse(
            error_body("server_error", "Something went wrong on our side; it has been logged."),
            status=500,
        )
    return defaults.server_error(request)


# --- Strict input -------------------------------------------------------------------------------


class StrictFieldsMixin:
    """Reject unknown keys instead of silently dropping them: a sender bug must never smuggle
    data in unnoticed, and `organization` in a body can never be mistaken for input."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {key[:50]: ["Unknown field."] for key in unknown[:20]}
                )
        return super().to_internal_value(data)


# --- Org-scoped base views ----------------------------------------------------------------------


class _OrgScopedBase:
    """Resolves the org from the URL slug after authentication, requires a Membership (404
    otherwise, like an unknown slug), and runs the handler inside the org's scope.

    Subclasses declare `model = X` and may narrow with `filter_org_queryset(qs)`; they may not
    override `get_queryset`/`get_object` (or set a class-level `queryset`, which would be built
    at import, outside any scope). The scope is left in `dispatch`'s `finally` (the `with`),
    because WSGI threads are reused and a leaked scope would serve the next request.
    """

    model: type[OrgOwnedModel]
    organization_url_kwarg = "org_slug"
    # Role needed for unsafe methods; services still check their own rules.
    write_role: str = Role.ADMIN

    organization: Organization
    membership: Membership

    _forbidden_overrides = ("get_queryset", "get_object", "queryset", "dispatch", "initial")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in cls._forbidden_overrides if name in vars(cls)]
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(overridden)}: org-scoped views get their "
                "rows only through `model` and `filter_org_queryset`."
            )

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with ExitStack() as scope_stack:
            self._scope_stack = scope_stack
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        membership = membership_for_user_get(
            user=request.user, organization_slug=str(kwargs.get(self.organization_url_kwarg, ""))
        )
        if membership is None:
            raise exceptions.NotFound("No such organization.")
        self.membership = membership
        self.organization = membership.organization
        self._scope_stack.enter_context(organization_scope(membership.organization))
        if request.method not in SAFE_METHODS:
            if (self.lookup_url_kwarg or self.lookup_field) in kwargs:
                # Look the object up before judging the role: another org's object must get
                # the same 404 as a missing one, never a 403 that confirms it exists.
                self.get_object()
            if not membership.has_role_at_least(self.write_role):
                raise exceptions.PermissionDenied(
                    "Your role in this organization does not allow this."
                )

    def get_queryset(self):
        return self.filter_org_queryset(self.model.objects.all())

    def get_object(self):
        return super().get_object()

    def filter_org_queryset(self, queryset):
        return queryset


class OrgScopedAPIView(_OrgScopedBase, GenericAPIView):
    pass


class OrgScopedViewSet(_OrgScopedBase, GenericViewSet):
    pass


class CredentialScopedAPIView(APIView):
    """Endpoints whose credential names the organization (an organization API key): the
    authentication class puts an object with an `organization` in `request.auth`, and the
    handler runs inside that organization's scope. The tenant comes from the credential,
    never from the URL or the query.

    The scope is left in `dispatch`'s `finally` (the ExitStack), because WSGI threads are
    reused and a leaked scope would serve the next request.
    """

    organization: Organization

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with ExitStack() as scope_stack:
            self._scope_stack = scope_stack
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        organization = getattr(request.auth, "organization", None)
        if not isinstance(organization, Organization):
            raise exceptions.NotAuthenticated()
        self.organization = organization
        self._scope_stack.enter_context(organization_scope(organization))
