"""Property tests of the scanner on hostile input (Hypothesis), in the native and pure-Python
modes.

1. Lines of arbitrary bytes, and assistant entries with one field replaced by an arbitrary JSON
   value, between valid lines: the scan never raises; each hostile line is judged by the rules
   formats.md and the parsers' docs give (malformed: counted, never billed; a turn: billed with
   exactly its tokens; not billed: skipped), and the valid lines around it are billed exactly.
2. A state machine of file operations (append, truncate, rewrite the tail longer, rewrite in
   place with the same size and mtime, rename, delete, create, time passing) interleaved with
   incremental scans into one store: after each scan its totals equal those of a scan, from
   scratch into a fresh store, of every version of every file that the scans have seen (history
   never shrinks: turns of deleted or rewritten content stay).

The examples run per test come from a Hypothesis profile: `ci` (default, bounded for CI) or
`deep` (CLAWTRACE_HYPOTHESIS_PROFILE=deep, for a long run by hand).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from clawtrace import reports, rules, store
from clawtrace import scan as scan_module
from clawtrace.config import Config
from clawtrace.sources import base
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.conftest import needs_native

settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    max_examples=2000,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = settings.get_profile(os.environ.get("CLAWTRACE_HYPOTHESIS_PROFILE", "ci"))
# The state machine's examples are whole runs of scans: fewer of them.
MACHINE_RUNS = max(PROFILE.max_examples // 4, 1)

# Examples run, per test and mode (for the terminal summary, conftest.py).
EXAMPLES: Counter = Counter()

MODES = ["native", "python"]


@contextlib.contextmanager
def scanner_mode(mode: str) -> Iterator[None]:
    """The C scanner and writer on (native) or off (python) for what runs inside."""
    saved = base.NATIVE
    if mode == "python":
        base.NATIVE = None
    else:
        needs_native(saved)
    try:
        yield
    finally:
        base.NATIVE = saved


def scan_into(conn: Any, root: Path) -> scan_module.ScanResult:
    return scan_module.scan(
        conn,
        Config(),
        claude_dirs=[str(root / "claude")],
        openclaw_dirs=[str(root / "oc")],
        workers=1,
    )


TOKEN_COLUMNS = (
    "input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, "
    "cache_write_1h_tokens, web_search_requests"
)


def stored_tokens(conn: Any) -> list[tuple[int, ...]]:
    return sorted(conn.execute(f"SELECT {TOKEN_COLUMNS} FROM turns_wide"))  # noqa: S608


def file_counts(conn: Any) -> dict[str, tuple[int, int]]:
    return {
        Path(p).name: (lines, malformed)
        for p, lines, malformed in conn.execute("SELECT path, lines, malformed FROM files")
    }


# --- 1. hostile lines ------------------------------------------------------------------------

TS = "2026-02-10T10:00:00.000Z"


def claude_line(msg_id: str, inp: int, out: int, **extra: Any) -> dict[str, Any]:
    line = {
        "type": "assistant",
        "sessionId": "sess-1",
        "cwd": "/home/u/proj",
        "version": "2.1.37",
        "gitBranch": "main",
        "isSidechain": False,
        "timestamp": TS,
        "requestId": f"req_{msg_id}",
        "message": {
            "id": msg_id,
            "model": "claude-haiku-4-5-20251001",
            "role": "assistant",
            "content": [{"type": "text", "text": "hi"}],
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        },
    }
    line.update(extra)
    return line


def oc_header(session: str) -> dict[str, Any]:
    return {"type": "session", "version": 3, "id": session, "timestamp": TS, "cwd": "/w"}


def oc_line(entry_id: str, inp: int, out: int) -> dict[str, Any]:
    return {
        "type": "message",
        "id": entry_id,
        "parentId": None,
        "timestamp": TS,
        "message": {
            "role": "assistant",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "hi"}],
            "usage": {
                "input": inp,
                "output": out,
                "cacheRead": 0,
                "cacheWrite": 0,
                "totalTokens": inp + out,
                "cost": {"total": 0.01},
            },
            "timestamp": 1770717600000,
        },
    }


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


# JSON values of every kind, nested (integers within what JSON parsers and orjson carry).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Values of the kinds a field most often goes wrong with, so that the rules' edges get hit.
edge_values = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1,
        1.0,
        1.5,
        -0.0,
        rules.MAX_TURN_TOKENS - 1,
        rules.MAX_TURN_TOKENS,
        2**63,
        "",
        "12",
        "2026-02-10T10:00:00Z",
        "2026-02-10 10:00:00+05:30",
        "1999-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00Z",
        "2026-02-30T10:00:00Z",
        "2.1.37",
        "v2",
        "<synthetic>",
        "assistant",
        "message",
        [],
        {},
        {"input_tokens": 5},
    ]
)
any_value = edge_values | json_values

hostile_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))


def token_count(value: Any) -> int | None:
    """The documented token rule (sources.base.token_count): a non-negative integer, or an
    integral float, below the bound; anything else makes the line malformed."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if 0 <= value < rules.MAX_TURN_TOKENS else None
    if isinstance(value, float) and value.is_integer() and 0 <= value < rules.MAX_TURN_TOKENS:
        return int(value)
    return None


def bytes_line_is_malformed(line: bytes, source: str) -> bool:
    """A line of arbitrary bytes. Claude Code decodes only lines holding `"assistant"`; others
    only have to look like one JSON object (claude_code.py's pre-filter). OpenClaw decodes
    every line that is not blank."""
    if not line.strip():
        return False
    if source == "claude" and b'"assistant"' not in line:
        return not (line[:1] == b"{" and line.rstrip()[-1:] == b"}")
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return True
    assume(not isinstance(value, dict))  # (a valid object by chance: not what this tests)
    return True


@pytest.mark.parametrize("mode", MODES)
@settings(PROFILE)
@given(
    valid=st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 10**6)), min_size=1, max_size=4),
    hostile=st.lists(hostile_bytes, min_size=1, max_size=8),
    data=st.data(),
)
def test_lines_of_arbitrary_bytes_are_counted_malformed_and_the_valid_ones_exactly(
    mode, valid, hostile, data
):
    EXAMPLES[f"examples of lines of arbitrary bytes ({mode})"] += 1
    claude_valid = [dumps(claude_line(f"msg_v{i}", a, b)) for i, (a, b) in enumerate(valid)]
    oc_valid = [dumps(oc_line(f"e{i}", a, b)) for i, (a, b) in enumerate(valid)]
    # Valid lines first and last (a hostile first line could start with a byte order mark).
    claude_lines, oc_lines = [claude_valid[0]], [dumps(oc_header("s1")), oc_valid[0]]
    for i, junk in enumerate(hostile):
        claude_lines.append(junk)
        oc_lines.append(junk)
        if i + 1 < len(valid):
            claude_lines.append(claude_valid[i + 1])
            oc_lines.append(oc_valid[i + 1])
    claude_lines += claude_valid[len(hostile) + 1 :]
    oc_lines += oc_valid[len(hostile) + 1 :]
    want_malformed = {
        "claude": sum(bytes_line_is_malformed(b, "claude") for b in hostile),
        "oc": sum(bytes_line_is_malformed(b, "oc") for b in hostile),
    }
    with scanner_mode(mode), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        claude_file = root / "claude" / "projects" / "-p" / "s.jsonl"
        oc_file = root / "oc" / "agents" / "main" / "sessions" / "s1.jsonl"
        for path, lines in ((claude_file, claude_lines), (oc_file, oc_lines)):
            path.parent.mkdir(parents=True)
            path.write_bytes(b"\n".join(lines) + b"\n")
        conn = store.connect(root / "home" / "clawtrace.db")
        try:
            result = scan_into(conn, root)
            counts = file_counts(conn)
            got = stored_tokens(conn)
        finally:
            conn.close()
    assert counts["s.jsonl"] == (len(claude_lines), want_malformed["claude"])
    assert counts["s1.jsonl"] == (len(oc_lines), want_malformed["oc"])
    assert result.malformed == want_malformed["claude"] + want_malformed["oc"]
    assert got == sorted([(a, b, 0, 0, 0, 0) for a, b in valid] * 2)


CLAUDE_FIELDS = (
    "type",
    "message",
    "timestamp",
    "requestId",
    "sessionId",
    "version",
    "isSidechain",
    "isApiErrorMessage",
    "agentId",
    "costUSD",
    "cwd",
    "gitBranch",
    "message.id",
    "message.model",
    "message.content",
    "message.usage",
    "message.usage.input_tokens",
    "message.usage.output_tokens",
    "message.usage.cache_read_input_tokens",
    "message.usage.cache_creation_input_tokens",
    "message.usage.cache_creation",
    "message.usage.server_tool_use",
    "message.usage.speed",
)
TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def put(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for name in parents:
        obj = obj[name]
    obj[last] = value


def claude_expected(field: str, value: Any) -> tuple[str, tuple[int, ...] | None]:
    """What formats.md 1.5-1.9 (and claude_code.py's docs) say of the base line (10 input and
    20 output tokens) with `field` set to `value`: ('turn', its six token counts), or
    'malformed', 'skipped' (an assistant line that bills nothing), 'ignored' (not a turn)."""
    tokens: dict[str, Any] = {"input_tokens": 10, "output_tokens": 20}
    web = 0

    def turn() -> tuple[str, tuple[int, ...] | None]:
        inp = tokens.get("input_tokens", 0)
        out = tokens.get("output_tokens", 0)
        cr = tokens.get("cache_read_input_tokens", 0)
        # (without the 5m/1h split, every cache write is a 5-minute one: formats.md 1.5)
        five, one = tokens.get("_split", (tokens.get("cache_creation_input_tokens", 0), 0))
        total = inp + out + cr + five + one
        if not rules.turn_tokens_sane(total, web):
            return "malformed", None
        if total == 0 and web == 0:
            return "skipped", None
        return "turn", (inp, out, cr, five, one, web)

    if field == "type":
        return turn() if value == "assistant" else ("ignored", None)
    if field == "message":
        if not isinstance(value, dict):
            return "malformed", None
        assume("usage" not in value or value["usage"] is None)
        return "skipped", None
    if field in ("timestamp", "requestId", "sessionId", "version", "message.id", "message.model"):
        ok = {
            "timestamp": base.iso_to_ms(value) is not None,
            "requestId": isinstance(value, str) and value != "",
            "sessionId": isinstance(value, str) and value != "",
            "version": value is None
            or (isinstance(value, str) and re.match(r"^\d+\.\d+\.\d+", value) is not None),
            "message.id": isinstance(value, str) and value != "",
            "message.model": isinstance(value, str) and value != "",
        }[field]
        if field == "message.model" and value == "<synthetic>":
            return "skipped", None
        return turn() if ok else ("malformed", None)
    if field == "isApiErrorMessage":
        return ("skipped", None) if value is True else turn()
    if field == "message.usage":
        if value is None:
            return "skipped", None
        if not isinstance(value, dict):
            return "malformed", None
        assume("cache_creation" not in value and "server_tool_use" not in value)
        tokens = {}
        for key in TOKEN_KEYS:
            n = token_count(value.get(key, 0))
            if n is None:
                return "malformed", None
            tokens[key] = n
        return turn()
    if field.startswith("message.usage.") and field.rsplit(".", 1)[1] in TOKEN_KEYS:
        n = token_count(value)
        if n is None:
            return "malformed", None
        tokens[field.rsplit(".", 1)[1]] = n
        return turn()
    if field == "message.usage.cache_creation":
        if isinstance(value, dict):
            a = token_count(value.get("ephemeral_5m_input_tokens", 0))
            b = token_count(value.get("ephemeral_1h_input_tokens", 0))
            if a is None or b is None:
                return "malformed", None
            if a + b:
                tokens["_split"] = (a, b)
        return turn()
    if field == "message.usage.server_tool_use":
        if isinstance(value, dict):
            web = token_count(value.get("web_search_requests", 0)) or 0
        return turn()
    # isSidechain, agentId, costUSD, cwd, gitBranch, content, speed: the turn stands.
    return turn()


@pytest.mark.parametrize("mode", MODES)
@settings(PROFILE)
@given(field=st.sampled_from(CLAUDE_FIELDS), value=any_value)
def test_a_claude_assistant_line_with_a_field_set_to_any_json_value_follows_the_rules(
    mode, field, value
):
    EXAMPLES[f"examples of a Claude Code field set to any JSON ({mode})"] += 1
    assume(value not in ("msg_a", "msg_b", "req_msg_a", "req_msg_b"))
    mutated = claude_line("msg_m", 10, 20)
    put(mutated, field, value)
    outcome, tokens = claude_expected(field, value)
    lines = [
        dumps(claude_line("msg_a", 1001, 2001)),
        dumps(mutated),
        dumps(claude_line("msg_b", 1002, 2002)),
    ]
    with scanner_mode(mode), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "claude" / "projects" / "-p" / "s.jsonl"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\n".join(lines) + b"\n")
        conn = store.connect(root / "home" / "clawtrace.db")
        try:
            scan_into(conn, root)
            counts = file_counts(conn)["s.jsonl"]
            got = stored_tokens(conn)
        finally:
            conn.close()
    want = [(1001, 2001, 0, 0, 0, 0), (1002, 2002, 0, 0, 0, 0)]
    if outcome == "turn":
        want.append(tokens)
    assert got == sorted(want), (field, value, outcome)
    assert counts == (3, 1 if outcome == "malformed" else 0), (field, value, outcome)


OC_FIELDS = (
    "type",
    "id",
    "timestamp",
    "message",
    "message.role",
    "message.model",
    "message.provider",
    "message.content",
    "message.timestamp",
    "message.usage",
    "message.usage.input",
    "message.usage.output",
    "message.usage.cacheRead",
    "message.usage.cacheWrite",
    "message.usage.totalTokens",
    "message.usage.cost",
)


def oc_expected(field: str, value: Any) -> tuple[str, tuple[int, ...] | None]:
    """What formats.md 2.4-2.5 (and openclaw.py) say of the base entry (10 input, 20 output
    tokens, no model_change before it) with `field` set to `value`."""
    tokens = {"input": 10, "output": 20, "cacheRead": 0, "cacheWrite": 0}

    def turn() -> tuple[str, tuple[int, ...] | None]:
        total = sum(tokens.values())
        if not rules.turn_tokens_sane(total):
            return "malformed", None
        if total == 0:
            return "skipped", None
        return "turn", (
            tokens["input"],
            tokens["output"],
            tokens["cacheRead"],
            tokens["cacheWrite"],
            0,
            0,
        )

    if field == "type":
        return turn() if value == "message" else ("ignored", None)
    if field == "message":
        if not isinstance(value, dict):
            return "malformed", None
        assume(value.get("role") != "assistant")
        return "ignored", None
    if field == "message.role":
        return turn() if value == "assistant" else ("ignored", None)
    if field == "message.model":
        # No model_change came before: without its own model the entry has none.
        return turn() if isinstance(value, str) and value else ("malformed", None)
    if field == "message.usage":
        if value is None:
            return "skipped", None
        if not isinstance(value, dict):
            return "malformed", None
        assume(any(k in value for k in tokens))  # (a total alone: another rule)
        for key in tokens:
            n = token_count(value.get(key, 0))
            if n is None:
                return "malformed", None
            tokens[key] = n
        return turn()
    if field.startswith("message.usage.") and field.rsplit(".", 1)[1] in tokens:
        n = token_count(value)
        if n is None:
            return "malformed", None
        tokens[field.rsplit(".", 1)[1]] = n
        return turn()
    # id, the entry's and the message's timestamps (each stands in for the other), provider,
    # content, cost, a total beside the counts: the turn stands.
    return turn()


@pytest.mark.parametrize("mode", MODES)
@settings(PROFILE)
@given(field=st.sampled_from(OC_FIELDS), value=any_value)
def test_an_openclaw_assistant_entry_with_a_field_set_to_any_json_value_follows_the_rules(
    mode, field, value
):
    EXAMPLES[f"examples of an OpenClaw field set to any JSON ({mode})"] += 1
    assume(value not in ("ea", "eb"))
    mutated = oc_line("em", 10, 20)
    put(mutated, field, value)
    outcome, tokens = oc_expected(field, value)
    lines = [
        dumps(oc_header("s1")),
        dumps(oc_line("ea", 1001, 2001)),
        dumps(mutated),
        dumps(oc_line("eb", 1002, 2002)),
    ]
    with scanner_mode(mode), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "oc" / "agents" / "main" / "sessions" / "s1.jsonl"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\n".join(lines) + b"\n")
        conn = store.connect(root / "home" / "clawtrace.db")
        try:
            scan_into(conn, root)
            counts = file_counts(conn)["s1.jsonl"]
            got = stored_tokens(conn)
        finally:
            conn.close()
    want = [(1001, 2001, 0, 0, 0, 0), (1002, 2002, 0, 0, 0, 0)]
    if outcome == "turn":
        want.append(tokens)
    assert got == sorted(want), (field, value, outcome)
    assert counts == (4, 1 if outcome == "malformed" else 0), (field, value, outcome)


# --- 2. file operations interleaved with incremental scans -----------------------------------

# Logical files: (source, directory under the tree, first name). A file keeps its slot when
# renamed. The sub-agent file's lines are all sidechain turns (formats.md 1.7).
SLOTS = (
    ("claude", "claude/projects/-home-u-a", "s1"),
    ("claude", "claude/projects/-home-u-a", "s2"),
    ("claude", "claude/projects/-home-u-b/s3/subagents", "agent-a1"),
    ("oc", "oc/agents/main/sessions", "o1"),
    ("oc", "oc/agents/ops/sessions", "o2"),
)
MAX_FILE_BYTES = 6500  # below head + tail blocks (8 KiB): every rewrite is within them
CLAUDE_KEYS = 6


def claude_pool_line(slot: int, k: int, version: int) -> bytes:
    """Main-thread files share keys 0..5 (a resumed session copies its parent's turns); each
    key has three streamed versions, totals apart, so that 'the largest wins' has no ties.
    The sub-agent file has keys of its own, and replays of the main keys (/btw: the parent's
    message id under another request id, the same usage as its first version)."""
    sub = SLOTS[slot][2].startswith("agent-")
    if sub and version < 0:  # a replay
        msg, req, inp, out = f"msg_{k}", f"req_btw_{k}", 1 + k, 100 * k + 1
    elif sub:
        msg, req, inp, out = f"msg_side_{k}", f"req_side_{k}", 7, 1000 + 100 * k + 10 * version
    else:
        msg, req, inp, out = f"msg_{k}", f"req_{k}", 1 + k, 100 * k + 10 * version + 1
    line: dict[str, Any] = {
        "type": "assistant",
        "sessionId": "sess",
        "cwd": "/home/u/a",
        "timestamp": f"2026-02-1{k % 4}T10:0{version % 10}:00.000Z",
        "requestId": req,
        "isSidechain": sub,
        "message": {
            "id": msg,
            "model": ("claude-haiku-4-5-20251001", "claude-opus-4-6")[k % 2],
            "usage": {"input_tokens": inp, "output_tokens": out},
        },
    }
    return dumps(line)


def oc_pool_line(slot: int, k: int) -> bytes:
    """An OpenClaw file's entries have ids of their own: the same id, the same entry."""
    return dumps(oc_line(f"{SLOTS[slot][2]}-e{k}", 3 + k, 50 * slot + k + 1))


JUNK = (
    b"garbage",
    b'{"type":"assistant","message":',
    b'{"type":"assistant","message":{"id":"x","model":"m","usage":{"input_tokens":"9"}}}',
    b"",
    b"\xff\xfe{}",
)


@st.composite
def new_lines(draw: Any, slot: int) -> list[bytes]:
    source = SLOTS[slot][0]
    sub = SLOTS[slot][2].startswith("agent-")
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["turn", "turn", "turn", "junk"]))
        if kind == "junk":
            lines.append(draw(st.sampled_from(JUNK)))
        elif source == "oc":
            lines.append(oc_pool_line(slot, draw(st.integers(0, 7))))
        else:
            version = draw(st.integers(-1 if sub else 0, 2))
            lines.append(claude_pool_line(slot, draw(st.integers(0, CLAUDE_KEYS - 1)), version))
    return lines


class ScanHistory(RuleBasedStateMachine):
    """One tree, one store scanned incrementally; the model: every version of every file a
    scan saw, written side by side into a tree of its own and scanned from scratch."""

    mode = "python"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ct-history-"))
        self.tree = self.tmp / "tree"
        self.seen = self.tmp / "seen"  # the model's tree
        self.tree.mkdir()
        self.seen.mkdir()
        self.names: list[str | None] = [None] * len(SLOTS)
        # The rest of a line the agent is writing: what it writes first when it goes on.
        self.pending: list[bytes] = [b""] * len(SLOTS)
        self.snapshots: dict[int, bytes] = {}  # slot -> content at its last snapshot
        self.versions = 0
        self.renames = 0
        self.settled_ns = time.time_ns() - 3600 * 10**9
        self.mode_cm = scanner_mode(self.mode)
        self.mode_cm.__enter__()
        self.conn = store.connect(self.tmp / "home" / "clawtrace.db")
        self.scans = 0
        EXAMPLES[f"runs of the file-operations machine ({self.mode})"] += 1

    def teardown(self) -> None:
        self.conn.close()
        self.mode_cm.__exit__(None, None, None)
        shutil.rmtree(self.tmp, ignore_errors=True)
        EXAMPLES[f"incremental scans in those runs ({self.mode})"] += self.scans

    def path(self, slot: int) -> Path:
        name = self.names[slot]
        assert name is not None
        suffix = "" if ".jsonl" in name else ".jsonl"
        return self.tree / SLOTS[slot][1] / f"{name}{suffix}"

    def content(self, slot: int) -> bytes:
        return self.path(slot).read_bytes() if self.names[slot] is not None else b""

    def header(self, slot: int) -> bytes:
        return dumps(oc_header(f"S-{SLOTS[slot][2]}")) + b"\n"

    # -- what a scan must agree with ---------------------------------------------------------

    def snapshot(self) -> None:
        """Every file as this scan sees it, kept as a version of its own in the model."""
        for slot in range(len(SLOTS)):
            if self.names[slot] is None:
                continue
            data = self.content(slot)
            if self.snapshots.get(slot) == data:
                continue
            self.snapshots[slot] = data
            self.versions += 1
            _source, folder, first = SLOTS[slot]
            target = self.seen / folder / f"{first}-v{self.versions}.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    @staticmethod
    def totals(conn: Any) -> dict[str, Any]:
        by_model = reports.cost_report(conn, tz="UTC", by="model")["rows"]
        return {
            "totals": reports.totals(conn).__dict__,
            "by_model": sorted((r["model"], r["turns"], r["output_tokens"]) for r in by_model),
            "tokens": stored_tokens(conn),
        }

    @rule()
    def scan(self) -> None:
        self.scans += 1
        result = scan_into(self.conn, self.tree)
        assert result.turns_total == self.conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        self.snapshot()
        fresh = Path(tempfile.mkdtemp(dir=self.tmp))
        model = store.connect(fresh / "clawtrace.db")
        try:
            scan_into(model, self.seen)
            assert self.totals(self.conn) == self.totals(model)
        finally:
            model.close()
            shutil.rmtree(fresh)

    # -- what happens to the files -----------------------------------------------------------

    @rule(slot=st.integers(0, len(SLOTS) - 1), data=st.data(), half=st.booleans())
    def append(self, slot: int, data: Any, half: bool) -> None:
        """New lines (a new file when there is none), the last one now and then half-written."""
        if self.names[slot] is not None and len(self.content(slot)) > MAX_FILE_BYTES:
            return
        lines = data.draw(new_lines(slot))
        if self.names[slot] is None:
            self.names[slot] = SLOTS[slot][2]
            self.path(slot).parent.mkdir(parents=True, exist_ok=True)
            self.path(slot).write_bytes(self.header(slot) if SLOTS[slot][0] == "oc" else b"")
        text = self.pending[slot] + b"".join(line + b"\n" for line in lines)
        self.pending[slot] = b""
        if half and len(text) > 1:  # (a lone empty junk line has no middle to cut at)
            cut = data.draw(st.integers(1, len(text) - 1), label="cut")
            text, self.pending[slot] = text[:cut], text[cut:]
        with open(self.path(slot), "ab") as fh:
            fh.write(text)

    def _writer_left(self, slot: int) -> None:
        """After a truncation: an agent that was writing is gone, but a last line that is a
        whole JSON object gets its newline (an agent never leaves one without: a scan reads it
        as a line, so what follows must not join it)."""
        data = self.content(slot)
        tail = data[data.rfind(b"\n") + 1 :]
        try:
            whole = tail.strip() != b"" and isinstance(orjson.loads(tail), dict)
        except orjson.JSONDecodeError:
            whole = False
        self.pending[slot] = b"\n" if whole else b""

    def _floor(self, slot: int) -> int:
        """Bytes a rewrite keeps: an OpenClaw file keeps its header (a transcript without one
        is not what these operations are about)."""
        return len(self.header(slot)) if SLOTS[slot][0] == "oc" else 0

    @precondition(lambda self: any(n is not None for n in self.names))
    @rule(data=st.data())
    def truncate(self, data: Any) -> None:
        slot = data.draw(st.sampled_from([i for i, n in enumerate(self.names) if n]))
        size = len(self.content(slot))
        floor = self._floor(slot)
        if size <= floor:
            return
        os.truncate(self.path(slot), data.draw(st.integers(floor, size - 1), label="to"))
        self._writer_left(slot)

    @precondition(lambda self: any(n is not None for n in self.names))
    @rule(data=st.data())
    def rewrite_tail_longer(self, data: Any) -> None:
        """From a line's start on, other lines, more bytes than there were."""
        slot = data.draw(st.sampled_from([i for i, n in enumerate(self.names) if n]))
        old = self.content(slot)
        floor = self._floor(slot)
        starts = [floor] + [m.end() for m in re.finditer(b"\n", old) if m.end() > floor]
        start = data.draw(st.sampled_from(starts), label="from")
        text = b""
        while len(text) <= len(old) - start:
            text += b"".join(line + b"\n" for line in data.draw(new_lines(slot)))
        with open(self.path(slot), "r+b") as fh:
            fh.seek(start)
            fh.write(text)
        self.pending[slot] = b""

    @precondition(lambda self: any(n is not None for n in self.names))
    @rule(data=st.data())
    def rewrite_in_place_same_size_and_mtime(self, data: Any) -> None:
        """The last whole line replaced by another, padded to its length, and the file's times
        put back: only its ctime (and its bytes) say it changed."""
        slot = data.draw(st.sampled_from([i for i, n in enumerate(self.names) if n]))
        path = self.path(slot)
        old = path.read_bytes()
        ends = [m.end() for m in re.finditer(b"\n", old) if m.end() > self._floor(slot)]
        if not ends:
            return
        end = ends[-1]
        start = old.rfind(b"\n", 0, end - 1) + 1
        if start < self._floor(slot):
            return
        length = end - 1 - start
        choices = [line for line in data.draw(new_lines(slot)) if len(line) <= length and line]
        if not choices:
            return
        line = choices[0].ljust(length)  # (JSON allows the spaces after the object)
        st_before = os.stat(path)
        with open(path, "r+b") as fh:
            fh.seek(start)
            fh.write(line)
        os.utime(path, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
        assert os.stat(path).st_size == st_before.st_size

    @precondition(lambda self: any(n is not None for n in self.names))
    @rule(data=st.data())
    def rename(self, data: Any) -> None:
        """Claude Code files get another name in their directory; an OpenClaw transcript is
        archived as `/reset` does (`<name>.jsonl.reset.<time>`)."""
        slot = data.draw(st.sampled_from([i for i, n in enumerate(self.names) if n]))
        self.renames += 1
        first = SLOTS[slot][2]
        if SLOTS[slot][0] == "oc":
            new = f"{first}.jsonl.reset.2026-03-01T10-00-0{self.renames % 10}.{self.renames:03d}Z"
        else:
            new = f"{first}-r{self.renames}"
        old = self.path(slot)
        self.names[slot] = new
        os.rename(old, self.path(slot))

    @precondition(lambda self: any(n is not None for n in self.names))
    @rule(data=st.data())
    def delete(self, data: Any) -> None:
        slot = data.draw(st.sampled_from([i for i, n in enumerate(self.names) if n]))
        self.path(slot).unlink()
        self.names[slot] = None
        self.pending[slot] = b""

    @rule()
    def time_passes(self) -> None:
        """Every file and directory an hour old (later each time): the next scan may trust
        what its listing found (sources.base.RACY_NS) and look only at the files."""
        self.settled_ns += 10**9
        for path in [self.tree, *self.tree.rglob("*")]:
            os.utime(path, ns=(self.settled_ns, self.settled_ns), follow_symlinks=False)

    @invariant()
    def the_store_is_sound(self) -> None:
        assert self.conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"

    @initialize()
    def start(self) -> None:
        self.scan()


class NativeScanHistory(ScanHistory):
    mode = "native"


TestScanHistoryPython = ScanHistory.TestCase
TestScanHistoryPython.settings = settings(PROFILE, max_examples=MACHINE_RUNS)
TestScanHistoryNative = NativeScanHistory.TestCase
TestScanHistoryNative.settings = settings(PROFILE, max_examples=MACHINE_RUNS)
