"""`make run` calls this after migrating: headless set-up of a self-hosted server from the
environment (as Langfuse's LANGFUSE_INIT_* variables do).

With CLAWTRACE_INIT_USER_EMAIL, CLAWTRACE_INIT_USER_PASSWORD, CLAWTRACE_INIT_ORG_NAME and
CLAWTRACE_INIT_ORG_SLUG set, it makes sure there is a verified user, an organization with that
slug owned by them, and, with CLAWTRACE_INIT_ENROLL_KEY, an enrollment key of exactly that
value, so that machines can `clawtrace login --enroll-key` at once; with
CLAWTRACE_INIT_API_KEY, an organization API key of exactly that value, so that scripts can read
`/api/v1/usage` at once. Idempotent: what exists is
left as it is (a changed password in the environment does not overwrite the user's own).
With none of the variables set it does nothing.
"""

from __future__ import annotations

import os

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email, validate_slug
from django.db import transaction

from accounts.models import Membership, Organization, Role
from accounts.tenancy import organization_scope
from analytics.models import OrganizationApiKey
from analytics.services import API_KEY_PREFIX, api_key_create, api_key_value_check
from clawtrace_site.exceptions import ApplicationError
from clawtrace_site.tokens import hash_secret
from devices.models import EnrollmentKey
from devices.selectors import ENROLL_KEY_PREFIX
from devices.services import enrollment_key_create

USER_EMAIL = "CLAWTRACE_INIT_USER_EMAIL"
USER_PASSWORD = "CLAWTRACE_INIT_USER_PASSWORD"  # noqa: S105  (the variable's name)
ORG_NAME = "CLAWTRACE_INIT_ORG_NAME"
ORG_SLUG = "CLAWTRACE_INIT_ORG_SLUG"
ENROLL_KEY = "CLAWTRACE_INIT_ENROLL_KEY"
API_KEY = "CLAWTRACE_INIT_API_KEY"
REQUIRED = (USER_EMAIL, USER_PASSWORD, ORG_NAME, ORG_SLUG)
OPTIONAL = (ENROLL_KEY, API_KEY)
ENROLL_KEY_NAME = "init (CLAWTRACE_INIT_ENROLL_KEY)"
API_KEY_NAME = "init (CLAWTRACE_INIT_API_KEY)"


class Command(BaseCommand):
    help = (
        "Create a verified user, their organization and an enrollment key from the "
        "CLAWTRACE_INIT_* variables, once (see .env.example)."
    )

    def handle(self, *args, **options) -> None:
        values = {name: os.environ.get(name, "").strip() for name in (*REQUIRED, *OPTIONAL)}
        if not any(values.values()):
            return
        missing = [name for name in REQUIRED if not values[name]]
        if missing:
            raise CommandError(
                f"init_from_env: {', '.join(missing)} not set; set all of {', '.join(REQUIRED)} "
                f"(and optionally {' and '.join(OPTIONAL)}), or none."
            )
        email = values[USER_EMAIL].lower()
        key = values[ENROLL_KEY]
        api_key = values[API_KEY]
        self._check(email=email, slug=values[ORG_SLUG], key=key, api_key=api_key)
        with transaction.atomic():
            user = self._user(email=email, password=values[USER_PASSWORD])
            organization = self._organization(
                user=user, name=values[ORG_NAME], slug=values[ORG_SLUG]
            )
            if key:
                self._enroll_key(user=user, organization=organization, key=key)
            if api_key:
                self._api_key(user=user, organization=organization, value=api_key)

    def _check(self, *, email: str, slug: str, key: str, api_key: str) -> None:
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"init_from_env: {USER_EMAIL} is not an email address.") from None
        try:
            validate_slug(slug)
        except ValidationError:
            raise CommandError(
                f"init_from_env: {ORG_SLUG} may hold only letters, digits, - and _."
            ) from None
        if key and not key.startswith(ENROLL_KEY_PREFIX):
            raise CommandError(
                f"init_from_env: {ENROLL_KEY} must start with {ENROLL_KEY_PREFIX} (enrollment "
                f"keys do, so that secret scanners recognise them); e.g. {ENROLL_KEY_PREFIX} "
                "followed by the output of `openssl rand -hex 24`."
            )
        if api_key:
            try:
                api_key_value_check(api_key)
            except ApplicationError as error:
                raise CommandError(
                    f"init_from_env: {API_KEY}: {error.message} E.g. {API_KEY_PREFIX} followed "
                    "by the output of `openssl rand -hex 24`."
                ) from None

    def _user(self, *, email: str, password: str):
        user_model = get_user_model()
        user = user_model.objects.filter(email=email).first()
        if user is None:
            try:
                validate_password(password, user_model(email=email))
            except ValidationError as error:
                raise CommandError(
                    f"init_from_env: {USER_PASSWORD} is too weak: {' '.join(error.messages)}"
                ) from None
            user = user_model.objects.create_user(email=email, password=password)
            self.stdout.write(f"init_from_env: created the user {email}.")
        address = EmailAddress.objects.filter(user=user, email__iexact=email).first()
        if address is None:
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        elif not (address.verified and address.primary):
            address.verified = address.primary = True
            address.save(update_fields=["verified", "primary"])
        return user

    def _organization(self, *, user, name: str, slug: str) -> Organization:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            organization = Organization(name=name[:100], slug=slug)
            organization.full_clean()
            organization.save()
            self.stdout.write(f"init_from_env: created the organization {slug}.")
        with organization_scope(organization):
            membership = Membership.objects.filter(user=user).first()
            if membership is None:
                Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
            elif membership.role != Role.OWNER:
                membership.role = Role.OWNER
                membership.save(update_fields=["role"])
        return organization

    def _enroll_key(self, *, user, organization: Organization, key: str) -> None:
        existing = EnrollmentKey.all_orgs.filter(key_digest=hash_secret(key)).first()
        if existing is not None:
            if existing.organization_id != organization.pk:
                raise CommandError(
                    f"init_from_env: {ENROLL_KEY} is already the key of another organization."
                )
            if existing.revoked_at is not None:
                self.stderr.write(
                    f"init_from_env: {ENROLL_KEY} was revoked on the Devices page; left revoked "
                    "(set a new value to enroll machines)."
                )
            return
        try:
            enrollment_key_create(
                organization=organization, actor=user, name=ENROLL_KEY_NAME, value=key
            )
        except ApplicationError as error:
            raise CommandError(f"init_from_env: {ENROLL_KEY}: {error.message}") from None
        self.stdout.write(
            f"init_from_env: created the enrollment key {key[:12]}… for {organization.slug}."
        )

    def _api_key(self, *, user, organization: Organization, value: str) -> None:
        # The headless set-up is the one place that sets up every app at once: devices'
        # command reaches into analytics' services here (nothing of analytics imports devices'
        # management commands, so there is no cycle).
        existing = OrganizationApiKey.all_orgs.filter(key_digest=hash_secret(value)).first()
        if existing is not None:
            if existing.organization_id != organization.pk:
                raise CommandError(
                    f"init_from_env: {API_KEY} is already the key of another organization."
                )
            if existing.revoked_at is not None:
                self.stderr.write(
                    f"init_from_env: {API_KEY} was revoked on the API keys page; left revoked "
                    "(set a new value to read the API)."
                )
            return
        try:
            api_key_create(organization=organization, actor=user, name=API_KEY_NAME, value=value)
        except ApplicationError as error:
            raise CommandError(f"init_from_env: {API_KEY}: {error.message}") from None
        self.stdout.write(
            f"init_from_env: created the organization API key {value[:12]}… for "
            f"{organization.slug}."
        )
