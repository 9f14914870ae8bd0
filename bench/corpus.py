#!/usr/bin/env python3
"""Generate large, realistic Claude Code and OpenClaw session-log corpora with their ground truth.

Standalone on purpose (stdlib + orjson, never `clawtrace`): the truth it writes to
`DIR/truth.json` comes from the generator's own records of which API calls it invented, not from
parsing the files back, so it can judge the agent's parser instead of agreeing with it.

Layout written under DIR (see ../shared/formats.md for the formats):

    claude/projects/<encoded-cwd>/<session>.jsonl
    claude/projects/<encoded-cwd>/<session>/subagents/agent-<id>.jsonl    (2.1.x sub-agents)
    claude/projects/<encoded-cwd>/agent-<id>.jsonl                        (2.0.x flat sub-agents)
    openclaw/agents/<agent>/sessions/{<sid>.jsonl, <sid>-topic-<n>.jsonl,
        <sid>.jsonl.reset.<ts>, <sid>.jsonl.deleted.<ts>, <sid>.jsonl.bak, sessions.json}
    truth.json

What the corpus exercises (each counted in truth.json["counts"]): streamed duplicates (2-4
pieces per API call, partial output on early pieces), resumed sessions that copy earlier lines
verbatim into a new file, `/btw` sidechain replays of a parent message, inline 1.x sidechains,
`<synthetic>` errors, `costUSD` on 1.0.x lines, cache writes with and without the 5m/1h
breakdown, web-search requests, OpenClaw delivery mirrors, zero-usage error replies, billed error
replies, assistant entries without model/provider (attributed from the last model_change),
model_change/custom entries, `.bak` backups that must be ignored, and malformed lines of several
kinds. The canary CANARY-7f3a9c is embedded in content fields.

Usage:
    python bench/corpus.py --turns 100000 --out bench/corpora/t100k --seed 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

CANARY = "CANARY-7f3a9c"
GENERATOR_VERSION = 3
BUCKET_MS = 15 * 60 * 1000  # every real UTC offset is a multiple of 15 minutes
DEFAULT_END = dt.date(2026, 11, 10)  # 30 days back crosses the EU (Oct 25) and US (Nov 1) DST ends
DEFAULT_TIMEZONES = ("America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu")
FORMATS = ("claude", "openclaw")

# Index of the counters kept per truth bucket.
F_TURNS, F_IN, F_OUT, F_CR, F_CW5, F_CW1H, F_WEB, F_LOGGED_NANO = range(8)
N_FIELDS = 8

CLAUDE_MODELS = (
    # (model id, weight, typical output scale)
    ("claude-opus-4-6", 30, 1.0),
    ("claude-opus-4-5-20251101", 14, 1.0),
    ("claude-sonnet-4-5-20250929", 26, 0.8),
    ("claude-haiku-4-5-20251001", 18, 0.4),
    ("claude-sonnet-4-20250514", 8, 0.8),
    ("claude-opus-4-1-20250805", 4, 1.0),
)
# Rough list prices ($ per million: input, output, cache read, cache write 5m), only to write
# plausible `costUSD` / `usage.cost` values: truth records what was written, it prices nothing.
ROUGH_PRICES = {
    "claude-opus-4-6": (5.0, 25.0, 0.5, 6.25),
    "claude-opus-4-5-20251101": (5.0, 25.0, 0.5, 6.25),
    "claude-sonnet-4-5-20250929": (3.0, 15.0, 0.3, 3.75),
    "claude-haiku-4-5-20251001": (1.0, 5.0, 0.1, 1.25),
    "claude-sonnet-4-20250514": (3.0, 15.0, 0.3, 3.75),
    "claude-opus-4-1-20250805": (15.0, 75.0, 1.5, 18.75),
    "claude-sonnet-4-5": (3.0, 15.0, 0.3, 3.75),
    "claude-haiku-4-5": (1.0, 5.0, 0.1, 1.25),
    "glm-4.7": (0.6, 2.2, 0.11, 0.0),
    "MiniMax-M2.1": (0.3, 1.2, 0.03, 0.375),
    "gpt-5.2": (1.75, 14.0, 0.175, 0.0),
    "gpt-5.1-codex": (1.25, 10.0, 0.125, 0.0),
    "gemini-3-pro-preview": (2.0, 12.0, 0.2, 0.0),
    "gemini-2.5-flash": (0.3, 2.5, 0.03, 0.0),
}
OPENCLAW_MODELS = (
    # (provider, model, api, weight, pi knows its price)
    ("anthropic", "claude-sonnet-4-5", "anthropic-messages", 24, True),
    ("anthropic", "claude-opus-4-6", "anthropic-messages", 10, True),
    ("anthropic", "claude-haiku-4-5", "anthropic-messages", 8, True),
    ("zai", "glm-4.7", "openai-completions", 14, True),
    ("openrouter", "moonshotai/kimi-k2.5", "openai-completions", 12, False),
    ("minimax", "MiniMax-M2.1", "anthropic-messages", 8, True),
    ("openai", "gpt-5.2", "openai-responses", 10, True),
    ("openai-codex", "gpt-5.1-codex", "openai-codex-responses", 5, True),
    ("google", "gemini-3-pro-preview", "google-generative-ai", 5, True),
    ("google", "gemini-2.5-flash", "google-generative-ai", 4, True),
)
ERAS = (("1.0", "1.0.{}", 10), ("2.0", "2.0.{}", 25), ("2.1", "2.1.{}", 65))
TOOLS = ("Read", "Edit", "Bash", "Grep", "Glob", "Write", "TodoWrite", "WebFetch", "Task")
OC_TOOLS = ("exec", "read", "write", "web_search", "browser", "message", "sessions_spawn")
WORDS = [
    "the",
    "parser",
    "test",
    "fixture",
    "race",
    "temp",
    "dir",
    "cache",
    "token",
    "cost",
    "session",
    "model",
    "report",
    "store",
    "scan",
    "index",
    "file",
    "line",
    "offset",
    "json",
    "value",
    "error",
    "retry",
    "budget",
    "window",
    "block",
    "burn",
    "rate",
    "project",
    "branch",
    "commit",
    "merge",
    "deploy",
    "config",
    "path",
    "module",
    "import",
    "return",
    "async",
    "await",
    "function",
    "class",
    "object",
    "list",
    "dict",
    "key",
    "field",
    "schema",
    "migration",
    "query",
    "rollup",
    "bucket",
    "timezone",
    "daylight",
    "saving",
    "offset",
    "invoice",
    "email",
    "standup",
    "summary",
    "draft",
    "reply",
    "channel",
    "thread",
    "topic",
    "agent",
    "subagent",
    "tool",
    "result",
]
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

MALFORMED_KINDS_CLAUDE = (
    "truncated",
    "bad_json",
    "null_tokens",
    "bad_timestamp",
    "empty_message_id",
    "string_tokens",
)
MALFORMED_KINDS_OPENCLAW = ("truncated", "bad_json", "string_tokens", "usage_not_object")


# ----------------------------------------------------------------------------- helpers


def iso_ms(ms: int) -> str:
    s, m = divmod(ms, 1000)
    t = time.gmtime(s)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{m:03d}Z"
    )


def encode_cwd(cwd: str) -> str:
    """Claude Code's project dir name: every non-alphanumeric ASCII char becomes '-'."""
    return "".join(c if (c.isascii() and c.isalnum()) else "-" for c in cwd)


def split_int(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integer parts proportional to weights, summing exactly to total."""
    s = sum(weights) or 1.0
    raw = [total * w / s for w in weights]
    parts = [int(r) for r in raw]
    rest = total - sum(parts)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[:rest]:
        parts[i] += 1
    return parts


class Ids:
    """Random ids from a seeded RNG (uuid4-shaped, Anthropic-shaped, 8-hex OpenClaw ids)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def uuid(self) -> str:
        r = self.rng.getrandbits(128)
        h = f"{r:032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[r & 3]}{h[17:20]}-{h[20:32]}"

    def b62(self, n: int) -> str:
        return "".join(self.rng.choices(B62, k=n))

    def msg(self) -> str:
        return "msg_01" + self.b62(22)

    def req(self) -> str:
        return "req_011" + self.b62(21)

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"


class TextPool:
    """Pre-built content snippets, so generating 1.7 GB does not spend its time making words."""

    def __init__(self, seed: int):
        rng = random.Random(f"textpool:{seed}")
        self.short = [self._text(rng, rng.randint(3, 14)) for _ in range(400)]
        self.medium = [self._text(rng, rng.randint(8, 30)) for _ in range(400)]
        self.long = [self._code(rng, rng.randint(3, 20)) for _ in range(300)]
        self.sigs = [self._sig(rng, rng.randint(80, 300)) for _ in range(200)]

    @staticmethod
    def _text(rng: random.Random, n: int) -> str:
        words = rng.choices(WORDS, k=n)
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), CANARY)
        text = " ".join(words)
        return text[0].upper() + text[1:] + "."

    @staticmethod
    def _code(rng: random.Random, n: int) -> str:
        lines = []
        for i in range(n):
            ind = "    " * rng.randint(0, 3)
            lines.append(f"{i + 1:>5}\t{ind}{' '.join(rng.choices(WORDS, k=rng.randint(2, 9)))}")
        if rng.random() < 0.3:
            lines.insert(rng.randrange(len(lines) + 1), f"    # {CANARY}")
        return "\n".join(lines)

    @staticmethod
    def _sig(rng: random.Random, n: int) -> str:
        return "".join(rng.choices(B62 + "+/", k=n))


class Ledger:
    """The truth, accumulated while generating: one bucket per (source, provider, model, kind,
    15-minute UTC slot), plus per-file line/malformed counts and event counters."""

    def __init__(self) -> None:
        self.buckets: dict[tuple, list[int]] = {}
        self.files: dict[str, dict] = {}
        self.counts: Counter = Counter()
        self.oc_index: dict[str, dict] = {}  # agent -> sessions.json entries

    def turn(
        self,
        source: str,
        provider: str,
        model: str,
        kind: str,
        ts_ms: int,
        inp: int,
        out: int,
        cr: int,
        cw5: int,
        cw1h: int,
        web: int = 0,
        logged_nano: int = 0,
    ) -> None:
        key = (source, provider, model, kind, ts_ms // BUCKET_MS)
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = [0] * N_FIELDS
        b[F_TURNS] += 1
        b[F_IN] += inp
        b[F_OUT] += out
        b[F_CR] += cr
        b[F_CW5] += cw5
        b[F_CW1H] += cw1h
        b[F_WEB] += web
        b[F_LOGGED_NANO] += logged_nano

    def file(self, rel: str, lines: int, malformed: Counter) -> None:
        self.files[rel] = {"lines": lines, "malformed": dict(malformed)}

    def merge(self, other: Ledger) -> None:
        for k, v in other.buckets.items():
            b = self.buckets.get(k)
            if b is None:
                self.buckets[k] = list(v)
            else:
                for i in range(N_FIELDS):
                    b[i] += v[i]
        self.files.update(other.files)
        self.counts.update(other.counts)
        for agent, entries in other.oc_index.items():
            self.oc_index.setdefault(agent, {}).update(entries)


class FileOut:
    """Lines of one file, written when the file is complete (files stay well under a few MB)."""

    def __init__(self, root: Path, rel: str):
        self.root = root
        self.rel = rel
        self.lines: list[bytes] = []
        self.malformed: Counter = Counter()
        self.malformed_at: dict[int, str] = {}  # line index -> kind, for verbatim copies

    def add(self, obj: dict) -> bytes:
        line = orjson.dumps(obj)
        self.lines.append(line)
        return line

    def raw(self, line: bytes, malformed_kind: str | None = None) -> None:
        if malformed_kind:
            self.malformed[malformed_kind] += 1
            self.malformed_at[len(self.lines)] = malformed_kind
        self.lines.append(line)

    def close(self, ledger: Ledger, rel: str | None = None) -> None:
        rel = rel or self.rel
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"\n".join(self.lines))
            fh.write(b"\n")
        ledger.file(rel, len(self.lines), self.malformed)


def fake_cost_nano(model: str, inp: int, out: int, cr: int, cw: int) -> int:
    p = ROUGH_PRICES.get(model, (1.0, 4.0, 0.1, 1.25))
    # $/M tokens * tokens = micro-dollars; * 1000 = nano-dollars
    return round((inp * p[0] + out * p[1] + cr * p[2] + cw * p[3]) * 1000)


def nano_to_float(n: int) -> float:
    return n / 1e9


# ----------------------------------------------------------------------------- plan


def plan_jobs(turns: int, formats: tuple[str, ...], seed: int) -> list[tuple]:
    """Split the turn budget into independent jobs (one Claude project, or a slice of one
    OpenClaw agent's sessions). Each job has its own RNG, so output does not depend on how many
    workers run them."""
    rng = random.Random(f"plan:{seed}")
    shares = {"claude": 0.8, "openclaw": 0.2} if len(formats) == 2 else {formats[0]: 1.0}
    budget = dict(zip(shares, split_int(turns, list(shares.values())), strict=True))
    jobs: list[tuple] = []
    if budget.get("claude"):
        n = budget["claude"]
        n_projects = max(2, min(300, n // 3000))
        weights = [rng.paretovariate(1.3) for _ in range(n_projects)]
        for i, t in enumerate(split_int(n, weights)):
            if t:
                jobs.append(("claude", i, t))
    if budget.get("openclaw"):
        n = budget["openclaw"]
        agents = ["main", "ops", "research", "coder", "family"][: max(2, min(5, 1 + n // 20000))]
        per_agent = split_int(n, [3.0] + [1.0] * (len(agents) - 1))
        for a, t in zip(agents, per_agent, strict=True):
            chunks = max(1, t // 15000)
            for c, ct in enumerate(split_int(t, [1.0] * chunks)):
                if ct:
                    jobs.append(("openclaw", (a, c), ct))
    return jobs


def window_ms(end: dt.date, days: int) -> tuple[int, int]:
    start = dt.datetime.combine(end - dt.timedelta(days=days - 1), dt.time(), dt.UTC)
    stop = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    return int(start.timestamp() * 1000), int(stop.timestamp() * 1000)


# ----------------------------------------------------------------------------- Claude Code


class ClaudeProjectGen:
    def __init__(self, out: Path, index: int, turns: int, seed: int, win: tuple[int, int], cfg):
        self.root = out / "claude" / "projects"
        self.out = out
        self.rng = random.Random(f"claude:{seed}:{index}")
        self.ids = Ids(self.rng)
        self.pool = TextPool(seed)
        self.turns = turns
        self.win = win
        self.cfg = cfg
        self.ledger = Ledger()
        rng = self.rng
        name = "-".join(rng.choices(WORDS, k=2)) + rng.choice(("", ".app", "_v2", ".demo", ""))
        user = rng.choice(("dev", "alice", "bob", "sam"))
        self.cwd = f"/home/{user}/projects/{name}-{index}"
        self.dirname = encode_cwd(self.cwd)
        self.model_weights = [m[1] * rng.uniform(0.3, 1.7) for m in CLAUDE_MODELS]
        self.prev_session: tuple[int, FileOut, str, str] | None = None

    # -- usage --------------------------------------------------------------
    def usage(self, era: str, model_scale: float, ctx: int, use_1h: bool) -> dict:
        rng = self.rng
        r = rng.random()
        if r < 0.75:
            inp = rng.randint(1, 12)
        elif r < 0.95:
            inp = rng.randint(13, 900)
        else:
            inp = rng.randint(900, 30000)
        cr = ctx if rng.random() < 0.93 else 0
        cw = rng.choice((0, 0, rng.randint(50, 600), rng.randint(600, 6000)))
        if rng.random() < 0.01:
            cw = rng.randint(20000, 60000)
        breakdown = era != "1.0"
        cw1h = 0
        if breakdown and use_1h:
            # 1-hour TTL sessions write mostly 1h entries, sometimes a mix.
            cw1h = cw if rng.random() < 0.8 else rng.randint(0, cw)
        cw5 = cw - cw1h
        out = max(1, int(rng.lognormvariate(5.2, 1.1) * model_scale))
        web = 0
        if era != "1.0" and rng.random() < 0.02:
            web = rng.randint(1, 4)
        return {
            "inp": inp,
            "out": out,
            "cr": cr,
            "cw5": cw5,
            "cw1h": cw1h,
            "web": web,
            "breakdown": breakdown,
        }

    @staticmethod
    def usage_obj(u: dict, out: int, era: str) -> dict:
        d = {
            "input_tokens": u["inp"],
            "cache_creation_input_tokens": u["cw5"] + u["cw1h"],
            "cache_read_input_tokens": u["cr"],
        }
        if u["breakdown"]:
            d["cache_creation"] = {
                "ephemeral_5m_input_tokens": u["cw5"],
                "ephemeral_1h_input_tokens": u["cw1h"],
            }
        d["output_tokens"] = out
        if era != "1.0":
            d["service_tier"] = "standard"
            d["server_tool_use"] = {"web_search_requests": u["web"], "web_fetch_requests": 0}
        return d

    # -- lines --------------------------------------------------------------
    def blocks(self) -> list[dict]:
        rng, pool = self.rng, self.pool
        bl = []
        if rng.random() < 0.2:
            bl.append(
                {
                    "type": "thinking",
                    "thinking": rng.choice(pool.medium),
                    "signature": rng.choice(pool.sigs),
                }
            )
        n_tools = 0 if rng.random() < 0.3 else (1 if rng.random() < 0.88 else 2)
        if rng.random() < (0.25 if n_tools else 1.0):
            bl.append(
                {
                    "type": "text",
                    "text": rng.choice(pool.short if rng.random() < 0.6 else pool.medium),
                }
            )
        for _ in range(n_tools):
            if len(bl) >= 4:
                break
            bl.append(self.tool_use())
        if not bl:
            bl.append({"type": "text", "text": rng.choice(pool.short)})
        return bl

    def tool_use(self) -> dict:
        rng = self.rng
        name = rng.choices(TOOLS, weights=(30, 20, 25, 8, 5, 6, 3, 2, 1))[0]
        path = f"{self.cwd}/src/{rng.choice(WORDS)}/{rng.choice(WORDS)}.py"
        if name == "Bash":
            inp = {
                "command": f"pytest -q tests/test_{rng.choice(WORDS)}.py",
                "description": "Run tests",
            }
        elif name in ("Edit", "Write"):
            inp = {
                "file_path": path,
                "old_string": rng.choice(self.pool.short),
                "new_string": rng.choice(self.pool.short),
            }
        elif name == "Grep":
            inp = {"pattern": rng.choice(WORDS), "path": self.cwd}
        elif name == "Task":
            inp = {
                "description": "Explore",
                "prompt": rng.choice(self.pool.medium),
                "subagent_type": "general-purpose",
            }
        elif name == "WebFetch":
            inp = {
                "url": f"https://example.org/{rng.choice(WORDS)}",
                "prompt": rng.choice(self.pool.short),
            }
        else:
            inp = {"file_path": path}
        return {"type": "tool_use", "id": "toolu_01" + self.ids.b62(22), "name": name, "input": inp}

    def run(self) -> Ledger:
        rng = self.rng
        remaining = self.turns
        sessions = []
        while remaining > 0:
            n = min(remaining, max(3, int(rng.lognormvariate(3.6, 0.9))))
            if remaining - n < 3:
                n = remaining
            sessions.append(n)
            remaining -= n
        for n in sessions:
            self.session(n)
        return self.ledger

    def session(self, n_turns: int) -> None:
        rng, ids = self.rng, self.ids
        era = rng.choices([e[0] for e in ERAS], weights=[e[2] for e in ERAS])[0]
        version = dict((e[0], e[1]) for e in ERAS)[era].format(rng.randint(1, 80))
        sid = ids.uuid()
        rel_dir = f"claude/projects/{self.dirname}"
        main = FileOut(self.out, f"{rel_dir}/{sid}.jsonl")
        w0, w1 = self.win
        duration_guess = n_turns * 130_000 + 3_600_000
        t = rng.randint(w0 + 60_000, max(w0 + 60_000, w1 - duration_guess - 3_600_000))
        parent = None
        # A resumed session starts by copying the previous session's tail verbatim.
        prev = self.prev_session
        if (
            prev is not None
            and rng.random() < 0.2
            and prev[0] + 3 * 3_600_000 < w1 - duration_guess
        ):
            prev_end, prev_file, prev_era, prev_version = prev
            prev_lines = prev_file.lines
            k = min(len(prev_lines), rng.randint(4, 40))
            for idx in range(len(prev_lines) - k, len(prev_lines)):
                line = prev_lines[idx]
                main.raw(line, prev_file.malformed_at.get(idx))
                if b'"type":"assistant"' in line:
                    self.ledger.counts["claude_resumed_copied_assistant_lines"] += 1
            self.ledger.counts["claude_resumed_sessions"] += 1
            t = prev_end + rng.randint(60_000, 2 * 3_600_000)
            era, version = prev_era, prev_version
        slug = "-".join(rng.choices(WORDS, k=3))
        base = {
            "isSidechain": False,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": sid,
            "version": version,
            "gitBranch": rng.choice(("main", "main", "dev", f"feat/{rng.choice(WORDS)}", "")),
        }
        if era == "2.1":
            base["slug"] = slug
        ctx = {"base": base, "era": era, "sid": sid, "use_1h": rng.random() < 0.35, "t": t}
        ctx["left"] = n_turns  # billed calls still to write, sub-agents' included
        if era == "1.0" and rng.random() < 0.5:
            main.add(
                {"type": "summary", "summary": rng.choice(self.pool.short), "leafUuid": ids.uuid()}
            )
        if era == "2.1":
            main.add({"type": "permission-mode", "permissionMode": "default", "sessionId": sid})
        model_i = rng.choices(range(len(CLAUDE_MODELS)), weights=self.model_weights)[0]
        cache_ctx = rng.randint(8000, 20000)
        last_assistant: list[bytes] | None = None
        first = True
        while ctx["left"] > 0:
            # A typed prompt now and then, tool results otherwise.
            if first or rng.random() < 0.12:
                first = False
                uid = ids.uuid()
                main.add(
                    {
                        "parentUuid": parent,
                        **base,
                        "type": "user",
                        "uuid": uid,
                        "timestamp": iso_ms(ctx["t"]),
                        "message": {"role": "user", "content": rng.choice(self.pool.medium)},
                    }
                )
                parent = uid
                ctx["t"] += rng.randint(500, 4000)
                if era != "1.0" and rng.random() < 0.05:
                    self.queue_ops(main, ctx)
            if rng.random() < 0.15:
                model_i = rng.choices(range(len(CLAUDE_MODELS)), weights=self.model_weights)[0]
            model, _, scale = CLAUDE_MODELS[model_i]
            # Quick side calls go to haiku whatever the session's model.
            model_use = "claude-haiku-4-5-20251001" if rng.random() < 0.08 else model
            cache_ctx = min(190_000, cache_ctx + rng.randint(200, 4000))
            if rng.random() < 0.02:
                cache_ctx = rng.randint(8000, 20000)  # compaction
            parent, lines, tool_uses, _ = self.assistant_call(
                main, ctx, parent, model_use, scale, cache_ctx, sidechain=None
            )
            last_assistant = lines
            # Synthetic API-error replies (never billed).
            if rng.random() < 0.01:
                parent = self.synthetic(main, ctx, parent)
            # Malformed lines, one of several kinds.
            if rng.random() < self.cfg["malformed_rate"]:
                self.malformed(main, ctx, parent)
            for tu in tool_uses:
                if tu["name"] == "Task" and era != "1.0":
                    self.subagent(main, ctx, rel_dir, model_use, last_assistant, replay=False)
                parent = self.tool_result(main, ctx, parent, tu)
            if era == "1.0" and rng.random() < 0.02:
                self.subagent(main, ctx, rel_dir, model_use, last_assistant, replay=False)
            if era == "2.1" and rng.random() < 0.01:
                # /btw side question: replays the parent message first.
                self.subagent(main, ctx, rel_dir, model_use, last_assistant, replay=True)
            if rng.random() < 0.08:
                uid = ids.uuid()
                main.add(
                    {
                        "parentUuid": parent,
                        **base,
                        "type": "system",
                        "uuid": uid,
                        "timestamp": iso_ms(ctx["t"]),
                        "subtype": "turn_duration",
                        "durationMs": rng.randint(2000, 90000),
                        "isMeta": False,
                    }
                )
                parent = uid
            # Think time between calls; a long break now and then.
            ctx["t"] += (
                rng.randint(2_000, 45_000)
                if rng.random() < 0.97
                else rng.randint(600_000, 5_400_000)
            )
        if era == "2.1":
            main.add({"type": "ai-title", "aiTitle": rng.choice(self.pool.short), "sessionId": sid})
            main.add(
                {"type": "last-prompt", "lastPrompt": rng.choice(self.pool.short), "sessionId": sid}
            )
        main.close(self.ledger)
        self.ledger.counts["claude_sessions"] += 1
        self.prev_session = (ctx["t"], main, era, version)

    def queue_ops(self, f: FileOut, ctx: dict) -> None:
        sid = ctx["sid"]
        f.add(
            {
                "type": "queue-operation",
                "operation": "enqueue",
                "timestamp": iso_ms(ctx["t"]),
                "sessionId": sid,
                "content": self.rng.choice(self.pool.short),
            }
        )
        ctx["t"] += 1000
        f.add(
            {
                "type": "queue-operation",
                "operation": "dequeue",
                "timestamp": iso_ms(ctx["t"]),
                "sessionId": sid,
            }
        )

    def assistant_call(
        self,
        f: FileOut,
        ctx: dict,
        parent: str | None,
        model: str,
        scale: float,
        cache_ctx: int,
        sidechain: dict | None,
    ) -> tuple[str, list[bytes], list[dict], int]:
        """One billed API call written as 1-4 streamed pieces; records one truth turn."""
        rng, ids = self.rng, self.ids
        era = ctx["era"]
        u = self.usage(era, scale, cache_ctx, ctx["use_1h"])
        blocks = self.blocks()
        mid, rid = ids.msg(), ids.req()
        base = ctx["base"] if sidechain is None else sidechain
        lines: list[bytes] = []
        stop = "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn"
        n = len(blocks)
        cost_nano = 0
        for j, block in enumerate(blocks):
            last = j == n - 1
            if last:
                out = u["out"]
            elif rng.random() < 0.25:
                out = u["out"]  # a middle piece that already has the final count (tie: later wins)
            else:
                out = rng.randint(1, min(10, u["out"]))
            uid = ids.uuid()
            msg = {
                "model": model,
                "id": mid,
                "type": "message",
                "role": "assistant",
                "content": [block],
                "stop_reason": stop if last else None,
                "stop_sequence": None,
                "usage": self.usage_obj(u, out, era),
            }
            line = {
                "parentUuid": parent,
                **base,
                "type": "assistant",
                "uuid": uid,
                "timestamp": iso_ms(ctx["t"]),
                "requestId": rid,
            }
            if era == "1.0":
                cost_nano = fake_cost_nano(model, u["inp"], out, u["cr"], u["cw5"] + u["cw1h"])
                line["costUSD"] = nano_to_float(cost_nano)
            line["message"] = msg
            lines.append(f.add(line))
            parent = uid
            if not last:
                ctx["t"] += rng.randint(200, 6000)
        kept_ts = ctx["t"]
        ctx["left"] -= 1
        kind = "subagent" if sidechain is not None else "main"
        self.ledger.turn(
            "claude-code",
            "anthropic",
            model,
            kind,
            kept_ts,
            u["inp"],
            u["out"],
            u["cr"],
            u["cw5"],
            u["cw1h"],
            u["web"],
            cost_nano,
        )
        c = self.ledger.counts
        c["claude_assistant_lines"] += n
        c["claude_streamed_extra_pieces"] += n - 1
        ctx["t"] += rng.randint(300, 3000)
        tool_uses = [b for b in blocks if b["type"] == "tool_use"]
        return parent, lines, tool_uses, kept_ts

    def tool_result(
        self, f: FileOut, ctx: dict, parent: str | None, tu: dict, base: dict | None = None
    ) -> str:
        rng, pool = self.rng, self.pool
        r = rng.random()
        text = rng.choice(pool.short) if r < 0.85 else rng.choice(pool.long)
        uid = self.ids.uuid()
        f.add(
            {
                "parentUuid": parent,
                **(base or ctx["base"]),
                "type": "user",
                "uuid": uid,
                "timestamp": iso_ms(ctx["t"]),
                "message": {
                    "role": "user",
                    "content": [{"tool_use_id": tu["id"], "type": "tool_result", "content": text}],
                },
                "toolUseResult": {
                    "type": "text",
                    "file": {
                        "filePath": tu["input"].get("file_path", ""),
                        "numLines": text.count("\n") + 1,
                    },
                },
                "sourceToolAssistantUUID": parent,
            }
        )
        ctx["t"] += rng.randint(100, 2500)
        return uid

    def synthetic(self, f: FileOut, ctx: dict, parent: str | None) -> str:
        rng = self.rng
        uid = self.ids.uuid()
        line = {
            "parentUuid": parent,
            **ctx["base"],
            "type": "assistant",
            "uuid": uid,
            "timestamp": iso_ms(ctx["t"]),
            "isApiErrorMessage": True,
            "error": rng.choice(("rate_limit", "overloaded", "authentication_failed")),
            "message": {
                "model": "<synthetic>",
                "id": self.ids.uuid(),
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "API Error: Rate limit reached"}],
                "stop_reason": "stop_sequence",
                "stop_sequence": None,
            },
        }
        if rng.random() < 0.7:
            line["message"]["usage"] = {
                "input_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
                "service_tier": None,
                "server_tool_use": None,
            }
        f.add(line)
        self.ledger.counts["claude_synthetic_lines"] += 1
        ctx["t"] += rng.randint(1000, 20000)
        return uid

    def malformed(self, f: FileOut, ctx: dict, parent: str | None) -> None:
        """A line no parser may bill. Each kind carries a fresh message id and real-looking
        usage, so a parser that wrongly accepts it changes the totals and the tests see it."""
        rng, ids = self.rng, self.ids
        kind = rng.choice(MALFORMED_KINDS_CLAUDE)
        usage = {
            "input_tokens": rng.randint(5, 500),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": rng.randint(0, 9000),
            "output_tokens": rng.randint(10, 900),
        }
        line = {
            "parentUuid": parent,
            **ctx["base"],
            "type": "assistant",
            "uuid": ids.uuid(),
            "timestamp": iso_ms(ctx["t"]),
            "requestId": ids.req(),
            "message": {
                "model": CLAUDE_MODELS[0][0],
                "id": ids.msg(),
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": rng.choice(self.pool.short)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            },
        }
        if kind == "truncated":
            # Cut after the type and message keys, as a crash mid-write leaves it: a
            # byte pre-filter that looks for assistant lines still sees this one.
            raw = orjson.dumps(line)
            raw = raw[: rng.randint(raw.index(b'"message"') + 12, len(raw) - 20)]
        elif kind == "bad_json":
            raw = orjson.dumps(line).replace(b'"type":"assistant",', b'"type":"assistant",,', 1)
        else:
            if kind == "null_tokens":
                usage["output_tokens"] = None
            elif kind == "bad_timestamp":
                line["timestamp"] = "yesterday at noon"
            elif kind == "empty_message_id":
                line["message"]["id"] = ""
            elif kind == "string_tokens":
                usage["input_tokens"] = str(usage["input_tokens"])
                usage["output_tokens"] = str(usage["output_tokens"])
            raw = orjson.dumps(line)
        f.raw(raw, kind)
        self.ledger.counts[f"claude_malformed_{kind}"] += 1

    def subagent(
        self,
        main: FileOut,
        ctx: dict,
        rel_dir: str,
        model: str,
        parent_lines: list[bytes] | None,
        replay: bool,
    ) -> None:
        """A sub-agent: 2.1 writes <session>/subagents/agent-<id>.jsonl, 2.0 a flat
        agent-<id>.jsonl, 1.0 inline sidechain lines in the main file."""
        rng, ids = self.rng, self.ids
        era = ctx["era"]
        agent_id = ids.hex(7) if era != "2.1" else ids.hex(17)
        if era == "1.0":
            f = main
        elif era == "2.0":
            f = FileOut(self.out, f"{rel_dir}/agent-{agent_id}.jsonl")
        else:
            f = FileOut(self.out, f"{rel_dir}/{ctx['sid']}/subagents/agent-{agent_id}.jsonl")
        sbase = {**ctx["base"], "isSidechain": True, "agentId": agent_id}
        uid = ids.uuid()
        f.add(
            {
                "parentUuid": None,
                **sbase,
                "type": "user",
                "uuid": uid,
                "timestamp": iso_ms(ctx["t"]),
                "message": {"role": "user", "content": self.rng.choice(self.pool.medium)},
            }
        )
        ctx["t"] += rng.randint(200, 2000)
        parent = uid
        own_turns = rng.randint(1, 12)
        if replay and parent_lines:
            # Same message.id as the parent's last call, another requestId, identical usage.
            src = orjson.loads(parent_lines[-1])
            rep_uid = ids.uuid()
            rep = {
                "parentUuid": parent,
                **sbase,
                "type": "assistant",
                "uuid": rep_uid,
                "timestamp": iso_ms(ctx["t"]),
                "requestId": ids.req(),
                "message": src["message"],
            }
            f.add(rep)
            parent = rep_uid
            ctx["t"] += rng.randint(500, 4000)
            self.ledger.counts["claude_sidechain_replays"] += 1
            own_turns = rng.randint(0, 2)
        own_turns = min(own_turns, ctx["left"])
        if own_turns == 0:
            uid = ids.uuid()
            f.add(
                {
                    "parentUuid": parent,
                    **sbase,
                    "type": "system",
                    "uuid": uid,
                    "timestamp": iso_ms(ctx["t"]),
                    "subtype": "turn_duration",
                    "durationMs": rng.randint(2000, 9000),
                    "isMeta": False,
                }
            )
        sub_model = model if rng.random() < 0.6 else "claude-haiku-4-5-20251001"
        cache_ctx = rng.randint(3000, 15000)
        for _ in range(own_turns):
            cache_ctx += rng.randint(200, 3000)
            parent, _, tool_uses, _ = self.assistant_call(
                f, ctx, parent, sub_model, 0.6, cache_ctx, sidechain=sbase
            )
            for tu in tool_uses:
                parent = self.tool_result(f, ctx, parent, tu, base=sbase)
            ctx["t"] += rng.randint(1000, 10000)
        if f is not main:
            f.close(self.ledger)
            self.ledger.counts[f"claude_subagent_files_{era}"] += 1
        else:
            self.ledger.counts["claude_inline_sidechains"] += 1


# ----------------------------------------------------------------------------- OpenClaw


class OpenClawGen:
    def __init__(self, out: Path, key: tuple[str, int], turns: int, seed: int, win, cfg):
        agent, chunk = key
        self.agent = agent
        self.out = out
        self.rel_dir = f"openclaw/agents/{agent}/sessions"
        self.rng = random.Random(f"openclaw:{seed}:{agent}:{chunk}")
        self.ids = Ids(self.rng)
        self.pool = TextPool(seed)
        self.turns = turns
        self.win = win
        self.cfg = cfg
        self.ledger = Ledger()
        self.index: dict[str, dict] = {}
        self.model_weights = [m[3] * self.rng.uniform(0.3, 1.7) for m in OPENCLAW_MODELS]
        self.chunk = chunk

    def run(self) -> Ledger:
        rng = self.rng
        remaining = self.turns
        first = True
        while remaining > 0:
            n = min(remaining, max(2, int(rng.lognormvariate(3.0, 1.0))))
            if remaining - n < 2:
                n = remaining
            remaining -= n
            self.session(n, first_main=first and self.chunk == 0)
            first = False
        if self.chunk == 0:
            # An index entry whose transcript never got written (no assistant reply yet).
            self.index[f"agent:{self.agent}:cron:daily-digest"] = {
                "sessionId": self.ids.uuid(),
                "updatedAt": self.win[1] - 3_600_000,
                "label": "daily-digest",
                "modelProvider": "anthropic",
                "model": "claude-haiku-4-5",
                "totalTokens": 5000,
            }
            self.ledger.counts["openclaw_index_without_transcript"] += 1
        self.ledger.oc_index[self.agent] = self.index
        return self.ledger

    def entry_id(self, used: set[str]) -> str:
        while True:
            e = self.ids.hex(8)
            if e not in used:
                used.add(e)
                return e

    def session(self, n_turns: int, first_main: bool) -> None:
        rng, ids, pool = self.rng, self.ids, self.pool
        sid = ids.uuid()
        w0, w1 = self.win
        t = rng.randint(w0 + 60_000, max(w0 + 60_000, w1 - n_turns * 240_000 - 7_200_000))
        if first_main:
            shape = "main"
        else:
            shape = rng.choices(
                ("direct", "group", "cron", "subagent", "topic", "reset", "deleted"),
                weights=(30, 12, 12, 18, 8, 12, 6),
            )[0]
        fname = f"{sid}.jsonl"
        topic = None
        if shape == "topic":
            topic = rng.randint(2, 999)
            fname = f"{sid}-topic-{topic}.jsonl"
        f = FileOut(self.out, f"{self.rel_dir}/{fname}")
        used: set[str] = set()
        cwd = f"/home/dev/.openclaw/workspace{'' if self.agent == 'main' else '-' + self.agent}"
        f.add({"type": "session", "version": 3, "id": sid, "timestamp": iso_ms(t), "cwd": cwd})
        mi = rng.choices(range(len(OPENCLAW_MODELS)), weights=self.model_weights)[0]
        parent = None
        t += 10

        def entry(obj: dict) -> str:
            nonlocal parent, t
            eid = self.entry_id(used)
            d = {
                "type": obj.pop("type"),
                "id": eid,
                "parentId": parent,
                "timestamp": iso_ms(t),
                **obj,
            }
            f.add(d)
            parent = eid
            t += rng.randint(10, 400)
            return eid

        def model_change(i: int) -> None:
            prov, model, api, _, _ = OPENCLAW_MODELS[i]
            entry({"type": "model_change", "provider": prov, "modelId": model})
            entry(
                {
                    "type": "custom",
                    "customType": "model-snapshot",
                    "data": {"timestamp": t, "provider": prov, "modelApi": api, "modelId": model},
                }
            )

        model_change(mi)
        entry(
            {
                "type": "thinking_level_change",
                "thinkingLevel": rng.choice(("off", "low", "medium", "high")),
            }
        )
        kind = "subagent" if shape == "subagent" else "main"
        channel = shape in ("direct", "group", "topic", "main")
        in_tot = out_tot = 0
        for i in range(n_turns):
            if i and rng.random() < 0.06:
                mi = rng.choices(range(len(OPENCLAW_MODELS)), weights=self.model_weights)[0]
                model_change(mi)
            prov, model, api, _, pi_knows = OPENCLAW_MODELS[mi]
            if i == 0 or rng.random() < 0.4:
                entry(
                    {
                        "type": "message",
                        "message": {
                            "role": "user",
                            "content": [{"type": "text", "text": rng.choice(pool.medium)}],
                            "timestamp": t,
                        },
                    }
                )
                t += rng.randint(1000, 20000)
            inp = rng.randint(5, 3000) if rng.random() < 0.7 else rng.randint(3000, 40000)
            out = max(1, int(rng.lognormvariate(4.8, 1.0)))
            cr = rng.randint(1000, 60000) if rng.random() < 0.6 else 0
            cw = rng.randint(100, 8000) if prov == "anthropic" and rng.random() < 0.4 else 0
            stop = "stop"
            content: list[dict] = []
            if rng.random() < 0.4:
                content.append(
                    {
                        "type": "thinking",
                        "thinking": rng.choice(pool.medium),
                        "thinkingSignature": rng.choice(pool.sigs),
                    }
                )
            tool = rng.random() < 0.45
            if tool:
                content.append(
                    {
                        "type": "toolCall",
                        "id": "call_" + ids.b62(20),
                        "name": rng.choice(OC_TOOLS),
                        "arguments": {"command": rng.choice(pool.short)},
                    }
                )
                stop = "toolUse"
            else:
                content.append(
                    {
                        "type": "text",
                        "text": rng.choice(pool.short if rng.random() < 0.5 else pool.medium),
                    }
                )
            billed_error = rng.random() < 0.01
            if billed_error:
                stop = "error"
            cost_nano = 0 if not pi_knows else fake_cost_nano(model, inp, out, cr, cw)
            cost = {
                "input": round(cost_nano / 1e9 * 0.3, 9),
                "output": round(cost_nano / 1e9 * 0.5, 9),
                "cacheRead": round(cost_nano / 1e9 * 0.1, 9),
                "cacheWrite": round(cost_nano / 1e9 * 0.1, 9),
                "total": nano_to_float(cost_nano),
            }
            usage = {
                "input": inp,
                "output": out,
                "cacheRead": cr,
                "cacheWrite": cw,
                "totalTokens": inp + out + cr + cw,
                "cost": cost,
            }
            if rng.random() < 0.003:
                # Some extensions write only a total: booked whole as output (formats.md 2.5,
                # ccusage's rule).
                usage = {"totalTokens": inp + out + cr + cw, "cost": cost}
                inp, out, cr, cw = 0, inp + out + cr + cw, 0, 0
                self.ledger.counts["openclaw_total_tokens_only"] += 1
            # Entry time; the message's own ms timestamp is a little earlier but always in the
            # same 15-minute slot, so whichever a parser uses, the truth holds.
            msg_ts = t - rng.randint(0, 2500)
            if msg_ts // BUCKET_MS != t // BUCKET_MS:
                msg_ts = t
            msg: dict = {
                "role": "assistant",
                "content": content,
                "api": api,
                "provider": prov,
                "model": model,
            }
            if rng.random() < 0.005 and i > 0:
                # Older writers: no model on the message; attribution falls back to the last
                # model_change of the file.
                del msg["provider"], msg["model"]
                self.ledger.counts["openclaw_assistant_without_model"] += 1
            msg["usage"] = usage
            msg["stopReason"] = stop
            if billed_error:
                msg["errorMessage"] = "terminated: upstream closed the stream " + CANARY
                self.ledger.counts["openclaw_billed_error_replies"] += 1
            msg["timestamp"] = msg_ts
            written = t  # the entry's time (entry() moves `t` on past it)
            entry({"type": "message", "message": msg})
            self.ledger.turn(
                "openclaw", prov, model, kind, written, inp, out, cr, cw, 0, 0, cost_nano
            )
            self.ledger.counts["openclaw_assistant_lines"] += 1
            in_tot, out_tot = inp, out
            if tool:
                t += rng.randint(200, 8000)
                entry(
                    {
                        "type": "message",
                        "message": {
                            "role": "toolResult",
                            "toolCallId": content[-1]["id"],
                            "toolName": content[-1]["name"],
                            "content": [
                                {
                                    "type": "text",
                                    "text": rng.choice(
                                        pool.long if rng.random() < 0.4 else pool.short
                                    ),
                                }
                            ],
                            "details": {"exitCode": 0},
                            "isError": False,
                            "timestamp": t,
                        },
                    }
                )
            elif channel and rng.random() < 0.5:
                entry(
                    {
                        "type": "message",
                        "message": {
                            "role": "assistant",
                            "content": content,
                            "api": "openai-responses",
                            "provider": "openclaw",
                            "model": "delivery-mirror",
                            "usage": {
                                "input": 0,
                                "output": 0,
                                "cacheRead": 0,
                                "cacheWrite": 0,
                                "totalTokens": 0,
                                "cost": {
                                    "input": 0,
                                    "output": 0,
                                    "cacheRead": 0,
                                    "cacheWrite": 0,
                                    "total": 0,
                                },
                            },
                            "stopReason": "stop",
                            "timestamp": t,
                        },
                    }
                )
                self.ledger.counts["openclaw_delivery_mirrors"] += 1
            if rng.random() < 0.015:
                entry(
                    {
                        "type": "message",
                        "message": {
                            "role": "assistant",
                            "content": [],
                            "api": api,
                            "provider": prov,
                            "model": model,
                            "usage": {
                                "input": 0,
                                "output": 0,
                                "cacheRead": 0,
                                "cacheWrite": 0,
                                "totalTokens": 0,
                                "cost": {
                                    "input": 0,
                                    "output": 0,
                                    "cacheRead": 0,
                                    "cacheWrite": 0,
                                    "total": 0,
                                },
                            },
                            "stopReason": rng.choice(("error", "aborted")),
                            "errorMessage": "429 rate limited",
                            "timestamp": t,
                        },
                    }
                )
                self.ledger.counts["openclaw_zero_usage_errors"] += 1
            if rng.random() < self.cfg["malformed_rate"]:
                self.malformed(f, t)
            if rng.random() < 0.01:
                entry(
                    {
                        "type": "custom",
                        "customType": "openclaw.cache-ttl",
                        "data": {"timestamp": t, "provider": prov, "modelId": model},
                    }
                )
            if rng.random() < 0.005:
                entry(
                    {
                        "type": "compaction",
                        "summary": rng.choice(pool.medium),
                        "firstKeptEntryId": parent,
                        "tokensBefore": rng.randint(50000, 180000),
                    }
                )
            t += (
                rng.randint(3_000, 60_000)
                if rng.random() < 0.95
                else rng.randint(600_000, 7_200_000)
            )
        if rng.random() < 0.3:
            entry({"type": "session_info", "name": rng.choice(pool.short)})
        end_t = t
        # Archived transcripts keep their tokens; the index no longer points at them.
        if shape in ("reset", "deleted"):
            stamp = iso_ms(end_t + 60_000).replace(":", "-")
            f.close(self.ledger, rel=f"{self.rel_dir}/{sid}.jsonl.{shape}.{stamp}")
            self.ledger.counts[f"openclaw_archived_{shape}"] += 1
        else:
            f.close(self.ledger)
        if shape in ("reset", "deleted"):
            return
        if rng.random() < 0.02:
            # A repair backup: same lines, must never be read.
            bak = FileOut(self.out, f"{self.rel_dir}/{sid}.jsonl.bak")
            bak.lines = list(f.lines)
            path = self.out / bak.rel
            path.write_bytes(b"\n".join(bak.lines) + b"\n")
            self.ledger.counts["openclaw_bak_files_ignored"] += 1
        self.ledger.counts["openclaw_sessions"] += 1
        peer = rng.randint(1000000, 9999999)
        if shape == "main":
            key = f"agent:{self.agent}:main"
        elif shape == "direct":
            key = f"agent:{self.agent}:telegram:direct:{peer}"
        elif shape == "group":
            key = f"agent:{self.agent}:discord:group:{peer}"
        elif shape == "cron":
            key = f"agent:{self.agent}:cron:job-{ids.hex(6)}:run:{ids.uuid()}"
        elif shape == "topic":
            key = f"agent:{self.agent}:telegram:group:-100{peer}:thread:{topic}"
        else:
            key = f"agent:{self.agent}:subagent:{ids.uuid()}"
        prov, model, _, _, _ = OPENCLAW_MODELS[mi]
        e: dict = {
            "sessionId": sid,
            "updatedAt": end_t,
            "sessionStartedAt": end_t - 60_000,
            "sessionFile": f.rel.rsplit("/", 1)[1],
            "label": rng.choice(pool.short),
            "displayName": f"User {CANARY}",
            "modelProvider": prov,
            "model": model,
            "inputTokens": in_tot,
            "outputTokens": out_tot,
            "totalTokens": in_tot + out_tot,
            "lastHeartbeatText": f"Nothing urgent. {CANARY}",
        }
        if shape == "subagent":
            e.update(
                {
                    "spawnedBy": f"agent:{self.agent}:main",
                    "spawnDepth": 1,
                    "subagentRole": "leaf",
                    "status": "done",
                    "startedAt": end_t - 120_000,
                    "endedAt": end_t,
                    "runtimeMs": 120_000,
                }
            )
            self.ledger.counts["openclaw_subagent_sessions"] += 1
        if shape in ("direct", "group", "topic", "main"):
            e["chatType"] = "group" if shape in ("group", "topic") else "direct"
            e["origin"] = {"provider": "telegram", "surface": "telegram", "label": f"Dev {CANARY}"}
        self.index[key] = e

    def malformed(self, f: FileOut, t: int) -> None:
        rng = self.rng
        kind = rng.choice(MALFORMED_KINDS_OPENCLAW)
        usage: dict | str = {
            "input": rng.randint(10, 900),
            "output": rng.randint(10, 900),
            "cacheRead": 0,
            "cacheWrite": 0,
            "totalTokens": 0,
        }
        line = {
            "type": "message",
            "id": self.ids.hex(8) + "x",  # never collides with real entry ids
            "parentId": None,
            "timestamp": iso_ms(t),
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": CANARY}],
                "api": "anthropic-messages",
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "usage": usage,
                "stopReason": "stop",
                "timestamp": t,
            },
        }
        if kind == "string_tokens":
            usage["input"] = str(usage["input"])
            usage["output"] = str(usage["output"])
        elif kind == "usage_not_object":
            line["message"]["usage"] = "n/a"
        raw = orjson.dumps(line)
        if kind == "truncated":
            raw = raw[: rng.randint(raw.index(b'"role":"assistant"') + 20, len(raw) - 10)]
        elif kind == "bad_json":
            raw = raw.replace(b'"type":"message",', b'"type":"message",,', 1)
        f.raw(raw, kind)
        self.ledger.counts[f"openclaw_malformed_{kind}"] += 1


# ----------------------------------------------------------------------------- driver


def run_job(args: tuple) -> Ledger:
    kind, key, turns, out, seed, win, cfg = args
    gen = ClaudeProjectGen if kind == "claude" else OpenClawGen
    return gen(Path(out), key, turns, seed, win, cfg).run()


def _rows(agg: dict[tuple, list[int]], names: tuple[str, ...]) -> list[dict]:
    rows = []
    for key in sorted(agg):
        v = agg[key]
        row = dict(zip(names, key, strict=True))
        row.update(_fields(v))
        rows.append(row)
    return rows


def _fields(v: list[int]) -> dict:
    cw = v[F_CW5] + v[F_CW1H]
    return {
        "turns": v[F_TURNS],
        "input_tokens": v[F_IN],
        "output_tokens": v[F_OUT],
        "cache_read_tokens": v[F_CR],
        "cache_write_tokens": cw,
        "cache_write_5m_tokens": v[F_CW5],
        "cache_write_1h_tokens": v[F_CW1H],
        "total_tokens": v[F_IN] + v[F_OUT] + v[F_CR] + cw,
        "web_search_requests": v[F_WEB],
        "logged_cost_usd": f"{v[F_LOGGED_NANO] / 1e9:.9f}",
    }


def _add(agg: dict, key: tuple, v: list[int]) -> None:
    b = agg.get(key)
    if b is None:
        agg[key] = list(v)
    else:
        for i in range(N_FIELDS):
            b[i] += v[i]


def truth_dict(ledger: Ledger, params: dict, timezones: Iterable[str]) -> dict:
    """Aggregate the ledger into the views tests and the benchmark compare against."""
    by_total: dict = {}
    by_source: dict = {}
    by_source_model: dict = {}
    by_model: dict = {}
    by_day_model: dict = {}
    by_day_source_model: dict = {}
    by_day: dict = {}
    by_kind: dict = {}
    zones = {tz: ZoneInfo(tz) for tz in timezones}
    by_local: dict[str, dict] = {tz: {} for tz in zones}
    day_cache: dict[int, str] = {}
    local_cache: dict[tuple[str, int], str] = {}
    for (source, provider, model, kind, bucket), v in ledger.buckets.items():
        ms = bucket * BUCKET_MS
        day = day_cache.get(bucket)
        if day is None:
            day = day_cache[bucket] = time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))
        _add(by_total, (), v)
        _add(by_source, (source,), v)
        _add(by_source_model, (source, provider, model), v)
        _add(by_model, (model,), v)
        _add(by_day_model, (day, model), v)
        _add(by_day_source_model, (day, source, model), v)
        _add(by_day, (day,), v)
        _add(by_kind, (source, kind), v)
        for tz, zi in zones.items():
            lday = local_cache.get((tz, bucket))
            if lday is None:
                lday = dt.datetime.fromtimestamp(ms / 1000, zi).strftime("%Y-%m-%d")
                local_cache[(tz, bucket)] = lday
            _add(by_local[tz], (lday, model), v)
    malformed_total: Counter = Counter()
    for f in ledger.files.values():
        malformed_total.update(f["malformed"])
    return {
        "generator": {"name": "clawtrace bench/corpus.py", "version": GENERATOR_VERSION, **params},
        "canary": CANARY,
        "totals": _fields(by_total.get((), [0] * N_FIELDS)),
        "by_source": _rows(by_source, ("source",)),
        "by_source_model": _rows(by_source_model, ("source", "provider", "model")),
        "by_model": _rows(by_model, ("model",)),
        "by_kind": _rows(by_kind, ("source", "kind")),
        "by_day": _rows(by_day, ("day",)),
        "by_day_model": _rows(by_day_model, ("day", "model")),
        "by_day_source_model": _rows(by_day_source_model, ("day", "source", "model")),
        "by_local_day_model": {tz: _rows(rows, ("day", "model")) for tz, rows in by_local.items()},
        "malformed": {
            "total": sum(malformed_total.values()),
            "by_kind": dict(sorted(malformed_total.items())),
        },
        "files": dict(sorted(ledger.files.items())),
        "counts": dict(sorted(ledger.counts.items())),
    }


def generate(
    out: str | os.PathLike,
    turns: int,
    seed: int = 1,
    formats: Iterable[str] = FORMATS,
    days: int = 30,
    end: dt.date = DEFAULT_END,
    workers: int | None = None,
    malformed_rate: float = 0.002,
    timezones: Iterable[str] = DEFAULT_TIMEZONES,
) -> dict:
    """Write a corpus of `turns` billed assistant turns under `out` and return its truth (also
    written to `out/truth.json`). Same arguments give byte-identical files whatever `workers`."""
    formats = tuple(f for f in FORMATS if f in set(formats))
    if not formats:
        raise ValueError(f"formats must name at least one of {FORMATS}")
    if turns < 1 or days < 1:
        raise ValueError("turns and days must be positive")
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    win = window_ms(end, days)
    cfg = {"malformed_rate": malformed_rate}
    jobs = [
        (k, key, t, str(out_path), seed, win, cfg) for k, key, t in plan_jobs(turns, formats, seed)
    ]
    # Biggest jobs first keeps both workers busy to the end.
    jobs.sort(key=lambda j: -j[2])
    workers = workers if workers is not None else (os.cpu_count() or 1)
    ledger = Ledger()
    if workers > 1 and len(jobs) > 1 and turns >= 20000:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for part in ex.map(run_job, jobs):
                ledger.merge(part)
    else:
        for j in jobs:
            ledger.merge(run_job(j))
    for agent, entries in ledger.oc_index.items():
        p = out_path / "openclaw" / "agents" / agent / "sessions" / "sessions.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(orjson.dumps(dict(sorted(entries.items())), option=orjson.OPT_INDENT_2))
    params = {
        "turns": turns,
        "seed": seed,
        "formats": list(formats),
        "days": days,
        "start": (end - dt.timedelta(days=days - 1)).isoformat(),
        "end": end.isoformat(),
        "malformed_rate": malformed_rate,
    }
    truth = truth_dict(ledger, params, timezones)
    (out_path / "truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--turns", type=int, required=True, help="billed assistant turns to generate")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--formats", default="claude,openclaw", help="comma-separated: claude,openclaw")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--end", type=dt.date.fromisoformat, default=DEFAULT_END, help="last day (UTC)")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--malformed-rate", type=float, default=0.002)
    ap.add_argument("--timezones", default=",".join(DEFAULT_TIMEZONES))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    unknown = {f.strip() for f in a.formats.split(",") if f.strip()} - set(FORMATS)
    if unknown:
        ap.error(f"--formats: unknown {', '.join(sorted(unknown))}; choose from {FORMATS}")
    if a.turns < 1 or a.days < 1:
        ap.error("--turns and --days must be positive")
    truth = generate(
        a.out,
        a.turns,
        seed=a.seed,
        formats=[f.strip() for f in a.formats.split(",") if f.strip()],
        days=a.days,
        end=a.end,
        workers=a.workers,
        malformed_rate=a.malformed_rate,
        timezones=[z for z in a.timezones.split(",") if z],
    )
    size = sum(p.stat().st_size for p in Path(a.out).rglob("*") if p.is_file())
    tot = truth["totals"]
    print(
        f"wrote {len(truth['files'])} files, {size / 1e6:.1f} MB, {tot['turns']} turns, "
        f"{truth['malformed']['total']} malformed lines in {time.perf_counter() - t0:.1f} s"
        f" -> {a.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
