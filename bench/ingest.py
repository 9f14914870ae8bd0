#!/usr/bin/env python3
"""Benchmark the ingest API against the floor of PostgreSQL's COPY, in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/ingest.py \
        [--batches 200] [--senders 1,4,16] [--workers 3] [--port 8765]

The production stack on this machine: a fresh database (`clawtrace_bench`, dropped and made
again), migrated; gunicorn (sync workers, DEBUG off, persistent database connections) serving
`clawtrace_site.wsgi`. For each number of concurrent senders, that many threads (each its own
device, so the per-device throttle is not what is measured) post `--batches` gzip batches of
1,000 new events in all to `POST /api/v1/ingest` over keep-alive HTTP; every batch must answer
200 with 1,000 accepted (zero errors, or the run fails). Bodies are made and compressed before
the clock starts, as the agent's sender would have them ready.

The floor: the same rows (same values, same columns) COPY'd into the same table (under another
organization, so the ids do not collide), 1,000 rows a transaction like a batch, from one
connection, and once more as a single COPY of everything.

Prints a markdown table (events/s, p50/p99 ms per batch) and writes it with the raw figures to
bench/out/ingest-<time>.md. Never a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

logging.getLogger("httpx").setLevel(logging.WARNING)  # (a line per request otherwise)

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("BENCH_DB", "clawtrace_bench")
EVENTS_PER_BATCH = 1000


def _db_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def database_recreate(base_url: str, name: str = BENCH_DB) -> str:
    import psycopg

    with psycopg.connect(base_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return _db_url(base_url, name)


def django_setup(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawtrace_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def world_make(senders: int):
    """An organization with `senders` devices (their secrets), and one for the COPY floor."""
    from accounts.models import Organization
    from devices.services import _device_create

    bench = Organization.objects.create(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
    floor = Organization.objects.create(name="Floor", slug=f"floor-{uuid.uuid4().hex[:6]}")
    secrets = [
        _device_create(
            organization=bench,
            name=f"sender-{n}",
            os="Linux",
            agent_version="bench",
            created_by=None,
        )[1]
        for n in range(senders)
    ]
    floor_device, _ = _device_create(
        organization=floor, name="copy", os="Linux", agent_version="bench", created_by=None
    )
    return bench, secrets, floor, floor_device


MODELS = ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "glm-4.7"]
TOOLS = [["Read"], ["Read", "Edit"], ["Bash", "Bash", "Grep"], []]


def events_make(start: int, count: int) -> list[dict]:
    """`count` realistic, distinct events (ids from `start`)."""
    base = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    events = []
    for n in range(start, start + count):
        moment = base + dt.timedelta(seconds=n * 7)
        events.append(
            {
                "event_id": f"{n:016x}{(n * 0x9E3779B97F4A7C15) % 2**64:016x}",
                "source": "claude-code" if n % 5 else "openclaw",
                "agent": "" if n % 5 else "main",
                "project": f"project-{n % 37}",
                "session_id": str(uuid.UUID(int=n // 50)),
                "model": MODELS[n % 4],
                "provider": "anthropic" if n % 4 < 3 else "zai",
                "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "input_tokens": 3 + n % 900,
                "output_tokens": 20 + n % 4000,
                "cache_read_tokens": 10_000 + n % 90_000,
                "cache_write_5m_tokens": n % 3000,
                "cache_write_1h_tokens": 0 if n % 3 else 1200,
                "web_search_requests": n % 2,
                "cost_usd": f"0.{n % 1000000:06d}123456",
                "logged_cost_usd": None,
                "price_source": "genai-prices",
                "is_sidechain": n % 11 == 0,
                "tools": TOOLS[n % 4],
                "git_branch": "main" if n % 2 else f"feature-{n % 13}",
            }
        )
    return events


def gunicorn_start(db_url: str, port: int, workers: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DEBUG": "False",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1",
        # Persistent connections, as production runs: a connection per request would cost
        # more than the batch.
        "DATABASE_URL": db_url + "?conn_max_age=600",
        "SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "clawtrace_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--keep-alive",
            "30",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    gunicorn_stop(process)
    raise SystemExit("gunicorn did not come up")


def gunicorn_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def ingest_run(port: int, secrets: list[str], bodies: list[bytes]) -> dict:
    """Post every body, `len(secrets)` senders at once; wall time and per-batch latencies."""
    queues = [bodies[n :: len(secrets)] for n in range(len(secrets))]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(secrets) + 1)

    def sender(secret: str, mine: list[bytes]) -> None:
        headers = {
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            client.get("/healthz")  # the connection is open before the clock starts
            barrier.wait()
            for body in mine:
                started = time.perf_counter()
                response = client.post("/api/v1/ingest", content=body, headers=headers)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    ok = response.status_code == 200 and (
                        response.json().get("accepted") == EVENTS_PER_BATCH
                    )
                    if not ok:
                        errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [
        threading.Thread(target=sender, args=(secret, mine))
        for secret, mine in zip(secrets, queues, strict=True)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"wall": wall, "latencies": latencies, "errors": errors}


COPY_COLUMNS = (
    "organization_id, device_id, received_at, event_id, source, agent, project, session_id, "
    "model, provider, occurred_at, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, cost_usd, "
    "logged_cost_usd, price_source, is_sidechain, tools, git_branch"
)


def copy_rows(events: list[dict], organization_id: int, device_id: uuid.UUID) -> list[tuple]:
    from decimal import Decimal

    now = dt.datetime.now(dt.UTC)
    return [
        (
            organization_id,
            device_id,
            now,
            uuid.UUID(hex=e["event_id"]),
            e["source"],
            e["agent"],
            e["project"],
            e["session_id"],
            e["model"],
            e["provider"],
            dt.datetime.fromisoformat(e["timestamp"]),
            e["input_tokens"],
            e["output_tokens"],
            e["cache_read_tokens"],
            e["cache_write_5m_tokens"],
            e["cache_write_1h_tokens"],
            e["web_search_requests"],
            Decimal(e["cost_usd"]),
            None,
            e["price_source"],
            e["is_sidechain"],
            json.dumps(e["tools"]),
            e["git_branch"],
        )
        for e in events
    ]


def copy_run(db_url: str, rows: list[tuple], chunk: int) -> dict:
    """COPY `rows` into ingest_event, `chunk` rows a transaction; timed from the first row."""
    import psycopg

    latencies = []
    with psycopg.connect(db_url.replace("postgres://", "postgresql://")) as conn:
        started = time.perf_counter()
        for offset in range(0, len(rows), chunk):
            batch_started = time.perf_counter()
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY ingest_event ({COPY_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows[offset : offset + chunk]:
                    copy.write_row(row)
            conn.commit()
            latencies.append(time.perf_counter() - batch_started)
        wall = time.perf_counter() - started
    return {"wall": wall, "latencies": latencies, "errors": []}


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200, help="batches per level")
    parser.add_argument("--senders", default="1,4,16")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    levels = [int(n) for n in args.senders.split(",")]
    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not base_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("DATABASE_URL must point at PostgreSQL")

    db_url = database_recreate(base_url)
    django_setup(db_url)
    _bench, secrets, floor, floor_device = world_make(max(levels))
    from django.db import connection

    connection.close()

    total = args.batches * EVENTS_PER_BATCH
    runs: list[tuple[str, dict, int]] = []
    server = gunicorn_start(db_url, args.port, args.workers)
    try:
        start = 0
        for senders in levels:
            batches = [
                events_make(start + n * EVENTS_PER_BATCH, EVENTS_PER_BATCH)
                for n in range(args.batches)
            ]
            bodies = [gzip.compress(orjson.dumps({"events": b}), 6, mtime=0) for b in batches]
            start += total
            load = os.getloadavg()[0]
            result = ingest_run(args.port, secrets[:senders], bodies)
            result["load"] = load
            runs.append(
                (
                    f"POST /api/v1/ingest, {senders} sender{'s' if senders > 1 else ''}",
                    result,
                    total,
                )
            )
            if result["errors"]:
                raise SystemExit(f"{len(result['errors'])} errors, e.g. {result['errors'][0]}")
            # The floor, right after, on the same rows (so the table has grown alike).
            rows = copy_rows([e for b in batches for e in b], floor.pk, floor_device.pk)
            load = os.getloadavg()[0]
            floor_run = copy_run(db_url, rows, EVENTS_PER_BATCH)
            floor_run["load"] = load
            runs.append((f"COPY, 1,000-row transactions (after {senders})", floor_run, total))
        rows = copy_rows(events_make(10**9, total), floor.pk, floor_device.pk)
        load = os.getloadavg()[0]
        floor_run = copy_run(db_url, rows, total)
        floor_run["load"] = load
        runs.append(("COPY, one transaction", floor_run, total))
    finally:
        gunicorn_stop(server)

    lines = [
        f"ingest benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"gunicorn {args.workers} sync workers, {args.batches} batches of {EVENTS_PER_BATCH} "
        "events per row",
        "",
        "| what | events/s | p50 ms/batch | p99 ms/batch | errors | load before |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, result, count in runs:
        rate = count / result["wall"]
        lines.append(
            f"| {label} | {rate:,.0f} | {_ms(result['latencies'], 0.5):.1f} | "
            f"{_ms(result['latencies'], 0.99):.1f} | {len(result['errors'])} | "
            f"{result['load']:.2f} |"
        )
    ingest_rates = [count / r["wall"] for label, r, count in runs if label.startswith("POST")]
    copy_rates = [count / r["wall"] for label, r, count in runs if label.startswith("COPY, 1,000")]
    lines += [
        "",
        f"best ingest / median COPY (1,000-row transactions): "
        f"{max(ingest_rates) / statistics.median(copy_rates):.2f}",
        "",
        "load before: the 1-minute load average as the row started (2 cores, shared: above ~1 "
        "something else was running).",
    ]
    table = "\n".join(lines)
    print(table)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / f"ingest-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
