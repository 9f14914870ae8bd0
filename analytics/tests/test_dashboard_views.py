"""The team dashboard's pages: what a member sees, filters in the URL, drill-down links that
keep them, CSV exports equal to the selectors' rows, budgets, the first-device empty state,
and that no page of one organization shows or reaches another's."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import MembershipFactory, UserFactory
from analytics import selectors
from analytics.models import Budget
from analytics.selectors.dashboard_extra import member_plan_advice
from analytics.services import rollups_rebuild
from analytics.tables import BREAKDOWNS, TABLE_BUILDERS, UsagePage
from analytics.tests.dashboard_data import team_usage_create
from analytics.tests.factories import EventFactory
from devices.tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def team(org, owner):
    return team_usage_create(org, now=NOW, owner=owner, days=20, seed=3)


def _url(name: str, org, *args, **query) -> str:
    path = reverse(f"dashboard:{name}", args=[org.slug, *args])
    if query:
        path += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return path


def _csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _as_csv(row: dict, keys: list[str]) -> dict[str, str]:
    from analytics.tables import csv_value

    return {key: csv_value(row.get(key)) for key in keys}


# --- The overview -------------------------------------------------------------------------------


def test_overview_shows_periods_forecast_chart_breakdowns_sessions_tools_cache_and_plans(
    owner_client, org, team
):
    response = owner_client.get(_url("overview", org))

    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Today",
        "This week",
        "This month",
        "Month-end forecast",
        "Cost over time",
        "By member",
        "By device",
        "By project",
        "By model",
        "By agent",
        "Most expensive sessions",
        "Cost per tool",
        "Cache savings",
        "Anomalies",
        "Budgets this month",
        "Subscriptions against API prices",
    ):
        assert text in html, text
    forecast = selectors.month_forecast(organization=org, filters=selectors.UsageFilter())
    assert f"${forecast['low_usd']:,.2f} to ${forecast['high_usd']:,.2f}" in html
    # The chart's data is on the page for the script, and the same points as a table.
    assert 'id="series-data"' in html
    assert response.context["tables"]["series"].rows == selectors.usage_series(
        organization=org, filters=response.context["usage_filter"], by="day"
    )


def test_overview_is_for_members_only_and_plain_members_see_it_too(
    client, member_client, org, team
):
    assert client.get(_url("overview", org)).status_code == 302  # to the login page
    response = member_client.get(_url("overview", org))
    assert response.status_code == 200
    # A plain member sees the budgets but cannot set them.
    assert "Set budgets" not in response.content.decode()


def test_every_filter_comes_from_the_query_string_and_narrows_every_table(owner_client, org, team):
    device = team.devices[0]
    response = owner_client.get(
        _url("overview", org, range="7d", device=device.pk, model="claude-opus-4-1")
    )

    assert response.status_code == 200
    usage_filter = response.context["usage_filter"]
    assert usage_filter.range == "7d"
    assert usage_filter.device_ids == frozenset({device.pk})
    assert usage_filter.model == "claude-opus-4-1"
    models = response.context["tables"]["models"].rows
    assert [row["model"] for row in models] == ["claude-opus-4-1"]
    devices = response.context["tables"]["devices"].rows
    assert [row["device_id"] for row in devices] == [str(device.pk)]
    html = response.content.decode()
    assert '<option value="7d" selected>' in html
    assert '<option value="claude-opus-4-1" selected>' in html


def test_the_filter_forms_long_query_is_redirected_to_the_short_one_a_teammate_can_be_sent(
    owner_client, org, team
):
    response = owner_client.get(
        _url("overview", org)
        + "?range=custom&from=2026-03-02&to=2026-03-08&member=&device=&project=clawtrace&model="
    )

    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query == {"range": ["2026-03-02..2026-03-08"], "project": ["clawtrace"]}
    page = owner_client.get(response["Location"])
    assert page.status_code == 200
    assert page.context["usage_filter"].since_day.isoformat() == "2026-03-02"
    assert 'value="2026-03-08"' in page.content.decode()  # the "To" field shows the last day


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("range=yesterday-ish", "range"),
        ("range=custom&to=2026-03-08", "from"),
        ("range=2026-03-09..2026-03-01", "range"),
        ("member=not-an-id", "member"),
        ("by=minute", "by"),
        ("range=2025-01-01..2026-03-01&by=hour", "by"),
    ],
)
def test_a_filter_the_page_cannot_use_is_a_400_naming_the_parameter(
    owner_client, org, team, query, parameter
):
    response = owner_client.get(_url("overview", org) + "?" + query)

    assert response.status_code == 400
    assert f"{parameter}:" in response.content.decode()
    csv_response = owner_client.get(
        _url("overview", org) + "?" + query + "&format=csv&table=models"
    )
    assert csv_response.status_code == 400
    assert csv_response.json()["detail"].startswith(f"{parameter}:")


def test_links_in_the_tables_drill_down_and_keep_the_filters(owner_client, org, team):
    response = owner_client.get(_url("overview", org, range="7d", model="claude-sonnet-4-5"))
    tables = response.context["tables"]

    member_link = tables["members"].links[0]
    assert member_link.startswith(f"/o/{org.slug}/usage/members/")
    assert parse_qs(urlsplit(member_link).query) == {
        "range": ["7d"],
        "model": ["claude-sonnet-4-5"],
    }
    device_link = tables["devices"].links[0]
    assert device_link.startswith(f"/o/{org.slug}/usage/devices/")
    assert "range=7d" in device_link
    project_link = tables["projects"].links[0]
    assert project_link.startswith(f"/o/{org.slug}/usage/projects/")
    session_link = tables["sessions"].links[0]
    assert session_link.startswith(f"/o/{org.slug}/usage/sessions/")
    # Models and agents have no page: their links narrow the overview.
    agent_links = [link for link in tables["agents"].links if link]
    assert all("agent=" in link and "range=7d" in link for link in agent_links)
    for link in (member_link, device_link, project_link, session_link, *agent_links):
        assert owner_client.get(link).status_code == 200, link


def test_series_grouping_switches_between_hours_days_and_weeks(owner_client, org, team):
    for by, expected_points in (("hour", 7 * 24), ("day", 7), ("week", 2)):
        response = owner_client.get(_url("overview", org, range="7d", by=by))
        assert response.status_code == 200
        assert len(response.context["tables"]["series"].rows) == expected_points, by
    # Today defaults to hours, a long range to days, all time to weeks.
    assert owner_client.get(_url("overview", org, range="today")).context["page"].by == "hour"
    assert owner_client.get(_url("overview", org, range="30d")).context["page"].by == "day"
    assert owner_client.get(_url("overview", org, range="all")).context["page"].by == "week"


# --- CSV ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(TABLE_BUILDERS))
def test_each_tables_csv_holds_exactly_the_selectors_rows_under_the_same_filters(
    owner_client, org, team, table
):
    query = {"range": "30d", "project": "clawtrace"}
    response = owner_client.get(_url("overview", org, **query, format="csv", table=table))
    rows = _csv_rows(response)

    page = UsagePage(
        organization=org,
        filters=selectors.usage_filter_parse(organization=org, params=query),
        query=query,
        by="day",
        path=_url("overview", org),
    )
    expected = TABLE_BUILDERS[table](page)
    keys = [column.key for column in expected.columns]
    assert list(rows[0]) == keys if rows else True
    assert rows == [_as_csv(row, keys) for row in expected.rows]
    assert response["Content-Disposition"] == (
        f'attachment; filename="clawtrace-{org.slug}-{table}.csv"'
    )


def test_breakdown_csv_rows_are_the_breakdown_selectors_rows(owner_client, org, team):
    for name, (by, *_rest) in BREAKDOWNS.items():
        rows = _csv_rows(
            owner_client.get(_url("overview", org, range="7d", format="csv", table=name))
        )
        usage_filter = selectors.usage_filter_parse(organization=org, params={"range": "7d"})
        expected = selectors.usage_breakdown(organization=org, filters=usage_filter, by=by)
        assert [row[by] for row in rows] == [str(row[by] or "") for row in expected], name
        assert [Decimal(row["cost_usd"]) for row in rows] == [
            Decimal(str(row["cost_usd"])) for row in expected
        ]
        assert (
            sum(int(row["turns"]) for row in rows)
            == selectors.usage_totals(organization=org, filters=usage_filter)["turns"]
        )


def test_plan_csv_rows_are_the_plan_comparison_with_the_cheapest_option(owner_client, org, team):
    rows = _csv_rows(owner_client.get(_url("overview", org, format="csv", table="plans")))
    expected = member_plan_advice(organization=org)
    assert [row["member"] for row in rows] == [row["member"] for row in expected]
    assert [row["cheapest_plan"] for row in rows] == [row["cheapest_plan"] for row in expected]


def test_csv_of_a_table_the_page_does_not_have_is_a_400(owner_client, org, team):
    response = owner_client.get(_url("overview", org, format="csv", table="passwords"))
    assert response.status_code == 400
    assert response.json()["field"] == "table" and response.json()["detail"]
    member_page = _url("member", org, team.members[1].pk, format="csv", table="members")
    assert owner_client.get(member_page).status_code == 400  # a member's page has no such table


def test_session_page_csv_has_its_turns_and_never_any_text(owner_client, org, team):
    source, session_id = team.sessions[0]
    response = owner_client.get(
        _url("session", org, session_id, source=source, format="csv", table="turns")
    )
    rows = _csv_rows(response)
    detail = selectors.session_detail(organization=org, session_id=session_id, source=source)
    assert len(rows) == len(detail["turns"]) > 0
    assert [row["model"] for row in rows] == [turn["model"] for turn in detail["turns"]]
    assert set(rows[0]) == {
        "occurred_at",
        "model",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "tool_names",
        "agent",
        "is_sidechain",
    }


# --- Choosing a plan -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_usd", "cheapest"),
    [
        (0.0, "api"),
        (12.0, "api"),  # under Pro's $20: paying per token is cheaper
        (35.0, "claude_pro"),
        (150.0, "claude_max_5x"),
        (800.0, "claude_max_20x"),
    ],
)
def test_the_cheapest_plan_is_the_biggest_that_costs_less_than_the_usage_at_api_prices(
    api_usd, cheapest
):
    from analytics.selectors.dashboard_extra import _plan_cheapest

    assert _plan_cheapest(api_usd)[0] == cheapest


def test_a_member_on_max_20x_with_light_usage_is_told_what_switching_saves(org, owner):
    device = DeviceFactory(organization=org, created_by=owner)
    EventFactory(
        organization=org,
        device=device,
        occurred_at=datetime(2026, 3, 10, 12, tzinfo=UTC),
        cost_usd=Decimal("30"),
    )
    rollups_rebuild(organization=org)
    membership = org.memberships.get(user=owner)
    membership.subscription_plan = "claude_max_20x"
    membership.save()

    (row,) = member_plan_advice(organization=org, now=NOW)

    assert row["subscription_usd"] == 200.0
    assert row["cheapest_plan"] == "claude_pro"
    assert row["switch_saves_usd"] == 180.0


def test_a_member_records_their_own_plan_and_an_admin_anyones_but_not_a_plain_member(
    org, owner, member, client_for
):
    own = org.memberships.get(user=member)
    theirs = org.memberships.get(user=owner)
    member_client = client_for(member)

    response = member_client.post(
        _url("member_plan", org, own.pk) + "?range=7d", {"subscription_plan": "claude_max_5x"}
    )
    assert response.status_code == 302
    assert response["Location"] == _url("member", org, own.pk) + "?range=7d"
    own.refresh_from_db()
    assert own.subscription_plan == "claude_max_5x"

    refused = member_client.post(_url("member_plan", org, theirs.pk), {"subscription_plan": "api"})
    assert refused.status_code == 403
    bad = client_for(owner).post(_url("member_plan", org, own.pk), {"subscription_plan": "gold"})
    assert bad.status_code == 400
    assert (
        client_for(owner)
        .post(_url("member_plan", org, own.pk), {"subscription_plan": "claude_pro"})
        .status_code
        == 302
    )
    own.refresh_from_db()
    assert own.subscription_plan == "claude_pro"


# --- Drill-down pages ---------------------------------------------------------------------------


def test_member_page_is_the_overview_of_that_members_devices(owner_client, org, team):
    linus = team.members[2]
    response = owner_client.get(_url("member", org, linus.pk, range="30d"))

    assert response.status_code == 200
    assert response.context["usage_filter"].member_id == linus.pk
    device_ids = {row["device_id"] for row in response.context["tables"]["devices"].rows}
    assert device_ids == {str(d.pk) for d in team.devices if d.created_by_id == linus.user_id}
    assert "members" not in response.context["tables"]
    html = response.content.decode()
    assert linus.user.email in html
    assert "Subscription against API prices" in html
    assert response.context["budget_rows"][0]["member_id"] == linus.user_id


def test_device_page_shows_the_device_and_who_linked_it(owner_client, org, team):
    device = team.devices[0]
    response = owner_client.get(_url("device", org, device.pk))

    assert response.status_code == 200
    assert response.context["device_owner"].user == device.created_by
    assert "devices" not in response.context["tables"]
    assert {row["device_id"] for row in response.context["tables"]["sessions"].rows} == {
        str(device.pk)
    }


def test_project_page_narrows_to_the_project_and_404s_for_one_without_usage(
    owner_client, org, team
):
    response = owner_client.get(_url("project", org, "infra/terraform"))
    assert response.status_code == 200
    assert {row["project"] for row in response.context["tables"]["sessions"].rows} == {
        "infra/terraform"
    }
    assert owner_client.get(_url("project", org, "no-such-project")).status_code == 404


def test_session_page_shows_turns_models_and_tools_and_404s_for_an_unknown_session(
    owner_client, org, team
):
    source, session_id = team.sessions[0]
    response = owner_client.get(_url("session", org, session_id, source=source))

    assert response.status_code == 200
    tables = response.context["tables"]
    assert len(tables["turns"].rows) == response.context["session"]["totals"]["turns"]
    assert tables["models"].rows and 'id="session-data"' in response.content.decode()
    assert owner_client.get(_url("session", org, "never-seen")).status_code == 404
    assert owner_client.get(_url("session", org, "x" * 300)).status_code == 404


# --- Tenant isolation ---------------------------------------------------------------------------


def test_a_member_of_another_org_gets_404_for_this_orgs_session_device_member_and_project(
    org, other_org, other_owner, team, client_for
):
    outsider = client_for(other_owner)
    source, session_id = team.sessions[0]
    for url in (
        _url("overview", org),
        _url("session", org, session_id, source=source),
        _url("device", org, team.devices[0].pk),
        _url("member", org, team.members[1].pk),
        _url("project", org, "clawtrace"),
        _url("budgets", org),
    ):
        assert outsider.get(url).status_code == 404, url
    # Their own organization's pages do not find this one's objects either.
    for url in (
        _url("session", other_org, session_id, source=source),
        _url("device", other_org, team.devices[0].pk),
        _url("member", other_org, team.members[1].pk),
        _url("project", other_org, "clawtrace"),
    ):
        assert outsider.get(url).status_code == 404, url


def test_another_orgs_usage_never_shows_on_this_orgs_pages(
    org, other_org, other_owner, team, client_for
):
    team_usage_create(other_org, now=NOW, owner=other_owner, days=5, seed=9, domain="bravo.example")
    response = client_for(other_owner).get(_url("overview", other_org, range="all"))
    html = response.content.decode()
    assert "acme.example" not in html
    members = {row["member"] for row in response.context["tables"]["members"].rows}
    assert members and all(member.endswith("bravo.example") for member in members)


# --- Budgets ------------------------------------------------------------------------------------


def test_owner_sets_an_organization_budget_and_a_member_budget_and_removes_one(
    org, owner, client_for
):
    client = client_for(owner)
    teammate = MembershipFactory(organization=org, user=UserFactory(email="t@alpha.example"))
    url = _url("budgets", org)

    assert client.post(url, {"scope": "organization", "monthly_usd": "500"}).status_code == 302
    response = client.post(url, {"scope": "member", "member": teammate.pk, "monthly_usd": "75.50"})
    assert response.status_code == 302
    budgets = {
        (b.scope, b.member_id): b.monthly_usd for b in Budget.all_orgs.filter(organization=org)
    }
    assert budgets == {
        ("organization", None): Decimal("500.00"),
        ("member", teammate.user_id): Decimal("75.50"),
    }

    page = client.get(url)
    assert page.status_code == 200
    assert "t@alpha.example" in page.content.decode()
    budget = Budget.all_orgs.get(organization=org, scope="member")
    assert client.post(_url("budget_delete", org, budget.pk)).status_code == 302
    assert not Budget.all_orgs.filter(pk=budget.pk).exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scope": "organization", "monthly_usd": "-5"}, "monthly_usd"),
        ({"scope": "organization", "monthly_usd": "lots"}, "monthly_usd"),
        ({"scope": "member", "monthly_usd": "10"}, "member"),
        ({"scope": "project", "monthly_usd": "10"}, "project"),
        ({"scope": "galaxy", "monthly_usd": "10"}, "scope"),
    ],
)
def test_a_budget_form_with_a_wrong_field_comes_back_with_its_error(owner_client, org, data, field):
    response = owner_client.post(_url("budgets", org), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not Budget.all_orgs.filter(organization=org).exists()


def test_a_plain_member_cannot_set_or_remove_budgets(org, member, client_for):
    budget = Budget.all_orgs.create(
        organization=org, scope="organization", monthly_usd=Decimal("9")
    )
    client = client_for(member)
    page = client.get(_url("budgets", org))
    assert page.status_code == 200 and "Set a budget" not in page.content.decode()
    assert (
        client.post(_url("budgets", org), {"scope": "organization", "monthly_usd": "1"}).status_code
        == 403
    )
    assert client.post(_url("budget_delete", org, budget.pk)).status_code == 403
    assert Budget.all_orgs.get(pk=budget.pk).monthly_usd == Decimal("9")


def test_budgets_show_as_progress_with_the_forecast_against_them(owner_client, org, team):
    html = owner_client.get(_url("overview", org)).content.decode()
    assert html.count('class="budget-bar') == 3
    assert re.search(r'class="budget-forecast" style="left: [\d.]+%"', html)


# --- Empty states -------------------------------------------------------------------------------


def test_an_org_without_usage_is_told_how_to_link_a_first_device(owner_client, org):
    response = owner_client.get(_url("overview", org))

    assert response.status_code == 200
    html = response.content.decode()
    assert "No usage yet" in html
    assert "clawtrace login --server http://testserver" in html
    assert reverse("devices:device_list", args=[org.slug]) in html


def test_a_range_without_usage_says_so_in_each_table(owner_client, org, team):
    response = owner_client.get(_url("overview", org, range="2025-01-01..2025-01-31"))
    assert response.status_code == 200
    assert "No usage in this range." in response.content.decode()
    assert "No usage yet" not in response.content.decode()


def test_the_fired_alerts_block_renders_nothing_without_the_alerts_app(
    owner_client, org, team, monkeypatch
):
    from analytics import dashboard_views

    real = dashboard_views.apps.is_installed
    monkeypatch.setattr(
        dashboard_views.apps, "is_installed", lambda name: name != "alerts" and real(name)
    )
    response = owner_client.get(_url("overview", org))
    assert response.status_code == 200
    assert response.context["alerts_installed"] is False
    assert "alerts/_dashboard_fired_alerts.html" not in [t.name for t in response.templates]


def test_the_nav_has_a_usage_tab(owner_client, org):
    html = owner_client.get(reverse("accounts:org_home", args=[org.slug])).content.decode()
    assert f'href="{_url("overview", org)}"' in html


def test_pages_answer_other_methods_with_405(owner_client, org, team):
    client: Client = owner_client
    assert client.post(_url("overview", org)).status_code == 405
    assert client.delete(_url("member", org, team.members[0].pk)).status_code == 405
