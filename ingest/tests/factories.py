"""Events as the sender puts them on the wire (docs/sync-protocol.md), for the ingest tests."""

from __future__ import annotations

import gzip
import itertools
import json
from typing import Any

import orjson

_counter = itertools.count(1)


def event_id_make(n: int | None = None) -> str:
    n = next(_counter) if n is None else n
    return f"{n:016x}{(n * 2654435761) % 2**64:016x}"


def event_payload(**overrides: Any) -> dict[str, Any]:
    """One valid event; every key of the contract's table."""
    event = {
        "event_id": event_id_make(),
        "source": "claude-code",
        "agent": "",
        "project": "clawtrace",
        "session_id": "3f2c9a1e-6b7d-4c1a-9f00-1234567890ab",
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "timestamp": "2026-03-01T12:00:00.000Z",
        "input_tokens": 1200,
        "output_tokens": 340,
        "cache_read_tokens": 50_000,
        "cache_write_5m_tokens": 2_000,
        "cache_write_1h_tokens": 0,
        "web_search_requests": 0,
        "cost_usd": "0.031250000000",
        "logged_cost_usd": None,
        "price_source": "genai-prices",
        "is_sidechain": False,
        "tools": ["Read", "Edit"],
        "git_branch": "main",
    }
    event.update(overrides)
    return event


def batch_body(events: list[dict], retract: list[str] | None = None) -> bytes:
    document: dict[str, Any] = {"events": events}
    if retract is not None:
        document["retract"] = retract
    try:
        return orjson.dumps(document)
    except TypeError:  # integers past 64 bits, which a test may send on purpose
        return json.dumps(document).encode()


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body, mtime=0)
