"""The pure rules of parsing, de-duplication and summing, once each in Python.

The C extensions apply the same rules (native/rules.h); tests/test_rules.py runs one table of
cases against both. Nothing here touches a file or the store.
"""

from __future__ import annotations

from collections.abc import Sequence


def sidechain_replays_of(held: Sequence[tuple[int, bool]]) -> list[int]:
    """formats.md 1.7 on the rows that hold one message, as (row id, is sidechain) in id order:
    the ids of the sidechain rows that replay it, because another row holds it on the main
    thread, or on a sidechain row stored earlier (a smaller id)."""
    if len(held) < 2:
        return []
    first_sidechain = None
    has_main = False
    for row_id, side in held:
        if not side:
            has_main = True
        elif first_sidechain is None or row_id < first_sidechain:
            first_sidechain = row_id
    return [row_id for row_id, side in held if side and (has_main or row_id != first_sidechain)]
