"""Request limits the settings promise: API throttles (with the `device` scope the sender API
will use) and a body limit sized for the largest legal ingest batch."""

from __future__ import annotations

import json

import pytest
import time_machine
from django.urls import reverse
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts.tests.factories import UserFactory

INGEST_BATCH_MAX_BYTES = 1_000_000


class _OpenApi(APIView):
    """Throttled by the project defaults, like every API view."""

    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"ok": True})


class _SenderApi(APIView):
    """The sender API's scope (its own throttle keys it by device: devices/authentication.py)."""

    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "device"

    def get(self, request):
        return Response({"ok": True})


def _allowed_before_throttled(
    view, *, user=None, limit: int, forwarded_for=lambda n: None, remote_addr="203.0.113.7"
) -> int | None:
    """How many requests were answered 200 in one frozen minute before the first 429 (checked
    to be JSON in the error shape); None if `limit + 1` requests all got through.
    `forwarded_for(n)` gives the n-th request's X-Forwarded-For header."""
    factory = APIRequestFactory()
    with time_machine.travel("2026-03-02 10:00:00", tick=False):
        for sent in range(limit + 1):
            headers = {"REMOTE_ADDR": remote_addr}
            if forwarded_for(sent) is not None:
                headers["HTTP_X_FORWARDED_FOR"] = forwarded_for(sent)
            request = factory.get("/api/v1/probe/", **headers)
            if user is not None:
                force_authenticate(request, user=user)
            response = view(request)
            if response.status_code == 429:
                response.render()
                body = json.loads(response.content)
                assert body["error"] == "throttled"
                assert int(response["Retry-After"]) > 0
                return sent
            assert response.status_code == 200
    return None


def test_anonymous_api_requests_are_throttled_at_60_a_minute_per_address():
    assert _allowed_before_throttled(_OpenApi.as_view(), limit=60) == 60


def test_a_forged_forwarded_for_header_does_not_escape_the_anonymous_throttle():
    # Without a proxy in front (development), the header is ignored.
    def forged(n):
        return f"198.51.100.{n % 250}"

    assert _allowed_before_throttled(_OpenApi.as_view(), limit=60, forwarded_for=forged) == 60


def test_behind_one_proxy_the_address_it_added_is_the_client(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    view = _OpenApi.as_view()

    # Whatever a client puts in front, the proxy's own entry (the last) is what counts.
    def forged(n):
        return f"198.51.100.{n % 250}, 192.0.2.10"

    assert _allowed_before_throttled(view, limit=60, forwarded_for=forged) == 60
    # Another client behind the same proxy (same REMOTE_ADDR) has a count of its own.
    assert _allowed_before_throttled(view, limit=5, forwarded_for=lambda n: "192.0.2.11") is None


@pytest.mark.django_db
def test_signed_in_api_requests_are_throttled_at_600_a_minute_per_user():
    user = UserFactory()
    assert _allowed_before_throttled(_OpenApi.as_view(), user=user, limit=600) == 600
    # Another user from the same address has a count of their own.
    assert _allowed_before_throttled(_OpenApi.as_view(), user=UserFactory(), limit=5) is None


@pytest.mark.django_db
def test_the_device_scope_allows_a_first_sync_of_1800_batches_a_minute():
    user = UserFactory()
    assert _allowed_before_throttled(_SenderApi.as_view(), user=user, limit=1800) == 1800


@pytest.mark.django_db
def test_a_body_the_size_of_the_largest_ingest_batch_gets_past_the_upload_limit(
    owner, org, api_client_for
):
    membership_id = org.memberships.get(user=owner).pk
    url = reverse("api:membership_detail", args=[org.slug, membership_id])
    # Valid JSON of 1,000,000 bytes (padding inside it), plus the envelope margin.
    body = b'{"role": "owner"' + b" " * (INGEST_BATCH_MAX_BYTES + 100_000) + b"}"

    response = api_client_for(owner).patch(url, body, content_type="application/json")

    assert response.status_code == 200, response.content[:200]


@pytest.mark.django_db
def test_a_body_over_2_5_mb_is_a_413_in_the_error_shape(owner, org, api_client_for):
    membership_id = org.memberships.get(user=owner).pk
    url = reverse("api:membership_detail", args=[org.slug, membership_id])
    body = b'{"role": "owner"' + b" " * 2_500_000 + b"}"

    response = api_client_for(owner).patch(url, body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
