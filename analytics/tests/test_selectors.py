"""The dashboard's reads beyond totals: filters, series, "today / this week / this month" in
the organization's zone, the forecast, budgets, members' plans, cache savings, tools, and the
drill-down into a session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from accounts.services import membership_subscription_plan_set, organization_time_zone_update
from analytics import selectors
from analytics.selectors import InvalidParameter, usage_filter_parse
from analytics.services import budget_set, rollups_rebuild
from analytics.tests.factories import EventFactory, events_random
from analytics.tests.helpers import raw_events, totals_of
from clawtrace_site.exceptions import ApplicationError, NotAllowedError
from devices.tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 18, 15, 0, tzinfo=UTC)


def _filters(org, **params):
    return usage_filter_parse(organization=org, params=params, now=NOW)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"range": "fortnight"}, "range"),
        ({"range": "0d"}, "range"),
        ({"range": "1999-01-01"}, "range"),
        ({"member": "someone"}, "member"),
        ({"project": "p\x00"}, "project"),
        ({"agent": "a" * 129}, "agent"),
        ({"range": "x" * 41}, "range"),
    ],
)
def test_a_bad_filter_names_its_parameter(org, params, field):
    with pytest.raises(InvalidParameter) as caught:
        _filters(org, **params)
    assert caught.value.field == field
    assert caught.value.extra["fields"] == {field: [caught.value.message.split(": ", 1)[1]]}


def test_presets_are_local_days_of_the_organization(org, owner):
    organization_time_zone_update(organization=org, actor=owner, time_zone="Asia/Kolkata")
    org.refresh_from_db()
    today = _filters(org, range="today")
    assert today.since == datetime(2026, 3, 17, 18, 30, tzinfo=UTC)
    assert today.until == datetime(2026, 3, 18, 18, 30, tzinfo=UTC)
    week = _filters(org, range="7d")
    assert week.since_day.isoformat() == "2026-03-12" and week.until_day.isoformat() == "2026-03-19"
    assert _filters(org, range="all").since is None
    assert _filters(org).range == "30d"


def test_series_are_zero_filled_in_the_organization_zone(org, owner, device):
    organization_time_zone_update(organization=org, actor=owner, time_zone="America/St_Johns")
    org.refresh_from_db()
    EventFactory(
        organization=org, device=device, occurred_at=datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    )
    rollups_rebuild(organization=org)
    days = selectors.usage_series(
        organization=org, filters=_filters(org, range="2026-03-08..2026-03-11"), by="day"
    )
    assert [point["day"] for point in days] == [
        "2026-03-08",
        "2026-03-09",
        "2026-03-10",
        "2026-03-11",
    ]
    # 02:00 UTC is 23:30 the day before in St John's (UTC-2:30 after 8 March).
    assert [point["turns"] for point in days] == [0, 1, 0, 0]
    hours = selectors.usage_series(
        organization=org, filters=_filters(org, range="2026-03-09"), by="hour"
    )
    assert len(hours) == 24
    assert [p["hour"] for p in hours if p["turns"]] == ["2026-03-09T23:00"]
    weeks = selectors.usage_series(organization=org, filters=_filters(org, range="all"), by="week")
    assert [p["week"] for p in weeks] == ["2026-03-09"]


def test_today_this_week_and_this_month_are_in_the_organization_zone(org, owner, device):
    organization_time_zone_update(organization=org, actor=owner, time_zone="Asia/Kathmandu")
    org.refresh_from_db()
    # 18 March 03:00 in Kathmandu (+05:45) is 17 March 21:15 UTC: "today" there, not here.
    EventFactory(
        organization=org, device=device, occurred_at=datetime(2026, 3, 17, 21, 15, tzinfo=UTC)
    )
    EventFactory(
        organization=org, device=device, occurred_at=datetime(2026, 3, 17, 18, 0, tzinfo=UTC)
    )
    EventFactory(
        organization=org, device=device, occurred_at=datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    )
    EventFactory(
        organization=org, device=device, occurred_at=datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    )
    rollups_rebuild(organization=org)
    periods = selectors.period_totals(organization=org, now=NOW)
    assert (periods["today"]["turns"], periods["week"]["turns"], periods["month"]["turns"]) == (
        1,
        2,
        3,
    )
    assert periods["today"]["sessions"] == 1


def test_the_forecast_is_a_range_around_the_expected_month_end(org, device):
    for day in range(1, 18):  # $1 a day, then $10 on the 10th
        EventFactory(
            organization=org,
            device=device,
            occurred_at=datetime(2026, 3, day, 12, tzinfo=UTC),
            cost_usd=Decimal(10 if day == 10 else 1),
        )
    rollups_rebuild(organization=org)
    forecast = selectors.month_forecast(organization=org, now=NOW)
    assert forecast["month"] == "2026-03"
    assert forecast["month_to_date_usd"] == 26.0
    assert forecast["low_usd"] <= forecast["expected_usd"] <= forecast["high_usd"]
    assert forecast["low_usd"] < forecast["high_usd"]
    assert forecast["expected_usd"] > 26.0


def test_budgets_show_spend_and_forecast_per_subject(org, owner, member):
    laptop = DeviceFactory(organization=org, created_by=member)
    for day in range(1, 18):
        EventFactory(
            organization=org,
            device=laptop,
            project="site" if day % 2 else "agent",
            occurred_at=datetime(2026, 3, day, 9, tzinfo=UTC),
            cost_usd=Decimal("2"),
        )
    rollups_rebuild(organization=org)
    budget_set(organization=org, actor=owner, scope="organization", monthly_usd="50")
    budget_set(organization=org, actor=owner, scope="member", member=member, monthly_usd="100")
    budget_set(organization=org, actor=owner, scope="project", project="site", monthly_usd="10")
    budget_set(organization=org, actor=owner, scope="project", project="site", monthly_usd="20")
    status = selectors.budget_status_list(organization=org, now=NOW)
    assert [(b["scope"], b["monthly_usd"], b["spent_usd"]) for b in status] == [
        ("organization", 50.0, 34.0),
        ("member", 100.0, 34.0),
        ("project", 20.0, 18.0),
    ]
    assert status[0]["is_over"] is False and status[0]["is_forecast_over"] is True
    assert status[2]["percent_used"] == 90.0


def test_only_owners_and_admins_set_budgets_and_amounts_are_checked(org, owner, member):
    with pytest.raises(NotAllowedError):
        budget_set(organization=org, actor=member, scope="organization", monthly_usd="5")
    for bad in ("0", "-3", "abc", "NaN", "1e12"):
        with pytest.raises(ApplicationError):
            budget_set(organization=org, actor=owner, scope="organization", monthly_usd=bad)
    with pytest.raises(ApplicationError):
        budget_set(organization=org, actor=owner, scope="project", monthly_usd="5")


def test_members_api_equivalent_cost_beside_their_subscription(org, owner, member):
    membership_subscription_plan_set(
        actor=member, membership=org.memberships.get(user=member), plan="claude_max_5x"
    )
    laptop = DeviceFactory(organization=org, created_by=member)
    for day in range(1, 18):
        EventFactory(
            organization=org,
            device=laptop,
            occurred_at=datetime(2026, 3, day, 9, tzinfo=UTC),
            cost_usd=Decimal("10"),
        )
    EventFactory(
        organization=org,
        device=laptop,
        source="openclaw",
        occurred_at=datetime(2026, 3, 3, tzinfo=UTC),
        cost_usd=Decimal("4"),
    )
    rollups_rebuild(organization=org)
    rows = {r["member"]: r for r in selectors.member_plan_comparison(organization=org, now=NOW)}
    mine = rows[member.email]
    assert mine["subscription_usd"] == 100.0
    assert mine["api_equivalent_usd"] == 170.0
    assert mine["other_api_usd"] == 4.0
    assert mine["subscription_saves_usd"] > 0
    assert {p["plan"]: p["monthly_usd"] for p in mine["plans"]} == {
        "claude_pro": 20.0,
        "claude_max_5x": 100.0,
        "claude_max_20x": 200.0,
    }
    assert rows[owner.email]["api_equivalent_usd"] == 0.0
    assert rows[owner.email]["subscription_usd"] is None  # API / none


def test_a_member_sets_their_own_plan_and_only_admins_set_others(org, owner, member):
    theirs = org.memberships.get(user=owner)
    with pytest.raises(NotAllowedError):
        membership_subscription_plan_set(actor=member, membership=theirs, plan="claude_pro")
    with pytest.raises(ApplicationError):
        membership_subscription_plan_set(actor=owner, membership=theirs, plan="gold")
    membership_subscription_plan_set(actor=owner, membership=theirs, plan="claude_pro")
    theirs.refresh_from_db()
    assert theirs.subscription_plan == "claude_pro"


def test_cache_savings_price_reads_against_the_full_input_price(org, device):
    # Sonnet 4.5: $3 per million input, $0.30 cache read, $3.75 5-minute write, $6 1-hour.
    EventFactory(
        organization=org,
        device=device,
        model="claude-sonnet-4-5",
        provider="anthropic",
        input_tokens=0,
        cache_read_tokens=1_000_000,
        cache_write_5m_tokens=1_000_000,
        cache_write_1h_tokens=1_000_000,
    )
    EventFactory(organization=org, device=device, model="my-own-model", provider="local-lab")
    rollups_rebuild(organization=org)
    report = selectors.cache_savings(organization=org, filters=_filters(org, range="all"))
    sonnet = next(row for row in report["rows"] if row["model"] == "claude-sonnet-4-5")
    assert sonnet["saved_usd"] == pytest.approx(2.70)
    assert sonnet["write_cost_usd"] == pytest.approx(9.75)
    assert sonnet["net_saved_usd"] == pytest.approx(-7.05)
    unknown = next(row for row in report["rows"] if row["model"] == "my-own-model")
    assert unknown["saved_usd"] == 0.0
    assert report["totals"]["saved_usd"] == pytest.approx(2.70 + unknown["saved_usd"])


def test_cost_per_tool_splits_each_turn_over_its_calls(org, device):
    EventFactory(
        organization=org, device=device, tools=["Read", "Read", "Bash"], cost_usd=Decimal("3")
    )
    EventFactory(organization=org, device=device, tools=["Bash"], cost_usd=Decimal("1"))
    EventFactory(organization=org, device=device, tools=[], cost_usd=Decimal("5"))
    rollups_rebuild(organization=org)
    report = selectors.tool_costs(organization=org, filters=_filters(org, range="all"))
    assert report["rows"] == [  # (as costly and as called: by name)
        {"tool": "Bash", "calls": 2, "turns": 2, "cost_usd": 2.0},
        {"tool": "Read", "calls": 2, "turns": 1, "cost_usd": 2.0},
    ]
    assert report["no_tool_cost_usd"] == 5.0
    assert report["total_cost_usd"] == 9.0


def test_breakdown_shares_add_up(org):
    events_random(org, 200, seed=51)
    rollups_rebuild(organization=org)
    rows = selectors.usage_breakdown(
        organization=org, filters=_filters(org, range="all"), by="model"
    )
    assert sum(row["share"] for row in rows) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(InvalidParameter):
        selectors.usage_breakdown(organization=org, filters=_filters(org, range="all"), by="day")


def test_the_session_drill_down_reads_its_turns_and_never_another_organizations(
    org, other_org, device
):
    for minute in range(5):
        EventFactory(
            organization=org,
            device=device,
            session_id="deep",
            occurred_at=datetime(2026, 3, 1, 12, minute, tzinfo=UTC),
            tools=["Edit"],
        )
    their_device = DeviceFactory(organization=other_org)
    EventFactory(organization=other_org, device=their_device, session_id="deep")
    rollups_rebuild(organization=org)
    rollups_rebuild(organization=other_org)
    detail = selectors.session_detail(organization=org, session_id="deep")
    assert len(detail["turns"]) == 5
    assert detail["tools"] == {"Edit": 5}
    assert detail["totals"] == totals_of([e for e in raw_events(org) if e.session_id == "deep"])
    assert [t["occurred_at"] for t in detail["turns"]] == sorted(
        t["occurred_at"] for t in detail["turns"]
    )
    assert selectors.session_detail(organization=org, session_id="nope") is None
    with pytest.raises(InvalidParameter):
        selectors.session_detail(organization=org, session_id="")


def test_top_sessions_rank_by_cost_then_tokens(org, device):
    for session, cost, tokens in (("a", "1", 10), ("b", "5", 10), ("c", "1", 900)):
        EventFactory(
            organization=org,
            device=device,
            session_id=session,
            cost_usd=Decimal(cost),
            input_tokens=tokens,
        )
    rollups_rebuild(organization=org)
    top = selectors.session_top(organization=org, filters=_filters(org, range="all"), n=3)
    assert [row["session"] for row in top] == ["b", "c", "a"]
    assert top[0]["device"] == device.name


def test_reads_outside_a_time_machine_use_now(org, device):
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        EventFactory(organization=org, device=device, occurred_at=NOW)
        rollups_rebuild(organization=org)
        today = selectors.period_totals(organization=org)["today"]
    assert today["turns"] == 1
