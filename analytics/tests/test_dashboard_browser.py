"""The team dashboard in real Chromium (Debian's /usr/bin/chromium): a team's month of usage
on the overview, a filter that lives in the URL, drilling down from a table, the page at a
phone's width, and an organization with nothing yet.

The screenshots of the README (docs/screenshots/dashboard-1280.png and dashboard-390.png) are
taken here from the same factory-made month; other pages' land in <repo>/test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.conf import settings

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from analytics.tests.dashboard_data import team_usage_create

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
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
PASSWORD = "Claw-trace-7-tokens!"
TEAM_PASSWORD = "correct horse battery staple"  # UserFactory's, for the teammates it makes
# Mid-month, mid-afternoon: a month-to-date worth forecasting, today half gone.
NOW = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)

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
    # As in accounts/tests/test_browser_journey.py: Playwright's sync API runs an event loop in
    # this thread, and the test makes rows beside it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def clock() -> Iterator[None]:
    # The server and the factories agree on "now" (the clock still ticks, so sessions and
    # timeouts behave); every thread of the process sees it, the live server's included.
    with time_machine.travel(NOW, tick=True):
        yield


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
def team(clock):
    """Acme Robotics with a month of four people's usage; Ada (the owner) signs in."""
    organization = OrganizationFactory(name="Acme Robotics", slug="acme", time_zone="Europe/Paris")
    ada = UserFactory(email="ada@acme.example", password=PASSWORD)
    MembershipFactory(organization=organization, user=ada, role=Role.OWNER)
    usage = team_usage_create(organization, now=NOW, owner=ada)
    return organization, ada, usage


def _sign_in(
    browser, base: str, email: str, *, width: int, height=900, mobile=False, password=PASSWORD
):
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=mobile, color_scheme="light"
    )
    page = context.new_page()
    page.goto(base + "/accounts/login/")
    page.fill("#id_login", email)
    page.fill("#id_password", password)
    page.locator("main form").get_by_role("button", name=re.compile("sign in", re.I)).click()
    page.wait_for_load_state()
    return page


def _tables_scrolling_sideways(page) -> list[str]:
    """The tables of the page (by their card's heading) wider than their box, with the pixels
    hidden, e.g. ["By member: 24px"]."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.usage-card .table-wrap')]
            .filter(wrap => wrap.offsetParent !== null)
            .map(wrap => [wrap.closest('.usage-card').querySelector('h2').textContent.trim(),
                          wrap.scrollWidth - wrap.clientWidth])
            .filter(([, hidden]) => hidden > 1)
            .map(([name, hidden]) => `${name}: ${hidden}px`)"""
    )


def _charts_drawn(page) -> None:
    page.wait_for_selector("canvas[data-chart-ready='true']")
    # Chart.js draws in an animation frame after it is made; wait for one more.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_overview_shows_the_teams_month_with_a_chart_breakdowns_and_budgets(
    live_server, browser, team
):
    organization, ada, _usage = team
    page = _sign_in(browser, live_server.url, ada.email, width=1280)
    page.goto(f"{live_server.url}/o/{organization.slug}/usage/?range=30d")
    _charts_drawn(page)

    main = page.locator("main")
    for heading in (
        "Today",
        "This week",
        "This month",
        "Month-end forecast",
        "Cost over time",
        "By member",
        "By device",
        "By project",
        "By model",
        "By agent",
        "Most expensive sessions",
        "Cost per tool",
        "Cache savings",
        "Anomalies",
        "Budgets this month",
        "Subscriptions against API prices, this month",
    ):
        assert main.get_by_role("heading", name=heading, exact=True).count() == 1, heading
    assert "ada@acme.example" in _card(main, "members").inner_text()
    assert page.locator("#series-chart").get_attribute("aria-label").startswith("Cost by day")
    assert page.locator(".budget-bar").count() == 3
    # The chart's data is also a table, for screen readers and keyboards.
    page.get_by_text("Show as a table").click()
    assert page.locator(".chart-table tbody tr").count() == 30

    assert _tables_scrolling_sideways(page) == []

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.get_by_text("Show as a table").click()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "dashboard-1280.png"), full_page=True)


def test_filters_live_in_the_url_and_a_shared_link_opens_the_same_view(live_server, browser, team):
    organization, ada, _usage = team
    page = _sign_in(browser, live_server.url, ada.email, width=1280)
    page.goto(f"{live_server.url}/o/{organization.slug}/usage/")

    page.select_option("#filter-range", "7d")
    page.select_option("#filter-model", "claude-opus-4-1")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()

    # The address bar holds exactly the chosen filters (empty fields dropped).
    assert parse_qs(urlsplit(page.url).query) == {"range": ["7d"], "model": ["claude-opus-4-1"]}
    models = _card(page, "models")
    assert models.locator("tbody tr").count() == 1
    assert "claude-opus-4-1" in models.locator("tbody").inner_text()

    # A teammate given the link sees the same view.
    shared = _sign_in(
        browser, live_server.url, "grace@acme.example", width=1280, password=TEAM_PASSWORD
    )
    shared.goto(page.url)
    assert shared.locator("#filter-range").input_value() == "7d"
    assert shared.locator("#filter-model").input_value() == "claude-opus-4-1"
    assert _card(shared, "models").locator("tbody tr").count() == 1

    # A custom range made of two dates becomes one `range` in the URL.
    page.fill("#filter-from", "2026-03-02")
    page.fill("#filter-to", "2026-03-08")
    assert page.locator("#filter-range").input_value() == "custom"
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    assert parse_qs(urlsplit(page.url).query)["range"] == ["2026-03-02..2026-03-08"]


def test_drilling_down_from_the_tables_keeps_the_filters(live_server, browser, team):
    organization, ada, _usage = team
    page = _sign_in(browser, live_server.url, ada.email, width=1280)
    page.goto(f"{live_server.url}/o/{organization.slug}/usage/?range=7d")

    # A member, then one of their devices, then that device's most expensive session.
    _card(page, "members").get_by_role("link", name="linus@acme.example").click()
    page.wait_for_load_state()
    assert "/usage/members/" in page.url and "range=7d" in page.url
    assert "linus@acme.example" in page.locator("h2.usage-title").inner_text()
    assert page.locator("#plan-heading").count() == 1

    _card(page, "devices").locator("tbody a").first.click()
    page.wait_for_load_state()
    assert "/usage/devices/" in page.url and "range=7d" in page.url
    assert page.locator("h2.usage-title").inner_text().endswith("linus-desktop")

    _card(page, "sessions").locator("tbody a").first.click()
    page.wait_for_load_state()
    assert "/usage/sessions/" in page.url
    _charts_drawn(page)
    turns = _card(page, "turns")
    assert turns.locator("tbody tr").count() >= 1
    page.screenshot(path=str(_artifacts() / "dashboard-session.png"), full_page=True)

    # Back to the overview, the range still set.
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Usage").click()
    page.wait_for_load_state()
    assert parse_qs(urlsplit(page.url).query) == {"range": ["7d"]}


def test_the_overview_fits_a_phone_without_sideways_scrolling(live_server, browser, team):
    organization, ada, _usage = team
    page = _sign_in(browser, live_server.url, ada.email, width=390, height=844, mobile=True)
    for path in (
        f"/o/{organization.slug}/usage/?range=30d",
        f"/o/{organization.slug}/usage/budgets/",
    ):
        page.goto(live_server.url + path)
        page.wait_for_load_state()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
    page.goto(f"{live_server.url}/o/{organization.slug}/usage/?range=30d")
    _charts_drawn(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Nor does any table inside its card: a column pushed out of sight reads as missing.
    assert _tables_scrolling_sideways(page) == []
    page.screenshot(path=str(SCREENSHOTS / "dashboard-390.png"), full_page=True)


def test_keyboard_reaches_the_filters_and_the_tables_links(live_server, browser, team):
    organization, ada, _usage = team
    page = _sign_in(browser, live_server.url, ada.email, width=1280)
    page.goto(f"{live_server.url}/o/{organization.slug}/usage/")
    focused = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")
        )
    assert "filter-range" in focused and "filter-model" in focused
    # Every form control has a label a screen reader announces.
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('main select, main input:not([type=hidden])')]
            .filter(e => !e.labels || e.labels.length === 0).map(e => e.name)"""
    )
    assert unlabelled == []


def test_an_organization_without_usage_says_how_to_link_a_first_device(live_server, browser, clock):
    organization = OrganizationFactory(name="Fresh Start", slug="fresh")
    owner = UserFactory(email="owner@fresh.example", password=PASSWORD)
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    page = _sign_in(browser, live_server.url, owner.email, width=390, height=844, mobile=True)
    page.goto(f"{live_server.url}/o/{organization.slug}/usage/")

    empty = page.locator(".empty-first")
    assert "No usage yet" in empty.inner_text()
    assert "clawtrace login --server" in empty.inner_text()
    assert empty.get_by_role("link", name="Go to Devices").get_attribute("href") == (
        f"/o/{organization.slug}/devices/"
    )
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=str(_artifacts() / "dashboard-empty-390.png"), full_page=True)


def _card(page, table: str):
    """The section of one of the page's tables (analytics/tables.py names them)."""
    return page.locator(f"section[aria-labelledby='table-{table}']")


def _artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
