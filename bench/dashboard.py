#!/usr/bin/env python3
"""Benchmark the dashboard's reads: every overview selector over the rollups, beside the same
questions asked of the raw events table, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/dashboard.py \
        [--big 10000000] [--others 1000000] [--orgs 10] [--days 120] [--repeat 20] [--reuse]

A fresh database (`bench_dashboard`, or `$BENCH_DB`), dropped and made again unless --reuse,
migrated. One organization gets `--big` events and each of the `--orgs - 1` others `--others`,
made by the database itself (INSERT ... SELECT over generate_series: faster than COPY from
Python here): sessions of 40-400 turns on the organization's devices (one member each), a few
models, projects, agents and tool lists, costs on most turns, over `--days` days ending now,
most of it in working hours. The big organization is in Asia/Kolkata (+05:30), so its days are
not UTC's.

Then, timed:
- rollup build (`rollups_rebuild` of every organization): events/s;
- rollup upkeep: the buckets of the big organization's last six hours (then 48) marked dirty
  in 1,000-event batches as ingest would, then `rollups_refresh` until the queue is empty:
  events/s of the events in the buckets it recomputed;
- p50/p95 of each overview selector (range 30d) over `--repeat` runs, of the whole overview
  (all of them in a row, in one request's memo as the view makes them), and of the page
  rendered through the test client, unfiltered and filtered by a project;
- p50/p95 of the same questions asked of `ingest_event` directly (fewer runs: they are slow).

Prints a markdown table and writes it, the raw figures and EXPLAIN ANALYZE of the main queries
to bench/out/dashboard-<time>.md. Never a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
# Its own database, dropped and made again each run; BENCH_DB names another, so that two
# people on one server do not drop each other's (as bench/ingest.py).
BENCH_DB = os.environ.get("BENCH_DB", "bench_dashboard")
BIG_ZONE = "Asia/Kolkata"
COLUMNS = (
    "organization_id, event_id, device_id, source, agent, project, session_id, model, provider, "
    "occurred_at, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, "
    "cache_write_1h_tokens, web_search_requests, cost_usd, logged_cost_usd, price_source, "
    "is_sidechain, tools, git_branch, received_at"
)


def _db_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def database_recreate(base_url: str) -> str:
    import psycopg

    with psycopg.connect(base_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return _db_url(base_url, BENCH_DB)


def django_setup(db_url: str, *, migrate: bool) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ["DEBUG"] = "False"
    os.environ.setdefault("SECRET_KEY", "bench-dashboard-not-secret")
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawtrace_site.settings")
    os.environ["CONN_MAX_AGE"] = "600"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


# --- The world ----------------------------------------------------------------------------------


def world_make(orgs: int, big_devices: int, small_devices: int):
    """Organizations with members, each with a device (created_by: the member)."""
    from accounts.models import Membership, Organization, Role, User
    from devices.models import Device

    made = []
    for n in range(orgs):
        big = n == 0
        organization = Organization.objects.create(
            name=f"Bench {n}", slug=f"bench-{n}", time_zone=BIG_ZONE if big else "UTC", plan="team"
        )
        devices = []
        for d in range(big_devices if big else small_devices):
            user = User.objects.create_user(email=f"m{d}@bench-{n}.example", password=None)
            Membership.all_orgs.create(
                organization=organization, user=user, role=Role.OWNER if d == 0 else Role.MEMBER
            )
            devices.append(
                Device.all_orgs.create(
                    organization=organization,
                    name=f"laptop-{d}",
                    secret_digest=uuid.uuid4().hex + uuid.uuid4().hex,
                    created_by=user,
                )
            )
        made.append((organization, devices))
    return made


_LOAD_SQL = """
WITH sessions AS (
    SELECT s,
        (%(devices)s::uuid[])[1 + (s %% %(device_count)s)] AS device_id,
        40 + floor(random() * 361)::int AS turns,
        -- A day of the span, then mostly working hours (09-19 on the organization's clock).
        date_trunc('day', now() - random() * %(days)s * interval '1 day')
            + CASE WHEN random() < 0.9
                THEN (9 + random() * 10 - %(utc_offset)s) * interval '1 hour'
                ELSE random() * interval '24 hours' END AS started,
        (ARRAY['claude-sonnet-4-5','claude-sonnet-4-5','claude-sonnet-4-5','claude-opus-4-1',
               'claude-haiku-4-5','claude-haiku-4-5','gpt-5'])[1 + floor(random() * 7)::int]
            AS model,
        'project-' || floor(random() * 25)::int AS project,
        CASE WHEN random() < 0.85 THEN 'claude-code' ELSE 'openclaw' END AS source
    FROM generate_series(1, %(session_count)s) AS s
), turns AS (
    SELECT sessions.*, t, random() AS r1, random() AS r2, random() AS r3, random() AS r4
    FROM sessions CROSS JOIN LATERAL generate_series(1, sessions.turns) AS t
    LIMIT %(count)s
)
INSERT INTO ingest_event ({columns})
SELECT %(organization_id)s, md5(%(organization_id)s || ':' || s || ':' || t)::uuid, device_id,
    source, CASE WHEN r1 < 0.15 THEN 'explorer' ELSE '' END, project,
    md5('session' || %(organization_id)s || ':' || s)::uuid::text, model,
    CASE WHEN model = 'gpt-5' THEN 'openai' ELSE 'anthropic' END,
    LEAST(started + t * (4 + r2 * 56) * interval '1 second', now() - interval '1 second'),
    3 + floor(r3 * 3000)::int, 20 + floor(r4 * 4000)::int,
    5000 + floor(r2 * 145000)::int, floor(r1 * 8000)::int, 0, 0,
    CASE WHEN r4 < 0.03 THEN NULL
        ELSE round(((3 + r3 * 3000) * 3 + (20 + r4 * 4000) * 15 + (5000 + r2 * 145000) * 0.3
            + r1 * 8000 * 3.75)::numeric / 1000000, 12) END,
    NULL, 'genai-prices', r1 < 0.15,
    (ARRAY['["Read"]', '["Read", "Edit"]', '["Bash", "Bash", "Grep"]', '[]', '["Edit"]',
           '["mcp__github__create_pr"]'])[1 + floor(r3 * 6)::int]::jsonb,
    'main', now()
FROM turns
"""


def events_load(organization, devices, count: int, days: int, seed: int) -> float:
    """Make `count` events in the database itself (sessions of 40-400 turns on the devices,
    over `days` days ending now); seconds taken. Generated by PostgreSQL rather than COPY'd
    from Python: making the rows in Python ran at 18,000 a second on this machine, the
    database makes them at several times that, and it is the reads that are measured."""
    from django.db import connection

    offset = dt.datetime.now(organization.zone).utcoffset().total_seconds() / 3600
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed / 1000])
        cursor.execute(
            _LOAD_SQL.format(columns=COLUMNS),
            {
                "devices": [str(device.pk) for device in devices],
                "device_count": len(devices),
                "days": days,
                "utc_offset": offset,
                "session_count": count // 200 + 10,
                "count": count,
                "organization_id": organization.pk,
            },
        )
    return time.monotonic() - started


# --- Timing -------------------------------------------------------------------------------------


def timed(call, repeat: int) -> tuple[float, float, list[float]]:
    call()  # warm (connection, plan cache, the price table)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95, samples


def overview_selectors(organization):
    from analytics import selectors

    filters = selectors.usage_filter_parse(organization=organization, params={"range": "30d"})
    return {
        "totals (30d)": lambda: selectors.usage_totals(organization=organization, filters=filters),
        "today / week / month": lambda: selectors.period_totals(organization=organization),
        "month-end forecast": lambda: selectors.month_forecast(organization=organization),
        "series by day (30d)": lambda: selectors.usage_series(
            organization=organization, filters=filters, by="day"
        ),
        "series by hour (today)": lambda: selectors.usage_series(
            organization=organization,
            filters=selectors.usage_filter_parse(
                organization=organization, params={"range": "today"}
            ),
            by="hour",
        ),
        **{
            f"breakdown by {by}": (
                lambda by=by: selectors.usage_breakdown(
                    organization=organization, filters=filters, by=by
                )
            )
            for by in ("member", "device", "project", "model", "agent")
        },
        "top 10 sessions": lambda: selectors.session_top(
            organization=organization, filters=filters, n=10
        ),
        "cache savings": lambda: selectors.cache_savings(
            organization=organization, filters=filters
        ),
        "cost per tool": lambda: selectors.tool_costs(organization=organization, filters=filters),
        "budgets": lambda: selectors.budget_status_list(organization=organization),
        "members vs plans": lambda: selectors.member_plan_comparison(organization=organization),
        "anomalies": lambda: list(
            selectors.anomaly_list(organization=organization, filters=filters)
        ),
    }


def overview_get(organization, user, query: str = ""):
    """The overview page as a signed-in owner's browser asks for it (view, every selector it
    calls, the template), through Django's test client: what the selectors' sum leaves out."""
    from django.test import Client, override_settings
    from django.urls import reverse

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    url = reverse("dashboard:overview", kwargs={"org_slug": organization.slug})
    url += f"?{query}" if query else ""
    # Plain static storage: the manifest one needs a collectstatic the bench does not run.
    storage = override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    )

    def call():
        with storage:
            response = client.get(url, secure=True)
        if response.status_code != 200:  # (a redirect would time nothing)
            raise SystemExit(f"GET {url} answered {response.status_code}")

    return call


def raw_questions(organization):
    """The same questions of the raw events, as one would write them without rollups."""
    from django.db import connection

    zone = organization.time_zone
    org = organization.pk
    since = (
        "(date_trunc('day', now() AT TIME ZONE %(zone)s) - interval '29 days') "
        "AT TIME ZONE %(zone)s"
    )
    where = f"WHERE e.organization_id = %(org)s AND e.occurred_at >= {since}"
    base = f"FROM ingest_event e {where}"
    sums = (
        "COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), "
        "SUM(cache_write_5m_tokens + cache_write_1h_tokens), SUM(cost_usd)"
    )
    month = "date_trunc('month', now() AT TIME ZONE %(zone)s) AT TIME ZONE %(zone)s"
    questions = {
        "totals (30d)": f"SELECT {sums}, COUNT(DISTINCT (source, session_id)) {base}",
        "series by day (30d)": (
            f"SELECT (occurred_at AT TIME ZONE %(zone)s)::date, {sums} {base} GROUP BY 1"
        ),
        "breakdown by member": (
            f"SELECT d.created_by_id, {sums} FROM ingest_event e "
            f"JOIN devices_device d ON d.id = e.device_id {where} GROUP BY 1"
        ),
        "breakdown by model": f"SELECT model, {sums} {base} GROUP BY 1",
        "breakdown by project": f"SELECT project, {sums} {base} GROUP BY 1",
        "top 10 sessions": (
            f"SELECT source, session_id, {sums} {base} GROUP BY 1, 2 "
            "ORDER BY SUM(cost_usd) DESC NULLS LAST LIMIT 10"
        ),
        "cost per tool": (
            "SELECT t.tool, COUNT(*), SUM(COALESCE(e.cost_usd, 0) / jsonb_array_length(e.tools)) "
            "FROM ingest_event e CROSS JOIN LATERAL jsonb_array_elements_text(e.tools) AS t(tool) "
            f"{where} GROUP BY 1"
        ),
        "today / week / month": (
            f"SELECT {sums} FROM ingest_event e "
            f"WHERE e.organization_id = %(org)s AND e.occurred_at >= {month}"
        ),
    }

    def run(sql):
        def call():
            with connection.cursor() as cursor:
                cursor.execute(sql, {"org": org, "zone": zone})
                cursor.fetchall()

        return call

    return {name: run(sql) for name, sql in questions.items()}


def explain(call) -> list[str]:
    """EXPLAIN ANALYZE of the slowest statement a selector runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
        return [slowest["sql"][:600], *(row[0] for row in cursor.fetchall())]


def upkeep(organization, hours: int = 6) -> tuple[int, float]:
    """Mark the last `hours` of the organization's buckets dirty (as 1,000-event ingest
    batches would), refresh until the queue is empty; (events recomputed, seconds)."""
    from accounts.tenancy import organization_scope
    from analytics.services import rollup_buckets_mark, rollups_refresh
    from ingest.models import Event

    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    with organization_scope(organization):
        times = list(
            Event.objects.filter(occurred_at__gte=since)
            .order_by("occurred_at")
            .values_list("occurred_at", flat=True)
        )
    from unittest import mock

    with mock.patch("analytics.services.rollups.rollups_refresh_schedule"):
        for start in range(0, len(times), 1000):
            rollup_buckets_mark(
                organization_id=organization.pk, occurred_at=times[start : start + 1000]
            )
    started = time.monotonic()
    while rollups_refresh(organization=organization).more:
        pass
    return len(times), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big", type=int, default=10_000_000)
    parser.add_argument("--others", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--raw-repeat", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="Keep the loaded database.")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    if args.reuse:
        # (Migrated again: a loaded database outlives the code that made it.)
        django_setup(_db_url(base, BENCH_DB), migrate=True)
        from django.db import connection

        from accounts.models import Organization
        from analytics.services.rollups import ROLLUP_MODELS

        organizations = list(Organization.objects.order_by("pk"))
        # The build below is timed from empty tables, as on a first run: rebuilding over the
        # rows of the last run would time their deletion and the dead rows left behind.
        tables = [model._meta.db_table for model in ROLLUP_MODELS]
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(tables)}, analytics_rollupstate")
            cursor.execute("VACUUM ANALYZE")
    else:
        django_setup(database_recreate(base), migrate=True)
        world = world_make(args.orgs, big_devices=60, small_devices=8)
        loaded = 0
        started = time.monotonic()
        for index, (organization, devices) in enumerate(world):
            count = args.big if index == 0 else args.others
            seconds = events_load(organization, devices, count, args.days, seed=index)
            loaded += count
            print(f"loaded {count:,} events for {organization.slug} in {seconds:.0f} s", flush=True)
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        say(f"Loaded {loaded:,} events in {time.monotonic() - started:.0f} s.")
        organizations = [organization for organization, _ in world]

    from analytics.services import budget_set, rollups_rebuild

    big = organizations[0]
    say()
    say("| Rollups | events | seconds | events/s |")
    say("|---|---:|---:|---:|")
    total_events, total_seconds = 0, 0.0
    for organization in organizations:
        started = time.monotonic()
        events = rollups_rebuild(organization=organization)
        seconds = time.monotonic() - started
        total_events += events
        total_seconds += seconds
        if organization == big:
            rate = events / seconds
            say(f"| build, {organization.slug} | {events:,} | {seconds:.1f} | {rate:,.0f} |")
    rate = total_events / total_seconds
    everything = f"all {len(organizations)}"
    say(f"| build, {everything} | {total_events:,} | {total_seconds:.1f} | {rate:,.0f} |")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # (autovacuum would, a while later)
    # Six hours (a refresh's usual work: a few buckets and today), then two days (a backfill:
    # how many events a second the refresh gets through when it has many).
    for hours in (6, 48):
        events, seconds = upkeep(big, hours)
        rate = events / max(seconds, 1e-9)
        say(f"| upkeep, last {hours} h of {big.slug} | {events:,} | {seconds:.2f} | {rate:,.0f} |")

    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "ingest_event",
            "analytics_usagerollup",
            "analytics_usagedailyrollup",
            "analytics_toolrollup",
            "analytics_tooldailyrollup",
            "analytics_usagedailybreakdown",
            "analytics_sessiondailyrollup",
            "analytics_tooldailytotal",
        ):
            # (A partitioned table's own size is 0: its partitions hold the rows.)
            cursor.execute(
                "SELECT COUNT(*), pg_size_pretty(COALESCE("
                "(SELECT SUM(pg_total_relation_size(relid)) FROM pg_partition_tree(%s)), "
                "pg_total_relation_size(%s))) FROM " + table,
                [table, table],
            )
            rows, size = cursor.fetchone()
            say(f"- `{table}`: {rows:,} rows, {size}")

    owner = big.memberships.order_by("pk").first().user
    budget_set(organization=big, actor=owner, scope="organization", monthly_usd="50000")
    budget_set(
        organization=big, actor=owner, scope="project", project="project-3", monthly_usd="2000"
    )
    budget_set(
        organization=big,
        actor=owner,
        scope="member",
        member=big.memberships.order_by("pk")[1].user,
        monthly_usd="800",
    )

    say()
    say(
        f"Organization {big.slug} ({BIG_ZONE}), range 30d; p50 / p95 in ms over "
        f"{args.repeat} runs (rollups) and {args.raw_repeat} (raw events)."
    )
    say()
    say("| Question | rollups p50 | rollups p95 | raw events p50 | raw events p95 |")
    say("|---|---:|---:|---:|---:|")
    selector_calls = overview_selectors(big)
    raw_calls = raw_questions(big)
    for name, call in selector_calls.items():
        p50, p95, _ = timed(call, args.repeat)
        raw = raw_calls.get(name)
        if raw is not None:
            r50, r95, _ = timed(raw, args.raw_repeat)
            say(f"| {name} | {p50:.1f} | {p95:.1f} | {r50:.0f} | {r95:.0f} |")
        else:
            say(f"| {name} | {p50:.1f} | {p95:.1f} | | |")

    def page():
        # As the view makes them: inside one request's memo of the organization's facts.
        from analytics.selectors.memo import reads_memoized

        with reads_memoized():
            for call in selector_calls.values():
                call()

    p50, p95, _ = timed(page, max(5, args.repeat // 2))
    raw_page = sum(timed(call, 1)[0] for call in raw_calls.values())
    say(f"| **whole overview page** | **{p50:.0f}** | **{p95:.0f}** | {raw_page:.0f} (sum) | |")
    p50, p95, _ = timed(overview_get(big, owner), max(5, args.repeat // 2))
    say(f"| **GET /o/{big.slug}/usage/, rendered** | **{p50:.0f}** | **{p95:.0f}** | | |")
    # A filter on a label (here a project) cannot be answered by the per-dimension summaries:
    # the page reads the daily rollups, the path every filtered view takes.
    p50, p95, _ = timed(overview_get(big, owner, "project=project-3"), max(5, args.repeat // 2))
    say(f"| GET /o/{big.slug}/usage/?project=project-3, rendered | {p50:.0f} | {p95:.0f} | | |")

    plans = []
    for name in (
        "totals (30d)",
        "breakdown by member",
        "top 10 sessions",
        "cost per tool",
        "series by hour (today)",
    ):
        plans.append(f"### {name}\n")
        plans.append("```\n" + "\n".join(explain(selector_calls[name])) + "\n```\n")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"dashboard-{dt.datetime.now():%Y%m%d-%H%M%S}.md"
    path.write_text("\n".join(lines) + "\n\n## EXPLAIN ANALYZE\n\n" + "\n".join(plans))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
