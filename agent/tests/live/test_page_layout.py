"""The local page's layout in real Chromium, on a phone and on a laptop, and its "All" range.

Served from the realistic fixture store (long model and project names, history older than 90
days) or from a store whose every turn is older than 90 days. With CLAWTRACE_UPDATE_SCREENSHOTS=1
the layout tests also save docs/screenshots/local-page-390.png and local-page-1280.png.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from clawtrace.server.app import ServerState
from clawtrace.server.runner import LiveStack, ServerThread

from . import storefixture
from .test_page_browser import ARGS, CHROMIUM

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "docs" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium"),
]


def _serve(db: Path, tmp_path: Path):
    from clawtrace import store
    from clawtrace.alerts.engine import AlertEngine, alerts_run
    from clawtrace.alerts.settings import AlertSettings

    copy = tmp_path / "clawtrace.db"
    shutil.copy(db, copy)
    tz = ZoneInfo(storefixture.TZ_NAME)
    conn = store.connect(copy)
    alerts_run(conn, AlertEngine(AlertSettings(desktop=False), tz), storefixture.NOW, None)
    conn.close()
    state = ServerState(db_path=copy, tz=tz, now=lambda: storefixture.NOW)
    return ServerThread(LiveStack(state=state, scanner=None, dispatcher=None))


@pytest.fixture
def realistic_server(realistic_db, tmp_path):
    with _serve(realistic_db, tmp_path) as server:
        yield server


@pytest.fixture
def old_only_server(old_only_db, tmp_path):
    with _serve(old_only_db, tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    # Generous waits (a loaded CI box is slow); none of them is a timing assertion.
    sync_api.expect.set_options(timeout=20_000)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def _open(browser, server, width: int, height: int):
    context = browser.new_context(
        viewport={"width": width, "height": height}, timezone_id=storefixture.TZ_NAME
    )
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-loaded='true']", timeout=30_000)
    return page


def _choose_range(page, name: str, data_range: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name=name, exact=True).click()
    expect(page.locator("#cost-chart")).to_have_attribute("data-range", data_range)
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")


def _screenshot(page, name: str) -> None:
    if os.environ.get("CLAWTRACE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


OVERFLOW_JS = """() => ({
  scroll: document.documentElement.scrollWidth,
  body: document.body.scrollWidth,
  viewport: window.innerWidth,
  // Anything drawn past the right edge, named for the failure message.
  wide: [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className),
})"""


def test_on_a_390_px_phone_the_page_needs_no_horizontal_scroll(realistic_server, browser):
    from playwright.sync_api import expect

    page = _open(browser, realistic_server, 390, 844)
    for name, data_range in (("7 days", "7d"), ("All", "all"), ("90 days", "90d")):
        _choose_range(page, name, data_range)
        expect(page.locator("#sessions tbody tr").first).to_be_visible()
        fit = page.evaluate(OVERFLOW_JS)
        assert fit["scroll"] <= fit["viewport"], (name, fit)
        assert fit["body"] <= fit["viewport"], (name, fit)
        assert fit["wide"] == [], (name, fit)
    # The sessions table is a stack of cards there: each cell says what it holds.
    first = page.locator("#sessions tbody tr").first
    expect(first.locator("td").nth(1)).to_have_attribute("data-label", "Project")
    assert page.locator("#sessions thead").is_hidden()
    _choose_range(page, "7 days", "7d")
    _screenshot(page, "local-page-390.png")
    assert page.errors == []


BOXES_JS = """(id) => [...document.querySelectorAll('#' + id + ' tr')].map(tr => {
  const card = tr.closest('.panel').getBoundingClientRect();
  const cells = [tr, ...tr.querySelectorAll('td')].map(e => e.getBoundingClientRect());
  return {
    text: tr.innerText,
    inside: cells.every(b => b.left >= card.left && b.right <= card.right
                             && b.top >= card.top && b.bottom <= card.bottom),
  };
})"""


def test_at_1280_px_every_model_and_project_row_stays_inside_its_card(realistic_server, browser):
    from playwright.sync_api import expect

    page = _open(browser, realistic_server, 1280, 800)
    for name, data_range in (("7 days", "7d"), ("All", "all")):
        _choose_range(page, name, data_range)
        expect(page.locator("#by-model")).to_contain_text("arn:aws:bedrock")
        expect(page.locator("#by-project")).to_contain_text("billing-reconciliation-worker")
        for table in ("by-model", "by-project", "by-agent", "by-tool"):
            rows = page.evaluate(BOXES_JS, table)
            assert rows, table
            assert [r for r in rows if not r["inside"]] == [], (name, table)

    # A long name is cut with an ellipsis, and its title holds it whole.
    model_cell = page.locator("#by-model td.name", has_text="arn:aws:bedrock")
    model_label = model_cell.locator(".label")
    expect(model_cell).to_have_attribute("title", storefixture.LONG_MODEL[0])
    assert model_label.evaluate("e => e.scrollWidth > e.clientWidth")
    assert model_label.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    project_cell = page.locator("#by-project td.name", has_text="billing-reconciliation")
    expect(project_cell).to_have_attribute("title", storefixture.LONG_PROJECT)
    # The sessions table stays inside its card as well.
    sessions = page.evaluate(BOXES_JS, "sessions")
    assert sessions and [r for r in sessions if not r["inside"]] == []
    _choose_range(page, "7 days", "7d")
    _screenshot(page, "local-page-1280.png")
    assert page.errors == []


def _turns_in(text: str) -> int:
    """The number before "turns" in a line such as "$0.95 over 7 days · 9 turns"."""
    found = re.search(r"([\d,]+) turns", text)
    assert found, text
    return int(found.group(1).replace(",", ""))


def test_the_all_button_shows_turns_older_than_90_days_and_the_header_agrees(
    old_only_server, browser
):
    from playwright.sync_api import expect

    page = _open(browser, old_only_server, 1280, 800)
    header = page.locator("#status-text")
    # Seven days hold none of the nine turns, and the header says so rather than "9 turns".
    expect(header).to_contain_text("0 of 9 turns in the last 7 days")
    expect(page.locator("#by-model")).to_contain_text("nothing in this range")

    _choose_range(page, "All", "all")
    expect(page.get_by_role("button", name="All", exact=True)).to_have_class(re.compile("active"))
    expect(header).to_contain_text("9 turns in all")
    expect(page.locator("#by-model")).to_contain_text("claude-sonnet-4-5")
    expect(page.locator("#by-project")).to_contain_text("legacy-shop")
    expect(page.locator("#by-agent")).to_contain_text("claude")
    session = page.locator("#sessions tbody tr").first
    expect(session).to_contain_text("sess-old-onl")
    api = page.request.get(old_only_server.url + "/api/costs?range=all&by=auto").json()
    assert api["totals"]["turns"] == 9
    assert _turns_in(header.inner_text()) == 9
    assert _turns_in(page.locator("#costs-total").inner_text()) == 9
    assert session.locator("td").nth(5).inner_text() == "9"
    chart_turns = page.evaluate("() => Chart.getChart('cost-chart').data.datasets[0].data.length")
    assert chart_turns == len(api["points"])

    # Back to 90 days: the header follows the range again.
    _choose_range(page, "90 days", "90d")
    expect(header).to_contain_text("0 of 9 turns in the last 90 days")
    assert page.errors == []
