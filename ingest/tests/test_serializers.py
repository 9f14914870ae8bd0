"""The allowlist's two forms agree: a batch is checked a column at a time, and only a batch with a
bad value goes through the per-value checks that name it (ingest/serializers.py)."""

from __future__ import annotations

import pytest

from ingest.serializers import EVENT_FIELDS, _event_row, _rows_by_column, batch_parse
from ingest.tests.factories import event_payload

EDGES = [
    {},
    {"project": None, "git_branch": None, "cost_usd": None, "logged_cost_usd": "0.5"},
    {"input_tokens": 2**53 - 1, "web_search_requests": 10_000, "cost_usd": "1000000"},
    {"timestamp": "2000-01-01T00:00:00Z", "tools": [], "source": "openclaw", "agent": "main"},
    {"timestamp": "2099-12-31T23:59:59.999999Z", "tools": ["t" * 64] * 64},
    {"cost_usd": "0.000000000001", "is_sidechain": True, "model": "", "session_id": ""},
]


def _row_by_row(events: list[dict]) -> list[tuple]:
    return [_event_row(event, index) for index, event in enumerate(events)]


def test_a_valid_batch_gives_the_same_rows_either_way():
    events = [event_payload(**overrides) for overrides in EDGES]
    assert _rows_by_column(events) == _row_by_row(events)
    assert batch_parse({"events": events}).events == _row_by_row(events)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("event_id", "ABCDEF0123456789abcdef0123456789"),
        ("source", "cursor"),
        ("agent", "a" * 129),
        ("project", 5),
        ("session_id", None),
        ("model", "nul\x00byte"),
        ("timestamp", "2026-02-30T00:00:00Z"),
        ("timestamp", "1999-12-31T23:59:59Z"),
        ("input_tokens", True),
        ("output_tokens", -1),
        ("web_search_requests", 10_001),
        ("cost_usd", "1000000.000000000001"),
        ("logged_cost_usd", 0.5),
        ("is_sidechain", 0),
        ("tools", ["t" * 65]),
        ("tools", "Read"),
        ("git_branch", "b" * 201),
    ],
)
def test_a_bad_value_makes_the_column_form_hand_over_to_the_one_that_names_it(key, value):
    events = [event_payload(), event_payload(**{key: value})]
    assert _rows_by_column(events) is None
    with pytest.raises(Exception, match=rf"events\.1\.{key}"):
        _row_by_row(events)


def test_every_field_has_a_column_form():
    assert all(callable(getattr(spec.check, "column", None)) for spec in EVENT_FIELDS.values())
