"""The monthly partitions of the events table on PostgreSQL (migration 0002): made ahead, dropped
whole once they are past keeping.

`ingest_event` is `PARTITION BY RANGE (occurred_at)`: one partition per UTC calendar month,
named `ingest_event_yYYYYmMM`, and `ingest_event_default` for any time no month covers (a
history older than the months made, a clock far ahead). `event_partitions_ensure` makes the
months to come (a daily Celery task, `ingest.tasks`); `event_partitions_drop_before` is what
retention calls to remove months wholly older than its cutoff in one statement each, instead of
deleting millions of rows.

Both take their locks with a `lock_timeout`, so that they give up (and the next run tries again)
rather than queue in front of ingest. On any other database (SQLite) there are no partitions
and both do nothing.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from devices.models import Device

logger = logging.getLogger(__name__)

PARENT = "ingest_event"
DEFAULT_PARTITION = "ingest_event_default"
# Made ahead of the current month: a missed daily run or three is harmless.
MONTHS_AHEAD = 3
# Made behind it once, at setup (migration 0002), so that a first sync of an agent's history
# lands in months of its own rather than the default partition. Never re-made afterwards:
# retention drops them.
MONTHS_BEHIND_AT_SETUP = 12
LOCK_TIMEOUT = "5s"

_NAME = re.compile(r"ingest_event_y(\d{4})m(\d{2})")
_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime  # inclusive
    end: datetime  # exclusive


def _month_add(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def month_partition(moment: datetime) -> Partition:
    start = _month_add(moment.astimezone(UTC), 0)
    return Partition(f"{PARENT}_y{start.year:04d}m{start.month:02d}", start, _month_add(start, 1))


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def event_partitions_list(*, cursor=None) -> list[Partition]:
    """The monthly partitions, oldest first (not the default one), with their bounds as the
    catalogue holds them."""
    if not _is_postgresql():
        return []
    with _cursor(cursor) as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [PARENT],
        )
        found = cursor.fetchall()
    partitions = []
    for name, bound in found:
        match = _BOUND.search(bound or "")
        if match is None:
            continue  # the default partition
        start, end = (datetime.fromisoformat(value) for value in match.groups())
        partitions.append(Partition(name, start.astimezone(UTC), end.astimezone(UTC)))
    return sorted(partitions, key=lambda partition: partition.start)


def event_partitions_ensure(
    *,
    months_ahead: int = MONTHS_AHEAD,
    months_behind: int = 0,
    now: datetime | None = None,
    cursor=None,
) -> list[str]:
    """Make the monthly partitions from `months_behind` before the current month to
    `months_ahead` after it that do not exist yet; the names made.

    Each is made as a table of its own and then attached (CREATE TABLE ... PARTITION OF would
    lock the whole table against ingest), after moving into it any rows of its month that the
    default partition holds (attaching refuses while the default has rows of the range).
    Idempotent, and safe while ingest runs.
    """
    if not _is_postgresql():
        return []
    now = now or timezone.now()
    made = []
    with _cursor(cursor) as cursor:
        existing = {partition.name for partition in event_partitions_list(cursor=cursor)}
        for offset in range(-months_behind, months_ahead + 1):
            partition = month_partition(_month_add(now.astimezone(UTC), offset))
            if partition.name in existing:
                continue
            with transaction.atomic():
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                cursor.execute(
                    f"CREATE TABLE {partition.name} "
                    f"(LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                )
                # Bounds written out (DDL takes no parameters): ours, made from datetimes.
                start, end = f"'{partition.start.isoformat()}'", f"'{partition.end.isoformat()}'"
                cursor.execute(
                    f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608
                    f"WHERE occurred_at >= {start} AND occurred_at < {end} RETURNING *) "
                    f"INSERT INTO {partition.name} SELECT * FROM moved"
                )
                cursor.execute(
                    f"ALTER TABLE {PARENT} ATTACH PARTITION {partition.name} "
                    f"FOR VALUES FROM ({start}) TO ({end})"
                )
            made.append(partition.name)
    if made:
        logger.info("event partitions made", extra={"partitions": made})
    return made


def event_partitions_drop_before(*, cutoff: datetime, keep_tables: bool = False) -> list[str]:
    """Remove every monthly partition whose whole month is older than `cutoff` (its end is at
    or before it); the names removed. Rows of the default partition are not touched (a row-wise
    retention deletes those).

    With the events go their keys and deliveries, and the devices' event counts drop by the
    events each loses, so `GET /api/v1/stats` and the Devices page stay in step. One
    transaction per partition: writes into the partition are held (`SHARE` lock) while its
    keys and deliveries are deleted, then it is detached and dropped (or, with `keep_tables`,
    left as a table of its own for an archive). Inserts into other months go on meanwhile; a
    late event of a dropped month lands in the default partition.
    """
    if not _is_postgresql():
        return []
    removed = []
    with connection.cursor() as cursor:
        for partition in event_partitions_list(cursor=cursor):
            if partition.end > cutoff:
                break
            with transaction.atomic():
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                cursor.execute(f"LOCK TABLE {partition.name} IN SHARE MODE")
                cursor.execute(
                    f"SELECT device_id, COUNT(*) FROM {partition.name} GROUP BY device_id"  # noqa: S608
                )
                lost = Counter(dict(cursor.fetchall()))
                cursor.execute(
                    "DELETE FROM ingest_delivery d USING "  # noqa: S608
                    f"{partition.name} e WHERE d.organization_id = e.organization_id "
                    "AND d.event_id = e.event_id RETURNING d.device_id"
                )
                lost.update(device_id for (device_id,) in cursor.fetchall())
                cursor.execute(
                    "DELETE FROM ingest_event_key k USING "  # noqa: S608
                    f"{partition.name} e WHERE k.organization_id = e.organization_id "
                    "AND k.event_id = e.event_id AND k.occurred_at = e.occurred_at"
                )
                for device_id in sorted(lost):
                    Device.all_orgs.filter(pk=device_id).update(
                        event_count=F("event_count") - lost[device_id]
                    )
                cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {partition.name}")
                if not keep_tables:
                    cursor.execute(f"DROP TABLE {partition.name}")
            removed.append(partition.name)
            logger.info(
                "event partition removed",
                extra={
                    "partition": partition.name,
                    "events": sum(lost.values()),
                    "kept": keep_tables,
                },
            )
    return removed


class _cursor:
    """The caller's cursor (a migration's), or a new one on Django's connection."""

    def __init__(self, cursor) -> None:
        self._given = cursor
        self._own = None

    def __enter__(self):
        if self._given is not None:
            return self._given
        self._own = connection.cursor()
        return self._own.__enter__()

    def __exit__(self, *exc) -> None:
        if self._own is not None:
            self._own.__exit__(*exc)
