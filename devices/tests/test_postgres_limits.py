"""The device count under concurrency (PostgreSQL; skipped on SQLite, whose writers take
turns anyway): machines linking at the same instant into an organization with one place left
link exactly one of them, whichever way each links."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Organization, PlanCode
from clawtrace_site.tests.concurrency import run_concurrently
from devices.models import AuthorizationStatus, Device, DeviceAuthorization
from devices.services import (
    DeviceLimitReachedError,
    device_authorization_poll,
    device_authorization_start,
    device_enroll,
    device_revoke,
)
from devices.tests.factories import enrollment_key_with_value

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


@pytest.fixture(autouse=True)
def _billing_on(settings):
    settings.BILLING_ENABLED = True


def _outcome(call):
    """The call's device, or the refusal it raised (any other error fails the test)."""

    def run():
        try:
            return call()[0]
        except DeviceLimitReachedError as error:
            return error

    return run


def _linked(org: Organization) -> list[Device]:
    return list(Device.all_orgs.filter(organization=org, revoked_at__isnull=True))


def _approved_code(org: Organization, owner) -> str:
    authorization, device_code = device_authorization_start(name="flow", os="", agent_version="")
    DeviceAuthorization.objects.filter(pk=authorization.pk).update(
        status=AuthorizationStatus.APPROVED, organization=org, approved_by=owner
    )
    return device_code


def test_enrollments_at_the_same_instant_never_pass_a_limit_of_one(org, owner):
    _key, value = enrollment_key_with_value(org)
    for round_ in range(8):
        outcomes = run_concurrently(
            *[
                _outcome(
                    lambda n=n: device_enroll(key=value, name=f"r{n}", os="", agent_version="")
                )
                for n in range(4)
            ]
        )
        linked = [o for o in outcomes if isinstance(o, Device)]
        refused = [o for o in outcomes if isinstance(o, DeviceLimitReachedError)]
        assert (len(linked), len(refused)) == (1, 3), round_
        assert [d.pk for d in _linked(org)] == [linked[0].pk]
        device_revoke(device=linked[0], actor=owner)


def test_an_enrollment_and_a_device_flow_poll_at_once_link_one(org, owner):
    _key, value = enrollment_key_with_value(org)
    for round_ in range(8):
        device_code = _approved_code(org, owner)
        outcomes = run_concurrently(
            _outcome(lambda: device_enroll(key=value, name="key", os="", agent_version="")),
            _outcome(
                lambda device_code=device_code: device_authorization_poll(device_code=device_code)
            ),
        )
        linked = [o for o in outcomes if isinstance(o, Device)]
        assert len(linked) == 1, (round_, outcomes)
        assert len(_linked(org)) == 1
        device_revoke(device=linked[0], actor=owner)


def test_team_organizations_fill_their_three_places_and_no_more(org, owner):
    Organization.objects.filter(pk=org.pk).update(plan=PlanCode.TEAM)
    _key, value = enrollment_key_with_value(org)
    outcomes = run_concurrently(
        *[
            _outcome(lambda n=n: device_enroll(key=value, name=f"t{n}", os="", agent_version=""))
            for n in range(6)
        ]
    )
    assert sum(isinstance(o, Device) for o in outcomes) == 3
    assert len(_linked(org)) == 3
