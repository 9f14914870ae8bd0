"""genai-prices' answers for the providers we map, compiled into a table a worker loads at once.

Importing genai-prices takes 0.15-0.2 s (pydantic builds its schemas and the data's classes),
and every worker process of a parallel scan paid it before it could price its first turn: on a
100k-turn first scan, a fifth of all the CPU time and of the wall time. `price_table.json` holds
what a scan asks of the library for the providers in `pricing.PROVIDER_MAP`: each model's match
rule, in the library's own order, and its prices per period as rate cards probed from the
library (`pricing._probe_rates`), so that a worker prices from the table and never imports it.

It is a cache of the library, never a second source of prices:

- `build()` makes it from the installed genai-prices; `python -m clawtrace.price_table` writes
  it, and tests/test_price_table.py fails when the shipped file is not what the pinned version
  builds, and checks every lookup against the library's own;
- it is used only when the genai-prices installed is the version it was built from;
- it answers only what it can answer exactly as the library does: a model of a mapped provider
  at its price for a UTC day. Everything else goes to the library, as before: a model it does
  not know (the library then searches every provider by name), a provider not mapped, a
  `speed` price context, prices that change with the time of day, and the user's overrides
  and free providers (which `Pricer` applies before either).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from clawtrace.pricing import (
    EPOCH,
    PRICING_RULES_VERSION,
    PROVIDER_MAP,
    _probe_rates,
    _thresholds,
    genai_prices_version,
)

TABLE_PATH = Path(__file__).with_name("price_table.json")
TABLE_FORMAT = 1
FIRST_DAY = -(10**9)  # "from the beginning": before any day a turn can have

# A period whose prices change within the day: asked of the library turn by turn.
TIME_OF_DAY = "time-of-day"

Clause = list[Any]
Tiers = tuple[tuple[int, tuple[Decimal, ...]], ...]


def _clause_json(clause: Any) -> Clause:
    """A genai-prices match clause as JSON: [kind, operand]."""
    from genai_prices import types as t

    simple = {
        t.ClauseStartsWith: ("starts_with", "starts_with"),
        t.ClauseEndsWith: ("ends_with", "ends_with"),
        t.ClauseContains: ("contains", "contains"),
        t.ClauseRegex: ("regex", "regex"),
        t.ClauseEquals: ("equals", "equals"),
    }
    for cls, (kind, attr) in simple.items():
        if type(clause) is cls:
            return [kind, getattr(clause, attr)]
    if type(clause) is t.ClauseOr:
        return ["or", [_clause_json(c) for c in clause.or_]]
    if type(clause) is t.ClauseAnd:
        return ["and", [_clause_json(c) for c in clause.and_]]
    raise TypeError(f"unknown genai-prices match clause {type(clause).__name__}")


def _matches(clause: Clause, text: str) -> bool:
    """The library's `Clause*.is_match` (its operands compare lower-cased; `text` already is)."""
    kind, operand = clause
    if kind == "equals":
        return text == operand.lower()
    if kind == "starts_with":
        return text.startswith(operand.lower())
    if kind == "contains":
        return operand.lower() in text
    if kind == "or":
        return any(_matches(c, text) for c in operand)
    if kind == "and":
        return all(_matches(c, text) for c in operand)
    if kind == "ends_with":
        return text.endswith(operand.lower())
    if kind == "regex":
        return re.search(operand, text) is not None
    raise ValueError(f"unknown clause kind {kind!r}")


def _periods(info: Any, cards: dict[tuple[Any, ...], int]) -> list[list[int]] | str:
    """A model's prices by UTC day, as [[first day, card index], ...] (days since 1970), or
    TIME_OF_DAY. The price of a day is the library's at noon UTC (as `Pricer.card` asks it);
    it only moves on the start dates of the model's conditional prices."""
    from genai_prices import types as t

    starts: set[date] = set()
    if isinstance(info.prices, list):
        for conditional in info.prices:
            constraint = conditional.constraint
            if isinstance(constraint, t.StartDateConstraint):
                starts.add(constraint.start_date)
            elif isinstance(constraint, t.TimeOfDateConstraint):
                return TIME_OF_DAY
            elif constraint is not None:
                raise TypeError(f"unknown genai-prices constraint {type(constraint).__name__}")
    days = sorted((d - EPOCH).days for d in starts)
    periods: list[list[int]] = []
    # Before the first start date, the prices of the day before it stand for all time.
    for first, probe in [(FIRST_DAY, days[0] - 1 if days else 0), *((d, d) for d in days)]:
        noon = datetime(1970, 1, 1, 12, tzinfo=UTC) + timedelta(days=probe)
        model_price = info.get_prices(noon)
        tiers = tuple(
            (threshold, tuple(str(r) for r in _probe_rates(model_price, threshold)))
            for threshold in _thresholds(model_price)
        )
        index = cards.setdefault(tiers, len(cards))
        if not periods or periods[-1][1] != index:
            periods.append([first, index])
    return periods


def build() -> dict[str, Any]:
    """The table, from the installed genai-prices."""
    from genai_prices import types as t
    from genai_prices.data_snapshot import get_snapshot

    snapshot = get_snapshot()
    by_id = {p.id: p for p in snapshot.providers}
    wanted = sorted(set(PROVIDER_MAP.values()))
    # A mapped provider's fallbacks are searched too (one step, as the library does).
    needed = set(wanted)
    for pid in wanted:
        needed.update((by_id[pid].fallback_model_providers or []) if pid in by_id else [])
    cards: dict[tuple[Any, ...], int] = {}
    providers: dict[str, Any] = {}
    for pid in sorted(needed):
        provider = by_id.get(pid)
        if provider is None:
            continue
        providers[pid] = {
            "fallback": list(provider.fallback_model_providers or []),
            "models": [
                [info.id, _clause_json(info.match), _periods(info, cards)]
                for info in provider.models
            ],
        }
    return {
        "format": TABLE_FORMAT,
        "genai_prices": genai_prices_version(),
        "rules": PRICING_RULES_VERSION,
        "compact_date": t._COMPACT_DATE_RE.pattern,
        "mapped": wanted,
        "cards": [[[threshold, list(rates)] for threshold, rates in tiers] for tiers in cards],
        "providers": providers,
    }


def write(path: Path = TABLE_PATH) -> None:
    path.write_bytes(orjson.dumps(build(), option=orjson.OPT_SORT_KEYS) + b"\n")


class PriceTable:
    """Lookups over a built table (see the module doc for what it answers)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.version: str = data["genai_prices"]
        self.mapped = frozenset(data["mapped"])
        self._providers: dict[str, Any] = data["providers"]
        self._cards = data["cards"]
        self._compact_date = re.compile(data["compact_date"])
        self._decimal_cards: dict[int, Tiers] = {}
        self._resolved: dict[tuple[str, str], list[Any] | None] = {}

    def _match_model(self, pid: str, ref: str, *, fallback: bool = True) -> list[Any] | None:
        """`Provider._match_model`: the first model whose rule matches, then the provider's
        fallbacks (one step)."""
        provider = self._providers.get(pid)
        if provider is None:
            return None
        for model in provider["models"]:
            if _matches(model[1], ref):
                return model
        if fallback:
            for other in provider["fallback"]:
                if (found := self._match_model(other, ref, fallback=False)) is not None:
                    return found
        return None

    def _normalized(self, ref: str) -> str:
        """`types._normalize_compact_dated_ref`: `-20251211` -> `-2025-12-11` (real dates only)."""

        def replace(m: re.Match[str]) -> str:
            year, month, day = (int(m.group(i)) for i in range(2, 5))
            try:
                date(year, month, day)
            except ValueError:
                return m.group(0)
            return f"{m.group(1)}{year:04d}-{month:02d}-{day:02d}"

        return self._compact_date.sub(replace, ref)

    def model(self, pid: str, name: str) -> list[Any] | None:
        """[model id, rule, periods] of the model the library finds for `name` at provider
        `pid` (`DataSnapshot.find_provider_model`), or None: ask the library."""
        key = (pid, name)
        if key in self._resolved:
            return self._resolved[key]
        found = None
        if pid in self.mapped:
            ref = name.lower()
            found = self._match_model(pid, ref)
            if found is None and (normalized := self._normalized(ref)) != ref:
                found = self._match_model(pid, normalized)
        self._resolved[key] = found
        return found

    def is_time_of_day(self, pid: str, name: str) -> bool | None:
        """Whether the model's price depends on the time of day; None: ask the library."""
        found = self.model(pid, name)
        return None if found is None else found[2] == TIME_OF_DAY

    def tiers(self, pid: str, name: str, day: int) -> Tiers | None:
        """The model's rate tiers (threshold, six rates in picodollars) on UTC day `day`; None:
        ask the library."""
        found = self.model(pid, name)
        if found is None or found[2] == TIME_OF_DAY:
            return None
        index = found[2][0][1]
        for first, card in found[2]:
            if first > day:
                break
            index = card
        tiers = self._decimal_cards.get(index)
        if tiers is None:
            tiers = tuple(
                (int(threshold), tuple(Decimal(r) for r in rates))
                for threshold, rates in self._cards[index]
            )
            self._decimal_cards[index] = tiers
        return tiers


@functools.cache
def load(version: str) -> PriceTable | None:
    """The shipped table if it was built from genai-prices `version` (else None: use the
    library)."""
    try:
        data = orjson.loads(TABLE_PATH.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("format") != TABLE_FORMAT
        or data.get("genai_prices") != version
        or data.get("rules") != PRICING_RULES_VERSION
    ):
        return None
    return PriceTable(data)


if __name__ == "__main__":
    write()
    print(f"wrote {TABLE_PATH}")
