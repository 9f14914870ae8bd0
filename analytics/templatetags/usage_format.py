"""Formatting for the dashboard: money, token counts, shares and the cells of a table. The
selectors hand over ready numbers (USD as floats of exact picodollar sums, counts as ints);
these only decide how they read."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from analytics.tables import Column

register = template.Library()

# What an empty cell shows: an en dash, as the other pages do.
NO_VALUE = "\u2013"
NBSP = "\u00a0"


@register.filter
def usd(value: Any) -> str:
    """$1,234.56; a non-zero amount under half a cent reads "<$0.01" rather than "$0.00"."""
    if value is None or value == "":
        return NO_VALUE
    amount = float(value)
    if 0 < abs(amount) < 0.005:
        return "<$0.01" if amount > 0 else "-<$0.01"
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


@register.filter
def tokens(value: Any) -> str:
    """Token counts in the agent's short form: 950, 12.3k, 4.56M, 1.2B."""
    if value is None or value == "":
        return NO_VALUE
    count = int(value)
    for limit, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if abs(count) >= limit:
            scaled = count / limit
            digits = 2 if abs(scaled) < 10 else 1 if abs(scaled) < 100 else 0
            return f"{scaled:.{digits}f}{suffix}"
    return str(count)


@register.filter
def count(value: Any) -> str:
    if value is None or value == "":
        return NO_VALUE
    return f"{int(value):,}"


@register.filter
def share(value: Any) -> str:
    """A fraction (0.25) as a percentage (25%)."""
    if value is None or value == "":
        return NO_VALUE
    percent = float(value) * 100
    return f"{percent:.1f}%" if 0 < percent < 10 else f"{percent:.0f}%"


@register.filter
def percent(value: Any) -> str:
    """A percentage already (87.5) as text (88%)."""
    if value is None or value == "":
        return NO_VALUE
    return f"{float(value):.0f}%"


@register.filter
def bar_width(value: Any) -> str:
    """A percentage for a CSS width: clamped to 0..100, with a dot as decimal separator
    whatever the locale."""
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        number = 0.0
    return f"{min(max(number, 0.0), 100.0):.1f}"


@register.filter
def share_width(value: Any) -> str:
    """A fraction (0.25) as a CSS width percentage (25.0)."""
    try:
        return bar_width(float(value or 0) * 100)
    except (TypeError, ValueError):
        return "0.0"


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return parse_datetime(value)
    return None


@register.filter
def moment(value: Any, organization=None) -> SafeString | str:
    """A time in the organization's zone as `<time>`, e.g. "3 Mar, 14:05"."""
    when = _moment(value)
    if when is None:
        return NO_VALUE
    zone = getattr(organization, "zone", None) or timezone.get_current_timezone()
    local = when.astimezone(zone)
    # The year only when it is not this one: tables have little room.
    this_year = timezone.now().astimezone(zone).year
    # No-break spaces inside the day: a narrow table may wrap a time after its comma only.
    text = NBSP.join(
        [str(local.day), f"{local:%b}", *([] if local.year == this_year else [str(local.year)])]
    )
    return format_html(
        '<time datetime="{}" title="{}">{}, {}</time>',
        when.isoformat(),
        f"{local.day} {local:%b %Y, %H:%M} ({zone})",
        text,
        f"{local:%H:%M}",
    )


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


@register.simple_tag
def usage_cell(row: dict[str, Any], column: Column, organization=None) -> SafeString | str:
    """One cell's content by the column's kind (`analytics.tables.KINDS`)."""
    value = row.get(column.key)
    kind = column.kind
    if kind == "boolean":
        return "yes" if value else "no"
    if _blank(value):
        return format_html('<span class="muted">{}</span>', column.blank)
    if kind == "money":
        return usd(value)
    if kind == "tokens":
        return format_html('<span title="{}">{}</span>', count(value), tokens(value))
    if kind == "count":
        return count(value)
    if kind == "share":
        return format_html(
            '<span class="share"><span class="share-bar" style="width: {}%"></span>'
            '<span class="share-text">{}</span></span>',
            share_width(value),
            share(value),
        )
    if kind == "measure":
        # An anomaly's value, limit or baseline: dollars, or a count of its row's unit.
        unit = row.get("unit", "usd")
        return usd(value) if unit == "usd" else f"{count(value)} {unit}"
    if kind == "ratio":
        return share(value)
    if kind == "percent":
        return percent(value)
    if kind == "datetime":
        return moment(value, organization)
    if kind == "list":
        return format_html_join(" ", '<code class="tag">{}</code>', ((item,) for item in value))
    if kind == "id":
        # Session ids are 36-character UUIDs: the first block tells them apart on a page.
        text = str(value)
        short = text if len(text) <= 12 else text[:8] + "…"
        return format_html('<code title="{}">{}</code>', text, short)
    if kind == "code":
        if isinstance(value, Decimal):
            value = f"{value.normalize():f}"
        return format_html("<code>{}</code>", value)
    return str(value)


@register.simple_tag
def usage_row_name(row: dict[str, Any], column: Column, organization=None) -> SafeString | str:
    """A row's first cell. A label of one word (an address, a device, a project, a model)
    stays on one line and is cut with an ellipsis where its column has no room, whole in its
    title, so that a long address never pushes the figures out of the card; a phrase ("Daily
    spend over the limit") wraps between its words instead."""
    content = usage_cell(row, column, organization)
    value = row.get(column.key)
    if _blank(value) or column.kind not in ("text", "code") or " " in str(value):
        return content
    return format_html('<span class="row-name" title="{}">{}</span>', value, content)


@register.filter
def is_numeric(column: Column) -> bool:
    return column.kind in {"money", "tokens", "count", "ratio", "percent", "measure"}


@register.filter
def cell_class(column: Column) -> str:
    """The classes of a column's cells: figures right-aligned, what a phone leaves out, and
    times (which may wrap between the day and the hour)."""
    classes = []
    if is_numeric(column):
        classes.append("num")
    if column.is_optional:
        classes.append("col-optional")
    if column.kind == "datetime":
        classes.append("cell-time")
    return " ".join(classes)
