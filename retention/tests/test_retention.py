"""Retention deletes exactly what the plan says, in batches, follows a plan change on the next
run, and never deletes at once because of a downgrade: it warns the owners first and deletes
only after the grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from accounts.models import Organization, PlanCode
from accounts.tenancy import organization_scope
from devices.models import Device
from devices.tests.factories import DeviceFactory
from ingest.models import Delivery, Event
from retention.models import RetentionState
from retention.services import organization_retention_apply
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


@pytest.mark.parametrize(("plan", "days"), [(PlanCode.FREE, 7), (PlanCode.PRO, 90)])
def test_events_older_than_the_plan_are_deleted_and_the_one_at_the_cutoff_is_kept(
    org, now, plan, days
):
    _plan(org, plan)
    _settled(org, days)
    cutoff = timedelta(days=days)
    tiny = timedelta(microseconds=1)
    _events_at(org, now, timedelta(0), cutoff - tiny, cutoff, cutoff + tiny, cutoff * 3)

    run = organization_retention_apply(organization=org)

    assert run.cutoff == now - cutoff
    assert (run.deleted_events, run.finished, run.warned) == (2, True, False)
    assert _ages(org, now) == [timedelta(0), cutoff - tiny, cutoff]


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
