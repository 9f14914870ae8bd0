"""`python manage.py billing_reconcile`: repair organizations whose Stripe webhook was missed.

Lists the completed Checkout Sessions from Stripe (every page) and records any paid one that
billing lacks, or a refund it missed, then recomputes the organization's plan. Prints each
repair; a second run prints none.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from billing.selectors import billing_enabled
from billing.services import payments_reconcile
from billing.stripe_gateway import StripeUnavailableError

SECONDS_PER_DAY = 24 * 60 * 60


class Command(BaseCommand):
    help = "Compare Stripe's paid Checkout Sessions with recorded payments and repair the gaps."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Only sessions created in the last N days (default: all of them).",
        )

    def handle(self, *args, days: int | None = None, **options) -> None:
        if not billing_enabled():
            raise CommandError("Billing is off (no STRIPE_SECRET_KEY): nothing to reconcile.")
        created_after = int(time.time()) - days * SECONDS_PER_DAY if days else None
        try:
            fixes = payments_reconcile(created_after=created_after)
        except StripeUnavailableError as error:
            raise CommandError(f"Stripe could not be listed: {error}") from None
        for fix in fixes:
            self.stdout.write(f"fixed {fix}")
        self.stdout.write(
            self.style.SUCCESS(f"{len(fixes)} repaired." if fixes else "Nothing to repair.")
        )
