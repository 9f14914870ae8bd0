from __future__ import annotations

from collections.abc import Iterator

import pytest

# The browser fixtures of the accounts journey (Debian's Chromium, the screenshots folder),
# shared rather than written twice.
from accounts.tests.test_browser_journey import artifacts, browser  # noqa: F401  (fixtures)
from alerts.tests.webhook_server import WebhookReceiver, webhook_receiver
from clawtrace_site.celery import app as celery_app
from devices.tests.fixtures import device, device_and_secret  # noqa: F401  (fixtures)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def eager_retries():
    """Eager tasks run their retries at once, in-process, when errors do not propagate (with
    propagation on, Celery raises the first `Retry` instead of running it). No backoff sleeps:
    eager mode ignores the countdown."""
    previous = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = previous


@pytest.fixture
def short_webhook_timeouts(settings):
    settings.ALERT_WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.ALERT_WEBHOOK_CONNECT_TIMEOUT_SECONDS = 0.5
