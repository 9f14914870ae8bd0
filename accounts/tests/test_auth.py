"""Accounts through allauth: email login, verification, password reset, logout and TOTP."""

from __future__ import annotations

import time

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def _totp_now(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def _login(client: Client, email: str, password: str = PASSWORD):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def _reauthenticate(client: Client) -> None:
    # allauth asks for the password again before security changes such as turning on MFA.
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302


def test_login_by_email_lands_on_the_app(org, owner):
    client = Client()
    response = _login(client, "OWNER@alpha.example")
    assert response.status_code == 302
    assert response.url == reverse("home")


def test_wrong_password_is_a_form_error_not_a_500(owner):
    response = _login(Client(), owner.email, "wrong")
    assert response.status_code == 200
    assert response.context["form"].errors


def test_unverified_user_cannot_log_in_until_confirming(db, mailoutbox):
    UserFactory(email="late@example.com", verified=False)
    response = _login(Client(), "late@example.com")
    assert response.url == reverse("account_email_verification_sent")
    assert mailoutbox and mailoutbox[-1].to == ["late@example.com"]


def test_password_reset_sends_a_link(owner, mailoutbox):
    response = Client().post(reverse("account_reset_password"), {"email": owner.email})
    assert response.status_code == 302
    assert "/accounts/password/reset/key/" in mailoutbox[-1].body


def test_logout_is_a_post(owner_client):
    assert owner_client.post(reverse("account_logout")).status_code == 302
    assert owner_client.get(reverse("home")).status_code == 302


def test_every_user_can_turn_on_totp_and_is_then_asked_for_a_code(org, owner):
    client = Client()
    _login(client, owner.email)
    assert client.get(reverse("mfa_index")).status_code == 200
    assert client.get(reverse("mfa_activate_totp")).url.startswith(
        reverse("account_reauthenticate")
    )
    _reauthenticate(client)
    assert client.get(reverse("mfa_activate_totp")).status_code == 200
    secret = client.session[SECRET_SESSION_KEY]

    response = client.post(reverse("mfa_activate_totp"), {"code": _totp_now(secret)})

    assert response.status_code == 302
    assert Authenticator.objects.filter(user=owner, type=Authenticator.Type.TOTP).exists()

    client.post(reverse("account_logout"))
    with time_machine.travel(time.time() + 90, tick=False):
        response = _login(client, owner.email)
        assert response.url == reverse("mfa_authenticate")
        assert client.get(reverse("home")).status_code == 302  # not signed in yet
        response = client.post(reverse("mfa_authenticate"), {"code": _totp_now(secret)})
    assert response.status_code == 302
    assert client.get(reverse("home")).url == reverse("accounts:org_home", args=[org.slug])


def test_a_wrong_totp_code_is_a_form_error(org, owner):
    client = Client()
    _login(client, owner.email)
    _reauthenticate(client)
    client.get(reverse("mfa_activate_totp"))
    response = client.post(reverse("mfa_activate_totp"), {"code": "not-a-code"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Authenticator.objects.filter(user=owner).exists()
