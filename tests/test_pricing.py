"""Cost is Decimal, per usage category; unknown prices are unpriced, never 0."""

from __future__ import annotations

import warnings
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evalkit import Usage
from evalkit.pricing import PriceTable, Prices, UnpricedModelWarning, price_data_version


def test_categories_add_up_to_total_for_a_known_model() -> None:
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=200_000, output_tokens=500_000, reasoning_tokens=100_000)
    cost = PriceTable().cost("openai", "gpt-4o-mini", usage)
    assert cost is not None and cost.source == price_data_version()
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per 1M tokens.
    assert cost.input == Decimal("0.12")
    assert cost.cached_input == Decimal("0.015")
    assert cost.output == Decimal("0.24") and cost.reasoning == Decimal("0.06")
    assert cost.total == Decimal("0.435")


def test_anthropic_cache_write_priced_separately() -> None:
    usage = Usage(input_tokens=3000, cache_write_tokens=1000, cached_input_tokens=1000, output_tokens=10)
    cost = PriceTable().cost("anthropic", "claude-3-5-haiku-latest", usage)
    assert cost.cache_write == Decimal(1000) * Decimal("1") / 1_000_000
    assert cost.cached_input == Decimal(1000) * Decimal("0.08") / 1_000_000


def test_unknown_model_is_unpriced_with_one_warning() -> None:
    table = PriceTable()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert table.cost("openai", "sim-nonexistent", Usage(input_tokens=10)) is None
        assert table.cost("openai", "sim-nonexistent", Usage(input_tokens=10)) is None
    assert [w.category for w in caught] == [UnpricedModelWarning]


def test_override_wins_over_catalogue() -> None:
    table = PriceTable({"gpt-4o-mini": Prices(input=Decimal(1), output=Decimal(2), source="override")})
    cost = table.cost("openai", "gpt-4o-mini", Usage(input_tokens=1_000_000, output_tokens=1_000_000))
    assert (cost.total, cost.source) == (Decimal(3), "override")


def test_prices_from_mapping_rejects_unknown_category() -> None:
    with pytest.raises(ValueError, match="bogus"):
        Prices.from_mapping({"input": 1, "output": 2, "bogus": 3})


counts = st.integers(0, 10_000_000)


@given(counts, counts, counts, counts, counts)
def test_cost_is_exact_decimal_and_parts_sum(a, b, c, d, e) -> None:
    usage = Usage(input_tokens=a + b + c, cached_input_tokens=b, cache_write_tokens=c,
                  output_tokens=d + e, reasoning_tokens=e)
    prices = Prices(input=Decimal("2.5"), output=Decimal("10"), cached_input=Decimal("1.25"),
                    cache_write=Decimal("3.125"))
    cost = prices.cost(usage)
    expected = (Decimal(a) * Decimal("2.5") + Decimal(b) * Decimal("1.25") + Decimal(c) * Decimal("3.125")
                + Decimal(d + e) * 10) / 1_000_000
    assert cost.total == expected
    assert all(isinstance(v, Decimal) for v in (cost.input, cost.output, cost.reasoning))
