"""Query parameters of the local API: parsed strictly, so a bad one is a 400 naming it."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from starlette.datastructures import QueryParams

from clawtrace import reports

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


def range_bounds(
    value: str | None, tz: tzinfo, now: datetime, default: str, bounded: bool = False
) -> tuple[int | None, int | None]:
    text = value if value else default
    try:
        since, until = reports.range_parse(text, tz, now)
    except reports.ReportError as exc:
        raise report_error_to_param(exc) from None
    if bounded and (since is None or until is None):
        raise ParamError("range", "range must be bounded here: 7d, 30d, 90d, today, month or dates")
    if since is not None and until is not None and (until - since) > 400 * 86_400_000 and bounded:
        raise ParamError("range", "range may span at most 400 days here")
    return since, until


def filters_parse(
    params: QueryParams,
    tz: tzinfo,
    now: datetime,
    default_range: str = "30d",
    bounded: bool = False,
) -> reports.Filters:
    source = _text(params, "source")
    if source is not None and source not in ("claude-code", "openclaw"):
        raise ParamError("source", "source must be claude-code or openclaw")
    since, until = range_bounds(params.get("range"), tz, now, default_range, bounded)
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
