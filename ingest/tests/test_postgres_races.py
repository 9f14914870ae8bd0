"""Races that only a real database with concurrent connections can show (PostgreSQL; skipped
on SQLite, whose writers take turns anyway)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from accounts.tenancy import organization_scope
from devices.models import Device
from devices.tests.factories import device_with_secret
from ingest.models import Delivery, Event
from ingest.serializers import batch_parse
from ingest.services import usage_batch_ingest
from ingest.tests.factories import event_payload

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def _concurrently(*calls):
    """Run each call in its own thread (so its own connection), all released at once."""
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_two_devices_sending_the_same_batch_at_once_count_it_once(org):
    first, _ = device_with_secret(org)
    second, _ = device_with_secret(org)
    for round_ in range(5):
        rows = batch_parse({"events": [event_payload() for _ in range(1000)]}).events
        one, two = _concurrently(
            lambda rows=rows: usage_batch_ingest(device=first, events=rows, retract=[]),
            lambda rows=rows: usage_batch_ingest(device=second, events=rows, retract=[]),
        )
        assert one.accepted + two.accepted == 1000, round_
        assert one.duplicates + two.duplicates == 1000
        assert one.updated == two.updated == 0
    with organization_scope(org):
        assert Event.objects.count() == 5000
        # Each event once; the device that lost each race holds a delivery of it.
        assert Delivery.objects.count() == 5000
    assert {d.event_count for d in Device.all_orgs.filter(organization=org)} == {5000}


def test_fuller_copies_racing_end_with_the_fullest(org):
    first, _ = device_with_secret(org)
    second, _ = device_with_secret(org)
    base = [event_payload(output_tokens=1) for _ in range(300)]
    usage_batch_ingest(device=first, events=batch_parse({"events": base}).events, retract=[])
    bigger = batch_parse({"events": [{**e, "output_tokens": 50} for e in base]}).events
    biggest = batch_parse({"events": [{**e, "output_tokens": 90} for e in base]}).events
    _concurrently(
        lambda: usage_batch_ingest(device=first, events=bigger, retract=[]),
        lambda: usage_batch_ingest(device=second, events=biggest, retract=[]),
    )
    with organization_scope(org):
        assert set(Event.objects.values_list("output_tokens", flat=True)) == {90}


def test_concurrent_batches_of_two_organizations_do_not_wait_for_or_touch_each_other(
    org, other_org
):
    ours, _ = device_with_secret(org)
    theirs, _ = device_with_secret(other_org)
    rows = batch_parse({"events": [event_payload() for _ in range(500)]}).events
    one, two = _concurrently(
        lambda: usage_batch_ingest(device=ours, events=rows, retract=[]),
        lambda: usage_batch_ingest(device=theirs, events=rows, retract=[]),
    )
    assert one.accepted == two.accepted == 500
    for organization in (org, other_org):
        with organization_scope(organization):
            assert Event.objects.count() == 500
