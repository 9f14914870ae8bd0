"""Anomaly detection over the rollups: the agent's fixed thresholds and its hour-of-week
baseline, once per window however often it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.services import organization_time_zone_update
from accounts.tenancy import organization_scope
from analytics.models import Anomaly
from analytics.services import anomalies_detect, detect_anomalies, rollups_rebuild
from analytics.tasks import anomalies_detect_all_task, anomalies_detect_task
from analytics.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 18, 15, 40, tzinfo=UTC)


def _kinds(organization) -> list[tuple[str, str]]:
    with organization_scope(organization):
        return sorted(Anomaly.objects.values_list("kind", "subject"))


def test_nothing_unusual_finds_nothing(org, device):
    EventFactory(organization=org, device=device, occurred_at=NOW, cost_usd=Decimal("0.5"))
    rollups_rebuild(organization=org)
    assert anomalies_detect(organization=org, now=NOW) == []


def test_the_fixed_thresholds_of_the_agent(org, device):
    # One session: $6 within this hour (over the $3 hourly burn and the $5 session spike),
    # $11 today (over the $10 daily budget), 450 requests this hour (over 400).
    for n in range(450):
        EventFactory(
            organization=org,
            device=device,
            session_id="busy",
            occurred_at=NOW.replace(minute=0) + timedelta(seconds=n * 5),
            cost_usd=Decimal(6) / 450,
            input_tokens=10,
        )
    EventFactory(
        organization=org,
        device=device,
        session_id="morning",
        occurred_at=NOW - timedelta(hours=9),
        cost_usd=Decimal("5.0"),
    )
    rollups_rebuild(organization=org)
    found = anomalies_detect(organization=org, now=NOW)
    assert {a.kind for a in found} == {
        "daily_budget",
        "hourly_burn",
        "hourly_requests",
        "session_spike",
    }
    burn = next(a for a in found if a.kind == "hourly_burn")
    assert burn.window_start == NOW.replace(minute=0)
    assert burn.window_end == NOW.replace(minute=0) + timedelta(hours=1)
    assert (burn.value, burn.threshold) == (Decimal("6.000000"), Decimal("3"))
    spike = next(a for a in found if a.kind == "session_spike")
    assert spike.subject == "claude-code:busy" and spike.details["session_id"] == "busy"
    daily = next(a for a in found if a.kind == "daily_budget")
    assert daily.value == Decimal("11.000000")


def test_a_rerun_over_the_same_window_updates_instead_of_duplicating(org, device):
    EventFactory(
        organization=org,
        device=device,
        occurred_at=NOW - timedelta(minutes=30),
        cost_usd=Decimal(4),
    )
    rollups_rebuild(organization=org)
    first = anomalies_detect(organization=org, now=NOW)
    detected_at = {a.kind: a.detected_at for a in first}
    EventFactory(
        organization=org,
        device=device,
        occurred_at=NOW - timedelta(minutes=10),
        cost_usd=Decimal(4),
    )
    rollups_rebuild(organization=org)
    again = anomalies_detect(organization=org, now=NOW + timedelta(minutes=10))
    detect_anomalies(organization=org, now=NOW + timedelta(minutes=12))
    assert _kinds(org) == [("hourly_burn", ""), ("session_spike", "claude-code:session-1")]
    burn = next(a for a in again if a.kind == "hourly_burn")
    assert burn.value == Decimal("8.000000")
    assert burn.detected_at == detected_at["hourly_burn"]  # first seen then, updated since


def test_hours_follow_the_organization_clock(org, owner, device):
    organization_time_zone_update(organization=org, actor=owner, time_zone="Asia/Kolkata")
    org.refresh_from_db()
    # 15:40 UTC is 21:10 in Kolkata: the local hour began at 15:30 UTC.
    EventFactory(
        organization=org, device=device, occurred_at=NOW - timedelta(minutes=5), cost_usd=Decimal(4)
    )
    rollups_rebuild(organization=org)
    (burn,) = [a for a in anomalies_detect(organization=org, now=NOW) if a.kind == "hourly_burn"]
    assert burn.window_start == datetime(2026, 3, 18, 15, 30, tzinfo=UTC)


def test_an_hour_unusual_for_this_organization_under_every_fixed_limit(org, device):
    # Four weeks of $0.30 an hour on weekday working hours, then $2 at 15:00 UTC on a
    # Wednesday where this team spends $0.30: under the $3 limit, but far off its own habit.
    start = NOW.replace(hour=0, minute=0) - timedelta(weeks=4)
    moment = start
    while moment < NOW.replace(minute=0):
        if moment.weekday() < 5 and 9 <= moment.hour < 17:
            EventFactory(
                organization=org,
                device=device,
                occurred_at=moment + timedelta(minutes=20),
                cost_usd=Decimal("0.3"),
                session_id=f"s{moment:%j%H}",
            )
        moment += timedelta(hours=1)
    rollups_rebuild(organization=org)
    assert not [a for a in anomalies_detect(organization=org, now=NOW) if a.kind == "hour_of_week"]
    EventFactory(
        organization=org,
        device=device,
        occurred_at=NOW - timedelta(minutes=2),
        cost_usd=Decimal("2"),
        session_id="odd",
    )
    rollups_rebuild(organization=org)
    (unusual,) = [
        a for a in anomalies_detect(organization=org, now=NOW) if a.kind == "hour_of_week"
    ]
    assert unusual.value == Decimal("2.000000")
    assert unusual.baseline == Decimal("0.300000")
    assert unusual.details["score"] >= unusual.details["z_threshold"]


def test_no_baseline_before_two_weeks_of_history(org, device):
    EventFactory(
        organization=org,
        device=device,
        occurred_at=NOW - timedelta(days=10),
        cost_usd=Decimal("0.1"),
    )
    EventFactory(organization=org, device=device, occurred_at=NOW, cost_usd=Decimal("2.9"))
    rollups_rebuild(organization=org)
    assert not [a for a in anomalies_detect(organization=org, now=NOW) if a.kind == "hour_of_week"]


def test_the_tasks_run_the_detection_for_active_organizations(org, other_org, device):
    EventFactory(
        organization=org, device=device, occurred_at=datetime.now(UTC), cost_usd=Decimal(20)
    )
    rollups_rebuild(organization=org)
    assert anomalies_detect_task.delay(organization_id=org.pk).get() >= 1
    assert anomalies_detect_all_task.delay().get() == 1  # other_org has no usage
    assert {kind for kind, _ in _kinds(org)} >= {"daily_budget", "hourly_burn"}
    assert _kinds(other_org) == []
