"""The whole visitor-to-teammate journey in real Chromium (Debian's /usr/bin/chromium).

A visitor signs up, confirms their email from the captured message, logs in, creates a second
organization and invites a teammate; the teammate accepts through the link in their email, signs
up with the invited address and sees that organization and nothing of the inviter's own.
Screenshots land in <repo>/test-artifacts/ so a reviewer can look at the pages.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "Claw-trace-7-tokens!"
FOUNDER = "founder@example.com"
TEAMMATE = "teammate@example.com"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
def _allow_orm_calls_beside_playwrights_event_loop(monkeypatch) -> None:
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told this is deliberate. Set per test and undone after
    # it, so the variable never leaks into other tests (`check --deploy` rejects it).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _link_in_mail_to(address: str, pattern: str) -> str:
    """The newest link matching `pattern` in mail sent to `address` (locmem backend)."""
    for message in reversed(mail.outbox):
        if address in message.to:
            found = re.search(pattern, message.body)
            if found:
                return found.group(0)
    sent = [(m.to, m.subject) for m in mail.outbox]
    raise AssertionError(f"no mail to {address} with a link like {pattern!r}; sent: {sent}")


def _confirmation_link(address: str) -> str:
    return _link_in_mail_to(address, r"https?://\S+/accounts/confirm-email/\S+")


def _signup(page, *, password: str, email: str | None = None) -> None:
    if email is not None:
        page.fill("#id_email", email)
    page.fill("#id_password1", password)
    page.fill("#id_password2", password)
    page.locator("main form").get_by_role("button", name=re.compile("sign up", re.I)).click()
    page.wait_for_load_state()


def _confirm_email(page, address: str) -> None:
    page.goto(_confirmation_link(address))
    page.locator("main form").get_by_role("button", name=re.compile("confirm", re.I)).click()
    page.wait_for_load_state()


def _switcher_entries(page) -> list[str]:
    switcher = page.locator(".org-switcher")
    switcher.locator("summary").click()
    names = [
        name.strip()
        for name in switcher.locator(".org-switcher-item > span:first-child").all_inner_texts()
    ]
    switcher.locator("summary").click()
    return names


def test_visitor_signs_up_creates_an_org_and_invites_a_teammate_who_sees_only_that_org(
    live_server, browser, artifacts, mailoutbox
) -> None:
    base = live_server.url
    founder = browser.new_context(viewport={"width": 1280, "height": 900})
    page = founder.new_page()

    # A visitor lands on the public page and signs up from the header.
    page.goto(base + "/")
    assert "tokens" in page.locator("h1").inner_text()
    page.screenshot(path=str(artifacts / "landing.png"), full_page=True)
    page.locator(".site-header").get_by_role("link", name="Sign up").click()
    page.wait_for_load_state()
    assert page.url.startswith(base + "/accounts/signup/")
    _signup(page, email=FOUNDER, password=PASSWORD)
    assert "verify your email" in page.locator("main").inner_text().lower()
    page.screenshot(path=str(artifacts / "verification-sent.png"))

    # The link from the captured email confirms the address.
    _confirm_email(page, FOUNDER)

    # Confirming signs the new user in (same browser session); log out from the account menu
    # and log back in with the password, as a returning user would.
    assert page.locator(".account-menu summary").inner_text() == FOUNDER
    page.locator(".account-menu summary").click()
    page.locator(".account-menu").get_by_role("button", name="Log out").click()
    page.wait_for_load_state()
    assert page.locator(".account-menu").count() == 0
    page.goto(base + "/accounts/login/")
    page.fill("#id_login", FOUNDER)
    page.fill("#id_password", PASSWORD)
    page.locator("main form").get_by_role("button", name=re.compile("sign in", re.I)).click()
    page.wait_for_load_state()

    # Signed in: the personal organization's home page.
    personal_home = page.url
    assert re.search(r"/o/[\w-]+/$", personal_home), personal_home
    personal_names = _switcher_entries(page)
    assert len(personal_names) == 1
    page.screenshot(path=str(artifacts / "home.png"), full_page=True)

    # A second organization, created from the organization switcher.
    page.locator(".org-switcher summary").click()
    page.locator(".org-switcher").get_by_role("link", name=re.compile("New organization")).click()
    page.wait_for_load_state()
    page.fill("#id_name", "Acme Robotics")
    page.locator("main form").get_by_role("button").click()
    page.wait_for_load_state()
    assert "Acme Robotics" in page.locator("h1").inner_text()
    acme_home = page.url
    assert re.search(r"/o/[\w-]+/$", acme_home) and acme_home != personal_home
    assert sorted(_switcher_entries(page)) == sorted([*personal_names, "Acme Robotics"])
    page.locator(".org-switcher summary").click()
    page.screenshot(path=str(artifacts / "org-switcher.png"))
    page.locator("main h1").click()  # a click elsewhere closes the menu (static/js/menus.js)
    assert page.locator(".org-switcher").get_attribute("open") is None

    # Invite the teammate as a member.
    page.goto(acme_home + "invitations/new/")
    page.fill("#id_email", TEAMMATE)
    page.select_option("#id_role", "member")
    page.locator("main form").get_by_role("button").click()
    page.wait_for_load_state()
    page.screenshot(path=str(artifacts / "invited.png"), full_page=True)
    invitation_link = _link_in_mail_to(TEAMMATE, r"https?://\S+/invitations/\S+/")

    # The teammate, in a browser of their own, opens the link, signs up, confirms and accepts.
    teammate = browser.new_context(viewport={"width": 1280, "height": 900})
    page2 = teammate.new_page()
    page2.goto(invitation_link)
    page2.wait_for_load_state()
    assert page2.url.startswith(base + "/accounts/signup/")
    assert page2.input_value("#id_email") == TEAMMATE
    _signup(page2, password=PASSWORD)
    assert "verify your email" in page2.locator("main").inner_text().lower()
    _confirm_email(page2, TEAMMATE)
    page2.goto(invitation_link)
    page2.wait_for_load_state()
    assert "Acme Robotics" in page2.locator("main").inner_text()
    page2.screenshot(path=str(artifacts / "invitation.png"))
    page2.locator("main form").get_by_role("button", name=re.compile("accept", re.I)).click()
    page2.wait_for_load_state()

    # The teammate sees Acme Robotics (beside their own personal workspace) and nothing of the
    # founder's personal organization.
    assert page2.url == acme_home
    assert "Acme Robotics" in page2.locator("h1").inner_text()
    page2.screenshot(path=str(artifacts / "teammate-home.png"), full_page=True)
    response = page2.goto(personal_home)
    assert response.status == 404
    page2.goto(acme_home)
    teammate_orgs = _switcher_entries(page2)
    assert "Acme Robotics" in teammate_orgs
    assert not set(teammate_orgs) & set(personal_names)
    assert len(teammate_orgs) == 2  # Acme Robotics and the teammate's own workspace

    teammate.close()
    founder.close()


@pytest.mark.parametrize(
    ("path", "shot"),
    [("/", "landing-mobile.png"), ("/pricing/", "pricing-mobile.png"), ("/accounts/signup/", None)],
)
def test_public_pages_fit_a_phone_screen_without_sideways_scrolling(
    live_server, browser, artifacts, path: str, shot: str | None
) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(live_server.url + path)

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert page.locator(".site-header").get_by_role("link", name="Sign up").is_visible()
    if shot:
        page.screenshot(path=str(artifacts / shot))
    phone.close()
