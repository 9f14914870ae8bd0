"""Device fixtures, shared by the devices and ingest tests (their conftest.py import them)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from accounts.models import Organization
from devices.models import Device
from devices.tests.factories import device_with_secret


@pytest.fixture
def device_client_for() -> Callable[[str], APIClient]:
    """An API client that sends `Authorization: Bearer <secret>` on every call."""

    def make(secret: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


@pytest.fixture
def device_and_secret(org: Organization) -> tuple[Device, str]:
    return device_with_secret(org, name="alpha-laptop")


@pytest.fixture
def device(device_and_secret) -> Device:
    return device_and_secret[0]


@pytest.fixture
def device_client(device_and_secret, device_client_for) -> APIClient:
    return device_client_for(device_and_secret[1])


@pytest.fixture
def other_device_and_secret(other_org: Organization) -> tuple[Device, str]:
    return device_with_secret(other_org, name="bravo-server")
