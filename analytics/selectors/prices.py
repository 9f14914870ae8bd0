"""Per-token cache prices for the cache-savings read, from the agent's price tables: the
hosted side prices the same way the agent does (`clawtrace.pricing.Pricer`, which reads the
compiled genai-prices table shipped in the agent package) instead of keeping prices twice."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time
from decimal import Decimal


@functools.cache
def _pricer():
    from clawtrace.pricing import Pricer

    return Pricer()


@functools.lru_cache(maxsize=4096)
def cache_rates(provider: str, model: str, day: date) -> tuple[Decimal, Decimal, Decimal] | None:
    """Picodollars per token on `day` (UTC): (what a cache read saves against the input
    price, a 5-minute cache write, a 1-hour cache write) at the model's base tier; None when
    the model has no known price."""
    when = datetime.combine(day, time(12), tzinfo=UTC)
    card = _pricer().card(provider, model, int(when.timestamp() * 1000))
    if card is None:
        return None
    rates = card.tiers[0][1]
    return rates[0] - rates[2], rates[3], rates[4]
