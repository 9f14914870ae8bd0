"""`make setup` runs this before `migrate`: the folders the configured SQLite database, broker
and result backend write to (see `clawtrace_site/localdirs.py`). Nothing to do with PostgreSQL
and Redis."""

from django.conf import settings
from django.core.management.base import BaseCommand

from clawtrace_site.localdirs import celery_dirs, database_dirs, dirs_ensure


class Command(BaseCommand):
    help = "Create the local folders the configured database, broker and results need."

    def handle(self, *args, **options) -> None:
        made = dirs_ensure(
            [
                *database_dirs(settings.DATABASES),
                *celery_dirs(
                    broker_url=settings.CELERY_BROKER_URL,
                    transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}),
                    result_backend=settings.CELERY_RESULT_BACKEND,
                ),
            ]
        )
        for path in made:
            self.stdout.write(f"created {path}")
