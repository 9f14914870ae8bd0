"""The interface every log source implements (a third source is one new module).

A source does two things:

- `discover(roots)`: list the transcript files under its roots, each with a small context dict
  (agent, project fallback, sub-agent marker...) that the parser needs; plus index entries
  (sessions a source knows about) for `doctor`.
- `parse(data, ctx, state)`: turn a byte range of one file into raw turn records and per-file
  counts. `state` carries what a later byte range needs from an earlier one (session header,
  current model, last cwd) and must be JSON-serialisable: it is kept in the store between scans.

Parsers never see message text beyond the JSON they decode, and never return it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# A raw turn, before pricing. Positions (kept as a tuple: millions cross a process boundary):
# 0 dedup_key, 1 msg_id, 2 source, 3 agent, 4 project, 5 session_id, 6 subagent,
# 7 is_sidechain, 8 model, 9 provider, 10 ts_ms, 11 input, 12 output, 13 cache_read,
# 14 cache_write_5m, 15 cache_write_1h, 16 web_search, 17 speed, 18 reported_usd,
# 19 git_branch, 20 tools (tuple of names)
RawTurn = tuple[Any, ...]

# Anything larger is corrupt, and would overflow SQLite's 64-bit integers once summed.
MAX_TOKENS = 10**12
MAX_USD = 10**6


@dataclass
class FileEntry:
    # A plain string, not a Path: a big tree has tens of thousands of files, and building Path
    # objects for them was most of the cost of a warm rescan.
    path: str
    ctx: dict[str, Any]


@dataclass
class IndexSession:
    """A session a source's own index names (OpenClaw `sessions.json`)."""

    agent: str
    session_key: str
    session_id: str | None
    transcript: str | None
    transcript_exists: bool
    spawned_by: str | None
    spawn_depth: int | None
    kind: str


@dataclass
class Discovery:
    files: list[FileEntry] = field(default_factory=list)
    index: list[IndexSession] = field(default_factory=list)
    roots_found: list[Path] = field(default_factory=list)
    roots_missing: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ParseResult:
    consumed: int = 0  # bytes of `data` fully handled (up to and including the last newline)
    lines: int = 0
    malformed: int = 0
    turn_lines: int = 0  # usage-carrying lines read (before de-duplication)
    skipped: int = 0  # assistant lines not billed: synthetic, zero usage, mirrors, errors
    turns: list[RawTurn] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    name: str

    def discover(self, roots: list[Path]) -> Discovery: ...

    def parse(
        self, data: bytes, ctx: dict[str, Any], state: dict[str, Any] | None
    ) -> ParseResult: ...


def split_lines(data: bytes) -> tuple[list[bytes], int]:
    """Complete lines of `data` and how many bytes they span.

    A last line without a newline is held back (it may be half-written) unless it is a whole
    JSON object, which a writer that never ends its file with a newline leaves behind.
    """
    end = data.rfind(b"\n")
    lines = data[: end + 1].split(b"\n")[:-1] if end >= 0 else []
    consumed = end + 1
    tail = data[end + 1 :]
    if tail.strip():
        import orjson

        try:
            if isinstance(orjson.loads(tail), dict):
                lines.append(tail)
                consumed = len(data)
        except orjson.JSONDecodeError:
            pass
    return lines, consumed


def iso_to_ms(value: Any) -> int | None:
    """UTC epoch ms of an ISO-8601 timestamp (naive means UTC); None when not ISO."""
    if type(value) is not str or len(value) < 16 or value[4] != "-" or value[10] not in "T ":
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def token_count(value: Any) -> int | None:
    """A token count: missing is 0; a non-negative integer (or integral float) is itself;
    anything else (null, negative, string, bool) is None, which makes the line malformed."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < MAX_TOKENS else None
    if isinstance(value, float) and value.is_integer() and 0 <= value < MAX_TOKENS:
        return int(value)
    return None


def money(value: Any) -> float | None:
    """A logged dollar cost: a finite, non-negative, plausible number, else None."""
    if (type(value) is int or type(value) is float) and 0 <= value < MAX_USD:
        return float(value)
    return None
