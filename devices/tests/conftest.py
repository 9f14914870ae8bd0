# The browser fixtures of the accounts journey (Debian's Chromium, the screenshots folder),
# shared rather than written twice (as alerts/tests/conftest.py does).
from accounts.tests.test_browser_journey import artifacts, browser  # noqa: F401  (fixtures)
from devices.tests.fixtures import (  # noqa: F401  (fixtures)
    device,
    device_and_secret,
    device_client,
    device_client_for,
    other_device_and_secret,
)
