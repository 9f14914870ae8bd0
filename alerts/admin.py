"""Operators' admin for alerts: rules, fired alerts, deliveries and their attempt log. It spans
organizations (`all_orgs`). The log is read-only; re-sending a failed delivery is an action that
calls the service. Webhook URLs are shown by host only in lists (they work as credentials)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from alerts.channels import webhook_host
from alerts.models import (
    Alert,
    AlertDelivery,
    AlertRecipient,
    AlertRule,
    DeliveryAttempt,
    DeliveryStatus,
)
from alerts.services import alert_deliveries_requeue


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AlertRecipientInline(admin.TabularInline):
    model = AlertRecipient
    extra = 0
    fields = ["membership"]
    readonly_fields = ["membership"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "trigger",
        "threshold_usd",
        "email_enabled",
        "webhook",
        "is_enabled",
        "created_at",
    ]
    list_filter = ["trigger", "is_enabled", "email_enabled"]
    search_fields = ["name", "organization__slug", "organization__name"]
    list_select_related = ["organization"]
    readonly_fields = ["organization", "created_by", "created_at", "updated_at"]
    inlines = [AlertRecipientInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rules are made by the organization's admins, on its settings pages

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertRule]:
        return AlertRule.all_orgs.select_related("organization")

    @admin.display(description="Webhook")
    def webhook(self, rule: AlertRule) -> str:
        return webhook_host(rule.webhook_url) or "\N{EN DASH}"


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    fields = ["channel", "status", "attempt_count", "last_error", "sent_at", "updated_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(_ReadOnlyAdmin):
    list_display = [
        "rule_name",
        "organization",
        "trigger",
        "window_key",
        "value",
        "unit",
        "fired_at",
    ]
    list_filter = ["trigger", "fired_at"]
    search_fields = ["rule_name", "window_key", "organization__slug"]
    list_select_related = ["organization"]
    date_hierarchy = "fired_at"
    inlines = [AlertDeliveryInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return Alert.all_orgs.select_related("organization")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    fields = ["attempted_at", "succeeded", "status_code", "error", "duration_ms"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-attempted_at"]

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(_ReadOnlyAdmin):
    list_display = [
        "alert",
        "organization",
        "channel",
        "status",
        "attempt_count",
        "last_error",
        "updated_at",
    ]
    list_filter = ["status", "channel", "created_at"]
    search_fields = ["alert__rule_name", "organization__slug"]
    list_select_related = ["organization", "alert"]
    inlines = [DeliveryAttemptInline]
    actions = ["send_again"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertDelivery]:
        return AlertDelivery.all_orgs.select_related("organization", "alert")

    @admin.action(description="Send the selected failed deliveries again")
    def send_again(self, request: HttpRequest, queryset: QuerySet[AlertDelivery]) -> None:
        count = alert_deliveries_requeue(
            delivery_ids=list(
                queryset.filter(status=DeliveryStatus.FAILED).values_list("pk", flat=True)
            ),
            now=timezone.now(),
        )
        self.message_user(request, f"Queued {count} delivery(ies) again.", messages.SUCCESS)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(_ReadOnlyAdmin):
    list_display = [
        "attempted_at",
        "organization",
        "channel",
        "succeeded",
        "status_code",
        "error",
        "duration_ms",
        "delivery",
    ]
    list_filter = ["channel", "succeeded", "attempted_at"]
    search_fields = ["organization__slug", "delivery__alert__rule_name", "error"]
    list_select_related = ["organization", "delivery__alert"]
    date_hierarchy = "attempted_at"
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeliveryAttempt]:
        return DeliveryAttempt.all_orgs.select_related("organization", "delivery__alert")
