"""Every read query ClawTrace answers, as plain functions of (conn, filters, timezone, now).

The CLI and the local HTTP API both call these. They read the 15-minute rollups (keyed by
context and model ids, see `store`), never the per-turn table, and group by ids in SQL before
names are looked up in the small dimension tables, so a report over a million turns stays well
under the interpreter's start-up time. Money comes back as float
dollars rounded to 10 decimals, computed from integer picodollars.

Nothing here imports the price library: reports must start fast.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from clawtrace import rules, store, zones
from clawtrace.store import BUCKET_MS, DAY_BUCKETS, PICO, ROLLUP_METRICS

COST_MODES = ("auto", "calculate", "display")
GROUPINGS = (
    "day",
    "week",
    "month",
    "hour",
    "model",
    "provider",
    "project",
    "agent",
    "session",
    "branch",
    "source",
)
TOTAL_KEYS = (
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "unpriced_tokens",
)
_MODE_PREFIX = {"auto": "auto", "calculate": "calc", "display": "display"}


class ReportError(ValueError):
    """A report parameter is invalid; the message names the parameter."""


@dataclass(frozen=True)
class Filters:
    """What to include. Times are UTC epoch milliseconds: `since_ms` inclusive, `until_ms` not."""

    since_ms: int | None = None
    until_ms: int | None = None
    project: str | None = None
    model: str | None = None
    agent: str | None = None
    source: str | None = None
    session: str | None = None

    def with_range(self, since_ms: int | None, until_ms: int | None) -> Filters:
        return replace(self, since_ms=since_ms, until_ms=until_ms)


@dataclass
class Totals:
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_pico: int = 0
    unpriced_tokens: int = 0
    unpriced_turns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Iterable[int]) -> None:
        t, i, o, cr, cw, c, ut, un = row
        self.turns += t
        self.input_tokens += i
        self.output_tokens += o
        self.cache_read_tokens += cr
        self.cache_write_tokens += cw
        self.cost_pico += c
        self.unpriced_tokens += ut
        self.unpriced_turns += un

    @property
    def total_tokens(self) -> int:
        return rules.total_tokens(
            self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": usd(self.cost_pico),
            "unpriced_tokens": self.unpriced_tokens,
        }


def usd(pico: int | float) -> float:
    return round(pico / PICO, 10)


# --- time helpers ----------------------------------------------------------------------------


def zone_resolve(name: str | tzinfo | None) -> tzinfo:
    """zones.zone_resolve, its error a ReportError naming the parameter."""
    try:
        return zones.zone_resolve(name)
    except zones.UnknownZone as exc:
        raise ReportError(f"timezone: {exc}") from None


system_zone = zones.system_zone


def zone_name(tz: tzinfo) -> str:
    return getattr(tz, "key", None) or str(tz)


def local_midnight_ms(day: date, tz: tzinfo) -> int:
    """UTC ms of the first instant of a local day (exact across DST changes)."""
    naive = datetime(day.year, day.month, day.day)
    return int(naive.replace(tzinfo=tz).timestamp() * 1000)


def _to_local(ms: int, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz)


def range_parse(text: str | None, tz: tzinfo, now: datetime) -> tuple[int | None, int | None]:
    """`7d`, `30d`, `today`, `week`, `month`, `all`, `YYYY-MM-DD`, `YYYY-MM-DD..YYYY-MM-DD`.

    `Nd` means the last N local days including today. Date ranges are inclusive local days.
    """
    if text is None or text == "" or text == "all":
        return None, None
    today = now.astimezone(tz).date()
    t = text.strip().lower()
    if t == "today":
        return local_midnight_ms(today, tz), local_midnight_ms(today + timedelta(days=1), tz)
    if t == "week":
        start = today - timedelta(days=today.weekday())
        return local_midnight_ms(start, tz), local_midnight_ms(today + timedelta(days=1), tz)
    if t == "month":
        start = today.replace(day=1)
        return local_midnight_ms(start, tz), local_midnight_ms(today + timedelta(days=1), tz)
    if t.endswith("d") and t[:-1].isdigit():
        days = int(t[:-1])
        if days < 1 or days > 36600:
            raise ReportError(f"range: {text!r} must be between 1d and 36600d")
        start = today - timedelta(days=days - 1)
        return local_midnight_ms(start, tz), local_midnight_ms(today + timedelta(days=1), tz)
    if t.endswith("h") and t[:-1].isdigit():
        hours = int(t[:-1])
        if hours < 1 or hours > 36600 * 24:
            raise ReportError(f"range: {text!r} must be between 1h and {36600 * 24}h")
        end = int(now.timestamp() * 1000)
        return end - hours * 3_600_000, end + 1
    first, sep, last = t.partition("..")
    try:
        d1 = date.fromisoformat(first)
        d2 = date.fromisoformat(last) if sep else d1
    except ValueError:
        raise ReportError(
            f"range: {text!r} is not 7d, 30d, today, week, month, all, or YYYY-MM-DD..YYYY-MM-DD"
        ) from None
    if d2 < d1:
        raise ReportError(f"range: {text!r} ends before it starts")
    if d1 < FIRST_DAY or d2 > LAST_DAY:
        # (No turn is stored outside these days: rules.MIN_TS_MS, MAX_TS_MS.)
        raise ReportError(
            f"range: {text!r} must lie between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}"
        )
    return local_midnight_ms(d1, tz), local_midnight_ms(d2 + timedelta(days=1), tz)


FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


# --- query building --------------------------------------------------------------------------


_CONTEXT_FILTERS = (
    ("project", "project"),
    ("agent", "agent"),
    ("source", "source"),
    ("session", "session_id"),
)


def _where(filters: Filters | None) -> tuple[str, list[Any]]:
    """WHERE clause over `rollup` / `tool_rollup` columns (bucket, context_id, model_id)."""
    f = filters or Filters()
    clauses: list[str] = []
    params: list[Any] = []
    if f.since_ms is not None:
        # Bucket boundaries are 15-minute multiples, as are all local midnights.
        clauses.append("bucket >= ?")
        params.append(f.since_ms // BUCKET_MS)
    if f.until_ms is not None:
        clauses.append("bucket < ?")
        params.append(-(-f.until_ms // BUCKET_MS))
    ctx = [
        (col, getattr(f, attr)) for attr, col in _CONTEXT_FILTERS if getattr(f, attr) is not None
    ]
    if ctx:
        # Column names come from the fixed list above; values are bound.
        cond = " AND ".join(f"{col} = ?" for col, _ in ctx)
        clauses.append(f"context_id IN (SELECT id FROM contexts WHERE {cond})")  # noqa: S608
        params.extend(v for _, v in ctx)
    if f.model is not None:
        clauses.append("model_id IN (SELECT id FROM models WHERE model = ?)")
        params.append(f.model)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


_ROLLUP_COLS = ", ".join(ROLLUP_METRICS)
_TOOL_COLS = "model_id, tool, calls, turns, auto_pico, calc_pico, display_pico"


def _context_filtered(f: Filters) -> bool:
    return any(getattr(f, attr) is not None for attr, _ in _CONTEXT_FILTERS)


def _rows(conn: sqlite3.Connection, filters: Filters | None, grain: str) -> tuple[str, list[Any]]:
    """`(SELECT ...)`: the rollup rows `filters` select, from the smallest table that holds
    what a `grain` of report needs, and its parameters. Use it as `FROM {sql} AS r`.

    - "time": 15-minute rows (bucket, model_id, metrics, first_ts, last_ts) for reports over
      time or by model: `rollup_model`, unless a context filter needs `rollup`.
    - "context": rows with context_id, model_id, metrics, first_ts, last_ts for reports by
      project, session...: `rollup_day` for the whole UTC days in range, `rollup` for the
      15-minute edges of a range that starts or ends mid-day.
    - "tools": tool rows (model_id, tool, calls, turns, per-mode costs), from `tool_day` in the
      same way, unless a context filter needs `tool_rollup`.

    The derived tables are used only while they match the rollups (store.derived_fresh).
    """
    f = filters or Filters()
    fresh = store.derived_fresh(conn)
    if grain == "time":
        cols = f"bucket, model_id, {_ROLLUP_COLS}, first_ts, last_ts"
        table = "rollup_model" if fresh and not _context_filtered(f) else "rollup"
        where, params = _where(f)
        return f"(SELECT {cols} FROM {table}{where})", params  # noqa: S608
    if grain == "context":
        cols = f"context_id, model_id, {_ROLLUP_COLS}, first_ts, last_ts"
        fine, coarse = "rollup", "rollup_day"
    elif grain == "tools":
        cols = _TOOL_COLS
        fine, coarse = "tool_rollup", "tool_day"
        fresh = fresh and not _context_filtered(f)
    else:
        raise ValueError(grain)
    day_ms = DAY_BUCKETS * BUCKET_MS
    first_day = None if f.since_ms is None else -(-f.since_ms // day_ms)
    end_day = None if f.until_ms is None else f.until_ms // day_ms
    if not fresh or (first_day is not None and end_day is not None and first_day >= end_day):
        where, params = _where(f)
        return f"(SELECT {cols} FROM {fine}{where})", params  # noqa: S608
    parts: list[str] = []
    params: list[Any] = []
    # The whole days, from the daily table.
    ctx_where, ctx_params = _where(replace(f, since_ms=None, until_ms=None))
    clauses: list[str] = []
    if first_day is not None:
        clauses.append("day >= ?")
        params.append(first_day)
    if end_day is not None:
        clauses.append("day < ?")
        params.append(end_day)
    if ctx_where:
        clauses.append(ctx_where.removeprefix(" WHERE "))
        params.extend(ctx_params)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    parts.append(f"SELECT {cols} FROM {coarse}{where}")  # noqa: S608
    # The part-days at either end, from the 15-minute table.
    if first_day is not None and f.since_ms < first_day * day_ms:
        where, p = _where(replace(f, until_ms=first_day * day_ms))
        parts.append(f"SELECT {cols} FROM {fine}{where}")  # noqa: S608
        params.extend(p)
    if end_day is not None and f.until_ms > end_day * day_ms:
        where, p = _where(replace(f, since_ms=end_day * day_ms))
        parts.append(f"SELECT {cols} FROM {fine}{where}")  # noqa: S608
        params.extend(p)
    return "(" + " UNION ALL ".join(parts) + ")", params


def _contexts(conn: sqlite3.Connection, ids: Iterable[int] | None = None) -> dict[int, tuple]:
    """context id → (source, agent, project, session_id, subagent, is_sidechain, git_branch)."""
    q = (
        "SELECT id, source, agent, project, session_id, subagent, is_sidechain, git_branch "
        "FROM contexts"
    )
    if ids is None:
        return {r[0]: r[1:] for r in conn.execute(q)}
    out: dict[int, tuple] = {}
    wanted = list(set(ids))
    for chunk, marks in store.in_chunks(wanted, 900):
        out.update((r[0], r[1:]) for r in conn.execute(f"{q} WHERE id IN ({marks})", chunk))
    return out


def _models(conn: sqlite3.Connection) -> dict[int, tuple]:
    """model id → (provider, model, speed)."""
    return {r[0]: r[1:] for r in conn.execute("SELECT id, provider, model, speed FROM models")}


# Where each report dimension lives: (table, column).
_DIM = {
    "model": ("models", "model"),
    "provider": ("models", "provider"),
    "source": ("contexts", "source"),
    "agent": ("contexts", "agent"),
    "project": ("contexts", "project"),
    "session": ("contexts", "session_id"),
    "branch": ("contexts", "git_branch"),
}


def _metric_exprs(mode: str) -> list[str]:
    """The eight summed columns of `Totals`, for a cost mode."""
    if mode not in _MODE_PREFIX:
        raise ReportError(f"mode: {mode!r} is not one of {', '.join(COST_MODES)}")
    p = _MODE_PREFIX[mode]
    return [
        "turns",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_5m_tokens + cache_write_1h_tokens",
        f"{p}_pico",
        f"{p}_unpriced_tokens",
        f"{p}_unpriced_turns",
    ]


def _metrics(mode: str) -> str:
    return ", ".join(f"COALESCE(SUM({e}),0)" for e in _metric_exprs(mode))


_TOTAL_TOKENS = rules.TOTAL_TOKENS_SQL


def _sum_by(
    conn: sqlite3.Connection,
    keys: list[str],
    values: list[str],
    src: str,
    params: list[Any],
    join: str = "",
) -> list[tuple]:
    """`SELECT keys, SUM(values) FROM src AS r join GROUP BY keys`, in no order.

    With the native module the grouping is a hash in C over the plain rows (SQLite groups
    through a sort: on a million-turn store, most of a report by project or session). It reads
    through a connection of its own, so only while `conn` has nothing uncommitted.
    """
    native = store._native_ingest()
    db = store.db_file(conn)
    cols = ", ".join(keys + values)
    if native is not None and db and not conn.in_transaction:
        return native.group_sum(db, f"SELECT {cols} FROM {src} AS r {join}", params, len(keys))  # noqa: S608
    sums = ", ".join(f"COALESCE(SUM({v}), 0)" for v in values)
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    return store.sums_fetch(
        conn,
        f"SELECT {', '.join(keys)}, {sums} FROM {src} AS r {join} GROUP BY {group}",  # noqa: S608
        params,
    )


def totals(conn: sqlite3.Connection, filters: Filters | None = None, mode: str = "auto") -> Totals:
    src, params = _rows(conn, filters, "time")
    (row,) = store.sums_fetch(conn, f"SELECT {_metrics(mode)} FROM {src} AS r", params)  # noqa: S608
    out = Totals()
    out.add(row)
    return out


def _time_key(by: str, local: datetime) -> str:
    if by == "day":
        return local.date().isoformat()
    if by == "hour":
        return local.strftime("%Y-%m-%dT%H:00")
    if by == "week":
        return (local.date() - timedelta(days=local.weekday())).isoformat()
    return local.strftime("%Y-%m")


def _bucket_rows(
    conn: sqlite3.Connection, filters: Filters | None, mode: str
) -> list[tuple[int, tuple[int, ...]]]:
    src, params = _rows(conn, filters, "time")
    rows = store.sums_fetch(
        conn,
        f"SELECT bucket, {_metrics(mode)} FROM {src} AS r GROUP BY bucket ORDER BY bucket",  # noqa: S608
        params,
    )
    return [(r[0], r[1:]) for r in rows]


def cost_report(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
    by: str = "day",
    mode: str = "auto",
) -> dict[str, Any]:
    """`{"rows": [...], "totals": {...}}`; each row holds TOTAL_KEYS plus its grouping key."""
    if by not in GROUPINGS:
        raise ReportError(f"by: {by!r} is not one of {', '.join(GROUPINGS)}")
    zone = zone_resolve(tz)
    sums: list[tuple] = []  # (key, turns, input, output, cache read, cache write, pico, ...)
    if by in ("day", "week", "month", "hour"):
        groups: dict[str, list[int]] = {}
        for bucket, metrics in _bucket_rows(conn, filters, mode):
            key = _time_key(by, _to_local(bucket * BUCKET_MS, zone))
            acc = groups.get(key)
            if acc is None:
                groups[key] = list(metrics)
            else:
                for i, v in enumerate(metrics):
                    acc[i] += v
        sums = sorted((k, *v) for k, v in groups.items())
    else:
        table, column = _DIM[by]
        if table == "models":
            src, params = _rows(conn, filters, "time")
            join = "JOIN models AS d ON d.id = r.model_id"
        else:
            src, params = _rows(conn, filters, "context")
            join = "JOIN contexts AS d ON d.id = r.context_id"
        # Column names come from the fixed _DIM table. Most expensive first, then most tokens.
        sums = sorted(
            _sum_by(conn, [f"d.{column}"], _metric_exprs(mode), src, params, join),
            key=lambda r: (-r[6], -rules.total_tokens(r[2], r[3], r[4], r[5]), r[0]),
        )
    rows = [
        {
            by: key,
            "turns": t,
            "input_tokens": i,
            "output_tokens": o,
            "cache_read_tokens": cr,
            "cache_write_tokens": cw,
            "cost_usd": usd(c),
            "unpriced_tokens": ut,
        }
        for key, t, i, o, cr, cw, c, ut, _un in sums
    ]
    total = Totals()
    total.add([sum(col) for col in list(zip(*sums, strict=True))[1:]] if sums else [0] * 8)
    return {
        "by": by,
        "mode": mode,
        "timezone": zone_name(zone),
        "rows": rows,
        "totals": total.as_dict(),
    }


def timeseries(
    conn: sqlite3.Connection,
    filters: Filters,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
    by: str = "day",
    mode: str = "auto",
) -> list[dict[str, Any]]:
    """Zero-filled hourly or daily points over the filter's range (which must be bounded)."""
    if by not in ("hour", "day"):
        raise ReportError(f"by: {by!r} is not hour or day")
    if filters.since_ms is None or filters.until_ms is None:
        raise ReportError("range: a bounded range is needed for a time series")
    zone = zone_resolve(tz)
    report = cost_report(conn, filters, zone, now, by=by, mode=mode)
    found = {row[by]: row for row in report["rows"]}
    points = []
    seen: set[str] = set()
    step = 3_600_000 if by == "hour" else BUCKET_MS
    ms = filters.since_ms
    while ms < filters.until_ms:
        key = _time_key(by, _to_local(ms, zone))
        if key not in seen:
            seen.add(key)
            empty = {by: key, **Totals().as_dict()}
            points.append(found.get(key, empty))
        ms += step
    return points


def status(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
    mode: str = "auto",
) -> dict[str, Any]:
    """Today, this week (Monday start), this month, and the burn rate over the last hour."""
    zone = zone_resolve(tz)
    now = now or datetime.now(UTC)
    base = filters or Filters()
    out: dict[str, Any] = {"timezone": zone_name(zone), "now": now.isoformat(), "mode": mode}
    for name in ("today", "week", "month"):
        since, until = range_parse(name, zone, now)
        t = totals(conn, base.with_range(since, until), mode)
        out[name] = t.as_dict()
        out[name]["sessions"] = _count_sessions(conn, base.with_range(since, until))
    now_ms = int(now.timestamp() * 1000)
    hour = totals(conn, base.with_range(now_ms - 3_600_000, now_ms + 1), mode)
    out["burn_rate"] = {
        "window_minutes": 60,
        "cost_usd_per_hour": usd(hour.cost_pico),
        "tokens_per_minute": round(hour.total_tokens / 60, 2),
        "turns_last_hour": hour.turns,
    }
    out["last_turn_at"] = _last_turn_iso(conn)
    return out


def _count_sessions(conn: sqlite3.Connection, filters: Filters) -> int:
    src, params = _rows(conn, filters, "context")
    join = "JOIN contexts AS c ON c.id = r.context_id"
    return len(_sum_by(conn, ["c.source", "c.session_id"], ["1"], src, params, join))


def _last_turn_iso(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT MAX(ts) FROM turns").fetchone()
    if not row or row[0] is None:
        return None
    return datetime.fromtimestamp(row[0] / 1000, UTC).isoformat()


def sessions_top(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
    n: int = 10,
    mode: str = "auto",
) -> list[dict[str, Any]]:
    """The N most expensive sessions (then most tokens), with their models and sub-agent share."""
    if n < 1:
        raise ReportError("n: must be at least 1")
    p = _MODE_PREFIX.get(mode)
    if p is None:
        raise ReportError(f"mode: {mode!r} is not one of {', '.join(COST_MODES)}")
    src, params = _rows(conn, filters, "context")
    # Rank the sessions on their sums, then read the details of the N on top only.
    ranked_all = _sum_by(
        conn,
        ["c.source", "c.session_id"],
        ["turns", f"{p}_pico", _TOTAL_TOKENS],
        src,
        params,
        "JOIN contexts AS c ON c.id = r.context_id",
    )
    top = [
        (source, session)
        for source, session, _turns, _cost, _tokens in sorted(
            (r for r in ranked_all if r[2] > 0), key=lambda r: (-r[3], -r[4], r[1], r[0])
        )[:n]
    ]
    if not top:
        return []
    pairs = ", ".join("(?, ?)" for _ in top)
    rows = conn.execute(
        f"SELECT context_id, model_id, MIN(first_ts), MAX(last_ts), {_metrics(mode)} "  # noqa: S608
        f"FROM {src} AS r WHERE context_id IN "
        f"(SELECT id FROM contexts WHERE (source, session_id) IN (VALUES {pairs})) "
        "GROUP BY context_id, model_id",
        [*params, *(v for pair in top for v in pair)],
    ).fetchall()
    contexts = _contexts(conn, (r[0] for r in rows))
    models = _models(conn)
    sessions: dict[tuple[str, str], dict[str, Any]] = {}
    for cid, mid, first, last, *metrics in rows:
        source, agent, project, session, _sub, side, branch = contexts[cid]
        s = sessions.get((source, session))
        if s is None:
            s = sessions[(source, session)] = {
                "t": Totals(),
                "main_agents": set(),
                "agents": set(),
                "projects": set(),
                "first": first,
                "last": last,
                "models": set(),
                "branches": set(),
                "sidechain_turns": 0,
            }
        s["t"].add(metrics)
        (s["agents"] if side else s["main_agents"]).add(agent)
        s["projects"].add(project)
        s["models"].add(models[mid][1])
        s["branches"].add(branch)
        if first is not None and (s["first"] is None or first < s["first"]):
            s["first"] = first
        if last is not None and (s["last"] is None or last > s["last"]):
            s["last"] = last
        if side:
            s["sidechain_turns"] += metrics[0]
    ranked = sorted(
        (kv for kv in sessions.items() if kv[1]["t"].turns > 0),
        key=lambda kv: (-kv[1]["t"].cost_pico, -kv[1]["t"].total_tokens, kv[0][1]),
    )[:n]
    out = []
    for (source, session), s in ranked:
        t = s["t"]
        agents = s["main_agents"] or s["agents"]
        out.append(
            {
                "session": session,
                "source": source,
                "agent": max(s["main_agents"]) if s["main_agents"] else min(agents),
                "project": min(s["projects"]),
                "branch": max(s["branches"]) or "",
                "started_at": datetime.fromtimestamp(s["first"] / 1000, UTC).isoformat(),
                "ended_at": datetime.fromtimestamp(s["last"] / 1000, UTC).isoformat(),
                "models": sorted(s["models"]),
                "sidechain_turns": s["sidechain_turns"],
                **t.as_dict(),
            }
        )
    return out


def blocks(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
    mode: str = "auto",
    block_hours: int = 5,
) -> list[dict[str, Any]]:
    """5-hour billing windows as ccusage draws them, from 15-minute buckets.

    A block starts at the UTC hour of its first turn and lasts `block_hours`; a turn after the
    block's end, or after a gap of `block_hours` with no turns, starts a new block. The active
    block (now inside it) carries its burn rate and a projection to its end.
    """
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    span = block_hours * 3_600_000
    src, params = _rows(conn, filters, "time")
    rows = conn.execute(
        f"SELECT bucket, MIN(first_ts), MAX(last_ts), {_metrics(mode)} FROM {src} AS r "  # noqa: S608
        "GROUP BY bucket ORDER BY bucket",
        params,
    ).fetchall()
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for _bucket, first_ts, last_ts, *metrics in rows:
        if first_ts is None:
            # Only the negative rows of turns that moved to another bucket: no turn starts here.
            if cur is not None:
                cur["t"].add(metrics)
            continue
        if cur is None or first_ts >= cur["_end"] or first_ts - cur["_last"] >= span:
            start = first_ts - first_ts % 3_600_000
            cur = {
                "_start": start,
                "_end": start + span,
                "_last": last_ts,
                "_first": first_ts,
                "t": Totals(),
            }
            out.append(cur)
        cur["t"].add(metrics)
        cur["_last"] = max(cur["_last"], last_ts)
    result = []
    for b in out:
        t: Totals = b["t"]
        active = b["_start"] <= now_ms < b["_end"]
        item = {
            "start": datetime.fromtimestamp(b["_start"] / 1000, UTC).isoformat(),
            "end": datetime.fromtimestamp(b["_end"] / 1000, UTC).isoformat(),
            "first_turn_at": datetime.fromtimestamp(b["_first"] / 1000, UTC).isoformat(),
            "last_turn_at": datetime.fromtimestamp(b["_last"] / 1000, UTC).isoformat(),
            "active": active,
            **t.as_dict(),
        }
        if active:
            elapsed_min = max((now_ms - b["_first"]) / 60_000, 1.0)
            remaining_min = (b["_end"] - now_ms) / 60_000
            cost_per_min = t.cost_pico / elapsed_min
            tokens_per_min = t.total_tokens / elapsed_min
            item["burn_rate"] = {
                "cost_usd_per_hour": usd(cost_per_min * 60),
                "tokens_per_minute": round(tokens_per_min, 2),
            }
            item["projection"] = {
                "cost_usd": usd(t.cost_pico + cost_per_min * remaining_min),
                "total_tokens": int(t.total_tokens + tokens_per_min * remaining_min),
                "remaining_minutes": round(remaining_min, 1),
            }
        result.append(item)
    return result


def tools_report(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
    mode: str = "auto",
) -> dict[str, Any]:
    """Cost per tool: each turn's cost split evenly over the tool calls it made."""
    p = _MODE_PREFIX.get(mode)
    if p is None:
        raise ReportError(f"mode: {mode!r} is not one of {', '.join(COST_MODES)}")
    f = filters or Filters()
    src, params = _rows(conn, replace(f, session=None), "tools")
    rows = store.sums_fetch(
        conn,
        f"SELECT tool, SUM(calls), SUM(turns), SUM({p}_pico) FROM {src} AS r "  # noqa: S608
        f"GROUP BY tool HAVING SUM(turns) > 0 "
        f"ORDER BY SUM({p}_pico) DESC, SUM(calls) DESC, tool",
        params,
    )
    all_cost = totals(conn, f, mode).cost_pico
    tool_cost = sum(r[3] for r in rows)
    return {
        "rows": [{"tool": r[0], "calls": r[1], "turns": r[2], "cost_usd": usd(r[3])} for r in rows],
        "no_tool_cost_usd": usd(max(all_cost - tool_cost, 0)),
        "total_cost_usd": usd(all_cost),
    }


def cache_report(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Per model: what cache reads saved against the full input price, and what writes cost."""
    src, params = _rows(conn, filters, "time")
    per_id = store.sums_fetch(
        conn,
        f"SELECT model_id, SUM(cache_read_tokens), SUM(cache_write_5m_tokens), "  # noqa: S608
        f"SUM(cache_write_1h_tokens), SUM(input_tokens), SUM(cache_savings_pico), "
        f"SUM(cache_write_pico) FROM {src} AS r GROUP BY model_id",
        params,
    )
    models = _models(conn)
    by_model: dict[str, list[int]] = {}
    for mid, *sums in per_id:
        acc = by_model.setdefault(models[mid][1], [0] * 6)
        for i, v in enumerate(sums):
            acc[i] += v or 0
    rows = sorted(((m, *v) for m, v in by_model.items()), key=lambda r: (-r[5], r[0]))
    out_rows = []
    saved = written = 0
    for model, cr, w5, w1, inp, sav, wc in rows:
        all_input = cr + w5 + w1 + inp
        out_rows.append(
            {
                "model": model,
                "cache_read_tokens": cr,
                "cache_write_5m_tokens": w5,
                "cache_write_1h_tokens": w1,
                "hit_ratio": round(cr / all_input, 4) if all_input else 0.0,
                "saved_usd": usd(sav),
                "write_cost_usd": usd(wc),
                "net_saved_usd": usd(sav - wc),
            }
        )
        saved += sav
        written += wc
    return {
        "rows": out_rows,
        "totals": {
            "saved_usd": usd(saved),
            "write_cost_usd": usd(written),
            "net_saved_usd": usd(saved - written),
        },
    }


def forecast(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
    mode: str = "auto",
) -> dict[str, Any]:
    """Month-end spend from this month's daily spend: a low / expected / high range.

    Expected = month-to-date + mean daily spend x days left. The range uses the 20th and 80th
    percentiles of the completed days' spend (zero days included), so one spiky day widens the
    range instead of moving a single number.
    """
    zone = zone_resolve(tz)
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).date()
    first = today.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    days_in_month = (next_month - first).days
    base = filters or Filters()
    since = local_midnight_ms(first, zone)
    until = local_midnight_ms(today + timedelta(days=1), zone)
    report = cost_report(conn, base.with_range(since, until), zone, now, by="day", mode=mode)
    by_day = {r["day"]: r for r in report["rows"]}
    daily: list[float] = []
    d = first
    while d < today:
        daily.append(by_day.get(d.isoformat(), {}).get("cost_usd", 0.0))
        d += timedelta(days=1)
    today_cost = by_day.get(today.isoformat(), {}).get("cost_usd", 0.0)
    mtd = report["totals"]["cost_usd"]
    # Today counts as the fraction of it elapsed, so the morning does not drag the mean down.
    local_now = now.astimezone(zone)
    frac = (local_now.hour * 3600 + local_now.minute * 60 + local_now.second) / 86400
    samples = [*daily]
    if frac >= 0.25 and today_cost:
        samples.append(today_cost / frac)
    remaining = days_in_month - (today - first).days - 1 + (1 - frac)
    if not samples:
        samples = [today_cost / max(frac, 1 / 24)] if today_cost else [0.0]
    mean = sum(samples) / len(samples)
    low_rate = _percentile(samples, 0.2)
    high_rate = _percentile(samples, 0.8)
    return {
        "month": first.strftime("%Y-%m"),
        "timezone": zone_name(zone),
        "month_to_date_usd": mtd,
        "days_elapsed": (today - first).days + round(frac, 3),
        "days_in_month": days_in_month,
        "daily_mean_usd": round(mean, 6),
        "expected_usd": round(mtd + mean * remaining, 6),
        "low_usd": round(mtd + min(low_rate, mean) * remaining, 6),
        "high_usd": round(mtd + max(high_rate, mean) * remaining, 6),
        "unpriced_tokens": report["totals"]["unpriced_tokens"],
        "method": (
            "month-to-date + daily spend x days left; "
            "range from the 20th-80th percentile of daily spend"
        ),
    }


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(
    conn: sqlite3.Connection,
    filters: Filters | None = None,
    tz: tzinfo | str | None = None,
    now: datetime | None = None,
    mode: str = "auto",
) -> dict[str, Any]:
    """Today's and this month's spend, tokens and sessions (for the menu bar / API)."""
    s = status(conn, filters, tz, now, mode)
    return {k: s[k] for k in ("timezone", "now", "today", "month", "burn_rate", "last_turn_at")}


def unpriced_models(
    conn: sqlite3.Connection, filters: Filters | None = None
) -> list[dict[str, Any]]:
    """Models we could not price, with the turns and tokens that are therefore unpriced."""
    src, params = _rows(conn, filters, "context")
    return [
        {"source": r[0], "provider": r[1], "model": r[2], "turns": r[3], "tokens": r[4]}
        for r in store.sums_fetch(
            conn,
            "SELECT c.source, m.provider, m.model, SUM(r.calc_unpriced_turns), "  # noqa: S608
            f"SUM(r.calc_unpriced_tokens) FROM {src} AS r "
            "JOIN contexts AS c ON c.id = r.context_id JOIN models AS m ON m.id = r.model_id"
            " GROUP BY 1, 2, 3 "
            "HAVING SUM(r.calc_unpriced_turns) > 0 ORDER BY SUM(r.calc_unpriced_tokens) DESC, 3",
            params,
        )
    ]
