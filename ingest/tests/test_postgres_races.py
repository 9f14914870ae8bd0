"""Races that only a real database with concurrent connections can show (PostgreSQL; skipped
on SQLite, whose writers take turns anyway).

Ingest takes no lock on the organization (ingest/services.py): each event's key orders the
batches that touch it. So these send the same events from several devices at the same instant,
round after round, in different orders, with fuller copies, retractions and moved timestamps,
and check every count against the rows: each event held once with one key, every batch's
`accepted + duplicates` its size, the accepted summing to the events stored, and each device's
`event_count` the events it holds (sent first, or delivered after another device).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from django.db import connection

from accounts.tenancy import organization_scope
from clawtrace_site.tests.concurrency import run_concurrently
from devices.models import Device
from devices.tests.factories import device_with_secret
from ingest.models import Delivery, Event, EventKey
from ingest.partitions import event_partitions_ensure
from ingest.serializers import batch_parse
from ingest.services import usage_batch_ingest
from ingest.tests.factories import event_payload

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def _rows(events: list[dict]) -> list[tuple]:
    return batch_parse({"events": events}).events


def _send(device, rows, retract=()):
    return lambda: usage_batch_ingest(device=device, events=rows, retract=list(retract))


def _assert_counts_are_the_rows(org) -> int:
    """Every event once with one key of the same time, and each device's event_count the
    events it holds; how many events the organization holds."""
    with organization_scope(org):
        events = list(Event.objects.values_list("event_id", "occurred_at", "device_id"))
        keys = dict(EventKey.objects.values_list("event_id", "occurred_at"))
        deliveries = list(Delivery.objects.values_list("event_id", "device_id"))
    assert len({event_id for event_id, _, _ in events}) == len(events), "an event held twice"
    assert {event_id: at for event_id, at, _ in events} == keys
    held = {event_id for event_id, _, _ in events}
    assert {event_id for event_id, _ in deliveries} <= held
    for device in Device.all_orgs.filter(organization=org):
        own = sum(1 for _, _, sender in events if sender == device.pk)
        delivered = sum(1 for _, receiver in deliveries if receiver == device.pk)
        assert device.event_count == own + delivered, device.name
    return len(events)


def test_two_devices_sending_the_same_batch_at_once_count_it_once(org):
    first, _ = device_with_secret(org)
    second, _ = device_with_secret(org)
    for round_ in range(10):
        rows = batch_parse({"events": [event_payload() for _ in range(1000)]}).events
        one, two = run_concurrently(
            lambda rows=rows: usage_batch_ingest(device=first, events=rows, retract=[]),
            lambda rows=rows: usage_batch_ingest(device=second, events=rows, retract=[]),
        )
        assert one.accepted + two.accepted == 1000, round_
        assert one.duplicates + two.duplicates == 1000
        assert one.updated == two.updated == 0
    with organization_scope(org):
        assert Event.objects.count() == 10_000
        # Each event once; the device that lost each race holds a delivery of it.
        assert Delivery.objects.count() == 10_000
    assert {d.event_count for d in Device.all_orgs.filter(organization=org)} == {10_000}
    assert _assert_counts_are_the_rows(org) == 10_000


def test_four_devices_with_overlapping_histories_in_any_order_count_each_event_once(org):
    devices = [device_with_secret(org, name=f"machine-{n}")[0] for n in range(4)]
    rng = random.Random(14)
    stored = 0
    for round_ in range(15):
        pool = [event_payload() for _ in range(400)]
        batches = []
        for _device in devices:  # each machine saw most of the history, in its own order
            seen = rng.sample(pool, 300)
            rng.shuffle(seen)
            batches.append(_rows(seen))
        results = run_concurrently(
            *(_send(device, rows) for device, rows in zip(devices, batches, strict=True))
        )
        for rows, result in zip(batches, results, strict=True):
            assert result.accepted + result.duplicates == len(rows), round_
            assert result.updated == 0
        distinct = len({row[0] for rows in batches for row in rows})
        assert sum(result.accepted for result in results) == distinct, round_
        stored += distinct
        assert _assert_counts_are_the_rows(org) == stored


def test_one_device_sending_a_batch_twice_at_once_counts_it_once_without_deliveries(org):
    """The sender's retry after a timeout can reach the server while the first try runs."""
    device, _ = device_with_secret(org)
    for round_ in range(10):
        rows = _rows([event_payload() for _ in range(500)])
        one, two = run_concurrently(_send(device, rows), _send(device, rows))
        assert one.accepted + two.accepted == 500, round_
    with organization_scope(org):
        assert not Delivery.objects.exists()
    assert _assert_counts_are_the_rows(org) == 5000


def test_retractions_racing_copies_of_the_same_events_leave_the_counts_exact(org):
    laptop, _ = device_with_secret(org, name="laptop")
    desktop, _ = device_with_secret(org, name="desktop")
    held = 0
    for round_ in range(12):
        events = [event_payload() for _ in range(200)]
        _send(laptop, _rows(events))()
        held += 200
        retracted_ids = [event["event_id"] for event in events[::2]]
        # The laptop retracts half while the desktop sends them all, and some new ones.
        newcomers = [event_payload() for _ in range(50)]
        retraction, copies = run_concurrently(
            _send(laptop, [], retract=retracted_ids),
            _send(desktop, _rows([*reversed(events), *newcomers])),
        )
        assert retraction.retracted == 100, round_
        assert copies.accepted + copies.duplicates == 250
        # Whichever came first for each event: retracted then re-added by the desktop, or
        # delivered by the desktop then retracted (its delivery with it).
        held += copies.accepted - retraction.retracted
        assert _assert_counts_are_the_rows(org) == held, round_


@pytest.mark.usefixtures("partitions_restored")
def test_fuller_copies_racing_across_months_end_with_the_fullest_in_its_month(org):
    event_partitions_ensure(now=datetime(2030, 1, 1, tzinfo=UTC), months_ahead=2)
    devices = [device_with_secret(org, name=f"machine-{n}")[0] for n in range(3)]
    base = [
        event_payload(output_tokens=1, timestamp="2030-01-31T23:00:00.000Z") for _ in range(200)
    ]
    _send(devices[0], _rows(base))()
    copies = [
        [
            {**e, "output_tokens": 10 * (n + 2), "timestamp": f"2030-0{n + 1}-28T12:00:00.000Z"}
            for e in base
        ]
        for n in range(3)
    ]
    run_concurrently(*(_send(device, _rows(c)) for device, c in zip(devices, copies, strict=True)))
    with organization_scope(org):
        assert set(Event.objects.values_list("output_tokens", flat=True)) == {40}
        assert set(EventKey.objects.values_list("occurred_at", flat=True)) == {
            datetime(2030, 3, 28, 12, tzinfo=UTC)
        }
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tableoid::regclass::text FROM ingest_event")
        assert [name for (name,) in cursor.fetchall()] == ["ingest_event_y2030m03"]
    assert _assert_counts_are_the_rows(org) == 200


def test_fuller_copies_racing_end_with_the_fullest(org):
    first, _ = device_with_secret(org)
    second, _ = device_with_secret(org)
    base = [event_payload(output_tokens=1) for _ in range(300)]
    usage_batch_ingest(device=first, events=batch_parse({"events": base}).events, retract=[])
    bigger = batch_parse({"events": [{**e, "output_tokens": 50} for e in base]}).events
    biggest = batch_parse({"events": [{**e, "output_tokens": 90} for e in base]}).events
    run_concurrently(
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
    one, two = run_concurrently(
        lambda: usage_batch_ingest(device=ours, events=rows, retract=[]),
        lambda: usage_batch_ingest(device=theirs, events=rows, retract=[]),
    )
    assert one.accepted == two.accepted == 500
    for organization in (org, other_org):
        with organization_scope(organization):
            assert Event.objects.count() == 500
