"""Retention tasks: a nightly fan-out, one task per organization (style.md 7).

An organization's task deletes at most `RETENTION_BATCHES_PER_RUN` batches, then enqueues
itself again while rows remain, up to `RETENTION_MAX_RUNS`: after a long outage, or the first
night after a downgrade's grace period, a big backlog goes in bounded steps that each fit the
task time limits, and one that never catches up shows in the log instead of looping forever.
Running any of it twice deletes nothing more than once (the rows are gone; the state only moves
forward).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from accounts.selectors import organization_id_list
from accounts.tenancy import org_scoped_task, organization_in_scope
from retention.services import organization_retention_apply

logger = logging.getLogger(__name__)


@shared_task
def retention_nightly_task() -> int:
    organization_ids = organization_id_list()
    for organization_id in organization_ids:
        organization_retention_task.delay(organization_id=organization_id)
    logger.info("retention fanned out", extra={"organizations": len(organization_ids)})
    return len(organization_ids)


@shared_task
@org_scoped_task
def organization_retention_task(*, organization_id: int, run: int = 1) -> int:
    result = organization_retention_apply(organization=organization_in_scope())
    if not result.finished:
        if run < settings.RETENTION_MAX_RUNS:
            organization_retention_task.apply_async(
                kwargs={"organization_id": organization_id, "run": run + 1}
            )
        else:
            logger.warning(
                "retention stopped at its run cap with rows left",
                extra={"organization_id": organization_id, "run": run},
            )
    return result.deleted_events
