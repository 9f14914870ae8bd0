from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("o/<slug:org_slug>/settings/alerts/", views.rule_list, name="rule_list"),
    path("o/<slug:org_slug>/settings/alerts/new/", views.rule_create, name="rule_create"),
    path(
        "o/<slug:org_slug>/settings/alerts/<int:rule_id>/",
        views.rule_update,
        name="rule_update",
    ),
    path(
        "o/<slug:org_slug>/settings/alerts/<int:rule_id>/enabled/",
        views.rule_enabled,
        name="rule_enabled",
    ),
    path(
        "o/<slug:org_slug>/settings/alerts/<int:rule_id>/delete/",
        views.rule_delete,
        name="rule_delete",
    ),
    path(
        "o/<slug:org_slug>/settings/alerts/deliveries/",
        views.delivery_log,
        name="delivery_log",
    ),
]
