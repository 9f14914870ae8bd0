"""What a scan did, as `clawtrace scan` reports it and `serve` shows it; and how it tells its
progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# progress(total_bytes, files, growing=...) -> tick(read_bytes, total=..., files=...) or None.
# With growing=True the listing goes on: a later tick(0, total=..., files=...) gives the totals.
ProgressFactory = Callable[..., Callable[..., None] | None]


@dataclass
class ScanResult:
    files_seen: int = 0
    files_read: int = 0
    files_unchanged: int = 0
    files_reset: int = 0
    files_missing: int = 0
    bytes_read: int = 0
    lines: int = 0
    malformed: int = 0
    turn_rows: int = 0
    turns_total: int = 0
    repriced: int = 0
    seconds: float = 0.0
    roots: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
