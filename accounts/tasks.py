import logging

from celery import shared_task

from accounts.services import invitation_expired_purge

logger = logging.getLogger(__name__)


@shared_task
def invitation_expired_purge_task() -> int:
    """Daily (see CELERY_BEAT_SCHEDULE); deleting already-deleted rows is a no-op, so a rerun
    is harmless."""
    deleted = invitation_expired_purge()
    logger.info("expired invitations purged", extra={"deleted": deleted})
    return deleted
