"""What ingest tells the apps above it, without knowing them (analytics depends on ingest, never
the reverse).

`events_ingested` is sent once per stored batch that changed anything, after its transaction
committed (`transaction.on_commit`), so that a receiver never reads rows that could still roll
back. Keyword arguments:

- `organization_id`: the organization the batch belongs to;
- `device_id`: the device that sent it (a UUID);
- `occurred_at_min`, `occurred_at_max`: the earliest and latest `occurred_at` the batch touched;
- `occurred_at`: every `occurred_at` it touched (a frozenset of aware datetimes): those of the
  new rows, both the old and the new time of a row replaced by a fuller copy, and those of
  retracted rows. A receiver that keeps anything by time (analytics' rollups) recomputes
  exactly those times, so a retraction or a moved timestamp leaves nothing stale.

Receivers run after the commit and must not fail the request that stored the batch: the
batch is stored whatever they do (ingest sends robustly; a receiver's error is logged).
"""

from django.dispatch import Signal

events_ingested = Signal()
