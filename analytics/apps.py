from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Rollups follow ingest through its signal: analytics depends on ingest, never the
        # reverse (ingest/signals.py says what the signal carries).
        from ingest.signals import events_ingested

        events_ingested.connect(
            _events_ingested_receiver, dispatch_uid="analytics.rollup_buckets_mark"
        )
        # The settings page links the API keys page through accounts' panel registry.
        from analytics.panels import analytics_panels_register

        analytics_panels_register()
        from analytics import schema  # noqa: F401  (documents the API key's scheme)


def _events_ingested_receiver(sender, *, organization_id: int, occurred_at, **kwargs) -> None:
    from analytics.services import rollup_buckets_mark

    rollup_buckets_mark(organization_id=organization_id, occurred_at=occurred_at)
