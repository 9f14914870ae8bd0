"""Reports how many requests the hostile-input walk sent, so every test run states its fuzz
count (the figure the project reports) without `-s`."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    module = sys.modules.get("clawtrace_site.tests.test_hostile_input")
    counts = getattr(module, "REQUESTS_SENT", None)
    if not counts:
        return
    by_role = ", ".join(f"{role} {sent}" for role, sent in sorted(counts.items()))
    terminalreporter.write_line(
        f"hostile-input walk: {sum(counts.values())} requests sent ({by_role})"
    )
