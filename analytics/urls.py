from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("o/<slug:org_slug>/settings/api-keys/", views.api_key_list_view, name="api_key_list"),
    path(
        "o/<slug:org_slug>/settings/api-keys/new/",
        views.api_key_create_view,
        name="api_key_create",
    ),
    path(
        "o/<slug:org_slug>/settings/api-keys/<int:api_key_id>/revoke/",
        views.api_key_revoke_view,
        name="api_key_revoke",
    ),
]
