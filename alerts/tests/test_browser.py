"""An owner creates an alert rule in real Chromium (Debian's /usr/bin/chromium), from the
organization's settings, and reads the delivery log once it fired. Screenshots land in
<repo>/test-artifacts/ (alerts-*.png)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.models import Membership, Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from accounts.tests.test_browser_journey import CHROMIUM
from alerts.models import AlertDelivery, AlertRule, DeliveryStatus, Trigger
from alerts.services import Firing, alert_fire

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"
    ),
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "correct horse battery staple"  # UserFactory's


@pytest.fixture(autouse=True)
def _allow_orm_calls_beside_playwrights_event_loop(monkeypatch) -> None:
    # As in the accounts journey: Playwright's sync API runs an event loop in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def test_an_owner_creates_a_rule_in_the_browser_and_reads_its_delivery_log(
    live_server, browser, artifacts, receiver
):
    organization = OrganizationFactory(name="Alpha Labs", slug="alpha-labs")
    owner = UserFactory(email="owner@alpha.example")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)
    MembershipFactory(
        organization=organization, user=UserFactory(email="dev@alpha.example"), role=Role.MEMBER
    )
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    page.goto(base + "/accounts/login/")
    page.fill("#id_login", owner.email)
    page.fill("#id_password", PASSWORD)
    page.locator("main form").get_by_role("button", name=re.compile("sign in|log in", re.I)).click()
    page.wait_for_load_state()

    # Settings -> Alert rules -> New rule.
    page.goto(f"{base}/o/{organization.slug}/settings/")
    page.get_by_role("link", name="Alert rules").click()
    page.wait_for_load_state()
    assert "No rules yet" in page.locator("main").inner_text()
    page.get_by_role("link", name="New rule").click()
    page.wait_for_load_state()

    page.get_by_label("Name").fill("Daily spend over $25")
    page.get_by_label("When").select_option(Trigger.SPEND_DAY.value)
    page.get_by_label("Threshold (USD)").fill("25")
    page.get_by_label("Send an e-mail").check()
    page.get_by_label("dev@alpha.example (Member)").check()
    page.get_by_label("Webhook URL (optional)").fill(receiver.url)
    page.screenshot(path=str(artifacts / "alerts-rule-form.png"), full_page=True)
    page.get_by_role("button", name="Create rule").click()
    page.wait_for_load_state()

    assert page.url == f"{base}/o/{organization.slug}/settings/alerts/"
    assert "Created the rule" in page.locator(".messages").inner_text()
    main = page.locator("main").inner_text()
    assert "Daily spend over $25" in main
    assert "Webhook to 127.0.0.1" in main
    rule = AlertRule.all_orgs.get(organization=organization)
    assert (rule.trigger, rule.threshold_usd, rule.email_enabled) == (
        Trigger.SPEND_DAY,
        Decimal("25.00"),
        True,
    )
    # The creator is ticked already; the owner added the developer.
    assert sorted(rule.recipients.values_list("membership__user__email", flat=True)) == [
        "dev@alpha.example",
        "owner@alpha.example",
    ]
    assert Membership.all_orgs.filter(organization=organization).count() == 2

    # It fires (tasks run eagerly here), and the log shows both channels' attempts.
    alert_fire(
        rule=rule,
        firing=Firing(
            window_key="2026-03-01",
            window_start=datetime(2026, 3, 1, tzinfo=UTC),
            window_end=datetime(2026, 3, 2, tzinfo=UTC),
            value=Decimal("31.40"),
            threshold=Decimal("25.00"),
        ),
    )
    assert set(AlertDelivery.all_orgs.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    page.reload()
    page.screenshot(path=str(artifacts / "alerts-rule-list.png"), full_page=True)
    page.get_by_role("link", name="Delivery log").click()
    page.wait_for_load_state()
    log = page.locator("table.delivery-log").inner_text()
    assert "Webhook" in log and "E-mail" in log and "200" in log
    page.screenshot(path=str(artifacts / "alerts-delivery-log.png"), full_page=True)

    # Disable it from the list.
    page.goto(f"{base}/o/{organization.slug}/settings/alerts/")
    page.get_by_role("button", name="Disable").click()
    page.wait_for_load_state()
    assert "is disabled" in page.locator(".messages").inner_text()
    assert not AlertRule.all_orgs.get(pk=rule.pk).is_enabled
    context.close()
