import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="ping")
def ping() -> str:
    """Round trip through broker and worker; used by beat's heartbeat and the worker tests."""
    logger.info("pong")
    return "pong"
