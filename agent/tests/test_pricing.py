"""Pricing: the cached rate cards equal genai-prices' calc_price; overrides; unpriced; repricing."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from clawtrace import reports, store
from clawtrace.config import config_parse
from clawtrace.pricing import Pricer, calc_price_reference, pricing_fingerprint
from clawtrace.scan import prices_reprice_if_stale

from .conftest import claude_assistant, oc_assistant, oc_header, run_scan, turn_rows, write_lines


def ms(y, m, d, h=12):
    return int(datetime(y, m, d, h, tzinfo=UTC).timestamp() * 1000)


MODELS = [
    ("anthropic", "claude-opus-4-6"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5-20251001"),
    ("anthropic", "claude-opus-4-1"),
    ("zai", "glm-4.7"),
    ("openrouter", "moonshotai/kimi-k2.5"),
    ("minimax", "MiniMax-M2.1"),
    ("openai", "gpt-5.2"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-3-pro-preview"),
    ("deepseek", "deepseek-chat"),
]


def test_cached_rate_cards_equal_calc_price_on_random_turns():
    rng = random.Random(4)
    pricer = Pricer()
    checked = 0
    for _ in range(600):
        provider, model = rng.choice(MODELS)
        ts = ms(2026, rng.randint(1, 11), rng.randint(1, 28), rng.randint(0, 23)) + rng.randint(
            0, 3_599_999
        )
        big = rng.random() < 0.3
        counts = (
            rng.randint(0, 400_000 if big else 5_000),
            rng.randint(0, 30_000),
            rng.randint(0, 300_000 if big else 50_000),
            rng.randint(0, 20_000),
            rng.randint(0, 20_000) if provider == "anthropic" else 0,
            rng.randint(0, 3) if provider == "anthropic" else 0,
        )
        expected = calc_price_reference(provider, model, ts, counts)
        cost, source, _, _ = pricer.price(provider, model, ts, counts)
        assert expected is not None, (provider, model)
        assert source.startswith("genai-prices:")
        # Exact to the picodollar (every rate is a whole number of picodollars per token).
        assert Decimal(cost) == (expected * 10**12).to_integral_value(), (
            provider,
            model,
            ts,
            counts,
        )
        checked += 1
    assert checked == 600


def test_price_in_force_on_the_turns_date_is_used():
    pricer = Pricer()
    counts = (250_000, 1_000, 0, 0, 0, 0)
    before, _, _, _ = pricer.price("anthropic", "claude-opus-4-6", ms(2026, 2, 10), counts)
    after, _, _, _ = pricer.price("anthropic", "claude-opus-4-6", ms(2026, 3, 20), counts)
    # Long-context premium on Opus 4.6 until 2026-03-13 (pricing.md).
    assert Decimal(before) / 10**12 == Decimal("2.5375")
    assert Decimal(after) / 10**12 == Decimal("1.275")


def test_long_context_tier_applies_to_every_token_of_the_request():
    pricer = Pricer()
    # Sonnet 4.5: total input 210k > 200k, so cache reads are billed at the tier rate too.
    cost, _, _, _ = pricer.price(
        "anthropic", "claude-sonnet-4-5", ms(2026, 5, 1), (10_000, 0, 200_000, 0, 0, 0)
    )
    assert Decimal(cost) / 10**12 == Decimal("0.06") + Decimal("0.12")  # 10k x $6 + 200k x $0.60


def test_one_hour_cache_writes_cost_twice_the_input_rate():
    pricer = Pricer()
    five, _, _, _ = pricer.price(
        "anthropic", "claude-haiku-4-5", ms(2026, 5, 1), (0, 0, 0, 1_000_000, 0, 0)
    )
    hour, _, _, _ = pricer.price(
        "anthropic", "claude-haiku-4-5", ms(2026, 5, 1), (0, 0, 0, 0, 1_000_000, 0)
    )
    assert (five, hour) == (1_250_000_000_000, 2_000_000_000_000)


def test_web_search_requests_cost_ten_dollars_per_thousand():
    pricer = Pricer()
    cost, _, _, _ = pricer.price(
        "anthropic", "claude-haiku-4-5", ms(2026, 5, 1), (0, 0, 0, 0, 0, 3)
    )
    assert cost == 30_000_000_000


def test_synthetic_is_never_priced_and_unknown_models_are_null_not_zero():
    pricer = Pricer()
    assert pricer.price("anthropic", "<synthetic>", ms(2026, 5, 1), (1, 1, 0, 0, 0, 0))[:2] == (
        None,
        "none",
    )
    assert pricer.price("acme", "mystery-9000", ms(2026, 5, 1), (1, 1, 0, 0, 0, 0))[:2] == (
        None,
        "none",
    )
    # With a positive logged cost, that cost is used and labelled.
    assert pricer.price("acme", "mystery-9000", ms(2026, 5, 1), (1, 1, 0, 0, 0, 0), None, 7)[
        :2
    ] == (7, "reported")


def test_local_providers_are_free():
    assert Pricer().price("ollama", "llama3.3", ms(2026, 5, 1), (1000, 1000, 0, 0, 0, 0))[:2] == (
        0,
        "local",
    )


def test_unpriced_turns_are_counted_and_reported_by_tokens(conn, tmp_path):
    write_lines(
        tmp_path / "oc" / "agents" / "main" / "sessions" / "s.jsonl",
        [
            oc_header("s"),
            oc_assistant("e1", provider="acme", model="mystery-9000", inp=1000, out=500),
            oc_assistant("e2", inp=10, out=10),
        ],
    )
    run_scan(conn, openclaw=tmp_path / "oc")
    rows = {r["model"]: r for r in turn_rows(conn)}
    assert rows["mystery-9000"]["cost_pico"] is None
    assert rows["mystery-9000"]["price_source"] == "none"
    t = reports.totals(conn)
    assert (t.turns, t.unpriced_tokens, t.unpriced_turns) == (2, 1500, 1)
    assert reports.unpriced_models(conn) == [
        {
            "source": "openclaw",
            "provider": "acme",
            "model": "mystery-9000",
            "turns": 1,
            "tokens": 1500,
        }
    ]


def test_user_overrides_win_and_are_labelled():
    cfg = config_parse(
        {
            "prices": {
                "mine": {"provider": "acme", "model": "mystery-*", "input": 2.0, "output": 8.0},
                "cheap-haiku": {
                    "model": "claude-haiku-4-5*",
                    "input": 0.5,
                    "output": 1.0,
                    "valid_from": "2026-06-01",
                },
            }
        }
    )
    pricer = Pricer(cfg)
    cost, source, _, _ = pricer.price(
        "acme", "mystery-9000", ms(2026, 5, 1), (1_000_000, 1_000_000, 0, 0, 0, 0)
    )
    assert (cost, source) == (10_000_000_000_000, "override:mine")
    before = pricer.price(
        "anthropic", "claude-haiku-4-5-20251001", ms(2026, 5, 1), (1_000_000, 0, 0, 0, 0, 0)
    )
    after = pricer.price(
        "anthropic", "claude-haiku-4-5-20251001", ms(2026, 7, 1), (1_000_000, 0, 0, 0, 0, 0)
    )
    assert before[:2] == (1_000_000_000_000, "genai-prices:0.2.3")
    assert after[:2] == (500_000_000_000, "override:cheap-haiku")


def test_provider_multiplier_scales_library_prices():
    cfg = config_parse({"providers": {"anthropic": {"multiplier": 0.5}}})
    cost, source, _, _ = Pricer(cfg).price(
        "anthropic", "claude-haiku-4-5", ms(2026, 5, 1), (1_000_000, 0, 0, 0, 0, 0)
    )
    assert cost == 500_000_000_000
    assert source.endswith("x0.5")


def test_turns_are_repriced_when_the_overrides_change(conn, tmp_path):
    write_lines(
        tmp_path / "claude" / "projects" / "-p" / "s.jsonl",
        [claude_assistant(msg_id="m1", model="claude-haiku-4-5", inp=1_000_000, out=0)],
    )
    run_scan(conn, tmp_path / "claude")
    assert reports.totals(conn).cost_pico == 1_000_000_000_000
    cfg = config_parse(
        {"prices": {"flat": {"model": "claude-haiku-4-5", "input": 3.0, "output": 3.0}}}
    )
    assert store.meta_get(conn, "price_fingerprint") != pricing_fingerprint(cfg)
    assert prices_reprice_if_stale(conn, cfg) == 1
    assert reports.totals(conn).cost_pico == 3_000_000_000_000
    assert turn_rows(conn)[0]["price_source"] == "override:flat"
    assert prices_reprice_if_stale(conn, cfg) == 0


def test_cache_savings_and_write_costs_are_recorded(conn, tmp_path):
    write_lines(
        tmp_path / "claude" / "projects" / "-p" / "s.jsonl",
        [
            claude_assistant(
                msg_id="m1",
                model="claude-haiku-4-5",
                inp=0,
                out=0,
                cache_read=1_000_000,
                cache_write=1_000_000,
                w5=1_000_000,
                w1=0,
            )
        ],
    )
    run_scan(conn, tmp_path / "claude")
    data = reports.cache_report(conn)
    # Reads at $0.10 instead of $1.00 saved $0.90; 5m writes cost $1.25.
    assert data["totals"] == {"saved_usd": 0.9, "write_cost_usd": 1.25, "net_saved_usd": -0.35}


@pytest.mark.parametrize("speed", ["fast"])
def test_fast_mode_uses_the_libraries_conditional_price(speed):
    pricer = Pricer()
    counts = (1000, 1000, 0, 0, 0, 0)
    fast = pricer.price("anthropic", "claude-opus-4-6", ms(2026, 5, 1), counts, speed)[0]
    ref = calc_price_reference("anthropic", "claude-opus-4-6", ms(2026, 5, 1), counts, speed)
    assert Decimal(fast) == ref * 10**12
