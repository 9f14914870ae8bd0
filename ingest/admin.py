"""Operators' admin for stored events: read-only (events come from devices only)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ingest.models import Delivery, Event


class _ReadOnlyAdmin(admin.ModelAdmin):
    # Millions of rows: no exact count on every changelist page.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(_ReadOnlyAdmin):
    list_display = [
        "event_id",
        "organization",
        "device",
        "source",
        "model",
        "occurred_at",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    ]
    list_filter = ["source", "is_sidechain", "occurred_at"]
    search_fields = ["organization__slug", "model", "session_id"]
    list_select_related = ["organization", "device"]
    date_hierarchy = "occurred_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return Event.all_orgs.select_related("organization", "device")


@admin.register(Delivery)
class DeliveryAdmin(_ReadOnlyAdmin):
    list_display = ["event_id", "device", "organization"]
    search_fields = ["organization__slug", "device__name"]
    list_select_related = ["organization", "device"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return Delivery.all_orgs.select_related("organization", "device")
