"""Builders for Claude Code and OpenClaw log lines, and an isolated ClawTrace home per test."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from clawtrace import store
from clawtrace.config import Config
from clawtrace.scan import ScanResult, scan

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
SHARED_SAMPLES = REPO.parent / "shared" / "samples"

# The C extensions are optional (see agent/setup.py); where they are off or did not build, the
# tests that compare them with the pure-Python code have nothing to compare. CI builds them and
# sets CLAWTRACE_REQUIRE_NATIVE, so there those tests run or fail, never skip.
NATIVE_MISSING = (
    "the C extensions are not in use here (CLAWTRACE_NATIVE=0, or they did not build at install:"
    " they need a C compiler and sqlite3.h); the pure-Python path they are compared with is"
    " tested by every other test"
)


def needs_native(module: object | None) -> None:
    """Skip (with NATIVE_MISSING) when `module`, a C extension, is not in use."""
    if module is None:
        if os.environ.get("CLAWTRACE_REQUIRE_NATIVE") == "1":
            pytest.fail("CLAWTRACE_REQUIRE_NATIVE=1 but " + NATIVE_MISSING)
        pytest.skip(NATIVE_MISSING)


def bench_module(filename: str) -> ModuleType:
    """A module of the repository's bench/ (the corpus generator, the anomaly evaluator).

    The agent's tests normally run from a checkout of the whole repository; run from the agent
    package alone they skip, saying so."""
    path = REPO / "bench" / filename
    if not path.exists():
        pytest.skip(
            f"{path} is not here: these tests need the whole repository, not agent/ alone",
            allow_module_level=True,
        )
    name = f"clawtrace_bench_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def isolated_home(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every core test gets its own CLAWTRACE_HOME and no real agent directories.

    Tests under tests/live (agent-live's) manage their own environment.
    """
    home = tmp_path / "ct-home"
    if "live" in Path(str(request.node.path)).relative_to(Path(__file__).parent).parts[:1]:
        return home
    monkeypatch.setenv("CLAWTRACE_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    for var in (
        "CLAUDE_CONFIG_DIR",
        "OPENCLAW_STATE_DIR",
        "OPENCLAW_HOME",
        "CLAWDBOT_STATE_DIR",
        "TZ",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TZ", "UTC")
    return home


@pytest.fixture
def conn(isolated_home: Path) -> Iterator[Any]:
    c = store.connect(isolated_home / "clawtrace.db")
    yield c
    c.close()


def claude_assistant(
    *,
    msg_id: str,
    req_id: str | None = "req_1",
    ts: str = "2026-02-10T10:00:00.000Z",
    model: str = "claude-haiku-4-5-20251001",
    inp: int = 10,
    out: int = 20,
    cache_read: int = 0,
    cache_write: int = 0,
    w5: int | None = None,
    w1: int | None = None,
    web: int = 0,
    session: str = "sess-1",
    cwd: str = "/home/u/proj",
    sidechain: bool = False,
    agent_id: str | None = None,
    tools: list[tuple[str, str]] | None = None,
    branch: str = "main",
    extra: dict[str, Any] | None = None,
) -> str:
    usage: dict[str, Any] = {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }
    if w5 is not None or w1 is not None:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": w5 or 0,
            "ephemeral_1h_input_tokens": w1 or 0,
        }
    if web:
        usage["server_tool_use"] = {"web_search_requests": web, "web_fetch_requests": 0}
    content: list[dict[str, Any]] = [{"type": "text", "text": "secret text CANARY-7f3a9c"}]
    for tid, name in tools or []:
        content.append(
            {"type": "tool_use", "id": tid, "name": name, "input": {"x": "CANARY-7f3a9c"}}
        )
    line: dict[str, Any] = {
        "parentUuid": None,
        "isSidechain": sidechain,
        "userType": "external",
        "cwd": cwd,
        "sessionId": session,
        "version": "2.1.37",
        "gitBranch": branch,
        "type": "assistant",
        "uuid": f"u-{msg_id}-{out}",
        "timestamp": ts,
        "message": {
            "model": model,
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "content": content,
            "stop_reason": "end_turn",
            "usage": usage,
        },
    }
    if req_id is not None:
        line["requestId"] = req_id
    if agent_id:
        line["agentId"] = agent_id
    if extra:
        line.update(extra)
    return json.dumps(line)


def claude_user(text: str = "hello CANARY-7f3a9c", session: str = "sess-1") -> str:
    return json.dumps(
        {
            "type": "user",
            "sessionId": session,
            "cwd": "/home/u/proj",
            "timestamp": "2026-02-10T09:59:00.000Z",
            "message": {"role": "user", "content": text},
        }
    )


def oc_header(session: str = "s-1", cwd: str = "/home/u/.openclaw/workspace") -> str:
    return json.dumps(
        {
            "type": "session",
            "version": 3,
            "id": session,
            "timestamp": "2026-02-11T08:00:00.000Z",
            "cwd": cwd,
        }
    )


def oc_assistant(
    entry_id: str,
    *,
    provider: str | None = "anthropic",
    model: str | None = "claude-sonnet-4-5",
    inp: int = 10,
    out: int = 20,
    cache_read: int = 0,
    cache_write: int = 0,
    cost: float | None = None,
    ts: str = "2026-02-11T08:00:04.000Z",
    tools: list[str] | None = None,
    usage: dict[str, Any] | None = None,
    stop: str = "stop",
) -> str:
    u = (
        usage
        if usage is not None
        else {
            "input": inp,
            "output": out,
            "cacheRead": cache_read,
            "cacheWrite": cache_write,
            "totalTokens": inp + out + cache_read + cache_write,
            "cost": {"total": cost if cost is not None else 0},
        }
    )
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": [{"type": "text", "text": "CANARY-7f3a9c"}]
        + [
            {"type": "toolCall", "id": f"c{i}", "name": n, "arguments": {}}
            for i, n in enumerate(tools or [])
        ],
        "api": "anthropic-messages",
        "usage": u,
        "stopReason": stop,
        "timestamp": 1770796802500,
    }
    if provider is not None:
        msg["provider"] = provider
    if model is not None:
        msg["model"] = model
    return json.dumps(
        {"type": "message", "id": entry_id, "parentId": None, "timestamp": ts, "message": msg}
    )


def write_lines(path: Path, lines: list[str], *, trailing_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + ("\n" if trailing_newline and lines else "")
    path.write_text(text, encoding="utf-8")
    return path


def append_text(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def run_scan(
    conn: Any,
    claude: Path | None = None,
    openclaw: Path | None = None,
    config: Config | None = None,
    workers: int | None = 1,
) -> ScanResult:
    return scan(
        conn,
        config or Config(),
        claude_dirs=[str(claude)] if claude else [str(Path("/nonexistent-claude"))],
        openclaw_dirs=[str(openclaw)] if openclaw else [str(Path("/nonexistent-openclaw"))],
        workers=workers,
    )


# key hash -> (readable de-dup key, message id), from every log a test's store has read.
_KEYS: dict[int, tuple[str, str | None]] = {}


def _learn_keys(conn: Any) -> None:
    """The store keeps 64-bit key hashes only; tests read the keys back from the logs."""
    from clawtrace.store import key_hash

    for path, source in conn.execute("SELECT path, source FROM files"):
        try:
            lines = Path(path).read_bytes().splitlines()
        except OSError:
            continue
        session = None
        stem = Path(path).name.split(".jsonl", 1)[0].split("-topic-", 1)[0]
        agent = Path(path).parent.parent.name
        pos = 0
        for raw in lines:
            line_pos, pos = pos, pos + len(raw) + 1
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if source == "claude-code":
                msg = obj.get("message")
                mid = msg.get("id") if isinstance(msg, dict) else None
                if isinstance(mid, str) and mid:
                    rid = obj.get("requestId")
                    key = f"{mid}:{rid}" if isinstance(rid, str) and rid else mid
                    _KEYS[key_hash(key)] = (key, mid)
            elif obj.get("type") == "session" and isinstance(obj.get("id"), str):
                session = obj["id"]
            elif obj.get("type") == "message":
                eid = obj.get("id")
                tail = eid if isinstance(eid, str) and eid else f"@{line_pos}"
                key = f"oc:{agent}:{session or stem}:{tail}"
                _KEYS[key_hash(key)] = (key, None)


def turn_rows(conn: Any) -> list[dict[str, Any]]:
    """Stored turns as dicts (the `turns_wide` view), with `dedup_key` and `msg_id` read back
    from the logs, in (ts, key) order."""
    _learn_keys(conn)
    cur = conn.execute("SELECT * FROM turns_wide")
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur]
    for r in rows:
        r["dedup_key"], r["msg_id"] = _KEYS.get(r["key_hash"], (None, None))
    return sorted(rows, key=lambda r: (r["ts"], r["dedup_key"] or ""))
