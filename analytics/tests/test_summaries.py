"""The daily summaries (a row per day and dimension value, per day and session, per day and
tool) answer the overview's unfiltered reads in a few hundred rows instead of every session's.
They are a second way to the same numbers, never other numbers: every read answers exactly
what the daily rollups answer, they follow the rollups through refreshes and rebuilds, and a
filter or a plan that hides projects reads the rollups instead."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import time_machine
from django.apps import apps

from accounts.models import Organization
from accounts.tenancy import organization_scope
from analytics import selectors
from analytics.models import SessionDailyRollup, ToolDailyTotal, UsageDailyBreakdown
from analytics.selectors import usage as usage_selectors
from analytics.selectors.dashboard_extra import filter_choices
from analytics.selectors.memo import reads_memoized
from analytics.services import rollup_buckets_mark, rollups_rebuild, rollups_refresh
from analytics.tests.dashboard_data import team_usage_create
from analytics.tests.factories import EventFactory
from analytics.tests.helpers import rollup_snapshot

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 18, 15, 40, tzinfo=UTC)
SUMMARY_MODELS = (UsageDailyBreakdown, SessionDailyRollup, ToolDailyTotal)


@pytest.fixture
def team(org: Organization, owner):
    # A half-hour zone, so that local days are not UTC's.
    Organization.objects.filter(pk=org.pk).update(time_zone="Asia/Kolkata")
    org.refresh_from_db()
    with time_machine.travel(NOW, tick=False):
        yield team_usage_create(org, now=NOW, days=40, owner=owner)


def _every_read(organization: Organization, params: dict) -> dict:
    filters = selectors.usage_filter_parse(organization=organization, params=params)
    reads = {
        "totals": selectors.usage_totals(organization=organization, filters=filters),
        "periods": selectors.period_totals(organization=organization, filters=filters),
        "forecast": selectors.month_forecast(organization=organization, filters=filters),
        "top sessions": selectors.session_top(organization=organization, filters=filters, n=25),
        "sessions": selectors.session_count(organization=organization, filters=filters),
        "tools": selectors.tool_costs(organization=organization, filters=filters),
        "cache": selectors.cache_savings(organization=organization, filters=filters),
        "budgets": selectors.budget_status_list(organization=organization),
        "plans": selectors.member_plan_comparison(organization=organization),
        "choices": filter_choices(organization=organization, filters=filters),
    }
    for by in selectors.GROUPINGS:
        if by == "hour" and params.get("range") not in ("today", "7d"):
            continue
        reads[f"by {by}"] = selectors.usage_report(
            organization=organization, filters=filters, by=by
        )
    if filters.is_bounded or params.get("range") == "all":
        reads["series"] = selectors.usage_series(organization=organization, filters=filters)
    return reads


@pytest.mark.parametrize(
    "params",
    [
        {"range": "30d"},
        {"range": "7d"},
        {"range": "today"},
        {"range": "month"},
        {"range": "all"},
        {"range": "2026-02-20..2026-03-03"},
        {"range": "30d", "source": "openclaw"},
    ],
    ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()),
)
def test_every_unfiltered_read_answers_what_the_daily_rollups_answer(team, params):
    used = []
    real = usage_selectors._summaries_for

    def spy(organization, f):
        answer = real(organization, f)
        used.append(answer is not None)
        return answer

    with time_machine.travel(NOW, tick=False):
        with mock.patch.object(usage_selectors, "_summaries_for", spy):
            from_summaries = _every_read(team.organization, params)
        with mock.patch.object(usage_selectors, "_summaries_for", return_value=None):
            from_rollups = _every_read(team.organization, params)
    for name in from_rollups:
        assert from_summaries[name] == from_rollups[name], name
    # (Not a comparison of one path with itself: the summaries answered.)
    assert used and all(used)


@pytest.mark.parametrize(
    "params",
    [{"project": "clawtrace"}, {"model": "claude-haiku-4-5"}, {"agent": "reviewer"}],
)
def test_a_filter_on_a_label_other_than_the_source_reads_the_daily_rollups(team, params):
    filters = selectors.usage_filter_parse(
        organization=team.organization, params={"range": "30d", **params}
    )
    assert usage_selectors._summaries_for(team.organization, filters) is None


def test_a_member_filter_reads_the_daily_rollups(team):
    membership = team.members[1]
    filters = selectors.usage_filter_parse(
        organization=team.organization, params={"range": "30d", "member": str(membership.pk)}
    )
    assert usage_selectors._summaries_for(team.organization, filters) is None


def test_a_plan_that_hides_projects_never_reads_the_summaries(team, settings):
    """On Free, one project shows: the summaries mix every project of a day, so the reads go to
    the rollups, which leave the hidden projects out."""
    settings.BILLING_ENABLED = True
    organization = team.organization
    Organization.objects.filter(pk=organization.pk).update(plan="free")
    organization.refresh_from_db()
    filters = selectors.usage_filter_parse(organization=organization, params={"range": "30d"})
    with time_machine.travel(NOW, tick=False):
        assert usage_selectors._summaries_for(organization, filters) is None
        shown = selectors.projects_shown(organization=organization)
        by_project = selectors.usage_report(
            organization=organization, filters=filters, by="project"
        )
    assert {row["project"] for row in by_project["rows"]} <= {*shown, None}


def test_the_summaries_follow_a_refresh_exactly_as_a_rebuild_makes_them(team):
    organization = team.organization
    device = team.devices[0]
    with time_machine.travel(NOW, tick=False):
        late = [
            EventFactory(
                organization=organization,
                device=device,
                occurred_at=NOW - timedelta(days=3, minutes=minutes),
                session_id=team.sessions[0][1],
                source=team.sessions[0][0],
                model="claude-opus-4-1",
                tools=["Bash", "Bash"],
            )
            for minutes in (5, 50, 600)
        ]
        rollup_buckets_mark(
            organization_id=organization.pk, occurred_at=[event.occurred_at for event in late]
        )
        while rollups_refresh(organization=organization).more:
            pass
        refreshed = rollup_snapshot(organization)
        rollups_rebuild(organization=organization)
    assert refreshed == rollup_snapshot(organization)
    assert all(refreshed[model.__name__] for model in SUMMARY_MODELS)


def test_a_dimension_holds_the_whole_usage_once(team):
    organization = team.organization
    with organization_scope(organization):
        per_dimension = {
            dimension: sum(
                UsageDailyBreakdown.objects.filter(dimension=dimension).values_list(
                    "cost_pico", flat=True
                )
            )
            for dimension in ("total", "device", "project", "model", "agent")
        }
        sessions = sum(SessionDailyRollup.objects.values_list("cost_pico", flat=True))
    assert len(set(per_dimension.values())) == 1
    assert sessions == per_dimension["total"] > 0


def test_the_migration_makes_the_summaries_of_rows_already_held(team):
    organization = team.organization
    made_by_refresh = rollup_snapshot(organization)
    with organization_scope(organization):
        for model in SUMMARY_MODELS:
            model.objects.all().delete()
    migration = importlib.import_module("analytics.migrations.0003_daily_summaries")
    migration.summaries_from_daily_rows(apps, None)

    def normalized(snapshot):
        # The migration writes a device's id with hyphens where SQLite's SQL writes it without.
        return {
            name: sorted(tuple(value.replace("-", "") for value in row) for row in rows)
            for name, rows in snapshot.items()
        }

    assert normalized(rollup_snapshot(organization)) == normalized(made_by_refresh)


def test_inside_one_request_the_organization_facts_are_asked_once(team, django_assert_num_queries):
    organization = team.organization
    with reads_memoized():
        usage_selectors.daily_rollups_ready(organization)
        with django_assert_num_queries(0):
            usage_selectors.daily_rollups_ready(organization)
    with django_assert_num_queries(1):
        usage_selectors.daily_rollups_ready(organization)
