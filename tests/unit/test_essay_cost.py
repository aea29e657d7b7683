"""Cost of a grading call: from usage and the dated price table, estimated without usage."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from gradeflow.jobs.essays.cost import cost_of, estimated_usage, price_of
from gradeflow.jobs.essays.llm import Usage
from gradeflow.settings import LLM_PRICES, ModelPrice, Settings

PRICES = {
    "gpt-4o": ModelPrice(input_per_mtok=2.5, output_per_mtok=10, as_of=date(2026, 1, 2)),
    "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.6, as_of=date(2026, 1, 2)),
}
MESSAGES = [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "y" * 800}]


def test_cost_from_usage() -> None:
    cost = cost_of("gpt-4o", Usage(100_000, 20_000), MESSAGES, "{}", PRICES)
    # 0.1 Mtok x $2.50 + 0.02 Mtok x $10 = $0.45
    assert cost.usd == Decimal("0.45")
    assert cost.cents == Decimal("45.00")
    assert not cost.estimated
    assert cost.as_json()["price_as_of"] == "2026-01-02"


def test_a_dated_model_is_priced_by_its_longest_prefix() -> None:
    assert price_of("gpt-4o-mini-2024-07-18", PRICES) == ("gpt-4o-mini", PRICES["gpt-4o-mini"])
    assert price_of("gpt-4o-2024-08-06", PRICES) == ("gpt-4o", PRICES["gpt-4o"])


def test_without_usage_the_tokens_are_estimated_and_marked() -> None:
    cost = cost_of("gpt-4o", None, MESSAGES, "z" * 40, PRICES)
    assert estimated_usage(MESSAGES, "z" * 40) == Usage(100 + 4 + 200 + 4, 10)
    assert (cost.prompt_tokens, cost.completion_tokens, cost.estimated) == (308, 10, True)
    assert cost.usd == (Decimal(308) * Decimal("2.5") + Decimal(10) * 10) / 1_000_000


def test_a_model_without_a_price_gets_no_cost() -> None:
    cost = cost_of("llama-3-local", Usage(10, 10), MESSAGES, "{}", PRICES)
    assert cost.usd is None and cost.cents is None
    assert cost.as_json()["usd"] is None


def test_small_costs_round_to_hundredths_of_a_cent() -> None:
    cost = cost_of("gpt-4o-mini", Usage(1_000, 200), MESSAGES, "{}", PRICES)
    # $0.00015 + $0.00012 = $0.00027 = 0.027 cents
    assert cost.cents == Decimal("0.03")


def test_the_settings_price_table_is_dated_and_overridable() -> None:
    assert all(price.as_of for price in LLM_PRICES.values())
    settings = Settings(
        _env_file=None,
        llm_prices={"m": {"input_per_mtok": 1, "output_per_mtok": 2, "as_of": "2026-03-01"}},
    )
    assert settings.llm_prices["m"].as_of == date(2026, 3, 1)
