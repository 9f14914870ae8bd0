"""Turn prices: user overrides, then genai-prices, then the log's own cost, else unpriced.

Calling `genai_prices.calc_price` a million times would take minutes, so a `RateCard` (integer
picodollars per token, per long-context tier) is derived once per (provider, model, UTC day,
speed) by probing the library's own `ModelPrice.calc_price` with single-component usages, and
the hot loop only multiplies. `tests/test_pricing.py` checks the cached path against
`calc_price` on random turns. Probing rather than reading price attributes keeps the library's
fallbacks (a model without a 1h cache-write price, cache writes billed as input...) exactly.

genai-prices semantics (pricing.md): `input_tokens` is the *total* input, cache parts included,
and the long-context tier is chosen from that total and applies to every token of the request.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from clawtrace import rules
from clawtrace.config import Config, PriceOverride

if TYPE_CHECKING:
    from clawtrace.price_table import PriceTable

PRICING_RULES_VERSION = "1"
PICO_D = Decimal(10**12)
LOCAL_PROVIDERS = frozenset({"ollama", "lmstudio", "llamacpp", "llama.cpp", "vllm", "local"})

# The log's provider → genai-prices provider id (pricing.md, "Always pass provider_id").
PROVIDER_MAP = {
    "anthropic": "anthropic",
    "claude-code": "anthropic",
    "openai": "openai",
    "openai-codex": "openai",
    "google": "google",
    "google-gemini-cli": "google",
    "google-vertex": "google",
    "google-antigravity": "google",
    "openrouter": "openrouter",
    "zai": "zai",
    "minimax": "minimax",
    "minimax-cn": "minimax",
    "kimi-coding": "moonshotai",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
    "amazon-bedrock": "aws",
    "azure-openai-responses": "azure",
    "azure": "azure",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "groq": "groq",
    "github-copilot": "github-copilot",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "cerebras": "cerebras",
}

# Component order used by rate cards and `Pricer.price`.
COMPONENTS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "web_search")
EPOCH = date(1970, 1, 1)


@functools.cache
def genai_prices_version() -> str:
    """The installed genai-prices version, without importing it (warm scans stay fast)."""
    spec = importlib.util.find_spec("genai_prices")
    if spec is not None and spec.origin:
        site = os.path.dirname(os.path.dirname(spec.origin))
        try:
            for name in os.listdir(site):
                if name.startswith("genai_prices-") and name.endswith(".dist-info"):
                    return name[len("genai_prices-") : -len(".dist-info")]
        except OSError:
            pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genai-prices")
    except PackageNotFoundError:
        return "unknown"


def pricing_fingerprint(config: Config) -> str:
    """Changes whenever the prices a turn would get can change: library version or overrides."""
    payload = {
        "rules": PRICING_RULES_VERSION,
        "genai_prices": genai_prices_version(),
        "overrides": [
            {
                "name": o.name,
                "model": o.model,
                "provider": o.provider,
                "prices": o.prices,
                "tiers": [(t.above, t.prices) for t in o.tiers],
                "from": o.valid_from.isoformat() if o.valid_from else None,
                "to": o.valid_to.isoformat() if o.valid_to else None,
                "free": o.free,
            }
            for o in config.price_overrides
        ],
        "multipliers": sorted(config.provider_multipliers.items()),
        "free": sorted(config.free_providers),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def clean_model(model: str) -> str:
    """Strip Claude Code context markers such as `[1m]`."""
    if "[" in model:
        model = model.split("[", 1)[0]
    return model.strip()


@dataclass(frozen=True)
class RateCard:
    """Rates in picodollars per unit for each component, per tier.

    `tiers` is a tuple of (threshold, rates): the last tier whose threshold is below the request's
    total input applies (threshold 0 is the base tier; genai-prices uses `total > start`).
    Rates are exact Decimals; when all are whole picodollars (every genai-prices rate is), the
    hot path multiplies plain ints instead.
    """

    source: str
    tiers: tuple[tuple[int, tuple[Decimal, ...]], ...]
    input_rate_for_savings: tuple[Decimal, ...]

    def __post_init__(self) -> None:
        exact = all(r == r.to_integral_value() for _, rates in self.tiers for r in rates)
        ints = None
        if exact:
            ints = tuple((t, tuple(int(r) for r in rates)) for t, rates in self.tiers)
        object.__setattr__(self, "_int_tiers", ints)

    @property
    def int_tiers(self) -> tuple[tuple[int, tuple[int, ...]], ...] | None:
        """The tiers as whole picodollars, or None when a rate is fractional."""
        return self._int_tiers  # type: ignore[attr-defined]

    def cost(self, counts: tuple[int, ...]) -> tuple[int, int, int]:
        """(total, cache savings, cache write cost), in integer picodollars (rules.card_cost)."""
        int_tiers = self._int_tiers  # type: ignore[attr-defined]
        if int_tiers is not None:
            return rules.card_cost(int_tiers, counts)  # type: ignore[return-value]
        total, savings, writes = rules.card_cost(self.tiers, counts)
        return _round(total), _round(savings), _round(writes)


def _round(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


FREE_CARD = RateCard(
    source="local", tiers=((0, (Decimal(0),) * 6),), input_rate_for_savings=(Decimal(0),) * 6
)


def _usage(counts: tuple[int, ...]) -> Any:
    from genai_prices import Usage

    i, o, cr, w5, w1, ws = counts
    kwargs: dict[str, int] = {"input_tokens": i + cr + w5 + w1, "output_tokens": o}
    if cr:
        kwargs["cache_read_tokens"] = cr
    if w5 or w1:
        kwargs["cache_write_tokens"] = w5 + w1
    if w1:
        kwargs["cache_write_1h_tokens"] = w1
    if ws:
        kwargs["web_searches"] = ws
    return Usage(**kwargs)


def _probe_rates(model_price: Any, threshold: int) -> tuple[Decimal, ...]:
    """Per-unit rates (picodollars) inside the tier above `threshold`, by probing calc_price."""
    # Probe inside the tier: exactly one token past its threshold (one token for the base tier).
    base_n = threshold + 1
    probes = {
        0: (base_n, 0, 0, 0, 0, 0),
        2: (0, 0, base_n, 0, 0, 0),
        3: (0, 0, 0, base_n, 0, 0),
        4: (0, 0, 0, 0, base_n, 0),
    }
    rates: list[Decimal] = [Decimal(0)] * 6
    for idx, counts in probes.items():
        price = model_price.calc_price(_usage(counts))["total_price"]
        rates[idx] = price * PICO_D / base_n
    # Output and web search do not move the tier: add them on top of a pure-input probe.
    base_price = model_price.calc_price(_usage(probes[0]))["total_price"]
    with_out = model_price.calc_price(_usage((base_n, 1_000_000, 0, 0, 0, 0)))["total_price"]
    rates[1] = (with_out - base_price) * PICO_D / 1_000_000
    with_ws = model_price.calc_price(_usage((base_n, 0, 0, 0, 0, 1000)))["total_price"]
    rates[5] = (with_ws - base_price) * PICO_D / 1000
    return tuple(r.normalize() if r == r.to_integral_value() else r for r in rates)


def _thresholds(model_price: Any) -> list[int]:
    from genai_prices.types import TieredPrices

    found = {0}
    for value in vars(model_price).values():
        if isinstance(value, TieredPrices):
            found.update(t.start for t in value.tiers)
    return sorted(found)


_MISSING: Any = object()


class Pricer:
    """Prices turns with caching; one per process (workers build their own after fork)."""

    def __init__(self, config: Config | None = None, *, table: bool = True) -> None:
        """`table=False` asks genai-prices itself for every price (the reference the compiled
        table is tested against)."""
        self.config = config or Config()
        self.version = genai_prices_version()
        self._cards: dict[tuple[str, str, int, str | None], RateCard | None] = {}
        self._snapshot: Any = None
        self._by_price: dict[tuple[str, str], RateCard] = {}
        # Models whose price depends on the time of day (DeepSeek off-peak): cached per 15 minutes.
        self._time_of_day: dict[tuple[str, str], bool] = {}
        self._table: PriceTable | None = None
        if table:
            from clawtrace.price_table import load

            self._table = load(self.version)
        self._table_cards: dict[tuple[Any, ...], RateCard] = {}

    def warm(self) -> None:
        """Load the price library now rather than at the first turn (it takes a while), unless
        the compiled table (price_table.py) answers for the installed version."""
        if self._snapshot is None and self._table is None:
            from genai_prices.data_snapshot import get_snapshot

            self._snapshot = get_snapshot()

    # -- lookup ---------------------------------------------------------------------------------

    def _override_for(self, provider: str, model: str, day: date) -> PriceOverride | None:
        for o in self.config.price_overrides:
            if o.provider is not None and o.provider != provider:
                continue
            if o.valid_from and day < o.valid_from:
                continue
            if o.valid_to and day > o.valid_to:
                continue
            pattern = o.model
            if pattern == model:
                return o
            if (
                pattern.endswith("*")
                and not any(c in pattern[:-1] for c in "*?[")
                and model.startswith(pattern[:-1])
            ):
                return o
            if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(model, pattern):
                return o
        return None

    def _override_card(self, o: PriceOverride) -> RateCard:
        if o.free:
            return RateCard(
                source=f"override:{o.name}",
                tiers=FREE_CARD.tiers,
                input_rate_for_savings=FREE_CARD.tiers[0][1],
            )

        def rates(p: dict[str, float], base: dict[str, float]) -> tuple[Decimal, ...]:
            merged = {**base, **p}
            inp = Decimal(str(merged["input"]))
            w5 = Decimal(str(merged.get("cache_write_5m", merged["input"])))
            per_tok = [
                inp,
                Decimal(str(merged["output"])),
                Decimal(str(merged.get("cache_read", merged["input"]))),
                w5,
                Decimal(str(merged["cache_write_1h"])) if "cache_write_1h" in merged else w5,
            ]
            ws = Decimal(str(merged.get("web_search_per_1k", 0)))
            # USD per million tokens → picodollars per token is x 1e6; per 1k requests → x 1e9.
            return (*(r * 1_000_000 for r in per_tok), ws * 1_000_000_000)

        base_rates = rates(o.prices, {})
        tiers = [(0, base_rates)]
        for tier in o.tiers:
            tiers.append((tier.above, rates(tier.prices, o.prices)))
        return RateCard(
            source=f"override:{o.name}", tiers=tuple(tiers), input_rate_for_savings=base_rates
        )

    def _lookup(self, provider: str, model: str) -> tuple[Any, str] | None:
        from genai_prices.data_snapshot import get_snapshot

        if self._snapshot is None:
            self._snapshot = get_snapshot()
        pid = PROVIDER_MAP.get(provider.lower())
        try:
            if pid is None:
                raise LookupError(provider)
            _prov, info = self._snapshot.find_provider_model(model, None, pid, None)
        except LookupError:
            try:
                _prov, info = self._snapshot.find_provider_model(model, None, None, None)
            except LookupError:
                return None
            return info, "~name"  # matched by model name only: the provider was not known
        return info, ""

    def is_time_of_day(self, provider: str, model: str) -> bool:
        """Whether the model's price depends on the time of day (priced per 15 minutes)."""
        return self._is_time_of_day(provider, model)

    def _is_time_of_day(self, provider: str, model: str) -> bool:
        key = (provider, model)
        if key not in self._time_of_day and self._table is not None:
            pid = PROVIDER_MAP.get(provider.lower())
            answer = self._table.is_time_of_day(pid, model) if pid else None
            if answer is not None:
                self._time_of_day[key] = answer
        if key not in self._time_of_day:
            from genai_prices.types import TimeOfDateConstraint

            found = self._lookup(provider, model)
            prices = found[0].prices if found else None
            self._time_of_day[key] = isinstance(prices, list) and any(
                isinstance(cp.constraint, TimeOfDateConstraint) for cp in prices
            )
        return self._time_of_day[key]

    def _library_card(
        self, provider: str, model: str, when: datetime, speed: str | None
    ) -> RateCard | None:
        if self._table is not None and (not speed or speed == "standard"):
            pid = PROVIDER_MAP.get(provider.lower())
            tiers = self._table.tiers(pid, model, (when.date() - EPOCH).days) if pid else None
            if tiers is not None:
                card = self._table_cards.get(tiers)
                if card is None:
                    card = self._table_cards[tiers] = RateCard(
                        source=f"genai-prices:{self.version}",
                        tiers=tiers,
                        input_rate_for_savings=tiers[0][1],
                    )
                return card
        found = self._lookup(provider, model)
        if found is None:
            return None
        info, suffix = found
        context = {"speed": speed} if speed and speed != "standard" else None
        model_price = info.get_prices(when, context) if context else info.get_prices(when)
        # Most days share one price period: probe each distinct price table once.
        cache_key = (repr(model_price), suffix)
        card = self._by_price.get(cache_key)
        if card is None:
            tiers = tuple((t, _probe_rates(model_price, t)) for t in _thresholds(model_price))
            card = RateCard(
                source=f"genai-prices:{self.version}{suffix}",
                tiers=tiers,
                input_rate_for_savings=tiers[0][1],
            )
            self._by_price[cache_key] = card
        return card

    def card(
        self, provider: str, model: str, ts_ms: int, speed: str | None = None
    ) -> RateCard | None:
        # Price changes are dated (UTC days): one card per day, or per 15 minutes for the few
        # models priced by time of day.
        period = ts_ms // 86_400_000
        key = (provider, model, period, speed)
        if key in self._cards:
            return self._cards[key]
        name = clean_model(model)
        if self._is_time_of_day(provider, name):
            period = -(ts_ms // 900_000) - 1  # negative: never collides with day numbers
            key = (provider, model, period, speed)
            if key in self._cards:
                return self._cards[key]
            when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
                milliseconds=ts_ms - ts_ms % 900_000
            )
        else:
            when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=period, hours=12)
        day = when.date()
        card: RateCard | None
        o = self._override_for(provider, name, day)
        if o is not None:
            card = self._override_card(o)
        elif provider.lower() in LOCAL_PROVIDERS or provider in self.config.free_providers:
            card = FREE_CARD
        else:
            card = self._library_card(provider, name, when, speed)
            mult = self.config.provider_multipliers.get(provider)
            if card is not None and mult is not None and mult != 1.0:
                m = Decimal(str(mult))
                card = RateCard(
                    source=card.source + f"x{mult}",
                    tiers=tuple((t, tuple(r * m for r in rates)) for t, rates in card.tiers),
                    input_rate_for_savings=tuple(r * m for r in card.input_rate_for_savings),
                )
        self._cards[key] = card
        return card

    def price(
        self,
        provider: str,
        model: str,
        ts_ms: int,
        counts: tuple[int, int, int, int, int, int],
        speed: str | None = None,
        reported_pico: int | None = None,
    ) -> tuple[int | None, str, int, int]:
        """(cost picodollars or None, price_source, cache savings, cache write cost)."""
        if model == "<synthetic>":
            return None, "none", 0, 0
        card = self._cards.get((provider, model, ts_ms // 86_400_000, speed), _MISSING)
        if card is _MISSING:
            card = self.card(provider, model, ts_ms, speed)
        if card is None:
            cost, source = rules.uncarded_cost(reported_pico)
            return cost, source, 0, 0
        total, savings, writes = card.cost(counts)
        if max(abs(total), abs(savings), abs(writes)) > _INT64_MAX:
            # Out of reach within the bounds of rules.py (turn tokens, config prices); should a
            # library price ever pass them, the turn is unpriced rather than unstorable.
            return None, "none", 0, 0
        return total, card.source, savings, writes


_INT64_MAX = 2**63 - 1


def calc_price_reference(
    provider: str, model: str, ts_ms: int, counts: tuple[int, ...], speed: str | None = None
) -> Decimal | None:
    """The library's own answer for one turn (slow path; tests compare the cache against it)."""
    from genai_prices import calc_price

    pid = PROVIDER_MAP.get(provider.lower())
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts_ms)
    context = {"speed": speed} if speed and speed != "standard" else None
    try:
        result = calc_price(
            _usage(tuple(counts)),
            clean_model(model),
            provider_id=pid,
            genai_request_timestamp=when,
            price_context=context,
        )
    except LookupError:
        return None
    return result.total_price
