"""`GET /api/v1/organization` (an organization API key): the organization, its plan, the
limits that apply to it now and its usage of each, as the billing page shows them.

Part of the organization API (`analytics.apis.OrganizationApiView`: the key names the
organization, so a key of one organization never sees another's).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import PlanCode
from analytics.apis import OrganizationApiView
from billing.selectors import organization_summary


class OrganizationLimitsSerializer(serializers.Serializer):
    devices = serializers.IntegerField(allow_null=True, help_text="Linked devices; null: no limit.")
    projects = serializers.IntegerField(
        allow_null=True, help_text="Projects shown (the others are kept, hidden); null: all."
    )
    members = serializers.IntegerField(allow_null=True, help_text="null: no limit.")
    retention_days = serializers.IntegerField(
        allow_null=True, help_text="Days of history kept; null: for ever."
    )


class OrganizationUsageSerializer(serializers.Serializer):
    devices = serializers.IntegerField(help_text="Linked (not revoked) devices.")
    projects = serializers.IntegerField(help_text="Projects with usage, hidden ones included.")
    members = serializers.IntegerField()


class OrganizationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    plan = serializers.ChoiceField(
        choices=PlanCode.values,
        help_text="The plan whose limits apply (with billing off: the largest, for everyone).",
    )
    limits = OrganizationLimitsSerializer()
    usage = OrganizationUsageSerializer()


class OrganizationApi(OrganizationApiView):
    allowed_params = ()

    @extend_schema(
        operation_id="organization_retrieve",
        summary="The organization, its plan's limits and its usage of each",
        responses={200: OrganizationSerializer},
        tags=["organization"],
    )
    def get(self, request: Request) -> Response:
        self.query(request)
        return Response(
            OrganizationSerializer(organization_summary(organization=self.organization)).data
        )
