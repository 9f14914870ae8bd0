"""Operators' admin for devices, keys and device grants. It spans organizations, so it reads
through `all_orgs`; digests are never shown or editable (there is nothing to reveal: only
digests are stored). Revoking goes through the services, as admin actions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from devices.models import Device, DeviceAuthorization, EnrollmentKey
from devices.services import device_revoke, enrollment_key_revoke


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "os",
        "agent_version",
        "event_count",
        "last_sync_at",
        "last_seen_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at", "created_at", "last_sync_at"]
    search_fields = ["name", "organization__name", "organization__slug", "id"]
    list_select_related = ["organization"]
    exclude = ["secret_digest"]
    readonly_fields = [
        "id",
        "organization",
        "created_by",
        "enrollment_key",
        "created_at",
        "last_seen_at",
        "last_sync_at",
        "event_count",
        "revoked_at",
    ]
    actions = ["revoke_devices"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Device]:
        return Device.all_orgs.select_related("organization")

    @admin.action(description="Revoke the selected devices")
    def revoke_devices(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        revoked = 0
        for device in queryset.select_related("organization"):
            if device.revoked_at is None:
                device_revoke(device=device)
                revoked += 1
        self.message_user(request, f"Revoked {revoked} device(s).", messages.SUCCESS)


@admin.register(EnrollmentKey)
class EnrollmentKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "display_prefix",
        "organization",
        "uses",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at", "expires_at", "created_at"]
    search_fields = ["name", "display_prefix", "organization__name", "organization__slug"]
    list_select_related = ["organization", "created_by"]
    exclude = ["key_digest"]
    readonly_fields = [
        "organization",
        "display_prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "uses",
        "revoked_at",
    ]
    actions = ["revoke_keys"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are made on the Devices page, where the value is shown once

    def get_queryset(self, request: HttpRequest) -> QuerySet[EnrollmentKey]:
        return EnrollmentKey.all_orgs.select_related("organization", "created_by")

    @admin.action(description="Revoke the selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[EnrollmentKey]) -> None:
        count = 0
        for enrollment_key in queryset.filter(revoked_at__isnull=True):
            enrollment_key_revoke(enrollment_key=enrollment_key, actor=None)
            count += 1
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(DeviceAuthorization)
class DeviceAuthorizationAdmin(admin.ModelAdmin):
    list_display = ["user_code", "name", "os", "status", "organization", "created_at", "expires_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["user_code", "name", "organization__slug"]
    list_select_related = ["organization", "approved_by"]
    exclude = ["device_code_digest"]
    readonly_fields = [
        "user_code",
        "name",
        "os",
        "agent_version",
        "status",
        "created_at",
        "expires_at",
        "interval",
        "last_polled_at",
        "organization",
        "approved_by",
        "decided_at",
        "device",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
