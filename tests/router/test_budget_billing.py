"""The worst case a budget reserves covers every output token the vendor can bill (issue 11, item 3).

``sim-reasoner`` billed 378 output tokens for ``max_completion_tokens=300`` while the ledger
reserved 300: 13 calls overran and the cap was passed by 42 %. The bound now comes from one
table of per-vendor billing semantics (``evalkit.providers._billing``), and the emulator
bills as the vendors do.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import evalkit
from evalkit import ChatRequest, ChatResponse
from evalkit.emulator import Emulator
from evalkit.emulator._specs import Fleet, Spread
from evalkit.emulator.fleet import default_fleet
from evalkit.errors import AllTargetsFailed, BudgetExceeded, ErrorKind
from evalkit.providers._billing import (
    NO_THINKING,
    ThinkingCaps,
    max_billed_output_tokens,
    output_bound,
    set_thinking_caps,
)
from evalkit.providers._http import HTTPProvider
from evalkit.providers.gemini import GeminiWire
from evalkit.router import FallbackChain
from evalkit.router.budget import BudgetLedger
from evalkit.router.cost import Candidate, CostAwareRouter
from evalkit.router.limits import LimitedTarget, Limits

D = Decimal
REQ = ChatRequest.from_prompt("hello", max_tokens=300)


def provider(target: str) -> Any:
    return evalkit.get_provider(target, api_key="k", base_url="http://127.0.0.1:9")


class BudgetedGeminiWire(GeminiWire):
    """The Gemini wire with a ``thinkingConfig.thinkingBudget`` in every body it builds."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget

    def thinking_budget(self, request: ChatRequest) -> int | None:
        return self.budget


def gemini_with_budget(model: str, budget: int) -> HTTPProvider:
    return HTTPProvider(vendor="gemini", model=model, wire=BudgetedGeminiWire(budget),
                        base_url="http://127.0.0.1:9")


# -- the table: what each vendor can bill for one request ---------------------------------------------


@pytest.mark.parametrize(("target", "extra"), [
    ("openai:o3-mini", 0),  # reasoning is inside max_completion_tokens
    ("azure:my-o3-deployment", 0),
    ("anthropic:claude-sonnet-4-0", 0),  # thinking.budget_tokens < max_tokens
    ("groq:qwen-qwq-32b", 0),
    ("deepseek:deepseek-chat", 0),
    ("deepseek:deepseek-reasoner", 32_768),  # the CoT comes before max_tokens' answer
    ("gemini:gemini-2.5-pro", 32_768),  # dynamic thinking by default, up to its maximum
    ("gemini:gemini-2.5-pro-preview-05-06", 32_768),
    ("gemini:gemini-2.5-flash", 24_576),
    ("gemini:gemini-2.5-flash-lite", 0),  # does not think unless asked
    ("gemini:gemini-2.0-flash", 0),
    ("gemini:gemini-1.5-pro", 0),
    ("gemini:sim-fast", 32_768),  # unknown Gemini model: an unknown cost is never free
])
def test_billable_output_per_vendor(target: str, extra: int) -> None:
    assert max_billed_output_tokens(provider(target), REQ) == 300 + extra


@pytest.mark.parametrize(("model", "budget", "extra"), [
    ("gemini-2.5-pro", 1024, 1024),  # the request's own budget
    ("gemini-2.5-pro", -1, 32_768),  # dynamic: up to the model's maximum
    ("gemini-2.5-pro", 0, 128),  # 2.5 Pro cannot turn thinking off
    ("gemini-2.5-pro", 99_999, 32_768),
    ("gemini-2.5-flash", 0, 0),
    ("gemini-2.5-flash-lite", 100, 512),  # below the floor
    ("gemini-2.5-flash-lite", 2048, 2048),
])
def test_the_thinking_budget_the_request_sends_bounds_gemini_thinking(model: str, budget: int,
                                                                     extra: int) -> None:
    assert max_billed_output_tokens(gemini_with_budget(model, budget), REQ) == 300 + extra


def test_caps_are_overridable_per_model_family() -> None:
    set_thinking_caps("gemini", "sim-", NO_THINKING)
    try:
        assert max_billed_output_tokens(provider("gemini:sim-fast"), REQ) == 300
        set_thinking_caps("gemini", "sim-fast", ThinkingCaps(1000))  # the longest prefix wins
        assert max_billed_output_tokens(provider("gemini:sim-fast"), REQ) == 1300
    finally:
        set_thinking_caps("gemini", "sim-", None)
        set_thinking_caps("gemini", "sim-fast", None)
    assert max_billed_output_tokens(provider("gemini:sim-fast"), REQ) == 300 + 32_768


def test_a_router_bills_like_its_dearest_leaf_and_wrappers_are_seen_through() -> None:
    chain = FallbackChain([provider("openai:o3-mini"), LimitedTarget(provider("gemini:gemini-2.5-flash"),
                                                                     Limits(max_in_flight=2))])
    assert output_bound(chain).tokens(REQ) == 300 + 24_576
    assert output_bound(FallbackChain([provider("openai:gpt-4o")])).tokens(REQ) == 300
    with pytest.raises(ValueError, match="max_tokens"):
        output_bound(chain).tokens(ChatRequest.from_prompt("hi"))


def test_the_cost_router_quotes_thinking_billed_beyond_the_cap() -> None:
    gemini = provider("gemini:gemini-2.5-flash")
    router = CostAwareRouter([Candidate(gemini, 1.0, {"input": "1", "output": "10"})])
    (quote,) = router.quote(REQ)
    assert (quote.max_tokens, quote.output_tokens, quote.fan_out) == (300, 300 + 24_576, 1)
    assert quote.worst_case == (quote.input_tokens * D(1) + (300 + 24_576) * D(10)) / D(1_000_000)


# -- end to end: what the emulator bills never passes what the ledger held ------------------------------


FLEET = Fleet((
    default_fleet().model("sim-reasoner"),
    # A Gemini-wire model that thinks 2,000 tokens (dynamic thinking, as Gemini 2.5 does by default).
    dataclasses.replace(default_fleet().model("sim-reasoner"), name="gem-thinker", wires=("gemini",),
                        reasoning_tokens=Spread(2000.0)),
))


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(FLEET, seed=5, time_scale=0.0, datasets=()) as emulator:
        yield emulator


def emulated(emu: Emulator, vendor: str, model: str) -> Any:
    base = emu.openai_base_url if vendor == "openai" else emu.gemini_base_url
    return evalkit.get_provider(f"{vendor}:{model}", api_key="k", base_url=base,
                                prices=FLEET.model(model).price.as_prices())


async def _spend(router: CostAwareRouter, calls: int, max_tokens: int) -> list[Any]:
    requests = [ChatRequest.from_prompt(f"Write about topic {i} at length.", max_tokens=max_tokens)
                for i in range(calls)]
    return await asyncio.gather(*(router.complete(r) for r in requests), return_exceptions=True)


@pytest.mark.parametrize(("vendor", "model"), [("openai", "sim-reasoner"), ("gemini", "gem-thinker")])
async def test_emulated_reasoning_never_outspends_the_reservation(emu: Emulator, vendor: str,
                                                                    model: str) -> None:
    emu.reset()
    target = emulated(emu, vendor, model)
    try:
        router = CostAwareRouter([Candidate(target, 1.0)])
        probe = ChatRequest.from_prompt("Write about topic 0 at length.", max_tokens=300)
        worst = router.quote(probe)[0].worst_case
        cap = worst * 20
        router.ledger = BudgetLedger(cap, period="total")
        outcomes = await _spend(router, 40, 300)
    finally:
        await target.aclose()
    served = [o for o in outcomes if isinstance(o, ChatResponse)]
    # Reasoning that eats the whole cap leaves no text: a failed attempt, billed all the same.
    failed = [o for o in outcomes if isinstance(o, AllTargetsFailed)]
    assert all(f.kind is ErrorKind.INVALID_RESPONSE for f in failed), failed
    assert len(served) + len(failed) + sum(isinstance(o, BudgetExceeded) for o in outcomes) == len(outcomes)
    snap = router.ledger.snapshot()
    assert len(served) >= 15 and any(r.usage.reasoning_tokens for r in served)
    assert snap["overruns"] == 0, f"{snap['overruns']} calls billed more than was reserved"
    assert snap["spent"] <= cap and snap["reserved"] == 0
    # What the ledger spent is what the emulator billed, to the last token.
    billed = emu.stats()["models"][model]
    price = FLEET.model(model).price
    bill = price.cost(billed["prompt_tokens"], billed["completion_tokens"], billed["cached_tokens"])
    assert snap["spent"] == bill
    if vendor == "openai":
        assert billed["completion_tokens"] <= 300 * billed["requests"]  # the cap includes reasoning
