"""HTTP plumbing of the sync protocol (docs/sync-protocol.md), shared by `devices` and `ingest`.

The protocol has its own error shape, `{"error": "<code>", "detail": "...", "field": "..."}`
(the agent's sender reads `error` as a string, as RFC 8628 clients do), so its views install
`protocol_exception_handler` instead of the project's. Everything a protocol view can raise,
a database that went away included, leaves in that shape: never HTML, never a traceback.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import zlib
from contextlib import ExitStack
from typing import Any

import orjson
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, parsers, serializers
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, set_rollback

from accounts.tenancy import organization_scope
from clawtrace_site.exceptions import ApplicationError

logger = logging.getLogger(__name__)

# One batch, uncompressed (the contract's limit). Every protocol body is held to it.
MAX_BODY_BYTES = 1_000_000
MAX_BATCH_ITEMS = 1000
PAYLOAD_TOO_LARGE_DETAIL = (
    f"at most {MAX_BATCH_ITEMS} events and {MAX_BODY_BYTES} bytes (uncompressed) per batch"
)
# What a client should wait before retrying while the database is away.
DATABASE_RETRY_AFTER_SECONDS = 5


class ProtocolError(exceptions.APIException):
    """An error of the contract: a status, a code, a sentence, optionally the field at fault."""

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


class InvalidValue(ProtocolError):
    default_code = "invalid_value"


class PayloadTooLarge(ProtocolError):
    status_code = 413
    default_code = "payload_too_large"
    default_detail = PAYLOAD_TOO_LARGE_DETAIL


class UnsupportedMediaType(ProtocolError):
    status_code = 415
    default_code = "unsupported_media_type"
    default_detail = "Send JSON: Content-Type: application/json (optionally gzip-encoded)."


class InvalidDeviceSecret(ProtocolError):
    status_code = 401
    default_code = "invalid_device_secret"
    default_detail = "The device secret is missing, unknown or revoked; run `clawtrace login`."


def error_body(code: str, detail: str, field: str | None = None) -> dict[str, str]:
    body = {"error": code, "detail": detail}
    if field is not None:
        body["field"] = field
    return body


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


def _response(exc_status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    response = Response(body, status=exc_status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def protocol_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The protocol views' `EXCEPTION_HANDLER`: every exception becomes the contract's shape."""
    set_rollback()
    request = context.get("request")
    if request is not None:
        # Errors are JSON whatever the client asked to accept.
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
    if isinstance(exc, ProtocolError):
        return _response(
            exc.status_code, error_body(exc.code, str(exc.detail), exc.field), exc.headers
        )
    if isinstance(exc, ApplicationError):
        field = exc.extra.get("field")
        return _response(exc.status_code, error_body(exc.code, exc.message, field))
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        error = InvalidDeviceSecret()
        return _response(
            401,
            error_body(error.code, str(error.detail)),
            {"WWW-Authenticate": 'Bearer realm="clawtrace"'},
        )
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        return _response(
            429,
            error_body("throttled", f"Too many requests; retry in {wait} s."),
            {"Retry-After": str(wait)},
        )
    if isinstance(exc, RequestDataTooBig):
        return _response(413, error_body("payload_too_large", PAYLOAD_TOO_LARGE_DETAIL))
    if isinstance(exc, exceptions.UnsupportedMediaType):
        error = UnsupportedMediaType()
        return _response(415, error_body(error.code, str(error.detail)))
    if isinstance(exc, exceptions.ParseError):
        return _response(400, error_body("invalid_json", "The body is not valid JSON."))
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_error(exc.detail)
        return _response(400, error_body("invalid_value", message, field or None))
    if isinstance(exc, exceptions.MethodNotAllowed):
        return _response(405, error_body("method_not_allowed", str(exc.detail)))
    if isinstance(exc, exceptions.NotAcceptable):
        return _response(406, error_body("not_acceptable", "This API answers JSON only."))
    if isinstance(exc, (exceptions.NotFound, Http404)):
        return _response(404, error_body("not_found", "Not found."))
    if isinstance(exc, exceptions.PermissionDenied):
        return _response(403, error_body("permission_denied", str(exc.detail)))
    if isinstance(exc, exceptions.APIException):
        code = exc.get_codes()
        return _response(
            exc.status_code,
            error_body(code if isinstance(code, str) else "error", str(exc.detail)),
        )
    if isinstance(exc, DatabaseError):
        # A database that is down or restarting is the client's cue to retry later, not a
        # 500: the sender keeps its batch and comes back after Retry-After.
        unavailable = isinstance(exc, (OperationalError, InterfaceError))
        logger.log(
            logging.WARNING if unavailable else logging.ERROR,
            "sync protocol: database error, answered 503",
            exc_info=not unavailable,
            extra={"error_class": type(exc).__name__},
        )
        return _response(
            503,
            error_body("database_unavailable", "The database is unavailable; retry shortly."),
            {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    logger.exception("sync protocol: unexpected error", extra={"error_class": type(exc).__name__})
    return _response(
        500, error_body("server_error", "Something went wrong on our side; it has been logged.")
    )


# --- The body: JSON, optionally gzip, never more than the limit --------------------------------


def _declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        return None


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes, whatever the compressed size: a gzip bomb stops at
    the limit with a 413 instead of filling the memory."""
    out = bytearray()
    while data:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        try:
            out += decompressor.decompress(data, limit + 1 - len(out))
        except zlib.error as error:
            raise ProtocolError("The body is not valid gzip.", code="invalid_gzip") from error
        if len(out) > limit or decompressor.unconsumed_tail:
            raise PayloadTooLarge()
        if not decompressor.eof:
            raise ProtocolError("The gzip body is truncated.", code="invalid_gzip")
        data = decompressor.unused_data  # a further gzip member (RFC 1952 allows several)
    return bytes(out)


def _json_loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses integers past 64 bits; the standard library reads them so that the
    # validation can name the field that is out of bounds instead of "invalid JSON".
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise ProtocolError("The body is not valid JSON.", code="invalid_json") from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class ProtocolJSONParser(parsers.BaseParser):
    """JSON, optionally `Content-Encoding: gzip`, at most `MAX_BODY_BYTES` uncompressed.

    Not a subclass of DRF's JSONParser on purpose: DRF hands those the whole body read into
    memory; this one reads the stream itself, and never more than the limit allows.
    """

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None):
        request = parser_context["request"]
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip"):
            raise UnsupportedMediaType(
                f"Content-Encoding {encoding[:40]!r} is not supported; send gzip or nothing."
            )
        declared = _declared_length(request)
        if declared is not None and declared > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        raw = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        if encoding in ("gzip", "x-gzip"):
            raw = _gunzip(raw, MAX_BODY_BYTES)
        if not raw.strip():
            return {}
        return _json_loads(raw)


def gzip_body(document: Any) -> bytes:
    """A body as the sender makes it (tests and the benchmark use it)."""
    return gzip.compress(orjson.dumps(document), mtime=0)


# --- Base views ---------------------------------------------------------------------------------


class JSONOnlyNegotiation(BaseContentNegotiation):
    """The protocol answers JSON whatever `Accept` says (a 406 would be one more way for a
    sender to fail); parsers are chosen by Content-Type as usual."""

    def select_parser(self, request: Request, parsers: list) -> Any:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request: Request, renderers: list, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class ProtocolAPIView(APIView):
    """Base of every sync-protocol endpoint: JSON in (gzip allowed), JSON out, the contract's
    error shape, and a 415 for a POST that does not say it is JSON."""

    parser_classes = [ProtocolJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation

    def get_exception_handler(self):
        return protocol_exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # (A method the view does not have is a 405 first, whatever its body.)
        if request.method in ("POST", "PUT", "PATCH") and hasattr(self, request.method.lower()):
            content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
            if content_type != "application/json":
                raise UnsupportedMediaType()


class DeviceScopedAPIView(ProtocolAPIView):
    """Endpoints a device calls with its secret. The tenant comes from the device (never from
    the body or the URL), and the handler runs inside that organization's scope.

    The scope is left in `dispatch`'s `finally` (the ExitStack), because WSGI threads are
    reused and a leaked scope would serve the next request.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any):
        with ExitStack() as scope_stack:
            self._scope_stack = scope_stack
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, permission, throttle
        self.device = request.auth
        self.organization = self.device.organization
        self._scope_stack.enter_context(organization_scope(self.organization))


# --- Strict input and the documented error shape -------------------------------------------------

# Keys that could carry message text: named as such when a body has one (never stored).
FORBIDDEN_KEYS = frozenset(
    {
        "message",
        "messages",
        "content",
        "contents",
        "prompt",
        "prompts",
        "text",
        "thinking",
        "title",
        "input",
        "output",
        "path",
        "cwd",
        "body",
        "summary",
        "query",
        "response",
        "completion",
        "tool_input",
        "tool_output",
        "result",
        "description",
        "command",
        "arguments",
        "args",
    }
)


def unknown_key_error(key: Any, path: str = "") -> ProtocolError:
    """`unknown_field`, or `forbidden_field` for a key that could carry text, naming it."""
    name = str(key)[:64]
    field = f"{path}.{name}" if path else name
    if name.lower() in FORBIDDEN_KEYS:
        return ProtocolError(
            f"{field} could carry message text; the sync protocol never takes text.",
            code="forbidden_field",
            field=field,
        )
    return ProtocolError(
        f"{field} is not a field of this request.", code="unknown_field", field=field
    )


class ProtocolStrictMixin:
    """A serializer that refuses keys it does not declare (`unknown_field` naming the key),
    so a sender bug can never smuggle data in unnoticed."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in self.fields:
                    raise unknown_key_error(key)
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A stable code, e.g. `invalid_value`.")
    detail = serializers.CharField(help_text="One sentence for a human.")
    field = serializers.CharField(
        required=False, help_text="The dotted path of the field at fault, e.g. `events.3.content`."
    )


_ERROR_DESCRIPTIONS = {
    400: "Malformed request (`invalid_json`, `invalid_gzip`, `invalid_value`, `unknown_field`, "
    "`forbidden_field`, and the RFC 8628 codes on the token endpoint).",
    401: "`invalid_device_secret` (or `invalid_enroll_key` on enrollment).",
    403: "`device_limit_reached`: the organization's plan allows no more devices.",
    405: "`method_not_allowed`.",
    413: "`payload_too_large`: " + PAYLOAD_TOO_LARGE_DETAIL + ".",
    415: "`unsupported_media_type`: send `application/json`, optionally gzip-encoded.",
    429: "`throttled`; the `Retry-After` header says when to come back.",
    500: "`server_error` (a bug; logged).",
    503: "`database_unavailable`; the `Retry-After` header says when to come back.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, each with the contract's error shape."""
    every = (*statuses, 405, 413, 415, 429, 500, 503)
    return {
        status: OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[status])
        for status in sorted(set(every))
    }


def is_protocol_path(path: str) -> bool:
    """Whether `path` is served by a sync-protocol view (so errors have the contract's shape)."""
    from django.urls import Resolver404, resolve

    try:
        match = resolve(path)
    except Resolver404:
        return False
    view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, ProtocolAPIView)
