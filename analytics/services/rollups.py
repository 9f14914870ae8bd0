"""Keeping the rollups equal to the raw events (docs/scaling.md, "Rollups").

The rule: a rollup row is never incremented. A bucket whose events changed is recomputed from
the events, absolutely: its rows are deleted and inserted again from a GROUP BY over its events,
inside one transaction that first locks the organization's `RollupState` row. So running a
refresh twice changes nothing, two workers refreshing one organization take turns, and a
retraction or a moved timestamp leaves no stale row behind (the bucket it left is recomputed
and simply has no row for it any more).

The flow:
1. After each ingest batch commits, `rollup_buckets_mark` (ingest's `events_ingested`
   receiver, analytics/apps.py) appends the batch's 15-minute buckets to `RollupDirtyBucket`
   and schedules `rollups_refresh_task` for the organization a few seconds ahead, once: a burst
   of batches inside that window is one run (the debounce is a cache key with that lifetime).
2. `rollups_refresh` takes up to `REFRESH_BUCKETS_PER_RUN` dirty buckets (DELETE ... RETURNING,
   which sees only committed rows: a bucket marked meanwhile stays queued), recomputes them,
   then the local days they fall in. The task repeats while buckets remain.
3. `rollups_rebuild` (`manage.py rebuild_rollups`) recomputes an organization from its events,
   a month per transaction.

Writes are a handful of set-based statements per run (INSERT ... SELECT ... GROUP BY), on
PostgreSQL and SQLite alike; only the bucket arithmetic and the JSON of the tool lists differ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import organization_scope
from analytics.models import (
    USAGE_KEY_FIELDS,
    Project,
    RollupDirtyBucket,
    RollupState,
    SessionDailyRollup,
    ToolDailyRollup,
    ToolDailyTotal,
    ToolRollup,
    UsageDailyBreakdown,
    UsageDailyRollup,
    UsageDimension,
    UsageRollup,
)
from ingest.models import Event

logger = logging.getLogger(__name__)

BUCKET = timedelta(minutes=15)
BUCKET_SECONDS = int(BUCKET.total_seconds())
# Dirty buckets closer than this are recomputed as one range (one statement pair): the few
# clean buckets in between cost less to recompute than another round trip.
RANGE_JOIN_GAP = timedelta(hours=2)
# At most this many buckets per transaction (about three weeks of an organization busy every
# quarter hour): a backfill of months is many short transactions, each well inside the task
# time limit, rather than one that holds the organization's lock for minutes.
REFRESH_BUCKETS_PER_RUN = 2000
# A full rebuild recomputes this much of history per transaction.
REBUILD_CHUNK = timedelta(days=31)
# How long after a batch its refresh runs; batches within it share one run.
REFRESH_DEBOUNCE_SECONDS = 5
_DEBOUNCE_KEY = "analytics:rollups-refresh-scheduled:{organization_id}"
PICO_PER_USD = 10**12

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


# --- Buckets and days ---------------------------------------------------------------------------


def bucket_floor(moment: datetime) -> datetime:
    """The start of the 15-minute UTC bucket holding `moment` (aware)."""
    moment = moment.astimezone(UTC)
    seconds = int((moment - _EPOCH).total_seconds()) // BUCKET_SECONDS * BUCKET_SECONDS
    return _EPOCH + timedelta(seconds=seconds)


def bucket_ranges(
    buckets: Iterable[datetime], join_gap: timedelta = RANGE_JOIN_GAP
) -> list[tuple[datetime, datetime]]:
    """Half-open UTC ranges [start, end) covering the buckets, nearby ones joined."""
    ranges: list[list[datetime]] = []
    for bucket in sorted(set(buckets)):
        if ranges and bucket - ranges[-1][1] <= join_gap:
            ranges[-1][1] = bucket + BUCKET
        else:
            ranges.append([bucket, bucket + BUCKET])
    return [(start, end) for start, end in ranges]


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local day, in UTC (exact across DST changes: a day is 23 or 25
    hours where the clocks change, always a whole number of 15-minute buckets)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def local_day_span(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)


def local_days_of(buckets: Iterable[datetime], zone: ZoneInfo) -> set[date]:
    return {bucket.astimezone(zone).date() for bucket in buckets}


# --- Marking (ingest's receiver) ----------------------------------------------------------------


def rollup_buckets_mark(*, organization_id: int, occurred_at: Iterable[datetime]) -> int:
    """Queue the buckets of these times for recomputation and schedule the organization's
    refresh (debounced). How many buckets were queued."""
    # `bucket_floor` of each, in integer seconds (a batch brings a thousand times, and the
    # epoch of 2000 is a whole number of buckets after 1970's).
    slots = {int(moment.timestamp()) // BUCKET_SECONDS for moment in occurred_at}
    buckets = [datetime.fromtimestamp(slot * BUCKET_SECONDS, UTC) for slot in sorted(slots)]
    if not buckets:
        return 0
    RollupDirtyBucket.all_orgs.bulk_create(
        [RollupDirtyBucket(organization_id=organization_id, bucket=bucket) for bucket in buckets],
        batch_size=1000,
    )
    rollups_refresh_schedule(organization_id=organization_id)
    return len(buckets)


def rollups_refresh_schedule(*, organization_id: int) -> bool:
    """Enqueue the refresh `REFRESH_DEBOUNCE_SECONDS` ahead unless one is already scheduled;
    whether this call enqueued it. The task clears the key before it reads the queue, so a
    batch marked after that schedules the next run itself."""
    from analytics.tasks import rollups_refresh_task

    if not cache.add(
        _DEBOUNCE_KEY.format(organization_id=organization_id), 1, REFRESH_DEBOUNCE_SECONDS * 6
    ):
        return False
    rollups_refresh_task.apply_async(
        kwargs={"organization_id": organization_id}, countdown=REFRESH_DEBOUNCE_SECONDS
    )
    return True


def rollups_refresh_unschedule(*, organization_id: int) -> None:
    cache.delete(_DEBOUNCE_KEY.format(organization_id=organization_id))


# --- Refreshing ---------------------------------------------------------------------------------


@dataclass
class RollupRefreshResult:
    buckets: int = 0
    days: int = 0
    days_rebuilt_for_zone: bool = False
    more: bool = False


def rollups_refresh(
    *, organization: Organization, max_buckets: int | None = None
) -> RollupRefreshResult:
    """Recompute up to `max_buckets` queued buckets of the organization and their local days;
    `more` says whether buckets remain queued. When the organization's time zone changed
    since its daily rollups were made, the days are rebuilt in the new zone."""
    result = RollupRefreshResult()
    with transaction.atomic(), organization_scope(organization):
        state = _state_lock(organization)
        organization = Organization.objects.get(pk=organization.pk)  # its zone, under the lock
        buckets = _dirty_take(organization, limit=max_buckets or REFRESH_BUCKETS_PER_RUN)
        _buckets_recompute(organization, bucket_ranges(buckets))
        result.buckets = len(buckets)
        zone_name = organization.time_zone
        if state.daily_time_zone != zone_name:
            result.days = _days_rebuild_all(organization, ZoneInfo(zone_name))
            result.days_rebuilt_for_zone = True
            state.daily_time_zone = zone_name
        elif buckets:
            days = local_days_of(buckets, ZoneInfo(zone_name))
            _days_recompute(organization, days, ZoneInfo(zone_name))
            result.days = len(days)
        state.refreshed_at = timezone.now()
        state.save(update_fields=["daily_time_zone", "refreshed_at"])
        result.more = RollupDirtyBucket.objects.exists()
    logger.info(
        "rollups refreshed",
        extra={
            "organization_id": organization.pk,
            "buckets": result.buckets,
            "days": result.days,
            "more": result.more,
        },
    )
    return result


def rollups_rebuild(*, organization: Organization, chunk: timedelta = REBUILD_CHUNK) -> int:
    """Recompute every rollup of the organization from its events, a chunk of history per
    transaction (readers see whole old or whole new chunks, never an empty table). Rows outside
    the events' span go too. How many events were read."""
    with organization_scope(organization):
        span = _event_span(organization)
        with transaction.atomic():
            _state_lock(organization)
            organization = Organization.objects.get(pk=organization.pk)
            zone = ZoneInfo(organization.time_zone)
            _rollups_outside_delete(organization, span)
        if span is None:
            with transaction.atomic():
                state = _state_lock(organization)
                _days_rebuild_all(organization, zone)
                state.daily_time_zone, state.rebuilt_at = organization.time_zone, timezone.now()
                state.save(update_fields=["daily_time_zone", "rebuilt_at"])
            return 0
        first, last = span
        start = bucket_floor(first)
        end = bucket_floor(last) + BUCKET
        events = 0
        while start < end:
            stop = min(start + chunk, end)
            with transaction.atomic():
                state = _state_lock(organization)
                events += _buckets_recompute(organization, [(start, stop)])
                if state.daily_time_zone == organization.time_zone:
                    days = _days_between(start, stop, zone)
                    _days_recompute(organization, days, zone)
            start = stop
        with transaction.atomic():
            state = _state_lock(organization)
            # The days in full once more: a zone change during the rebuild, or the first
            # rebuild of an organization whose days were never made, ends with all of them
            # in the organization's zone.
            if state.daily_time_zone != organization.time_zone:
                _days_rebuild_all(organization, zone)
            state.daily_time_zone, state.rebuilt_at = organization.time_zone, timezone.now()
            state.save(update_fields=["daily_time_zone", "rebuilt_at"])
    logger.info("rollups rebuilt", extra={"organization_id": organization.pk, "events": events})
    return events


def _state_lock(organization: Organization) -> RollupState:
    RollupState.all_orgs.bulk_create(
        [RollupState(organization=organization)], ignore_conflicts=True
    )
    return RollupState.all_orgs.select_for_update().get(organization=organization)


def _dirty_take(organization: Organization, *, limit: int) -> list[datetime]:
    """Remove up to `limit` distinct queued buckets (the earliest) and return them."""
    table = RollupDirtyBucket._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE organization_id = %s AND bucket IN ("  # noqa: S608
            f"SELECT DISTINCT bucket FROM {table} WHERE organization_id = %s "
            "ORDER BY bucket LIMIT %s) RETURNING bucket",
            [organization.pk, organization.pk, limit],
        )
        found = [row[0] for row in cursor.fetchall()]
    return sorted({_as_aware(value) for value in found})


def _as_aware(value) -> datetime:
    """A datetime read by a raw cursor (SQLite gives text, PostgreSQL an aware datetime)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


def _event_span(organization: Organization) -> tuple[datetime, datetime] | None:
    span = Event.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    if span["first"] is None:
        return None
    return span["first"], span["last"]


def _rollups_outside_delete(
    organization: Organization, span: tuple[datetime, datetime] | None
) -> None:
    """Rows of times that no longer hold any event (retention, retractions) go first."""
    zone = ZoneInfo(organization.time_zone)
    for model in (UsageRollup, ToolRollup):
        rows = model.objects.all()
        if span is not None:
            start, end = bucket_floor(span[0]), bucket_floor(span[1]) + BUCKET
            rows = rows.exclude(bucket__gte=start, bucket__lt=end)
        rows.delete()
    for model in DAILY_ROLLUP_MODELS:
        rows = model.objects.all()
        if span is not None:
            first, last = span[0].astimezone(zone).date(), span[1].astimezone(zone).date()
            rows = rows.exclude(day__gte=first, day__lte=last, time_zone=zone.key)
        rows.delete()


def _days_between(start: datetime, end: datetime, zone: ZoneInfo) -> set[date]:
    first = start.astimezone(zone).date()
    last = (end - BUCKET).astimezone(zone).date()
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


# --- The SQL ------------------------------------------------------------------------------------


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _bucket_sql(column: str) -> str:
    """The start of the 15-minute UTC bucket of a timestamp column, as the column type."""
    if _is_postgresql():
        return f"date_bin('15 minutes', {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    # SQLite stores datetimes as UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]'; the bucket is the
    # same text with the minutes floored to a quarter and no seconds.
    # (%% because the statement has parameters: Django's SQLite cursor turns %% back into %.)
    return (
        f"(strftime('%%Y-%%m-%%d %%H:', {column}) || "
        f"printf('%%02d:00', CAST(strftime('%%M', {column}) AS INTEGER) / 15 * 15))"
    )


def _datetime_param(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _date_param(value: date):
    return connection.ops.adapt_datefield_value(value)


_TOKENS_SQL = (
    "(e.input_tokens + e.output_tokens + e.cache_read_tokens + e.cache_write_5m_tokens "
    "+ e.cache_write_1h_tokens)"
)
_USAGE_KEY_COLUMNS = ", ".join(USAGE_KEY_FIELDS)
_USAGE_SUM_COLUMNS = (
    "turns, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, "
    "cache_write_1h_tokens, web_search_requests, cost_pico, unpriced_turns, unpriced_tokens, "
    "sidechain_turns, first_at, last_at"
)
# One event's cost in picodollars: cost_usd has at most 12 places, so this is exact.
_EVENT_PICO_SQL = f"CAST(ROUND(e.cost_usd * {PICO_PER_USD}) AS BIGINT)"
_USAGE_SUMS_FROM_EVENTS = f"""
    COUNT(*), SUM(e.input_tokens), SUM(e.output_tokens), SUM(e.cache_read_tokens),
    SUM(e.cache_write_5m_tokens), SUM(e.cache_write_1h_tokens), SUM(e.web_search_requests),
    COALESCE(SUM({_EVENT_PICO_SQL}), 0),
    SUM(CASE WHEN e.cost_usd IS NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN e.cost_usd IS NULL THEN {_TOKENS_SQL} ELSE 0 END),
    SUM(CASE WHEN e.is_sidechain THEN 1 ELSE 0 END),
    MIN(e.occurred_at), MAX(e.occurred_at)
"""
_TOOL_KEY_COLUMNS = "device_id, source, agent, project, model, tool"


def _tool_expansion_sql() -> tuple[str, str, str, str]:
    """(FROM clause expanding each event's tool list into one row per distinct tool, the tool
    name, its calls in the turn, the list's length).

    On PostgreSQL a lateral subquery counts each tool's calls within its turn, so that a turn
    is one row per tool and `COUNT(*)` is the turns that called it (COUNT(DISTINCT e.id) over
    one row per call sorted every group: most of the rebuild's time). SQLite has no lateral
    subquery: one row per call there, and the turns are counted distinct."""
    if _is_postgresql():
        return (
            "CROSS JOIN LATERAL (SELECT value AS tool, COUNT(*) AS calls "
            "FROM jsonb_array_elements_text(e.tools) GROUP BY value) AS t",
            "t.tool",
            "t.calls",
            "jsonb_array_length(e.tools)",
        )
    return ", json_each(e.tools) AS t", "t.value", "1", "json_array_length(e.tools)"


# Ranges (or days) per statement: the statement joins the table it reads with a VALUES list of
# them, which both databases answer with one index range scan per range.
_SPANS_PER_STATEMENT = 300


def _chunks(items: list, size: int = _SPANS_PER_STATEMENT):
    for index in range(0, len(items), size):
        yield items[index : index + size]


def _spans_sql(count: int, *, with_day: bool = False) -> str:
    """`(VALUES (start, end), ...) AS r(start_at, end_at)` (and a leading day column) for
    `count` spans of bound parameters."""
    if _is_postgresql():
        row = (
            "(%s::date, %s::timestamptz, %s::timestamptz)"
            if with_day
            else ("(%s::timestamptz, %s::timestamptz)")
        )
    else:
        row = "(%s, %s, %s)" if with_day else "(%s, %s)"
    columns = "day, start_at, end_at" if with_day else "start_at, end_at"
    values = ", ".join([row] * count)
    if _is_postgresql():
        return f"(VALUES {values}) AS r({columns})"
    # SQLite names VALUES columns column1, column2...: rename them in a subquery.
    names = ", ".join(f"column{n + 1} AS {name}" for n, name in enumerate(columns.split(", ")))
    return f"(SELECT {names} FROM (VALUES {values})) AS r"  # noqa: S608 (placeholders only)


def _span_params(spans: list[tuple[datetime, datetime]]) -> list:
    return [_datetime_param(moment) for span in spans for moment in span]


def _buckets_recompute(organization: Organization, ranges: list[tuple[datetime, datetime]]) -> int:
    """Replace the 15-minute rows of the half-open ranges with sums of their events; how many
    events were read."""
    event_table = Event._meta.db_table
    bucket = _bucket_sql("e.occurred_at")
    keys = ", ".join(f"e.{column}" for column in USAGE_KEY_FIELDS)
    tool_from, tool_name, tool_calls, tool_count = _tool_expansion_sql()
    tool_turns = "COUNT(*)" if _is_postgresql() else "COUNT(DISTINCT e.id)"
    tool_keys = "e.device_id, e.source, e.agent, e.project, e.model"
    events = 0
    new_labels: set[str] = set()
    with connection.cursor() as cursor:
        for chunk in _chunks(ranges):
            spans = _spans_sql(len(chunk))
            params = [organization.pk, *_span_params(chunk)]
            join = (
                f"FROM {event_table} AS e JOIN {spans} "
                "ON e.occurred_at >= r.start_at AND e.occurred_at < r.end_at"
            )
            where = "WHERE e.organization_id = %s"
            for model in (UsageRollup, ToolRollup):
                cursor.execute(
                    f"DELETE FROM {model._meta.db_table} WHERE organization_id = %s AND "  # noqa: S608
                    f"EXISTS (SELECT 1 FROM {spans} WHERE bucket >= r.start_at "
                    "AND bucket < r.end_at)",
                    params,
                )
            # (The join's parameters come first in the text, then the organization's.)
            join_params = [*_span_params(chunk), organization.pk]
            cursor.execute(
                f"INSERT INTO {UsageRollup._meta.db_table} "
                f"(organization_id, bucket, {_USAGE_KEY_COLUMNS}, {_USAGE_SUM_COLUMNS}) "
                f"SELECT e.organization_id, {bucket}, {keys}, {_USAGE_SUMS_FROM_EVENTS} "
                f"{join} {where} GROUP BY e.organization_id, {bucket}, {keys}",
                join_params,
            )
            cursor.execute(f"SELECT COUNT(*) {join} {where}", join_params)
            events += cursor.fetchone()[0]
            cursor.execute(
                f"INSERT INTO {ToolRollup._meta.db_table} "
                f"(organization_id, bucket, {_TOOL_KEY_COLUMNS}, calls, turns, cost_pico) "
                f"SELECT e.organization_id, {bucket}, {tool_keys}, {tool_name}, "
                f"SUM({tool_calls}), {tool_turns}, CAST(ROUND(SUM(COALESCE(e.cost_usd, 0) * "
                f"{tool_calls} * {PICO_PER_USD}.0 / {tool_count})) AS BIGINT) "
                f"{join} {tool_from} {where} "
                f"GROUP BY e.organization_id, {bucket}, {tool_keys}, {tool_name}",
                join_params,
            )
            # Labels these buckets hold that the organization's projects do not have yet:
            # read from the rows just written (far fewer than the events), almost always none.
            cursor.execute(
                f"SELECT DISTINCT u.project FROM {UsageRollup._meta.db_table} AS u "  # noqa: S608
                f"JOIN {spans} ON u.bucket >= r.start_at AND u.bucket < r.end_at "
                "WHERE u.organization_id = %s AND u.project IS NOT NULL AND NOT EXISTS ("
                f"SELECT 1 FROM {Project._meta.db_table} AS p "
                "WHERE p.organization_id = u.organization_id AND p.label = u.project)",
                join_params,
            )
            new_labels.update(row[0] for row in cursor.fetchall())
    if new_labels:
        _projects_record(organization, sorted(new_labels), ranges)
    return events


def _projects_record(
    organization: Organization, labels: list[str], ranges: list[tuple[datetime, datetime]]
) -> None:
    """Record new project labels with their first arrival, earliest first. Only the times
    being refreshed are read: a label that is new has no events in buckets refreshed before."""
    firsts = (
        Event.objects.filter(
            project__in=labels,
            occurred_at__gte=min(start for start, _ in ranges),
            occurred_at__lt=max(end for _, end in ranges),
        )
        .values("project")
        .annotate(first=Min("received_at"))
        .order_by("first", "project")
    )
    # (A conflict is impossible under the rollup lock; ignoring it keeps a replay harmless.)
    Project.objects.bulk_create(
        [
            Project(organization=organization, label=row["project"], first_received_at=row["first"])
            for row in firsts
        ],
        ignore_conflicts=True,
    )


# Every table with a row per local day; the summaries are made from the first two.
DAILY_ROLLUP_MODELS = (
    UsageDailyRollup,
    ToolDailyRollup,
    UsageDailyBreakdown,
    SessionDailyRollup,
    ToolDailyTotal,
)

# Every rollup table: the one place a new one has to join (retention trims each of them, and a
# test fails for an analytics model with a `bucket` or `day` column missing here). The
# 15-minute tables first: retention deletes in this order, so that a refresh rebuilding a day
# between two of its batches (a zone change) finds no 15-minute row of a deleted day left.
ROLLUP_MODELS = (UsageRollup, ToolRollup, *DAILY_ROLLUP_MODELS)

# Per dimension of `UsageDailyBreakdown`: its value and provider columns as SQL over the
# daily rows, and the columns it groups them by beyond the day and source.
_DIMENSION_SQL = {
    UsageDimension.TOTAL: ("NULL", "''", ""),
    UsageDimension.DEVICE: ("CAST(x.device_id AS TEXT)", "''", ", x.device_id"),
    UsageDimension.PROJECT: ("x.project", "''", ", x.project"),
    UsageDimension.MODEL: ("x.model", "x.provider", ", x.model, x.provider"),
    UsageDimension.AGENT: ("x.agent", "''", ", x.agent"),
}


def _summaries_recompute(cursor, organization: Organization, day_params: list) -> None:
    """The summaries of these days (already deleted) from their daily rows, just written."""
    usage_daily, tool_daily = UsageDailyRollup._meta.db_table, ToolDailyRollup._meta.db_table
    marks = ", ".join(["%s"] * len(day_params))
    where = f"WHERE x.organization_id = %s AND x.day IN ({marks})"
    params = [organization.pk, *day_params]
    for dimension, (value, provider, grouped) in _DIMENSION_SQL.items():
        cursor.execute(
            f"INSERT INTO {UsageDailyBreakdown._meta.db_table} (organization_id, day, "  # noqa: S608
            f"time_zone, source, dimension, value, provider, {_USAGE_SUM_COLUMNS}) "
            f"SELECT x.organization_id, x.day, x.time_zone, x.source, %s, {value}, {provider}, "
            f"{_prefixed_sums()} FROM {usage_daily} AS x {where} "
            f"GROUP BY x.organization_id, x.day, x.time_zone, x.source{grouped}",
            [str(dimension), *params],
        )
    cursor.execute(
        f"INSERT INTO {SessionDailyRollup._meta.db_table} (organization_id, day, time_zone, "  # noqa: S608
        f"source, session_id, {_USAGE_SUM_COLUMNS}) "
        f"SELECT x.organization_id, x.day, x.time_zone, x.source, x.session_id, "
        f"{_prefixed_sums()} FROM {usage_daily} AS x {where} "
        "GROUP BY x.organization_id, x.day, x.time_zone, x.source, x.session_id",
        params,
    )
    cursor.execute(
        f"INSERT INTO {ToolDailyTotal._meta.db_table} (organization_id, day, time_zone, "  # noqa: S608
        "source, tool, calls, turns, cost_pico) "
        "SELECT x.organization_id, x.day, x.time_zone, x.source, x.tool, SUM(x.calls), "
        f"SUM(x.turns), SUM(x.cost_pico) FROM {tool_daily} AS x {where} "
        "GROUP BY x.organization_id, x.day, x.time_zone, x.source, x.tool",
        params,
    )


def _days_recompute(organization: Organization, days: Iterable[date], zone: ZoneInfo) -> None:
    """Replace the daily rows of these local days with sums of their 15-minute rows, and the
    summaries of the days with sums of those."""
    usage_daily, tool_daily = UsageDailyRollup._meta.db_table, ToolDailyRollup._meta.db_table
    usage, tools = UsageRollup._meta.db_table, ToolRollup._meta.db_table
    zone_name = zone.key
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(days)):
            day_params = [_date_param(day) for day in chunk]
            marks = ", ".join(["%s"] * len(chunk))
            for table in (model._meta.db_table for model in DAILY_ROLLUP_MODELS):
                cursor.execute(
                    f"DELETE FROM {table} WHERE organization_id = %s AND day IN ({marks})",  # noqa: S608
                    [organization.pk, *day_params],
                )
            spans = _spans_sql(len(chunk), with_day=True)
            params = [
                value
                for day in chunk
                for value in (
                    _date_param(day),
                    *(_datetime_param(moment) for moment in local_day_span(day, zone)),
                )
            ]
            join = f"JOIN {spans} ON x.bucket >= r.start_at AND x.bucket < r.end_at"
            cursor.execute(
                f"INSERT INTO {usage_daily} (organization_id, day, time_zone, "  # noqa: S608
                f"{_USAGE_KEY_COLUMNS}, {_USAGE_SUM_COLUMNS}) "
                f"SELECT x.organization_id, r.day, %s, {_prefixed(_USAGE_KEY_COLUMNS)}, "
                f"{_prefixed_sums()} FROM {usage} AS x {join} WHERE x.organization_id = %s "
                f"GROUP BY x.organization_id, r.day, {_prefixed(_USAGE_KEY_COLUMNS)}",
                [zone_name, *params, organization.pk],
            )
            cursor.execute(
                f"INSERT INTO {tool_daily} (organization_id, day, time_zone, "  # noqa: S608
                f"{_TOOL_KEY_COLUMNS}, calls, turns, cost_pico) "
                f"SELECT x.organization_id, r.day, %s, {_prefixed(_TOOL_KEY_COLUMNS)}, "
                "SUM(x.calls), SUM(x.turns), SUM(x.cost_pico) "
                f"FROM {tools} AS x {join} WHERE x.organization_id = %s "
                f"GROUP BY x.organization_id, r.day, {_prefixed(_TOOL_KEY_COLUMNS)}",
                [zone_name, *params, organization.pk],
            )
            _summaries_recompute(cursor, organization, day_params)


def _prefixed(columns: str) -> str:
    return ", ".join(f"x.{column}" for column in columns.split(", "))


def _prefixed_sums() -> str:
    sums = [
        "turns",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "web_search_requests",
        "cost_pico",
        "unpriced_turns",
        "unpriced_tokens",
        "sidechain_turns",
    ]
    return ", ".join([*(f"SUM(x.{name})" for name in sums), "MIN(x.first_at)", "MAX(x.last_at)"])


def _days_rebuild_all(organization: Organization, zone: ZoneInfo) -> int:
    """Every daily row again, in `zone`, from the 15-minute rows; how many days."""
    for model in DAILY_ROLLUP_MODELS:
        model.objects.all().delete()
    buckets = UsageRollup.objects.order_by("bucket").values_list("bucket", flat=True)
    first, last = buckets.first(), buckets.last()
    if first is None:
        return 0
    days = _days_between(first, last + BUCKET, zone)
    _days_recompute(organization, days, zone)
    return len(days)
