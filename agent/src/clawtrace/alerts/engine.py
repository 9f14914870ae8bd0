"""Alert rules evaluated against the store, fired once per window, recorded before sending.

Once per window: every alert has a rule and a window key (the local day, the month and
percentage, the hour, the session) and `alerts_fired` holds UNIQUE(rule, window_key). An alert
is recorded with INSERT OR IGNORE *before* any channel is tried, so a restart never fires it
again and a webhook that hangs or answers 500 loses nothing: the record is there, and the
channel outcome is written beside it when the (background) send finishes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from clawtrace import anomaly, reports
from clawtrace.alerts.channels import Alert, ChannelResult, channels_send
from clawtrace.alerts.settings import AlertSettings
from clawtrace.server import queries

HOUR_MS = 3_600_000
BASELINE_WEEKS = 8
MIN_HISTORY_DAYS = 14
RUNAWAY_LOOKBACK_MS = 30 * 60_000
# More new alerts than this from one evaluation are sent as a single digest.
DIGEST_OVER = 3
# A month-end forecast from fewer days than this is too noisy to alert on.
FORECAST_MIN_DAY = 5
# How much of an active session the runaway detector reads (its "start" is within this).
RUNAWAY_HISTORY_MS = 12 * HOUR_MS


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _money(value: float) -> str:
    return f"${value:,.2f}"


class AlertEngine:
    """Evaluates the rules; keeps the hour-of-week baseline cached for an hour."""

    def __init__(self, settings: AlertSettings, tz: tzinfo, mode: str = "auto") -> None:
        self.settings = settings
        self.tz = tz
        self.mode = mode
        self._baseline: anomaly.HourOfWeekBaseline | None = None
        self._baseline_hour: int | None = None

    # -- rules ---------------------------------------------------------------------------------

    def evaluate(self, conn: sqlite3.Connection, now: datetime) -> list[Alert]:
        s = self.settings
        alerts: list[Alert] = []
        local = now.astimezone(self.tz)
        today = local.date()
        now_ms = _ms(now)

        if s.daily_budget_usd > 0:
            since, until = reports.range_parse("today", self.tz, now)
            spent = reports.totals(conn, reports.Filters(since, until), self.mode).as_dict()[
                "cost_usd"
            ]
            if spent >= s.daily_budget_usd:
                alerts.append(
                    Alert(
                        rule="daily_budget",
                        window_key=today.isoformat(),
                        severity="warning",
                        title=f"Daily budget reached: {_money(spent)} today",
                        message=(
                            f"You have spent {_money(spent)} on agents today, over your daily "
                            f"budget of {_money(s.daily_budget_usd)}."
                        ),
                        details={"spent_usd": spent, "budget_usd": s.daily_budget_usd},
                    )
                )

        if s.monthly_budget_usd > 0:
            since, until = reports.range_parse("month", self.tz, now)
            spent = reports.totals(conn, reports.Filters(since, until), self.mode).as_dict()[
                "cost_usd"
            ]
            reached = [p for p in s.monthly_warn_percent if spent >= s.monthly_budget_usd * p / 100]
            if reached:
                pct = max(reached)
                alerts.append(
                    Alert(
                        rule=f"monthly_budget_{pct}",
                        window_key=today.strftime("%Y-%m"),
                        severity="critical" if pct >= 100 else "warning",
                        title=f"{pct}% of the monthly budget used: {_money(spent)}",
                        message=(
                            f"This month's agent spend is {_money(spent)}, {pct}% or more of your "
                            f"{_money(s.monthly_budget_usd)} monthly budget."
                        ),
                        details={
                            "spent_usd": spent,
                            "budget_usd": s.monthly_budget_usd,
                            "percent": pct,
                        },
                    )
                )
            elif local.day >= FORECAST_MIN_DAY:
                # Under budget so far, but on course to exceed it: say so while there is time.
                forecast = reports.forecast(conn, reports.Filters(), self.tz, now, self.mode)
                if forecast["expected_usd"] > s.monthly_budget_usd:
                    alerts.append(
                        Alert(
                            rule="monthly_forecast",
                            window_key=today.strftime("%Y-%m"),
                            severity="warning",
                            title=(
                                f"On course to exceed the monthly budget: "
                                f"{_money(forecast['expected_usd'])} expected"
                            ),
                            message=(
                                f"At this month's pace you will spend about "
                                f"{_money(forecast['expected_usd'])} (likely "
                                f"{_money(forecast['low_usd'])}-{_money(forecast['high_usd'])}) "
                                f"against a {_money(s.monthly_budget_usd)} budget; "
                                f"{_money(spent)} spent so far."
                            ),
                            details={
                                "spent_usd": spent,
                                "budget_usd": s.monthly_budget_usd,
                                "expected_usd": forecast["expected_usd"],
                                "low_usd": forecast["low_usd"],
                                "high_usd": forecast["high_usd"],
                            },
                        )
                    )

        hour = reports.totals(conn, reports.Filters(now_ms - HOUR_MS, now_ms + 1), self.mode)
        hour_d = hour.as_dict()
        hour_key = local.strftime("%Y-%m-%dT%H")
        hour_tokens = hour.total_tokens
        for rule, limit, value, what in (
            ("hourly_burn", s.hourly_burn_usd, hour_d["cost_usd"], "spend"),
            ("hourly_requests", s.hourly_requests, hour_d["turns"], "requests"),
            ("hourly_tokens", s.hourly_tokens, hour_tokens, "tokens"),
        ):
            if limit and value >= limit:
                money = rule == "hourly_burn"
                shown = _money(value) if money else f"{int(value):,} {what}"
                shown_limit = _money(limit) if money else f"{int(limit):,} {what}"
                alerts.append(
                    Alert(
                        rule=rule,
                        window_key=hour_key,
                        severity="warning",
                        title=f"High burn rate: {shown} in the last hour",
                        message=(
                            f"Your agents used {shown} in the last 60 minutes "
                            f"(limit {shown_limit} per hour)."
                        ),
                        details={"value": value, "limit": limit, "window_minutes": 60},
                    )
                )

        if s.session_spike_usd > 0:
            for sid, project, agent, cost in queries.session_costs(
                conn, now_ms - 6 * HOUR_MS, now_ms + 1, self.mode
            ):
                if cost >= s.session_spike_usd:
                    alerts.append(
                        Alert(
                            rule="session_spike",
                            window_key=sid,
                            severity="warning",
                            title=f"Expensive session: {_money(cost)}",
                            message=(
                                f"Session {sid[:12]} ({agent} in {project}) has cost "
                                f"{_money(cost)}, over the {_money(s.session_spike_usd)} limit."
                            ),
                            details={
                                "session_id": sid,
                                "project": project,
                                "agent": agent,
                                "cost_usd": cost,
                            },
                        )
                    )

        if s.anomaly:
            found = self._hour_anomaly(conn, now)
            if found is not None:
                alerts.append(found)
        if s.runaway:
            alerts.extend(self._runaways(conn, now))
        return alerts

    def baseline(
        self, conn: sqlite3.Connection, now: datetime
    ) -> anomaly.HourOfWeekBaseline | None:
        """The user's hour-of-week baseline over the eight weeks before this hour (None while
        there is less than two weeks of history to learn from)."""
        local_hour = now.astimezone(self.tz).replace(minute=0, second=0, microsecond=0)
        hour_ms = _ms(local_hour)
        if self._baseline_hour == hour_ms:
            return self._baseline
        first = conn.execute("SELECT MIN(ts) FROM turns").fetchone()[0]
        self._baseline_hour = hour_ms
        self._baseline = None
        if first is None or hour_ms - first < MIN_HISTORY_DAYS * 24 * HOUR_MS:
            return None
        since = max(first - first % HOUR_MS, hour_ms - BASELINE_WEEKS * 7 * 24 * HOUR_MS)
        history = queries.hourly_history(conn, self.tz, since, hour_ms, self.mode)
        built = anomaly.baseline_build(history)
        if built.typical_active_hour <= 0:
            return None
        self._baseline = built
        return built

    def _hour_anomaly(self, conn: sqlite3.Connection, now: datetime) -> Alert | None:
        baseline = self.baseline(conn, now)
        if baseline is None:
            return None
        local_hour = now.astimezone(self.tz).replace(minute=0, second=0, microsecond=0)
        spent = reports.totals(
            conn, reports.Filters(_ms(local_hour), _ms(now) + 1), self.mode
        ).as_dict()["cost_usd"]
        naive = local_hour.replace(tzinfo=None)
        if not baseline.is_unusual(naive, spent):
            return None
        expected = baseline.expected(naive)
        return Alert(
            rule="anomaly_hour",
            window_key=local_hour.strftime("%Y-%m-%dT%H"),
            severity="warning",
            title=f"Unusual spend: {_money(spent)} this hour",
            message=(
                f"{_money(spent)} so far this hour; you usually spend about {_money(expected)} "
                f"at this time on a {local_hour.strftime('%A')}."
            ),
            details={
                "cost_usd": spent,
                "expected_usd": round(expected, 6),
                "score": round(baseline.score(naive, spent), 2),
            },
        )

    def _runaways(self, conn: sqlite3.Connection, now: datetime) -> list[Alert]:
        now_ms = _ms(now)
        sids = queries.sessions_active(conn, now_ms - RUNAWAY_LOOKBACK_MS, now_ms + 1)
        out = []
        turns_by_session = queries.session_turns(
            conn, sids, now_ms - RUNAWAY_HISTORY_MS, now_ms + 1, self.mode
        )
        for sid, turns in turns_by_session.items():
            if not turns:
                continue
            finding = anomaly.session_runaway(
                [anomaly.SessionTurn(ts / 1000, cost, sig) for ts, cost, sig in turns]
            )
            if finding is None:
                continue
            out.append(
                Alert(
                    rule="runaway_session",
                    window_key=sid,
                    severity="critical",
                    title="Runaway session: an agent may be stuck in a loop",
                    message=f"Session {sid[:12]}: {finding.detail}.",
                    details={"session_id": sid, "kind": finding.kind, "at_turn": finding.at_turn},
                )
            )
        return out


# --- persistence ------------------------------------------------------------------------------


def alert_record(conn: sqlite3.Connection, alert: Alert, now: datetime) -> int | None:
    """Record the alert; its id if it is new in its window, None if it already fired."""
    with conn:
        cur = conn.execute(
            "INSERT OR IGNORE INTO alerts_fired "
            "(rule, window_key, fired_at, severity, title, message, details_json, channels_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, '[]')",
            (
                alert.rule,
                alert.window_key,
                _ms(now),
                alert.severity,
                alert.title,
                alert.message,
                json.dumps(alert.details, sort_keys=True),
            ),
        )
    return cur.lastrowid if cur.rowcount == 1 else None


def alert_channels_save(
    conn: sqlite3.Connection, alert_id: int, results: list[ChannelResult]
) -> None:
    with conn:
        conn.execute(
            "UPDATE alerts_fired SET channels_json = ? WHERE id = ?",
            (json.dumps([r.as_dict() for r in results]), alert_id),
        )


def alerts_fired_list(
    conn: sqlite3.Connection, tz: tzinfo, since_ms: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, rule, window_key, fired_at, severity, title, message, details_json, "
        "channels_json FROM alerts_fired WHERE fired_at >= ? ORDER BY fired_at DESC, id DESC "
        "LIMIT ?",
        (since_ms or 0, limit),
    ).fetchall()
    return [
        {
            "id": r[0],
            "rule": r[1],
            "window": r[2],
            "fired_at": datetime.fromtimestamp(r[3] / 1000, tz).isoformat(timespec="seconds"),
            "severity": r[4],
            "title": r[5],
            "message": r[6],
            "details": json.loads(r[7] or "{}"),
            "channels": json.loads(r[8] or "[]"),
        }
        for r in rows
    ]


class AlertDispatcher:
    """Sends recorded alerts on a background thread so slow channels never block a scan."""

    def __init__(
        self,
        db_path: Path,
        settings: AlertSettings,
        send: Callable[[Alert, AlertSettings], list[ChannelResult]] = channels_send,
    ) -> None:
        self.db_path = db_path
        self.settings = settings
        self._send = send
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clawtrace-alert")
        self._lock = threading.Lock()

    def submit(self, alert_id: int, alert: Alert) -> Future:
        return self._pool.submit(self._deliver, [alert_id], alert)

    def submit_batch(self, fired: list[tuple[int, Alert]]) -> list[Future]:
        """Send what one evaluation fired; more than DIGEST_OVER alerts go out as one digest
        (each record still gets the outcome), so a busy day does not ring the phone 15 times."""
        if len(fired) <= DIGEST_OVER:
            return [self.submit(alert_id, alert) for alert_id, alert in fired]
        worst = "critical" if any(a.severity == "critical" for _, a in fired) else "warning"
        digest = Alert(
            rule="digest",
            window_key=",".join(str(i) for i, _ in fired),
            severity=worst,
            title=f"{len(fired)} ClawTrace alerts",
            message="\n".join(f"- {a.title}" for _, a in fired),
            details={"alerts": [a.rule for _, a in fired]},
        )
        return [self._pool.submit(self._deliver, [i for i, _ in fired], digest)]

    def _deliver(self, alert_ids: list[int], alert: Alert) -> list[ChannelResult]:
        try:
            results = self._send(alert, self.settings)
        except Exception as exc:  # a channel bug must not lose the record's outcome
            results = [
                ChannelResult("internal", ok=False, error=f"{exc.__class__.__name__}: {exc}")
            ]
        from clawtrace import store

        with self._lock:
            conn = store.connect(self.db_path)
            try:
                for alert_id in alert_ids:
                    alert_channels_save(conn, alert_id, results)
            finally:
                conn.close()
        return results

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)


def alerts_run(
    conn: sqlite3.Connection,
    engine: AlertEngine,
    now: datetime,
    dispatcher: AlertDispatcher | None,
) -> list[tuple[int, Alert]]:
    """Evaluate, record what is new, hand it to the dispatcher; returns the new alerts."""
    fired = []
    for alert in engine.evaluate(conn, now):
        alert_id = alert_record(conn, alert, now)
        if alert_id is None:
            continue
        fired.append((alert_id, alert))
    if dispatcher is not None and fired:
        dispatcher.submit_batch(fired)
    return fired
