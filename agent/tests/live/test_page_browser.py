"""The local page in real Chromium: numbers, the chart, range buttons; saves a screenshot to
<repo>/test-artifacts/local-dashboard.png."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from clawtrace.server.app import ServerState
from clawtrace.server.runner import LiveStack, ServerThread

from . import storefixture

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium"),
]


@pytest.fixture
def page_server(fixture_db, tmp_path):
    from clawtrace import store
    from clawtrace.alerts.engine import AlertEngine, alerts_run
    from clawtrace.alerts.settings import AlertSettings

    db = tmp_path / "clawtrace.db"
    shutil.copy(fixture_db, db)
    conn = store.connect(db)
    tz = ZoneInfo(storefixture.TZ_NAME)
    alerts_run(conn, AlertEngine(AlertSettings(desktop=False), tz), storefixture.NOW, None)
    conn.close()
    state = ServerState(db_path=db, tz=tz, now=lambda: storefixture.NOW)
    with ServerThread(LiveStack(state=state, scanner=None, dispatcher=None)) as server:
        yield server


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    # Generous waits (a loaded CI box is slow); none of them is a timing assertion.
    sync_api.expect.set_options(timeout=20_000)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(
            viewport={"width": 1280, "height": 1500}, timezone_id="Europe/Paris"
        )
        page = context.new_page()
        outside: list[str] = []
        page.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith("http://127.0.0.1") else None,
        )
        page.outside_requests = outside
        yield page
        browser.close()


def test_the_local_page_shows_the_numbers_the_chart_and_switches_ranges(page_server, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_server.url + "/")
    page.wait_for_selector("body[data-loaded='true']", timeout=30_000)

    summary = page.request.get(page_server.url + "/api/summary").json()
    expect(page.get_by_test_id("today-cost")).to_have_text(f"${summary['today']['cost_usd']:,.2f}")
    expect(page.get_by_test_id("month-cost")).to_have_text(f"${summary['month']['cost_usd']:,.2f}")

    canvas = page.locator("#cost-chart")
    expect(canvas).to_have_attribute("data-points", "7")
    assert page.evaluate("() => Chart.getChart('cost-chart').data.datasets[0].data.length") == 7
    assert page.evaluate(
        "() => Chart.getChart('cost-chart').data.datasets[0].data.some(v => v > 0)"
    )

    page.get_by_role("button", name="30 days").click()
    expect(canvas).to_have_attribute("data-points", "30")
    expect(page.get_by_role("button", name="30 days")).to_have_class(re.compile("active"))
    page.get_by_role("button", name="24 h").click()
    expect(canvas).to_have_attribute("data-points", "24")
    page.get_by_role("button", name="7 days").click()
    expect(canvas).to_have_attribute("data-points", "7")

    expect(page.locator("#by-model tr")).to_have_count(3)
    expect(page.locator("#by-project")).to_contain_text("src/webshop")
    expect(page.locator("#by-tool")).to_contain_text("Bash")
    expect(page.locator("#sessions tbody tr").first).to_be_visible()
    expect(page.locator("#anomalies")).to_contain_text("sess-loop-00")
    expect(page.locator("#card-block")).to_contain_text("$")
    expect(page.locator("#alerts")).to_contain_text("Daily budget reached")
    expect(page.locator("#alerts")).to_contain_text("Runaway session")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "local-dashboard.png"), full_page=True)

    # Clicking a project narrows every panel to it; the chip removes the filter again.
    notes = page.request.get(page_server.url + "/api/summary?project=/home/ada/notes").json()
    page.locator("#by-project tr", has_text="ada/notes").click()
    expect(page.locator("#filters .chip")).to_have_text(re.compile("project: .*ada/notes"))
    expect(page.get_by_test_id("today-cost")).to_have_text(f"${notes['today']['cost_usd']:,.2f}")
    expect(page.locator("#by-project tr")).to_have_count(1)
    page.locator("#filters .chip").click()
    expect(page.locator("#filters .chip")).to_have_count(0)
    expect(page.get_by_test_id("today-cost")).to_have_text(f"${summary['today']['cost_usd']:,.2f}")

    assert errors == []
    assert page.outside_requests == []  # works offline: no CDN, nothing but 127.0.0.1


def test_a_new_turn_written_to_a_log_appears_on_the_open_page(tmp_path, browser_page):
    from clawtrace import store
    from clawtrace.alerts.settings import AlertSettings
    from clawtrace.config import Config
    from clawtrace.server.runner import live_stack_build
    from playwright.sync_api import expect

    from .test_live_updates import SESSION, assistant_line

    projects = tmp_path / "claude" / "projects" / "-home-ada-src-webshop"
    projects.mkdir(parents=True)
    transcript = projects / f"{SESSION}.jsonl"
    transcript.write_text(assistant_line(1))
    db = tmp_path / "clawtrace.db"
    store.connect(db).close()
    stack = live_stack_build(
        db,
        Config(),
        AlertSettings(desktop=False),
        claude_dirs=[str(tmp_path / "claude")],
        openclaw_dirs=[str(tmp_path / "openclaw")],
        # Should a CI box not deliver file events, the rescan timer still gets there in time.
        fallback_seconds=5.0,
    )
    with ServerThread(stack) as server:
        page = browser_page
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-loaded='true']", timeout=30_000)
        expect(page.locator("#today-sub")).to_contain_text("1 turns")
        with transcript.open("a") as fh:
            fh.write(assistant_line(2))
        # The page polls /api/health each second and reloads when the store changed.
        expect(page.locator("#today-sub")).to_contain_text("2 turns", timeout=30_000)
        expect(page.locator("#status-text")).to_contain_text("live")


def test_the_header_says_where_the_machine_syncs_and_when_it_falls_behind(
    fixture_db, tmp_path, browser_page
):
    from playwright.sync_api import expect

    db = tmp_path / "clawtrace.db"
    shutil.copy(fixture_db, db)
    sync = {"linked": False}
    state = ServerState(
        db_path=db,
        tz=ZoneInfo(storefixture.TZ_NAME),
        now=lambda: storefixture.NOW,
        status=lambda: {"watching": True, "sync": dict(sync)},
    )
    with ServerThread(LiveStack(state=state, scanner=None, dispatcher=None)) as server:
        page = browser_page
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-loaded='true']", timeout=30_000)
        expect(page.locator("#status-text")).to_contain_text("live")
        expect(page.locator("#status-text")).not_to_contain_text("sync")
        sync.update(
            linked=True,
            enabled=True,
            server="https://clawtrace.example",
            last_sync_at="2026-03-14T11:00:00Z",
            pending=0,
            last_error=None,
        )
        expect(page.locator("#status-text")).to_contain_text("synced to clawtrace.example")
        expect(page.locator("#status-dot")).to_have_class("dot ok")
        sync.update(pending=1200, last_error="the server answered 503")
        expect(page.locator("#status-text")).to_contain_text(
            "sync to clawtrace.example failing: the server answered 503, 1,200 waiting"
        )
        expect(page.locator("#status-dot")).to_have_class("dot warn")
