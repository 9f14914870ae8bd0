"""OpenClaw transcripts: `<state>/agents/<agent>/sessions/*.jsonl` (formats.md section 2).

Every line is decoded (the model of a turn may come from an earlier `model_change` /
`model-snapshot` entry). The C scanner (`clawtrace._native`) applies the same rules to the
lines it is sure about and defers the rest to `_line` below, in order. Archived copies
(`*.jsonl.reset.<ts>`, `*.jsonl.deleted.<ts>`) are read too; their turns share the de-dup key
of the live file (`agent`, session id, entry id), so a transcript seen before and after
archiving counts once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from clawtrace import rules
from clawtrace.fileio import read_regular
from clawtrace.paths import label
from clawtrace.sources import base
from clawtrace.sources.base import (
    Discovery,
    FileEntry,
    IndexSession,
    ParseResult,
    RawTurn,
    iso_to_ms,
    key_hash,
    lines_end,
    money,
    read_lines,
    token_count,
)

# Per-file state the parser carries between lines (and between scans, in the store).
_STATE_KEYS = ("session_id", "cwd", "provider", "model")

NAME = "openclaw"
_ARCHIVE = re.compile(r"^(?P<stem>.+)\.jsonl(?:\.(?:deleted|reset)\.[^/]+)?$")


def _is_transcript(name: str) -> bool:
    if ".bak" in name or "checkpoint" in name or name.endswith(".tmp"):
        return False
    return name.endswith(".jsonl") or ".jsonl.deleted." in name or ".jsonl.reset." in name


def _kind(key: str) -> str:
    rest = key.split(":", 2)[2] if key.count(":") >= 2 else key
    if ":subagent:" in f":{rest}" or rest.startswith("subagent:"):
        return "subagent"
    if rest.startswith("cron:"):
        return "cron"
    if rest == "main":
        return "main"
    if "group:" in rest or "channel:" in rest:
        return "group"
    if "direct:" in rest:
        return "direct"
    return "other"


def _read_index(
    sessions_dir: Path, agent: str, names: set[str]
) -> tuple[list[IndexSession], dict[str, tuple[str, bool]]]:
    """sessions.json → index entries and a map from transcript file name to the session key
    and whether it is a sub-agent's."""
    path = sessions_dir / "sessions.json"
    native = base.native()
    try:
        # In C where built: a gateway's main agent can name tens of thousands of sessions, and
        # the whole index as Python dicts takes several times the file's size (65 MB for 15).
        members = native.openclaw_index(str(path)) if native else _index_members(read_regular(path))
    except OSError:
        return [], {}
    members = members or []
    found = _index_entries(members, agent, names)
    if native is not None and len(members) >= _BIG_INDEX_ENTRIES:
        # What the parse freed sits in the middle of the C heap, where free() never hands it
        # back to the system (15 MB of the 10M-turn corpus's main agent).
        del members
        native.release_memory()
    return found


_BIG_INDEX_ENTRIES = 4096  # (an entry is a few hundred bytes of JSON: a file of about 1 MB)


def _index_entries(
    members: list[tuple[Any, ...]], agent: str, names: set[str]
) -> tuple[list[IndexSession], dict[str, tuple[str, bool]]]:
    entries: list[IndexSession] = []
    by_file: dict[str, tuple[str, bool]] = {}
    # A key given twice counts once, at its first place with its last value (as a dict has it).
    latest = {m[0]: m for m in members}
    for key, is_object, sid, sfile, spawned, depth in latest.values():
        if not is_object:
            continue
        name = Path(sfile).name if sfile else (f"{sid}.jsonl" if sid else None)
        kind = _kind(key.lower())
        entries.append(
            IndexSession(
                agent=agent,
                session_key=key,
                session_id=sid,
                transcript=name,
                transcript_exists=bool(name) and name in names,
                spawned_by=spawned,
                spawn_depth=depth,
                kind=kind,
            )
        )
        facts = (key, kind == "subagent")
        if name:
            by_file[name] = facts
        if sid:
            by_file.setdefault(f"{sid}.jsonl", facts)
    return entries, by_file


def _index_members(raw: bytes) -> list[tuple[Any, ...]] | None:
    """What `_native.openclaw_index` gives, from orjson: per member of the index object, (key,
    is_object, sessionId, sessionFile, spawnedBy, spawnDepth), each None unless of its type."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None

    def text(entry: dict[str, Any], field: str) -> str | None:
        value = entry.get(field)
        return value if isinstance(value, str) else None

    members: list[tuple[Any, ...]] = []
    for key, entry in data.items():
        if not isinstance(entry, dict):
            members.append((key, False, None, None, None, None))
            continue
        depth = entry.get("spawnDepth")
        members.append(
            (
                key,
                True,
                text(entry, "sessionId"),
                text(entry, "sessionFile"),
                text(entry, "spawnedBy"),
                depth if isinstance(depth, int) and not isinstance(depth, bool) else None,
            )
        )
    return members


class OpenClaw:
    name = NAME

    def discover(self, roots: list[Path]) -> Discovery:
        found = Discovery()
        found.files = list(self.walk(roots, found))
        return found

    def walk(self, roots: list[Path], found: Discovery) -> Iterator[FileEntry]:
        for root in roots:
            agents_dir = root / "agents"
            if not found.watch_path(str(agents_dir), "d"):
                found.roots_missing.append(root)
                continue
            found.roots_found.append(root)
            for agent_dir in sorted(p for p in agents_dir.iterdir() if p.is_dir()):
                sessions_dir = agent_dir / "sessions"
                found.watch_path(str(agent_dir), "d")  # a sessions/ made later changes it
                if not found.watch_path(str(sessions_dir), "d"):
                    continue
                if (sessions_dir / "sessions.json").exists():
                    found.watch_path(str(sessions_dir / "sessions.json"), "f")
                try:
                    with os.scandir(sessions_dir) as it:
                        listing = {e.name: e.path for e in it if e.is_file()}
                except OSError as exc:
                    found.cannot_list(str(sessions_dir), exc)
                    continue
                agent = label(agent_dir.name)
                index, by_file = _read_index(sessions_dir, agent, set(listing))
                found.index.extend(index)
                for name in sorted(listing):
                    if not _is_transcript(name):
                        continue
                    m = _ARCHIVE.match(name)
                    stem = m.group("stem") if m else name
                    session_key, subagent = by_file.get(f"{stem}.jsonl", (None, False))
                    session_hint = label(stem.split("-topic-", 1)[0])
                    yield FileEntry(
                        path=listing[name],
                        ctx={
                            "agent": agent,
                            "session_hint": session_hint,
                            "subagent": subagent,
                            "session_key": session_key,
                            "archived": name != f"{stem}.jsonl",
                        },
                    )

    def parse(self, data: bytes, ctx: dict[str, Any], state: dict[str, Any] | None) -> ParseResult:
        state = dict(state or {})
        result = ParseResult()
        end, tail = lines_end(data)
        result.consumed = len(data) if tail else end
        agent, hint, sub, session_key, ctx = _context(ctx)
        offset = int(state.get("offset", 0))
        # (session_id, cwd, provider, model): None is "not seen yet".
        st = tuple(v if isinstance(v := state.get(k), str) else None for k in _STATE_KEYS)
        native = base.native()

        def fast(pos: int) -> tuple[int, bool]:
            nonlocal st
            recs, pos, st, lines, bad, turn_lines, skipped, deferred = native.openclaw_parse(
                data, pos, end, offset, agent, hint, sub, session_key, st
            )
            result.count(lines, bad, turn_lines, skipped)
            result.turns.extend(recs)
            return pos, deferred

        def slow(start: int, stop: int) -> None:
            nonlocal st
            st = _line(data[start:stop], offset + start, st, ctx, result, result.turns.append)

        read_lines(data, end, len(data), tail, result, fast if native else None, slow)
        result.state = _state_after(state, st, offset + result.consumed)
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
        """`parse`, with the turns going into a native `_native.Ingest` (`result.records`
        counts them; `result.turns` stays empty)."""
        state = dict(state or {})
        result = ParseResult()
        end, tail = lines_end(data, n)
        result.consumed = n if tail else end
        agent, hint, sub, session_key, ctx = _context(ctx)
        offset = int(state.get("offset", 0))
        st = tuple(v if isinstance(v := state.get(k), str) else None for k in _STATE_KEYS)

        def emit(record: RawTurn) -> None:
            sink.add(record, NAME, file_id)
            result.records += 1

        def fast(pos: int) -> tuple[int, bool]:
            nonlocal st
            pos, st, lines, bad, turn_lines, skipped, deferred, turns = sink.openclaw(
                data, pos, end, offset, agent, hint, sub, session_key, st, file_id
            )
            result.count(lines, bad, turn_lines, skipped)
            result.records += turns
            return pos, deferred

        def slow(start: int, stop: int) -> None:
            nonlocal st
            st = _line(bytes(data[start:stop]), offset + start, st, ctx, result, emit)

        read_lines(data, end, n, tail, result, fast, slow)
        result.state = _state_after(state, st, offset + result.consumed)
        return result


def _state_after(state: dict[str, Any], st: tuple, offset: int) -> dict[str, Any]:
    """What the next read of the file starts from: the session facts seen so far (None is
    "not seen yet", kept from before) and the byte offset."""
    for k, v in zip(_STATE_KEYS, st, strict=True):
        if v is not None:
            state[k] = v
    state["offset"] = offset
    return state


def _context(ctx: dict[str, Any]) -> tuple[str, str | None, bool, str | None, dict[str, Any]]:
    agent = str(ctx.get("agent") or "main")
    hint = ctx.get("session_hint")
    hint = str(hint) if hint else None
    sub = bool(ctx.get("subagent"))
    session_key = ctx.get("session_key")
    session_key = str(session_key) if session_key is not None else None
    ctx = {**ctx, "agent": agent, "session_hint": hint, "subagent": sub, "session_key": session_key}
    return agent, hint, sub, session_key, ctx


def _line(
    line: bytes,
    line_pos: int,
    st: tuple[str | None, ...],
    ctx: dict[str, Any],
    result: ParseResult,
    emit: Callable[[RawTurn], None],
) -> tuple[str | None, ...]:
    """One line, by the Python rules; returns the per-file state after it."""
    if not line.strip():
        return st
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        result.malformed += 1
        return st
    if not isinstance(obj, dict):
        result.malformed += 1
        return st
    session_id, cwd, provider, model = st
    kind = obj.get("type")
    if kind == "session":
        if isinstance(obj.get("id"), str):
            session_id = obj["id"]
        if isinstance(obj.get("cwd"), str):
            cwd = obj["cwd"]
        return session_id, cwd, provider, model
    if kind == "model_change":
        if isinstance(obj.get("provider"), str):
            provider = obj["provider"]
        if isinstance(obj.get("modelId"), str):
            model = obj["modelId"]
        return session_id, cwd, provider, model
    if kind == "custom" and obj.get("customType") == "model-snapshot":
        d = obj.get("data")
        if isinstance(d, dict):
            if isinstance(d.get("provider"), str):
                provider = d["provider"]
            if isinstance(d.get("modelId"), str):
                model = d["modelId"]
        return session_id, cwd, provider, model
    if kind != "message":
        return st
    msg = obj.get("message")
    if not isinstance(msg, dict):
        result.malformed += 1
        return st
    if msg.get("role") != "assistant":
        return st
    state = {"session_id": session_id, "cwd": cwd, "provider": provider, "model": model}
    record = _turn(obj, msg, state, ctx, ctx["agent"], line_pos, result)
    if record is not None:
        emit(record)
    return st


def _turn(
    obj: dict[str, Any],
    msg: dict[str, Any],
    state: dict[str, Any],
    ctx: dict[str, Any],
    agent: str,
    line_pos: int,
    result: ParseResult,
) -> RawTurn | None:
    usage = msg.get("usage")
    if usage is None:
        result.skipped += 1
        return None
    result.turn_lines += 1
    if not isinstance(usage, dict):
        result.malformed += 1
        return None
    parts = []
    for k in ("input", "output", "cacheRead", "cacheWrite"):
        v = token_count(usage.get(k, 0))
        if v is None:
            result.malformed += 1
            return None
        parts.append(v)
    inp, out, cread, cwrite = parts
    if not any(k in usage for k in ("input", "output", "cacheRead", "cacheWrite")):
        # Only a total: book it as output, as ccusage does.
        total = token_count(usage.get("totalTokens", 0))
        if total is None:
            result.malformed += 1
            return None
        out = total
    total = rules.total_tokens(inp, out, cread, cwrite)
    if not rules.turn_tokens_sane(total):
        result.malformed += 1
        return None
    if total == 0:
        # Delivery mirrors and error/aborted replies with zero usage were never billed.
        result.skipped += 1
        return None
    ts = iso_to_ms(obj.get("timestamp"))
    if ts is None:
        mts = msg.get("timestamp")
        if type(mts) in (int, float) and rules.MIN_TS_MS <= mts < rules.MAX_TS_MS:
            ts = int(mts)
    if ts is None:
        result.malformed += 1
        return None
    model = (
        msg.get("model")
        if isinstance(msg.get("model"), str) and msg.get("model")
        else state.get("model")
    )
    provider = (
        msg.get("provider")
        if isinstance(msg.get("provider"), str) and msg.get("provider")
        else state.get("provider")
    )
    if not model:
        result.malformed += 1
        return None
    session = state.get("session_id") or ctx.get("session_hint") or "unknown"
    entry_id = obj.get("id")
    key_tail = entry_id if isinstance(entry_id, str) and entry_id else f"@{line_pos}"
    cost = usage.get("cost")
    reported = None
    if isinstance(cost, dict):
        reported = money(cost.get("total"))
    tools: list[str] = []
    content = msg.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "toolCall":
                name = block.get("name")
                if isinstance(name, str) and name:
                    tools.append(name)
    sub = bool(ctx.get("subagent"))
    session_key = ctx.get("session_key")
    key = f"oc:{agent}:{session}:{key_tail}"
    hashed = key_hash(key)
    return (
        hashed,
        hashed,  # no message ids: the key stands in (store.turns_key)
        key,
        agent,
        state.get("cwd") or agent,
        session,
        session_key if sub else None,
        1 if sub else 0,
        model,
        provider or "unknown",
        ts,
        inp,
        out,
        cread,
        cwrite,
        0,
        0,
        None,
        reported,
        "",
        tuple(tools),
    )
