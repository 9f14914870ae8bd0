"""Retention deletes exactly what the plan says, in batches, follows a plan change on the next
run, and never deletes at once because of a downgrade: it warns the owners first and deletes
only after the grace period. It keeps whole local days of the organization's zone, and what the
dashboard reads (every rollup table) ends where the events do: a rebuild from the events kept
makes the same rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db.models import Min, Sum
from rest_framework.test import APIClient

from accounts.models import Organization, PlanCode
from accounts.tenancy import organization_scope
from analytics import selectors
from analytics.models import (
    RollupDirtyBucket,
    UsageDailyRollup,
    UsageRollup,
)
from analytics.services import ROLLUP_MODELS, bucket_floor, rollups_rebuild, rollups_refresh
from analytics.tests.factories import api_key_with_value, events_random
from analytics.tests.helpers import by_local_day, raw_events, rollup_snapshot, totals_of
from devices.models import Device
from devices.tests.factories import DeviceFactory
from ingest.models import Delivery, Event
from retention.models import RetentionState
from retention.services import organization_retention_apply, retention_cutoff
from retention.tasks import organization_retention_task, retention_nightly_task
from retention.tests.factories import DeliveryFactory, StoredEventFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 20, 2, 43, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _billing_on(settings):
    """The plans' own retention (with billing off every organization keeps the largest plan's,
    `test_with_billing_off_every_organization_keeps_the_largest_plans_history`)."""
    settings.BILLING_ENABLED = True


@pytest.fixture
def now(time_machine):
    time_machine.move_to(NOW, tick=False)
    return NOW


def _plan(org, code: str) -> Organization:
    Organization.objects.filter(pk=org.pk).update(plan=code)
    org.refresh_from_db()
    return org


def _ages(org, now) -> list[timedelta]:
    with organization_scope(org):
        return sorted(now - at for at in Event.objects.values_list("occurred_at", flat=True))


def _events_at(org, now, *ages: timedelta, **fields) -> list[Event]:
    return [StoredEventFactory(organization=org, occurred_at=now - age, **fields) for age in ages]


def _settled(org, days: int) -> RetentionState:
    """An organization the job has run for before, keeping `days`."""
    return RetentionState.all_orgs.create(organization=org, enforced_days=days)


# --- Exactly what the plan says -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "days", "cutoff"),
    [
        # 7 days before 20 Mar 02:43 UTC is 13 Mar: kept from its (UTC) midnight on.
        (PlanCode.FREE, 7, datetime(2026, 3, 13, tzinfo=UTC)),
        (PlanCode.PRO, 90, datetime(2025, 12, 20, tzinfo=UTC)),
    ],
)
def test_events_before_the_start_of_the_local_day_the_plan_reaches_are_deleted(
    org, now, plan, days, cutoff
):
    _plan(org, plan)
    _settled(org, days)
    tiny = timedelta(microseconds=1)
    _events_at(org, now, timedelta(0), timedelta(days=days), now - cutoff, now - cutoff + tiny)
    _events_at(org, now, timedelta(days=days * 3))

    run = organization_retention_apply(organization=org)

    assert run.cutoff == cutoff
    assert (run.deleted_events, run.finished, run.warned) == (2, True, False)
    # At least the plan's days are kept: N x 24 hours ago, and the rest of that local day.
    assert _ages(org, now) == [timedelta(0), timedelta(days=days), now - cutoff]


def test_with_billing_off_every_organization_keeps_the_largest_plans_history(org, now, settings):
    settings.BILLING_ENABLED = False
    _plan(org, PlanCode.FREE)
    _settled(org, 7)  # (a night with billing on before: the job follows the plan in force)
    _events_at(org, now, timedelta(days=30), timedelta(days=89), timedelta(days=91))

    run = organization_retention_apply(organization=org)

    assert (run.plan_days, run.enforced_days, run.deleted_events) == (90, 90, 1)
    assert _ages(org, now) == [timedelta(days=30), timedelta(days=89)]
    assert mail.outbox == []


def test_another_organizations_events_are_not_touched(org, other_org, now):
    _settled(org, 7)
    _settled(_plan(other_org, PlanCode.TEAM), 90)
    _events_at(org, now, timedelta(days=30))
    _events_at(other_org, now, timedelta(days=30))

    organization_retention_apply(organization=org)

    assert _ages(org, now) == []
    assert _ages(other_org, now) == [timedelta(days=30)]


def test_deliveries_of_deleted_events_go_too_and_device_counts_stay_exact(org, now):
    _settled(org, 7)
    first, second = DeviceFactory(organization=org), DeviceFactory(organization=org)
    old = _events_at(org, now, timedelta(days=8), timedelta(days=9), device=first)
    young = _events_at(org, now, timedelta(days=1), device=first)
    # The second device sent one old and the young event after the first one did.
    DeliveryFactory(organization=org, device=second, event_id=old[0].event_id)
    DeliveryFactory(organization=org, device=second, event_id=young[0].event_id)
    Device.all_orgs.filter(pk=first.pk).update(event_count=3)
    Device.all_orgs.filter(pk=second.pk).update(event_count=2)

    organization_retention_apply(organization=org)

    assert list(Delivery.all_orgs.values_list("event_id", flat=True)) == [young[0].event_id]
    assert Device.all_orgs.get(pk=first.pk).event_count == 1
    assert Device.all_orgs.get(pk=second.pk).event_count == 1


# --- Batches ------------------------------------------------------------------------------------


def test_deletes_in_batches_and_says_when_it_stopped_with_rows_left(org, now):
    _settled(org, 7)
    _events_at(org, now, *[timedelta(days=8, minutes=n) for n in range(25)])
    _events_at(org, now, timedelta(days=1))

    first = organization_retention_apply(organization=org, batch_size=10, max_batches=2)
    assert (first.deleted_events, first.finished) == (20, False)
    # Oldest first: what is left of the old ones are the youngest five.
    assert _ages(org, now)[1:] == [timedelta(days=8, minutes=n) for n in range(5)]

    second = organization_retention_apply(organization=org, batch_size=10, max_batches=2)
    assert (second.deleted_events, second.finished) == (5, True)
    assert _ages(org, now) == [timedelta(days=1)]


def test_each_batch_is_its_own_short_transaction(org, now, django_assert_max_num_queries):
    _settled(org, 7)
    laptop, desktop = DeviceFactory(organization=org), DeviceFactory(organization=org)
    _events_at(org, now, *[timedelta(days=8, minutes=n) for n in range(15)], device=laptop)
    _events_at(org, now, *[timedelta(days=9, minutes=n) for n in range(15)], device=desktop)
    from ingest.services import events_before_delete

    # Savepoint, lock, choose, devices, count deliveries, delete deliveries, delete events,
    # one update per device in the batch: a fixed handful, whatever the batch size.
    with django_assert_max_num_queries(10):
        assert (
            events_before_delete(organization=org, before=now - timedelta(days=7), batch_size=10)
            == 10
        )


def test_the_task_runs_again_while_rows_remain(org, now, settings):
    settings.RETENTION_BATCH_SIZE = 4
    settings.RETENTION_BATCHES_PER_RUN = 2
    _settled(org, 7)
    _events_at(org, now, *[timedelta(days=8, minutes=n) for n in range(19)])

    organization_retention_task.delay(organization_id=org.pk)

    assert _ages(org, now) == []


def test_the_task_stops_at_its_run_cap(org, now, settings, caplog):
    settings.RETENTION_BATCH_SIZE = 2
    settings.RETENTION_BATCHES_PER_RUN = 1
    settings.RETENTION_MAX_RUNS = 3
    _settled(org, 7)
    _events_at(org, now, *[timedelta(days=8, minutes=n) for n in range(10)])

    organization_retention_task.delay(organization_id=org.pk)

    assert len(_ages(org, now)) == 4  # three runs of one batch of two
    assert "run cap" in caplog.text


def test_the_nightly_task_covers_every_organization(org, other_org, now):
    _settled(org, 7)
    _settled(other_org, 7)
    _events_at(org, now, timedelta(days=8))
    _events_at(other_org, now, timedelta(days=8))

    assert retention_nightly_task.delay().get() >= 2

    assert _ages(org, now) == [] and _ages(other_org, now) == []


def test_running_twice_deletes_nothing_more(org, now):
    _settled(org, 7)
    _events_at(org, now, timedelta(days=8), timedelta(days=6))
    assert organization_retention_apply(organization=org).deleted_events == 1
    assert organization_retention_apply(organization=org).deleted_events == 0
    assert _ages(org, now) == [timedelta(days=6)]


# --- Plan changes -------------------------------------------------------------------------------


def test_an_upgrade_takes_effect_on_the_next_run(org, now, time_machine):
    _settled(org, 7)
    _events_at(org, now, timedelta(days=5))
    organization_retention_apply(organization=org)

    _plan(org, PlanCode.PRO)
    later = now + timedelta(days=30)
    time_machine.move_to(later, tick=False)
    run = organization_retention_apply(organization=org)

    assert run.enforced_days == 90
    assert _ages(org, later) == [timedelta(days=35)]


def test_a_downgrade_with_nothing_in_between_takes_effect_on_the_next_run(org, now, time_machine):
    _plan(org, PlanCode.PRO)
    _settled(org, 90)
    _events_at(org, now, timedelta(days=2))
    assert organization_retention_apply(organization=org).enforced_days == 90

    _plan(org, PlanCode.FREE)
    run = organization_retention_apply(organization=org)
    assert (run.enforced_days, run.warned) == (7, False)  # no row older than 7 days to warn of
    assert mail.outbox == []

    later = now + timedelta(days=6)
    time_machine.move_to(later, tick=False)
    organization_retention_apply(organization=org)
    assert _ages(org, later) == []


def test_a_downgrade_warns_the_owners_then_deletes_only_after_the_grace_period(
    org, owner, member, now, time_machine, settings
):
    settings.SITE_URL = "https://clawtrace.example"
    settings.RETENTION_DOWNGRADE_GRACE_DAYS = 3
    _plan(org, PlanCode.TEAM)
    _events_at(org, now, timedelta(days=1), timedelta(days=10), timedelta(days=50))
    _events_at(org, now, timedelta(days=100))  # beyond any plan: goes at once
    assert organization_retention_apply(organization=org).deleted_events == 1

    # A refund returns the organization to Free: nothing goes that night, the owners hear.
    _plan(org, PlanCode.FREE)
    run = organization_retention_apply(organization=org)
    assert (run.deleted_events, run.enforced_days, run.warned) == (0, 90, True)
    (warning,) = mail.outbox
    assert warning.to == ["owner@alpha.example"]  # owners only, not the member
    assert warning.subject == (
        "[ClawTrace] Alpha Labs: history older than 7 days will be deleted from 23 Mar 2026"
    )
    assert "Nothing has been deleted yet" in warning.body
    assert "https://clawtrace.example/pricing/" in warning.body
    state = RetentionState.all_orgs.get(organization=org)
    assert (state.pending_days, state.warned_at, state.applies_from) == (
        7,
        now,
        now + timedelta(days=3),
    )

    # The next nights until the grace period ends: no second warning, nothing deleted.
    for day in (1, 2):
        time_machine.move_to(now + timedelta(days=day, hours=-1), tick=False)
        assert organization_retention_apply(organization=org).deleted_events == 0
    assert len(mail.outbox) == 1

    # Once it has passed, the plan's retention applies.
    after = now + timedelta(days=3)
    time_machine.move_to(after, tick=False)
    run = organization_retention_apply(organization=org)
    assert (run.enforced_days, run.deleted_events) == (7, 2)
    assert _ages(org, after) == [timedelta(days=4)]
    assert len(mail.outbox) == 1


def test_a_downgrade_warns_only_of_what_the_shorter_retentions_whole_days_delete(org, now):
    # 7 days and an hour ago is still 13 Mar, the first day Free keeps (from 00:00): a
    # downgrade deletes nothing, so it warns of nothing and applies at once.
    _plan(org, PlanCode.PRO)
    _settled(org, 90)
    _events_at(org, now, timedelta(days=7, hours=1))
    _plan(org, PlanCode.FREE)

    run = organization_retention_apply(organization=org)

    assert (run.enforced_days, run.warned, run.deleted_events) == (7, False, 0)
    assert _ages(org, now) == [timedelta(days=7, hours=1)]
    assert mail.outbox == []


def test_an_upgrade_during_the_grace_period_cancels_the_deletion(org, now, time_machine):
    _plan(org, PlanCode.PRO)
    _settled(org, 90)
    _events_at(org, now, timedelta(days=20))
    _plan(org, PlanCode.FREE)
    assert organization_retention_apply(organization=org).warned

    _plan(org, PlanCode.PRO)
    time_machine.move_to(now + timedelta(days=5), tick=False)
    run = organization_retention_apply(organization=org)

    assert (run.enforced_days, run.deleted_events) == (90, 0)
    state = RetentionState.all_orgs.get(organization=org)
    assert state.pending_days is None and state.applies_from is None

    # A later downgrade warns again: the first warning was about a change that did not happen.
    _plan(org, PlanCode.FREE)
    assert organization_retention_apply(organization=org).warned
    assert len(mail.outbox) == 2


def test_a_first_run_over_older_history_warns_before_deleting(org, now):
    # An organization on Free that holds weeks of history the job has never looked at (the
    # job is new, or it was on a longer plan before it ever ran): warned, not deleted.
    _events_at(org, now, timedelta(days=30), timedelta(days=120))

    run = organization_retention_apply(organization=org)

    assert (run.enforced_days, run.warned, run.deleted_events) == (90, True, 1)
    assert _ages(org, now) == [timedelta(days=30)]
    assert len(mail.outbox) == 1


def test_a_new_organization_with_young_events_starts_on_its_plan_without_a_warning(org, now):
    _events_at(org, now, timedelta(days=1))
    run = organization_retention_apply(organization=org)
    assert (run.enforced_days, run.warned) == (7, False)
    assert mail.outbox == []


def test_a_warning_that_cannot_be_sent_is_not_recorded_and_nothing_is_deleted(
    org, now, monkeypatch, time_machine
):
    from django.core.mail.backends.locmem import EmailBackend

    def down(self, messages):
        raise ConnectionRefusedError("smtp down")

    _plan(org, PlanCode.PRO)
    _settled(org, 90)
    _events_at(org, now, timedelta(days=20))
    _plan(org, PlanCode.FREE)
    monkeypatch.setattr(EmailBackend, "send_messages", down)

    run = organization_retention_apply(organization=org)

    assert (run.enforced_days, run.warned, run.deleted_events) == (90, False, 0)
    assert RetentionState.all_orgs.get(organization=org).warned_at is None

    # The next night, with mail working again, the warning goes (and the grace starts then).
    monkeypatch.undo()
    time_machine.move_to(now + timedelta(days=1), tick=False)
    assert organization_retention_apply(organization=org).warned
    assert len(mail.outbox) == 1


# --- The rollups: what the dashboard shows is exactly the history kept --------------------------


def _zone(org, name: str) -> Organization:
    Organization.objects.filter(pk=org.pk).update(time_zone=name)
    org.refresh_from_db()
    return org


def _history(
    org, *, start: datetime, end: datetime, n: int = 300, seed: int = 7, project: str = ""
) -> None:
    """`n` varied events (models, projects, tools, unpriced ones) spread over [start, end), all
    in `project` if given, and their rollups, as the refresh keeps them."""
    events_random(org, n, seed=seed, start=start, days=max(1, (end - start).days))
    if project:
        Event.all_orgs.filter(organization=org).update(project=project)
    rollups_rebuild(organization=org)


def _event_ids(org) -> set:
    with organization_scope(org):
        return set(Event.objects.values_list("event_id", flat=True))


def _rollup_rows(org) -> dict[str, int]:
    return {name: len(rows) for name, rows in rollup_snapshot(org).items()}


def _assert_rollups_are_a_rebuild_of_the_kept_events(org) -> None:
    """Every rollup table holds exactly what a rebuild from the events still held makes: no
    row of deleted history, none missing or partial for the history kept."""
    kept = rollup_snapshot(org)
    rollups_rebuild(organization=org)
    assert rollup_snapshot(org) == kept


def _oldest_rollups(org) -> tuple[datetime | None, date | None]:
    with organization_scope(org):
        return (
            UsageRollup.objects.aggregate(first=Min("bucket"))["first"],
            UsageDailyRollup.objects.aggregate(first=Min("day"))["first"],
        )


@pytest.mark.parametrize(
    ("plan", "days", "zone", "now", "cutoff"),
    [
        (PlanCode.FREE, 7, "UTC", NOW, datetime(2026, 3, 13, tzinfo=UTC)),
        (PlanCode.TEAM, 90, "UTC", NOW, datetime(2025, 12, 20, tzinfo=UTC)),
        # +05:30: 13 Mar 02:43 UTC is 08:13 there, and that day began at 18:30 UTC the day before.
        (PlanCode.FREE, 7, "Asia/Kolkata", NOW, datetime(2026, 3, 12, 18, 30, tzinfo=UTC)),
        (PlanCode.TEAM, 90, "Asia/Kolkata", NOW, datetime(2025, 12, 19, 18, 30, tzinfo=UTC)),
        # New York's 8 Mar 2026 has 23 hours (clocks forward): it began at 05:00 UTC (EST) ...
        (
            PlanCode.FREE,
            7,
            "America/New_York",
            datetime(2026, 3, 15, 12, tzinfo=UTC),
            datetime(2026, 3, 8, 5, tzinfo=UTC),
        ),
        # ... and 1 Nov 2026 has 25 (clocks back): it began at 04:00 UTC (EDT).
        (
            PlanCode.TEAM,
            90,
            "America/New_York",
            datetime(2027, 1, 30, 12, tzinfo=UTC),
            datetime(2026, 11, 1, 4, tzinfo=UTC),
        ),
    ],
)
def test_events_and_every_rollup_table_keep_the_same_whole_local_days(
    org, time_machine, plan, days, zone, now, cutoff
):
    time_machine.move_to(now, tick=False)
    _zone(_plan(org, plan), zone)
    _settled(org, days)
    boundary_day = cutoff.astimezone(ZoneInfo(zone)).date()
    # Every 15 minutes from a day before the cutoff to a day after the boundary day, one a
    # microsecond before the cutoff, and varied usage on both sides.
    local = ZoneInfo(zone)
    laptop = DeviceFactory(organization=org)
    _events_at(org, now, now - cutoff + timedelta(microseconds=1), device=laptop)
    dense = [cutoff - timedelta(days=1) + timedelta(minutes=15 * k) for k in range(300)]
    _events_at(org, now, *[now - at for at in dense], device=laptop)
    _history(org, start=cutoff - timedelta(days=10), end=cutoff + timedelta(days=5))
    with organization_scope(org):
        held = list(Event.objects.values_list("event_id", "occurred_at"))
    kept = {event_id for event_id, at in held if at >= cutoff}
    on_boundary_day = sum(1 for _id, at in held if at.astimezone(local).date() == boundary_day)
    assert 0 < len(kept) < len(held)

    run = organization_retention_apply(organization=org)

    assert run.cutoff == cutoff
    assert run.deleted_rollup_rows > 0
    assert _event_ids(org) == kept
    assert _oldest_rollups(org) == (cutoff, boundary_day)
    # The boundary day is whole (23 or 25 hours where the clocks change that day).
    with organization_scope(org):
        boundary = UsageDailyRollup.objects.filter(day=boundary_day).aggregate(turns=Sum("turns"))
    assert boundary["turns"] == on_boundary_day
    _assert_rollups_are_a_rebuild_of_the_kept_events(org)


@pytest.mark.parametrize(("plan", "days"), [(PlanCode.FREE, 7), (PlanCode.TEAM, 90)])
def test_the_dashboard_and_the_api_show_exactly_the_usage_of_the_kept_days(
    org, owner, now, plan, days
):
    _zone(_plan(org, plan), "Asia/Kolkata")
    _settled(org, days)
    # One project: Free shows one, and the dashboard hides the others' usage (plan limits).
    _history(org, start=now - timedelta(days=days + 20), end=now, n=400, project="clawtrace")
    cutoff = retention_cutoff(organization=org, now=now, days=days)
    first_day = cutoff.astimezone(org.zone).date().isoformat()

    organization_retention_apply(organization=org)

    kept = raw_events(org)
    assert kept and min(e.occurred_at for e in kept) >= cutoff
    filters = selectors.usage_filter_parse(organization=org, params={"range": "all"})
    totals = selectors.usage_totals(organization=org, filters=filters)
    assert {k: totals[k] for k in selectors.TOTAL_KEYS} == totals_of(kept)
    _key, value = api_key_with_value(org, created_by=owner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {value}")
    body = client.get("/api/v1/usage", {"range": "all", "by": "day"}).json()
    assert body["totals"] == totals_of(kept)
    assert body["rows"][0]["day"] == first_day
    assert {row["day"]: row for row in body["rows"]} == {
        day: {"day": day, **sums} for day, sums in by_local_day(kept, org.time_zone).items()
    }


def test_another_organizations_rollups_are_not_touched(org, other_org, now):
    _settled(org, 7)
    _settled(_plan(other_org, PlanCode.TEAM), 90)
    _history(org, start=now - timedelta(days=30), end=now, seed=1)
    _history(other_org, start=now - timedelta(days=30), end=now, seed=2)
    theirs = rollup_snapshot(other_org), _event_ids(other_org)

    organization_retention_apply(organization=org)

    assert (rollup_snapshot(other_org), _event_ids(other_org)) == theirs
    _assert_rollups_are_a_rebuild_of_the_kept_events(org)


def test_rollups_go_in_batches_after_the_events_and_nothing_kept_goes_meanwhile(org, now):
    _settled(org, 7)
    _history(org, start=now - timedelta(days=20), end=now, n=300)
    cutoff = retention_cutoff(organization=org, now=now, days=7)

    def kept_rows():
        with organization_scope(org):
            return tuple(
                model.objects.filter(
                    **(
                        {"bucket__gte": cutoff}
                        if hasattr(model, "bucket")
                        else {"day__gte": cutoff.astimezone(org.zone).date()}
                    )
                ).count()
                for model in ROLLUP_MODELS
            )

    before, kept = sum(_rollup_rows(org).values()), kept_rows()
    runs = []
    while not runs or not runs[-1].finished:
        runs.append(organization_retention_apply(organization=org, batch_size=40, max_batches=3))
        assert kept_rows() == kept
        assert len(runs) < 100
    assert len(runs) > 3
    assert [run.finished for run in runs] == [False] * (len(runs) - 1) + [True]
    # The events first: no rollup row goes until a run has found none left.
    first_rollups = next(n for n, run in enumerate(runs) if run.deleted_rollup_rows)
    assert all(run.deleted_events == 0 for run in runs[first_rollups + 1 :])
    assert sum(run.deleted_rollup_rows for run in runs) == before - sum(kept)
    assert sum(_rollup_rows(org).values()) == sum(kept)
    _assert_rollups_are_a_rebuild_of_the_kept_events(org)


def test_the_task_runs_again_until_the_rollups_are_gone_too(org, now, settings):
    settings.RETENTION_BATCH_SIZE = 25
    settings.RETENTION_BATCHES_PER_RUN = 2
    _settled(org, 7)
    _history(org, start=now - timedelta(days=20), end=now, n=200)

    organization_retention_task.delay(organization_id=org.pk)

    _assert_rollups_are_a_rebuild_of_the_kept_events(org)
    assert _oldest_rollups(org)[0] >= retention_cutoff(organization=org, now=now, days=7)


def test_running_twice_deletes_no_more_rollups(org, now):
    _settled(org, 7)
    _history(org, start=now - timedelta(days=20), end=now)
    assert organization_retention_apply(organization=org).deleted_rollup_rows > 0
    once = rollup_snapshot(org)

    again = organization_retention_apply(organization=org)

    assert (again.deleted_events, again.deleted_rollup_rows) == (0, 0)
    assert rollup_snapshot(org) == once


def test_buckets_queued_before_the_cutoff_make_nothing_again_after_retention(org, now):
    _settled(org, 7)
    _history(org, start=now - timedelta(days=20), end=now)
    with organization_scope(org):
        old = list(
            UsageRollup.objects.filter(bucket__lt=now - timedelta(days=8)).values_list(
                "bucket", flat=True
            )[:20]
        )
    # Refreshes not run yet when retention comes: old buckets and a young one.
    for bucket in [*old, bucket_floor(now - timedelta(days=1))]:
        RollupDirtyBucket.all_orgs.create(organization=org, bucket=bucket)
    organization_retention_apply(organization=org)
    after_retention = rollup_snapshot(org)

    rollups_refresh(organization=org)

    assert rollup_snapshot(org) == after_retention
    assert _oldest_rollups(org)[0] >= retention_cutoff(organization=org, now=now, days=7)
    _assert_rollups_are_a_rebuild_of_the_kept_events(org)


def test_a_downgrade_keeps_the_rollups_through_the_grace_period_then_they_go_with_the_events(
    org, owner, now, time_machine, settings
):
    settings.RETENTION_DOWNGRADE_GRACE_DAYS = 3
    _plan(org, PlanCode.TEAM)
    _settled(org, 90)
    _history(org, start=now - timedelta(days=40), end=now)
    everything = rollup_snapshot(org)
    _plan(org, PlanCode.FREE)

    warned = organization_retention_apply(organization=org)
    assert (warned.warned, warned.deleted_events, warned.deleted_rollup_rows) == (True, 0, 0)
    assert rollup_snapshot(org) == everything

    after = now + timedelta(days=3)
    time_machine.move_to(after, tick=False)
    run = organization_retention_apply(organization=org)

    assert (run.enforced_days, run.cutoff) == (7, datetime(2026, 3, 16, tzinfo=UTC))
    assert run.deleted_rollup_rows > 0
    oldest_bucket, oldest_day = _oldest_rollups(org)
    assert run.cutoff <= oldest_bucket < run.cutoff + timedelta(days=1)
    assert oldest_day == date(2026, 3, 16)
    _assert_rollups_are_a_rebuild_of_the_kept_events(org)


@pytest.mark.parametrize(("plan", "kept"), [(PlanCode.PRO, True), (PlanCode.FREE, False)])
def test_the_rollups_follow_a_plan_change_on_the_next_run(org, now, time_machine, plan, kept):
    _settled(org, 7)
    _history(org, start=now - timedelta(days=6), end=now)
    assert organization_retention_apply(organization=org).deleted_rollup_rows == 0
    rows = _rollup_rows(org)

    # An upgrade (or none) and a month later: on Pro it is all still in range, on Free none.
    _plan(org, plan)
    time_machine.move_to(now + timedelta(days=30), tick=False)
    organization_retention_apply(organization=org)

    assert _rollup_rows(org) == (rows if kept else dict.fromkeys(rows, 0))
    _assert_rollups_are_a_rebuild_of_the_kept_events(org)
