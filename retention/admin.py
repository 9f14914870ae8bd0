"""Operators' admin for the retention job's memory per organization (read-only: the job owns
it; an operator changes a plan, and the next run follows)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from retention.models import RetentionState


@admin.register(RetentionState)
class RetentionStateAdmin(admin.ModelAdmin):
    list_display = [
        "organization",
        "enforced_days",
        "pending_days",
        "warned_at",
        "applies_from",
        "last_run_at",
        "last_deleted_count",
    ]
    list_filter = ["enforced_days", "pending_days", "last_run_at"]
    search_fields = ["organization__slug", "organization__name"]
    list_select_related = ["organization"]
    readonly_fields = [
        "organization",
        "enforced_days",
        "pending_days",
        "warned_at",
        "applies_from",
        "last_run_at",
        "last_deleted_count",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[RetentionState]:
        return RetentionState.all_orgs.select_related("organization")
