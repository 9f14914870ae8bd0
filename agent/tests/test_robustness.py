"""Nothing crashes on any input: random garbage, hostile values, odd encodings."""

from __future__ import annotations

import json
import random

from clawtrace import reports

from .conftest import claude_assistant, oc_assistant, oc_header, run_scan, turn_rows, write_lines


def _garbage(rng: random.Random, valid: list[str]) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(300):
        base = rng.choice(valid).encode()
        kind = rng.randrange(6)
        if kind == 0:
            lines.append(base[: rng.randrange(len(base))])
        elif kind == 1:
            i = rng.randrange(len(base))
            lines.append(base[:i] + bytes([rng.randrange(256)]) + base[i + 1 :])
        elif kind == 2:
            lines.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))))
        elif kind == 3:
            lines.append(json.dumps(rng.choice([[], 1, "x", None, {"type": "assistant"}])).encode())
        else:
            lines.append(base)
    return lines


def test_random_garbage_never_crashes_a_scan(conn, tmp_path):
    rng = random.Random(11)
    claude_valid = [
        claude_assistant(msg_id=f"m{i}", out=i + 1, tools=[("t", "Read")]) for i in range(5)
    ]
    oc_valid = [oc_header("s"), *(oc_assistant(f"e{i}", inp=i + 1) for i in range(5))]
    f = tmp_path / "claude" / "projects" / "-p" / "s.jsonl"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"\n".join(_garbage(rng, claude_valid)) + b"\n")
    g = tmp_path / "oc" / "agents" / "main" / "sessions" / "s.jsonl"
    g.parent.mkdir(parents=True)
    g.write_bytes(b"\n".join(_garbage(rng, oc_valid)) + b"\n")
    result = run_scan(conn, tmp_path / "claude", tmp_path / "oc")
    assert result.malformed > 0
    assert result.lines >= 600  # random bytes may hold newlines of their own
    # A flipped byte can turn a valid line into another valid one (a new id): only sanity here.
    t = reports.totals(conn)
    assert t.turns > 0
    assert all(r["total_tokens"] >= 0 for r in turn_rows(conn))


def test_hostile_values_are_malformed_not_overflows(conn, tmp_path):
    write_lines(
        tmp_path / "claude" / "projects" / "-p" / "s.jsonl",
        [
            claude_assistant(msg_id="huge", inp=2**70),
            claude_assistant(msg_id="neg", inp=-5),
            claude_assistant(msg_id="cost", extra={"costUSD": 1e300}),
            claude_assistant(msg_id="ok"),
        ],
    )
    write_lines(
        tmp_path / "oc" / "agents" / "main" / "sessions" / "s.jsonl",
        [oc_header("s"), oc_assistant("e1", inp=10, cost=1e300), oc_assistant("e2", inp=10**13)],
    )
    result = run_scan(conn, tmp_path / "claude", tmp_path / "oc")
    got = {r["dedup_key"].split(":")[0]: r for r in turn_rows(conn)}
    assert set(got) == {"cost", "ok", "oc"}
    assert got["cost"]["reported_pico"] is None
    assert result.malformed == 3
