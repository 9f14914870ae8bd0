"""The store's tables as schema.ROLLUP_METRICS generates them: every list of rollup sums names
the metrics in one order, so that rows written by position land in the right columns."""

from __future__ import annotations

from clawtrace import store
from clawtrace.store import rollups, schema


def _columns(conn, table: str, database: str = "main") -> tuple[str, ...]:
    return tuple(r[1] for r in conn.execute(f"PRAGMA {database}.table_info({table})"))


def test_the_rollup_table_holds_what_a_writer_inserts(tmp_path):
    conn = store.connect(tmp_path / "store.db")
    assert _columns(conn, "rollup") == schema.ROLLUP_COLUMNS
    assert schema.ROLLUP_COLUMNS[3:-2] == schema.ROLLUP_METRICS


def test_the_derived_sums_hold_every_metric_after_their_keys(tmp_path):
    conn = store.connect(tmp_path / "store.db")
    metrics = (*schema.ROLLUP_METRICS, "first_ts", "last_ts")
    assert _columns(conn, "rollup_model", "sums") == ("bucket", "model_id", *metrics)
    assert _columns(conn, "rollup_day", "sums") == ("day", "context_id", "model_id", *metrics)
    tables = {r[0] for r in conn.execute("SELECT name FROM sums.sqlite_master WHERE type='table'")}
    assert tables == set(schema.SUMS_TABLES)


def test_each_metric_has_its_sum_in_sql():
    assert tuple(rollups._ROLLUP_SUMS) == schema.ROLLUP_METRICS


def test_a_bulk_load_that_did_not_finish_empties_every_table_a_scan_fills(tmp_path):
    conn = store.connect(tmp_path / "store.db")
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    kept = {"meta", "contexts", "models", "price_sources", "toolsets", "alerts_fired"}
    assert set(schema.SCANNED_TABLES) == names - kept
