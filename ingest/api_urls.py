"""The sender's data calls under `/api/v1/` (included by the root URLconf)."""

from django.urls import path

from ingest import apis

urlpatterns = [
    path("ingest", apis.IngestApi.as_view(), name="ingest"),
    path("stats", apis.StatsApi.as_view(), name="stats"),
]
