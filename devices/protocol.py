"""HTTP plumbing of the sync protocol (docs/sync-protocol.md), shared by `devices` and `ingest`:
the body (JSON, optionally gzip, bounded), the base views, strict input and the protocol's
errors. Errors leave in the site's one shape, `{"error": "<code>", "detail": "...", "field":
"..."}`, through the project's exception handler (`clawtrace_site.api`), as from every API
view: never HTML, never a traceback.
"""

from __future__ import annotations

import gzip
import json
import zlib
from contextlib import ExitStack
from typing import Any

import orjson
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiResponse
from rest_framework import parsers
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.tenancy import organization_scope
from clawtrace_site.api import ApiError

# One batch, uncompressed (the contract's limit). Every protocol body is held to it.
MAX_BODY_BYTES = 1_000_000
MAX_BATCH_ITEMS = 1000
PAYLOAD_TOO_LARGE_DETAIL = (
    f"at most {MAX_BATCH_ITEMS} events and {MAX_BODY_BYTES} bytes (uncompressed) per batch"
)


class InvalidValue(ApiError):
    default_code = "invalid_value"


class PayloadTooLarge(ApiError):
    status_code = 413
    default_code = "payload_too_large"
    default_detail = PAYLOAD_TOO_LARGE_DETAIL


class UnsupportedMediaType(ApiError):
    status_code = 415
    default_code = "unsupported_media_type"
    default_detail = "Send JSON: Content-Type: application/json (optionally gzip-encoded)."


class InvalidDeviceSecret(ApiError):
    status_code = 401
    default_code = "invalid_device_secret"
    default_detail = "The device secret is missing, unknown or revoked; run `clawtrace login`."


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
            raise ApiError("The body is not valid gzip.", code="invalid_gzip") from error
        if len(out) > limit or decompressor.unconsumed_tail:
            raise PayloadTooLarge()
        if not decompressor.eof:
            raise ApiError("The gzip body is truncated.", code="invalid_gzip")
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
        raise ApiError("The body is not valid JSON.", code="invalid_json") from error


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

    # A missing, unknown or revoked secret: the exception handler answers this code (401
    # with the `Bearer` challenge) instead of the session API's `not_authenticated`.
    authentication_error = InvalidDeviceSecret

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


def unknown_key_error(key: Any, path: str = "") -> ApiError:
    """`unknown_field`, or `forbidden_field` for a key that could carry text, naming it."""
    name = str(key)[:64]
    field = f"{path}.{name}" if path else name
    if name.lower() in FORBIDDEN_KEYS:
        return ApiError(
            f"{field} could carry message text; the sync protocol never takes text.",
            code="forbidden_field",
            field=field,
        )
    return ApiError(f"{field} is not a field of this request.", code="unknown_field", field=field)


class ProtocolStrictMixin:
    """A serializer that refuses keys it does not declare (`unknown_field` naming the key),
    so a sender bug can never smuggle data in unnoticed."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in self.fields:
                    raise unknown_key_error(key)
        return super().to_internal_value(data)


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
    """The error responses of a protocol operation, described; their body is the site's one
    error schema, which `clawtrace_site.schema` puts on every error response."""
    every = (*statuses, 405, 413, 415, 429, 500, 503)
    return {
        status: OpenApiResponse(description=_ERROR_DESCRIPTIONS[status])
        for status in sorted(set(every))
    }
