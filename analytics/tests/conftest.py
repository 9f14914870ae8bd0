from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from analytics.tests.factories import api_key_with_value
from devices.tests.fixtures import (  # noqa: F401  (fixtures)
    device,
    device_and_secret,
    device_client,
    device_client_for,
    other_device_and_secret,
)


@pytest.fixture
def api_key_and_value(org, owner):
    return api_key_with_value(org, created_by=owner)


@pytest.fixture
def key_client_for():
    """An API client that sends `Authorization: Bearer <organization API key>`."""

    def make(value: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {value}")
        return client

    return make


@pytest.fixture
def key_client(api_key_and_value, key_client_for) -> APIClient:
    return key_client_for(api_key_and_value[1])
