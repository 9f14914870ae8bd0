"""The sender's data calls: `POST /api/v1/ingest` and `GET /api/v1/stats`
(docs/sync-protocol.md). Parse, call one service or selector, answer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from devices.authentication import DeviceRateThrottle, DeviceSecretAuthentication, HasDevice
from devices.protocol import DeviceScopedAPIView, InvalidValue, error_responses
from ingest.selectors import event_totals
from ingest.serializers import IngestBatchSerializer, IngestResultSerializer
from ingest.services import usage_batch_ingest


class _DeviceApi(DeviceScopedAPIView):
    authentication_classes = [DeviceSecretAuthentication]
    permission_classes = [HasDevice]
    throttle_classes = [DeviceRateThrottle]
    throttle_scope = "device"


class IngestApi(_DeviceApi):
    @extend_schema(
        operation_id="ingest_batch",
        summary="Send a batch of turns (metadata only), exactly once",
        description=(
            "At most 1000 events plus retractions and 1000000 bytes uncompressed; the body may "
            "be gzip-encoded (`Content-Encoding: gzip`). Any key outside the allowlist rejects "
            "the whole batch."
        ),
        request=IngestBatchSerializer,
        responses={200: IngestResultSerializer, **error_responses(400, 401)},
        tags=["sync"],
    )
    def post(self, request: Request) -> Response:
        serializer = IngestBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        batch = serializer.validated_data
        result = usage_batch_ingest(device=self.device, events=batch.events, retract=batch.retract)
        return Response(result.as_dict())


class TotalsSerializer(serializers.Serializer):
    turns = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField()


class DeviceRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    organization = serializers.CharField(help_text="The organization's slug.")


class StatsSerializer(serializers.Serializer):
    device = DeviceRefSerializer()
    totals = TotalsSerializer()


class StatsApi(_DeviceApi):
    @extend_schema(
        operation_id="stats_retrieve",
        summary="This device's totals on the server (or the organization's)",
        parameters=[
            OpenApiParameter(
                "scope",
                str,
                enum=["device", "organization"],
                required=False,
                description="`organization`: the organization's totals, each event once.",
            )
        ],
        responses={200: StatsSerializer, **error_responses(400, 401)},
        tags=["sync"],
    )
    def get(self, request: Request) -> Response:
        scope = request.query_params.get("scope", "device")
        if scope not in ("device", "organization"):
            raise InvalidValue("scope is device or organization.", field="scope")
        totals = event_totals(
            organization=self.organization, device=None if scope == "organization" else self.device
        )
        device = self.device
        return Response(
            {
                "device": {
                    "id": str(device.pk),
                    "name": device.name,
                    "organization": self.organization.slug,
                },
                "totals": totals,
            }
        )
