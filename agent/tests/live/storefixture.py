"""A deterministic fixture store for the live tests: sixty days of realistic turns.

Several projects, models, agents and tools; a working-hours rhythm; one session that falls into
a loop on the last day (the same Bash call, faster and faster); one unusually expensive hour.
Everything is relative to NOW so the API's "today" and "this month" have data.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clawtrace import store

NOW = datetime(2026, 11, 20, 15, 40, tzinfo=UTC)  # a Friday afternoon
TZ_NAME = "Europe/Paris"
PICO = store.PICO

PROJECTS = ["/home/ada/src/webshop", "/home/ada/src/infra", "/home/ada/notes"]
MODELS = [
    ("claude-sonnet-4-5", "anthropic", 1.0),
    ("claude-opus-4-1", "anthropic", 4.0),
    ("claude-haiku-4-5", "anthropic", 0.3),
]
TOOLS = ["Read", "Edit", "Bash", "Grep", "Glob", "Write", "TodoWrite"]
LOOP_SESSION = "sess-loop-0001"
# Names as long as real ones get: a Bedrock inference profile, a service deep in a monorepo.
LONG_MODEL = (
    "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "bedrock",
    1.2,
)
LONG_PROJECT = "/home/ada/src/acme-customer-portal-monorepo/services/billing-reconciliation-worker"
OLD_PROJECT = "/home/ada/src/legacy-shop"


def _row(
    n: int,
    *,
    session: str,
    project: str,
    agent: str,
    source: str,
    model: tuple[str, str, float],
    ts: datetime,
    cost_usd: float,
    tools: list[str],
) -> dict:
    name, provider, _ = model
    inp, out, cread, cwrite = 1200, 400, 20000, 800
    return {
        "key_hash": store.key_hash(f"k{n}"),
        "msg_hash": store.key_hash(f"msg_{n}"),
        "dedup_key": f"k{n}",
        "msg_id": f"msg_{n}",
        "source": source,
        "agent": agent,
        "project": project,
        "session_id": session,
        "is_sidechain": 0,
        "model": name,
        "provider": provider,
        "ts": int(ts.timestamp() * 1000),
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": cread,
        "cache_write_5m_tokens": cwrite,
        "total_tokens": inp + out + cread + cwrite,
        "cost_pico": round(cost_usd * 1_000_000) * 1_000_000,
        "price_source": "genai-prices:test",
        "git_branch": "main",
        "tools": json.dumps(tools),
    }


def fixture_rows(now: datetime = NOW, days: int = 60, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    n = 0
    start_day = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    for d in range(days + 1):
        day = start_day + timedelta(days=d)
        weekend = day.weekday() >= 5
        sessions_today = rng.randint(0, 1) if weekend else rng.randint(2, 4)
        for s in range(sessions_today):
            start = day + timedelta(hours=rng.randint(7, 15), minutes=rng.randint(0, 59))
            if start + timedelta(hours=1) > now:
                continue
            project = rng.choice(PROJECTS)
            model = rng.choices(MODELS, weights=[6, 2, 2])[0]
            source = rng.choice(["claude-code", "claude-code", "openclaw"])
            agent = "claude" if source == "claude-code" else rng.choice(["main", "ops"])
            sid = f"sess-{d:03d}-{s}"
            t = start
            sig = rng.choice(TOOLS)
            for i in range(rng.randint(8, 30)):
                t += timedelta(seconds=rng.randint(5, 240))
                if t >= now:
                    break
                if rng.random() > 0.5:
                    sig = rng.choice(TOOLS)
                cost = model[2] * rng.uniform(0.01, 0.05) * (1 + i / 10)
                n += 1
                rows.append(
                    _row(
                        n,
                        session=sid,
                        project=project,
                        agent=agent,
                        source=source,
                        model=model,
                        ts=t,
                        cost_usd=cost,
                        tools=[sig] if rng.random() > 0.15 else [],
                    )
                )
    # Today: an agent stuck running the same command, every few seconds, context growing.
    t = now - timedelta(minutes=25)
    for i in range(60):
        t += timedelta(seconds=rng.randint(20, 40) if i < 10 else rng.randint(4, 8))
        n += 1
        rows.append(
            _row(
                n,
                session=LOOP_SESSION,
                project=PROJECTS[0],
                agent="claude",
                source="claude-code",
                model=MODELS[1],
                ts=t,
                cost_usd=0.02 if i < 10 else 0.05 + 0.004 * i,
                tools=["Bash"],
            )
        )
    return rows


def _session_rows(
    rng: random.Random, n: int, sid: str, start: datetime, turns: int, **fields: object
) -> list[dict]:
    model = fields.pop("model")
    rows = []
    t = start
    for i in range(turns):
        t += timedelta(seconds=rng.randint(20, 200))
        cost = model[2] * rng.uniform(0.01, 0.05) * (1 + i / 10)
        rows.append(
            _row(n + i, session=sid, model=model, ts=t, cost_usd=cost, tools=["Edit"], **fields)
        )
    return rows


def realistic_extra_rows(now: datetime = NOW, seed: int = 11) -> list[dict]:
    """What a store that has been in use for a while also holds, beside fixture_rows: a session a
    day of the last week under the long model and project names, and history from 100 to 480
    days ago (a project given up since), which only `range=all` shows."""
    rng = random.Random(seed)
    rows: list[dict] = []
    n = 1_000_000
    for d in range(1, 6):
        start = (now - timedelta(days=d)).replace(hour=10, minute=rng.randint(0, 59))
        sid = f"sess-long-{d}"
        rows += _session_rows(
            rng,
            n,
            sid,
            start,
            12,
            project=LONG_PROJECT,
            agent="claude",
            source="claude-code",
            model=LONG_MODEL,
        )
        n += 100
    for d in range(100, 481, 9):
        start = (now - timedelta(days=d)).replace(hour=rng.randint(8, 17), minute=0)
        rows += _session_rows(
            rng,
            n,
            f"sess-old-{d:03d}",
            start,
            rng.randint(5, 20),
            project=rng.choice([OLD_PROJECT, PROJECTS[1], LONG_PROJECT]),
            agent="claude",
            source="claude-code",
            model=rng.choice(MODELS),
        )
        n += 100
    return rows


def old_only_rows(now: datetime = NOW, days_ago: int = 150, turns: int = 9) -> list[dict]:
    """A store whose only turns are older than 90 days (logs of a machine left unused)."""
    start = (now - timedelta(days=days_ago)).replace(hour=9, minute=0)
    return _session_rows(
        random.Random(3),
        1,
        "sess-old-only",
        start,
        turns,
        project=OLD_PROJECT,
        agent="claude",
        source="claude-code",
        model=MODELS[0],
    )


def fixture_store_build(path: Path, now: datetime = NOW, rows: list[dict] | None = None) -> Path:
    """The store of fixture_rows, or of the rows given."""
    conn = store.connect(path)
    with conn:
        store.turns_write_named(conn, fixture_rows(now) if rows is None else rows)
    store.meta_set(conn, "last_scan", str(int(now.timestamp() * 1000)))
    conn.close()
    return path
