from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The settings page links to the alert rules through accounts' panel registry; accounts
        # never imports alerts (style.md 1).
        from alerts.panels import alert_panels_register

        alert_panels_register()
