"""The dashboard's tables: one definition per table (its columns and the selector that fills
it), shared by the page and its CSV export, so that a downloaded table always holds exactly the
rows shown under the same filters (`?format=csv&table=<name>` on any dashboard URL).

A table's rows are the selector's rows as they are; columns name the keys to show and how to
format them (the template filters in `analytics/templatetags/usage_format.py`). The links of
the first column drill down and keep the page's filters.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from accounts.models import Organization
from analytics import selectors
from analytics.selectors.dashboard_extra import member_plan_advice

# How a column's values look on the page (the CSV always has the raw value).
KINDS = (
    "text",
    "code",
    "id",
    "money",
    "tokens",
    "count",
    "share",
    "ratio",
    "percent",
    "measure",
    "datetime",
    "list",
    "boolean",
)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"
    # Left out on a phone (the CSV and the wide page keep it): what a narrow table can spare.
    is_optional: bool = False
    # What to show for an empty value (None or ""), e.g. "(not shared)" for a missing project.
    blank: str = "\u2013"  # an en dash
    # Ids that only a script needs (the CSV has them; the page links by them instead).
    is_csv_only: bool = False


@dataclass
class Table:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    empty_text: str
    # The href of each row's first cell (None: not a link), in row order.
    links: list[str | None] = field(default_factory=list)
    csv_url: str = ""
    # Sums and notes the page shows beside the table (cache savings, tool totals...).
    extra: dict[str, Any] = field(default_factory=dict)
    # The page shows the first rows only (the CSV has them all), e.g. the newest anomalies,
    # and says which ones they are: "the newest 10 of 40".
    page_limit: int | None = None
    shown_order: str = "newest"

    @property
    def page_columns(self) -> tuple[Column, ...]:
        return tuple(column for column in self.columns if not column.is_csv_only)

    @property
    def linked_rows(self) -> list[tuple[dict[str, Any], str | None]]:
        links = self.links or [None] * len(self.rows)
        return list(zip(self.rows, links, strict=True))[: self.page_limit]

    @property
    def rows_hidden(self) -> int:
        """How many rows the page leaves to the CSV."""
        return max(len(self.rows) - self.page_limit, 0) if self.page_limit else 0

    def csv_text(self) -> str:
        """The rows as CSV, one column per `columns` key, headed by the keys."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([column.key for column in self.columns])
        for row in self.rows:
            writer.writerow([csv_value(row.get(column.key)) for column in self.columns])
        return out.getvalue()


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(str(item) for item in value)
    if isinstance(value, dict):
        return ";".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class UsagePage:
    """What every table of one page is read with: the organization, the parsed filter, the
    query the filter came from (kept on every link), the series grouping and the page's URL."""

    organization: Organization
    filters: selectors.UsageFilter
    query: dict[str, str]
    by: str
    path: str
    # Which table the page leaves out because the page is about one of them (a member's page
    # needs no breakdown by member).
    fixed: str = ""

    def url(self, path: str | None = None, **changes: str | None) -> str:
        """`path` (default: this page) with this page's query, changed by `changes` (None
        removes a key)."""
        query = dict(self.query)
        for key, value in changes.items():
            if value is None:
                query.pop(key, None)
            else:
                query[key] = value
        text = urlencode(query)
        return (path or self.path) + (f"?{text}" if text else "")

    def drill(self, view: str, *args: Any, **changes: str | None) -> str:
        """A drill-down page of the same organization, keeping the filters (but the one the
        target page fixes itself)."""
        path = reverse(f"dashboard:{view}", args=[self.organization.slug, *args])
        return self.url(path, **changes)

    def csv_url(self, table: str) -> str:
        return self.url(format="csv", table=table, by=self.by)


_COST_COLUMNS = (
    Column("cost_usd", "Cost", "money"),
    Column("turns", "Turns", "count", is_optional=True),
    Column("input_tokens", "Input", "tokens", is_optional=True),
    Column("output_tokens", "Output", "tokens", is_optional=True),
    Column("cache_read_tokens", "Cache read", "tokens", is_optional=True),
    Column("cache_write_tokens", "Cache write", "tokens", is_optional=True),
    Column("unpriced_tokens", "Unpriced tokens", "tokens", is_optional=True),
)


# Beside a share bar in half the page's width there is room for the main figures only; the
# CSV has all of them.
_BREAKDOWN_COST_COLUMNS = tuple(
    column
    if column.key in ("cost_usd", "turns")
    else Column(column.key, column.label, column.kind, is_csv_only=True)
    for column in _COST_COLUMNS
)


# --- Usage over time ------------------------------------------------------------------------------


def series_table(page: UsagePage) -> Table:
    points = selectors.usage_series(
        organization=page.organization, filters=page.filters, by=page.by
    )
    label = {"hour": "Hour", "day": "Day", "week": "Week of"}[page.by]
    return Table(
        name="series",
        title=f"Cost by {page.by}",
        columns=(Column(page.by, label, "code"), *_COST_COLUMNS),
        rows=points,
        empty_text="No usage in this range.",
    )


# --- Breakdowns -----------------------------------------------------------------------------------

BREAKDOWNS = {
    # table name: (grouping, title, first column label, what an empty key means)
    "members": ("member", "By member", "Member", "(no member)"),
    "devices": ("device", "By device", "Device", "(unknown device)"),
    "projects": ("project", "By project", "Project", "(not shared)"),
    "models": ("model", "By model", "Model", "(unknown)"),
    "agents": ("agent", "By agent", "Agent", "(main)"),
}


def _breakdown_link(page: UsagePage, by: str, row: dict[str, Any]) -> str | None:
    if by == "member":
        return page.drill("member", row["member_id"], member=None) if row["member_id"] else None
    if by == "device":
        return page.drill("device", row["device_id"], device=None) if row["device_id"] else None
    if by == "project":
        return page.drill("project", row["project"], project=None) if row["project"] else None
    # Models and agents have no page of their own: the link narrows this page to them.
    return page.url(**{by: row[by]}) if row[by] else None


# A breakdown on the page stops at its most expensive rows: a team of sixty laptops reads the
# top of the list, the CSV holds all of it, and each row costs the page's render time.
BREAKDOWN_SHOWN = 15


def breakdown_table(page: UsagePage, name: str) -> Table:
    by, title, label, blank = BREAKDOWNS[name]
    rows = selectors.usage_breakdown(organization=page.organization, filters=page.filters, by=by)
    extra_keys = {"device": ("device_id",), "member": ("member_id",)}.get(by, ())
    columns = (
        Column(by, label, "text", blank=blank),
        Column("share", "Share", "share", is_optional=True),
        *_BREAKDOWN_COST_COLUMNS,
        *(Column(key, key, "code", is_csv_only=True) for key in extra_keys),
    )
    return Table(
        name=name,
        title=title,
        columns=columns,
        rows=rows,
        empty_text="No usage in this range.",
        links=[_breakdown_link(page, by, row) for row in rows],
        page_limit=BREAKDOWN_SHOWN,
        shown_order="most expensive",
    )


# --- Sessions, tools, cache -----------------------------------------------------------------------

SESSIONS_SHOWN = 10


def sessions_table(page: UsagePage) -> Table:
    rows = selectors.session_top(
        organization=page.organization, filters=page.filters, n=SESSIONS_SHOWN
    )
    return Table(
        name="sessions",
        title="Most expensive sessions",
        columns=(
            Column("session", "Session", "id"),
            Column("cost_usd", "Cost", "money"),
            Column("turns", "Turns", "count", is_optional=True),
            Column("member", "Member", is_optional=True, blank="(no member)"),
            Column("device", "Device", is_optional=True),
            Column("project", "Project", is_optional=True, blank="(not shared)"),
            Column("models", "Models", "list", is_optional=True),
            Column("started_at", "Started", "datetime"),
            Column("agent", "Agent", is_csv_only=True),
            Column("source", "Source", is_csv_only=True),
            Column("device_id", "Device id", is_csv_only=True),
            Column("ended_at", "Ended", "datetime", is_csv_only=True),
            Column("input_tokens", "Input", "tokens", is_csv_only=True),
            Column("output_tokens", "Output", "tokens", is_csv_only=True),
            Column("cache_read_tokens", "Cache read", "tokens", is_csv_only=True),
            Column("cache_write_tokens", "Cache write", "tokens", is_csv_only=True),
            Column("unpriced_tokens", "Unpriced tokens", "tokens", is_csv_only=True),
        ),
        rows=rows,
        empty_text="No sessions in this range.",
        links=[page.drill("session", row["session"], source=row["source"]) for row in rows],
    )


def tools_table(page: UsagePage) -> Table:
    found = selectors.tool_costs(organization=page.organization, filters=page.filters)
    return Table(
        name="tools",
        title="Cost per tool",
        columns=(
            Column("tool", "Tool", "code"),
            Column("calls", "Calls", "count", is_optional=True),
            Column("turns", "Turns", "count", is_optional=True),
            Column("cost_usd", "Cost", "money"),
        ),
        rows=found["rows"],
        empty_text="No tool calls in this range.",
        extra={
            "no_tool_cost_usd": found["no_tool_cost_usd"],
            "total_cost_usd": found["total_cost_usd"],
        },
    )


def cache_table(page: UsagePage) -> Table:
    found = selectors.cache_savings(organization=page.organization, filters=page.filters)
    return Table(
        name="cache",
        title="Cache savings",
        columns=(
            Column("model", "Model", "code"),
            Column("saved_usd", "Saved", "money"),
            Column("write_cost_usd", "Writes", "money", is_optional=True),
            Column("net_saved_usd", "Net", "money"),
            Column("hit_ratio", "Hit ratio", "ratio", is_csv_only=True),
            Column("cache_read_tokens", "Cache read", "tokens", is_csv_only=True),
            Column("cache_write_5m_tokens", "Write 5 min", "tokens", is_csv_only=True),
            Column("cache_write_1h_tokens", "Write 1 h", "tokens", is_csv_only=True),
        ),
        rows=found["rows"],
        empty_text="No cached tokens in this range.",
        extra={"totals": found["totals"]},
    )


# --- Anomalies, budgets, plans --------------------------------------------------------------------


# What an anomaly's value counts, by kind: dollars, or turns and tokens in an hour.
_ANOMALY_UNITS = {"hourly_requests": "turns", "hourly_tokens": "tokens"}
ANOMALIES_SHOWN = 10


def anomalies_table(page: UsagePage) -> Table:
    anomalies = selectors.anomaly_list(organization=page.organization, filters=page.filters)
    rows = [
        {
            "kind": anomaly.kind,
            "what": anomaly.get_kind_display(),
            "window_start": anomaly.window_start,
            "window_end": anomaly.window_end,
            "unit": _ANOMALY_UNITS.get(anomaly.kind, "usd"),
            "value": anomaly.value,
            "threshold": anomaly.threshold,
            "baseline": anomaly.baseline,
            "subject": anomaly.subject,
            "detected_at": anomaly.detected_at,
        }
        for anomaly in anomalies
    ]
    links = []
    for anomaly in anomalies:
        session = (anomaly.details or {}).get("session_id")
        source = (anomaly.details or {}).get("source")
        links.append(page.drill("session", session, source=source) if session else None)
    return Table(
        name="anomalies",
        title="Anomalies",
        columns=(
            Column("what", "What"),
            Column("window_start", "From", "datetime"),
            Column("window_end", "To", "datetime", is_optional=True),
            Column("value", "Value", "measure"),
            Column("threshold", "Limit", "measure", is_optional=True),
            Column("baseline", "Usual", "measure", is_optional=True),
            Column("unit", "Unit", is_csv_only=True),
            Column("kind", "Kind", is_csv_only=True),
            Column("subject", "Subject", is_csv_only=True),
            Column("detected_at", "Detected", "datetime", is_csv_only=True),
        ),
        rows=rows,
        empty_text="No anomalies in this range.",
        links=links,
        page_limit=ANOMALIES_SHOWN,
    )


def budgets_table(page: UsagePage) -> Table:
    rows = [
        {
            **budget,
            "subject": budget["member"] or budget["project"] or page.organization.name,
            "forecast_low_usd": budget["forecast"]["low_usd"],
            "forecast_expected_usd": budget["forecast"]["expected_usd"],
            "forecast_high_usd": budget["forecast"]["high_usd"],
        }
        for budget in selectors.budget_status_list(organization=page.organization)
    ]
    return Table(
        name="budgets",
        title="Budgets this month",
        columns=(
            Column("scope", "For"),
            Column("subject", "Subject"),
            Column("monthly_usd", "Budget", "money"),
            Column("spent_usd", "Spent", "money"),
            Column("percent_used", "Used", "percent"),
            Column("forecast_expected_usd", "Forecast", "money"),
            Column("forecast_low_usd", "Forecast low", "money", is_optional=True),
            Column("forecast_high_usd", "Forecast high", "money", is_optional=True),
            Column("forecast_percent", "Forecast used", "percent", is_optional=True),
        ),
        rows=rows,
        empty_text="No budgets yet.",
    )


def plans_table(page: UsagePage) -> Table:
    rows = member_plan_advice(organization=page.organization)
    return Table(
        name="plans",
        title="Subscriptions against API prices, this month",
        columns=(
            Column("member", "Member"),
            Column("subscription_label", "Plan", is_optional=True),
            Column("subscription_usd", "Price", "money", is_optional=True, blank="per token"),
            Column("api_equivalent_usd", "At API prices", "money", is_optional=True),
            # A phone keeps what the table answers: who, which plan, what it would save.
            Column("api_equivalent_forecast_usd", "Month forecast", "money", is_optional=True),
            Column("cheapest_label", "Cheapest"),
            Column("switch_saves_usd", "Switch saves", "money"),
            Column("other_api_usd", "Other agents", "money", is_csv_only=True),
            Column("subscription_plan", "Plan code", is_csv_only=True),
            Column("cheapest_plan", "Cheapest plan code", is_csv_only=True),
            Column("current_usd", "Costs now", "money", is_csv_only=True),
            Column("member_id", "Member id", is_csv_only=True),
        ),
        rows=rows,
        empty_text="No members.",
        links=[page.drill("member", row["member_id"], member=None) for row in rows],
        # (Most expensive at API prices first: where a plan decision matters most.)
        page_limit=BREAKDOWN_SHOWN,
        shown_order="most expensive",
    )


TABLE_BUILDERS: dict[str, Callable[[UsagePage], Table]] = {
    "series": series_table,
    **{name: (lambda page, name=name: breakdown_table(page, name)) for name in BREAKDOWNS},
    "sessions": sessions_table,
    "tools": tools_table,
    "cache": cache_table,
    "anomalies": anomalies_table,
    "budgets": budgets_table,
    "plans": plans_table,
}


# --- One session ----------------------------------------------------------------------------------


def session_tables(session: dict[str, Any]) -> dict[str, Table]:
    """The tables of a session's page from `session_detail` (metadata only: no text exists
    on this side to show)."""
    turns = [{**turn, "tool_names": turn["tools"]} for turn in session["turns"]]
    models = [{"model": name, "turns": count} for name, count in session["models"].items()]
    tools = [{"tool": name, "calls": count} for name, count in session["tools"].items()]
    return {
        "turns": Table(
            name="turns",
            title="Turns",
            columns=(
                Column("occurred_at", "Time", "datetime"),
                Column("model", "Model", "code"),
                Column("cost_usd", "Cost", "money", blank="unpriced"),
                Column("input_tokens", "Input", "tokens", is_optional=True),
                Column("output_tokens", "Output", "tokens", is_optional=True),
                Column("cache_read_tokens", "Cache read", "tokens", is_optional=True),
                Column("cache_write_tokens", "Cache write", "tokens", is_optional=True),
                Column("tool_names", "Tools", "list"),
                Column("agent", "Agent", is_optional=True, blank="(main)"),
                Column("is_sidechain", "Side chain", "boolean", is_optional=True),
            ),
            rows=turns,
            empty_text="No turns.",
        ),
        "models": Table(
            name="models",
            title="Models",
            columns=(Column("model", "Model", "code"), Column("turns", "Turns", "count")),
            rows=models,
            empty_text="No models.",
        ),
        "tools": Table(
            name="tools",
            title="Tools",
            columns=(Column("tool", "Tool", "code"), Column("calls", "Calls", "count")),
            rows=tools,
            empty_text="No tool calls.",
        ),
    }
