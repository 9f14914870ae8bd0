"""How drf-spectacular documents the organization API key (imported by `AnalyticsConfig.ready`)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class OrganizationApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "analytics.authentication.OrganizationApiKeyAuthentication"
    name = "organizationApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An organization API key (`cto_...`), made on the organization's "
            "settings page by an owner or admin.",
        }
