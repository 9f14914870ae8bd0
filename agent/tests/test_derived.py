"""The derived sums (`rollup_model`, `rollup_day`, `tool_day`) answer exactly as the rollups do.

Reports read the smallest table that can answer them; these tests hold every report, over
ranges that start and end mid-day in odd time zones and with every filter, to the answer the
15-minute rollups give, and hold an incremental refresh to a full rebuild.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from clawtrace import reports, scan, store
from clawtrace.reports import Filters

from tests.conftest import append_text, bench_module, needs_native


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory):
    data = tmp_path_factory.mktemp("corpus")
    truth = bench_module("corpus.py").generate(data, 3000, seed=11, workers=1, malformed_rate=0.01)
    home = tmp_path_factory.mktemp("home")
    conn = store.connect(home / "clawtrace.db")
    # A first scan by the workers (a bulk load, whose derived sums are computed on a thread
    # while the indexes build), however small the corpus.
    threshold, scan.run.PARALLEL_MIN_BYTES = scan.run.PARALLEL_MIN_BYTES, 0
    try:
        scan.scan(
            conn,
            claude_dirs=[str(data / "claude")],
            openclaw_dirs=[str(data / "openclaw")],
            workers=2,
        )
    finally:
        scan.run.PARALLEL_MIN_BYTES = threshold
    yield conn, data, truth
    conn.close()


def _ms(text: str, zone: str) -> int:
    from zoneinfo import ZoneInfo

    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def _cases(conn, truth) -> list[tuple[str, Any]]:
    start, end = truth["generator"]["start"], truth["generator"]["end"]
    project = conn.execute("SELECT project FROM contexts ORDER BY id LIMIT 1").fetchone()[0]
    agent = conn.execute("SELECT agent FROM contexts WHERE source = 'openclaw' LIMIT 1").fetchone()
    model = conn.execute("SELECT model FROM models ORDER BY id LIMIT 1").fetchone()[0]
    session = conn.execute("SELECT session_id FROM contexts ORDER BY id DESC LIMIT 1").fetchone()
    ranges = [
        Filters(),
        # Mid-day edges in a +5:45 and a +5:30 zone, and a range across the DST change.
        Filters(_ms(f"{start}T10:45", "Asia/Kathmandu"), _ms(f"{end}T07:15", "Asia/Kathmandu")),
        Filters(_ms(f"{start}T23:30", "Asia/Kolkata"), None),
        Filters(None, _ms(f"{end}T13:00", "America/New_York")),
        Filters(_ms(f"{start}T00:00", "UTC"), _ms(f"{start}T00:00", "UTC") + 86_400_000),
        Filters(_ms(f"{start}T03:00", "UTC"), _ms(f"{start}T09:00", "UTC")),  # inside one day
    ]
    filters = [
        *ranges,
        Filters(project=project),
        Filters(model=model),
        Filters(session=session[0] if session else None),
        Filters(agent=agent[0] if agent else None, since_ms=ranges[1].since_ms),
        Filters(source="claude-code", model=model, until_ms=ranges[3].until_ms),
    ]
    later = datetime(2030, 1, 1, tzinfo=UTC)
    cases: list[tuple[str, Any]] = []
    for i, f in enumerate(filters):
        for zone in ("Asia/Kathmandu", "America/New_York"):
            for by in reports.GROUPINGS:
                cases.append(
                    (
                        f"{i}-{zone}-{by}",
                        lambda c, f=f, z=zone, b=by: reports.cost_report(c, f, z, by=b),
                    )
                )
        cases += [
            (f"{i}-sessions", lambda c, f=f: reports.sessions_top(c, f, n=7)),
            (f"{i}-blocks", lambda c, f=f: reports.blocks(c, f, now=later)),
            (f"{i}-tools", lambda c, f=f: reports.tools_report(c, f)),
            (f"{i}-cache", lambda c, f=f: reports.cache_report(c, f)),
            (f"{i}-unpriced", lambda c, f=f: reports.unpriced_models(c, f)),
            (f"{i}-totals-display", lambda c, f=f: reports.totals(c, f, "display").as_dict()),
        ]
    now = datetime.fromisoformat(f"{end}T18:00+00:00")
    cases += [
        ("status", lambda c: reports.status(c, tz="Asia/Kolkata", now=now)),
        ("forecast", lambda c: reports.forecast(c, tz="America/New_York", now=now)),
    ]
    return cases


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        # Tool costs are float shares summed in another order: equal to the last cent's digits.
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), where
    else:
        assert a == b, where


def test_a_first_scan_leaves_the_derived_sums_as_a_full_rebuild_makes_them(corpus_store):
    conn = corpus_store[0]
    assert store.derived_fresh(conn)
    tables = ("rollup_model", "rollup_day", "tool_day")
    first = {t: _table(conn, t) for t in tables}
    assert first == _full_rebuild(conn)
    assert all(first.values())


def test_every_report_answers_the_same_from_the_derived_sums(corpus_store, monkeypatch):
    conn, _data, truth = corpus_store
    assert store.derived_fresh(conn)
    assert conn.execute("SELECT COUNT(*) FROM rollup_day").fetchone()[0] > 0
    cases = _cases(conn, truth)
    derived = {name: fn(conn) for name, fn in cases}
    monkeypatch.setattr(store, "derived_fresh", lambda c: False)
    for name, fn in cases:
        _same(derived[name], fn(conn), name)
    assert len(cases) > 200


def _table(conn, name: str) -> list[tuple]:
    keys = {"rollup_model": "1, 2", "rollup_day": "1, 2, 3", "tool_day": "1, 2, 3"}[name]
    rows = conn.execute(f"SELECT * FROM {name} ORDER BY {keys}").fetchall()  # noqa: S608
    return [tuple(round(v, 3) if isinstance(v, float) else v for v in r) for r in rows]


def _full_rebuild(conn) -> dict[str, list[tuple]]:
    store.derived_forget(conn)
    assert store.derived_refresh(conn) == -1
    return {t: _table(conn, t) for t in ("rollup_model", "rollup_day", "tool_day")}


def test_an_incremental_refresh_equals_a_full_rebuild(tmp_path, corpus_store):
    _conn, data, _truth = corpus_store
    conn = store.connect(tmp_path / "inc.db")
    roots = {"claude_dirs": [str(data / "claude")], "openclaw_dirs": [str(data / "openclaw")]}
    scan.scan(conn, **roots)
    # Grow a few transcripts by a copy of their own last turns (a resumed session), rescan.
    grown = sorted((data / "claude").rglob("*.jsonl"))[:5]
    for path in grown:
        append_text(path, path.read_text().splitlines()[-1].replace('"id":"', '"id":"x') + "\n")
    try:
        scan.scan(conn, **roots)
        incremental = {t: _table(conn, t) for t in ("rollup_model", "rollup_day", "tool_day")}
        assert store.derived_fresh(conn)
        assert incremental == _full_rebuild(conn)
    finally:
        for path in grown:
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(lines[:-1]))


def test_a_recomputed_range_is_derived_again(tmp_path, corpus_store):
    _conn, data, _truth = corpus_store
    conn = store.connect(tmp_path / "rebuilt.db")
    scan.scan(conn, claude_dirs=[str(data / "claude")], openclaw_dirs=[str(data / "openclaw")])
    before = {t: _table(conn, t) for t in ("rollup_model", "rollup_day", "tool_day")}
    first = conn.execute("SELECT MIN(bucket) FROM rollup").fetchone()[0]
    # Take a day's turns away and recompute its rollups: its derived rows must go too.
    with conn:
        conn.execute(
            "DELETE FROM turns WHERE ts >= ? AND ts < ?",
            (first * store.BUCKET_MS, (first + 96) * store.BUCKET_MS),
        )
        store.dirty_buckets_mark(conn, range(first, first + 96))
        store.rollups_refresh(conn)
    assert not store.derived_fresh(conn)
    assert store.derived_refresh(conn) >= 1
    assert store.derived_fresh(conn)
    after = {t: _table(conn, t) for t in ("rollup_model", "rollup_day", "tool_day")}
    assert after != before
    assert after == _full_rebuild(conn)


def test_a_big_stores_full_refresh_in_passes_equals_one_pass(corpus_store):
    """Past `pass_rows` rollup rows a full refresh sums and writes a range of days at a time
    (its memory bounded whatever the store's size): the same rows, to the float."""
    native = store.derived.native_ingest()
    needs_native(native)
    conn = corpus_store[0]
    db = store.db_file(conn)
    whole = _full_rebuild(conn)
    rows = conn.execute("SELECT COUNT(*) FROM rollup").fetchone()[0]
    days = conn.execute(f"SELECT COUNT(DISTINCT {store.SQL_BUCKET_DAY}) FROM rollup").fetchone()[0]  # noqa: S608
    assert rows > 200 and days > 10
    for pass_rows in (1, 37, rows // 3):
        store.derived_forget(conn)
        # On a thread beside a scan's index builds, it leaves such a refresh to the caller.
        assert native.derive(db, True, pass_rows) is None
        assert not store.derived_fresh(conn)
        assert native.derive(db, False, pass_rows) == -1
        assert store.derived_fresh(conn)
        assert {t: _table(conn, t) for t in whole} == whole
        exact = {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in whole}  # noqa: S608
        _full_rebuild(conn)
        assert {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in whole} == exact  # noqa: S608


def test_the_sql_refresh_equals_the_native_one(tmp_path, corpus_store, monkeypatch):
    needs_native(store.derived.native_ingest())
    conn, _data, _truth = corpus_store
    native = _full_rebuild(conn)
    monkeypatch.setattr(store.derived, "native_ingest", lambda: None)
    assert _full_rebuild(conn) == native


def test_reports_read_the_rollups_while_the_derived_sums_lag(tmp_path, corpus_store):
    _conn, data, _truth = corpus_store
    conn = store.connect(tmp_path / "lag.db")
    scan.scan(conn, claude_dirs=[str(data / "claude")], openclaw_dirs=[str(data / "openclaw")])
    before = reports.cost_report(conn, by="model")["totals"]
    # A rollup row written without a refresh (as a crash between the two would leave it).
    row = conn.execute("SELECT * FROM rollup LIMIT 1").fetchone()
    with conn:
        conn.execute(f"INSERT INTO rollup VALUES ({', '.join('?' * len(row))})", row)  # noqa: S608
    assert not store.derived_fresh(conn)
    after = reports.cost_report(conn, by="model")["totals"]
    assert after["turns"] == before["turns"] + row[3]
    assert store.derived_refresh(conn) == 1
    assert reports.cost_report(conn, by="model")["totals"] == after


def test_the_native_grouping_answers_as_sql_does(corpus_store, monkeypatch):
    needs_native(store.derived.native_ingest())
    conn, _data, truth = corpus_store
    cases = _cases(conn, truth)
    native = {name: fn(conn) for name, fn in cases}
    monkeypatch.setattr(store.derived, "native_ingest", lambda: None)
    for name, fn in cases:
        _same(native[name], fn(conn), name)
