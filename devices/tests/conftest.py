from devices.tests.fixtures import (  # noqa: F401  (fixtures)
    device,
    device_and_secret,
    device_client,
    device_client_for,
    other_device_and_secret,
)
