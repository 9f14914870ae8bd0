"""Retention's half in analytics (`rollups_before_delete`): every rollup table is trimmed to the
same local midnight, in batches of at most the size asked, each under the organization's rollup
lock. The end-to-end behaviour (with the events, plans and zones) is in
retention/tests/test_retention.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.apps import apps

from accounts.models import Organization
from accounts.tenancy import organization_scope
from analytics.models import RollupDirtyBucket
from analytics.services import (
    ROLLUP_MODELS,
    rollup_retention,
    rollups_before_delete,
    rollups_rebuild,
)
from analytics.tests.factories import events_random
from analytics.tests.helpers import rollup_snapshot

pytestmark = pytest.mark.django_db

CUTOFF = datetime(2026, 2, 25, tzinfo=UTC)

# Analytics tables with a `bucket` or `day` column that hold no history of their own, and why
# retention leaves them alone.
NOT_HISTORY = {
    # A queue of buckets to recompute from the events: one older than the cutoff recomputes to
    # nothing once the events are gone (retention/tests: queued buckets make nothing again).
    RollupDirtyBucket,
}


def _column(model) -> str:
    return "day" if "day" in {field.name for field in model._meta.concrete_fields} else "bucket"


def _counts(org) -> dict[str, tuple[int, int]]:
    """Rows before the cutoff and from it on, per rollup table."""
    out = {}
    with organization_scope(org):
        for model in ROLLUP_MODELS:
            column = _column(model)
            first_kept = CUTOFF if column == "bucket" else CUTOFF.date()
            rows = model.objects.all()
            out[model.__name__] = (
                rows.filter(**{f"{column}__lt": first_kept}).count(),
                rows.filter(**{f"{column}__gte": first_kept}).count(),
            )
    return out


def test_every_analytics_table_keyed_by_bucket_or_day_is_trimmed_by_retention():
    keyed_by_time = {
        model
        for model in apps.get_app_config("analytics").get_models()
        if {"bucket", "day"} & {field.name for field in model._meta.concrete_fields}
    }
    assert keyed_by_time - NOT_HISTORY == set(ROLLUP_MODELS), (
        "a rollup table keyed by bucket or day must join ROLLUP_MODELS "
        "(analytics/services/rollup_retention.py), or NOT_HISTORY here with a reason"
    )
    # The 15-minute tables go before the daily ones made from them.
    kinds = [_column(model) for model in ROLLUP_MODELS]
    assert kinds == sorted(kinds, key=lambda kind: kind == "day")


@pytest.mark.parametrize(
    ("zone", "not_a_midnight"),
    [
        ("UTC", datetime(2026, 2, 25, 0, 15, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2026, 2, 25, tzinfo=UTC)),  # 05:30 there
    ],
)
def test_a_cutoff_inside_a_local_day_is_refused(org, zone, not_a_midnight):
    Organization.objects.filter(pk=org.pk).update(time_zone=zone)
    org.refresh_from_db()
    events_random(org, 50, seed=4)
    rollups_rebuild(organization=org)
    before = rollup_snapshot(org)

    with pytest.raises(ValueError, match="local midnight"):
        rollups_before_delete(organization=org, before=not_a_midnight, batch_size=100)

    assert rollup_snapshot(org) == before


def test_a_batch_is_at_most_the_size_asked_filled_table_after_table_under_the_rollup_lock(org):
    events_random(org, 300, seed=5)  # 20 Feb to 4 Mar
    rollups_rebuild(organization=org)
    counts = _counts(org)
    assert all(older and newer for older, newer in counts.values())
    sizes = []
    with mock.patch.object(
        rollup_retention, "_state_lock", wraps=rollup_retention._state_lock
    ) as lock:
        while not sizes or sizes[-1] == 37:
            sizes.append(rollups_before_delete(organization=org, before=CUTOFF, batch_size=37))

    assert len(sizes) > 4 and all(size == 37 for size in sizes[:-1]) and sizes[-1] < 37
    assert lock.call_count == len(sizes)
    assert sum(sizes) == sum(older for older, _newer in counts.values())
    assert _counts(org) == {name: (0, newer) for name, (_older, newer) in counts.items()}
    assert rollups_before_delete(organization=org, before=CUTOFF, batch_size=37) == 0


def test_a_batch_is_a_fixed_handful_of_statements_whatever_its_size(
    org, django_assert_max_num_queries
):
    events_random(org, 300, seed=6)
    rollups_rebuild(organization=org)
    # Savepoint, lock (create if missing, select for update), then a select of keys and a
    # delete per table: the same whatever the batch size.
    with django_assert_max_num_queries(4 + 2 * len(ROLLUP_MODELS)):
        assert (
            rollups_before_delete(
                organization=org, before=CUTOFF + timedelta(days=3), batch_size=10_000
            )
            > 0
        )
