"""Root URLs. Org pages live under `/o/<org_slug>/`, APIs under `/api/v1/` (JSON errors only)."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from accounts import apis as accounts_apis
from accounts import views as accounts_views
from billing import apis as billing_apis
from clawtrace_site import api, health, pages

# Operators log in through allauth too (rate limits, MFA), not the admin's own form.
admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "ClawTrace operations"
admin.site.site_title = "ClawTrace admin"

membership_list = accounts_apis.MembershipViewSet.as_view({"get": "list"})
membership_detail = accounts_apis.MembershipViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)

api_v1_patterns = [
    path(
        "organizations/",
        accounts_apis.OrganizationListApi.as_view(),
        name="organization_list",
    ),
    path(
        "organizations/<slug:org_slug>/members/",
        membership_list,
        name="membership_list",
    ),
    path(
        "organizations/<slug:org_slug>/members/<int:membership_id>/",
        membership_detail,
        name="membership_detail",
    ),
    # The sync protocol (docs/sync-protocol.md): linking devices, then their data.
    path("", include("devices.api_urls")),
    path("", include("ingest.api_urls")),
    # The organization API (organization API keys): usage, sessions, anomalies, and the
    # organization with its plan's limits (billing's).
    path("", include("analytics.api_urls")),
    path("organization", billing_apis.OrganizationApi.as_view(), name="organization"),
]

urlpatterns = [
    path("", pages.landing, name="landing"),
    path("pricing/", pages.pricing, name="pricing"),
    path("accounts/", include("allauth.urls")),
    path("app/", accounts_views.home, name="home"),
    path("", include("accounts.urls")),
    path("", include("devices.urls")),
    path("", include("analytics.urls")),
    path("", include("analytics.dashboard_urls")),
    path("", include("alerts.urls")),
    path("", include("billing.urls")),
    path("api/v1/", include((api_v1_patterns, "api"), namespace="api")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=[]),
        name="api_schema",
    ),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # Last: any other /api/ path answers the JSON 404 even with DEBUG on, where Django would
    # otherwise show its HTML technical 404 instead of handler404.
    re_path(r"^api/", api.api_not_found, name="api_not_found"),
]

handler400 = "clawtrace_site.api.handler400"
handler403 = "clawtrace_site.api.handler403"
handler404 = "clawtrace_site.api.handler404"
handler500 = "clawtrace_site.api.handler500"
