"""How drf-spectacular documents the device secret (imported by `DevicesConfig.ready`)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension


class DeviceSecretScheme(OpenApiAuthenticationExtension):
    target_class = "devices.authentication.DeviceSecretAuthentication"
    name = "deviceSecret"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The device secret (`ctd_...`) from the token exchange or enrollment.",
        }


class StrictSerializerScheme(OpenApiSerializerExtension):
    """Serializers that refuse unknown keys say so (`additionalProperties: false`), and their
    strings say they hold no NUL character (which the database cannot store, so it is
    refused): a client, or schemathesis, generating from the document knows both."""

    target_class = "devices.protocol.ProtocolStrictMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        for prop in schema.get("properties", {}).values():
            _no_nul(prop)
            _no_nul(prop.get("items", {}))
        return schema


def _no_nul(prop: dict) -> None:
    if prop.get("type") == "string" and not ({"pattern", "format", "enum"} & set(prop)):
        prop["pattern"] = NO_NUL_PATTERN


NO_NUL_PATTERN = "^[^\\u0000]*$"


class ProjectStrictSerializerScheme(StrictSerializerScheme):
    """The same for the organization and member APIs' `StrictFieldsMixin`."""

    target_class = "clawtrace_site.api.StrictFieldsMixin"
