"""Writes for ingest: a batch of events from one device, exactly once per organization.

The rules (docs/sync-protocol.md, "Ingest"), applied to the batch's events in order, as if
they came one at a time:
- an event id the organization does not hold is stored (`accepted`);
- one it holds is a duplicate; when the new copy is the fuller one (more total tokens, or as
  many and a timestamp not earlier than the held one's) and differs from it, it replaces the
  held row and counts in `updated` too, its tool list merged with the held one's. So
  `--resync` after a price change corrects the costs, and an identical copy changes nothing;
- then each id in `retract` deletes the organization's event of that id.

Batches of one organization are applied one at a time (a row lock on the organization, held
for the few queries of the write): that makes the counts exact when two devices send the same
events at the same moment, where the unique constraint alone would only keep the rows single.
Parsing and validation happen before, outside the transaction.

A batch costs a fixed handful of queries whatever its size: lock, fetch the held copies of its
ids, fetch this device's deliveries of those, insert the new rows, update the fuller ones,
insert the deliveries, update the device. On PostgreSQL the inserts and updates pass each
column as one array (`unnest`), with no ORM object per event; elsewhere they are the ORM's
bulk operations.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import organization_scope
from devices.models import Device
from ingest.models import Delivery, Event
from ingest.serializers import EVENT_COLUMNS, EVENT_ID, MAX_TOOLS, OCCURRED_AT, TOKEN_SLICE, TOOLS

logger = logging.getLogger(__name__)

_VALUE_COLUMNS = EVENT_COLUMNS[1:]  # what an update may change (never the id)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    updated: int = 0
    retracted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _tools_merge(held: list[str], new: list[str]) -> list[str]:
    """Both lists' names, each as often as the list that calls it most (a name repeated is a
    tool called more than once in the turn); held order first, capped like the input."""
    merged = list(held)
    room = Counter(new)
    room.subtract(Counter(held))
    for name in new:
        if room[name] > 0:
            merged.append(name)
            room[name] -= 1
    return merged[:MAX_TOOLS]


def _is_fuller(new: tuple, held: tuple) -> bool:
    new_total, held_total = sum(new[TOKEN_SLICE]), sum(held[TOKEN_SLICE])
    return new_total > held_total or (
        new_total == held_total and new[OCCURRED_AT] >= held[OCCURRED_AT]
    )


def usage_batch_ingest(*, device: Device, events: list[tuple], retract: list[str]) -> IngestResult:
    """Store one validated batch (rows in `EVENT_COLUMNS` order) from `device`."""
    organization = device.organization
    result = IngestResult()
    with transaction.atomic(), organization_scope(organization):
        list(Organization.objects.select_for_update().filter(pk=organization.pk).values("pk"))
        now = timezone.now()
        held_pks, held_senders, held = _held_get([row[EVENT_ID] for row in events], organization)

        new: dict[str, tuple] = {}
        changed: dict[str, tuple] = {}
        for row in events:
            event_id = row[EVENT_ID]
            current = new.get(event_id) or changed.get(event_id) or held.get(event_id)
            if current is None:
                new[event_id] = row
                result.accepted += 1
                continue
            result.duplicates += 1
            if not _is_fuller(row, current):
                continue
            merged = (*row[:TOOLS], _tools_merge(current[TOOLS], row[TOOLS]), *row[TOOLS + 1 :])
            if merged == current:
                continue
            (new if event_id in new else changed)[event_id] = merged
            result.updated += 1

        # A device's events are those it sent first (Event.device) and those it sent after
        # another device did (Delivery): only the second kind needs a row here.
        sent_first_by_others = [key for key, sender in held_senders.items() if sender != device.pk]
        delivered_before = _deliveries_get(device=device, event_ids=sent_first_by_others)
        deliveries = [key for key in sent_first_by_others if key not in delivered_before]
        if new:
            _events_insert(organization=organization, device=device, rows=new.values(), now=now)
        if changed:
            _events_update(rows=[(held_pks[key], row) for key, row in changed.items()])
        if deliveries:
            _deliveries_insert(organization=organization, device=device, event_ids=deliveries)

        retracted_per_device: Counter = Counter()
        if retract:
            result.retracted, retracted_per_device = _events_retract(
                organization=organization, event_ids=retract
            )
        for device_id, count in retracted_per_device.items():
            if device_id != device.pk:
                Device.objects.filter(pk=device_id).update(event_count=F("event_count") - count)
        Device.objects.filter(pk=device.pk).update(
            event_count=F("event_count")
            + len(new)
            + len(deliveries)
            - retracted_per_device[device.pk],
            last_sync_at=now,
            last_seen_at=now,
        )
    logger.info(
        "ingest batch stored",
        extra={"organization_id": organization.pk, "device_id": str(device.pk), **asdict(result)},
    )
    return result


def _held_get(
    event_ids: list[str], organization: Organization
) -> tuple[dict[str, int], dict[str, object], dict[str, tuple]]:
    """The organization's copies of these ids: {id: pk}, {id: first sender's device id} and
    {id: row}, rows in `EVENT_COLUMNS` order like the batch's, so that they compare as
    tuples."""
    pks, senders, rows = {}, {}, {}
    if not event_ids:
        return pks, senders, rows
    if _is_postgresql():
        sql = (
            f"SELECT id, device_id, {', '.join(EVENT_COLUMNS)} "  # noqa: S608
            f"FROM {Event._meta.db_table} "
            "WHERE organization_id = %s AND event_id = ANY(%b::uuid[])"
        )
        with _pg_cursor() as cursor:
            cursor.execute(sql, [organization.pk, list(set(event_ids))])
            found = cursor.fetchall()
    else:
        found = Event.objects.filter(event_id__in=set(event_ids)).values_list(
            "pk", "device_id", *EVENT_COLUMNS
        )
    for pk, sender, event_id, *values in found:
        key = event_id.hex
        if isinstance(values[TOOLS - 1], str):  # (Django's PostgreSQL backend loads jsonb as text)
            values[TOOLS - 1] = orjson.loads(values[TOOLS - 1])
        pks[key], senders[key], rows[key] = pk, sender, (key, *values)
    return pks, senders, rows


def _deliveries_get(*, device: Device, event_ids: list[str]) -> set[str]:
    if not event_ids:
        return set()
    if _is_postgresql():
        sql = (
            f"SELECT event_id FROM {Delivery._meta.db_table} "  # noqa: S608
            "WHERE organization_id = %s AND device_id = %s AND event_id = ANY(%b::uuid[])"
        )
        with _pg_cursor() as cursor:
            cursor.execute(sql, [device.organization_id, device.pk, event_ids])
            return {event_id.hex for (event_id,) in cursor.fetchall()}
    return {
        event_id.hex
        for event_id in Delivery.objects.filter(device=device, event_id__in=event_ids).values_list(
            "event_id", flat=True
        )
    }


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def _pg_cursor():
    """A cursor on Django's connection (so inside its transaction) that binds parameters on
    the server: Django's own binds them on the client, quoting every element of a
    1,000-element array in Python, which cost more than the insert itself. psycopg's errors
    leave as Django's (`OperationalError`...), as from any Django cursor."""
    import psycopg

    with connection.wrap_database_errors:
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            yield cursor


def _columns(rows: list[tuple]) -> list[list]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    columns[TOOLS] = [orjson.dumps(tools).decode() for tools in columns[TOOLS]]
    return columns


_PG_TYPES = {
    "event_id": "uuid",
    "occurred_at": "timestamptz",
    "input_tokens": "bigint",
    "output_tokens": "bigint",
    "cache_read_tokens": "bigint",
    "cache_write_5m_tokens": "bigint",
    "cache_write_1h_tokens": "bigint",
    "web_search_requests": "integer",
    "cost_usd": "numeric",
    "logged_cost_usd": "numeric",
    "is_sidechain": "boolean",
    "tools": "jsonb",
}


def _pg_array(column: str) -> str:
    # %b: the array travels in binary, element by element, where the text form would have
    # each element escaped by a regular expression in Python.
    return f"%b::{_PG_TYPES.get(column, 'text')}[]"


def _events_insert(*, organization: Organization, device: Device, rows, now) -> None:
    rows = list(rows)
    if _is_postgresql():
        table = Event._meta.db_table
        names = ", ".join(EVENT_COLUMNS)
        arrays = ", ".join(_pg_array(column) for column in EVENT_COLUMNS)
        sql = (
            f"INSERT INTO {table} (organization_id, device_id, received_at, {names}) "  # noqa: S608
            f"SELECT %s, %s, %s, * FROM unnest({arrays}) "
            "ON CONFLICT (organization_id, event_id) DO NOTHING"
        )
        prefix = (organization.pk, device.pk, now)
        copy_rows = [
            (*prefix, *row[:TOOLS], orjson.dumps(row[TOOLS]).decode(), *row[TOOLS + 1 :])
            for row in rows
        ]
        _pg_copy_or_insert(
            f"COPY {table} (organization_id, device_id, received_at, {names}) FROM STDIN",
            copy_rows,
            sql,
            lambda: [*prefix, *_columns(rows)],
        )
        return
    Event.objects.bulk_create(
        [
            Event(
                organization=organization,
                device=device,
                received_at=now,
                **dict(zip(EVENT_COLUMNS, row, strict=True)),
            )
            for row in rows
        ],
        ignore_conflicts=True,
    )


def _pg_copy_or_insert(copy_sql: str, rows: list[tuple], insert_sql: str, params) -> None:
    """COPY the rows (the fastest way in); the INSERT ... ON CONFLICT DO NOTHING if one is
    there already.

    The rows are the ones the batch found missing under the organization's lock, so no other
    ingest can have added them meanwhile and COPY cannot conflict; the fallback keeps a
    broken assumption (a row written by something else) from failing every retry.
    """
    try:
        with transaction.atomic(), _pg_cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
    except IntegrityError:
        logger.warning("ingest: COPY met an existing row; inserting with ON CONFLICT instead")
        with _pg_cursor() as cursor:
            cursor.execute(insert_sql, params())


def _events_update(*, rows: list[tuple[int, tuple]]) -> None:
    if _is_postgresql():
        table = Event._meta.db_table
        assignments = ", ".join(f"{column} = v.{column}" for column in _VALUE_COLUMNS)
        arrays = ", ".join(_pg_array(column) for column in _VALUE_COLUMNS)
        names = ", ".join(_VALUE_COLUMNS)
        sql = (
            f"UPDATE {table} AS e SET {assignments} "  # noqa: S608
            f"FROM unnest(%b::bigint[], {arrays}) AS v(pk, {names}) WHERE e.id = v.pk"
        )
        columns = _columns([row for _pk, row in rows])[1:]
        with _pg_cursor() as cursor:
            cursor.execute(sql, [[pk for pk, _row in rows], *columns])
        return
    objects = []
    for pk, row in rows:
        event = Event(pk=pk, **dict(zip(EVENT_COLUMNS, row, strict=True)))
        objects.append(event)
    Event.objects.bulk_update(objects, fields=list(_VALUE_COLUMNS))


def _deliveries_insert(*, organization: Organization, device: Device, event_ids: list[str]):
    if _is_postgresql():
        sql = (
            f"INSERT INTO {Delivery._meta.db_table} (organization_id, device_id, event_id) "
            "SELECT %s, %s, unnest(%b::uuid[]) ON CONFLICT DO NOTHING"
        )
        _pg_copy_or_insert(
            f"COPY {Delivery._meta.db_table} (organization_id, device_id, event_id) FROM STDIN",
            [(organization.pk, device.pk, event_id) for event_id in event_ids],
            sql,
            lambda: [organization.pk, device.pk, event_ids],
        )
        return
    Delivery.objects.bulk_create(
        [
            Delivery(organization=organization, device=device, event_id=event_id)
            for event_id in event_ids
        ],
        ignore_conflicts=True,
    )


def _events_retract(*, organization: Organization, event_ids: list[str]) -> tuple[int, Counter]:
    """Delete the organization's events of these ids and every device's delivery of them;
    how many events went, and how many of each device's events (to keep their counts)."""
    ids = set(event_ids)
    events = Event.objects.filter(event_id__in=ids)
    per_device = Counter(dict(events.values_list("device").annotate(count=Count("pk")).order_by()))
    # Device ids spelled out, so that the delivery index (organization, device, event_id)
    # answers the look-up instead of a scan of the organization's deliveries.
    device_ids = list(Device.objects.values_list("pk", flat=True))
    deliveries = Delivery.objects.filter(device__in=device_ids, event_id__in=ids)
    per_device.update(dict(deliveries.values_list("device").annotate(count=Count("pk")).order_by()))
    deliveries.delete()
    retracted, _ = events.delete()
    return retracted, per_device


def events_before_delete(*, organization: Organization, before: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` of the organization's events that occurred before `before`,
    oldest first, with every device's delivery of them; how many events went. Retention calls
    it batch after batch.

    One short transaction per batch, under the organization's row lock that ingest takes too:
    a batch never interleaves with an ingest batch, so each device's `event_count` (the events
    it delivered that the organization still holds) stays exact, and no lock is held for
    longer than one batch's few statements. The batch is chosen through the
    (organization, occurred_at) index in its order, so no sort and no scan of younger rows.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with transaction.atomic(), organization_scope(organization):
        list(Organization.objects.select_for_update().filter(pk=organization.pk).values("pk"))
        rows = list(
            Event.objects.filter(occurred_at__lt=before)
            .order_by("occurred_at", "pk")
            .values_list("pk", "event_id", "device_id")[:batch_size]
        )
        if not rows:
            return 0
        per_device: Counter = Counter(device_id for _pk, _event_id, device_id in rows)
        event_ids = [event_id for _pk, event_id, _device_id in rows]
        # Device ids spelled out, as in `_events_retract`, so that the delivery index
        # (organization, device, event_id) answers the look-up.
        device_ids = list(Device.objects.values_list("pk", flat=True))
        deliveries = Delivery.objects.filter(device__in=device_ids, event_id__in=event_ids)
        per_device.update(
            dict(deliveries.values_list("device").annotate(count=Count("pk")).order_by())
        )
        deliveries.delete()
        deleted, _ = Event.objects.filter(pk__in=[pk for pk, _e, _d in rows]).delete()
        for device_id, count in per_device.items():
            Device.objects.filter(pk=device_id).update(
                event_count=Greatest(F("event_count") - count, 0)
            )
    return deleted
