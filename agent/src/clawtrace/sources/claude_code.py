"""Claude Code transcripts: `projects/<encoded-cwd>/**/*.jsonl` (formats.md section 1).

Pre-filter (documented because it affects the malformed count): only lines containing the bytes
`"assistant"` can carry usage, and only those are decoded. Every other line is checked cheaply
(it must look like one JSON object: starts with `{`, ends with `}`) and counted malformed if it
does not; its content is never decoded. Metadata the turn needs (session id, cwd, git branch,
agent id) is on the assistant line itself.

The C scanner (`clawtrace._native.claude_parse`) applies exactly these rules to the lines it is
sure about and defers the rest to `_line` below, one line at a time, in order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from clawtrace import rules
from clawtrace.paths import label
from clawtrace.sources import base
from clawtrace.sources.base import (
    MAX_TOKENS,
    Discovery,
    FileEntry,
    ParseResult,
    RawTurn,
    iso_to_ms,
    key_hash,
    lines_end,
    money,
    read_lines,
    token_count,
)

NAME = "claude-code"
_SEMVER = re.compile(r"^\d+\.\d+\.\d+")
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


class ClaudeCode:
    name = NAME

    def discover(self, roots: list[Path]) -> Discovery:
        found = Discovery()
        found.files = list(self.walk(roots, found))
        return found

    def walk(self, roots: list[Path], found: Discovery) -> Iterator[FileEntry]:
        real_roots: set[str] = set()
        walked: list[str] = []
        for root in roots:
            if not found.watch_path(str(root), "d"):
                found.roots_missing.append(root)
                continue
            # ~/.config/claude and ~/.claude may be the same directory through a symlink.
            real_root = os.path.realpath(root)
            if real_root in real_roots:
                continue
            real_roots.add(real_root)
            found.roots_found.append(root)
            top = str(root)
            # A root inside one listed before was listed with it; one that holds a root listed
            # before is listed without that subtree. (A set of every path seen would do the same
            # at a few hundred bytes a file.)
            if any(top.startswith(w + os.sep) for w in walked):
                found.watch.pop()
                continue
            inner = frozenset(w for w in walked if w.startswith(top + os.sep))
            walked.append(top)
            root_len = len(top) + 1
            # The root was just recorded; every directory below is, before it is listed.
            found.watch.pop()
            for dirpath, filenames in _walk(top, found, inner):
                rel = dirpath[root_len:]
                parts = rel.split(os.sep) if rel else []
                for fn in filenames:
                    key = f"{dirpath}{os.sep}{fn}"
                    project_dir = parts[0] if parts else ""
                    subagent_file = "subagents" in parts or fn.startswith("agent-")
                    yield FileEntry(
                        path=key,
                        ctx={
                            "project_dir": label(project_dir or root.name),
                            "subagent_file": subagent_file,
                            "session_hint": label(
                                parts[1] if len(parts) > 1 else fn[: -len(".jsonl")]
                            ),
                        },
                    )

    def parse(self, data: bytes, ctx: dict[str, Any], state: dict[str, Any] | None) -> ParseResult:
        state = dict(state or {})
        result = ParseResult()
        end, tail = lines_end(data)
        result.consumed = len(data) if tail else end
        best: dict[str, list[Any]] = {}
        last_cwd = state.get("cwd")
        subagent_file = bool(ctx.get("subagent_file"))
        project_fallback = str(ctx.get("project_dir") or "")
        session_hint = str(ctx.get("session_hint") or "")
        native = base.native()

        def keep(record: RawTurn) -> None:
            rules.keep(best, record)

        def fast(pos: int) -> tuple[int, bool]:
            nonlocal last_cwd
            pos, last_cwd, lines, bad, turn_lines, skipped, deferred = native.claude_parse(
                data, pos, end, last_cwd, project_fallback, session_hint, subagent_file, best
            )
            result.count(lines, bad, turn_lines, skipped)
            return pos, deferred

        def slow(start: int, stop: int) -> None:
            nonlocal last_cwd
            last_cwd = _line(
                data[start:stop],
                result,
                keep,
                last_cwd,
                project_fallback,
                subagent_file,
                session_hint,
            )

        read_lines(data, end, len(data), tail, result, fast if native else None, slow)
        if native is not None:
            result.turns = native.claude_records(best)
        else:
            result.turns = [
                (*rec[: rules.RT_TOOLS], tuple(tools.values())) for rec, tools in best.values()
            ]
        if last_cwd:
            state["cwd"] = last_cwd
        result.state = state
        return result

    def ingest(
        self,
        sink: Any,
        data: bytearray,
        n: int,
        ctx: dict[str, Any],
        state: dict[str, Any] | None,
        file_id: int,
    ) -> ParseResult:
        """`parse`, with the turns going into a native `_native.Ingest` instead of the result
        (`result.turns` stays empty; `result.skipped` holds how many turns went in)."""
        state = dict(state or {})
        result = ParseResult()
        end, tail = lines_end(data, n)
        result.consumed = n if tail else end
        last_cwd = state.get("cwd")
        subagent_file = bool(ctx.get("subagent_file"))
        project_fallback = str(ctx.get("project_dir") or "")
        session_hint = str(ctx.get("session_hint") or "")

        def fast(pos: int) -> tuple[int, bool]:
            nonlocal last_cwd
            pos, last_cwd, lines, bad, turn_lines, skipped, deferred = sink.claude(
                data, pos, end, last_cwd, project_fallback, session_hint, subagent_file
            )
            result.count(lines, bad, turn_lines, skipped)
            return pos, deferred

        def slow(start: int, stop: int) -> None:
            nonlocal last_cwd
            last_cwd = _line(
                bytes(data[start:stop]),
                result,
                sink.claude_add,
                last_cwd,
                project_fallback,
                subagent_file,
                session_hint,
            )

        read_lines(data, end, n, tail, result, fast, slow)
        result.records = sink.claude_end(file_id)
        if last_cwd:
            state["cwd"] = last_cwd
        result.state = state
        return result


def _line(
    line: bytes,
    result: ParseResult,
    keep: Callable[[RawTurn], None],
    last_cwd: str | None,
    project_fallback: str,
    subagent_file: bool,
    session_hint: str,
) -> str | None:
    """One line, by the Python rules; returns the last cwd after it."""
    if b'"assistant"' not in line:
        # Cheap shape check only: these lines carry no usage and are never decoded.
        if (line[:1] != b"{" or line.rstrip()[-1:] != b"}") and line.strip():
            result.malformed += 1
        return last_cwd
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        result.malformed += 1
        return last_cwd
    if type(obj) is not dict:
        result.malformed += 1
        return last_cwd
    if obj.get("type") != "assistant":
        return last_cwd
    tools = _tools_of(obj)
    cwd = obj.get("cwd")
    if cwd and type(cwd) is str:
        last_cwd = cwd
    record = _turn(obj, tools, result, last_cwd or project_fallback, subagent_file, session_hint)
    if record is not None:
        keep(record)
    return last_cwd


def _tools_of(obj: dict[str, Any]) -> dict[str, str]:
    tools: dict[str, str] = {}
    msg = obj.get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    if isinstance(content, list):
        for n, block in enumerate(content):
            if isinstance(block, dict) and block.get("type") == "tool_use":
                name = block.get("name")
                if isinstance(name, str) and name:
                    tools[str(block.get("id") or f"#{n}")] = name
    return tools


def _walk(top: str, found: Discovery, skip: frozenset[str] = frozenset()) -> Any:
    """(directory, sorted *.jsonl names) under `top`, depth first in name order, leaving out
    the directories in `skip` and what they hold.

    Like os.walk without its per-directory symlink checks (scandir's entry types are enough),
    and in a stable order: the tie and first-seen rules must not depend on the disk. Each
    directory is recorded in `found.watch` before it is listed.
    """
    stack = [top]
    while stack:
        current = stack.pop()
        if current in skip:
            continue
        if not found.watch_path(current, "d"):
            continue
        try:
            with os.scandir(current) as it:
                dirs: list[str] = []
                files: list[str] = []
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        dirs.append(entry.path)
                    elif entry.name.endswith(".jsonl") and entry.is_file():
                        # (is_file: a FIFO or socket so named is nothing to read.)
                        files.append(entry.name)
        except OSError as exc:
            found.cannot_list(current, exc)
            continue
        files.sort()
        yield current, files
        dirs.sort(reverse=True)
        stack.extend(dirs)


def _turn(
    obj: dict[str, Any],
    tools: dict[str, str],
    result: ParseResult,
    project: str,
    subagent_file: bool,
    session_hint: str,
) -> RawTurn | None:
    msg = obj.get("message")
    if type(msg) is not dict:
        result.malformed += 1
        return None
    model = msg.get("model")
    usage = msg.get("usage")
    if model == "<synthetic>" or obj.get("isApiErrorMessage") is True:
        result.skipped += 1
        return None
    if usage is None:
        # An assistant line without usage bills nothing (older versions, local notices).
        result.skipped += 1
        return None
    result.turn_lines += 1
    if type(usage) is not dict or type(model) is not str or not model:
        result.malformed += 1
        return None
    ts = iso_to_ms(obj.get("timestamp"))
    mid = msg.get("id")
    rid = obj.get("requestId", "")
    session = obj.get("sessionId", session_hint)
    version = obj.get("version")
    if (
        ts is None
        or type(mid) is not str
        or not mid
        or type(rid) is not str
        or ("requestId" in obj and not rid)
        or type(session) is not str
        or not session
        or (version is not None and (type(version) is not str or not _SEMVER.match(version)))
    ):
        result.malformed += 1
        return None
    get = usage.get
    inp = get("input_tokens", 0)
    out = get("output_tokens", 0)
    cread = get("cache_read_input_tokens", 0)
    cwrite = get("cache_creation_input_tokens", 0)
    if not (
        type(inp) is int
        and type(out) is int
        and type(cread) is int
        and type(cwrite) is int
        and 0 <= inp < MAX_TOKENS
        and 0 <= out < MAX_TOKENS
        and 0 <= cread < MAX_TOKENS
        and 0 <= cwrite < MAX_TOKENS
    ):
        counts = [token_count(v) for v in (inp, out, cread, cwrite)]
        if None in counts:
            result.malformed += 1
            return None
        inp, out, cread, cwrite = counts
    w5, w1 = cwrite, 0
    cc = get("cache_creation")
    if type(cc) is dict:
        a = token_count(cc.get("ephemeral_5m_input_tokens", 0))
        b = token_count(cc.get("ephemeral_1h_input_tokens", 0))
        if a is None or b is None:
            result.malformed += 1
            return None
        if a + b:
            w5, w1 = a, b
    web = 0
    stu = get("server_tool_use")
    if type(stu) is dict:
        web = token_count(stu.get("web_search_requests", 0)) or 0
    total = rules.total_tokens(inp, out, cread, w5, w1)
    if not rules.turn_tokens_sane(total, web):
        result.malformed += 1
        return None
    if total == 0 and web == 0:
        result.skipped += 1
        return None
    sidechain = obj.get("isSidechain") is True or subagent_file
    agent_id = obj.get("agentId")
    subagent = agent_id if agent_id and type(agent_id) is str else None
    cost = obj.get("costUSD")
    reported = money(cost)
    speed = get("speed")
    branch = obj.get("gitBranch")
    key = f"{mid}:{rid}" if rid else mid
    return (
        key_hash(key),
        key_hash(mid),
        key,
        subagent if sidechain and subagent else "claude",
        project,
        session,
        subagent,
        1 if sidechain else 0,
        model,
        "anthropic",
        ts,
        inp,
        out,
        cread,
        w5,
        w1,
        web,
        speed if type(speed) is str else None,
        reported,
        branch if type(branch) is str else "",
        tools,
    )
