"""The alert pages under an organization's settings: members read, owners and admins change."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Membership, Role
from accounts.tenancy import organization_scope
from accounts.tests.factories import MembershipFactory, UserFactory
from alerts.models import AlertRecipient, AlertRule, DeliveryAttempt, DeliveryStatus, Trigger
from alerts.tests.factories import AlertDeliveryFactory, AlertFactory, AlertRuleFactory

pytestmark = pytest.mark.django_db

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"


def _url(name: str, org, *args) -> str:
    return reverse(f"alerts:{name}", args=[org.slug, *args])


def _owner_membership(org, owner) -> Membership:
    with organization_scope(org):
        return Membership.objects.get(user=owner)


def test_the_settings_page_links_to_the_alert_rules(member_client, org):
    AlertRuleFactory(organization=org)
    html = member_client.get(reverse("accounts:org_settings", args=[org.slug])).content.decode()
    assert _url("rule_list", org) in html
    assert "1 of 1 rule on" in html


def test_an_owner_creates_a_rule_in_the_form(owner_client, org, owner):
    page = owner_client.get(_url("rule_create", org))
    assert page.status_code == 200
    assert 'name="webhook_url"' in page.content.decode()

    response = owner_client.post(
        _url("rule_create", org),
        {
            "name": "Daily over $25",
            "trigger": Trigger.SPEND_DAY,
            "threshold_usd": "25",
            "email_enabled": "on",
            "recipients": [str(_owner_membership(org, owner).pk)],
            "webhook_url": SLACK,
            "is_enabled": "on",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == _url("rule_list", org)
    rule = AlertRule.all_orgs.get(organization=org)
    assert (rule.name, rule.threshold_usd, rule.email_enabled, rule.webhook_url) == (
        "Daily over $25",
        Decimal("25.00"),
        True,
        SLACK,
    )
    assert AlertRecipient.all_orgs.filter(rule=rule).count() == 1


def test_a_refused_webhook_url_comes_back_on_its_field(owner_client, org):
    response = owner_client.post(
        _url("rule_create", org),
        {
            "name": "Hook",
            "trigger": Trigger.HOURLY_BURN,
            "webhook_url": "http://hooks.slack.com/x",
            "is_enabled": "on",
        },
    )
    assert response.status_code == 400
    assert "must start with https://" in response.content.decode()
    assert not AlertRule.all_orgs.exists()


def test_a_member_sees_rules_but_no_webhook_url_and_no_controls(member_client, org):
    AlertRuleFactory(organization=org, name="Burn", webhook_url=SLACK)

    html = member_client.get(_url("rule_list", org)).content.decode()

    assert "Burn" in html
    assert "hooks.slack.com" in html
    assert "/services/T000" not in html
    assert _url("rule_create", org) not in html
    assert "Delete" not in html


@pytest.mark.parametrize("view", ["rule_create", "delivery_log"])
def test_a_member_may_not_open_the_admin_pages(member_client, org, view):
    assert member_client.get(_url(view, org)).status_code == 403


def test_a_member_may_not_edit_disable_or_delete(member_client, org):
    rule = AlertRuleFactory(organization=org)
    assert member_client.get(_url("rule_update", org, rule.pk)).status_code == 403
    assert (
        member_client.post(_url("rule_enabled", org, rule.pk), {"is_enabled": "0"}).status_code
        == 403
    )
    assert member_client.post(_url("rule_delete", org, rule.pk)).status_code == 403
    assert AlertRule.all_orgs.get(pk=rule.pk).is_enabled


def test_an_admin_edits_a_rule(client_for, org):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)
    rule = AlertRuleFactory(organization=org, name="Old", webhook_url=SLACK)
    client = client_for(admin)

    page = client.get(_url("rule_update", org, rule.pk)).content.decode()
    assert 'value="Old"' in page and SLACK in page

    response = client.post(
        _url("rule_update", org, rule.pk),
        {
            "name": "New",
            "trigger": Trigger.SPEND_MONTH,
            "threshold_usd": "400",
            "webhook_url": SLACK,
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.trigger, rule.threshold_usd, rule.is_enabled) == (
        "New",
        Trigger.SPEND_MONTH,
        Decimal("400.00"),
        False,  # the box was left unticked
    )


def test_disable_enable_and_delete_from_the_list(owner_client, org):
    rule = AlertRuleFactory(organization=org, name="Daily")

    assert (
        owner_client.post(_url("rule_enabled", org, rule.pk), {"is_enabled": "0"}).status_code
        == 302
    )
    assert not AlertRule.all_orgs.get(pk=rule.pk).is_enabled
    assert "Off" in owner_client.get(_url("rule_list", org)).content.decode()
    owner_client.post(_url("rule_enabled", org, rule.pk), {"is_enabled": "1"})
    assert AlertRule.all_orgs.get(pk=rule.pk).is_enabled

    assert (
        owner_client.post(_url("rule_enabled", org, rule.pk), {"is_enabled": "x"}).status_code
        == 400
    )

    assert owner_client.post(_url("rule_delete", org, rule.pk)).status_code == 302
    assert not AlertRule.all_orgs.filter(pk=rule.pk).exists()


def test_another_organizations_rule_is_not_found(owner_client, org, other_org):
    theirs = AlertRuleFactory(organization=other_org)
    assert owner_client.get(_url("rule_update", org, theirs.pk)).status_code == 404
    assert owner_client.post(_url("rule_delete", org, theirs.pk)).status_code == 404
    assert AlertRule.all_orgs.filter(pk=theirs.pk).exists()


def test_the_delivery_log_shows_every_attempt_with_its_answer(owner_client, org):
    alert = AlertFactory(organization=org, rule_name="Daily cap", window_key="2026-03-01")
    delivery = AlertDeliveryFactory(
        organization=org,
        alert=alert,
        status=DeliveryStatus.FAILED,
        attempt_count=2,
        last_error="ReadTimeout: timed out",
    )
    for code, error, ok, ms in [
        (500, "HTTP 500", False, 120),
        (None, "ReadTimeout: timed out", False, 5003),
    ]:
        DeliveryAttempt.all_orgs.create(
            organization=org,
            delivery=delivery,
            channel="webhook",
            status_code=code,
            error=error,
            succeeded=ok,
            duration_ms=ms,
        )

    html = owner_client.get(_url("delivery_log", org)).content.decode()

    assert "Daily cap" in html and "2026-03-01" in html
    assert "HTTP 500" in html and "ReadTimeout: timed out" in html
    assert "5,003 ms" in html and "120 ms" in html
    assert "Failed" in html  # the unfinished table


def test_recent_alerts_show_on_the_rules_page(member_client, org):
    alert = AlertFactory(organization=org, rule_name="Daily cap", value=Decimal("12.5"))
    AlertDeliveryFactory(organization=org, alert=alert, status=DeliveryStatus.SENT)
    html = member_client.get(_url("rule_list", org)).content.decode()
    assert "$12.50" in html and "Webhook: sent" in html
