"""The dimension tables: what many turns share (contexts, models, price sources, tool sets), each
row keyed by a 64-bit hash of its fields, so that the scanner's parallel workers agree on ids
without asking each other."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import orjson


def dim_id(kind: str, *fields: Any) -> int:
    """The id of a dimension row: a signed 64-bit hash of its kind and fields.

    Workers assign ids on their own and agree, and a store rebuilt from the same logs gets the
    same ids. 64 bits make a collision among even a million distinct values a 1-in-10^7 event.
    """
    digest = hashlib.blake2b(orjson.dumps([kind, *fields]), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def sql_dim_id(*args: Any) -> int:
    return dim_id(*args)


def key_hash(key: str) -> int:
    """Signed 64-bit hash of a de-dup key (stable across runs and processes)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


REPORTED_SOURCE = "reported"
REPORTED_SOURCE_ID = dim_id("p", REPORTED_SOURCE)
NONE_SOURCE_ID = dim_id("p", "none")


class Dims:
    """Dimension ids for one process, and the rows it still has to write."""

    def __init__(self) -> None:
        self.contexts: dict[tuple[Any, ...], int] = {}
        self.models: dict[tuple[Any, ...], int] = {}
        self.sources: dict[str, int] = {}
        self.toolsets: dict[tuple[str, ...], int] = {(): 0}
        self.tool_names: dict[int, tuple[str, ...]] = {0: ()}
        self.pending: dict[str, list[tuple[Any, ...]]] = {
            "contexts": [],
            "models": [],
            "price_sources": [],
            "toolsets": [],
        }
        # Ids the C scanner uses without asking.
        self.source(REPORTED_SOURCE)
        self.source("none")

    def context(self, key: tuple[Any, ...]) -> int:
        cid = self.contexts.get(key)
        if cid is None:
            cid = self.contexts[key] = dim_id("c", *key)
            self.pending["contexts"].append((cid, *key))
        return cid

    def model(self, key: tuple[Any, ...]) -> int:
        mid = self.models.get(key)
        if mid is None:
            mid = self.models[key] = dim_id("m", *key)
            self.pending["models"].append((mid, *key))
        return mid

    def source(self, name: str) -> int:
        sid = self.sources.get(name)
        if sid is None:
            sid = self.sources[name] = dim_id("p", name)
            self.pending["price_sources"].append((sid, name))
        return sid

    def toolset(self, names: tuple[str, ...]) -> int:
        tid = self.toolsets.get(names)
        if tid is None:
            text = orjson.dumps(list(names)).decode()
            tid = self.toolsets[names] = dim_id("t", text)
            self.tool_names[tid] = names
            self.pending["toolsets"].append((tid, text))
        return tid

    def tools_of(self, conn: sqlite3.Connection | None, tid: int) -> tuple[str, ...]:
        names = self.tool_names.get(tid)
        if names is None:
            if conn is None:
                raise KeyError(tid)
            row = conn.execute("SELECT tools FROM toolsets WHERE id = ?", (tid,)).fetchone()
            names = tuple(orjson.loads(row[0])) if row else ()
            self.tool_names[tid] = names
            self.toolsets.setdefault(names, tid)
        return names

    def flush(self, conn: sqlite3.Connection) -> None:
        """Write the dimension rows first seen since the last flush (inside the caller's
        transaction)."""
        p = self.pending
        if p["contexts"]:
            conn.executemany(
                "INSERT OR IGNORE INTO contexts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", p["contexts"]
            )
        if p["models"]:
            conn.executemany("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?)", p["models"])
        if p["price_sources"]:
            conn.executemany(
                "INSERT OR IGNORE INTO price_sources VALUES (?, ?)", p["price_sources"]
            )
        if p["toolsets"]:
            conn.executemany("INSERT OR IGNORE INTO toolsets VALUES (?, ?)", p["toolsets"])
        for rows in p.values():
            rows.clear()
