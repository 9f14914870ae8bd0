"""On Free (one project), the usage of projects beyond the first is stored but hidden from the
dashboard and the organization API, and shown again on upgrade. "The first" is the project
whose first event arrived first, recorded when its rollups are made, so a late event with an
old timestamp cannot change it. The device's own sync check counts every event stored."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.apps import apps
from django.urls import reverse

from accounts.models import Organization, PlanCode
from accounts.tenancy import organization_scope
from analytics import selectors
from analytics.models import Anomaly, AnomalyKind, Project
from analytics.services import rollup_buckets_mark, rollups_rebuild, rollups_refresh
from analytics.tests.factories import EventFactory
from ingest.tests.factories import event_payload
from ingest.tests.helpers import ingest, totals

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)
BILLING_URL = "https://clawtrace.example/o/alpha-labs/billing/"


@pytest.fixture(autouse=True)
def _billing_on_and_now(settings):
    settings.BILLING_ENABLED = True
    settings.SITE_URL = "https://clawtrace.example"
    with time_machine.travel(NOW, tick=False):
        yield


def _on_plan(org: Organization, code: str) -> Organization:
    Organization.objects.filter(pk=org.pk).update(plan=code)
    org.refresh_from_db()
    return org


def _event(org, device, project, *, occurred, received, session, cost="1.00", **fields):
    return EventFactory(
        organization=org,
        device=device,
        project=project,
        session_id=session,
        occurred_at=occurred,
        received_at=received,
        cost_usd=Decimal(cost),
        **fields,
    )


@pytest.fixture
def two_projects(org, device):
    """`api` sent first (yesterday's work), `web` a minute later, and a turn without a project
    label; each in its own session."""
    yesterday = NOW - timedelta(days=1)
    _event(org, device, "api", occurred=yesterday, received=NOW - timedelta(hours=2), session="a")
    _event(org, device, "web", occurred=yesterday, received=NOW - timedelta(hours=1), session="w")
    _event(
        org,
        device,
        "web",
        occurred=yesterday + timedelta(hours=1),
        received=NOW - timedelta(hours=1),
        session="w",
        cost="2.00",
    )
    _event(org, device, None, occurred=yesterday, received=NOW, session="n", cost="0.50")
    rollups_rebuild(organization=org)
    return org


def _usage(key_client, **params) -> dict:
    response = key_client.get("/api/v1/usage", {"range": "30d", **params})
    assert response.status_code == 200, response.content
    return response.json()


def _projects(key_client) -> dict:
    return {row["project"]: row["cost_usd"] for row in _usage(key_client, by="project")["rows"]}


def _sessions(key_client) -> set[str]:
    response = key_client.get("/api/v1/sessions", {"range": "30d"})
    assert response.status_code == 200, response.content
    return {row["session"] for row in response.json()["rows"]}


# --- The organization API -----------------------------------------------------------------------


def test_free_shows_only_the_first_project_and_unlabelled_usage_in_the_api(
    two_projects, key_client
):
    assert _projects(key_client) == {"api": 1.0, None: 0.5}
    assert _usage(key_client)["totals"]["cost_usd"] == 1.5
    assert _usage(key_client)["totals"]["turns"] == 2
    assert _sessions(key_client) == {"a", "n"}
    # Asking for the hidden project by name finds nothing either.
    assert _usage(key_client, project="web")["totals"]["turns"] == 0


def test_an_upgrade_shows_the_hidden_project_again_and_a_downgrade_hides_it(
    two_projects, key_client
):
    _on_plan(two_projects, PlanCode.PRO)
    assert _projects(key_client) == {"web": 3.0, "api": 1.0, None: 0.5}
    assert _sessions(key_client) == {"a", "w", "n"}

    _on_plan(two_projects, PlanCode.FREE)
    assert _projects(key_client) == {"api": 1.0, None: 0.5}


def test_with_billing_off_every_project_is_shown(two_projects, key_client, settings):
    settings.BILLING_ENABLED = False
    assert set(_projects(key_client)) == {"api", "web", None}


def test_the_sync_check_counts_every_event_stored_hidden_or_not(two_projects, device_client):
    assert totals(device_client)["turns"] == 4
    assert totals(device_client)["cost_usd"] == 4.5
    assert totals(device_client, scope="organization")["turns"] == 4


def test_a_late_event_with_an_older_timestamp_does_not_change_the_visible_project(
    two_projects, device, key_client
):
    # Weeks older than anything of `api`, but it arrives now: `api` stays the first project.
    _event(
        two_projects,
        device,
        "ops",
        occurred=NOW - timedelta(days=20),
        received=NOW,
        session="o",
    )
    rollups_rebuild(organization=two_projects)

    assert set(_projects(key_client)) == {"api", None}
    with organization_scope(two_projects):
        assert list(Project.objects.values_list("label", flat=True)) == ["api", "web", "ops"]


def test_the_first_project_stays_first_when_retention_has_deleted_its_events(
    two_projects, key_client
):
    from ingest.services import events_before_delete

    events_before_delete(organization=two_projects, before=NOW, batch_size=100)
    rollups_rebuild(organization=two_projects)

    # Nothing of `api` is left; `web` is still the second project, and still hidden.
    assert _projects(key_client) == {}


def test_projects_are_recorded_in_order_of_arrival_by_the_refresh_too(
    org, device_client, key_client
):
    """The usual path: ingest stores the batches and marks their buckets, the refresh
    recomputes them. The second batch's turn is older but arrives later."""
    first = event_payload(project="first", timestamp="2026-03-17T10:00:00.000Z")
    second = event_payload(project="second", timestamp="2026-03-10T10:00:00.000Z")
    assert ingest(device_client, [first]).status_code == 200
    with time_machine.travel(NOW + timedelta(seconds=5), tick=False):
        assert ingest(device_client, [second]).status_code == 200
    rollup_buckets_mark(
        organization_id=org.pk,
        occurred_at=[datetime(2026, 3, 17, 10, tzinfo=UTC), datetime(2026, 3, 10, 10, tzinfo=UTC)],
    )
    rollups_refresh(organization=org)

    assert set(_projects(key_client)) == {"first"}
    with organization_scope(org):
        assert list(Project.objects.values_list("label", flat=True)) == ["first", "second"]


def test_a_hidden_projects_session_spike_is_hidden_and_organization_anomalies_stay(
    two_projects, key_client
):
    with organization_scope(two_projects):
        for subject, project in (("w", "web"), ("a", "api"), ("n", None)):
            Anomaly.objects.create(
                organization=two_projects,
                kind=AnomalyKind.SESSION_SPIKE,
                window_start=NOW - timedelta(hours=3),
                window_end=NOW - timedelta(hours=2),
                subject=subject,
                value=Decimal("5"),
                details={"session": subject, "project": project},
            )
        Anomaly.objects.create(
            organization=two_projects,
            kind=AnomalyKind.DAILY_BUDGET,
            window_start=NOW - timedelta(days=1),
            window_end=NOW,
            value=Decimal("4.5"),
        )
    response = key_client.get("/api/v1/anomalies", {"range": "30d"})
    assert response.status_code == 200, response.content
    assert {(row["kind"], row["subject"]) for row in response.json()["rows"]} == {
        ("session_spike", "a"),
        ("session_spike", "n"),
        ("daily_budget", ""),
    }


def test_the_alert_rules_read_of_recent_anomalies_hides_the_same_spikes(two_projects):
    with organization_scope(two_projects):
        for subject, project in (("w", "web"), ("a", "api")):
            Anomaly.objects.create(
                organization=two_projects,
                kind=AnomalyKind.SESSION_SPIKE,
                window_start=NOW - timedelta(hours=3),
                window_end=NOW - timedelta(hours=2),
                subject=subject,
                value=Decimal("5"),
                details={"session": subject, "project": project},
                updated_at=NOW - timedelta(minutes=5),
            )
        Anomaly.objects.create(
            organization=two_projects,
            kind=AnomalyKind.DAILY_BUDGET,
            window_start=NOW - timedelta(days=1),
            window_end=NOW,
            value=Decimal("12"),
            updated_at=NOW - timedelta(hours=2),
        )

    def recent(kinds, since):
        rows = selectors.anomaly_recent_list(
            organization=two_projects, kinds=kinds, updated_since=since
        )
        return [(row.kind, row.subject) for row in rows]

    assert recent({"session_spike", "daily_budget"}, NOW - timedelta(hours=3)) == [
        ("daily_budget", ""),
        ("session_spike", "a"),
    ]
    assert recent({"session_spike"}, NOW - timedelta(minutes=3)) == []


def test_the_backfill_records_the_projects_of_events_held_before(two_projects):
    with organization_scope(two_projects):
        Project.objects.all().delete()
    migration = importlib.import_module("analytics.migrations.0002_project")

    migration.projects_from_events(apps, None)

    with organization_scope(two_projects):
        assert list(Project.objects.values_list("label", flat=True)) == ["api", "web"]


# --- The dashboard ------------------------------------------------------------------------------


def test_the_dashboard_hides_the_project_and_says_so_with_a_link_to_upgrade(
    two_projects, owner_client
):
    page = owner_client.get(reverse("dashboard:overview", args=[two_projects.slug]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "1 project is hidden on the Free plan, which shows 1 project" in text
    assert f'The Pro plan shows every project: <a href="{BILLING_URL}">upgrade</a>' in text
    assert "/usage/projects/api/" in text
    assert "/usage/projects/web/" not in text
    assert owner_client.get(_project_url(two_projects, "web")).status_code == 404
    assert owner_client.get(_session_url(two_projects, "w")).status_code == 404
    assert owner_client.get(_project_url(two_projects, "api")).status_code == 200


def test_after_an_upgrade_the_dashboard_shows_every_project_and_no_notice(
    two_projects, owner_client
):
    _on_plan(two_projects, PlanCode.TEAM)
    text = owner_client.get(reverse("dashboard:overview", args=[two_projects.slug])).content
    assert b"/usage/projects/web/" in text
    assert b"hidden on the" not in text
    assert owner_client.get(_project_url(two_projects, "web")).status_code == 200
    assert owner_client.get(_session_url(two_projects, "w")).status_code == 200


def test_hidden_projects_counts_projects_not_events(two_projects, device):
    _event(two_projects, device, "ops", occurred=NOW, received=NOW, session="o")
    rollups_rebuild(organization=two_projects)
    hidden = selectors.hidden_projects(organization=two_projects)
    assert (hidden["count"], hidden["plan_name"], hidden["shown"]) == (2, "Free", 1)
    assert hidden["upgrade"].plan_name == "Pro" and hidden["upgrade_url"] == BILLING_URL


def _project_url(org, project: str) -> str:
    return reverse("dashboard:project", args=[org.slug, project]) + "?range=30d"


def _session_url(org, session: str) -> str:
    return reverse("dashboard:session", args=[org.slug, session])
