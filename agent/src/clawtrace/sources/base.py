"""The interface every log source implements (a third source is one new module).

A source does two things:

- `discover(roots)`: list the transcript files under its roots, each with a small context dict
  (agent, project fallback, sub-agent marker...) that the parser needs; plus index entries
  (sessions a source knows about) for `doctor`.
- `parse(data, ctx, state)`: turn a byte range of one file into raw turn records and per-file
  counts. `state` carries what a later byte range needs from an earlier one (session header,
  current model, last cwd) and must be JSON-serialisable: it is kept in the store between scans.

Parsers never see message text beyond the JSON they decode, and never return it.

The optional C extension `clawtrace._native` applies the same rules to the lines it is sure
about and hands the others back to the Python code here (see native/scanmodule.c); set
`CLAWTRACE_NATIVE=0` to run the pure-Python parsers alone.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from clawtrace import rules

# A raw turn, before pricing. Positions (a tuple: a big scan makes millions of them):
# 0 key_hash, 1 msg_hash (the key_hash again for sources without message ids), 2 dedup_key,
# 3 agent, 4 project, 5 session_id, 6 subagent, 7 is_sidechain, 8 model, 9 provider,
# 10 ts_ms, 11 input, 12 output, 13 cache_read, 14 cache_write_5m, 15 cache_write_1h,
# 16 web_search, 17 speed, 18 reported_usd, 19 git_branch, 20 tools (tuple of names)
RawTurn = tuple[Any, ...]

# Anything larger is corrupt (clawtrace.rules: the bounds, and why).
MAX_TOKENS = rules.MAX_TURN_TOKENS
MAX_USD = rules.MAX_LOGGED_USD


@dataclass
class FileEntry:
    # A plain string, not a Path: a big tree has tens of thousands of files, and building Path
    # objects for them was most of the cost of a warm rescan.
    path: str
    ctx: dict[str, Any]


@dataclass(slots=True)  # (a gateway's index can name tens of thousands)
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
    # What the listing depended on, as it was just before it was read: (path, kind, mtime_ns,
    # size). Kinds: "d" a directory listed, "f" a file read to list (an index), "m" a path
    # that was not a directory. While none of them changes, the set of files and their
    # contexts cannot have changed either, and a rescan only needs to stat the known files
    # (see scan.discovery.tree_unchanged).
    watch: list[tuple[str, str, int, int]] = field(default_factory=list)
    # "path: reason" of each directory that is there but could not be listed (no permission,
    # a path longer than the system allows): what is below it is not counted, and must be said.
    unreadable: list[str] = field(default_factory=list)

    def cannot_list(self, path: str, exc: OSError) -> None:
        """Note `path` as unreadable, unless it simply went away while being listed."""
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return
        from clawtrace.paths import label

        reason = (
            "the path is longer than this system allows"
            if exc.errno == errno.ENAMETOOLONG
            else exc.strerror or exc.__class__.__name__
        )
        shown = label(path)
        if len(shown) > 160:
            shown = f"{shown[:80]}...({len(shown):,} characters)...{shown[-60:]}"
        self.unreadable.append(f"{shown}: {reason}")

    def watch_path(self, path: str, kind: str) -> bool:
        """Record `path` (call it before reading it); False when it is not there to read.

        A modification time within the last two seconds is recorded as unknown (-1): a change
        in the same clock tick as the read would not move it (the "racy" case).
        """
        try:
            st = os.stat(path)
        except OSError as exc:
            self.cannot_list(path, exc)
            self.watch.append((path, "m", 0, 0))
            return False
        if kind == "d" and not stat.S_ISDIR(st.st_mode):
            self.watch.append((path, "m", 0, 0))
            return False
        mtime = st.st_mtime_ns
        if mtime > time.time_ns() - RACY_NS:
            mtime = -1
        self.watch.append((path, kind, mtime, st.st_size if kind == "f" else 0))
        return True


RACY_NS = 2_000_000_000


@dataclass
class ParseResult:
    consumed: int = 0  # bytes of `data` fully handled (up to and including the last newline)
    lines: int = 0
    malformed: int = 0
    turn_lines: int = 0  # usage-carrying lines read (before de-duplication)
    skipped: int = 0  # assistant lines not billed: synthetic, zero usage, mirrors, errors
    turns: list[RawTurn] = field(default_factory=list)
    records: int = 0  # turns handed to a native ingest instead of `turns`
    state: dict[str, Any] = field(default_factory=dict)

    def count(self, lines: int, malformed: int, turn_lines: int, skipped: int) -> None:
        self.lines += lines
        self.malformed += malformed
        self.turn_lines += turn_lines
        self.skipped += skipped


def read_lines(
    data: bytes | bytearray,
    end: int,
    n: int,
    tail: bool,
    result: ParseResult,
    fast: Callable[[int], tuple[int, bool]] | None,
    slow: Callable[[int, int], None],
) -> None:
    """Every line of `data[:end]`, and the last line `data[end:n]` when `tail` (see lines_end).

    `fast(pos)`, the C scanner, reads lines from `pos` on and returns where it stopped and
    whether it stopped at a line it leaves to Python (it counts what it read itself); `slow(start,
    stop)` reads the line `data[start:stop]` in Python. Without `fast`, Python reads them all.
    """
    pos = 0
    while pos < end:
        if fast is not None:
            pos, deferred = fast(pos)
            if not deferred:
                break
        nl = data.index(b"\n", pos, n)
        slow(pos, nl)
        result.lines += 1
        pos = nl + 1
    if tail:
        slow(end, n)
        result.lines += 1


class Source(ABC):
    """A log source, registered in `sources.SOURCES`: everything that is one source's own is
    declared here, so that the rest of ClawTrace iterates the registry and names no source.

    Facts (class attributes): `name` (in the store, the reports and `--source`), `title` (in
    messages), and how users point it at its logs: `dirs_key`, the key of `[sources]` in
    config.toml, also the keyword a scan takes the directories by (`scan(conn,
    claude_dirs=[...])`); `dir_option` and `dir_help`, its repeatable command-line option;
    `env_vars`, the environment variables that choose its directories (shown by `doctor`);
    `cost_note`, what the reports' caption says of its figures ("" for nothing).

    Hooks with a default: `roots`, `watch_roots`, `wakes_on`, and what `doctor` reports of it
    (`doctor_facts`, `retention_note`, `doctor_notes`). The reading itself: `discover`/`walk`,
    `parse` and `ingest` (the C writer's entry).
    """

    name: str
    title: str
    dirs_key: str
    dir_option: str
    dir_help: str
    env_vars: tuple[str, ...] = ()
    cost_note: str = ""

    @abstractmethod
    def roots(self, explicit: list[str] | None = None) -> list[Path]:
        """The directories to scan: `explicit` ones (the option or the config key) or the
        source's own defaults and environment, existing or not."""

    def watch_roots(self, roots: list[Path]) -> list[Path]:
        """The directories of `roots` whose file events wake the live scan."""
        return list(roots)

    def wakes_on(self, name: str) -> bool:
        """Whether an event on a file so named can change what a scan reads."""
        return ".jsonl" in name

    def doctor_facts(self, conn: Any, roots: list[Path]) -> dict[str, Any]:
        """Fields of `doctor --json` that are this source's own (the store's `conn`, the
        source's `roots`)."""
        return {}

    def retention_note(self, facts: dict[str, Any]) -> str | None:
        """What `doctor` says of how long the source keeps its logs, from its facts."""
        return None

    def doctor_notes(self, facts: dict[str, Any]) -> list[str]:
        """Further lines of `doctor` (rich markup) from the source's facts."""
        return []

    def discover(self, roots: list[Path]) -> Discovery:
        found = Discovery()
        found.files = list(self.walk(roots, found))
        return found

    @abstractmethod
    def walk(self, roots: list[Path], found: Discovery) -> Iterator[FileEntry]:
        """The files of `discover`, as they are found (a big first scan starts reading before
        the listing ends); fills `found`'s other fields on the way."""

    @abstractmethod
    def parse(
        self, data: bytes, ctx: dict[str, Any], state: dict[str, Any] | None
    ) -> ParseResult: ...

    @abstractmethod
    def ingest(
        self,
        sink: Any,
        data: bytes,
        ctx: dict[str, Any],
        state: dict[str, Any] | None,
        file_id: int,
    ) -> ParseResult: ...


def lines_end(data: bytes | bytearray, n: int | None = None) -> tuple[int, bool]:
    """Where the complete lines of `data[:n]` end, and whether the rest is a line to read too.

    A last line without a newline is held back (it may be half-written) unless it is a whole
    JSON object, which a writer that never ends its file with a newline leaves behind.
    """
    n = len(data) if n is None else n
    end = data.rfind(b"\n", 0, n) + 1
    tail = bytes(data[end:n])
    if tail.strip():
        import orjson

        try:
            return end, isinstance(orjson.loads(tail), dict)
        except orjson.JSONDecodeError:
            pass
    return end, False


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def iso_to_ms(value: Any) -> int | None:
    """UTC epoch ms of an ISO-8601 timestamp (naive means UTC); None when not ISO.

    Integer arithmetic, not `timestamp() * 1000`: floats turn `.123` into 122 ms now and then.
    """
    if type(value) is not str or len(value) < 16 or value[4] != "-" or value[10] not in "T ":
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        ms = (dt - _EPOCH) // _MS
    except OverflowError:  # (an offset that pushes year 1 or 9999 over the edge)
        return None
    return ms if rules.ts_sane(ms) else None


def key_hash(key: str) -> int:
    """Signed 64-bit hash of a de-dup key (BLAKE2b-64; the C scanner computes the same)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def _load_native() -> ModuleType | None:
    if os.environ.get("CLAWTRACE_NATIVE", "1").strip().lower() in ("0", "no", "false", "off"):
        return None
    try:
        from clawtrace import _native
    except ImportError:
        return None
    return _native


# The C scanner, or None (not built on this machine, or disabled). Tests swap it.
NATIVE: ModuleType | None = _load_native()


def native() -> ModuleType | None:
    return NATIVE


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
