import logging

from celery import shared_task

from ingest.partitions import event_partitions_ensure

logger = logging.getLogger(__name__)


@shared_task
def event_partitions_ensure_task() -> list[str]:
    """Daily (see CELERY_BEAT_SCHEDULE): the events table's monthly partitions, made ahead.
    Making one that exists is skipped, so a rerun or two workers at once change nothing
    (the second's CREATE TABLE of the same name fails inside its own transaction and the
    next run finds the partition there)."""
    made = event_partitions_ensure()
    logger.info("event partitions ensured", extra={"made": made})
    return made
