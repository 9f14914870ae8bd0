"""The organization API under `/api/v1/` (included by the root URLconf): read-only, with an
organization API key."""

from django.urls import path

from analytics import apis

urlpatterns = [
    path("usage", apis.UsageApi.as_view(), name="usage"),
    path("sessions", apis.SessionsApi.as_view(), name="sessions"),
    path("anomalies", apis.AnomaliesApi.as_view(), name="anomalies"),
]
