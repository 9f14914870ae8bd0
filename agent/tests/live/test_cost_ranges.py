"""`range=all` and the coarse groupings of the cost series (`by=week|month|auto`).

A store whose logs are all older than 90 days must still show something: `all` spans the
store, from the local day of its first turn to the end of today, and long ranges are grouped by
week or month so the chart stays readable.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from .conftest import client_for
from .test_api_contract import assert_valid


@pytest.fixture
def old_client(old_only_db):
    with client_for(old_only_db) as c:
        yield c


@pytest.fixture
def real_client(realistic_db):
    with client_for(realistic_db) as c:
        yield c


def test_all_finds_the_turns_of_a_store_whose_logs_are_older_than_90_days(old_client):
    assert old_client.get("/api/costs?range=90d").json()["totals"]["turns"] == 0
    body = old_client.get("/api/costs?range=all").json()
    assert_valid("/api/costs", body)
    assert body["range"] == "all"
    assert body["totals"]["turns"] == 9
    assert sum(p["turns"] for p in body["points"]) == 9
    for panel in ("models", "projects", "agents", "sessions"):
        assert old_client.get(f"/api/{panel}?range=all").json()["rows"], panel


def test_all_runs_from_the_first_turns_local_day_to_the_end_of_today(old_client):
    body = old_client.get("/api/costs?range=all&by=day").json()
    first_day = date(2026, 11, 20) - timedelta(days=150)  # storefixture.old_only_rows
    assert body["by"] == "day"
    assert body["points"][0]["t"] == first_day.isoformat()
    assert body["points"][0]["turns"] == 9
    assert body["points"][-1]["t"] == "2026-11-20"  # storefixture.NOW, a local day in Paris
    assert len(body["points"]) == 151


def test_weeks_are_keyed_by_their_monday_and_months_by_year_and_month(real_client):
    weekly = real_client.get("/api/costs?range=90d&by=week").json()
    assert weekly["by"] == "week"
    mondays = [date.fromisoformat(p["t"]) for p in weekly["points"]]
    assert all(d.weekday() == 0 for d in mondays)
    assert mondays == [mondays[0] + timedelta(weeks=i) for i in range(len(mondays))]
    assert len(mondays) in (13, 14)
    monthly = real_client.get("/api/costs?range=2026-01-15..2026-11-20&by=month").json()
    assert [p["t"] for p in monthly["points"]] == [f"2026-{m:02d}" for m in range(1, 12)]
    for body in (weekly, monthly):
        assert_valid("/api/costs", body)
        assert sum(p["cost_usd"] for p in body["points"]) == pytest.approx(
            body["totals"]["cost_usd"]
        )
        assert sum(p["turns"] for p in body["points"]) == body["totals"]["turns"]
    daily = real_client.get("/api/costs?range=90d&by=day").json()
    assert weekly["totals"] == daily["totals"]


def test_auto_groups_long_ranges_by_week_or_month_and_short_ones_by_day(real_client):
    def grouping(query: str) -> tuple[str, int]:
        body = real_client.get(f"/api/costs?{query}&by=auto").json()
        return body["by"], len(body["points"])

    assert grouping("range=30d") == ("day", 30)
    # The realistic store's history starts about 480 days before NOW: 69 or 70 weeks.
    by, points = grouping("range=all")
    assert by == "week" and points in (69, 70)
    assert grouping("range=2024-01-01..2026-11-20") == ("month", 35)


def test_an_empty_store_answers_all_with_today(tmp_path):
    from clawtrace import store

    db = tmp_path / "clawtrace.db"
    store.connect(db).close()
    with client_for(db) as c:
        body = c.get("/api/costs?range=all&by=auto").json()
    assert (body["by"], [p["t"] for p in body["points"]]) == ("day", ["2026-11-20"])


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("range=all&by=day", "range"),  # 480 days of history: more than 400 daily points
        ("range=all&by=hour", "by"),
        ("range=36600d&by=month", "range"),  # before 2000, when no turn can be
        ("range=2000-01-01..2099-12-31&by=week", "range"),
        ("by=year", "by"),
    ],
)
def test_ranges_too_long_for_their_grouping_are_a_400_naming_the_parameter(
    real_client, query, parameter
):
    response = real_client.get(f"/api/costs?{query}")
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter
    assert_valid("/api/costs", response.json(), "400")


def test_the_whole_century_fits_in_months(real_client):
    body = real_client.get("/api/costs?range=2000-01-01..2099-12-31&by=month").json()
    assert len(body["points"]) == 1200
    assert (
        body["totals"]["turns"]
        == real_client.get("/api/costs?range=all&by=month").json()["totals"]["turns"]
    )
