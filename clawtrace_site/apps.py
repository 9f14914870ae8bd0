from django.apps import AppConfig


class ClawtraceSiteConfig(AppConfig):
    """The project package as an app: for its management commands and system checks only
    (it has no models)."""

    name = "clawtrace_site"
    verbose_name = "ClawTrace site"

    def ready(self) -> None:
        from clawtrace_site import checks  # noqa: F401  (registers the checks)
