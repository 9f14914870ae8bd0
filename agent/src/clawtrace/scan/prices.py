"""Prices for what a scan reads (the rate cards the C helpers price with, and the turns they hand
back to Python), and re-pricing the whole store when the prices change."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from clawtrace import store
from clawtrace.config import Config
from clawtrace.scan.result import ScanResult


def price_slow(
    pricer: Any,
    source_id: Callable[[str], int],
    provider: str,
    model: str,
    ts: int,
    counts: tuple[int, ...],
    speed: str | None,
    reported: int | None,
) -> tuple[Any, ...]:
    """A turn the C helpers price through Python (`card_for` said False: prices that are not
    whole picodollars, or that change within a day): (cost, price source id, price source,
    cache savings, cache write cost)."""
    cost, src, savings, writes = pricer.price(provider, model, ts, counts, speed, reported)
    return cost, source_id(src), src, savings, writes


def card_for(pricer: Any, provider: str, model: str, ts: int, speed: str | None) -> Any:
    """The C scanner's price for (provider, model, the UTC day of `ts`, speed): None for no
    price, (source id, source name, ((threshold, six integer rates), ...)), or False for "ask
    Python turn by turn" (prices that are not whole picodollars, or that change within a
    day)."""
    from clawtrace.pricing import clean_model

    if model == "<synthetic>" or pricer.is_time_of_day(provider, clean_model(model)):
        return False
    card = pricer.card(provider, model, ts, speed)
    if card is None:
        return None
    if card.int_tiers is None:
        return False
    tiers = tuple((t, *rates) for t, rates in card.int_tiers)
    return (store.dim_id("p", card.source), card.source, tiers)


def prices_reprice_if_stale(
    conn: sqlite3.Connection, config: Config, result: ScanResult | None = None
) -> int:
    """Re-price every stored turn when the price library or the user's overrides changed."""
    from clawtrace.pricing import pricing_fingerprint

    fp = pricing_fingerprint(config)
    stored = store.meta_get(conn, "price_fingerprint")
    if stored == fp:
        return 0
    n = 0
    if stored is not None:
        n = prices_reprice(conn, config)
        if result is not None:
            result.repriced = n
    store.meta_set(conn, "price_fingerprint", fp)
    return n


def prices_reprice(conn: sqlite3.Connection, config: Config) -> int:
    """Recompute every turn's cost from its stored tokens; returns the number of turns."""
    from clawtrace.pricing import Pricer

    pricer = Pricer(config)
    dims = store.Dims()
    rows = conn.execute(
        "SELECT t.id, m.provider, m.model, t.ts, t.input_tokens, t.output_tokens, "
        "t.cache_read_tokens, t.cache_write_5m_tokens, t.cache_write_1h_tokens, "
        "t.web_search_requests, m.speed, t.reported_pico "
        "FROM turns AS t JOIN models AS m ON m.id = t.model_id"
    ).fetchall()
    updates = []
    for r in rows:
        cost, source, savings, writes = pricer.price(r[1], r[2], r[3], tuple(r[4:10]), r[10], r[11])
        updates.append((cost, dims.source(source), savings, writes, r[0]))
    with conn:
        dims.flush(conn)
        conn.executemany(
            "UPDATE turns SET cost_pico = ?, price_source_id = ?, cache_savings_pico = ?, "
            "cache_write_pico = ? WHERE id = ?",
            updates,
        )
        conn.execute("DELETE FROM dirty_buckets")
        store.rollups_refresh(conn, full=True)
    store.derived_refresh(conn)
    return len(updates)
