"""Reads for alerts: rules, fired alerts and the delivery log of one organization, plus the
few cross-organization reads the periodic tasks need (which organizations to look at)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Max, Prefetch, QuerySet

from accounts.models import Membership, Organization
from accounts.selectors import membership_list
from accounts.tenancy import organization_scope
from alerts.models import (
    Alert,
    AlertDelivery,
    AlertRecipient,
    AlertRule,
    DeliveryAttempt,
    DeliveryStatus,
)

DELIVERY_LOG_LIMIT = 200
RECENT_ALERTS_LIMIT = 20


def alert_rule_list(*, organization: Organization) -> list[AlertRule]:
    """The organization's rules by name, each with `recipient_count` and `last_fired_at`."""
    with organization_scope(organization):
        return list(
            AlertRule.objects.annotate(
                recipient_count=Count("recipients", distinct=True),
                last_fired_at=Max("alerts__fired_at"),
            ).order_by("name", "id")
        )


def alert_rule_get(*, organization: Organization, rule_id: int) -> AlertRule | None:
    """A rule of the organization, with its recipients, or None (also for another org's)."""
    with organization_scope(organization):
        return (
            AlertRule.objects.prefetch_related(
                Prefetch(
                    "recipients",
                    queryset=AlertRecipient.all_orgs.select_related("membership__user"),
                )
            )
            .filter(pk=rule_id)
            .first()
        )


def alert_rule_recipient_membership_ids(*, rule: AlertRule) -> list[int]:
    with organization_scope(rule.organization):
        return list(
            AlertRecipient.objects.filter(rule=rule)
            .order_by("membership_id")
            .values_list("membership_id", flat=True)
        )


def alert_rule_recipient_emails(*, rule: AlertRule) -> list[str]:
    """Addresses of the rule's recipients who are still members and active users."""
    with organization_scope(rule.organization):
        return sorted(
            AlertRecipient.objects.filter(rule=rule, membership__user__is_active=True)
            .values_list("membership__user__email", flat=True)
            .distinct()
        )


def recipient_choices(*, organization: Organization) -> list[Membership]:
    """Who can receive a rule's e-mail: every member, owners first."""
    return list(membership_list(organization=organization))


def alert_rules_enabled(*, organization: Organization) -> list[AlertRule]:
    with organization_scope(organization):
        return list(AlertRule.objects.filter(is_enabled=True).order_by("pk"))


def alert_recent_list(
    *, organization: Organization, limit: int = RECENT_ALERTS_LIMIT
) -> list[Alert]:
    with organization_scope(organization):
        return list(
            Alert.objects.prefetch_related(
                Prefetch("deliveries", queryset=AlertDelivery.all_orgs.order_by("channel"))
            ).order_by("-fired_at", "-id")[:limit]
        )


def delivery_attempt_list(
    *, organization: Organization, limit: int = DELIVERY_LOG_LIMIT
) -> list[DeliveryAttempt]:
    """The newest attempts, each with its delivery and alert (the log page's rows)."""
    with organization_scope(organization):
        return list(
            DeliveryAttempt.objects.select_related("delivery__alert").order_by(
                "-attempted_at", "-id"
            )[:limit]
        )


def delivery_unfinished_list(*, organization: Organization) -> list[AlertDelivery]:
    """Deliveries still being retried, and the failed ones of the recent alerts."""
    with organization_scope(organization):
        return list(
            AlertDelivery.objects.filter(
                status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.FAILED]
            )
            .select_related("alert")
            .order_by("-created_at", "-id")[:DELIVERY_LOG_LIMIT]
        )


def delivery_stale_list(*, updated_before: datetime, limit: int = 500) -> QuerySet[AlertDelivery]:
    """Unfinished deliveries nobody has touched since `updated_before`, across organizations
    (their task was lost: the broker was down at enqueue time, or a worker died)."""
    return AlertDelivery.all_orgs.filter(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
        updated_at__lt=updated_before,
    ).order_by("updated_at")[:limit]


def organization_ids_with_enabled_rules() -> list[int]:
    """Cross-organization (the evaluation fan-out): the organizations that have a rule on."""
    return list(
        AlertRule.all_orgs.filter(is_enabled=True)
        .order_by("organization_id")
        .values_list("organization_id", flat=True)
        .distinct()
    )
