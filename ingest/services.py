"""Writes for ingest: a batch of events from one device, exactly once per organization.

The rules (docs/sync-protocol.md, "Ingest"), applied to the batch's events in order, as if
they came one at a time:
- an event id the organization does not hold is stored (`accepted`);
- one it holds is a duplicate; when the new copy is the fuller one (more total tokens, or as
  many and a timestamp not earlier than the held one's) and differs from it, it replaces the
  held row and counts in `updated` too, its tool list merged with the held one's. So
  `--resync` after a price change corrects the costs, and an identical copy changes nothing;
- then each id in `retract` deletes the organization's event of that id.

No lock on the organization: batches of one organization run side by side, and the counts stay
exact because each comes from what a statement itself did, never from a look taken before it.
An event's `EventKey` row (organization, event_id) decides, and orders, everything about it:
1. claim: `INSERT` the batch's keys `ON CONFLICT DO NOTHING RETURNING event_id`. What comes
   back is accepted, by this batch alone: of two batches claiming one id at the same instant,
   the second waits for the first to commit and then finds it held. Keys go in sorted by id,
   so two batches never wait for each other in a circle.
2. lock: the keys it did not get, and those it retracts, `SELECT ... ORDER BY event_id FOR
   UPDATE`. From here until the commit no other batch changes those events; a second query
   reads the held rows as they are now (after any batch that held the lock before).
3. write: the new rows (COPY on PostgreSQL: nothing can conflict, the keys are ours), the
   fuller copies (`UPDATE`; a later timestamp can move a row to another month's partition),
   this device's deliveries of events another device sent first (`ON CONFLICT DO NOTHING
   RETURNING`, counted), the retractions (`DELETE ... RETURNING`, counted per device), then
   each device's `event_count` by exactly what these statements added or removed.
So for each event, the batches that touch it apply one after the other, in the order they
took its key: every event is accepted by exactly one batch, every replacement that happened is
counted once, and `event_count` is the number of events the server holds from that device.
(Two batches that share several events may be ordered differently for different events.)
A deadlock PostgreSQL breaks (possible only with retractions) is retried here.

After the commit, a batch that changed anything sends `ingest.signals.events_ingested` with the
times it touched (analytics keeps its rollups current from it).

Parsing and validation happen before, outside the transaction. On PostgreSQL each column
travels as one binary array (`unnest`) and new rows by COPY, with no ORM object per event;
on SQLite (development, the fast test suite) the same steps use the ORM, and the claim, which
writes first, takes SQLite's single write lock for the rest of the transaction.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db import OperationalError, connection, transaction
from django.db.models import Count, F
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import organization_scope
from devices.models import Device
from ingest.models import Delivery, Event, EventKey
from ingest.serializers import EVENT_COLUMNS, EVENT_ID, MAX_TOOLS, OCCURRED_AT, TOKEN_SLICE, TOOLS
from ingest.signals import events_ingested

logger = logging.getLogger(__name__)

_VALUE_COLUMNS = EVENT_COLUMNS[1:]  # what an update may change (never the id)
# A batch PostgreSQL chose as a deadlock victim, or one whose key vanished between its claim
# and its lock (a retraction at that instant), is run again from the start, this many times.
_ATTEMPTS = 4
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    updated: int = 0
    retracted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Held:
    """An event the organization holds, as the lock found it."""

    key_occurred_at: datetime
    pk: int | None = None  # None: the key outlived its row (a partition retention dropped)
    device_id: Any = None
    row: tuple | None = None


@dataclass
class _Outcome:
    result: IngestResult = field(default_factory=IngestResult)
    touched: set = field(default_factory=set)  # every occurred_at added, moved or removed


class _Retry(Exception):
    """Run the batch's transaction again (see `_ATTEMPTS`)."""


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


def _fold(current: tuple, copies: list[tuple]) -> tuple[tuple, int]:
    """`current` after each copy in turn (the rules above); how many copies replaced it."""
    replaced = 0
    for row in copies:
        if not _is_fuller(row, current):
            continue
        merged = (*row[:TOOLS], _tools_merge(current[TOOLS], row[TOOLS]), *row[TOOLS + 1 :])
        if merged != current:
            current = merged
            replaced += 1
    return current, replaced


def usage_batch_ingest(*, device: Device, events: list[tuple], retract: list[str]) -> IngestResult:
    """Store one validated batch (rows in `EVENT_COLUMNS` order) from `device`."""
    organization = device.organization
    copies: dict[str, list[tuple]] = {}
    for row in events:
        copies.setdefault(row[EVENT_ID], []).append(row)
    retract_ids = list(dict.fromkeys(retract))
    store_class = _PostgresStore if connection.vendor == "postgresql" else _OrmStore
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with transaction.atomic(), organization_scope(organization):
                store = store_class(organization=organization, device=device)
                outcome = _batch_apply(store, device=device, copies=copies, retract=retract_ids)
                if outcome.touched:
                    _events_ingested_send_on_commit(
                        organization=organization,
                        device=device,
                        touched=frozenset(outcome.touched),
                    )
            break
        except (_Retry, OperationalError) as error:
            if attempt == _ATTEMPTS or not _is_retryable(error):
                raise
            logger.info(
                "ingest batch retried",
                extra={"organization_id": organization.pk, "attempt": attempt},
            )
    logger.info(
        "ingest batch stored",
        extra={
            "organization_id": organization.pk,
            "device_id": str(device.pk),
            **outcome.result.as_dict(),
        },
    )
    return outcome.result


def _is_retryable(error: Exception) -> bool:
    if isinstance(error, _Retry):
        return True
    return getattr(error.__cause__, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _batch_apply(
    store: _Store, *, device: Device, copies: dict[str, list[tuple]], retract: list[str]
) -> _Outcome:
    outcome = _Outcome()
    result, touched = outcome.result, outcome.touched
    # Each id's copies folded from the first, as stored if this batch is the one to add it.
    firsts = {key: _fold(rows[0], rows[1:]) for key, rows in copies.items()}
    ids = sorted(copies)
    claimed = store.keys_claim([(key, firsts[key][0][OCCURRED_AT]) for key in ids])
    new_rows: list[tuple] = []
    for key in ids:
        if key in claimed:
            row, replaced = firsts[key]
            result.accepted += 1
            result.duplicates += len(copies[key]) - 1
            result.updated += replaced
            new_rows.append(row)
    held_ids = [key for key in ids if key not in claimed]
    locked = store.keys_lock(sorted({*held_ids, *retract}))
    if any(key not in locked for key in held_ids):
        raise _Retry  # its key went (a retraction) after this batch's claim saw it
    held = store.held_get(held_ids)

    changed: list[tuple[_Held, tuple]] = []
    moved_keys: list[tuple[str, datetime]] = []
    deliveries: list[str] = []
    for key in held_ids:
        found = held[key]
        if found.row is None:
            # The key outlived its event (retention dropped the partition): the event is new
            # again, and this batch adds it.
            row, replaced = firsts[key]
            result.accepted += 1
            result.duplicates += len(copies[key]) - 1
            result.updated += replaced
            new_rows.append(row)
            if row[OCCURRED_AT] != found.key_occurred_at:
                moved_keys.append((key, row[OCCURRED_AT]))
            continue
        current, replaced = _fold(found.row, copies[key])
        result.duplicates += len(copies[key])
        result.updated += replaced
        if current != found.row:
            changed.append((found, current))
            touched.update((found.row[OCCURRED_AT], current[OCCURRED_AT]))
            if current[OCCURRED_AT] != found.row[OCCURRED_AT]:
                moved_keys.append((key, current[OCCURRED_AT]))
        # A device's events are those it sent first (Event.device) and those it sent after
        # another device did (Delivery): only the second kind needs a row here.
        if found.device_id != device.pk:
            deliveries.append(key)

    now = timezone.now()
    if new_rows:
        store.events_insert(new_rows, now=now)
        touched.update(row[OCCURRED_AT] for row in new_rows)
    if changed:
        store.events_update(changed)
    if moved_keys:
        store.keys_move(moved_keys)
    delivered = store.deliveries_insert(deliveries) if deliveries else 0

    counts = Counter({device.pk: len(new_rows) + delivered})
    if retract:
        result.retracted, lost, times = store.retract(retract)
        counts.subtract(lost)
        touched.update(times)
    store.devices_count(counts, now=now)
    return outcome


def _events_ingested_send_on_commit(
    *, organization: Organization, device: Device, touched: frozenset
) -> None:
    def send() -> None:
        events_ingested.send_robust(
            sender=Event,
            organization_id=organization.pk,
            device_id=device.pk,
            occurred_at_min=min(touched),
            occurred_at_max=max(touched),
            occurred_at=touched,
        )

    # robust: the batch is committed; a receiver that fails (say, the broker is down) is
    # logged and must not turn the sender's 200 into a 500 that it would retry for nothing.
    transaction.on_commit(send, robust=True)


# --- The steps, per database ---------------------------------------------------------------------


class _Store(ABC):
    """The steps of `_batch_apply` on one database, for one organization and device. Ids are
    32 hex digits in and out; rows are tuples in `EVENT_COLUMNS` order."""

    def __init__(self, *, organization: Organization, device: Device) -> None:
        self.organization = organization
        self.device = device

    @abstractmethod
    def keys_claim(self, keys: list[tuple[str, datetime]]) -> set[str]:
        """Insert these (id, occurred_at) keys, in this order, where absent; the ids inserted."""

    @abstractmethod
    def keys_lock(self, ids: list[str]) -> set[str]:
        """Lock these keys (sorted) until the commit; the ids that exist."""

    @abstractmethod
    def held_get(self, ids: list[str]) -> dict[str, _Held]: ...

    @abstractmethod
    def events_insert(self, rows: list[tuple], *, now: datetime) -> None: ...

    @abstractmethod
    def events_update(self, changed: list[tuple[_Held, tuple]]) -> None: ...

    @abstractmethod
    def keys_move(self, moved: list[tuple[str, datetime]]) -> None: ...

    @abstractmethod
    def deliveries_insert(self, ids: list[str]) -> int:
        """This device's deliveries of these events, where absent; how many were added."""

    @abstractmethod
    def retract(self, ids: list[str]) -> tuple[int, Counter, list[datetime]]:
        """Delete these events with their keys and deliveries: how many events went, how many
        each device lost (events it sent first and deliveries), and the times they had."""

    def devices_count(self, counts: Counter, *, now: datetime) -> None:
        """Add each device's change to its `event_count`, in the order of their ids (so two
        batches never wait for each other's device rows in a circle); the sender also gets
        its sync time."""
        for device_id in sorted(set(counts) | {self.device.pk}):
            changes: dict[str, Any] = {"event_count": F("event_count") + counts[device_id]}
            if device_id == self.device.pk:
                changes.update(last_sync_at=now, last_seen_at=now)
            elif not counts[device_id]:
                continue
            Device.all_orgs.filter(pk=device_id).update(**changes)


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
_EVENT = Event._meta.db_table
_KEY = EventKey._meta.db_table
_DELIVERY = Delivery._meta.db_table


def _pg_array(column: str) -> str:
    # %b: the array travels in binary, element by element, where the text form would have
    # each element escaped by a regular expression in Python.
    return f"%b::{_PG_TYPES.get(column, 'text')}[]"


def _columns(rows: list[tuple]) -> list[list]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    columns[TOOLS] = [orjson.dumps(tools).decode() for tools in columns[TOOLS]]
    return columns


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


class _PostgresStore(_Store):
    def _run(self, sql: str, params: list) -> list[tuple]:
        with _pg_cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def keys_claim(self, keys):
        if not keys:
            return set()
        with _pg_cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_KEY} (organization_id, event_id, occurred_at) "  # noqa: S608
                "SELECT %s, k.id, k.at FROM unnest(%b::uuid[], %b::timestamptz[]) AS k(id, at) "
                "ON CONFLICT (organization_id, event_id) DO NOTHING RETURNING event_id",
                [self.organization.pk, [key for key, _ in keys], [at for _, at in keys]],
            )
            # Every key inserted (a first sync: nearly every batch) needs no look at which: the
            # ids are distinct, so as many rows back means all of them, and loading a thousand
            # UUIDs was a tenth of the batch's time in Python.
            if cursor.rowcount == len(keys):
                return {key for key, _ in keys}
            return {event_id.hex for (event_id,) in cursor.fetchall()}

    def keys_lock(self, ids):
        if not ids:
            return set()
        found = self._run(
            f"SELECT event_id FROM {_KEY} WHERE organization_id = %s "  # noqa: S608
            "AND event_id = ANY(%b::uuid[]) ORDER BY event_id FOR UPDATE",
            [self.organization.pk, ids],
        )
        return {event_id.hex for (event_id,) in found}

    def held_get(self, ids):
        if not ids:
            return {}
        columns = ", ".join(f"e.{column}" for column in EVENT_COLUMNS)
        # The key names the row's month (its occurred_at), so each look-up reads one
        # partition's (organization_id, occurred_at) index.
        found = self._run(
            f"SELECT k.event_id, k.occurred_at, e.id, e.device_id, {columns} "  # noqa: S608
            f"FROM {_KEY} AS k LEFT JOIN {_EVENT} AS e ON e.organization_id = k.organization_id "
            "AND e.occurred_at = k.occurred_at AND e.event_id = k.event_id "
            "WHERE k.organization_id = %s AND k.event_id = ANY(%b::uuid[])",
            [self.organization.pk, ids],
        )
        held = {}
        for event_id, key_occurred_at, pk, device_id, _, *values in found:
            key = event_id.hex
            if pk is None:
                held[key] = _Held(key_occurred_at)
                continue
            if isinstance(values[TOOLS - 1], str):  # (Django's connection loads jsonb as text)
                values[TOOLS - 1] = orjson.loads(values[TOOLS - 1])
            held[key] = _Held(key_occurred_at, pk, device_id, (key, *values))
        return held

    def events_insert(self, rows, *, now):
        # COPY, the fastest way in: the rows' keys were claimed by this transaction, so none
        # of them can be in the table.
        names = ", ".join(EVENT_COLUMNS)
        prefix = (self.organization.pk, self.device.pk, now)
        with (
            _pg_cursor() as cursor,
            cursor.copy(
                f"COPY {_EVENT} (organization_id, device_id, received_at, {names}) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(
                    (*prefix, *row[:TOOLS], orjson.dumps(row[TOOLS]).decode(), *row[TOOLS + 1 :])
                )

    def events_update(self, changed):
        assignments = ", ".join(f"{column} = v.{column}" for column in _VALUE_COLUMNS)
        arrays = ", ".join(_pg_array(column) for column in _VALUE_COLUMNS)
        names = ", ".join(_VALUE_COLUMNS)
        # Found by the old time (its partition); a later time moves the row to its month.
        self._run(
            f"UPDATE {_EVENT} AS e SET {assignments} "  # noqa: S608
            f"FROM unnest(%b::bigint[], %b::timestamptz[], {arrays}) AS v(pk, held_at, {names}) "
            "WHERE e.organization_id = %s AND e.occurred_at = v.held_at AND e.id = v.pk",
            [
                [held.pk for held, _ in changed],
                [held.row[OCCURRED_AT] for held, _ in changed],
                *_columns([row for _, row in changed])[1:],
                self.organization.pk,
            ],
        )

    def keys_move(self, moved):
        self._run(
            f"UPDATE {_KEY} AS k SET occurred_at = v.at "  # noqa: S608
            "FROM unnest(%b::uuid[], %b::timestamptz[]) AS v(id, at) "
            "WHERE k.organization_id = %s AND k.event_id = v.id",
            [[key for key, _ in moved], [at for _, at in moved], self.organization.pk],
        )

    def deliveries_insert(self, ids):
        found = self._run(
            f"INSERT INTO {_DELIVERY} (organization_id, device_id, event_id) "
            "SELECT %s, %s, unnest(%b::uuid[]) ON CONFLICT DO NOTHING RETURNING 1",
            [self.organization.pk, self.device.pk, sorted(ids)],
        )
        return len(found)

    def retract(self, ids):
        keys = self._run(
            f"DELETE FROM {_KEY} WHERE organization_id = %s "  # noqa: S608
            "AND event_id = ANY(%b::uuid[]) RETURNING event_id, occurred_at",
            [self.organization.pk, ids],
        )
        if not keys:
            return 0, Counter(), []
        gone = self._run(
            f"DELETE FROM {_EVENT} AS e "  # noqa: S608
            "USING unnest(%b::uuid[], %b::timestamptz[]) AS v(id, at) "
            "WHERE e.organization_id = %s AND e.occurred_at = v.at AND e.event_id = v.id "
            "RETURNING e.device_id, e.occurred_at",
            [[event_id for event_id, _ in keys], [at for _, at in keys], self.organization.pk],
        )
        # Device ids spelled out, so that the delivery index (organization, device, event_id)
        # answers the look-up instead of a scan of the organization's deliveries.
        device_ids = list(Device.objects.values_list("pk", flat=True))
        delivered = self._run(
            f"DELETE FROM {_DELIVERY} WHERE organization_id = %s "  # noqa: S608
            "AND device_id = ANY(%b::uuid[]) AND event_id = ANY(%b::uuid[]) RETURNING device_id",
            [self.organization.pk, device_ids, [event_id for event_id, _ in keys]],
        )
        lost = Counter(device_id for device_id, _ in gone)
        lost.update(device_id for (device_id,) in delivered)
        return len(gone), lost, [at for _, at in gone]


class _OrmStore(_Store):
    """SQLite: the claim writes first, which takes the database's one write lock for the
    rest of the transaction, so the reads after it see every other batch's work and none
    runs meanwhile."""

    def keys_claim(self, keys):
        claimed: set[str] = set()
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            if not keys:  # a batch of retractions only takes the write lock all the same
                cursor.execute(f"UPDATE {_KEY} SET occurred_at = occurred_at WHERE 0")  # noqa: S608
            for start in range(0, len(keys), 300):  # (SQLite's cap on bound variables)
                chunk = keys[start : start + 300]
                params = [
                    value for key, at in chunk for value in (self.organization.pk, key, adapt(at))
                ]
                cursor.execute(
                    f"INSERT INTO {_KEY} (organization_id, event_id, occurred_at) "  # noqa: S608
                    f"VALUES {', '.join(['(%s, %s, %s)'] * len(chunk))} "
                    "ON CONFLICT (organization_id, event_id) DO NOTHING RETURNING event_id",
                    params,
                )
                claimed.update(event_id for (event_id,) in cursor.fetchall())
        return claimed

    def keys_lock(self, ids):
        found = EventKey.objects.filter(event_id__in=ids).values_list("event_id", flat=True)
        return {event_id.hex for event_id in found}

    def held_get(self, ids):
        if not ids:
            return {}
        held = {
            event_id.hex: _Held(occurred_at)
            for event_id, occurred_at in EventKey.objects.filter(event_id__in=ids).values_list(
                "event_id", "occurred_at"
            )
        }
        for pk, device_id, event_id, *values in Event.objects.filter(event_id__in=ids).values_list(
            "pk", "device_id", *EVENT_COLUMNS
        ):
            key = event_id.hex
            found = held[key]
            if values[OCCURRED_AT - 1] == found.key_occurred_at:
                held[key] = _Held(found.key_occurred_at, pk, device_id, (key, *values))
        return held

    def events_insert(self, rows, *, now):
        Event.objects.bulk_create(
            [
                Event(
                    organization=self.organization,
                    device=self.device,
                    received_at=now,
                    **dict(zip(EVENT_COLUMNS, row, strict=True)),
                )
                for row in rows
            ]
        )

    def events_update(self, changed):
        Event.objects.bulk_update(
            [
                Event(pk=held.pk, **dict(zip(EVENT_COLUMNS, row, strict=True)))
                for held, row in changed
            ],
            fields=list(_VALUE_COLUMNS),
        )

    def keys_move(self, moved):
        for key, at in moved:
            EventKey.objects.filter(event_id=key).update(occurred_at=at)

    def deliveries_insert(self, ids):
        present = {
            event_id.hex
            for event_id in Delivery.objects.filter(
                device=self.device, event_id__in=ids
            ).values_list("event_id", flat=True)
        }
        missing = [key for key in ids if key not in present]
        Delivery.objects.bulk_create(
            [
                Delivery(organization=self.organization, device=self.device, event_id=key)
                for key in missing
            ]
        )
        return len(missing)

    def retract(self, ids):
        keys = EventKey.objects.filter(event_id__in=ids)
        times = dict(keys.values_list("event_id", "occurred_at"))
        if not times:
            return 0, Counter(), []
        gone = [
            (device_id, occurred_at)
            for event_id, device_id, occurred_at in Event.objects.filter(
                event_id__in=times
            ).values_list("event_id", "device_id", "occurred_at")
            if times[event_id] == occurred_at
        ]
        deliveries = Delivery.objects.filter(event_id__in=times)
        lost = Counter(device_id for device_id, _ in gone)
        lost.update(deliveries.values_list("device_id", flat=True))
        deliveries.delete()
        Event.objects.filter(event_id__in=times).delete()
        keys.delete()
        return len(gone), lost, [at for _, at in gone]


def events_before_delete(*, organization: Organization, before: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` of the organization's events that occurred before `before`,
    oldest first, with their keys and every device's delivery of them; how many events went.
    Retention calls it batch after batch.

    One short transaction per batch. The batch's `EventKey` rows are locked before anything is
    deleted, as ingest locks the key of an event it holds before it touches the event, so a
    batch never interleaves with an ingest of the same events and each device's `event_count`
    (the events it delivered that the organization still holds) stays exact; no lock is held
    for longer than one batch's few statements. The batch is chosen through the
    (organization, occurred_at) index in its order. Whole months of every organization go
    faster by `ingest.partitions.event_partitions_drop_before`.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with transaction.atomic(), organization_scope(organization):
        rows = list(
            Event.objects.filter(occurred_at__lt=before)
            .order_by("occurred_at", "pk")
            .values_list("pk", "event_id", "device_id")[:batch_size]
        )
        if not rows:
            return 0
        event_ids = [event_id for _pk, event_id, _device in rows]
        keys = EventKey.objects.filter(event_id__in=event_ids)
        list(keys.select_for_update().values_list("event_id", flat=True))
        per_device: Counter = Counter(device_id for _pk, _event_id, device_id in rows)
        # Device ids spelled out, as in the store's retraction, so that the delivery index
        # (organization, device, event_id) answers the look-up.
        device_ids = list(Device.objects.values_list("pk", flat=True))
        deliveries = Delivery.objects.filter(device__in=device_ids, event_id__in=event_ids)
        per_device.update(
            dict(deliveries.values_list("device").annotate(count=Count("pk")).order_by())
        )
        deliveries.delete()
        deleted, _ = Event.objects.filter(pk__in=[pk for pk, _e, _d in rows]).delete()
        keys.delete()
        for device_id, count in per_device.items():
            Device.objects.filter(pk=device_id).update(
                event_count=Greatest(F("event_count") - count, 0)
            )
    return deleted
