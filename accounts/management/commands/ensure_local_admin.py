"""`make run` calls this: a fresh clone gets an operator account without a known password."""

import os
import secrets
import shlex
import sys
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.services import user_signup_finalize

LOCAL_ADMIN_EMAIL = "admin@localhost"


def _python_shown() -> str:
    """The interpreter running us, as typed from the project root: `.venv/bin/python` under
    `make run`. A bare `python` is often not the venv's and lacks Django."""
    executable = Path(sys.executable)
    if executable.is_relative_to(settings.BASE_DIR):
        return shlex.quote(os.path.relpath(executable, settings.BASE_DIR))
    return shlex.quote(str(executable))


class Command(BaseCommand):
    help = "Create a local superuser (admin@localhost) with a random password if none exists."

    def handle(self, *args, **options) -> None:
        user_model = get_user_model()
        existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            self.stdout.write(
                f"An admin already exists ({existing.email}). Reset its password with: "
                f"{_python_shown()} manage.py changepassword {shlex.quote(existing.email)}"
            )
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = user_model.objects.create_superuser(email=LOCAL_ADMIN_EMAIL, password=password)
            EmailAddress.objects.create(
                user=user, email=LOCAL_ADMIN_EMAIL, verified=True, primary=True
            )
            user_signup_finalize(user=user)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the local admin: {LOCAL_ADMIN_EMAIL} / {password}\n"
                "This password is shown once; change it at /accounts/password/change/."
            )
        )
