"""Schemathesis over every `/api/v1/` operation of the OpenAPI document that drf-spectacular
serves: no 5xx, and every response as the document says (status, content type, headers,
body). Requests go through the site's WSGI application, signed in as each operation expects: a
real device secret (the sync protocol) or a real organization API key (the organization API:
usage, sessions, anomalies, the organization and its plan; there is only one `Authorization`
header), and an owner's session with its CSRF token (the organization and member APIs), so
each operation is reached past its authentication."""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from analytics.services import rollups_rebuild
from analytics.tests.factories import api_key_with_value, events_random
from devices.tests.factories import device_with_secret

EXAMPLES_PER_OPERATION = 60
ORGANIZATION_API_PATHS = (
    "/api/v1/usage",
    "/api/v1/sessions",
    "/api/v1/anomalies",
    "/api/v1/organization",
)


@pytest.fixture
def api_schema(db):
    # As Django's test client does: a request's start and end must not close the test's
    # connection (it is inside the test's transaction, which closing would lose).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def signed_in_headers(org, owner, client_for, settings):
    """Headers for one operation's run: a new device each time, so that the logout
    operation's revocation does not leave the others unauthenticated."""
    # Load control is not under test here (test_ingest_api covers 429): room for the run.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "device": "100000/min",
            "device_link": "100000/min",
            "org_api": "100000/min",
        },
    }
    session = client_for(owner).cookies["sessionid"].value
    csrf_secret = _get_new_csrf_string()

    # Usage for the organization API to read, so its answers have rows to check.
    events_random(org, 120, seed=61)
    rollups_rebuild(organization=org)

    def make(path: str = "") -> dict[str, str]:
        if path in ORGANIZATION_API_PATHS:
            secret = api_key_with_value(org, name="fuzzed")[1]
        else:
            secret = device_with_secret(org, name="fuzzed")[1]
        return {
            "Authorization": f"Bearer {secret}",
            "Cookie": f"sessionid={session}; csrftoken={csrf_secret}",
            "X-CSRFToken": _mask_cipher_secret(csrf_secret),
        }

    return make


def _operation_check(operation, headers: dict[str, str], excluded: list):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    return check


def test_every_api_v1_operation_answers_as_documented(api_schema, signed_in_headers):
    # Driven by hand rather than by schemathesis' pytest plugin, which does not run under
    # pytest 9 yet: one hypothesis run per operation, every failure collected.
    failures, operations = [], []
    for result in api_schema.include(path_regex="^/api/v1/").get_all_operations():
        operation = result.ok()
        operations.append(operation.label)
        headers = signed_in_headers(operation.path)
        # The token endpoint answers a well-formed poll with 400 until approval (RFC 8628's
        # authorization_pending, expired_token...): a protocol state, not a refusal.
        excluded = [positive_data_acceptance] if operation.path == "/api/v1/device/token" else []

        check = _operation_check(operation, headers, excluded)
        try:
            check()
        except Exception as error:
            failures.append(f"{operation.label}: {error}")
    assert {
        "POST /api/v1/ingest",
        "GET /api/v1/stats",
        "POST /api/v1/device/code",
        "POST /api/v1/device/token",
        "POST /api/v1/devices/enroll",
        "DELETE /api/v1/device",
        "GET /api/v1/usage",
        "GET /api/v1/sessions",
        "GET /api/v1/anomalies",
        "GET /api/v1/organization",
    } <= set(operations)
    assert not failures, "\n\n".join(failures)
