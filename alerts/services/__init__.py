"""Writes for alerts, by concern: rules (`rules`), firing and delivering alerts (`delivery`),
evaluating the rules against analytics' anomalies and spend (`evaluation`). Import them from
here."""

from alerts.services.delivery import (
    UNITS,
    AlertText,
    DeliveryRetryableError,
    Firing,
    alert_deliveries_requeue,
    alert_deliveries_requeue_stale,
    alert_delivery_send,
    alert_fire,
    alert_text,
    alert_webhook_body,
)
from alerts.services.evaluation import ANOMALY_LOOKBACK, organization_alerts_evaluate
from alerts.services.rules import (
    RULE_NAME_MAX_LENGTH,
    THRESHOLD_MAX_USD,
    RuleFields,
    alert_rule_create,
    alert_rule_delete,
    alert_rule_enabled_set,
    alert_rule_update,
    webhook_url_clean,
)

__all__ = [
    "ANOMALY_LOOKBACK",
    "RULE_NAME_MAX_LENGTH",
    "THRESHOLD_MAX_USD",
    "UNITS",
    "AlertText",
    "DeliveryRetryableError",
    "Firing",
    "RuleFields",
    "alert_deliveries_requeue",
    "alert_deliveries_requeue_stale",
    "alert_delivery_send",
    "alert_fire",
    "alert_rule_create",
    "alert_rule_delete",
    "alert_rule_enabled_set",
    "alert_rule_update",
    "alert_text",
    "alert_webhook_body",
    "organization_alerts_evaluate",
    "webhook_url_clean",
]
