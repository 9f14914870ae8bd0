from django.apps import AppConfig


class DevicesConfig(AppConfig):
    """Machines linked to an organization: the device authorization grant (RFC 8628),
    enrollment keys for fleets, and the device secret every sender call carries."""

    name = "devices"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # drf-spectacular finds authentication extensions by import.
        from devices import schema  # noqa: F401
        from devices.panels import device_panels_register

        # The organization's home shows its devices through accounts' panel registry
        # (accounts never imports devices).
        device_panels_register()
