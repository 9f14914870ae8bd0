"""Log sources. Add a source by writing one module with a class implementing `base.Source`
and listing it here: the rest of ClawTrace goes through `SOURCES` and names no source
(tests/test_source_registry.py holds it to that)."""

from __future__ import annotations

from collections.abc import Mapping

from clawtrace.sources.base import Source
from clawtrace.sources.claude_code import ClaudeCode
from clawtrace.sources.openclaw import OpenClaw

SOURCES: dict[str, Source] = {"claude-code": ClaudeCode(), "openclaw": OpenClaw()}

# The directories given for each source, by Source.dirs_key (None: the config's or the
# source's defaults).
SourceDirs = dict[str, list[str] | None]


def source_dirs(given: Mapping[str, list[str] | None], caller: str) -> SourceDirs:
    """`given` (keyword arguments such as `claude_dirs=[...]`) as SourceDirs; a keyword no
    source declares is refused, as a function refuses an unknown keyword argument."""
    keys = [s.dirs_key for s in SOURCES.values()]
    for key in given:
        if key not in keys:
            raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")
    return {key: given.get(key) for key in keys}


__all__ = ["SOURCES", "Source", "SourceDirs", "source_dirs"]
