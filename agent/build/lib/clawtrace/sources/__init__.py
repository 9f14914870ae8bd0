"""Log sources. Add a source by writing one module with a class implementing `base.Source`
and listing it here."""

from __future__ import annotations

from clawtrace.sources.base import Source
from clawtrace.sources.claude_code import ClaudeCode
from clawtrace.sources.openclaw import OpenClaw

SOURCES: dict[str, Source] = {"claude-code": ClaudeCode(), "openclaw": OpenClaw()}

__all__ = ["SOURCES", "Source"]
