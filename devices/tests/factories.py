from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import Organization
from accounts.tests.factories import OrgOwnedFactory
from clawtrace_site.tokens import generate_secret, hash_secret
from devices.models import Device, DeviceAuthorization, EnrollmentKey
from devices.services import _user_code_generate


class DeviceFactory(OrgOwnedFactory):
    """A device whose secret nobody knows; `device_with_secret` when a test must call the API."""

    class Meta:
        model = Device

    name = factory.Sequence(lambda n: f"laptop-{n}")
    os = "Linux 6.1 x86_64"
    agent_version = "0.1.0"
    secret_digest = factory.LazyFunction(lambda: hash_secret(generate_secret("ctd_")))


def device_with_secret(organization: Organization, **fields) -> tuple[Device, str]:
    secret = generate_secret("ctd_")
    device = DeviceFactory(organization=organization, secret_digest=hash_secret(secret), **fields)
    return device, secret


class EnrollmentKeyFactory(OrgOwnedFactory):
    class Meta:
        model = EnrollmentKey

    name = factory.Sequence(lambda n: f"fleet {n}")
    key_digest = factory.LazyFunction(lambda: hash_secret(generate_secret("cte_")))
    display_prefix = "cte_abcdefgh"


def enrollment_key_with_value(organization: Organization, **fields) -> tuple[EnrollmentKey, str]:
    value = generate_secret("cte_")
    key = EnrollmentKeyFactory(
        organization=organization,
        key_digest=hash_secret(value),
        display_prefix=value[:12],
        **fields,
    )
    return key, value


class DeviceAuthorizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceAuthorization

    device_code_digest = factory.LazyFunction(lambda: hash_secret(generate_secret()))
    user_code = factory.LazyFunction(_user_code_generate)
    name = "build-box"
    os = "Linux"
    agent_version = "0.1.0"
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=15))
