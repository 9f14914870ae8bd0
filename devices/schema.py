"""How drf-spectacular documents the device secret (imported by `DevicesConfig.ready`)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class DeviceSecretScheme(OpenApiAuthenticationExtension):
    target_class = "devices.authentication.DeviceSecretAuthentication"
    name = "deviceSecret"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The device secret (`ctd_...`) from the token exchange or enrollment.",
        }
