"""Issue 14's "done when", walked in real Chromium (Debian's /usr/bin/chromium) against the
real site over HTTP (pytest-django's live server) and the real agent (`clawtrace`, in
subprocesses, each machine with its own CLAWTRACE_HOME):

A new user signs up and gets their workspace. Their laptop runs `clawtrace login --server
<site>`, which prints a user code; they enter it on the site's device page, see the laptop's
name, OS and agent version, pick the organization and approve, and the login finishes by
itself. A build server joins with an enrollment key they make on the Devices page (shown
once). Both run `clawtrace sync`; the Devices page then lists both, each with the events it
delivered and its last sync, while the organization holds the shared history once.

Also, in the browser: a code the member denies stops the login with "denied", and an expired
code is refused on the page and stops the login with "expired" (the device-flow rules
themselves, through the test client: test_device_grant.py).

Screenshots land in <repo>/test-artifacts/ (linking-*.png).
"""

from __future__ import annotations

import platform
import queue
import re
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import time_machine

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from accounts.tests.test_browser_journey import CHROMIUM, _confirm_email, _signup
from ingest.tests.test_agent_end_to_end import TOKEN_KEYS, Machine, corpus

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"
    ),
    pytest.mark.django_db(transaction=True),
]

ADA = "ada@example.com"
PASSWORD = "Claw-trace-7-tokens!"
CODE_LINE = re.compile(r"one-time code: ([A-Z]{4}-[A-Z]{4})")
OPEN_LINE = re.compile(r"Then open (\S+) and enter it")


@pytest.fixture(autouse=True)
def _allow_orm_calls_beside_playwrights_event_loop(monkeypatch) -> None:
    # As in the accounts journey: Playwright's sync API runs an event loop in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """One user's agent logs (a small generated corpus) and their truth."""
    data = tmp_path_factory.mktemp("history")
    return data, corpus.generate(data, 2500, seed=31, workers=1)


class Terminal:
    """A command the user started and watches: its output, line by line, as it comes."""

    def __init__(self, machine: Machine, *args: str) -> None:
        self.process = subprocess.Popen(
            machine.argv(*args),
            env={**machine.env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._fresh: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._fresh.put(line)
        self._fresh.put(None)

    def wait_for(self, pattern: re.Pattern, timeout: float = 60) -> str:
        """The first group of the first line (already shown or still to come) that matches."""
        for line in self.lines:
            if found := pattern.search(line):
                return found.group(1)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._fresh.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if found := pattern.search(line):
                return found.group(1)
        raise AssertionError(f"no line like {pattern.pattern!r}; it printed: {self.output}")

    def finish(self, timeout: float = 60) -> int:
        """Its exit status, once it has ended by itself (it polls at the server's interval)."""
        returncode = self.process.wait(timeout=timeout)
        while (line := self._fresh.get(timeout=5)) is not None:
            self.lines.append(line)
        return returncode

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def terminals():
    started: list[Terminal] = []

    def start(machine: Machine, *args: str) -> Terminal:
        started.append(Terminal(machine, *args))
        return started[-1]

    yield start
    for terminal in started:
        terminal.stop()


def _new_page(chromium):
    return chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()


def _sign_in(page, base: str, email: str, password: str) -> None:
    page.goto(base + "/accounts/login/")
    page.fill("#id_login", email)
    page.fill("#id_password", password)
    page.locator("main form").get_by_role("button", name=re.compile("sign in", re.I)).click()
    page.wait_for_load_state()


def _enter_code(page, verification_uri: str, code: str) -> None:
    """What the person does with the two lines `clawtrace login` printed."""
    page.goto(verification_uri)
    page.get_by_label("Code shown by the agent").fill(code)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()


def _confirm_table(page) -> dict[str, str]:
    rows = page.locator("main table tr")
    return {
        rows.nth(n).locator("th").inner_text().strip(): rows.nth(n).locator("td").inner_text()
        for n in range(rows.count())
    }


def _devices_table(page) -> dict[str, dict]:
    """The Devices page's table as the user reads it: for each device name, its cells by
    column heading (and the last sync's machine-readable time)."""
    devices = page.locator(
        "section.card", has=page.get_by_role("heading", name="Devices", exact=True)
    )
    # (text_content: the headings are upper case by CSS only)
    headings = [h.strip() for h in devices.locator("thead th").all_text_contents()]
    table = {}
    for row in devices.locator("tbody tr").all():
        cells = row.locator("td")
        values = {
            headings[n]: " ".join(cells.nth(n).inner_text().split()) for n in range(cells.count())
        }
        stamp = row.locator("time")
        values["synced_at"] = stamp.get_attribute("datetime") if stamp.count() else None
        table[values["Name"]] = values
    return table


def _agent_os() -> str:
    return f"{platform.system()} {platform.release()} {platform.machine()}"


def test_a_new_user_links_a_laptop_in_the_browser_and_a_server_with_a_key(
    live_server, browser, artifacts, mailoutbox, history, tmp_path, terminals
):
    from clawtrace import __version__ as agent_version

    data, truth = history
    base = live_server.url
    site = SimpleNamespace(url=base)
    turns = truth["totals"]["turns"]
    started = datetime.now(UTC).replace(microsecond=0)

    # A new user signs up; confirming the address signs them in, with a workspace of their own.
    page = _new_page(browser)
    page.goto(base + "/accounts/signup/")
    _signup(page, email=ADA, password=PASSWORD)
    _confirm_email(page, ADA)
    workspace = "ada's workspace"

    # The laptop asks to be linked and prints a code and where to enter it.
    laptop = Machine(tmp_path / "laptop", data)
    login = terminals(laptop, "login", "--server", base, "--name", "ada-laptop")
    code = login.wait_for(CODE_LINE)
    verification_uri = login.wait_for(OPEN_LINE)
    assert verification_uri == f"{base}/device/"
    _enter_code(page, verification_uri, code)

    # The page says which machine asks, before anything is approved.
    assert page.locator("h1").inner_text() == "Link this machine?"
    assert code in page.locator("main").inner_text()
    machine = _confirm_table(page)
    assert machine["Machine"] == "ada-laptop"
    assert machine["Operating system"] == _agent_os()
    assert machine["Agent version"] == agent_version
    assert page.locator("#id_organization option").all_inner_texts() == [workspace]
    page.screenshot(path=str(artifacts / "linking-confirm.png"), full_page=True)
    page.get_by_label("Organization").select_option(label=workspace)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Approved"
    assert "ada-laptop is linked to ada's workspace" in page.locator("main").inner_text()

    # The login on the laptop finishes by itself at its next poll.
    assert login.finish() == 0, login.output
    assert "Linked as 'ada-laptop'" in login.output
    assert (laptop.home / "device.json").stat().st_mode & 0o777 == 0o600

    # On the Devices page, an enrollment key for the server, shown once.
    page.get_by_role("link", name="See the organization's devices").click()
    page.wait_for_load_state()
    devices_url = page.url
    assert re.fullmatch(rf"{re.escape(base)}/o/[\w-]+/devices/", devices_url)
    keys = page.locator("section.card", has=page.get_by_role("heading", name="Enrollment keys"))
    keys.get_by_label("Name").fill("build servers")
    keys.get_by_role("button", name="Create a key").click()
    page.wait_for_load_state()
    key = page.locator("code.secret").inner_text()
    assert re.fullmatch(r"cte_[a-z2-7]{52}", key)
    assert "shown this once" in page.locator("main").inner_text()
    page.goto(devices_url)
    assert key not in page.content()
    assert "build servers" in page.locator("main").inner_text()

    # The server joins with the key, no browser needed.
    server = Machine(tmp_path / "server", data)
    joined = server.run("login", "--server", base, "--enroll-key", key, "--name", "build-server")
    assert "Linked as 'build-server'" in joined.stdout

    # Both send their history: the same transcripts (a synced ~/.claude).
    sent = laptop.run("sync").stdout
    assert f"Sent {turns:,} events" in sent and f"{turns:,} new, 0 already there" in sent
    sent = server.run("sync").stdout
    assert f"Sent {turns:,} events" in sent and f"0 new, {turns:,} already there" in sent
    assert "In agreement" in laptop.run("sync", "--check", "--no-scan").stdout
    assert "In agreement" in server.run("sync", "--check", "--no-scan").stdout

    # The Devices page lists both, each with the events it delivered and when it last synced.
    page.goto(devices_url)
    page.screenshot(path=str(artifacts / "linking-devices.png"), full_page=True)
    listed = _devices_table(page)
    assert sorted(listed) == ["ada-laptop", "build-server"]
    for name in ("ada-laptop", "build-server"):
        device = listed[name]
        assert device["Events"] == f"{turns:,}", (name, device)
        assert device["Status"] == "Linked"
        assert device["Agent"] == agent_version
        assert device["OS"] == _agent_os()
        assert device["Last sync"] != "never"
        synced_at = datetime.fromisoformat(device["synced_at"])
        assert started <= synced_at <= datetime.now(UTC) + timedelta(seconds=1)
        assert re.search(r"now|seconds? ago|minutes? ago", device["Last sync"]), device

    # The organization holds the shared history once, not twice.
    held = server.server_totals(site, scope="organization")
    assert {key: held[key] for key in TOKEN_KEYS} == {
        key: truth["totals"][key] for key in TOKEN_KEYS
    }


def test_a_code_the_member_denies_stops_the_login(
    live_server, browser, artifacts, history, tmp_path, terminals
):
    organization = OrganizationFactory(name="Alpha Labs", slug="alpha-labs")
    owner = UserFactory(email="owner@alpha.example", password=PASSWORD)
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    page = _new_page(browser)
    _sign_in(page, live_server.url, owner.email, PASSWORD)

    stranger = Machine(tmp_path / "stranger", history[0])
    login = terminals(stranger, "login", "--server", live_server.url, "--name", "not-mine")
    _enter_code(page, login.wait_for(OPEN_LINE), login.wait_for(CODE_LINE))
    assert _confirm_table(page)["Machine"] == "not-mine"
    page.get_by_role("button", name="Deny").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Denied"
    assert "was not linked" in page.locator("main").inner_text()

    assert login.finish() == 1
    assert "denied" in login.output
    assert not (stranger.home / "device.json").exists()
    page.goto(f"{live_server.url}/o/{organization.slug}/devices/")
    assert "No devices yet" in page.locator("main").inner_text()
    page.screenshot(path=str(artifacts / "linking-denied.png"), full_page=True)


def test_an_expired_code_is_refused_on_the_page_and_ends_the_login(
    live_server, browser, history, tmp_path, terminals
):
    organization = OrganizationFactory(name="Alpha Labs", slug="alpha-labs")
    owner = UserFactory(email="owner@alpha.example", password=PASSWORD)
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    page = _new_page(browser)
    _sign_in(page, live_server.url, owner.email, PASSWORD)

    laptop = Machine(tmp_path / "laptop", history[0])
    login = terminals(laptop, "login", "--server", live_server.url, "--name", "slow-laptop")
    code, verification_uri = login.wait_for(CODE_LINE), login.wait_for(OPEN_LINE)
    # The person comes back sixteen minutes later (the site's clock: the live server runs in
    # this process; the agent keeps polling on its own).
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=16), tick=True):
        _enter_code(page, verification_uri, code)
        assert page.locator("h1").inner_text() == "Link a device"
        assert "That code is not valid: it may have expired" in (
            page.get_by_role("alert").inner_text()
        )
        assert login.finish() == 1
    assert "expired" in login.output
    assert not (laptop.home / "device.json").exists()
