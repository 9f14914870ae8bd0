"""The events table's monthly partitions on PostgreSQL (ingest/partitions.py): made ahead, events
in their month, a fuller copy moving month, whole months dropped for retention with their keys,
deliveries and device counts. On SQLite there are none, and the functions do nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from accounts.tenancy import organization_scope
from devices.models import Device
from devices.tests.factories import device_with_secret
from ingest.models import Delivery, Event, EventKey
from ingest.partitions import (
    DEFAULT_PARTITION,
    event_partitions_drop_before,
    event_partitions_ensure,
    event_partitions_list,
    month_partition,
)
from ingest.serializers import batch_parse
from ingest.services import usage_batch_ingest
from ingest.tests.factories import event_payload
from ingest.tests.helpers import ingest, totals

# Transactional: each batch commits on its own as in production (attaching a partition in the
# transaction that inserted rows is refused while their deferred foreign-key checks wait).
pytestmark = pytest.mark.django_db(transaction=True)
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")


@pytest.fixture(autouse=True)
def _partitions(partitions_restored):
    pass


def _send(device, events, retract=()):
    return usage_batch_ingest(
        device=device, events=batch_parse({"events": events}).events, retract=list(retract)
    )


def _where(event_id: str) -> str:
    """The partition that holds the organization's event of this id."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM ingest_event WHERE event_id = %s", [event_id]
        )
        return cursor.fetchone()[0]


def _at(month: str, day: int = 15) -> str:
    return f"{month}-{day:02d}T12:00:00.000Z"


def test_on_sqlite_there_are_no_partitions_and_nothing_to_do():
    if connection.vendor == "postgresql":
        pytest.skip("SQLite only")
    assert event_partitions_list() == []
    assert event_partitions_ensure() == []
    assert event_partitions_drop_before(cutoff=datetime(2100, 1, 1, tzinfo=UTC)) == []


@on_postgresql
def test_months_are_made_ahead_once():
    later = datetime(2031, 5, 20, tzinfo=UTC)
    made = event_partitions_ensure(now=later, months_ahead=2)
    assert made == ["ingest_event_y2031m05", "ingest_event_y2031m06", "ingest_event_y2031m07"]
    assert event_partitions_ensure(now=later, months_ahead=2) == []
    june = next(p for p in event_partitions_list() if p.name == "ingest_event_y2031m06")
    assert (june.start, june.end) == (
        datetime(2031, 6, 1, tzinfo=UTC),
        datetime(2031, 7, 1, tzinfo=UTC),
    )


@on_postgresql
def test_the_task_of_the_beat_schedule_makes_the_months_to_come(settings):
    from ingest.tasks import event_partitions_ensure_task

    assert settings.CELERY_BEAT_SCHEDULE["event_partitions_ensure"]["task"] == (
        "ingest.tasks.event_partitions_ensure_task"
    )
    event_partitions_ensure_task.delay().get(timeout=10)
    names = {partition.name for partition in event_partitions_list()}
    assert month_partition(datetime.now(UTC)).name in names


@on_postgresql
def test_an_event_lands_in_its_month_and_far_times_in_the_default(org, device):
    event_partitions_ensure(now=datetime(2031, 5, 1, tzinfo=UTC), months_ahead=0)
    in_may, far = event_payload(timestamp=_at("2031-05")), event_payload(timestamp=_at("2001-01"))
    _send(device, [in_may, far])
    assert _where(in_may["event_id"]) == "ingest_event_y2031m05"
    assert _where(far["event_id"]) == DEFAULT_PARTITION


@on_postgresql
def test_making_a_month_moves_its_rows_out_of_the_default_partition(org, device):
    early = event_payload(timestamp=_at("2033-02"))
    _send(device, [early])
    assert _where(early["event_id"]) == DEFAULT_PARTITION
    event_partitions_ensure(now=datetime(2033, 2, 1, tzinfo=UTC), months_ahead=0)
    assert _where(early["event_id"]) == "ingest_event_y2033m02"
    assert _send(device, [early]).duplicates == 1  # its key still finds it


@on_postgresql
def test_a_fuller_copy_with_a_later_time_moves_to_its_month_and_its_key_follows(org, device):
    event_partitions_ensure(now=datetime(2032, 1, 1, tzinfo=UTC), months_ahead=1)
    partial = event_payload(output_tokens=1, timestamp="2032-01-31T23:59:59.000Z")
    _send(device, [partial])
    fuller = {**partial, "output_tokens": 500, "timestamp": "2032-02-01T00:00:01.000Z"}
    result = _send(device, [fuller])
    assert (result.duplicates, result.updated) == (1, 1)
    assert _where(partial["event_id"]) == "ingest_event_y2032m02"
    with organization_scope(org):
        key = EventKey.objects.get(event_id=partial["event_id"])
        assert key.occurred_at == datetime(2032, 2, 1, 0, 0, 1, tzinfo=UTC)
        assert Event.objects.count() == 1
    assert _send(device, [fuller]).updated == 0  # found again through the moved key


@on_postgresql
def test_dropping_months_before_a_cutoff_takes_whole_months_only(
    org, device, device_client, device_client_for
):
    event_partitions_ensure(now=datetime(2034, 1, 1, tzinfo=UTC), months_ahead=2)
    january = [event_payload(timestamp=_at("2034-01", day)) for day in (1, 31)]
    february = [event_payload(timestamp=_at("2034-02"))]
    march = [event_payload(timestamp=_at("2034-03"))]
    ingest(device_client, [*january, *february, *march])
    other, other_secret = device_with_secret(org, name="desktop")
    ingest(device_client_for(other_secret), [january[0], march[0]])  # deliveries of both
    before = totals(device_client)["turns"]

    dropped = event_partitions_drop_before(cutoff=datetime(2034, 2, 20, tzinfo=UTC))

    assert "ingest_event_y2034m01" in dropped
    assert "ingest_event_y2034m02" not in dropped  # not wholly older than the cutoff
    names = {partition.name for partition in event_partitions_list()}
    assert "ingest_event_y2034m01" not in names and "ingest_event_y2034m02" in names
    with organization_scope(org):
        kept = set(Event.objects.values_list("event_id", flat=True))
        keys = set(EventKey.objects.values_list("event_id", flat=True))
        delivered = set(Delivery.objects.values_list("event_id", flat=True))
    assert {e.hex for e in kept} == {e["event_id"] for e in [*february, *march]}
    assert not {e["event_id"] for e in january} & {e.hex for e in keys}
    assert {e.hex for e in delivered} == {march[0]["event_id"]}
    assert totals(device_client)["turns"] == before - 2
    device.refresh_from_db()
    other.refresh_from_db()
    assert device.event_count == before - 2
    assert other.event_count == 1
    # A late copy of a dropped month's event is a new event again, in the default partition.
    assert _send(device, [january[0]]).accepted == 1
    assert _where(january[0]["event_id"]) == DEFAULT_PARTITION


@on_postgresql
def test_a_dropped_month_can_be_kept_as_a_table_for_an_archive(org, device):
    event_partitions_ensure(now=datetime(2035, 6, 1, tzinfo=UTC), months_ahead=0)
    _send(device, [event_payload(timestamp=_at("2035-06"))])
    dropped = event_partitions_drop_before(
        cutoff=datetime(2035, 7, 1, tzinfo=UTC), keep_tables=True
    )
    assert "ingest_event_y2035m06" in dropped
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM ingest_event_y2035m06")
        assert cursor.fetchone()[0] == 1
        for name in dropped:  # (the archive's work, here: every month before the cutoff)
            cursor.execute(f"DROP TABLE {name}")
    assert Device.all_orgs.get(pk=device.pk).event_count == 0


@on_postgresql
def test_a_key_whose_event_is_gone_takes_the_event_back(org, device):
    event = event_payload()
    _send(device, [event])
    with connection.cursor() as cursor:  # as if its partition had gone without its keys
        cursor.execute("DELETE FROM ingest_event WHERE event_id = %s", [event["event_id"]])
    Device.all_orgs.filter(pk=device.pk).update(event_count=0)
    result = _send(device, [event])
    assert (result.accepted, result.duplicates) == (1, 0)
    with organization_scope(org):
        assert Event.objects.count() == EventKey.objects.count() == 1
    assert Device.all_orgs.get(pk=device.pk).event_count == 1
