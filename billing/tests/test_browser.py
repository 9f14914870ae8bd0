"""Upgrading in real Chromium (Debian's /usr/bin/chromium), against the fake Stripe.

The owner of a Free organization goes from the pricing page to the billing page, upgrades to
Team, pays on the fake hosted Checkout and comes back to the success page, where the plan is
already Team: the signed webhook the fake posted applied it. Two more machines then link with
the agent's own `clawtrace login --enroll-key` against the live server, and a refund webhook
returns the organization to Free without a row of it lost. Screenshots land in
<repo>/test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings

from accounts.models import Organization, Role
from accounts.tenancy import OrgOwnedModel
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from accounts.tests.test_browser_journey import (  # noqa: F401  (an autouse fixture, shared)
    CHROMIUM,
    _allow_orm_calls_beside_playwrights_event_loop,
)
from analytics.services.rollups import rollups_rebuild
from analytics.tests.factories import EventFactory
from billing.models import Payment, StripeEvent
from billing.tests.fake_stripe import event_build
from devices.models import Device
from devices.services import enrollment_key_create
from devices.tests.factories import DeviceFactory

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "Claw-trace-7-tokens!"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def stripe(live_server, fake_stripe):
    fake_stripe.webhook_url = f"{live_server.url}/billing/stripe/webhook/"
    return fake_stripe


@pytest.fixture
def acme():
    """Acme on Free, its owner Ada, one linked laptop with a few days of usage."""
    organization = OrganizationFactory(name="Acme Robotics", slug="acme")
    ada = UserFactory(email="ada@acme.example", password=PASSWORD)
    MembershipFactory(organization=organization, user=ada, role=Role.OWNER)
    laptop = DeviceFactory(organization=organization, name="ada-laptop")
    for project in ("firmware", "firmware", "vision"):
        EventFactory(organization=organization, device=laptop, project=project)
    rollups_rebuild(organization=organization)
    return organization, ada


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"billing-{name}.png"), full_page=True)


def _agent_login(server: str, key: str, name: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLAWTRACE_HOME": str(home), "CLAWTRACE_NO_BROWSER": "1", "NO_COLOR": "1"}
    env.pop("CLAWTRACE_SERVER", None)
    env.pop("CLAWTRACE_ENROLL_KEY", None)
    argv = ["login", "--server", server, "--enroll-key", key, "--name", name]
    return subprocess.run(
        [sys.executable, "-m", "clawtrace", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _org_rows(organization: Organization) -> dict[str, int]:
    counts = {
        model._meta.label: model.all_orgs.filter(organization=organization).count()
        for model in apps.get_models()
        if issubclass(model, OrgOwnedModel)
    }
    return {**counts, "billing.StripeEvent": StripeEvent.objects.count()}


def _usage(page, limit: str) -> str:
    return " ".join(page.locator("#usage tr", has_text=limit).inner_text().split())


def test_a_free_owner_upgrades_to_team_links_two_more_devices_and_a_refund_loses_no_row(
    live_server, browser, stripe, acme, tmp_path
):
    organization, ada = acme
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_login", ada.email)
    page.fill("#id_password", PASSWORD)
    page.locator("main form").get_by_role("button", name=re.compile("sign in", re.I)).click()
    page.wait_for_load_state()

    # Pricing -> billing: the Team button leads to Acme's billing page, Team highlighted.
    page.goto(f"{live_server.url}/pricing/")
    page.locator("#plan-team").get_by_role("link", name="Choose Team").click()
    page.wait_for_url(re.compile(r"/o/acme/billing/\?plan=team"))
    assert page.locator("#current-plan strong").inner_text() == "Free"
    assert _usage(page, "Devices") == "Devices 1 1 At limit"
    _screenshot(page, "free")

    # Upgrade -> the fake hosted Checkout, with Team's price.
    page.get_by_role("button", name="Upgrade to Team").click()
    page.wait_for_url(f"{stripe.url}/pay/*")
    assert page.locator("#summary").inner_text() == "Team plan: $199.00"
    (created,) = stripe.requests_to("POST", "/v1/checkout/sessions")
    assert created.params["client_reference_id"] == str(organization.pk)
    assert created.params["metadata"] == {"plan": "team", "organization_id": str(organization.pk)}

    # Pay -> the fake posts the signed webhook, then sends the browser to the success page.
    page.get_by_role("button", name="Pay $199.00").click()
    page.wait_for_url(re.compile(r"/o/acme/billing/success/\?session_id=cs_test_"))
    assert stripe.webhook_responses and stripe.webhook_responses[0][0] == 200
    result = page.locator("#checkout-result")
    assert "Payment received" in result.inner_text()
    assert "Acme Robotics is on Team." in result.inner_text()
    _screenshot(page, "success")

    page.get_by_role("link", name="Back to billing").click()
    page.wait_for_url(re.compile(r"/o/acme/billing/$"))
    assert page.locator("#current-plan strong").inner_text() == "Team"
    assert _usage(page, "Devices") == "Devices 1 3"
    assert page.get_by_role("button", name=re.compile("Upgrade to")).count() == 0
    payments = page.locator("#payments tbody tr")
    assert payments.count() == 1
    assert "Team 199.00 USD Paid Receipt" in " ".join(payments.inner_text().split())
    organization.refresh_from_db()
    assert organization.plan == "team"

    # The second and third machines link with the agent, through an enrollment key.
    _key, key = enrollment_key_create(organization=organization, actor=ada, name="lab machines")
    for name in ("lab-rig-1", "lab-rig-2"):
        done = _agent_login(live_server.url, key, name, tmp_path / name)
        assert done.returncode == 0, done.stdout + done.stderr
    linked = Device.all_orgs.filter(organization=organization, revoked_at__isnull=True)
    assert sorted(linked.values_list("name", flat=True)) == ["ada-laptop", "lab-rig-1", "lab-rig-2"]
    for device in linked.exclude(name="ada-laptop"):
        EventFactory(organization=organization, device=device, project="vision")
    rollups_rebuild(organization=organization)
    page.reload()
    assert _usage(page, "Devices") == "Devices 3 3 At limit"
    _screenshot(page, "team")

    # A full refund, delivered by Stripe as charge.refunded: back to Free, not a row lost.
    before = _org_rows(organization)
    session_id = Payment.all_orgs.get(organization=organization).checkout_session_id
    refunded = stripe.charge_refund(session_id)
    status, body = stripe.webhook_send(event_build("charge.refunded", refunded))
    assert status == 200, body
    assert json.loads(body)["result"].startswith("downgraded acme to free")
    organization.refresh_from_db()
    assert organization.plan == "free"
    assert _org_rows(organization) == {
        **before,
        "billing.StripeEvent": before["billing.StripeEvent"] + 1,
    }
    assert before["ingest.Event"] == 5 and before["devices.Device"] == 3

    page.reload()
    assert page.locator("#current-plan strong").inner_text() == "Free"
    assert _usage(page, "Devices") == "Devices 3 1 Over"
    assert "Refunded" in page.locator("#payments").inner_text()
    assert page.get_by_role("button", name="Upgrade to Team").count() == 1
    _screenshot(page, "refunded")
    context.close()
