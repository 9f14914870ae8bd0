"""The organization API (read-only, for scripts and the menu bar app), authenticated by an
organization API key: `GET /api/v1/usage`, `/api/v1/sessions`, `/api/v1/anomalies` (and
billing's `/api/v1/organization`, on the same base).

Each method parses the query into one `UsageFilter` (errors name the parameter), calls one
selector and answers its data. `usage` answers exactly what `clawtrace cost-report --json`
prints for the same turns: the same keys, the same rounding, the same order of rows.
Errors are the project's (`clawtrace_site.api.exception_handler`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.authentication import (
    HasOrganizationApiKey,
    OrganizationApiKeyAuthentication,
    OrganizationApiKeyThrottle,
)
from analytics.selectors import (
    FILTER_PARAMS,
    GROUPINGS,
    TOTAL_KEYS,
    InvalidParameter,
    anomaly_list,
    session_top,
    usage_filter_parse,
    usage_report,
)
from clawtrace_site.api import CredentialScopedAPIView
from devices.schema import NO_NUL_PATTERN
from ingest.models import Source

# DRF reads `format` itself (renderer override); it is no filter but no error either.
_ALWAYS_ALLOWED = ("format",)
# What the document promises always works; `YYYY-MM-DD..YYYY-MM-DD` works too (the description
# says so) but cannot be a pattern that rules out an end before the start.
_RANGE_PATTERN = (
    r"^(today|week|month|all|[1-9][0-9]{0,2}d|20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))$"
)


def _string(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NO_NUL_PATTERN}


_FILTER_PARAMETERS = [
    OpenApiParameter(
        "range",
        {"type": "string", "pattern": _RANGE_PATTERN, "default": "30d"},
        description=(
            "`today`, `week`, `month`, `Nd` (the last N days, today included: `7d`, `30d`, "
            "`90d`), `all`, `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD` (inclusive), as "
            "`clawtrace cost-report --range`; days in the organization's time zone."
        ),
    ),
    OpenApiParameter(
        "member",
        {"type": "string", "pattern": r"^([0-9]{1,9}|[^@\u0000\s]{1,64}@[^@\u0000\s]{1,180})$"},
        description="A membership id, or the member's email address: their devices' usage.",
    ),
    OpenApiParameter(
        "device", _string(100), description="A device id (UUID) or a device's exact name."
    ),
    OpenApiParameter("project", _string(200), description="A project label, exactly."),
    OpenApiParameter("model", _string(200), description="A model name, exactly."),
    OpenApiParameter("agent", _string(128), description="An agent label, exactly."),
    OpenApiParameter("source", {"type": "string", "enum": list(Source.values)}),
]


class UsageTotalsSerializer(serializers.Serializer):
    turns = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField(help_text="5-minute and 1-hour writes.")
    cost_usd = serializers.FloatField(help_text="Rounded to 10 places, as the agent does.")
    unpriced_tokens = serializers.IntegerField(help_text="Tokens of turns without a cost.")


assert tuple(UsageTotalsSerializer().fields) == TOTAL_KEYS  # the agent's keys, in its order


class UsageRowSerializer(UsageTotalsSerializer):
    # The grouping key, named after `by` (one of these per row).
    hour = serializers.CharField(required=False)
    day = serializers.DateField(required=False)
    week = serializers.DateField(required=False, help_text="The week's Monday.")
    month = serializers.CharField(required=False, help_text="YYYY-MM.")
    model = serializers.CharField(required=False)
    project = serializers.CharField(required=False, allow_null=True)
    device = serializers.CharField(required=False)
    device_id = serializers.UUIDField(required=False)
    member = serializers.CharField(required=False, allow_null=True)
    member_id = serializers.IntegerField(required=False, allow_null=True)
    agent = serializers.CharField(required=False)
    source = serializers.CharField(required=False)


class UsageReportSerializer(serializers.Serializer):
    rows = UsageRowSerializer(many=True)
    totals = UsageTotalsSerializer()
    by = serializers.ChoiceField(choices=GROUPINGS)
    range = serializers.CharField()
    mode = serializers.CharField(help_text="Always `auto`: each turn's own cost.")
    timezone = serializers.CharField(help_text="The organization's time zone.")


class SessionRowSerializer(UsageTotalsSerializer):
    session = serializers.CharField()
    source = serializers.CharField()
    agent = serializers.CharField()
    project = serializers.CharField(allow_null=True)
    device = serializers.CharField(allow_null=True)
    device_id = serializers.UUIDField(allow_null=True)
    member = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField()
    models = serializers.ListField(child=serializers.CharField())
    sidechain_turns = serializers.IntegerField()


class SessionsSerializer(serializers.Serializer):
    rows = SessionRowSerializer(many=True)


class AnomalySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    subject = serializers.CharField(allow_blank=True)
    value = serializers.FloatField()
    threshold = serializers.FloatField(allow_null=True)
    baseline = serializers.FloatField(allow_null=True)
    details = serializers.DictField()
    detected_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class AnomaliesSerializer(serializers.Serializer):
    rows = AnomalySerializer(many=True)


class OrganizationApiView(CredentialScopedAPIView):
    """Base of every organization API endpoint (here and `billing.apis`): the organization API
    key, its throttle, JSON only, and a query that names its parameters."""

    authentication_classes = [OrganizationApiKeyAuthentication]
    permission_classes = [HasOrganizationApiKey]
    throttle_classes = [OrganizationApiKeyThrottle]
    renderer_classes = [JSONRenderer]
    allowed_params: tuple[str, ...] = FILTER_PARAMS

    def query(self, request: Request) -> dict[str, str]:
        """The query as single strings; an unknown or repeated parameter is an error that
        names it (a typo such as `devise=` would otherwise widen the answer silently)."""
        params = request.query_params
        for name in params:
            if name not in self.allowed_params and name not in _ALWAYS_ALLOWED:
                raise InvalidParameter(
                    name[:40],
                    f"unknown parameter; this endpoint takes {', '.join(self.allowed_params)}.",
                )
            if len(params.getlist(name)) > 1:
                raise InvalidParameter(name[:40], "given more than once.")
        return {name: params.get(name) for name in params}

    @staticmethod
    def integer(params: dict[str, str], name: str, default: int, lowest: int, highest: int):
        value = params.get(name)
        if value is None or value == "":
            return default
        if not (value.isascii() and value.isdigit()) or not lowest <= int(value) <= highest:
            raise InvalidParameter(name, f"a whole number from {lowest} to {highest}.")
        return int(value)


class UsageApi(OrganizationApiView):
    allowed_params = (*FILTER_PARAMS, "by")

    @extend_schema(
        operation_id="usage_report",
        summary="Usage and cost, grouped by time or by a dimension",
        description=(
            "The keys of `clawtrace cost-report --json`: `rows` (each the totals' keys and its "
            "grouping key, named after `by`; `device` rows add `device_id`, `member` rows "
            "`member_id`) and `totals`. Time rows are in time order, the others most expensive "
            "first."
        ),
        parameters=[
            *_FILTER_PARAMETERS,
            OpenApiParameter("by", {"type": "string", "enum": list(GROUPINGS), "default": "day"}),
        ],
        responses={200: UsageReportSerializer},
        tags=["organization"],
    )
    def get(self, request: Request) -> Response:
        params = self.query(request)
        filters = usage_filter_parse(organization=self.organization, params=params)
        report = usage_report(
            organization=self.organization, filters=filters, by=params.get("by") or "day"
        )
        return Response({**report, "mode": "auto"})


class SessionsApi(OrganizationApiView):
    allowed_params = (*FILTER_PARAMS, "top")

    @extend_schema(
        operation_id="sessions_top",
        summary="The most expensive sessions of a range",
        parameters=[
            *_FILTER_PARAMETERS,
            OpenApiParameter(
                "top", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}
            ),
        ],
        responses={200: SessionsSerializer},
        tags=["organization"],
    )
    def get(self, request: Request) -> Response:
        params = self.query(request)
        top = self.integer(params, "top", 10, 1, 1000)
        filters = usage_filter_parse(organization=self.organization, params=params)
        return Response(
            {"rows": session_top(organization=self.organization, filters=filters, n=top)}
        )


class AnomaliesApi(OrganizationApiView):
    allowed_params = ("range", "limit")

    @extend_schema(
        operation_id="anomalies_list",
        summary="Anomalies found in the organization's usage, newest first",
        parameters=[
            _FILTER_PARAMETERS[0],
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
            ),
        ],
        responses={200: AnomaliesSerializer},
        tags=["organization"],
    )
    def get(self, request: Request) -> Response:
        params = self.query(request)
        limit = self.integer(params, "limit", 100, 1, 1000)
        filters = usage_filter_parse(organization=self.organization, params=params)
        rows = anomaly_list(organization=self.organization, filters=filters, limit=limit)
        return Response({"rows": AnomalySerializer(rows, many=True).data})
