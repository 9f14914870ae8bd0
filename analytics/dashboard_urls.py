"""The team dashboard's pages, under each organization (`/o/<org_slug>/usage/`)."""

from django.urls import path

from analytics import dashboard_views as views

app_name = "dashboard"

urlpatterns = [
    path("o/<slug:org_slug>/usage/", views.overview, name="overview"),
    path(
        "o/<slug:org_slug>/usage/members/<int:membership_id>/",
        views.member_usage,
        name="member",
    ),
    path(
        "o/<slug:org_slug>/usage/members/<int:membership_id>/plan/",
        views.member_plan,
        name="member_plan",
    ),
    path("o/<slug:org_slug>/usage/devices/<uuid:device_id>/", views.device_usage, name="device"),
    # Project labels and session ids are the agent's strings; `path` takes any of them, a
    # slash included (a project label can be "team/repo").
    path("o/<slug:org_slug>/usage/projects/<path:project>/", views.project_usage, name="project"),
    path(
        "o/<slug:org_slug>/usage/sessions/<path:session_id>/",
        views.session_usage,
        name="session",
    ),
    path("o/<slug:org_slug>/usage/budgets/", views.budgets, name="budgets"),
    path(
        "o/<slug:org_slug>/usage/budgets/<int:budget_id>/delete/",
        views.budget_delete_view,
        name="budget_delete",
    ),
]
