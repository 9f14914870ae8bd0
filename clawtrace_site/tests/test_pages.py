"""The public pages, the shared layout, allauth's pages in our layout, and the error pages."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.template import loader
from django.test import Client
from django.urls import reverse

from billing.plans import PLANS

pytestmark = pytest.mark.django_db


class _AssetCollector(HTMLParser):
    """Every URL the browser would fetch by itself: stylesheets, icons, scripts, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and values.get("href"):
            self.urls.append(values["href"])
        if tag in {"script", "img", "iframe", "source"} and values.get("src"):
            self.urls.append(values["src"])


def _fetched_assets(html: str) -> list[str]:
    collector = _AssetCollector()
    collector.feed(html)
    return collector.urls


def test_landing_page_says_what_clawtrace_is_and_what_the_agent_reads(client: Client) -> None:
    response = client.get(reverse("landing"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Local-first" in html
    assert "~/.claude/projects" in html
    assert "~/.openclaw/agents/*/sessions" in html
    assert "No message content, ever" in html
    assert "What the hosted side adds" in html


def test_landing_page_sends_visitors_to_signup_and_pricing(client: Client) -> None:
    html = client.get(reverse("landing")).content.decode()

    assert f'href="{reverse("account_signup")}"' in html
    assert f'href="{reverse("pricing")}"' in html
    assert f'href="{reverse("account_login")}"' in html


def test_pricing_page_shows_every_plan_with_its_price_and_a_signup_link_back_to_billing(
    client: Client,
) -> None:
    response = client.get(reverse("pricing"))

    assert response.status_code == 200
    html = response.content.decode()
    for plan in PLANS.values():
        assert f'id="plan-{plan.code}"' in html
        assert f"${plan.price_usd}" in html
        assert f"{plan.retention_days} days" in html
        signup = f"{reverse('account_signup')}?plan={plan.code}&amp;next=%2Fbilling%2F%3Fplan%3D"
        assert f'href="{signup}{plan.code}"' in html


def test_pricing_page_states_the_three_tiers_of_the_offer(client: Client) -> None:
    html = client.get(reverse("pricing")).content.decode()
    cards = {
        code: re.search(rf'id="plan-{code}".*?</article>', html, re.S).group(0)
        for code in ("free", "pro", "team")
    }

    assert "$0" in cards["free"] and "1 device" in cards["free"] and "1 project" in cards["free"]
    assert "7 days of history" in cards["free"]
    assert "$79" in cards["pro"] and "one-time" in cards["pro"]
    assert "Unlimited projects" in cards["pro"] and "90 days" in cards["pro"]
    assert "$199" in cards["team"] and "one-time" in cards["team"]
    assert "3 devices" in cards["team"] and "Team dashboard" in cards["team"]


@pytest.mark.parametrize("url_name", ["landing", "pricing"])
def test_public_pages_answer_post_with_405_not_an_error_page(client: Client, url_name: str) -> None:
    response = client.post(reverse(url_name), {"anything": "<script>alert(1)</script>"})

    assert response.status_code == 405


@pytest.mark.parametrize("url_name", ["landing", "pricing", "account_login", "account_signup"])
def test_pages_fetch_no_third_party_assets(client: Client, url_name: str) -> None:
    html = client.get(reverse(url_name)).content.decode()
    assets = _fetched_assets(html)

    assert any(url.endswith("css/app.css") for url in assets)
    offsite = [url for url in assets if re.match(r"^(https?:)?//", url)]
    assert offsite == []


def test_stylesheet_uses_no_web_fonts_or_remote_urls() -> None:
    css_path = finders.find("css/app.css")
    assert css_path is not None
    css = Path(css_path).read_text(encoding="utf-8")

    assert "@import" not in css
    assert "@font-face" not in css
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css)
    assert "prefers-color-scheme: dark" in css


def test_logo_and_favicon_are_served_as_static_files() -> None:
    assert finders.find("img/logo.svg") is not None
    assert finders.find("img/favicon.svg") is not None


def test_visitor_header_offers_pricing_login_and_signup(client: Client) -> None:
    html = client.get(reverse("pricing")).content.decode()
    header = re.search(r'<header class="site-header">.*?</header>', html, re.S).group(0)

    assert "Pricing" in header and "Log in" in header and "Sign up" in header
    assert "org-switcher" not in header
    assert reverse("account_logout") not in header


@pytest.mark.parametrize(
    "url_name",
    [
        "account_login",
        "account_signup",
        "account_reset_password",
        "account_reset_password_done",
        "account_email_verification_sent",
    ],
)
def test_allauth_entrance_pages_render_in_the_site_layout(client: Client, url_name: str) -> None:
    response = client.get(reverse(url_name))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<header class="site-header">' in html
    assert 'class="card auth-card"' in html
    # allauth's bare default layout prints a "Menu:" list; ours must have replaced it.
    assert "Menu:" not in html


def test_signup_with_malformed_input_answers_with_form_errors(client: Client) -> None:
    response = client.post(
        reverse("account_signup"),
        {"email": "not-an-email<script>", "password1": "short", "password2": "different"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="errorlist' in html
    assert "field-error" in html
    assert "<script>" not in html.split("<body", 1)[1].split("</header>", 1)[1]


def test_password_reset_link_with_a_forged_key_says_the_link_is_bad(client: Client) -> None:
    response = client.get(
        reverse("account_reset_password_from_key", kwargs={"uidb36": "zz", "key": "forged-key"})
    )

    assert response.status_code == 200
    assert "Bad Token" in response.content.decode()
    assert '<header class="site-header">' in response.content.decode()


def test_unknown_url_gets_our_404_page(client: Client) -> None:
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "We could not find that page" in html
    assert '<header class="site-header">' in html


def test_form_post_without_csrf_token_gets_our_403_page() -> None:
    response = Client(enforce_csrf_checks=True).post(
        reverse("account_login"), {"login": "a@example.com", "password": "x"}
    )

    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()


def test_500_page_renders_without_a_request_or_the_database(django_assert_num_queries) -> None:
    with django_assert_num_queries(0):
        html = loader.get_template("500.html").render({})

    assert "Something went wrong on our side" in html
    # No link to anything that needs URL reversing or static-file lookup to work.
    assert "/static/" not in html


@pytest.mark.parametrize("template_name", ["403.html", "404.html", "429.html"])
def test_error_pages_render_for_a_visitor(rf, template_name: str) -> None:
    from django.contrib.auth.models import AnonymousUser

    request = rf.get("/")
    request.user = AnonymousUser()
    request.session = {}
    html = loader.get_template(template_name).render({}, request)

    assert template_name[:3] in html
    assert '<header class="site-header">' in html


# --- Signed in ----------------------------------------------------------------------------------


def _verified_user(email: str):
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(email=email, password="Claw-trace-7-tokens!")
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


@pytest.fixture
def signed_in(client: Client):
    from accounts.services import organization_create

    user = _verified_user("ada@example.com")
    organization_create(name="Alpha Labs", owner=user)
    organization_create(name="Beta Works", owner=user)
    stranger = _verified_user("mallory@example.com")
    organization_create(name="Gamma Secret", owner=stranger)
    client.force_login(user)
    return client


def test_signed_in_header_switches_between_the_users_organizations_only(signed_in) -> None:
    html = signed_in.get(reverse("pricing")).content.decode()
    header = re.search(r'<header class="site-header">.*?</header>', html, re.S).group(0)

    assert "Alpha Labs" in header and "Beta Works" in header
    assert "Gamma Secret" not in html
    for slug in re.findall(r'href="/o/([\w-]+)/"', header):
        assert signed_in.get(reverse("accounts:org_home", args=[slug])).status_code == 200
    assert len(re.findall(r'class="menu-item org-switcher-item"', header)) == 2
    assert f'href="{reverse("accounts:org_create")}"' in header
    assert "Log in" not in header and "Sign up" not in header


def test_signed_in_header_links_account_settings_and_logs_out_by_post(signed_in) -> None:
    html = signed_in.get(reverse("landing")).content.decode()
    header = re.search(r'<header class="site-header">.*?</header>', html, re.S).group(0)

    for url_name in ("account_email", "account_change_password", "mfa_index"):
        assert f'href="{reverse(url_name)}"' in header
    logout_form = re.search(
        rf'<form method="post" action="{reverse("account_logout")}">.*?</form>', header, re.S
    )
    assert logout_form is not None
    assert "csrfmiddlewaretoken" in logout_form.group(0)


@pytest.mark.parametrize("url_name", ["account_email", "account_change_password", "mfa_index"])
def test_account_settings_pages_render_in_the_site_layout(signed_in, url_name: str) -> None:
    response = signed_in.get(reverse(url_name))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<nav class="settings-nav"' in html
    assert 'aria-current="page"' in html
    assert "Menu:" not in html


def test_adding_a_malformed_email_address_answers_with_a_form_error(signed_in) -> None:
    response = signed_in.post(reverse("account_email"), {"action_add": "", "email": "not an email"})

    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()


def test_landing_page_offers_the_dashboard_instead_of_signup_when_signed_in(signed_in) -> None:
    html = signed_in.get(reverse("landing")).content.decode()

    assert f'href="{reverse("home")}"' in html
    assert "Sign up free" not in html


# --- Hostile input and the shared CSS contract ---------------------------------------------------


def test_form_post_with_thousands_of_fields_gets_our_400_page(client: Client) -> None:
    flood = {f"field{i}": "x" for i in range(5000)}

    response = client.post(reverse("account_login"), flood)

    assert response.status_code == 400
    assert "That request could not be understood" in response.content.decode()


def test_oversized_form_post_gets_our_400_page(client: Client) -> None:
    response = client.post(
        reverse("account_signup"), {"email": "a@example.com", "password1": "x" * 3_000_000}
    )

    assert response.status_code == 400
    assert "That request could not be understood" in response.content.decode()


CSS_CLASS_CONTRACT = [
    "container",
    "page-header",
    "card",
    "card-grid",
    "btn",
    "btn-primary",
    "btn-secondary",
    "btn-danger",
    "btn-small",
    "table",
    "form-stack",
    "inline-form",
    "badge",
    "badge-owner",
    "badge-admin",
    "badge-member",
    "muted",
    "empty-state",
    "messages",
    "message",
    "message-debug",
    "message-info",
    "message-success",
    "message-warning",
    "message-error",
]


@pytest.mark.parametrize("css_class", CSS_CLASS_CONTRACT)
def test_stylesheet_defines_every_class_the_templates_rely_on(css_class: str) -> None:
    css = Path(finders.find("css/app.css")).read_text(encoding="utf-8")

    assert re.search(rf"\.{re.escape(css_class)}(?![\w-])", css), css_class
