"""The sender's linking calls (docs/sync-protocol.md, "Linking a device"): the device
authorization grant, enrollment with a fleet key, and a device revoking itself."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from devices.authentication import (
    DeviceRateThrottle,
    DeviceSecretAuthentication,
    HasDevice,
    LinkRateThrottle,
)
from devices.models import Device
from devices.protocol import (
    DeviceScopedAPIView,
    ProtocolAPIView,
    ProtocolStrictMixin,
    error_responses,
)
from devices.services import (
    POLL_INTERVAL_SECONDS,
    device_authorization_poll,
    device_authorization_start,
    device_enroll,
    device_revoke,
)

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


class MachineInputSerializer(ProtocolStrictMixin, serializers.Serializer):
    """What the approving member sees of the machine."""

    name = serializers.CharField(max_length=100, allow_blank=True, trim_whitespace=True)
    os = serializers.CharField(max_length=100, allow_blank=True, required=False, default="")
    agent_version = serializers.CharField(
        max_length=64, allow_blank=True, required=False, default=""
    )


class OrganizationRefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class DeviceCredentialsSerializer(serializers.Serializer):
    device_id = serializers.UUIDField()
    device_secret = serializers.CharField(help_text="`ctd_...`, shown this once.")
    organization = OrganizationRefSerializer()
    name = serializers.CharField()


def _credentials(device: Device, secret: str) -> dict:
    return {
        "device_id": str(device.pk),
        "device_secret": secret,
        "organization": {"slug": device.organization.slug, "name": device.organization.name},
        "name": device.name,
    }


class _LinkingApi(ProtocolAPIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LinkRateThrottle]
    throttle_scope = "device_link"


class DeviceCodeApi(_LinkingApi):
    class OutputSerializer(serializers.Serializer):
        device_code = serializers.CharField()
        user_code = serializers.CharField(help_text="Eight letters, e.g. `WDJBMJHT`.")
        verification_uri = serializers.URLField()
        verification_uri_complete = serializers.URLField()
        expires_in = serializers.IntegerField()
        interval = serializers.IntegerField()

        class Meta:
            ref_name = "DeviceCode"

    @extend_schema(
        operation_id="device_code_create",
        summary="Start the device authorization grant (RFC 8628)",
        request=MachineInputSerializer,
        responses={200: OutputSerializer, **error_responses(400)},
        tags=["sync"],
    )
    def post(self, request: Request) -> Response:
        serializer = MachineInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        authorization, device_code = device_authorization_start(**serializer.validated_data)
        verification_uri = request.build_absolute_uri(reverse("devices:device_verify"))
        lifetime = authorization.expires_at - authorization.created_at
        return Response(
            {
                "device_code": device_code,
                "user_code": authorization.user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": (
                    f"{verification_uri}?user_code={authorization.user_code}"
                ),
                "expires_in": int(lifetime.total_seconds()),
                "interval": POLL_INTERVAL_SECONDS,
            }
        )


class DeviceTokenInputSerializer(ProtocolStrictMixin, serializers.Serializer):
    grant_type = serializers.ChoiceField(choices=[DEVICE_GRANT_TYPE])
    device_code = serializers.CharField(max_length=100)


class DeviceEnrollInputSerializer(MachineInputSerializer):
    # Blank is let through to the key check, so it is the same 401 as any unknown key.
    enroll_key = serializers.CharField(max_length=200, allow_blank=True)


class DeviceTokenApi(_LinkingApi):
    @extend_schema(
        operation_id="device_token_create",
        summary="Poll for the device secret (RFC 8628 token request)",
        description=(
            "400 with `authorization_pending` until approved, `slow_down` when polled faster "
            "than the interval, `access_denied`, `expired_token` (after 15 minutes or once "
            "exchanged), `invalid_grant` for an unknown device code."
        ),
        request=DeviceTokenInputSerializer,
        responses={200: DeviceCredentialsSerializer, **error_responses(400, 403)},
        tags=["sync"],
    )
    def post(self, request: Request) -> Response:
        serializer = DeviceTokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device, secret = device_authorization_poll(
            device_code=serializer.validated_data["device_code"]
        )
        return Response(_credentials(device, secret))


class DeviceEnrollApi(_LinkingApi):
    @extend_schema(
        operation_id="device_enroll",
        summary="Link a machine with an enrollment key (fleets)",
        request=DeviceEnrollInputSerializer,
        responses={201: DeviceCredentialsSerializer, **error_responses(400, 401, 403)},
        tags=["sync"],
    )
    def post(self, request: Request) -> Response:
        serializer = DeviceEnrollInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        device, secret = device_enroll(
            key=data["enroll_key"],
            name=data["name"],
            os=data["os"],
            agent_version=data["agent_version"],
        )
        return Response(_credentials(device, secret), status=status.HTTP_201_CREATED)


class DeviceSelfApi(DeviceScopedAPIView):
    authentication_classes = [DeviceSecretAuthentication]
    permission_classes = [HasDevice]
    throttle_classes = [DeviceRateThrottle]
    throttle_scope = "device"

    @extend_schema(
        operation_id="device_revoke",
        summary="Revoke this device (clawtrace logout)",
        request=None,
        responses={204: OpenApiResponse(description="Revoked."), **error_responses(401)},
        tags=["sync"],
    )
    def delete(self, request: Request) -> Response:
        device_revoke(device=self.device)
        return Response(status=status.HTTP_204_NO_CONTENT)
