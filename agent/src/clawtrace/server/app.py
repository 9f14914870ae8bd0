"""The Starlette app behind `clawtrace serve`: a read-only JSON API and the local page.

Every endpoint opens its own read connection to the store (SQLite in WAL mode lets readers run
while the watcher writes), validates its query string strictly (unknown or malformed parameter:
400 with a JSON body naming it), and answers through `clawtrace.reports`. No CORS headers are
ever sent; the Host-header middleware refuses anything not addressed to us.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from clawtrace import __version__, reports, store
from clawtrace.alerts.engine import alerts_fired_list
from clawtrace.alerts.settings import AlertSettings
from clawtrace.scan import scan_unfinished
from clawtrace.server import queries
from clawtrace.server.params import (
    FILTER_PARAMS,
    SERIES_GROUPINGS,
    ParamError,
    choice_parse,
    filters_parse,
    int_parse,
    range_bounds,
    report_error_to_param,
    series_grouping,
    unknown_params_check,
    utc_now,
)
from clawtrace.server.security import (
    HostCheckMiddleware,
    allowed_hosts,
    bearer_from_header,
    token_matches,
)

LIST_PARAMS = FILTER_PARAMS


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass
class ServerState:
    """What the handlers need; `now` is injectable so tests pin the clock."""

    db_path: Path
    tz: tzinfo
    mode: str = "auto"
    alert_settings: AlertSettings = field(default_factory=AlertSettings)
    token_hash: str | None = None
    now: Callable[[], datetime] = utc_now
    started_at: datetime | None = None
    # Filled in by the runner: the watcher's status and a hook to request a rescan.
    status: Callable[[], dict[str, Any]] = dict
    rescan: Callable[[], None] | None = None
    cache: ResponseCache = field(default_factory=lambda: ResponseCache())


class ResponseCache:
    """Answers of the heavier endpoints, reused while the store has not been rescanned.

    The page reloads everything whenever the store changes and the menu bar polls; on a big
    store the breakdowns and the anomaly scan take a while, and between two scans their answer
    cannot change, except with the clock: entries also expire after CACHE_SECONDS.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


CACHE_SECONDS = 10


def _error(status: int, message: str, param: str | None = None) -> OrjsonResponse:
    body: dict[str, Any] = {"error": message}
    if param is not None:
        body["parameter"] = param
    return OrjsonResponse(body, status_code=status)


def _conn(state: ServerState) -> sqlite3.Connection:
    return store.connect(state.db_path, readonly=True)


def _run(handler: Callable, request: Request, state: ServerState, cached: bool) -> Any:
    with closing(_conn(state)) as conn:
        if not cached:
            return handler(request, state, conn)
        key = (
            handler.__name__,
            tuple(sorted(request.query_params.multi_items())),
            store.meta_get(conn, "last_scan"),
            int(state.now().timestamp() // CACHE_SECONDS),
        )
        body = state.cache.get(key)
        if body is None:
            body = handler(request, state, conn)
            state.cache.put(key, body)
        return body


def _endpoint(
    allowed: frozenset[str], cached: bool = False
) -> Callable[[Callable[[Request, ServerState, sqlite3.Connection], Any]], Callable]:
    """Wrap a handler: check parameters, open the store, turn bad input into a 400."""

    def wrap(handler: Callable[[Request, ServerState, sqlite3.Connection], Any]) -> Callable:
        async def endpoint(request: Request) -> Response:
            state: ServerState = request.app.state.clawtrace
            try:
                unknown_params_check(request.query_params, allowed)
                # SQLite calls block: keep them off the event loop.
                body = await run_in_threadpool(_run, handler, request, state, cached)
            except ParamError as exc:
                return _error(400, exc.message, exc.param)
            except reports.ReportError as exc:
                err = report_error_to_param(exc)
                return _error(400, err.message, err.param)
            return OrjsonResponse(body)

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap


def _filters(request: Request, state: ServerState, default: str = "30d", bounded: bool = False):
    return filters_parse(request.query_params, state.tz, state.now(), default, bounded)


def _echo(request: Request, default_range: str) -> dict[str, Any]:
    q = request.query_params
    return {
        "range": q.get("range") or default_range,
        "project": q.get("project") or None,
        "model": q.get("model") or None,
        "agent": q.get("agent") or None,
        "source": q.get("source") or None,
    }


# --- handlers ---------------------------------------------------------------------------------


@_endpoint(frozenset())
def health(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    last_scan_ms = store.meta_get(conn, "last_scan")
    # The menu bar and the page poll this every second: count turns once per scan.
    key = ("health-turns", last_scan_ms)
    turns = state.cache.get(key)
    if turns is None:
        turns = conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        state.cache.put(key, turns)
    last_scan = (
        datetime.fromtimestamp(int(last_scan_ms) / 1000, state.tz).isoformat(timespec="seconds")
        if last_scan_ms and last_scan_ms.isdigit()
        else None
    )
    status = state.status() or {}
    return {
        "status": "ok",
        "version": __version__,
        "schema_version": store.schema_version(conn),
        "timezone": reports.zone_name(state.tz),
        "cost_mode": state.mode,
        "turns": int(turns),
        "last_scan_at": last_scan,
        "watching": bool(status.get("watching", False)),
        "scanning": bool(status.get("scanning", False)),
        "scan_error": status.get("last_error"),
        "scan_stalled_seconds": status.get("stalled_seconds"),
        "last_scan_unfinished": scan_unfinished(conn) if not status.get("scanning") else False,
        # Linked to a server: where to, when it last went through, what waits, what failed.
        "sync": status.get("sync") or {"linked": False},
        "uptime_seconds": round((state.now() - state.started_at).total_seconds(), 1)
        if state.started_at
        else 0.0,
    }


@_endpoint(frozenset({"project", "model", "agent", "source"}))
def summary(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    f = _filters(request, state, "all")
    return reports.summary(conn, f, state.tz, state.now(), state.mode)


@_endpoint(LIST_PARAMS | {"by"}, cached=True)
def costs(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    asked = choice_parse(request.query_params, "by", SERIES_GROUPINGS, "day")
    f = filters_parse(
        request.query_params,
        state.tz,
        state.now(),
        "7d",
        bounded=True,
        extent=lambda: queries.turns_extent(conn),
    )
    by = series_grouping(asked, f.since_ms, f.until_ms)
    if by in ("hour", "day"):
        points = reports.timeseries(conn, f, state.tz, state.now(), by=by, mode=state.mode)
    else:
        points = queries.timeseries_coarse(conn, f, state.tz, state.now(), by, state.mode)
    out = []
    for p in points:
        point = {"t": p[by]}
        point.update({k: p[k] for k in reports.TOTAL_KEYS})
        out.append(point)
    totals = reports.totals(conn, f, state.mode).as_dict()
    return {
        **_echo(request, "7d"),
        "by": by,
        "timezone": reports.zone_name(state.tz),
        "points": out,
        "totals": totals,
    }


def _grouped(request: Request, state: ServerState, conn: sqlite3.Connection, by: str) -> dict:
    """Rows sorted by cost; `n` keeps the first n (sub-agent ids make agents numerous), the
    totals still cover every row and `rows_total` says how many there were."""
    n = int_parse(request.query_params, "n", 100, 1, 10_000)
    f = _filters(request, state)
    report = reports.cost_report(conn, f, state.tz, state.now(), by=by, mode=state.mode)
    return {
        **_echo(request, "30d"),
        "n": n,
        "rows": report["rows"][:n],
        "rows_total": len(report["rows"]),
        "totals": report["totals"],
    }


@_endpoint(LIST_PARAMS | {"n"}, cached=True)
def models(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    return _grouped(request, state, conn, "model")


@_endpoint(LIST_PARAMS | {"n"}, cached=True)
def projects(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    return _grouped(request, state, conn, "project")


@_endpoint(LIST_PARAMS | {"n"}, cached=True)
def agents(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    return _grouped(request, state, conn, "agent")


@_endpoint(LIST_PARAMS | {"n"}, cached=True)
def sessions(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    n = int_parse(request.query_params, "n", 5, 1, 500)
    f = _filters(request, state)
    rows = reports.sessions_top(conn, f, state.tz, state.now(), n=n, mode=state.mode)
    return {**_echo(request, "30d"), "n": n, "rows": rows}


@_endpoint(LIST_PARAMS, cached=True)
def tools(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    f = _filters(request, state)
    report = reports.tools_report(conn, f, state.tz, state.now(), mode=state.mode)
    return {**_echo(request, "30d"), **report}


@_endpoint(LIST_PARAMS)
def blocks(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    # Blocks chain across days: look at the two days before the range so the first block of
    # the range starts where ccusage would start it.
    f = _filters(request, state, "1d")
    wide = f.with_range(f.since_ms - 2 * 86_400_000 if f.since_ms is not None else None, f.until_ms)
    all_blocks = reports.blocks(conn, wide, state.tz, state.now(), mode=state.mode)
    since_iso = None
    if f.since_ms is not None:
        since_iso = datetime.fromtimestamp(f.since_ms / 1000, UTC).isoformat()
    shown = [b for b in all_blocks if since_iso is None or b["end"] > since_iso]
    current = next((b for b in shown if b["active"]), None)
    return {**_echo(request, "1d"), "current": current, "blocks": shown}


@_endpoint(LIST_PARAMS, cached=True)
def anomalies(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    f = _filters(request, state, "7d")
    found = queries.anomalies_list(conn, f, state.tz, state.now(), state.mode)
    return {**_echo(request, "7d"), **found}


@_endpoint(LIST_PARAMS | {"n"})
def alerts(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    q = request.query_params
    n = int_parse(q, "n", 50, 1, 1000)
    # Alerts are not per project/model; the filters are accepted for uniformity and checked.
    filters_parse(q, state.tz, state.now(), "30d")
    since, _ = range_bounds(q.get("range"), state.tz, state.now(), "30d")
    s = state.alert_settings
    return {
        **_echo(request, "30d"),
        "rules": {
            "daily_budget_usd": s.daily_budget_usd,
            "session_spike_usd": s.session_spike_usd,
            "hourly_burn_usd": s.hourly_burn_usd,
            "hourly_requests": s.hourly_requests,
            "hourly_tokens": s.hourly_tokens,
            "monthly_budget_usd": s.monthly_budget_usd,
            "monthly_warn_percent": list(s.monthly_warn_percent),
            "anomaly": s.anomaly,
            "runaway": s.runaway,
        },
        "channels": {
            "desktop": s.desktop,
            "webhook": s.webhook is not None,
            "email": s.email is not None,
        },
        "items": alerts_fired_list(conn, state.tz, since, n),
    }


@_endpoint(LIST_PARAMS)
def forecast(request: Request, state: ServerState, conn: sqlite3.Connection) -> dict:
    # The forecast is always this month; `range` is accepted and validated like elsewhere.
    f = _filters(request, state, "month")
    result = reports.forecast(conn, f.with_range(None, None), state.tz, state.now(), state.mode)
    budget = state.alert_settings.monthly_budget_usd or None
    result["budget_usd"] = budget
    result["expected_over_budget"] = bool(budget and result["expected_usd"] > budget)
    return {**_echo(request, "month"), **result}


async def rescan(request: Request) -> Response:
    """The one write: ask the watcher for a rescan. Needs `Authorization: Bearer <token>`."""
    state: ServerState = request.app.state.clawtrace
    presented = bearer_from_header(request.headers.get("authorization"))
    if not token_matches(presented, state.token_hash):
        return _error(
            401, "a valid API token is needed: Authorization: Bearer <token>", "Authorization"
        )
    if state.rescan is None:
        return _error(409, "no watcher is running in this server")
    state.rescan()
    return OrjsonResponse({"status": "queued"}, status_code=202)


# --- the page ---------------------------------------------------------------------------------


def _web_dir() -> Path:
    return Path(str(resources.files("clawtrace") / "web"))


async def index(request: Request) -> Response:
    return FileResponse(_web_dir() / "index.html", headers={"Cache-Control": "no-store"})


async def openapi(request: Request) -> Response:
    return FileResponse(
        Path(str(resources.files("clawtrace") / "schema" / "openapi.json")),
        media_type="application/json",
    )


async def not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _error(exc.status_code, exc.detail or "not found")
    return _error(500, "internal error")


async def server_error(request: Request, exc: Exception) -> Response:
    # Never a traceback on the wire; the runner's log has it.
    return _error(500, "internal error: see the clawtrace serve log")


class RemoteTokenMiddleware:
    """With --allow-remote every request needs the token, reads included."""

    def __init__(self, app: Any, expected_hash: str) -> None:
        self.app = app
        self.expected_hash = expected_hash

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers", ()))
            presented = bearer_from_header(headers.get(b"authorization", b"").decode("latin-1"))
            if not token_matches(presented, self.expected_hash):
                await OrjsonResponse(
                    {
                        "error": "this server allows remote access: every request needs "
                        "Authorization: Bearer <token>",
                        "parameter": "Authorization",
                    },
                    status_code=401,
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


def app_create(
    state: ServerState,
    port: int,
    extra_hosts: tuple[str, ...] = (),
    require_token_for_reads: bool = False,
) -> Starlette:
    """The ASGI app. `port` is the port actually bound: the Host check follows it."""
    routes = [
        Route("/", index),
        Route("/openapi.json", openapi),
        Route("/api/health", health),
        Route("/api/summary", summary),
        Route("/api/costs", costs),
        Route("/api/models", models),
        Route("/api/projects", projects),
        Route("/api/agents", agents),
        Route("/api/sessions", sessions),
        Route("/api/tools", tools),
        Route("/api/blocks", blocks),
        Route("/api/anomalies", anomalies),
        Route("/api/alerts", alerts),
        Route("/api/forecast", forecast),
        Route("/api/rescan", rescan, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=_web_dir()), name="static"),
    ]
    if require_token_for_reads:
        # Remote mode: clients arrive under whatever name or address reaches this machine, so
        # the Host check cannot list them; the token on every request replaces it (a rebinding
        # page cannot attach an Authorization header to a cross-origin request without a CORS
        # preflight, which is never answered).
        if not state.token_hash:
            raise ValueError("remote access needs a token")
        middleware = [Middleware(RemoteTokenMiddleware, expected_hash=state.token_hash)]
    else:
        middleware = [Middleware(HostCheckMiddleware, hosts=allowed_hosts(port, extra_hosts))]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: not_found, Exception: server_error},
    )
    if state.started_at is None:
        state.started_at = state.now()
    app.state.clawtrace = state
    return app


__all__ = ["ServerState", "app_create"]
