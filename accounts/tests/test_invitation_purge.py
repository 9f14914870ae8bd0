"""The retention purge of dead invitations: exactly the rows past the cut-off, in bounded
batches, each committed on its own."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import tasks
from accounts.models import Invitation
from accounts.services import invitation_expired_purge
from accounts.tests.factories import InvitationFactory, OrganizationFactory

NOW = timezone.now().replace(microsecond=0)
CUTOFF = NOW - timedelta(days=1)  # the purge's default: one day past expiry or revocation


def _deletes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]


def _world(stale_count: int = 8) -> tuple[set[int], set[int]]:
    """Purgeable and keepable invitations in two orgs, their pks interleaved so that every
    batch's pk range also holds rows that must stay."""
    orgs = [OrganizationFactory(), OrganizationFactory()]
    stale: set[int] = set()
    keep: set[int] = set()
    for index in range(stale_count):
        org = orgs[index % 2]
        if index % 3:
            dead = InvitationFactory(organization=org, expires_at=CUTOFF - timedelta(seconds=1))
        else:
            dead = InvitationFactory(
                organization=org,
                expires_at=NOW + timedelta(days=3),
                revoked_at=CUTOFF - timedelta(hours=index + 1),
            )
        stale.add(dead.pk)
        keepers = [
            # Expired, but not yet a day ago (on the cut-off itself is not past it).
            InvitationFactory(organization=org, expires_at=CUTOFF),
            InvitationFactory(organization=org, expires_at=CUTOFF + timedelta(seconds=1)),
            # Open.
            InvitationFactory(organization=org, expires_at=NOW + timedelta(days=5)),
            # Revoked less than a day ago.
            InvitationFactory(
                organization=org,
                expires_at=NOW + timedelta(days=5),
                revoked_at=CUTOFF + timedelta(minutes=1),
            ),
            # Accepted long ago and long expired: a record of who joined, kept.
            InvitationFactory(
                organization=org,
                expires_at=NOW - timedelta(days=60),
                accepted_at=NOW - timedelta(days=61),
            ),
        ]
        keep.update(invitation.pk for invitation in keepers)
    return stale, keep


def _remaining() -> set[int]:
    return set(Invitation.all_orgs.values_list("pk", flat=True))


@pytest.mark.django_db
def test_purge_deletes_exactly_the_rows_past_the_cutoff_across_several_batches():
    stale, keep = _world(stale_count=8)

    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
        deleted = invitation_expired_purge(batch_size=3)

    assert deleted == len(stale) == 8
    assert _remaining() == keep
    assert len(_deletes(queries)) == 3  # 3 + 3 + 2 rows: bounded, never one big DELETE


@pytest.mark.django_db
def test_purge_with_nothing_to_delete_sends_no_delete():
    _, keep = _world(stale_count=0)
    with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as queries:
        assert invitation_expired_purge(batch_size=3) == 0
    assert _deletes(queries) == []
    assert _remaining() == keep


@pytest.mark.django_db
def test_purge_stops_after_max_batches_and_the_next_call_goes_on():
    _, keep = _world(stale_count=7)

    with time_machine.travel(NOW, tick=False):
        first = invitation_expired_purge(batch_size=2, max_batches=2)
        rest = invitation_expired_purge(batch_size=2)

    assert (first, rest) == (4, 3)
    assert _remaining() == keep


@pytest.mark.django_db
def test_purge_refuses_a_batch_size_below_one():
    with pytest.raises(ValueError, match="batch_size"):
        invitation_expired_purge(batch_size=0)


@pytest.mark.django_db(transaction=True)
def test_each_batch_is_committed_on_its_own_so_a_failure_keeps_the_earlier_ones():
    stale, keep = _world(stale_count=6)
    deletes_seen = 0

    def fail_on_the_second_delete(execute, sql, params, many, context):
        nonlocal deletes_seen
        if sql.startswith("DELETE"):
            deletes_seen += 1
            if deletes_seen == 2:
                raise RuntimeError("connection lost")
        return execute(sql, params, many, context)

    with (
        time_machine.travel(NOW, tick=False),
        connection.execute_wrapper(fail_on_the_second_delete),
        pytest.raises(RuntimeError),
    ):
        invitation_expired_purge(batch_size=2)

    remaining = _remaining()
    assert keep <= remaining
    assert len(stale - remaining) == 2  # the first batch stayed deleted
    assert len(stale & remaining) == 4


@pytest.mark.django_db
def test_the_task_runs_again_while_rows_remain_and_stops_when_done(monkeypatch):
    _, keep = _world(stale_count=7)
    monkeypatch.setattr(tasks, "INVITATION_PURGE_BATCH_SIZE", 2)
    monkeypatch.setattr(tasks, "PURGE_BATCHES_PER_RUN", 1)
    runs = []
    real_purge = tasks.invitation_expired_purge

    def counting_purge(**kwargs):
        deleted = real_purge(**kwargs)
        runs.append(deleted)
        return deleted

    monkeypatch.setattr(tasks, "invitation_expired_purge", counting_purge)

    with time_machine.travel(NOW, tick=False):
        tasks.invitation_expired_purge_task.delay()  # eager in the fast suite

    assert runs == [2, 2, 2, 1]
    assert _remaining() == keep


@pytest.mark.django_db
def test_the_task_gives_up_at_its_run_cap_and_says_so(monkeypatch, caplog):
    _world(stale_count=7)
    monkeypatch.setattr(tasks, "INVITATION_PURGE_BATCH_SIZE", 1)
    monkeypatch.setattr(tasks, "PURGE_BATCHES_PER_RUN", 1)
    monkeypatch.setattr(tasks, "PURGE_MAX_RUNS", 3)

    with time_machine.travel(NOW, tick=False):
        tasks.invitation_expired_purge_task.delay()

    assert Invitation.all_orgs.count() == 7 * 5 + 4  # three runs of one row each
    assert "run cap" in caplog.text
