from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # accounts' pages show the plan through accounts' panel registry; accounts never
        # imports billing (style.md 1).
        from billing.panels import plan_panels_register

        plan_panels_register()
        # Every limit enforced outside billing (devices, projects, members, retention) is
        # asked of accounts' registry, which billing answers from its plans table.
        from billing.limits import organization_limits_register

        organization_limits_register()
