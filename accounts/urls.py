from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("orgs/new/", views.organization_create_view, name="org_create"),
    path("orgs/switch/", views.organization_switch, name="org_switch"),
    path("o/<slug:org_slug>/", views.organization_home, name="org_home"),
    path("o/<slug:org_slug>/members/", views.member_list, name="member_list"),
    path(
        "o/<slug:org_slug>/members/<int:membership_id>/role/",
        views.member_role_change,
        name="member_role_change",
    ),
    path(
        "o/<slug:org_slug>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="member_remove",
    ),
    path("o/<slug:org_slug>/leave/", views.organization_leave_view, name="org_leave"),
    path("o/<slug:org_slug>/settings/", views.organization_settings, name="org_settings"),
    path(
        "o/<slug:org_slug>/settings/time-zone/",
        views.organization_time_zone,
        name="org_time_zone",
    ),
    path(
        "o/<slug:org_slug>/invitations/new/",
        views.invitation_create_view,
        name="invitation_create",
    ),
    path(
        "o/<slug:org_slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path("invitations/<str:token>/", views.invitation_accept_view, name="invitation_accept"),
]
