"""`manage.py rebuild_rollups [--org SLUG]`: recompute rollups from the raw events.

For a new rollup column, a bug fixed in the rollup SQL, or to check that nothing drifted: the
rollups are a function of the events, so this can run at any time, alongside ingest and the
refresh workers (it takes the same per-organization lock, a month of history at a time).
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from analytics.services import rollups_rebuild


class Command(BaseCommand):
    help = "Recompute the rollups of one organization (--org) or of all from their raw events."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="Only this organization.")

    def handle(self, *args, **options) -> None:
        organizations = Organization.objects.order_by("pk")
        if options["org"]:
            organizations = organizations.filter(slug=options["org"])
            if not organizations.exists():
                raise CommandError(
                    f"rebuild_rollups: no organization with slug {options['org']!r}."
                )
        for organization in organizations.iterator():
            started = time.monotonic()
            events = rollups_rebuild(organization=organization)
            seconds = time.monotonic() - started
            self.stdout.write(
                f"rebuild_rollups: {organization.slug}: {events:,} events in {seconds:.1f} s"
            )
