"""Alert rules: owners and admins make, change, disable and delete them (the rule of who may
is here, not only in the views); the service checks what a valid rule is, including which
webhook URLs may be used (`alerts.channels.webhook_url_check`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Organization, Role, User
from accounts.selectors import membership_for_user_get
from accounts.tenancy import organization_scope
from alerts.channels import WebhookUrlError, webhook_url_check
from alerts.models import SPEND_TRIGGERS, AlertRecipient, AlertRule, Trigger
from clawtrace_site.exceptions import ApplicationError, NotAllowedError

logger = logging.getLogger(__name__)

RULE_NAME_MAX_LENGTH = 100
THRESHOLD_MAX_USD = Decimal("1000000")


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_input", extra={"fields": {field: [message]}})


def _admin_ensure(*, organization: Organization, actor: User) -> Membership:
    membership = membership_for_user_get(user=actor, organization_slug=organization.slug)
    if membership is None or not membership.has_role_at_least(Role.ADMIN):
        raise NotAllowedError("Only owners and admins can change alert rules.")
    return membership


@dataclass(frozen=True)
class RuleFields:
    """What an owner or admin sets on a rule (the form's fields, validated by the service)."""

    name: str
    trigger: str
    threshold_usd: Decimal | None = None
    email_enabled: bool = False
    recipient_membership_ids: tuple[int, ...] = ()
    webhook_url: str = ""
    is_enabled: bool = True


def webhook_url_clean(url: str) -> str:
    try:
        return webhook_url_check(url)
    except WebhookUrlError as error:
        raise _invalid("webhook_url", str(error)) from error


def _rule_fields_clean(*, organization: Organization, fields: RuleFields) -> RuleFields:
    name = " ".join((fields.name or "").split())
    if not name:
        raise _invalid("name", "Give the rule a name.")
    if len(name) > RULE_NAME_MAX_LENGTH:
        raise _invalid("name", f"Keep the name under {RULE_NAME_MAX_LENGTH} characters.")
    if fields.trigger not in Trigger.values:
        raise _invalid("trigger", "Choose what the rule watches.")
    threshold = None
    if fields.trigger in SPEND_TRIGGERS:
        try:
            threshold = Decimal(fields.threshold_usd) if fields.threshold_usd is not None else None
        except (InvalidOperation, TypeError, ValueError):
            threshold = None
        if threshold is None or not threshold.is_finite():
            raise _invalid("threshold_usd", "Enter the amount in dollars, like 25.00.")
        if not Decimal("0.01") <= threshold <= THRESHOLD_MAX_USD:
            raise _invalid("threshold_usd", "Choose an amount from $0.01 to $1,000,000.")
        threshold = threshold.quantize(Decimal("0.01"))
    webhook_url = (fields.webhook_url or "").strip()
    if webhook_url:
        webhook_url = webhook_url_clean(webhook_url)
    recipients = tuple(sorted(set(fields.recipient_membership_ids)))
    if fields.email_enabled:
        if not recipients:
            raise _invalid("recipients", "Choose at least one member to e-mail.")
        with organization_scope(organization):
            known = set(Membership.objects.filter(pk__in=recipients).values_list("pk", flat=True))
        if known != set(recipients):
            # Another organization's membership id, or one removed meanwhile.
            raise _invalid("recipients", "Choose members of this organization.")
    else:
        recipients = ()
    if not fields.email_enabled and not webhook_url:
        raise _invalid("email_enabled", "Choose e-mail, a webhook, or both.")
    return RuleFields(
        name=name,
        trigger=fields.trigger,
        threshold_usd=threshold,
        email_enabled=bool(fields.email_enabled),
        recipient_membership_ids=recipients,
        webhook_url=webhook_url,
        is_enabled=bool(fields.is_enabled),
    )


def _recipients_set(*, rule: AlertRule, membership_ids: tuple[int, ...]) -> None:
    with organization_scope(rule.organization):
        AlertRecipient.objects.filter(rule=rule).exclude(membership_id__in=membership_ids).delete()
        held = set(AlertRecipient.objects.filter(rule=rule).values_list("membership_id", flat=True))
        AlertRecipient.objects.bulk_create(
            [
                AlertRecipient(organization=rule.organization, rule=rule, membership_id=pk)
                for pk in membership_ids
                if pk not in held
            ]
        )


@transaction.atomic
def alert_rule_create(*, organization: Organization, actor: User, fields: RuleFields) -> AlertRule:
    _admin_ensure(organization=organization, actor=actor)
    clean = _rule_fields_clean(organization=organization, fields=fields)
    rule = AlertRule(
        organization=organization,
        name=clean.name,
        trigger=clean.trigger,
        threshold_usd=clean.threshold_usd,
        email_enabled=clean.email_enabled,
        webhook_url=clean.webhook_url,
        is_enabled=clean.is_enabled,
        created_by=actor,
    )
    rule.full_clean()
    rule.save()
    _recipients_set(rule=rule, membership_ids=clean.recipient_membership_ids)
    logger.info(
        "alert rule created",
        extra={"organization_id": organization.pk, "rule_id": rule.pk, "trigger": rule.trigger},
    )
    return rule


@transaction.atomic
def alert_rule_update(*, rule: AlertRule, actor: User, fields: RuleFields) -> AlertRule:
    organization = rule.organization
    _admin_ensure(organization=organization, actor=actor)
    clean = _rule_fields_clean(organization=organization, fields=fields)
    rule.name = clean.name
    rule.trigger = clean.trigger
    rule.threshold_usd = clean.threshold_usd
    rule.email_enabled = clean.email_enabled
    rule.webhook_url = clean.webhook_url
    rule.is_enabled = clean.is_enabled
    rule.updated_at = timezone.now()
    rule.full_clean()
    rule.save()
    _recipients_set(rule=rule, membership_ids=clean.recipient_membership_ids)
    logger.info(
        "alert rule updated", extra={"organization_id": organization.pk, "rule_id": rule.pk}
    )
    return rule


@transaction.atomic
def alert_rule_enabled_set(*, rule: AlertRule, actor: User, is_enabled: bool) -> AlertRule:
    _admin_ensure(organization=rule.organization, actor=actor)
    if rule.is_enabled != is_enabled:
        rule.is_enabled = is_enabled
        rule.updated_at = timezone.now()
        rule.save(update_fields=["is_enabled", "updated_at"])
    return rule


@transaction.atomic
def alert_rule_delete(*, rule: AlertRule, actor: User) -> None:
    """The rule and its recipients go; its alerts and their delivery log stay (under the
    rule's name), and deliveries still pending are skipped when their task comes."""
    organization = rule.organization
    _admin_ensure(organization=organization, actor=actor)
    rule_id = rule.pk
    rule.delete()
    logger.info(
        "alert rule deleted", extra={"organization_id": organization.pk, "rule_id": rule_id}
    )
