"""`ingest.signals.events_ingested`: once per stored batch that changed anything, after its
commit, with the times it touched (what analytics keeps its rollups current from)."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.db import OperationalError, transaction

from ingest.models import Event
from ingest.serializers import batch_parse
from ingest.services import _Store, usage_batch_ingest
from ingest.signals import events_ingested
from ingest.tests.factories import event_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    calls = []

    def receiver(sender, **kwargs):
        calls.append((sender, kwargs))

    events_ingested.connect(receiver)
    yield calls
    events_ingested.disconnect(receiver)


def _send(device, events, retract=()):
    return usage_batch_ingest(
        device=device, events=batch_parse({"events": events}).events, retract=list(retract)
    )


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_a_stored_batch_sends_its_times_after_the_commit(
    device, received, django_capture_on_commit_callbacks
):
    events = [event_payload(timestamp=f"2026-03-0{day}T10:00:00.000Z") for day in (1, 2, 3)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _send(device, events)
    assert received == []  # nothing before the commit
    for callback in callbacks:
        callback()
    [(sender, kwargs)] = received
    assert sender is Event
    assert kwargs["organization_id"] == device.organization_id
    assert kwargs["device_id"] == device.pk
    assert kwargs["occurred_at"] == frozenset(_at(e["timestamp"]) for e in events)
    assert kwargs["occurred_at_min"] == _at("2026-03-01T10:00:00Z")
    assert kwargs["occurred_at_max"] == _at("2026-03-03T10:00:00Z")


def test_a_moved_copy_sends_both_times_and_a_retraction_its_own(
    device, received, django_capture_on_commit_callbacks
):
    partial = event_payload(output_tokens=1, timestamp="2026-03-01T10:00:00.000Z")
    other = event_payload(timestamp="2026-03-05T08:00:00.000Z")
    _send(device, [partial, other])
    fuller = {**partial, "output_tokens": 9, "timestamp": "2026-03-02T10:00:00.000Z"}
    with django_capture_on_commit_callbacks(execute=True):
        _send(device, [fuller], retract=[other["event_id"]])
    assert received[-1][1]["occurred_at"] == frozenset(
        {_at(partial["timestamp"]), _at(fuller["timestamp"]), _at(other["timestamp"])}
    )


def test_a_batch_that_changes_nothing_sends_nothing(
    device, received, django_capture_on_commit_callbacks
):
    events = [event_payload()]
    _send(device, events)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _send(device, events)
    assert callbacks == [] and received == []


def test_a_batch_rolled_back_sends_nothing(device, received, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ZeroDivisionError),
        transaction.atomic(),
    ):
        _send(device, [event_payload()])
        _ = 1 / 0
    assert received == []


def test_a_receiver_that_fails_does_not_fail_the_batch(
    device, received, django_capture_on_commit_callbacks
):
    def broken(sender, **kwargs):
        raise RuntimeError("broker down")

    events_ingested.connect(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = _send(device, [event_payload()])
    finally:
        events_ingested.disconnect(broken)
    assert result.accepted == 1
    assert len(received) == 1


def test_a_batch_retried_after_a_deadlock_is_applied_and_signalled_once(
    device, received, django_capture_on_commit_callbacks
):
    class Deadlock(Exception):
        sqlstate = "40P01"

    real = _Store.devices_count
    calls = []

    def first_call_deadlocks(self, counts, *, now):
        calls.append(now)
        if len(calls) == 1:
            raise OperationalError("deadlock detected") from Deadlock()
        return real(self, counts, now=now)

    events = [event_payload() for _ in range(5)]
    with (
        mock.patch.object(_Store, "devices_count", first_call_deadlocks),
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = _send(device, events)
    assert len(calls) == 2
    assert (result.accepted, result.duplicates) == (5, 0)
    device.refresh_from_db()
    assert device.event_count == 5
    assert len(received) == 1
