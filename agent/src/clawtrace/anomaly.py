"""Anomaly detection beyond fixed thresholds.

Two detectors, both pure functions of plain data so they can be measured on generated histories
(`bench/anomaly_eval.py`) and fed from the store alike:

* An hour-of-week baseline: for every (weekday, hour) of the user's local week, the median and
  the MAD of what that user spent in that hour over recent weeks, pooled with the neighbouring
  hours of the same weekday so eight weeks give ~24 samples per bucket rather than 8. An hour is
  unusual when its spend sits many robust deviations above that bucket's median, even if it stays
  under every fixed limit.
* A runaway-session detector: a session whose spend per minute climbs far above its own start,
  or which repeats the same tool call over and over (an agent stuck in a loop).

Robust statistics (median, MAD) because spend is heavy-tailed: a single big day would drag a
mean/stddev baseline up and hide the next spike.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

# 1.4826 * MAD estimates the standard deviation of normally distributed data.
MAD_SCALE = 1.4826
HOURS_PER_WEEK = 168


@dataclass(frozen=True)
class BaselineSettings:
    """Knobs of the hour-of-week detector (defaults chosen on generated histories, see bench)."""

    # Robust z-score above which an hour is unusual.
    z_threshold: float = 8.0
    # Never flag an hour that cost less than this: a $0.30 hour is not worth a notification.
    min_cost_usd: float = 0.5
    # The flagged hour must also be this many times the bucket median (guards noisy buckets).
    min_ratio: float = 2.5
    # Lower bound of the scale, as a fraction of the user's typical active hour: a bucket that
    # is almost always zero has MAD 0, and any spend there would otherwise be "infinitely" odd.
    scale_floor_fraction: float = 0.5
    # Neighbouring hours pooled into each bucket, on each side.
    pool_hours: int = 1
    # Buckets with fewer samples fall back to the hour-of-day bucket across all weekdays.
    min_samples: int = 6


@dataclass(frozen=True)
class BucketStats:
    median: float
    mad: float
    samples: int


@dataclass
class HourOfWeekBaseline:
    """Per hour-of-week robust statistics of a user's hourly spend (local time)."""

    buckets: list[BucketStats]
    typical_active_hour: float
    settings: BaselineSettings = field(default_factory=BaselineSettings)

    def scale(self, bucket: BucketStats) -> float:
        floor = self.settings.scale_floor_fraction * self.typical_active_hour
        return max(MAD_SCALE * bucket.mad, floor, 0.01)

    def score(self, when: datetime, cost_usd: float) -> float:
        """Robust z-score of `cost_usd` spent in the local hour starting at `when`."""
        bucket = self.buckets[hour_of_week(when)]
        return (cost_usd - bucket.median) / self.scale(bucket)

    def is_unusual(self, when: datetime, cost_usd: float) -> bool:
        settings = self.settings
        if cost_usd < settings.min_cost_usd:
            return False
        bucket = self.buckets[hour_of_week(when)]
        if cost_usd < settings.min_ratio * bucket.median:
            return False
        return self.score(when, cost_usd) >= settings.z_threshold

    def expected(self, when: datetime) -> float:
        return self.buckets[hour_of_week(when)].median


def hour_of_week(when: datetime) -> int:
    """0 = Monday 00:00-01:00 local, 167 = Sunday 23:00-24:00 local."""
    return when.weekday() * 24 + when.hour


def _median_mad(values: Sequence[float]) -> tuple[float, float]:
    med = statistics.median(values)
    mad = statistics.median([abs(v - med) for v in values])
    return med, mad


def baseline_build(
    history: Iterable[tuple[datetime, float]],
    settings: BaselineSettings | None = None,
) -> HourOfWeekBaseline:
    """Build the baseline from a zero-filled series of (local hour start, spend in USD).

    The series must include the hours with no spend (as 0.0): they are what makes a 3 a.m. burst
    unusual for someone who never works at 3 a.m.
    """
    settings = settings or BaselineSettings()
    by_how: list[list[float]] = [[] for _ in range(HOURS_PER_WEEK)]
    active: list[float] = []
    for when, cost in history:
        by_how[hour_of_week(when)].append(cost)
        if cost > 0:
            active.append(cost)
    typical = statistics.median(active) if active else 0.0

    by_hour_of_day: list[list[float]] = [[] for _ in range(24)]
    for how, values in enumerate(by_how):
        by_hour_of_day[how % 24].extend(values)

    buckets: list[BucketStats] = []
    for how in range(HOURS_PER_WEEK):
        day, hour = divmod(how, 24)
        pooled: list[float] = []
        for delta in range(-settings.pool_hours, settings.pool_hours + 1):
            # Pool within the same weekday only: Monday 00:00 and Sunday 23:00 are different
            # habits, and wrapping around midnight would blur them.
            neighbour = hour + delta
            if 0 <= neighbour < 24:
                pooled.extend(by_how[day * 24 + neighbour])
        if len(pooled) < settings.min_samples:
            pooled = pooled + by_hour_of_day[hour]
        if not pooled:
            buckets.append(BucketStats(0.0, 0.0, 0))
            continue
        med, mad = _median_mad(pooled)
        buckets.append(BucketStats(med, mad, len(pooled)))
    return HourOfWeekBaseline(buckets=buckets, typical_active_hour=typical, settings=settings)


@dataclass(frozen=True)
class HourAnomaly:
    hour_start: datetime
    cost_usd: float
    expected_usd: float
    score: float


def hours_unusual(
    baseline: HourOfWeekBaseline, hours: Iterable[tuple[datetime, float]]
) -> list[HourAnomaly]:
    """The hours in `hours` whose spend is unusual against `baseline`."""
    found = []
    for when, cost in hours:
        if baseline.is_unusual(when, cost):
            found.append(
                HourAnomaly(
                    hour_start=when,
                    cost_usd=cost,
                    expected_usd=baseline.expected(when),
                    score=baseline.score(when, cost),
                )
            )
    return found


# --- Runaway sessions -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunawaySettings:
    # The session's "start": its first minutes, human pauses included.
    start_minutes: float = 10.0
    # Sliding window compared with the start. Minutes rather than turns: a loop is sustained
    # spend with no human pause, while normal work comes in bursts between prompts.
    window_minutes: float = 10.0
    # Window rate must exceed the start rate by this factor...
    rate_factor: float = 8.0
    # ...and exceed this absolute rate, so a cheap session speeding up is not news.
    min_rate_usd_per_min: float = 1.0
    # Consecutive turns making the very same tool call(s) that count as a loop.
    repeat_run: int = 20
    # A repeat run is only a runaway once it has cost at least this much.
    repeat_min_cost_usd: float = 1.0


@dataclass(frozen=True)
class SessionTurn:
    ts: float  # epoch seconds
    cost_usd: float
    # What identifies "the same tool call": the tool names of the turn, or a finer signature
    # (e.g. a hash of name + input) where the store has one. Empty = no tool call.
    tool_signature: str = ""


@dataclass(frozen=True)
class RunawayFinding:
    kind: str  # "rate" or "repeat"
    at_turn: int
    detail: str
    start_rate_usd_per_min: float = 0.0
    rate_usd_per_min: float = 0.0
    repeat_count: int = 0
    repeat_signature: str = ""


def _rate_climb(turns: Sequence[SessionTurn], settings: RunawaySettings) -> RunawayFinding | None:
    """First turn at which the spend of the last `window_minutes` runs `rate_factor` times the
    spend per minute of the session's first `start_minutes`."""
    if not turns:
        return None
    t0 = turns[0].ts
    start_cost = sum(t.cost_usd for t in turns if t.ts - t0 <= settings.start_minutes * 60)
    start_rate = start_cost / settings.start_minutes
    threshold = max(start_rate * settings.rate_factor, settings.min_rate_usd_per_min)
    window_s = settings.window_minutes * 60
    lo = 0
    window_cost = 0.0
    for i, turn in enumerate(turns):
        window_cost += turn.cost_usd
        while turn.ts - turns[lo].ts > window_s:
            window_cost -= turns[lo].cost_usd
            lo += 1
        # The window must lie after the start, or it would be measuring the start itself.
        if turns[lo].ts - t0 <= settings.start_minutes * 60:
            continue
        rate = window_cost / settings.window_minutes
        if rate >= threshold:
            return RunawayFinding(
                kind="rate",
                at_turn=i,
                detail=(
                    f"spend rate ${rate:.2f}/min over the last {settings.window_minutes:g} "
                    f"minutes is {rate / max(start_rate, 1e-9):.0f}x the session's start "
                    f"(${start_rate:.2f}/min)"
                ),
                start_rate_usd_per_min=start_rate,
                rate_usd_per_min=rate,
            )
    return None


def _repeat_run(turns: Sequence[SessionTurn], settings: RunawaySettings) -> RunawayFinding | None:
    """First stretch where the session repeats the same call, or the same 2- or 3-call cycle
    ("edit, run test, edit, run test..."), `repeat_run` turns long."""
    best: RunawayFinding | None = None
    sigs = [t.tool_signature for t in turns]
    for period in (1, 2, 3):
        run = 0  # turns i with sigs[i] == sigs[i - period], consecutively
        for i in range(period, len(turns)):
            if sigs[i] and sigs[i] == sigs[i - period]:
                run += 1
            else:
                run = 0
                continue
            length = run + period
            if length < settings.repeat_run:
                continue
            first = i - length + 1
            run_cost = sum(t.cost_usd for t in turns[first : i + 1])
            if run_cost < settings.repeat_min_cost_usd:
                continue
            if best is None or i < best.at_turn:
                cycle = " > ".join(sigs[first : first + period])
                best = RunawayFinding(
                    kind="repeat",
                    at_turn=i,
                    detail=(
                        f"{length} consecutive turns repeating the same tool call"
                        f"{'s' if period > 1 else ''} ({cycle}) costing ${run_cost:.2f}"
                    ),
                    repeat_count=length,
                    repeat_signature=cycle,
                )
            break
    return best


def session_runaway(
    turns: Sequence[SessionTurn], settings: RunawaySettings | None = None
) -> RunawayFinding | None:
    """The first sign that this session ran away, or None.

    `turns` must be in time order. Checks both signals and returns whichever appears first.
    """
    settings = settings or RunawaySettings()
    rate_hit = _rate_climb(turns, settings)
    repeat_hit = _repeat_run(turns, settings)
    hits = [h for h in (rate_hit, repeat_hit) if h is not None]
    if not hits:
        return None
    return min(hits, key=lambda h: h.at_turn)
