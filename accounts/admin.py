"""Operators' admin. It spans organizations (the only UI that does), so it reads through
`all_orgs`. Invariants (a last owner, single-use invitations) are protected by making the
dangerous fields read-only; role changes go through the services via admin actions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from accounts.models import Invitation, Membership, Organization, User
from accounts.services import invitation_revoke
from clawtrace_site.exceptions import ApplicationError


class UserMembershipInline(admin.TabularInline):
    """The user's organizations, read-only for the same reason as `MembershipInline`."""

    model = Membership
    fk_name = "user"
    verbose_name_plural = "Organizations"
    fields = ["organization", "role", "created_at"]
    readonly_fields = ["organization", "role", "created_at"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return Membership.all_orgs.select_related("organization")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "date_joined"]
    search_fields = ["email", "name"]
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["name"]}),
        (
            "Permissions",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    inlines = [UserMembershipInline]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]}),
    ]


class MembershipInline(admin.TabularInline):
    """Read-only: adding, removing or re-roling members here could remove an org's last owner.
    Operators use the member pages or the user's own flows instead."""

    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return Membership.all_orgs.select_related("user")


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "plan", "is_personal", "member_count", "created_at"]
    list_filter = ["plan", "is_personal", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    readonly_fields = ["slug", "created_at"]
    fields = ["name", "slug", "plan", "is_personal", "created_at"]
    inlines = [MembershipInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(ordering="member_count", description="Members")
    def member_count(self, obj: Organization) -> int:
        return obj.member_count

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "created_at"]
    list_select_related = ["user", "organization"]
    search_fields = ["user__email", "organization__name", "organization__slug"]
    readonly_fields = ["organization", "user", "role", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return Membership.all_orgs.select_related("user", "organization")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Deleting could remove the last owner; removal goes through membership_remove.
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "status", "created_at", "expires_at"]
    list_filter = ["role", "created_at", "expires_at"]
    list_select_related = ["organization", "invited_by"]
    search_fields = ["email", "organization__name", "organization__slug"]
    # The token hash is not even shown: it is useless to an operator and a lookup key.
    fields = [
        "organization",
        "email",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]
    readonly_fields = fields
    actions = ["revoke_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invitation]:
        return Invitation.all_orgs.select_related("organization", "invited_by", "accepted_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invitations are created by members, so the email goes out with the token

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Status")
    def status(self, obj: Invitation) -> str:
        return obj.status

    @admin.action(description="Withdraw selected invitations")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        revoked = 0
        for invitation in queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True):
            try:
                invitation_revoke(actor=None, invitation=invitation)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.WARNING)
            else:
                revoked += 1
        self.message_user(request, f"Withdrew {revoked} invitation(s).", messages.SUCCESS)
