"""The compiled price table answers exactly as genai-prices does, or not at all."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from clawtrace import price_table
from clawtrace.pricing import PROVIDER_MAP, Pricer, calc_price_reference, genai_prices_version
from genai_prices.data_snapshot import get_snapshot

# A log's provider name for each genai-prices provider id we map.
LOG_PROVIDER = {pid: name for name, pid in sorted(PROVIDER_MAP.items(), reverse=True)}


@pytest.fixture(scope="module")
def table() -> price_table.PriceTable:
    loaded = price_table.load(genai_prices_version())
    assert loaded is not None, "price_table.json was not built from the installed genai-prices"
    return loaded


def literals(clause: list) -> list[str]:
    kind, operand = clause
    if kind in ("or", "and"):
        return [text for sub in operand for text in literals(sub)]
    return [] if kind == "regex" else [operand]


def names_to_try(table: price_table.PriceTable, pid: str, rng: random.Random) -> list[str]:
    """Every model id of the provider and the literals of its rules, as they are and as logs
    write them (dated, compact-dated, upper-cased, @-versioned), plus names that match nothing."""
    models = table._providers[pid]["models"]
    if len(models) > 120:  # (openrouter's 900: a fixed sample keeps the test quick)
        models = rng.sample(models, 120)
    names = {"not-a-model", "gpt", "claude", ""}
    for model_id, clause, _periods in models:
        for text in [model_id, *literals(clause)]:
            names.update(
                {
                    text,
                    text.upper(),
                    f"{text}-20250929",
                    f"{text}-2025-09-29",
                    f"{text}-20251399",
                    f"{text}@20250514",
                    f"{text}-latest",
                    f"x-{text}",
                    text[:-1],
                }
            )
    return sorted(names)


def test_the_shipped_table_is_what_the_pinned_genai_prices_builds():
    shipped = orjson.loads(price_table.TABLE_PATH.read_bytes())
    built = orjson.loads(orjson.dumps(price_table.build()))
    assert shipped == built, (
        "agent/src/clawtrace/price_table.json is stale: run `python -m clawtrace.price_table`"
    )


def test_every_lookup_finds_the_model_the_library_finds(table):
    snapshot = get_snapshot()
    rng = random.Random(7)
    checked = 0
    for pid in sorted(table.mapped):
        for name in names_to_try(table, pid, rng):
            try:
                expected = snapshot.find_provider_model(name, None, pid, None)[1].id
            except LookupError:
                expected = None
            found = table.model(pid, name)
            assert (found[0] if found else None) == expected, (pid, name)
            checked += 1
    assert checked > 10_000


def test_every_price_period_gives_the_librarys_rate_card(table):
    """At the edges of every period of every model (a sample of openrouter's), the card from the
    table is the card `Pricer` probes from the library."""
    rng = random.Random(11)
    from_table, from_library = Pricer(), Pricer(table=False)
    checked = 0
    for pid in sorted(table.mapped):
        provider = LOG_PROVIDER[pid]
        models = table._providers[pid]["models"]
        if len(models) > 150:
            models = rng.sample(models, 150)
        for model_id, _clause, periods in models:
            if periods == price_table.TIME_OF_DAY:
                assert from_table.is_time_of_day(provider, model_id)
                assert from_library.is_time_of_day(provider, model_id)
                continue
            days = {20_000, 20_800}
            for first, _card in periods[1:]:
                days.update({first - 1, first, first + 1})
            for day in sorted(days):
                ts = int(
                    (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).timestamp() * 1000
                )
                ts += rng.randint(0, 86_399_999)
                assert from_table.card(provider, model_id, ts) == from_library.card(
                    provider, model_id, ts
                ), (pid, model_id, day)
                checked += 1
    assert checked > 1_000


def test_the_table_is_ignored_for_another_genai_prices_version():
    assert price_table.load("0.0.0-other") is None
    assert price_table.load(genai_prices_version()) is not None


def test_what_the_table_does_not_know_still_goes_to_the_library():
    pricer = Pricer()
    assert pricer._table is not None
    # A provider we do not map: the library's search by model name (marked "~name").
    card = pricer.card("some-gateway", "claude-sonnet-4-5", 1_760_000_000_000)
    assert card is not None and card.source.endswith("~name")
    # A price context (fast mode) is the library's too.
    fast = pricer.card("anthropic", "claude-opus-4-6", 1_780_000_000_000, "fast")
    standard = pricer.card("anthropic", "claude-opus-4-6", 1_780_000_000_000)
    assert fast == Pricer(table=False).card(
        "anthropic", "claude-opus-4-6", 1_780_000_000_000, "fast"
    )
    assert standard is not None


def test_pricing_a_known_model_does_not_import_genai_prices():
    """What a scan's workers gain: the library's 0.15 s import is never paid for the models
    the table knows."""
    code = (
        "import sys\n"
        "from clawtrace.pricing import Pricer\n"
        "p = Pricer(); p.warm()\n"
        "cost, source, _, _ = p.price('anthropic', 'claude-sonnet-4-5-20250929', "
        "1760000000000, (1000, 200, 5000, 300, 0, 0))\n"
        "print(cost, source, 'genai_prices' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    expected = calc_price_reference(
        "anthropic", "claude-sonnet-4-5-20250929", 1760000000000, (1000, 200, 5000, 300, 0, 0)
    )
    assert out == [str(int(expected * 10**12)), f"genai-prices:{genai_prices_version()}", "False"]
