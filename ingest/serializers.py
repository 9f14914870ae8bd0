"""The ingest body's allowlist (docs/sync-protocol.md, "Ingest"), written once as a table.

`EVENT_FIELDS` is the contract's table. From it come both the DRF serializer that documents
the body in the OpenAPI document and the checks that run on every event. The checks are
plain Python rather than a DRF field per value: a batch holds 1,000 events of 20 keys, and
DRF's per-field machinery costs about fifty times more for the same answers.

Any key not in the table rejects the whole batch (`unknown_field`, or `forbidden_field` for a
key that could carry text), naming it as `events.N.key`; a value out of its bounds is
`invalid_value` with the same path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rest_framework import serializers

from devices.protocol import (
    MAX_BATCH_ITEMS,
    InvalidValue,
    PayloadTooLarge,
    ProtocolStrictMixin,
    unknown_key_error,
)
from ingest.models import Source

MAX_TOKENS = 2**53 - 1
MAX_WEB_SEARCHES = 10_000
MAX_COST = Decimal(10**6)
MAX_TOOLS = 64
MAX_TOOL_NAME = 64
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive

_HEX32 = re.compile(r"[0-9a-f]{32}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")
_DECIMAL = re.compile(r"\d{1,7}(?:\.\d{1,12})?")


class _Reject(Exception):
    """A value out of bounds; the caller adds the path."""


# Each check below has a column form, `check.column(values)`: the whole column's values as
# stored (the same conversions), or None when any value is out of bounds. A batch is checked
# column by column first, in loops without a function call per value (a third of a batch's
# time went to those calls); only a batch with a bad value goes through the per-value checks,
# which find and name the first one. `test_serializers.py` holds the two forms to one answer.


def _with_column(check: Callable[[Any], Any], column: Callable[[list], list | None]):
    check.column = column  # type: ignore[attr-defined]
    return check


def _plain_string(value: Any, max_length: int) -> bool:
    return type(value) is str and len(value) <= max_length and "\x00" not in value


def _string(max_length: int, *, nullable: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if type(value) is not str:
            raise _Reject("a string or null" if nullable else "a string")
        if len(value) > max_length:
            raise _Reject(f"at most {max_length} characters")
        if "\x00" in value:
            raise _Reject("no NUL characters")
        return value

    def column(values: list) -> list | None:
        if nullable:
            ok = all(v is None or _plain_string(v, max_length) for v in values)
        else:
            ok = all(_plain_string(v, max_length) for v in values)
        return values if ok else None

    return _with_column(check, column)


def _choice(choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in choices or type(value) is not str:
            raise _Reject("one of " + ", ".join(choices))
        return value

    def column(values: list) -> list | None:
        return values if all(type(v) is str and v in choices for v in values) else None

    return _with_column(check, column)


def _integer(maximum: int) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is not int or not 0 <= value <= maximum:
            raise _Reject(f"an integer from 0 to {maximum}")
        return value

    def column(values: list) -> list | None:
        return values if all(type(v) is int and 0 <= v <= maximum for v in values) else None

    return _with_column(check, column)


def _event_id(value: Any) -> str:
    if type(value) is not str or not _HEX32.fullmatch(value):
        raise _Reject("32 lower-case hex digits")
    return value


def _event_id_column(values: list) -> list | None:
    match = _HEX32.fullmatch
    return values if all(type(v) is str and match(v) for v in values) else None


def _timestamp(value: Any) -> datetime:
    if type(value) is not str or not _TIMESTAMP.fullmatch(value):
        raise _Reject("an ISO 8601 UTC time ending in Z, e.g. 2026-01-31T12:00:00.000Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Reject("a real date and time") from None
    if not EARLIEST <= moment < LATEST:
        raise _Reject("a time from 2000-01-01 up to 2100-01-01")
    return moment


def _timestamp_column(values: list) -> list | None:
    match = _TIMESTAMP.fullmatch
    if not all(type(v) is str and match(v) for v in values):
        return None
    try:
        moments = [datetime.fromisoformat(v) for v in values]
    except ValueError:
        return None
    return moments if all(EARLIEST <= m < LATEST for m in moments) else None


def _cost(value: Any) -> Decimal | None:
    if value is None:
        return None
    if type(value) is not str or not _DECIMAL.fullmatch(value):
        raise _Reject("a decimal string with at most 12 places, or null")
    try:
        amount = Decimal(value)
    except InvalidOperation:  # (the pattern rules this out; kept for safety)
        raise _Reject("a decimal string") from None
    if amount > MAX_COST:
        raise _Reject("at most 1000000")
    return amount


def _cost_column(values: list) -> list | None:
    match = _DECIMAL.fullmatch
    if not all(v is None or (type(v) is str and match(v)) for v in values):
        return None
    amounts = [None if v is None else Decimal(v) for v in values]
    return amounts if all(a is None or a <= MAX_COST for a in amounts) else None


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise _Reject("true or false")
    return value


def _boolean_column(values: list) -> list | None:
    return values if all(type(v) is bool for v in values) else None


def _tools(value: Any) -> list[str]:
    if type(value) is not list or len(value) > MAX_TOOLS:
        raise _Reject(f"a list of at most {MAX_TOOLS} tool names")
    for name in value:
        if type(name) is not str or len(name) > MAX_TOOL_NAME or "\x00" in name:
            raise _Reject(f"tool names are strings of at most {MAX_TOOL_NAME} characters")
    return value


def _tools_column(values: list) -> list | None:
    ok = all(
        type(v) is list
        and len(v) <= MAX_TOOLS
        and all(_plain_string(name, MAX_TOOL_NAME) for name in v)
        for v in values
    )
    return values if ok else None


_with_column(_event_id, _event_id_column)
_with_column(_timestamp, _timestamp_column)
_with_column(_cost, _cost_column)
_with_column(_boolean, _boolean_column)
_with_column(_tools, _tools_column)


@dataclass(frozen=True)
class FieldSpec:
    check: Callable[[Any], Any]
    schema: Callable[[], serializers.Field]  # how the OpenAPI document shows it
    column: str  # the Event field it is stored in


def _count_field(maximum: int) -> Callable[[], serializers.Field]:
    return lambda: serializers.IntegerField(min_value=0, max_value=maximum)


def _string_field(max_length: int, nullable: bool = False) -> Callable[[], serializers.Field]:
    return lambda: serializers.CharField(
        max_length=max_length, allow_blank=True, allow_null=nullable
    )


_SOURCES = tuple(Source.values)

# The contract's table, in the order of the Event columns. Every key is required.
EVENT_FIELDS: dict[str, FieldSpec] = {
    "event_id": FieldSpec(
        _event_id,
        lambda: serializers.RegexField(r"^[0-9a-f]{32}$", min_length=32, max_length=32),
        "event_id",
    ),
    "source": FieldSpec(
        _choice(_SOURCES), lambda: serializers.ChoiceField(choices=_SOURCES), "source"
    ),
    "agent": FieldSpec(_string(128), _string_field(128), "agent"),
    "project": FieldSpec(_string(200, nullable=True), _string_field(200, True), "project"),
    "session_id": FieldSpec(_string(200), _string_field(200), "session_id"),
    "model": FieldSpec(_string(200), _string_field(200), "model"),
    "provider": FieldSpec(_string(64), _string_field(64), "provider"),
    "timestamp": FieldSpec(
        _timestamp,
        lambda: serializers.RegexField(
            r"^(20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
            r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z$",
            help_text="ISO 8601 in UTC with Z, in [2000-01-01, 2100-01-01).",
        ),
        "occurred_at",
    ),
    "input_tokens": FieldSpec(_integer(MAX_TOKENS), _count_field(MAX_TOKENS), "input_tokens"),
    "output_tokens": FieldSpec(_integer(MAX_TOKENS), _count_field(MAX_TOKENS), "output_tokens"),
    "cache_read_tokens": FieldSpec(
        _integer(MAX_TOKENS), _count_field(MAX_TOKENS), "cache_read_tokens"
    ),
    "cache_write_5m_tokens": FieldSpec(
        _integer(MAX_TOKENS), _count_field(MAX_TOKENS), "cache_write_5m_tokens"
    ),
    "cache_write_1h_tokens": FieldSpec(
        _integer(MAX_TOKENS), _count_field(MAX_TOKENS), "cache_write_1h_tokens"
    ),
    "web_search_requests": FieldSpec(
        _integer(MAX_WEB_SEARCHES), _count_field(MAX_WEB_SEARCHES), "web_search_requests"
    ),
    "cost_usd": FieldSpec(
        _cost,
        lambda: serializers.RegexField(
            r"^[0-9]{1,6}(\.[0-9]{1,12})?$", allow_null=True, help_text="Decimal USD, or null."
        ),
        "cost_usd",
    ),
    "logged_cost_usd": FieldSpec(
        _cost,
        lambda: serializers.RegexField(
            r"^[0-9]{1,6}(\.[0-9]{1,12})?$",
            allow_null=True,
            help_text="The log's own costUSD, or null.",
        ),
        "logged_cost_usd",
    ),
    "price_source": FieldSpec(_string(32), _string_field(32), "price_source"),
    "is_sidechain": FieldSpec(_boolean, serializers.BooleanField, "is_sidechain"),
    "tools": FieldSpec(
        _tools,
        lambda: serializers.ListField(
            child=serializers.CharField(max_length=MAX_TOOL_NAME, allow_blank=True),
            max_length=MAX_TOOLS,
        ),
        "tools",
    ),
    "git_branch": FieldSpec(_string(200, nullable=True), _string_field(200, True), "git_branch"),
}
EVENT_KEYS = frozenset(EVENT_FIELDS)
EVENT_COLUMNS = tuple(spec.column for spec in EVENT_FIELDS.values())
# Positions in an event row (a tuple in EVENT_COLUMNS order).
EVENT_ID = 0
TOKEN_SLICE = slice(8, 13)
OCCURRED_AT = EVENT_COLUMNS.index("occurred_at")
TOOLS = EVENT_COLUMNS.index("tools")
_CHECKS = tuple((key, spec.check) for key, spec in EVENT_FIELDS.items())
assert EVENT_COLUMNS[TOKEN_SLICE] == (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
)

BATCH_KEYS = frozenset({"events", "retract"})


@dataclass
class Batch:
    events: list[tuple]  # rows in EVENT_COLUMNS order, event ids as 32 hex digits
    retract: list[str]


def _keys_check(event: Any, index: int) -> None:
    if type(event) is not dict:
        raise InvalidValue(f"events.{index} must be an object.", field=f"events.{index}")
    if event.keys() == EVENT_KEYS:
        return
    for key in event:
        if key not in EVENT_KEYS:
            raise unknown_key_error(key, f"events.{index}")
    missing = next(key for key in EVENT_FIELDS if key not in event)
    raise InvalidValue(f"events.{index}.{missing} is required.", field=f"events.{index}.{missing}")


def _event_row(event: dict, index: int) -> tuple:
    row = []
    for key, check in _CHECKS:
        try:
            row.append(check(event[key]))
        except _Reject as reason:
            field = f"events.{index}.{key}"
            raise InvalidValue(f"{field} must be {reason}.", field=field) from None
    return tuple(row)


def _rows_by_column(events: list[dict]) -> list[tuple] | None:
    """The rows, checked a column at a time; None if any value is out of bounds."""
    columns = []
    for key, check in _CHECKS:
        column = check.column([event[key] for event in events])
        if column is None:
            return None
        columns.append(column)
    return list(zip(*columns, strict=True))


def batch_parse(document: Any) -> Batch:
    """The validated batch, or the first problem as an ApiError. Keys are checked for
    every event before any value, so a field that could carry text is always the one named."""
    if type(document) is not dict:
        raise InvalidValue('The body must be an object: {"events": [...]}.', field="events")
    for key in document:
        if key not in BATCH_KEYS:
            raise unknown_key_error(key)
    if "events" not in document:
        raise InvalidValue("events is required.", field="events")
    events, retract = document["events"], document.get("retract", [])
    if type(events) is not list:
        raise InvalidValue("events must be a list.", field="events")
    if type(retract) is not list:
        raise InvalidValue("retract must be a list of event ids.", field="retract")
    if len(events) + len(retract) > MAX_BATCH_ITEMS:
        raise PayloadTooLarge()
    for index, event in enumerate(events):
        _keys_check(event, index)
    rows = _rows_by_column(events)
    if rows is None:  # a value out of bounds somewhere: find the first, and name it
        rows = [_event_row(event, index) for index, event in enumerate(events)]
    for index, event_id in enumerate(retract):
        if type(event_id) is not str or not _HEX32.fullmatch(event_id):
            raise InvalidValue(
                f"retract.{index} must be 32 lower-case hex digits.", field=f"retract.{index}"
            )
    return Batch(events=rows, retract=retract)


# --- The DRF serializers: what the OpenAPI document shows ---------------------------------------


class EventSerializer(ProtocolStrictMixin, serializers.Serializer):
    """One assistant turn, metadata only. Any other key rejects the batch."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {key: spec.schema() for key, spec in EVENT_FIELDS.items()}


class IngestBatchSerializer(ProtocolStrictMixin, serializers.Serializer):
    """The ingest body. Validation is `batch_parse` (the table above), so what is documented
    and what is enforced cannot drift apart."""

    events = EventSerializer(many=True, max_length=MAX_BATCH_ITEMS)
    retract = serializers.ListField(
        child=serializers.RegexField(r"^[0-9a-f]{32}$"),
        required=False,
        max_length=MAX_BATCH_ITEMS,
        help_text="Event ids the agent no longer counts: the organization's events of these "
        "ids are deleted.",
    )

    def to_internal_value(self, data: Any) -> Batch:
        return batch_parse(data)


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(min_value=0)
    duplicates = serializers.IntegerField(min_value=0)
    updated = serializers.IntegerField(min_value=0)
    retracted = serializers.IntegerField(min_value=0)
