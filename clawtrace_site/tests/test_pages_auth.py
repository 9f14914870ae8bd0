"""Account flows through our own templates: two-factor, password reset, email confirmation.

These drive allauth's real views with the test client, so they prove the element and layout
overrides keep every form working (fields, hidden inputs, buttons), not just that pages render.
"""

import datetime as dt
import re

import pytest
import time_machine
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from allauth.mfa.totp.internal.auth import yield_hotp_counters_from_time as totp_counters
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.services import user_signup_finalize

pytestmark = pytest.mark.django_db

EMAIL = "grace@example.com"
PASSWORD = "Claw-trace-7-tokens!"


@pytest.fixture
def user():
    account = get_user_model().objects.create_user(email=EMAIL, password=PASSWORD)
    EmailAddress.objects.create(user=account, email=EMAIL, verified=True, primary=True)
    user_signup_finalize(user=account)
    return account


def _log_in(client: Client, password: str = PASSWORD):
    return client.post(reverse("account_login"), {"login": EMAIL, "password": password})


def _link_in_last_mail(pattern: str) -> str:
    found = re.search(pattern, mail.outbox[-1].body)
    assert found, mail.outbox[-1].body
    return found.group(0)


@time_machine.travel(dt.datetime(2026, 3, 2, 9, 0, 10, tzinfo=dt.UTC), tick=False)
def test_user_turns_on_totp_and_then_needs_a_second_factor_to_log_in(client: Client, user) -> None:
    assert _log_in(client).status_code == 302
    # Turning on 2FA asks for the password again first (allauth's reauthentication).
    gate = client.get(reverse("mfa_activate_totp"))
    assert gate.status_code == 302
    assert gate["Location"].startswith(reverse("account_reauthenticate"))
    assert 'class="card auth-card"' in client.get(gate["Location"]).content.decode()
    client.post(gate["Location"], {"password": PASSWORD})

    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    assert 'class="qr"' in page.content.decode()
    assert '<nav class="settings-nav"' in page.content.decode()
    secret = page.context["form"].secret

    refused = client.post(reverse("mfa_activate_totp"), {"code": "<b>not-a-code</b>"})
    assert refused.status_code == 200
    assert 'class="errorlist' in refused.content.decode()
    assert not Authenticator.objects.filter(user=user).exists()

    # The clock is frozen (time_machine below), so this is the code the app expects right now.
    code = format_hotp_value(hotp_value(secret, next(iter(totp_counters()))))
    activated = client.post(reverse("mfa_activate_totp"), {"code": code})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()

    client.post(reverse("account_logout"))
    challenge = _log_in(client)
    assert challenge.status_code == 302
    assert challenge["Location"] == reverse("mfa_authenticate")
    form_page = client.get(reverse("mfa_authenticate"))
    assert 'class="card auth-card"' in form_page.content.decode()

    recovery = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    unused_code = recovery.wrap().get_unused_codes()[0]
    wrong = client.post(reverse("mfa_authenticate"), {"code": "123"})
    assert wrong.status_code == 200
    assert 'class="errorlist' in wrong.content.decode()
    signed_in = client.post(reverse("mfa_authenticate"), {"code": unused_code})
    assert signed_in.status_code == 302
    assert client.get(reverse("home"), follow=True).status_code == 200


def test_password_reset_by_emailed_link_through_our_pages(client: Client, user) -> None:
    requested = client.post(reverse("account_reset_password"), {"email": EMAIL})
    assert requested.status_code == 302
    link = _link_in_last_mail(r"https?://\S+/accounts/password/reset/key/\S+/")

    set_password_url = client.get(link)["Location"]
    form_page = client.get(set_password_url)
    assert form_page.status_code == 200
    assert 'class="card auth-card"' in form_page.content.decode()

    mismatch = client.post(set_password_url, {"password1": "New-pass-81!x", "password2": "nope"})
    assert mismatch.status_code == 200
    assert 'class="errorlist' in mismatch.content.decode()

    done = client.post(
        set_password_url, {"password1": "New-pass-81!x", "password2": "New-pass-81!x"}
    )
    assert done.status_code == 302
    assert _log_in(Client(), password="New-pass-81!x").status_code == 302


def test_password_reset_for_an_unknown_address_looks_the_same_to_the_visitor(
    client: Client,
) -> None:
    response = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")


def test_password_reset_with_a_malformed_address_answers_with_a_form_error(
    client: Client,
) -> None:
    response = client.post(reverse("account_reset_password"), {"email": "x" * 400})

    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()


def test_forged_email_confirmation_key_gets_a_clear_page_not_an_error(client: Client) -> None:
    response = client.get(reverse("account_confirm_email", args=["forged:key-0"]))

    assert response.status_code in {200, 404}
    html = response.content.decode()
    assert '<header class="site-header">' in html
    assert "expired or is invalid" in html


def test_account_emails_are_signed_by_clawtrace_not_by_the_host_name(client: Client) -> None:
    client.post(
        reverse("account_signup"),
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    body = mail.outbox[-1].body
    assert body.startswith("Hello from ClawTrace!")
    assert "Thank you for using ClawTrace." in body
    assert "/accounts/confirm-email/" in body


def _allauth_pages_without_arguments() -> list[str]:
    """Every allauth URL that takes no arguments, found by walking the URLconf, so a page
    allauth adds in an upgrade is covered without editing this list."""
    from django.urls import URLResolver, get_resolver

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)
            elif pattern.lookup_str.startswith("allauth.") and not pattern.pattern.regex.groups:
                yield pattern.name

    return sorted(set(walk(get_resolver().url_patterns)))


def _assert_rendered_in_our_layout(response, url_name: str) -> None:
    assert response.status_code < 500, url_name
    if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
        html = response.content.decode()
        assert '<header class="site-header">' in html, url_name
        assert "Menu:" not in html, url_name


@pytest.mark.parametrize("url_name", _allauth_pages_without_arguments())
def test_every_allauth_page_a_visitor_can_open_uses_our_layout(
    client: Client, url_name: str
) -> None:
    _assert_rendered_in_our_layout(client.get(reverse(url_name)), url_name)


def test_every_allauth_page_a_user_with_two_factor_can_open_uses_our_layout(
    client: Client, user
) -> None:
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    _log_in(client)
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    TOTP.activate(user, generate_totp_secret())
    RecoveryCodes.activate(user)

    names = _allauth_pages_without_arguments()
    assert {"mfa_index", "mfa_view_recovery_codes", "mfa_deactivate_totp"} <= set(names)
    rendered = []
    for url_name in names:
        response = client.get(reverse(url_name))
        _assert_rendered_in_our_layout(response, url_name)
        if response.status_code == 200:
            rendered.append(url_name)
    # The walk must really render the settings pages, not only follow redirects.
    assert {"account_email", "account_change_password", "mfa_index"} <= set(rendered)
    assert {"mfa_view_recovery_codes", "mfa_deactivate_totp"} <= set(rendered)
    codes_page = client.get(reverse("mfa_view_recovery_codes")).content.decode()
    assert 'class="field' in codes_page and "<textarea" in codes_page


def test_signup_flood_from_one_address_gets_our_429_page(client: Client) -> None:
    answers = [
        client.post(reverse("account_signup"), {"email": f"bot{i}@example.com"}).status_code
        for i in range(25)
    ]

    assert answers[0] == 200  # a form error: passwords are missing
    assert answers[-1] == 429
    page = client.post(reverse("account_signup"), {"email": "bot@example.com"})
    assert page.status_code == 429
    assert "Too many attempts" in page.content.decode()
    assert '<header class="site-header">' in page.content.decode()
