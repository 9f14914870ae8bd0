"""Deleting the rollups of history the organization's plan no longer keeps: analytics' half of
the nightly retention job (`retention.services`), which deletes the raw events first through
`ingest.services.events_before_delete` and then calls `rollups_before_delete` with the same
cutoff, batch after batch.

The cutoff is a local midnight of the organization's zone. A daily row cannot be cut inside its
day, but a local midnight is also the start of a 15-minute bucket (analytics/models.py), so the
events before it, the 15-minute rows of buckets before it and the daily rows of days before its
local date are the same history: what is left of the rollups is exactly what a rebuild from the
remaining events makes.
"""

from __future__ import annotations

from datetime import date, datetime

from django.db import models, transaction

from accounts.models import Organization
from accounts.tenancy import organization_scope
from analytics.services.rollups import ROLLUP_MODELS, _state_lock, local_midnight


def _older_than(model: type[models.Model], *, before: datetime, day: date) -> tuple[str, object]:
    """The column `model` is trimmed by, and the first value kept."""
    names = {field.name for field in model._meta.concrete_fields}
    if "bucket" in names:
        return "bucket", before
    if "day" in names:
        return "day", day
    raise TypeError(f"{model.__name__} has neither a bucket nor a day column")


def rollups_before_delete(*, organization: Organization, before: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` of the organization's rollup rows older than `before` (a local
    midnight of its zone): 15-minute rows of earlier buckets, daily rows of earlier local days,
    table by table in `ROLLUP_MODELS` order (15-minute tables first), oldest first; how many
    rows went (fewer than `batch_size`: none are left). Retention calls it batch after batch.

    One short transaction per batch, by lists of primary keys, under the organization's rollup
    lock (`RollupState`), so a batch never interleaves with a refresh or a rebuild and no lock
    is held for longer than a batch's few statements. Daily rows go by day whatever zone they
    were made in: rows of a former zone are read by nobody and remade by the next refresh.
    Queued dirty buckets older than `before` are left alone: they are recomputed from the
    events, which are gone, and so make no row.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    zone = organization.zone
    day = before.astimezone(zone).date()
    if local_midnight(day, zone) != before:
        # A cutoff inside a day would keep the day's daily row while its earlier 15-minute rows
        # went: the dashboard would show history that the events and the buckets no longer have.
        raise ValueError(f"before must be a local midnight of {zone.key}, not {before}")
    deleted = 0
    with transaction.atomic(), organization_scope(organization):
        _state_lock(organization)
        for model in ROLLUP_MODELS:
            if deleted == batch_size:
                break
            column, first_kept = _older_than(model, before=before, day=day)
            pks = list(
                model.objects.filter(**{f"{column}__lt": first_kept})
                .order_by(column, "pk")
                .values_list("pk", flat=True)[: batch_size - deleted]
            )
            if pks:
                count, _ = model.objects.filter(pk__in=pks).delete()
                deleted += count
    return deleted
