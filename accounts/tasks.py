import logging

from celery import shared_task

from accounts.services import INVITATION_PURGE_BATCH_SIZE, invitation_expired_purge

logger = logging.getLogger(__name__)

# One run deletes at most 20 batches (100,000 rows at the default size), well inside the task
# time limits; while rows remain it enqueues the next run, up to a cap so that a purge that
# never catches up (rows arriving faster than it deletes) shows up in the log instead of
# looping forever.
PURGE_BATCHES_PER_RUN = 20
PURGE_MAX_RUNS = 50


@shared_task
def invitation_expired_purge_task(run: int = 1) -> int:
    """Daily (see CELERY_BEAT_SCHEDULE); deleting already-deleted rows is a no-op, so a rerun
    is harmless."""
    deleted = invitation_expired_purge(
        batch_size=INVITATION_PURGE_BATCH_SIZE, max_batches=PURGE_BATCHES_PER_RUN
    )
    logger.info("expired invitations purged", extra={"deleted": deleted, "run": run})
    if deleted >= INVITATION_PURGE_BATCH_SIZE * PURGE_BATCHES_PER_RUN:
        if run < PURGE_MAX_RUNS:
            invitation_expired_purge_task.apply_async(kwargs={"run": run + 1})
        else:
            logger.warning(
                "expired invitation purge stopped at its run cap with rows left",
                extra={"run": run},
            )
    return deleted
