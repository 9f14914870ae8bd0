"""Alert rules: who may make them, what a valid rule is, and which webhook URLs are refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Membership, Role
from accounts.tenancy import organization_scope
from accounts.tests.factories import MembershipFactory, UserFactory
from alerts.models import AlertRecipient, AlertRule, Trigger
from alerts.services import (
    RuleFields,
    alert_rule_create,
    alert_rule_delete,
    alert_rule_enabled_set,
    alert_rule_update,
)
from alerts.tests.factories import AlertFactory, AlertRuleFactory
from clawtrace_site.exceptions import ApplicationError, NotAllowedError

pytestmark = pytest.mark.django_db

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"


def _membership(org, user) -> Membership:
    with organization_scope(org):
        return Membership.objects.get(user=user)


def _fields(**overrides) -> RuleFields:
    values = {
        "name": "Daily spend over $25",
        "trigger": Trigger.SPEND_DAY,
        "threshold_usd": Decimal("25"),
        "webhook_url": SLACK,
    }
    values.update(overrides)
    return RuleFields(**values)


def test_an_owner_creates_a_spend_rule_with_email_and_webhook(org, owner, member):
    recipients = (_membership(org, owner).pk, _membership(org, member).pk)

    rule = alert_rule_create(
        organization=org,
        actor=owner,
        fields=_fields(email_enabled=True, recipient_membership_ids=recipients),
    )

    assert (rule.trigger, rule.threshold_usd, rule.webhook_url) == (
        Trigger.SPEND_DAY,
        Decimal("25.00"),
        SLACK,
    )
    assert rule.channels == ["email", "webhook"]
    with organization_scope(org):
        assert set(
            AlertRecipient.objects.filter(rule=rule).values_list("membership_id", flat=True)
        ) == set(recipients)


def test_an_admin_may_create_rules_and_a_member_may_not(org, member):
    admin = UserFactory()
    MembershipFactory(organization=org, user=admin, role=Role.ADMIN)

    assert alert_rule_create(organization=org, actor=admin, fields=_fields()).pk
    with pytest.raises(NotAllowedError):
        alert_rule_create(organization=org, actor=member, fields=_fields())


def test_someone_outside_the_organization_may_not_create_rules(org, other_owner):
    with pytest.raises(NotAllowedError):
        alert_rule_create(organization=org, actor=other_owner, fields=_fields())


def test_an_anomaly_rule_takes_no_threshold(org, owner):
    rule = alert_rule_create(
        organization=org,
        actor=owner,
        fields=_fields(trigger=Trigger.HOURLY_BURN, threshold_usd=Decimal("99")),
    )
    assert rule.threshold_usd is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"trigger": "moon_phase"}, "trigger"),
        ({"threshold_usd": None}, "threshold_usd"),
        ({"threshold_usd": Decimal("0")}, "threshold_usd"),
        ({"threshold_usd": Decimal("-5")}, "threshold_usd"),
        ({"threshold_usd": Decimal("NaN")}, "threshold_usd"),
        ({"threshold_usd": Decimal("1000000.01")}, "threshold_usd"),
        ({"webhook_url": "", "email_enabled": False}, "email_enabled"),
        ({"email_enabled": True, "recipient_membership_ids": ()}, "recipients"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(org, owner, overrides, field):
    with pytest.raises(ApplicationError) as raised:
        alert_rule_create(organization=org, actor=owner, fields=_fields(**overrides))
    assert field in raised.value.extra["fields"]
    assert not AlertRule.all_orgs.exists()


def test_recipients_must_be_members_of_this_organization(org, owner, other_org, other_owner):
    stranger = _membership(other_org, other_owner)
    with pytest.raises(ApplicationError) as raised:
        alert_rule_create(
            organization=org,
            actor=owner,
            fields=_fields(email_enabled=True, recipient_membership_ids=(stranger.pk,)),
        )
    assert "recipients" in raised.value.extra["fields"]


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/services/T000/B000/X",  # plain http to a real host
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "https://user:secret@hooks.example.com/x",
        "https:///no-host",
        "https://example.com:99999/x",
        "https://exa mple.com/x",
        "https://example.com/x\r\nHost: evil",
        "http://10.0.0.8/hook",
        "https://hooks.example.com/" + "x" * 500,
    ],
)
def test_webhook_urls_that_are_not_https_or_are_malformed_are_refused(org, owner, url):
    with pytest.raises(ApplicationError) as raised:
        alert_rule_create(organization=org, actor=owner, fields=_fields(webhook_url=url))
    assert "webhook_url" in raised.value.extra["fields"]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8123/hook", "http://localhost:8123/hook", "http://[::1]:8123/h"]
)
def test_plain_http_to_loopback_is_allowed_only_where_the_setting_allows_it(
    org, owner, settings, url
):
    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK_HTTP = True
    assert alert_rule_create(organization=org, actor=owner, fields=_fields(webhook_url=url)).pk

    settings.ALERT_WEBHOOK_ALLOW_LOOPBACK_HTTP = False
    with pytest.raises(ApplicationError):
        alert_rule_create(organization=org, actor=owner, fields=_fields(webhook_url=url))


def test_loopback_http_is_off_by_default_in_production():
    import os
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.ALERT_WEBHOOK_ALLOW_LOOPBACK_HTTP, "
        "settings.ALERT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ALERT_", "DEBUG"))},
        "DJANGO_SETTINGS_MODULE": "clawtrace_site.settings",
        "DEBUG": "False",
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "clawtrace.example",
        "DATABASE_URL": "sqlite:///:memory:",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_update_replaces_fields_and_recipients(org, owner, member):
    rule = alert_rule_create(
        organization=org,
        actor=owner,
        fields=_fields(email_enabled=True, recipient_membership_ids=(_membership(org, owner).pk,)),
    )

    alert_rule_update(
        rule=rule,
        actor=owner,
        fields=_fields(
            name="Monthly",
            trigger=Trigger.SPEND_MONTH,
            threshold_usd=Decimal("500"),
            email_enabled=True,
            recipient_membership_ids=(_membership(org, member).pk,),
            webhook_url="",
        ),
    )

    rule.refresh_from_db()
    assert (rule.name, rule.trigger, rule.threshold_usd, rule.webhook_url) == (
        "Monthly",
        Trigger.SPEND_MONTH,
        Decimal("500.00"),
        "",
    )
    with organization_scope(org):
        assert list(
            AlertRecipient.objects.filter(rule=rule).values_list("membership_id", flat=True)
        ) == [_membership(org, member).pk]


def test_disable_enable_and_delete_keep_the_alert_history(org, owner):
    rule = AlertRuleFactory(organization=org)
    alert = AlertFactory(organization=org, rule=rule)

    alert_rule_enabled_set(rule=rule, actor=owner, is_enabled=False)
    assert not AlertRule.all_orgs.get(pk=rule.pk).is_enabled
    alert_rule_enabled_set(rule=rule, actor=owner, is_enabled=True)
    assert AlertRule.all_orgs.get(pk=rule.pk).is_enabled

    alert_rule_delete(rule=rule, actor=owner)
    assert not AlertRule.all_orgs.filter(pk=rule.pk).exists()
    alert.refresh_from_db()
    assert alert.rule_id is None and alert.rule_name == rule.name


def test_a_member_may_not_disable_or_delete(org, member):
    rule = AlertRuleFactory(organization=org)
    with pytest.raises(NotAllowedError):
        alert_rule_enabled_set(rule=rule, actor=member, is_enabled=False)
    with pytest.raises(NotAllowedError):
        alert_rule_delete(rule=rule, actor=member)
    assert AlertRule.all_orgs.get(pk=rule.pk).is_enabled
