"""Every write of analytics: rollups, anomalies, budgets, organization API keys. The package
splits them by kind; import them from here."""

from analytics.services.anomalies import anomalies_detect, detect_anomalies
from analytics.services.api_keys import (
    API_KEY_PREFIX,
    api_key_create,
    api_key_revoke,
    api_key_used,
    api_key_value_check,
)
from analytics.services.budgets import budget_delete, budget_set
from analytics.services.rollup_retention import rollups_before_delete
from analytics.services.rollups import (
    BUCKET,
    ROLLUP_MODELS,
    RollupRefreshResult,
    bucket_floor,
    local_midnight,
    rollup_buckets_mark,
    rollups_rebuild,
    rollups_refresh,
    rollups_refresh_schedule,
)

__all__ = [
    "API_KEY_PREFIX",
    "BUCKET",
    "ROLLUP_MODELS",
    "RollupRefreshResult",
    "anomalies_detect",
    "api_key_create",
    "api_key_revoke",
    "api_key_used",
    "api_key_value_check",
    "bucket_floor",
    "budget_delete",
    "budget_set",
    "detect_anomalies",
    "local_midnight",
    "rollup_buckets_mark",
    "rollups_before_delete",
    "rollups_rebuild",
    "rollups_refresh",
    "rollups_refresh_schedule",
]
