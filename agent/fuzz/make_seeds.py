#!/usr/bin/env python3
"""Write the fuzz target's seed corpus: each transcript of the repository's fixtures
(agent/tests/fixtures/tree), as a whole and line by line, behind the flags byte fuzz_parse.c
reads (bit 0: OpenClaw; bit 1: a Claude Code sub-agent's file).

    python agent/fuzz/make_seeds.py agent/fuzz/seeds

The seeds are committed (agent/fuzz/seeds/); run this again when the fixtures change.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "tree"


def flags_for(rel: Path) -> bytes:
    if rel.parts[0] == "openclaw":
        return b"\x01"
    return b"\x02" if "subagents" in rel.parts or rel.name.startswith("agent-") else b"\x00"


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for path in sorted(FIXTURES.rglob("*.jsonl*")):
        rel = path.relative_to(FIXTURES)
        if rel.name.endswith(".bak"):
            continue
        data = path.read_bytes()
        flag = flags_for(rel)
        stem = "-".join(rel.parts).replace(".", "_")
        out[f"{stem}.whole"] = flag + data
        for line in data.splitlines(keepends=True):
            digest = hashlib.blake2b(line, digest_size=6).hexdigest()
            out[f"{stem}.line-{digest}"] = flag + line
    return out


def main(argv: list[str]) -> int:
    target = Path(argv[1] if len(argv) > 1 else HERE / "seeds")
    target.mkdir(parents=True, exist_ok=True)
    made = seeds()
    for name, data in made.items():
        (target / name).write_bytes(data)
    print(f"{len(made)} seeds in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
