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


def fixture_store_build(path: Path, now: datetime = NOW) -> Path:
    conn = store.connect(path)
    with conn:
        store.turns_write_named(conn, fixture_rows(now))
    store.meta_set(conn, "last_scan", str(int(now.timestamp() * 1000)))
    conn.close()
    return path
