"""What only PostgreSQL with concurrent connections, and a real Celery worker on Redis, can
show: two refreshes of one organization at once change nothing, a refresh racing ingest
loses nothing, and the refresh scheduled by an ingest batch runs in a worker and leaves the
rollups equal to the events. (Skipped on SQLite, whose writers take turns anyway, and without
REDIS_URL.)"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from analytics import selectors
from analytics.services import (
    bucket_floor,
    rollup_buckets_mark,
    rollups_rebuild,
    rollups_refresh,
)
from analytics.tests.factories import events_random
from analytics.tests.helpers import raw_events, rollup_snapshot, totals_of
from clawtrace_site.tests.concurrency import run_concurrently
from devices.tests.factories import device_with_secret
from ingest.serializers import batch_parse
from ingest.services import usage_batch_ingest
from ingest.tests.factories import event_payload

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def _totals(organization) -> dict:
    filters = selectors.usage_filter_parse(organization=organization, params={"range": "all"})
    found = selectors.usage_totals(organization=organization, filters=filters)
    return {key: found[key] for key in selectors.TOTAL_KEYS}


def test_two_workers_refreshing_one_organization_at_once_change_nothing(org, monkeypatch):
    monkeypatch.setattr("analytics.services.rollups.rollups_refresh_schedule", lambda **_: False)
    events = events_random(org, 2000, seed=21, days=30)
    rollups_rebuild(organization=org)
    expected = rollup_snapshot(org)
    for _round in range(3):
        times = [event.occurred_at for event in events]
        rollup_buckets_mark(organization_id=org.pk, occurred_at=times)
        rollup_buckets_mark(organization_id=org.pk, occurred_at=times[::2])
        one, two = run_concurrently(
            lambda: rollups_refresh(organization=org),
            lambda: rollups_refresh(organization=org),
        )
        # They took turns (the organization's lock): between them every queued bucket was
        # taken once, and the rows are what they were.
        assert one.buckets + two.buckets == len({bucket_floor(t) for t in times})
        assert rollup_snapshot(org) == expected


def test_a_refresh_racing_ingest_batches_loses_nothing(org, monkeypatch):
    monkeypatch.setattr("analytics.services.rollups.rollups_refresh_schedule", lambda **_: False)
    device, _ = device_with_secret(org)

    def ingest_batches():
        for hour in range(10, 16):
            rows = batch_parse(
                {
                    "events": [
                        event_payload(timestamp=f"2026-03-02T{hour}:{minute:02d}:00.000Z")
                        for minute in range(0, 60, 2)
                    ]
                }
            ).events
            usage_batch_ingest(device=device, events=rows, retract=[])

    def refresh_repeatedly():
        for _ in range(12):
            rollups_refresh(organization=org)

    run_concurrently(ingest_batches, refresh_repeatedly)
    # Whatever the interleaving, the queue holds what the last refresh did not see.
    while rollups_refresh(organization=org).buckets:
        pass
    assert _totals(org) == totals_of(raw_events(org))


@pytest.mark.redis
def test_an_ingest_batch_is_rolled_up_by_a_real_worker_on_redis(org, monkeypatch, redis_worker):
    monkeypatch.setattr("analytics.services.rollups.REFRESH_DEBOUNCE_SECONDS", 1)
    device, _ = device_with_secret(org)
    for batch in range(3):  # three batches in a second: one debounced run, or two
        rows = batch_parse(
            {
                "events": [
                    event_payload(
                        timestamp=f"2026-03-0{batch + 1}T12:{minute:02d}:00.000Z",
                        tools=["Read", "Bash"],
                    )
                    for minute in range(50)
                ]
            }
        ).events
        usage_batch_ingest(device=device, events=rows, retract=[])
    expected = totals_of(raw_events(org))
    deadline = time.monotonic() + 60
    while _totals(org) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _totals(org) == expected
    assert expected["turns"] == 150
