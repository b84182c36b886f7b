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


# -- the warning names the target and says how to price it -------------------------------------------

def _unpriced_warnings(call) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if w.category is UnpricedModelWarning]


def test_a_self_hosted_target_is_named_not_none() -> None:
    # Self-hosted vendors have no genai-prices provider id: the warning said "None:gemma-3-270m".
    table = PriceTable()
    [message] = _unpriced_warnings(lambda: table.cost(None, "gemma-3-270m", Usage(input_tokens=5),
                                                      target="llamacpp:gemma-3-270m"))
    assert message.startswith("no price known for llamacpp:gemma-3-270m; "
                              "its cost is recorded as unpriced (None)")
    assert "None" not in message.split(";")[0]
    assert "prices={'input': ..., 'output': ...} (USD per 1M tokens) to get_provider" in message
    assert "prices: {input: ..., output: ...} in a routing config" in message
    # Without a target, a model with no provider id is named alone, never "None:model".
    [bare] = _unpriced_warnings(lambda: PriceTable().cost(None, "gemma-3-270m", Usage(input_tokens=5)))
    assert bare.startswith("no price known for gemma-3-270m;")


def test_each_target_warns_once_and_a_served_path_is_shown() -> None:
    table = PriceTable()
    usage = Usage(input_tokens=5)
    messages = _unpriced_warnings(lambda: [
        table.cost(None, "gemma", usage, target="llamacpp:gemma"),
        table.cost(None, "gemma", usage, target="llamacpp:gemma"),
        table.cost(None, "gemma", usage, target="vllm:gemma"),  # same model, another server: its own warning
        table.cost(None, "/models/gemma-q4.gguf", usage, "gemma", target="llamacpp:gemma"),
    ])
    assert [m.split(";")[0] for m in messages] == [
        "no price known for llamacpp:gemma", "no price known for vllm:gemma",
        "no price known for llamacpp:gemma (served model '/models/gemma-q4.gguf')"]


def test_the_advice_in_the_warning_prices_a_self_hosted_model(tmp_path, monkeypatch) -> None:
    """Both ways the warning names (get_provider's prices=, a routing target's prices:) really price it."""
    import asyncio

    monkeypatch.setenv("LLAMACPP_API_KEY", "k")  # optional for llama.cpp; the emulator wants one

    from evalkit import ChatRequest, Router, get_provider
    from evalkit.emulator import Emulator

    async def costs(base_url: str) -> list:
        config = tmp_path / "routing.yaml"
        config.write_text(f'targets:\n  local: {{model: "llamacpp:sim-small", base_url: "{base_url}", '
                          'prices: {input: 1, output: 2}}\nrouter: local\n', encoding="utf-8")
        request = ChatRequest.from_prompt("hi", max_tokens=5)
        llm = get_provider("llamacpp:sim-small", base_url=base_url, prices={"input": 1, "output": 2})
        async with llm, Router.from_config(config) as router:
            return [(await llm.complete(request)).cost, (await router.complete(request)).cost]

    with Emulator(seed=0, time_scale=0.0, datasets=()) as emu:
        got: list = []
        assert _unpriced_warnings(lambda: got.extend(asyncio.run(costs(emu.openai_base_url)))) == []
    assert [(c.source, c.total > 0) for c in got] == [("override", True), ("config", True)], got


def test_an_unpriced_llamacpp_provider_names_itself(monkeypatch) -> None:
    """The issue's warning: "no price known for None:gemma-3-270m" named no provider."""
    import asyncio

    monkeypatch.setenv("LLAMACPP_API_KEY", "k")

    from evalkit import ChatRequest, get_provider
    from evalkit.emulator import Emulator

    async def ask(base_url: str) -> None:
        async with get_provider("llamacpp:sim-small", base_url=base_url, price_table=PriceTable()) as llm:
            await llm.complete(ChatRequest.from_prompt("hi", max_tokens=5))

    with Emulator(seed=0, time_scale=0.0, datasets=()) as emu:
        messages = _unpriced_warnings(lambda: asyncio.run(ask(emu.openai_base_url)))
    assert [m.split(";")[0] for m in messages] == ["no price known for llamacpp:sim-small"]
