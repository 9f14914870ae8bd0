"""The rollups equal the raw events, whatever happens to the events, and keeping them is
idempotent: the same questions asked of the rollups (through the selectors) and of the raw
events (in plain Python, analytics/tests/helpers.py) give the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.management import call_command

from accounts.models import Role
from accounts.services import organization_time_zone_update
from accounts.tenancy import organization_scope
from accounts.tests.factories import MembershipFactory, UserFactory
from analytics import selectors
from analytics.models import RollupDirtyBucket, UsageDailyRollup, UsageRollup
from analytics.services import rollup_buckets_mark, rollups_rebuild, rollups_refresh
from analytics.services.rollups import bucket_floor, bucket_ranges, rollups_refresh_schedule
from analytics.tasks import REFRESH_ROUNDS_PER_RUN, rollups_refresh_task, rollups_sweep_task
from analytics.tests.factories import EventFactory, events_random
from analytics.tests.helpers import (
    by_local_day,
    grouped,
    raw_events,
    rollup_snapshot,
    sessions_of,
    totals_of,
)
from devices.tests.factories import DeviceFactory
from ingest.models import Event
from ingest.serializers import batch_parse
from ingest.services import usage_batch_ingest
from ingest.tests.factories import event_id_make, event_payload

pytestmark = pytest.mark.django_db


def _all(organization, **params):
    return selectors.usage_filter_parse(
        organization=organization, params={"range": "all", **params}
    )


def _rows_by(organization, by, **params) -> dict:
    report = selectors.usage_report(
        organization=organization, filters=_all(organization, **params), by=by
    )
    return {row[by]: {k: row[k] for k in selectors.TOTAL_KEYS} for row in report["rows"]}


def _assert_rollups_match_events(organization) -> None:
    events = raw_events(organization)
    filters = _all(organization)
    totals = selectors.usage_totals(organization=organization, filters=filters)
    assert {k: totals[k] for k in selectors.TOTAL_KEYS} == totals_of(events)
    assert totals["sessions"] == sessions_of(events)
    for by in ("model", "project", "agent", "source"):
        assert _rows_by(organization, by) == grouped(events, lambda e, by=by: getattr(e, by)), by
    assert _rows_by(organization, "device") == grouped(events, lambda e: e.device.name)
    assert _rows_by(organization, "day") == by_local_day(events, organization.time_zone)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollup_totals_equal_raw_event_totals_on_random_data(org, seed):
    events_random(org, 600, seed=seed)
    rollups_rebuild(organization=org)
    _assert_rollups_match_events(org)


def test_both_row_sources_answer_the_same(org):
    """The daily rows are a cache of the 15-minute ones: reads that use either agree."""
    events_random(org, 400, seed=9)
    rollups_rebuild(organization=org)
    assert selectors.daily_rollups_ready(org)
    daily = {by: _rows_by(org, by) for by in ("model", "day", "project")}
    with mock.patch("analytics.selectors.usage.daily_rollups_ready", return_value=False):
        assert {by: _rows_by(org, by) for by in daily} == daily


def test_members_are_the_people_who_linked_the_devices(org, owner, member):
    laptop = DeviceFactory(organization=org, created_by=owner)
    server = DeviceFactory(organization=org, created_by=member)
    orphan = DeviceFactory(organization=org, created_by=None)
    events_random(org, 300, seed=4, devices=[laptop, server, orphan])
    rollups_rebuild(organization=org)
    events = raw_events(org)
    expected = grouped(
        events, lambda e: {laptop.pk: owner.email, server.pk: member.email}.get(e.device_id)
    )
    assert _rows_by(org, "member") == expected
    membership = org.memberships.get(user=member)
    for value in (str(membership.pk), member.email.upper()):
        only = _rows_by(org, "model", member=value)
        assert only == grouped([e for e in events if e.device_id == server.pk], lambda e: e.model)


@pytest.mark.parametrize(
    "zone",
    ["Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"],  # +05:30, +05:45, -03:30 (-02:30)
)
def test_days_are_right_in_half_and_quarter_hour_time_zones(org, owner, zone):
    organization_time_zone_update(organization=org, actor=owner, time_zone=zone)
    # Events at the minutes around every quarter hour of two days, so that a bucket or a day
    # boundary off by one quarter would move some of them to the wrong day.
    device = DeviceFactory(organization=org)
    start = datetime(2026, 3, 7, tzinfo=UTC)  # St John's changes to DST on 8 March 2026
    for minute in range(0, 3 * 24 * 60, 7):
        EventFactory(
            organization=org,
            device=device,
            occurred_at=start + timedelta(minutes=minute, seconds=59),
            input_tokens=minute,
        )
    rollups_rebuild(organization=org)
    expected = by_local_day(raw_events(org), zone)
    assert _rows_by(org, "day") == expected
    with mock.patch("analytics.selectors.usage.daily_rollups_ready", return_value=False):
        assert _rows_by(org, "day") == expected
    # A single local day: exactly that day's events.
    one_day = "2026-03-08"
    (row,) = selectors.usage_report(
        organization=org,
        filters=selectors.usage_filter_parse(organization=org, params={"range": one_day}),
        by="day",
    )["rows"]
    assert {k: row[k] for k in selectors.TOTAL_KEYS} == expected[one_day]


def test_each_ingest_batch_keeps_the_rollups_current_new_fuller_and_retracted(
    org, device, django_capture_on_commit_callbacks
):
    first = [event_payload(event_id=event_id_make(), input_tokens=10) for _ in range(30)]
    with django_capture_on_commit_callbacks(execute=True):
        usage_batch_ingest(device=device, events=batch_parse({"events": first}).events, retract=[])
    _assert_rollups_match_events(org)

    # A fuller copy that moved to another day, and a retraction of another event.
    moved = {**first[0], "input_tokens": 5000, "timestamp": "2026-03-04T23:59:59.000Z"}
    with django_capture_on_commit_callbacks(execute=True):
        usage_batch_ingest(
            device=device,
            events=batch_parse({"events": [moved]}).events,
            retract=[first[1]["event_id"]],
        )
    _assert_rollups_match_events(org)
    assert selectors.usage_totals(organization=org, filters=_all(org))["turns"] == 29
    assert set(_rows_by(org, "day")) == {"2026-03-01", "2026-03-04"}

    # Everything retracted: no row is left behind.
    with django_capture_on_commit_callbacks(execute=True):
        usage_batch_ingest(device=device, events=[], retract=[e["event_id"] for e in first])
    with organization_scope(org):
        assert not UsageRollup.objects.exists()
        assert not UsageDailyRollup.objects.exists()
    assert selectors.usage_totals(organization=org, filters=_all(org))["turns"] == 0


def test_a_batch_that_changes_nothing_queues_nothing(
    org, device, django_capture_on_commit_callbacks
):
    events = batch_parse({"events": [event_payload() for _ in range(5)]}).events
    with (
        mock.patch("analytics.services.rollup_buckets_mark") as mark,
        django_capture_on_commit_callbacks(execute=True),
    ):
        usage_batch_ingest(device=device, events=events, retract=[])
    assert mark.call_count == 1  # the first time, its buckets
    with (
        mock.patch("analytics.services.rollup_buckets_mark") as mark,
        django_capture_on_commit_callbacks(execute=True),
    ):
        usage_batch_ingest(device=device, events=events, retract=[])  # the same again
    mark.assert_not_called()


def test_running_the_refresh_twice_changes_nothing(org):
    events = events_random(org, 300, seed=5)
    rollup_buckets_mark(organization_id=org.pk, occurred_at=[e.occurred_at for e in events])
    rollups_refresh(organization=org)
    once = rollup_snapshot(org)
    rollup_buckets_mark(organization_id=org.pk, occurred_at=[e.occurred_at for e in events])
    rollups_refresh(organization=org)
    rollups_refresh(organization=org)
    assert rollup_snapshot(org) == once
    rollups_refresh_task.delay(organization_id=org.pk).get()
    assert rollup_snapshot(org) == once


def test_the_refresh_equals_a_rebuild(org):
    events = events_random(org, 300, seed=6)
    rollup_buckets_mark(organization_id=org.pk, occurred_at=[e.occurred_at for e in events])
    rollups_refresh(organization=org)
    refreshed = rollup_snapshot(org)
    rollups_rebuild(organization=org)
    assert rollup_snapshot(org) == refreshed


def test_a_refresh_takes_a_bounded_number_of_buckets_and_the_task_finishes_the_rest(org):
    events = events_random(org, 200, seed=7)
    with mock.patch("analytics.services.rollups.rollups_refresh_schedule"):  # not yet
        marked = rollup_buckets_mark(
            organization_id=org.pk, occurred_at=[e.occurred_at for e in events]
        )
    result = rollups_refresh(organization=org, max_buckets=10)
    assert result.buckets == 10 and result.more
    with mock.patch("analytics.services.rollups.REFRESH_BUCKETS_PER_RUN", 7):
        # A run does REFRESH_ROUNDS_PER_RUN rounds, then hands the rest to the next run.
        first_run = rollups_refresh_task.delay(organization_id=org.pk).get()
    assert first_run == 7 * REFRESH_ROUNDS_PER_RUN < marked - 10
    with organization_scope(org):
        assert not RollupDirtyBucket.objects.exists()
    _assert_rollups_match_events(org)


def test_many_batches_in_a_few_seconds_schedule_one_refresh(org):
    with mock.patch("analytics.tasks.rollups_refresh_task.apply_async") as enqueue:
        for minute in range(20):
            rollup_buckets_mark(
                organization_id=org.pk,
                occurred_at=[datetime(2026, 3, 1, 12, minute, tzinfo=UTC)],
            )
    assert enqueue.call_count == 1
    assert enqueue.call_args.kwargs["countdown"] > 0
    # Once the task has started (it clears the mark first), the next batch schedules again.
    with mock.patch("analytics.services.rollups.rollups_refresh"):
        rollups_refresh_task.delay(organization_id=org.pk)
    with mock.patch("analytics.tasks.rollups_refresh_task.apply_async") as enqueue:
        assert rollups_refresh_schedule(organization_id=org.pk)
    assert enqueue.call_count == 1


def test_rebuild_rollups_command_recomputes_from_the_raw_events(org, other_org):
    events_random(org, 200, seed=8)
    events_random(other_org, 100, seed=8)
    call_command("rebuild_rollups")
    before = rollup_snapshot(org), rollup_snapshot(other_org)
    with organization_scope(org):
        UsageRollup.objects.update(turns=999)  # drift, or a bug fixed since
        UsageDailyRollup.objects.all().delete()
        Event.objects.filter(pk=Event.objects.order_by("pk").first().pk).delete()
    call_command("rebuild_rollups", "--org", org.slug)
    _assert_rollups_match_events(org)
    assert rollup_snapshot(other_org) == before[1]


def test_rebuild_rollups_refuses_an_unknown_organization(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no organization"):
        call_command("rebuild_rollups", "--org", "nope")


def test_a_new_time_zone_is_read_right_at_once_and_the_sweep_rebuilds_the_days(org, owner):
    events_random(org, 300, seed=10)
    rollups_rebuild(organization=org)
    organization_time_zone_update(organization=org, actor=owner, time_zone="Asia/Kathmandu")
    org.refresh_from_db()
    assert not selectors.daily_rollups_ready(org)
    expected = by_local_day(raw_events(org), "Asia/Kathmandu")
    assert _rows_by(org, "day") == expected  # from the 15-minute rows meanwhile
    assert rollups_sweep_task.delay().get() == 1  # (the eager refresh runs at once)
    assert selectors.daily_rollups_ready(org)
    assert _rows_by(org, "day") == expected
    with organization_scope(org):
        assert set(UsageDailyRollup.objects.values_list("time_zone", flat=True)) == {
            "Asia/Kathmandu"
        }


def test_the_sweep_refreshes_buckets_left_queued(org):
    events = events_random(org, 50, seed=11)
    with mock.patch("analytics.services.rollups.rollups_refresh_schedule"):
        rollup_buckets_mark(organization_id=org.pk, occurred_at=[e.occurred_at for e in events])
    with organization_scope(org):
        RollupDirtyBucket.objects.update(marked_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert rollups_sweep_task.delay().get() == 1
    _assert_rollups_match_events(org)


def test_bucket_arithmetic():
    moment = datetime(2026, 3, 1, 12, 44, 59, 999999, tzinfo=UTC)
    assert bucket_floor(moment) == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    b = [datetime(2026, 3, 1, h, tzinfo=UTC) for h in (1, 2, 9)]
    assert bucket_ranges(b) == [
        (b[0], b[1] + timedelta(minutes=15)),
        (b[2], b[2] + timedelta(minutes=15)),
    ]


def test_rollups_of_one_organization_never_include_another_s(org, other_org):
    events_random(org, 100, seed=12)
    events_random(other_org, 100, seed=13)
    rollups_rebuild(organization=org)
    rollups_rebuild(organization=other_org)
    _assert_rollups_match_events(org)
    _assert_rollups_match_events(other_org)
    # An id of the other organization's device or member selects nothing here.
    theirs = other_org.memberships.first()
    their_device = other_org.devices.first()
    assert _rows_by(org, "model", member=str(theirs.pk)) == {}
    assert _rows_by(org, "model", device=str(their_device.pk)) == {}


def test_an_admin_member_can_change_the_time_zone_and_a_member_cannot(org, member):
    from clawtrace_site.exceptions import NotAllowedError

    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    organization_time_zone_update(organization=org, actor=admin, time_zone="Europe/Paris")
    with pytest.raises(NotAllowedError):
        organization_time_zone_update(organization=org, actor=member, time_zone="UTC")
    org.refresh_from_db()
    assert org.time_zone == "Europe/Paris"
