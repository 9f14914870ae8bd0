from django.urls import path

from devices import views

app_name = "devices"

urlpatterns = [
    path("device/", views.device_verify, name="device_verify"),
    path("device/decide/", views.device_decide, name="device_decide"),
    path("o/<slug:org_slug>/devices/", views.device_list_view, name="device_list"),
    path(
        "o/<slug:org_slug>/devices/<uuid:device_id>/rename/",
        views.device_rename_view,
        name="device_rename",
    ),
    path(
        "o/<slug:org_slug>/devices/<uuid:device_id>/revoke/",
        views.device_revoke_view,
        name="device_revoke",
    ),
    path(
        "o/<slug:org_slug>/devices/keys/new/",
        views.enrollment_key_create_view,
        name="enrollment_key_create",
    ),
    path(
        "o/<slug:org_slug>/devices/keys/<int:key_id>/revoke/",
        views.enrollment_key_revoke_view,
        name="enrollment_key_revoke",
    ),
]
