"""The local SQLite store: one row per de-duplicated assistant turn, plus rollups the reports read.

Money is kept as integer picodollars (1e-12 USD): every list price in genai-prices has at most
six decimals per million tokens, so a token's price is an exact integer and sums never drift the
way float sums do.

The parts, each a module of this package:

- `schema`: what the tables hold (the turn row's columns, the rollup metrics and every table
  generated from them, the `meta` table);
- `migrations`: the ordered list of schema steps and `migrate`;
- `files` and `connection`: the store's files (the derived sums beside it, the scan lock) and
  opening it;
- `bulk`: a first scan's load into an empty store, its secondary indexes, and what a load that
  was stopped leaves;
- `dims`: the dimension tables' hashed ids;
- `rollups` and `derived`: the sums the reports read;
- `writer`: writing turns with the de-dup and sidechain-replay rules.

The names below are the store's API for the rest of ClawTrace: import them from here.
"""

from __future__ import annotations

from clawtrace.rules import (
    TURN_COLUMNS,
)
from clawtrace.store.bulk import (
    BULK_MARKER,
    BULK_UNFINISHED,
    SECONDARY_INDEXES,
    bulk_dedup,
    bulk_load,
    bulk_load_discard,
    bulk_load_unfinished,
    secondary_indexes_create,
    secondary_indexes_drop,
)
from clawtrace.store.connection import PAGE_BYTES, configure, connect, sql_functions_register
from clawtrace.store.derived import (
    derived_forget,
    derived_fresh,
    derived_refresh,
    derived_refresh_behind,
    native_ingest,
)
from clawtrace.store.dims import (
    NONE_SOURCE_ID,
    REPORTED_SOURCE,
    REPORTED_SOURCE_ID,
    Dims,
    dim_id,
    key_hash,
)
from clawtrace.store.files import (
    SCAN_LOCK_SUFFIX,
    SUMS_SUFFIX,
    db_file,
    scan_lock,
    sums_file,
)
from clawtrace.store.migrations import MIGRATIONS, StoreError, migrate, schema_version
from clawtrace.store.rollups import (
    Rollups,
    buckets_stale,
    buckets_to_ranges,
    dirty_buckets_mark,
    rollup_buckets,
    rollup_rowid_max,
    rollups_rebuild,
    rollups_refresh,
    sums_fetch,
)
from clawtrace.store.schema import (
    BUCKET_MS,
    DAY_BUCKETS,
    N_METRICS,
    PICO,
    ROLLUP_METRICS,
    SQL_BUCKET_DAY,
    SUMS_LAYOUT,
    in_chunks,
    meta_get,
    meta_set,
    now_ms,
)
from clawtrace.store.writer import (
    TurnWriter,
    max_turn_id,
    merge_rows,
    rows_dedup,
    sidechain_replays,
    turns_write_named,
)

__all__ = [
    "BUCKET_MS",
    "BULK_MARKER",
    "BULK_UNFINISHED",
    "DAY_BUCKETS",
    "MIGRATIONS",
    "NONE_SOURCE_ID",
    "N_METRICS",
    "PAGE_BYTES",
    "PICO",
    "REPORTED_SOURCE",
    "REPORTED_SOURCE_ID",
    "ROLLUP_METRICS",
    "SCAN_LOCK_SUFFIX",
    "SECONDARY_INDEXES",
    "SQL_BUCKET_DAY",
    "SUMS_LAYOUT",
    "SUMS_SUFFIX",
    "TURN_COLUMNS",
    "Dims",
    "Rollups",
    "StoreError",
    "TurnWriter",
    "buckets_stale",
    "buckets_to_ranges",
    "bulk_dedup",
    "bulk_load",
    "bulk_load_discard",
    "bulk_load_unfinished",
    "configure",
    "connect",
    "db_file",
    "derived_forget",
    "derived_fresh",
    "derived_refresh",
    "derived_refresh_behind",
    "dim_id",
    "dirty_buckets_mark",
    "in_chunks",
    "key_hash",
    "max_turn_id",
    "merge_rows",
    "meta_get",
    "meta_set",
    "migrate",
    "native_ingest",
    "now_ms",
    "rollup_buckets",
    "rollup_rowid_max",
    "rollups_rebuild",
    "rollups_refresh",
    "rows_dedup",
    "scan_lock",
    "schema_version",
    "secondary_indexes_create",
    "secondary_indexes_drop",
    "sidechain_replays",
    "sql_functions_register",
    "sums_fetch",
    "sums_file",
    "turns_write_named",
]
