"""Read queries the live side needs that `clawtrace.reports` does not have (yet).

Kept apart so the lead can fold them into reports later: the hour-of-week history for the
anomaly baseline, the per-turn series of recent sessions for the runaway detector, the
sessions active in a window, the store's extent (for `range=all`) and weekly or monthly series.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, tzinfo

from clawtrace import reports, store
from clawtrace.store import PICO, in_chunks

HOUR_MS = 3_600_000


def turn_cost_sql(mode: str) -> str:
    """The per-turn cost column matching a reports cost mode (picodollars, NULL = unpriced)."""
    if mode == "display":
        return "reported_pico"
    if mode == "calculate":
        return "CASE WHEN price_source <> 'reported' THEN cost_pico END"
    return "cost_pico"


def hourly_history(
    conn: sqlite3.Connection,
    tz: tzinfo,
    since_ms: int,
    until_ms: int,
    mode: str = "auto",
) -> list[tuple[datetime, float]]:
    """Zero-filled (naive local hour start, USD) for [since_ms, until_ms), for the baseline."""
    points = reports.timeseries(
        conn, reports.Filters(since_ms=since_ms, until_ms=until_ms), tz, by="hour", mode=mode
    )
    return [(datetime.fromisoformat(p["hour"]), float(p["cost_usd"])) for p in points]


def turns_extent(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
    """(first, last) turn timestamp in ms, (None, None) for an empty store.

    Two subqueries: SQLite answers a lone MIN or MAX from the ts index in one step, but both in
    one SELECT walk the whole index."""
    first, last = conn.execute(
        "SELECT (SELECT MIN(ts) FROM turns), (SELECT MAX(ts) FROM turns)"
    ).fetchone()
    return first, last


def timeseries_coarse(
    conn: sqlite3.Connection,
    filters: reports.Filters,
    tz: tzinfo,
    now: datetime,
    by: str,
    mode: str = "auto",
) -> list[dict]:
    """Zero-filled weekly or monthly points over a bounded range, keyed like reports' rows:
    a week by its Monday (YYYY-MM-DD), a month as YYYY-MM. The first and last may be partial.

    reports.timeseries zero-fills hours and days only; stepping through local days (not 15-minute
    buckets) keeps a range of decades cheap."""
    if by not in ("week", "month"):
        raise ValueError(by)
    report = reports.cost_report(conn, filters, tz, now, by=by, mode=mode)
    found = {row[by]: row for row in report["rows"]}
    day = datetime.fromtimestamp(filters.since_ms / 1000, tz).date()
    last = datetime.fromtimestamp((filters.until_ms - 1) / 1000, tz).date()
    points: list[dict] = []
    while day <= last:
        if by == "week":
            key = (day - timedelta(days=day.weekday())).isoformat()
            day = day - timedelta(days=day.weekday()) + timedelta(days=7)
        else:
            key = day.strftime("%Y-%m")
            day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        points.append(found.get(key, {by: key, **reports.Totals().as_dict()}))
    return points


def sessions_active(conn: sqlite3.Connection, since_ms: int, until_ms: int) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT session_id FROM rollup_wide WHERE bucket >= ? AND bucket < ?",
        (since_ms // 900_000, -(-until_ms // 900_000)),
    ).fetchall()
    return [r[0] for r in rows]


def tool_signature(tools_json: str | None) -> str:
    """ "Bash" or "Edit+Bash" from the stored JSON list of tool names; "" for no tool call."""
    if not tools_json or tools_json == "[]":
        return ""
    try:
        names = json.loads(tools_json)
    except ValueError:
        return tools_json
    return "+".join(str(n) for n in names) if isinstance(names, list) else str(names)


def session_turns(
    conn: sqlite3.Connection,
    session_ids: list[str],
    since_ms: int,
    until_ms: int,
    mode: str = "auto",
) -> dict[str, list[tuple[int, float, str]]]:
    """(ts ms, cost USD, tool signature) per turn of each session within [since_ms, until_ms),
    in time order. The time bound lets SQLite use the `ts` index (there is none on session).

    The signature is the turn's tool names as stored (names only, never inputs).
    """
    out: dict[str, list[tuple[int, float, str]]] = {sid: [] for sid in session_ids}
    if not session_ids:
        return out
    for chunk, marks in in_chunks(session_ids):
        # Only fixed column expressions and "?" marks are interpolated, never values.
        for sid, ts, cost, tools_json in conn.execute(
            f"SELECT session_id, ts, {turn_cost_sql(mode)}, tools FROM turns_wide "  # noqa: S608
            f"WHERE ts >= ? AND ts < ? AND session_id IN ({marks}) ORDER BY session_id, ts",
            [since_ms, until_ms, *chunk],
        ):
            out[sid].append((ts, (cost or 0) / PICO, tool_signature(tools_json)))
    return out


def session_costs(
    conn: sqlite3.Connection, since_ms: int, until_ms: int, mode: str = "auto"
) -> list[tuple[str, str, str, float]]:
    """(session_id, project, agent, total USD over its whole life) of sessions active in the
    window, for the session-spike rule."""
    prefix = {"auto": "auto", "calculate": "calc", "display": "display"}[mode]
    rows = store.sums_fetch(
        conn,
        f"SELECT session_id, MIN(project), MIN(agent), SUM({prefix}_pico) FROM rollup_wide "  # noqa: S608
        "WHERE session_id IN (SELECT DISTINCT session_id FROM rollup_wide WHERE bucket >= ? "
        "AND bucket < ?) GROUP BY session_id",
        (since_ms // 900_000, -(-until_ms // 900_000)),
    )
    return [(sid, project, agent, (pico or 0) / PICO) for sid, project, agent, pico in rows]


BASELINE_WEEKS = 8
MIN_HISTORY_DAYS = 14
MAX_RUNAWAY_SESSIONS = 300


def anomalies_list(
    conn: sqlite3.Connection,
    filters: reports.Filters,
    tz: tzinfo,
    now: datetime,
    mode: str = "auto",
) -> dict:
    """Unusual hours (against the hour-of-week baseline of the eight weeks before the range)
    and runaway sessions in the filter's range."""
    from dataclasses import replace

    from clawtrace import anomaly

    now_ms = int(now.timestamp() * 1000)
    since = filters.since_ms if filters.since_ms is not None else now_ms - 7 * 24 * HOUR_MS
    until = min(filters.until_ms if filters.until_ms is not None else now_ms, now_ms + HOUR_MS)
    hours: list[dict] = []
    baseline_info: dict = {"weeks": 0, "typical_active_hour_usd": 0.0, "ready": False}
    first = conn.execute("SELECT MIN(ts) FROM turns").fetchone()[0]
    if first is not None and since - first >= MIN_HISTORY_DAYS * 24 * HOUR_MS:
        hist_since = max(first - first % HOUR_MS, since - BASELINE_WEEKS * 7 * 24 * HOUR_MS)
        history = [
            (datetime.fromisoformat(p["hour"]), float(p["cost_usd"]))
            for p in reports.timeseries(
                conn,
                replace(filters, since_ms=hist_since, until_ms=since),
                tz,
                by="hour",
                mode=mode,
            )
        ]
        baseline = anomaly.baseline_build(history)
        baseline_info = {
            "weeks": round((since - hist_since) / (7 * 24 * HOUR_MS), 1),
            "typical_active_hour_usd": round(baseline.typical_active_hour, 6),
            "ready": baseline.typical_active_hour > 0,
        }
        if baseline.typical_active_hour > 0:
            points = reports.timeseries(
                conn, replace(filters, since_ms=since, until_ms=until), tz, by="hour", mode=mode
            )
            series = [(datetime.fromisoformat(p["hour"]), float(p["cost_usd"])) for p in points]
            for found in anomaly.hours_unusual(baseline, series):
                hours.append(
                    {
                        "hour": found.hour_start.strftime("%Y-%m-%dT%H:00"),
                        "cost_usd": round(found.cost_usd, 6),
                        "expected_usd": round(found.expected_usd, 6),
                        "score": round(found.score, 2),
                    }
                )
    sessions: list[dict] = []
    where = ["bucket >= ?", "bucket < ?"]
    args: list[object] = [since // 900_000, -(-until // 900_000)]
    for column, value in (
        ("project", filters.project),
        ("model", filters.model),
        ("agent", filters.agent),
        ("source", filters.source),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    rows = conn.execute(  # column names come from the fixed list above; values are bound
        f"SELECT session_id, MIN(project), MIN(agent), MAX(last_ts) FROM rollup_wide "  # noqa: S608
        f"WHERE {' AND '.join(where)} GROUP BY session_id ORDER BY MAX(last_ts) DESC LIMIT ?",
        [*args, MAX_RUNAWAY_SESSIONS],
    ).fetchall()
    meta = {r[0]: r for r in rows}
    # A session that began before the range is judged from its start, up to a day earlier.
    turns_by_session = session_turns(conn, list(meta), since - 24 * HOUR_MS, until, mode)
    for sid, turns in turns_by_session.items():
        if not turns:
            continue
        finding = anomaly.session_runaway(
            [anomaly.SessionTurn(ts / 1000, cost, sig) for ts, cost, sig in turns]
        )
        if finding is None:
            continue
        at_ts = turns[finding.at_turn][0]
        sessions.append(
            {
                "session_id": sid,
                "project": meta[sid][1],
                "agent": meta[sid][2],
                "kind": finding.kind,
                "detected_at": datetime.fromtimestamp(at_ts / 1000, tz).isoformat(
                    timespec="seconds"
                ),
                "detail": finding.detail,
                "cost_usd": round(sum(c for _, c, _ in turns), 6),
            }
        )
    sessions.sort(key=lambda s: s["detected_at"], reverse=True)
    hours.sort(key=lambda h: h["hour"], reverse=True)
    return {"baseline": baseline_info, "hours": hours, "sessions": sessions}
