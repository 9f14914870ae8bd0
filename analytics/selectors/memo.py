"""Facts about an organization that every usage read asks before its own query, asked once per
request instead.

The overview page makes some twenty reads, and each first asks whether the daily rollups are in
the organization's zone and which projects its plan shows (a plan look-up and a projects
query): a third of the page's queries, for answers that cannot change while the page renders.
A view (or anything making many reads in a row) runs them inside `reads_memoized()`; outside
it, nothing is remembered, so a long-lived worker or a test never sees a stale answer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_memo: ContextVar[dict[Hashable, object] | None] = ContextVar("analytics_reads_memo", default=None)


@contextmanager
def reads_memoized() -> Iterator[None]:
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def memo_active() -> bool:
    return _memo.get() is not None


def memoized(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, once per key inside `reads_memoized()`; every time outside it."""
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]  # type: ignore[return-value]
