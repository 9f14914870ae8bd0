"""Operators' admin for analytics. Rollups, their queue and anomalies are derived data: read
only (rebuild them with `manage.py rebuild_rollups`). API keys: their digests are never
shown or editable; revoking goes through the service (an admin action)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from analytics.models import (
    Anomaly,
    Budget,
    OrganizationApiKey,
    Project,
    RollupDirtyBucket,
    RollupState,
    ToolDailyRollup,
    ToolRollup,
    UsageDailyRollup,
    UsageRollup,
)
from analytics.services import api_key_revoke


class _ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False  # millions of rows: no exact count per changelist page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class _RollupAdmin(_ReadOnlyAdmin):
    list_filter = ["source"]
    search_fields = ["organization__slug", "model", "project"]
    list_select_related = ["organization"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.model.all_orgs.select_related("organization")


@admin.register(UsageRollup)
class UsageRollupAdmin(_RollupAdmin):
    list_display = ["bucket", "organization", "model", "project", "session_id", "turns"]
    date_hierarchy = "bucket"


@admin.register(UsageDailyRollup)
class UsageDailyRollupAdmin(_RollupAdmin):
    list_display = ["day", "time_zone", "organization", "model", "project", "turns"]
    date_hierarchy = "day"


@admin.register(ToolRollup)
class ToolRollupAdmin(_RollupAdmin):
    list_display = ["bucket", "organization", "tool", "model", "calls"]
    search_fields = ["organization__slug", "tool", "model"]
    date_hierarchy = "bucket"


@admin.register(ToolDailyRollup)
class ToolDailyRollupAdmin(_RollupAdmin):
    list_display = ["day", "time_zone", "organization", "tool", "model", "calls"]
    search_fields = ["organization__slug", "tool", "model"]
    date_hierarchy = "day"


@admin.register(RollupState)
class RollupStateAdmin(_ReadOnlyAdmin):
    list_display = ["organization", "daily_time_zone", "refreshed_at", "rebuilt_at"]
    list_filter = ["daily_time_zone"]
    search_fields = ["organization__slug"]
    list_select_related = ["organization"]
    readonly_fields = ["organization", "daily_time_zone", "refreshed_at", "rebuilt_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return RollupState.all_orgs.select_related("organization")


@admin.register(Project)
class ProjectAdmin(_ReadOnlyAdmin):
    """Which projects a plan with a project count shows: the first ones to arrive."""

    list_display = ["label", "organization", "first_received_at"]
    search_fields = ["organization__slug", "label"]
    list_select_related = ["organization"]
    readonly_fields = ["organization", "label", "first_received_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return Project.all_orgs.select_related("organization")


@admin.register(RollupDirtyBucket)
class RollupDirtyBucketAdmin(_ReadOnlyAdmin):
    list_display = ["bucket", "organization", "marked_at"]
    list_filter = ["marked_at"]
    search_fields = ["organization__slug"]
    list_select_related = ["organization"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return RollupDirtyBucket.all_orgs.select_related("organization")


@admin.register(Anomaly)
class AnomalyAdmin(_ReadOnlyAdmin):
    list_display = ["kind", "organization", "window_start", "value", "threshold", "detected_at"]
    list_filter = ["kind", "detected_at"]
    search_fields = ["organization__slug", "subject"]
    list_select_related = ["organization"]
    date_hierarchy = "window_start"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return Anomaly.all_orgs.select_related("organization")


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["organization", "scope", "member", "project", "monthly_usd", "updated_at"]
    list_filter = ["scope"]
    search_fields = ["organization__slug", "project", "member__email"]
    list_select_related = ["organization", "member"]
    readonly_fields = ["organization", "scope", "member", "project", "created_at", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # owners and admins set budgets (analytics.services.budget_set)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return Budget.all_orgs.select_related("organization", "member")


@admin.register(OrganizationApiKey)
class OrganizationApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "display_prefix", "organization", "created_at", "last_used_at"]
    list_filter = ["created_at", "revoked_at"]
    search_fields = ["name", "display_prefix", "organization__slug"]
    list_select_related = ["organization", "created_by"]
    fields = [
        "name",
        "organization",
        "display_prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = [
        "organization",
        "display_prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made on the settings page, where the value is shown once

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return OrganizationApiKey.all_orgs.select_related("organization", "created_by")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[OrganizationApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key, actor=None)
        messages.success(request, f"Revoked {queryset.count()} key(s).")
