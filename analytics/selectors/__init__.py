"""Every read the dashboard and the organization API make, scoped to one organization and
reading the rollups (never the raw events, but for the drill-down into one session).

Each function takes the organization and, for usage, one `UsageFilter` (parsed from query
parameters by `usage_filter_parse`, whose errors name the parameter), and enters the
organization's scope itself. The package splits the reads by kind; import them from here.
"""

from analytics.selectors.filters import (
    DEFAULT_RANGE,
    FILTER_PARAMS,
    RANGE_PRESETS,
    InvalidParameter,
    UsageFilter,
    usage_filter_parse,
    usage_range_bounds,
)
from analytics.selectors.overview import (
    budget_status_list,
    member_plan_comparison,
    month_forecast,
    period_totals,
)
from analytics.selectors.records import (
    anomaly_list,
    anomaly_recent_list,
    api_key_get,
    api_key_get_by_value,
    api_key_list,
    project_count,
    session_detail,
)
from analytics.selectors.usage import (
    DIMENSION_GROUPINGS,
    GROUPINGS,
    SERIES_GROUPINGS,
    TIME_GROUPINGS,
    TOTAL_KEYS,
    cache_savings,
    daily_rollups_ready,
    session_count,
    session_top,
    tool_costs,
    usage_breakdown,
    usage_report,
    usage_series,
    usage_totals,
)
from analytics.selectors.visibility import hidden_projects, projects_shown, rows_visible

__all__ = [
    "DEFAULT_RANGE",
    "DIMENSION_GROUPINGS",
    "FILTER_PARAMS",
    "GROUPINGS",
    "RANGE_PRESETS",
    "SERIES_GROUPINGS",
    "TIME_GROUPINGS",
    "TOTAL_KEYS",
    "InvalidParameter",
    "UsageFilter",
    "anomaly_list",
    "anomaly_recent_list",
    "api_key_get",
    "api_key_get_by_value",
    "api_key_list",
    "budget_status_list",
    "cache_savings",
    "daily_rollups_ready",
    "hidden_projects",
    "member_plan_comparison",
    "month_forecast",
    "period_totals",
    "project_count",
    "projects_shown",
    "rows_visible",
    "session_count",
    "session_detail",
    "session_top",
    "tool_costs",
    "usage_breakdown",
    "usage_filter_parse",
    "usage_range_bounds",
    "usage_report",
    "usage_series",
    "usage_totals",
]
