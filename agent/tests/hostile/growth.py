"""A generated corpus (bench/corpus.py, with its ground truth) laid out again as it would have
been written: transcripts that grow from one round to the next instead of appearing whole.

Each transcript is cut, at every round, at a point that only moves forward and reaches the end
at the last round: mostly at a line's end, now and then in the middle of a line (a line being
written when the scan looks), never in the middle at the last round. Files start at different
rounds. An OpenClaw archive (`<sid>.jsonl.reset.<ts>`, `.deleted.<ts>`) grows under its live
name `<sid>.jsonl` and is renamed when complete, as `/reset` does. Other files (sessions.json,
`.bak` backups) are there from the first round. After the last round the tree holds exactly the
generated files, so the generator's truth is what a scan must report.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

_ARCHIVE = re.compile(r"^(?P<live>.+\.jsonl)\.(?:reset|deleted)\.[^/]+$")


@dataclass
class _File:
    rel: str  # its path once complete (relative to the tree)
    data: bytes
    cuts: list[int]  # its length at the end of each round
    live_rel: str  # its path while it grows
    renamed_at: int | None = None  # the round it gets its final name
    written: int = 0
    at: str | None = None  # where it is now (None: not written yet)


@dataclass
class GrowingTree:
    """`advance()` writes the next round; `rounds` rounds in all (the last completes all)."""

    source: Path
    target: Path
    rounds: int
    rng: random.Random
    mid_line_rate: float = 0.15
    files: list[_File] = field(default_factory=list)
    round: int = -1

    def __post_init__(self) -> None:
        finals = sorted(
            p.relative_to(self.source).as_posix()
            for p in self.source.rglob("*")
            if p.is_file() and p.relative_to(self.source).parts[0] in ("claude", "openclaw")
        )
        taken = set(finals)
        for rel in finals:
            data = (self.source / rel).read_bytes()
            if not rel.endswith(".jsonl") and not _ARCHIVE.match(rel):
                # An index or a backup: there whole from the start.
                self.files.append(_File(rel, data, [len(data)] * self.rounds, rel))
                continue
            live_rel, renamed_at = rel, None
            archive = _ARCHIVE.match(rel)
            if archive and archive["live"] not in taken and self.rounds > 1:
                live_rel = archive["live"]
                taken.add(live_rel)
                renamed_at = self.rng.randrange(1, self.rounds)
            self.files.append(_File(rel, data, self._cuts(data, renamed_at), live_rel, renamed_at))

    def _cuts(self, data: bytes, complete_at: int | None) -> list[int]:
        """Lengths at the end of each round: forward only, whole at `complete_at` (else the
        last round); a file may stay empty (unwritten) for its first rounds."""
        rng = self.rng
        ends = [m.end() for m in re.finditer(b"\n", data)]
        if not ends or ends[-1] != len(data):
            ends.append(len(data))
        last = self.rounds - 1 if complete_at is None else complete_at
        start = rng.randrange(0, last + 1) if rng.random() < 0.3 else 0
        gamma = rng.uniform(0.5, 2.0)
        cuts: list[int] = []
        done = 0
        for r in range(self.rounds):
            if r >= last:
                cut = len(data)
            elif r < start:
                cut = 0
            else:
                frac = ((r - start + 1) / (last - start + 1)) ** gamma
                n_lines = int(frac * len(ends))
                cut = ends[n_lines - 1] if n_lines else 0
                line_len = ends[n_lines] - cut if n_lines < len(ends) else 0
                if line_len > 1 and rng.random() < self.mid_line_rate:
                    # Part of the next line, as if the agent were writing it now.
                    cut += rng.randrange(1, line_len)
            done = max(done, cut)
            cuts.append(done)
        return cuts

    def advance(self) -> int:
        """Write the next round: bytes appended, new files, archives renamed. Returns the
        number of bytes written."""
        if self.round + 1 >= self.rounds:
            raise RuntimeError("the tree is complete")
        self.round += 1
        r = self.round
        wrote = 0
        for f in self.files:
            want = f.cuts[r]
            name = f.rel if f.renamed_at is not None and r >= f.renamed_at else f.live_rel
            if want == 0 and f.at is None:
                continue
            path = self.target / name
            if f.at is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
                f.at = name
            if want > f.written:
                with open(self.target / f.at, "ab") as fh:
                    fh.write(f.data[f.written : want])
                wrote += want - f.written
                f.written = want
            if name != f.at:
                os.rename(self.target / f.at, path)
                f.at = name
        return wrote

    @property
    def complete(self) -> bool:
        return self.round == self.rounds - 1

    def renames(self) -> int:
        return sum(1 for f in self.files if f.renamed_at is not None)
