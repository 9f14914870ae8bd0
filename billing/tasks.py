"""Billing's tasks: thin, each calls one service (style.md 7)."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from billing.selectors import billing_enabled
from billing.services import payment_sync_from_stripe, payments_reconcile
from billing.stripe_gateway import StripeUnavailableError

logger = logging.getLogger(__name__)

# The hourly run looks back this far: Stripe retries a webhook for three days, so a session
# older than that whose webhook never landed will not get one; a week leaves margin.
RECONCILE_LOOKBACK_SECONDS = 7 * 24 * 60 * 60


@shared_task
def payments_reconcile_task() -> int:
    """Hourly (see CELERY_BEAT_SCHEDULE): repairs are idempotent, so a rerun is harmless."""
    if not billing_enabled():
        return 0
    try:
        fixes = payments_reconcile(created_after=int(time.time()) - RECONCILE_LOOKBACK_SECONDS)
    except StripeUnavailableError:
        # Next hour's run covers the same sessions.
        logger.warning("billing reconcile skipped: Stripe unavailable")
        return 0
    for fix in fixes:
        logger.warning("billing reconcile repaired a missed webhook", extra={"fix": fix})
    return len(fixes)


@shared_task
def payment_sync_from_stripe_task(*, payment_id: int) -> None:
    """After a new payment: its receipt link (the checkout event does not carry it)."""
    try:
        payment_sync_from_stripe(payment_id=payment_id)
    except StripeUnavailableError:
        # Best effort: the hourly reconcile adds the receipt link.
        logger.warning("receipt not fetched", extra={"payment_id": payment_id})
