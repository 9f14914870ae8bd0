"""Incremental scan: find transcript files, read only what was appended, price, store.

Per file the store keeps its size, mtime, inode, a hash of its first bytes and the offset read so
far. A file whose size and mtime are unchanged is not opened (a warm rescan parses nothing). A
grown file with the same inode and head is read from the stored offset; a truncated, rotated or
replaced one is read again from the start (its turns meet their stored keys, so nothing is
counted twice, and turns of content that vanished stay: history never shrinks).

Work goes out in batches of files; a batch is read, parsed, priced and de-duplicated, then
written in one transaction with its files' new offsets: a scan that stops halfway loses
nothing. A small scan runs in this process (`ingest.Ingest`, the reference pipeline in Python
with C helpers). A big one (a first scan, a new machine's worth of logs) runs in worker
processes (fork), started as soon as discovery finds enough to read so that their start-up
overlaps it (`pool`). Each worker parses and prices its batches on its own and takes turns
writing to the store (a lock hands it from one to the next); where the C extension is built, a
worker does all of that in C (`_native.Ingest`, held to the Python pipeline by
tests/test_native_parity.py).

One scan runs at a time per store (a lock file beside it): the CLI and `serve` never read the
same offsets twice.

The parts, each a module of this package: `discovery` (what to read, and the warm check that
skips the listing), `reading` (a file from its offset, chunk by chunk), `ingest` (a process's
writer), `prices` (the rate cards of the C helpers, re-pricing), `pool` (the worker
processes), `run` (a scan from start to end: `ScanRun`), `result` (what it reports).
"""

from __future__ import annotations

from clawtrace.scan.discovery import source_roots
from clawtrace.scan.ingest import FILES_NEW_SQL, files_done, files_outcome
from clawtrace.scan.prices import card_for, price_slow, prices_reprice, prices_reprice_if_stale
from clawtrace.scan.result import ProgressFactory, ScanResult
from clawtrace.scan.run import SCAN_STARTED, ScanRun, scan, scan_unfinished

__all__ = [
    "FILES_NEW_SQL",
    "SCAN_STARTED",
    "ProgressFactory",
    "ScanResult",
    "ScanRun",
    "card_for",
    "files_done",
    "files_outcome",
    "price_slow",
    "prices_reprice",
    "prices_reprice_if_stale",
    "scan",
    "scan_unfinished",
    "source_roots",
]
