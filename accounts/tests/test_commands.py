import sys
from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management import call_command

from accounts.models import Organization, User

pytestmark = pytest.mark.django_db


def _run() -> str:
    out = StringIO()
    call_command("ensure_local_admin", stdout=out)
    return out.getvalue()


def test_ensure_local_admin_creates_a_verified_superuser_with_a_random_password():
    output = _run()

    admin = User.objects.get(email="admin@localhost")
    password = output.split("admin@localhost / ", 1)[1].split()[0]
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(password)
    assert len(password) >= 16
    assert EmailAddress.objects.get(user=admin).verified
    assert Organization.objects.filter(memberships__user=admin, is_personal=True).exists()


def test_ensure_local_admin_never_reuses_a_password():
    first = _run().split("admin@localhost / ", 1)[1].split()[0]
    User.objects.all().delete()
    second = _run().split("admin@localhost / ", 1)[1].split()[0]
    assert first != second


def test_ensure_local_admin_leaves_an_existing_admin_alone():
    _run()
    before = User.objects.get(email="admin@localhost").password

    output = _run()

    assert "already exists" in output
    assert "changepassword admin@localhost" in output
    assert User.objects.get(email="admin@localhost").password == before
    assert User.objects.filter(is_superuser=True).count() == 1


def test_the_password_hint_names_the_venvs_python_not_a_bare_one(monkeypatch):
    _run()
    monkeypatch.setattr(sys, "executable", str(settings.BASE_DIR / ".venv" / "bin" / "python"))
    output = _run()
    assert "with: .venv/bin/python manage.py changepassword admin@localhost" in output
    monkeypatch.setattr(sys, "executable", "/opt/py 3/bin/python3")
    assert "with: '/opt/py 3/bin/python3' manage.py changepassword admin@localhost" in _run()
