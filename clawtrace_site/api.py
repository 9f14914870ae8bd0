"""Shared API plumbing: the org-scoped base views, strict input, and the one error shape.

Every JSON API of the site, the organization API and the agent's sync protocol alike, answers
an error as `{"error": "<code>", "detail": "<one sentence>", "field": "<dotted path>"}` (`field`
only when one field is at fault, e.g. `events.3.content` or `email`): the shape RFC 8628
clients read (`error` is a string) and the agent's sender parses (docs/api.md). One
`EXCEPTION_HANDLER` (`exception_handler` below) makes it from whatever was raised, and the
root handlers and the CSRF failure view answer it under `/api/` too, so no API path ever
returns HTML, a traceback or another shape.
"""

from __future__ import annotations

import logging
import math
from contextlib import ExitStack
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults
from rest_framework import exceptions, serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import APIView, set_rollback
from rest_framework.viewsets import GenericViewSet

from accounts.models import Membership, Organization, Role
from accounts.selectors import membership_for_user_get
from accounts.tenancy import OrgOwnedModel, organization_scope
from clawtrace_site.exceptions import ApplicationError

logger = logging.getLogger(__name__)

API_PATH_PREFIX = "/api/"
# What a client should wait before retrying while the database is away.
DATABASE_RETRY_AFTER_SECONDS = 5
SERVER_ERROR_DETAIL = "Something went wrong on our side; it has been logged."


# --- Error shape --------------------------------------------------------------------------------


def error_body(code: str, detail: str, field: str | None = None) -> dict[str, str]:
    body = {"error": code, "detail": detail}
    if field:
        body["field"] = field
    return body


class ApiError(exceptions.APIException):
    """An error an API view raises on purpose: a status, a code, a sentence, optionally the
    field at fault and headers (`Retry-After`...)."""

    status_code = 400
    default_code = "invalid_value"
    default_detail = "The request is not valid."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        field: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail or self.default_detail, code or self.default_code)
        self.code = code or self.default_code
        self.field = field
        self.headers = headers or {}
        if status_code is not None:
            self.status_code = status_code


def _first_error(detail: Any, path: tuple[str, ...] = ()) -> tuple[str, str]:
    """The dotted path and message of the first error in a DRF ValidationError's detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                return _first_error(value, path)
            return _first_error(value, (*path, str(key)))
    if isinstance(detail, list) and detail:
        if isinstance(detail[0], (dict, list)):
            for index, value in enumerate(detail):
                if value:
                    return _first_error(value, (*path, str(index)))
        return ".".join(path), str(detail[0])
    return ".".join(path), str(detail)


def _application_field(error: ApplicationError) -> str | None:
    """A domain error names its field as `extra["field"]`, or the first of `extra["fields"]`
    (the per-field messages the HTML forms show)."""
    if error.extra.get("field"):
        return str(error.extra["field"])
    fields = error.extra.get("fields") or {}
    return str(next(iter(fields))) if fields else None


def _error_of(exc: Exception, view: Any) -> tuple[int, dict[str, str], dict[str, str]]:
    """(status, body, headers) for any exception an API view let out."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, ApiError):
        return exc.status_code, error_body(exc.code, str(exc.detail), exc.field), exc.headers
    if isinstance(exc, ApplicationError):
        return exc.status_code, error_body(exc.code, exc.message, _application_field(exc)), {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        # DRF has set the status already: 401 with the view's WWW-Authenticate challenge when
        # it has one (a device secret: `Bearer`), 403 otherwise (a session).
        headers = {"WWW-Authenticate": exc.auth_header} if getattr(exc, "auth_header", None) else {}
        error = getattr(view, "authentication_error", None)
        code, detail = (
            (error.default_code, str(error.default_detail))
            if error is not None
            else ("not_authenticated", str(exc.detail))
        )
        return exc.status_code, error_body(code, detail), headers
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        detail = f"Too many requests; retry in {wait} s."
        return 429, error_body("throttled", detail), {"Retry-After": str(wait)}
    if isinstance(exc, RequestDataTooBig):
        # Django refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE when DRF reads them; left
        # alone it reached handler400 as a vague "not valid". Say what is wrong, with a 413.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        detail = f"The request body is over {limit} bytes."
        return 413, error_body("payload_too_large", detail), {}
    if isinstance(exc, exceptions.ParseError):
        return 400, error_body("invalid_json", "The body is not valid JSON."), {}
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_error(exc.detail)
        return 400, error_body("invalid_value", message, field or None), {}
    if isinstance(exc, exceptions.UnsupportedMediaType):
        detail = "Send JSON: Content-Type: application/json."
        return 415, error_body("unsupported_media_type", detail), {}
    if isinstance(exc, exceptions.NotAcceptable):
        return 406, error_body("not_acceptable", "This API answers JSON only."), {}
    if isinstance(exc, Http404):
        return 404, error_body("not_found", "Not found."), {}
    simple = {
        exceptions.MethodNotAllowed: "method_not_allowed",
        exceptions.NotFound: "not_found",
        exceptions.PermissionDenied: "permission_denied",
    }
    for exception_class, code in simple.items():
        if isinstance(exc, exception_class):
            return exc.status_code, error_body(code, str(exc.detail)), {}
    if isinstance(exc, exceptions.APIException):
        code = exc.get_codes()
        code = code if isinstance(code, str) else "error"
        return exc.status_code, error_body(code, str(exc.detail)), {}
    if isinstance(exc, DatabaseError):
        # A database that is down or restarting is the client's cue to retry later, not a
        # 500: the sender keeps its batch and comes back after Retry-After.
        unavailable = isinstance(exc, (OperationalError, InterfaceError))
        logger.log(
            logging.WARNING if unavailable else logging.ERROR,
            "API: database error, answered 503",
            exc_info=not unavailable,
            extra={"error_class": type(exc).__name__},
        )
        detail = "The database is unavailable; retry shortly."
        retry = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
        return 503, error_body("database_unavailable", detail), retry
    logger.exception("API: unexpected error", extra={"error_class": type(exc).__name__})
    return 500, error_body("server_error", SERVER_ERROR_DETAIL), {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's `EXCEPTION_HANDLER`, for every API view: whatever was raised leaves in the one
    error shape, rolled back, as JSON."""
    set_rollback()
    _render_as_json(context)
    status, body, headers = _error_of(exc, context.get("view"))
    response = Response(body, status=status)
    for name, value in headers.items():
        response[name] = value
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
        return JsonResponse(error_body("server_error", SERVER_ERROR_DETAIL), status=500)
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
