"""Query parameters of the local API: parsed strictly, so a bad one is a 400 naming it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo

from starlette.datastructures import QueryParams

from clawtrace import reports
from clawtrace.sources import SOURCES

MAX_FILTER_LEN = 512
FILTER_PARAMS = frozenset({"range", "project", "model", "agent", "source"})


class ParamError(ValueError):
    """A query parameter the API cannot accept; `param` names it for the 400 body."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def report_error_to_param(exc: reports.ReportError) -> ParamError:
    """reports.ReportError messages start with the parameter's name ("range: ...")."""
    text = str(exc)
    name, sep, _ = text.partition(":")
    return ParamError(name.strip() if sep and name.strip().isidentifier() else "query", text)


def _text(params: QueryParams, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_FILTER_LEN or any(ord(c) < 32 for c in value):
        raise ParamError(name, f"{name} must be plain text of at most {MAX_FILTER_LEN} characters")
    return value


# Extent of the store for `range=all` where a bounded range is needed: (first, last) turn ms.
Extent = Callable[[], tuple[int | None, int | None]]


def _local_day(ms: int, tz: tzinfo) -> date:
    return datetime.fromtimestamp(ms / 1000, tz).date()


def all_bounds(
    first_ms: int | None, last_ms: int | None, tz: tzinfo, now: datetime
) -> tuple[int, int]:
    """`range=all` as local days: from the day of the first stored turn to the end of today (or
    of the last turn's day, should a clock have put one later). An empty store is today."""
    today = now.astimezone(tz).date()
    first = min(today, _local_day(first_ms, tz)) if first_ms is not None else today
    last = max(today, _local_day(last_ms, tz)) if last_ms is not None else today
    return (
        reports.local_midnight_ms(first, tz),
        reports.local_midnight_ms(last + timedelta(days=1), tz),
    )


def range_bounds(
    value: str | None,
    tz: tzinfo,
    now: datetime,
    default: str,
    bounded: bool = False,
    extent: Extent | None = None,
) -> tuple[int | None, int | None]:
    """The range as [since, until) UTC ms; None for an open end.

    `bounded` (a time series) needs both ends: `all` then spans the store's `extent`, and
    every range must lie within the days a turn can have (reports.FIRST_DAY..LAST_DAY), so a
    far-off one such as 36600d is a 400 rather than a century of empty points.
    """
    text = value if value else default
    try:
        since, until = reports.range_parse(text, tz, now)
    except reports.ReportError as exc:
        raise report_error_to_param(exc) from None
    if not bounded:
        return since, until
    if since is None and until is None and extent is not None:
        since, until = all_bounds(*extent(), tz, now)
    if since is None or until is None:
        raise ParamError("range", "range must be bounded here: 7d, 30d, 90d, today, month or dates")
    lo = reports.local_midnight_ms(reports.FIRST_DAY, tz)
    hi = reports.local_midnight_ms(reports.LAST_DAY + timedelta(days=1), tz)
    if since < lo or until > hi:
        raise ParamError(
            "range",
            f"range {text!r} must lie between {reports.FIRST_DAY.isoformat()} and "
            f"{reports.LAST_DAY.isoformat()}",
        )
    return since, until


SERIES_GROUPINGS = ("hour", "day", "week", "month", "auto")
# The longest range each grouping may cover, in days, so that a chart stays a chart: hourly
# points for three months at most, daily ones for 400 days, weekly ones for ten years (520
# points); months are bounded by the range itself (2000..2099: 1200 points at most).
SERIES_MAX_DAYS = {"hour": 92, "day": 400, "week": 3653}
# What `by=auto` picks: days up to three months, weeks up to two years, months beyond.
AUTO_DAY_MAX_DAYS = 92
AUTO_WEEK_MAX_DAYS = 731


def series_grouping(by: str, since_ms: int, until_ms: int) -> str:
    """The grouping of a time series over [since, until): `auto` resolved, limits checked."""
    days = (until_ms - since_ms) / 86_400_000
    if by == "auto":
        if days <= AUTO_DAY_MAX_DAYS:
            return "day"
        return "week" if days <= AUTO_WEEK_MAX_DAYS else "month"
    limit = SERIES_MAX_DAYS.get(by)
    if limit is not None and days > limit:
        if by == "hour":
            raise ParamError("by", f"by=hour is limited to ranges of {limit} days or less")
        raise ParamError(
            "range",
            f"range may span at most {limit} days with by={by}; "
            "use by=week, by=month or by=auto for longer ranges",
        )
    return by


def filters_parse(
    params: QueryParams,
    tz: tzinfo,
    now: datetime,
    default_range: str = "30d",
    bounded: bool = False,
    extent: Extent | None = None,
) -> reports.Filters:
    source = _text(params, "source")
    if source is not None and source not in SOURCES:
        raise ParamError("source", f"source must be one of {', '.join(SOURCES)}")
    since, until = range_bounds(params.get("range"), tz, now, default_range, bounded, extent)
    return reports.Filters(
        since_ms=since,
        until_ms=until,
        project=_text(params, "project"),
        model=_text(params, "model"),
        agent=_text(params, "agent"),
        source=source,
    )


def choice_parse(params: QueryParams, name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name) or default
    if value not in choices:
        raise ParamError(name, f"{name} must be one of {', '.join(choices)}")
    return value


def int_parse(params: QueryParams, name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParamError(name, f"{name} must be an integer between {lo} and {hi}") from None
    if not lo <= value <= hi:
        raise ParamError(name, f"{name} must be an integer between {lo} and {hi}")
    return value


def unknown_params_check(params: QueryParams, allowed: frozenset[str] | set[str]) -> None:
    for key in params:
        if key not in allowed:
            raise ParamError(
                key, f"unknown parameter {key!r}; this endpoint takes {', '.join(sorted(allowed))}"
            )
    for key in allowed:
        if len(params.getlist(key)) > 1:
            raise ParamError(key, f"{key} was given more than once")


def utc_now() -> datetime:
    return datetime.now(UTC)
