"""A failed call that was billed is settled, not released (issue 11, item 3).

A stream cut after some text released its reservation although the vendor bills the tokens it
streamed. The HTTP layer now puts what a failed attempt may be billed on the error
(``exc.usage``, estimated, and ``exc.cost``); the budget settles that, marked ``estimated``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

import evalkit
from evalkit import ChatRequest, ChatResponse, Cost, FinishReason, Usage
from evalkit.emulator import Emulator
from evalkit.errors import AllTargetsFailed, ErrorKind, ProviderError, StreamInterruptedError, ProviderTimeoutError
from evalkit.pricing import Prices
from evalkit.router import FallbackChain
from evalkit.router.budget import BudgetLedger
from evalkit.router.cost import Candidate, CostAwareRouter

from .fakes import fast_policy

D = Decimal
REQ = ChatRequest.from_prompt("hello", max_tokens=100)
PRICES = Prices(D(1), D(2))
PARTIAL = Usage(input_tokens=10, output_tokens=40, exact=False)  # counted locally: a cut stream's


class Failing:
    """Raises ``error`` (carrying what it says was billed) on the first call, answers after that."""

    def __init__(self, name: str, error: ProviderError, answer_cost: str = "0.00002") -> None:
        self.name, self.error, self.calls = name, error, 0
        self.answer_cost = D(answer_cost)

    def prices(self) -> Prices:
        return PRICES

    async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
        self.calls += 1
        if self.calls == 1:
            raise self.error
        return ChatResponse(text="ok", finish_reason=FinishReason.STOP, model=self.name,
                            usage=Usage(input_tokens=10, output_tokens=5), provider=self.name,
                            cost=Cost.reported(self.answer_cost))

    def stream(self, request: ChatRequest):
        raise NotImplementedError


def billed(error: ProviderError, usage: Usage | None, cost: str | None) -> ProviderError:
    error.usage, error.cost = usage, None if cost is None else Cost.reported(D(cost))
    return error


@pytest.mark.parametrize("error", [StreamInterruptedError, ProviderTimeoutError])
async def test_a_cut_stream_settles_its_estimated_cost_and_the_fallback_pays_its_own(error) -> None:
    cut = Failing("cut", billed(error("stream cut after some text"), PARTIAL, "0.00009"))
    ok = Failing("ok", billed(StreamInterruptedError("unused"), None, None))
    ok.calls = 1  # answers at once
    ledger = BudgetLedger("1", period="total")
    response = await CostAwareRouter([Candidate(cut, 1.0), Candidate(ok, 0.9)], ledger=ledger).complete(REQ)
    assert response.provider == "ok" and response.attempts[0].cost.total == D("0.00009")
    snap = ledger.snapshot()
    assert snap["spent"] == D("0.00009") + D("0.00002")  # the cut stream was billed: never released
    assert snap["estimated"] == 1 and snap["reserved"] == 0 and snap["unpriced"] == 0


async def test_a_billed_failure_without_a_price_keeps_its_worst_case() -> None:
    cut = Failing("cut", billed(StreamInterruptedError("cut"), PARTIAL, None))
    ledger = BudgetLedger("1", period="total")
    router = CostAwareRouter([Candidate(cut, 1.0)], ledger=ledger, fallback_on_error=False)
    with pytest.raises(AllTargetsFailed):
        await router.complete(REQ)
    assert ledger.spent == router.quote(REQ)[0].worst_case and ledger.snapshot()["unpriced"] == 1


async def test_a_failure_that_billed_nothing_is_released() -> None:
    refused = Failing("refused", billed(StreamInterruptedError("reset before any output"), None, None))
    ledger = BudgetLedger("1", period="total")
    with pytest.raises(AllTargetsFailed):
        await CostAwareRouter([Candidate(refused, 1.0)], ledger=ledger, fallback_on_error=False).complete(REQ)
    assert (ledger.spent, ledger.reserved) == (D(0), D(0))


async def test_billed_failures_inside_a_nested_chain_are_settled_too() -> None:
    cut = Failing("cut", billed(StreamInterruptedError("cut"), PARTIAL, "0.00003"), answer_cost="0.00001")
    chain = FallbackChain([cut], policy=fast_policy(retries_per_target=1))
    ledger = BudgetLedger("1", period="total")
    response = await CostAwareRouter([Candidate(chain, 1.0, PRICES)], ledger=ledger).complete(REQ)
    assert [a.error_kind for a in response.attempts] == ["stream_interrupted", None]
    assert ledger.spent == D("0.00004") and ledger.snapshot()["estimated"] == 1


# -- end to end: the emulator cuts a stream after some text --------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=1, time_scale=0.0, datasets=()) as emulator:
        yield emulator


async def test_an_emulated_cut_stream_is_settled_as_an_estimate(emu: Emulator) -> None:
    emu.reset()
    emu.script("sim-large", ["cut"])
    target = evalkit.get_provider("openai:sim-large", api_key="k", base_url=emu.openai_base_url,
                                  prices={"input": "10", "output": "30"})
    ledger = BudgetLedger("1", period="total")
    router = CostAwareRouter([Candidate(target, 1.0)], ledger=ledger, fallback_on_error=False)
    try:
        with pytest.raises(AllTargetsFailed) as caught:
            await router.complete(ChatRequest.from_prompt("Tell me a story.", max_tokens=200, stream=True))
    finally:
        await target.aclose()
    (attempt,) = caught.value.attempts
    assert caught.value.kind is ErrorKind.STREAM_INTERRUPTED
    assert attempt.usage is not None and not attempt.usage.exact and attempt.usage.output_tokens > 0
    snap = ledger.snapshot()
    assert snap["spent"] == attempt.cost.total > 0 and snap["estimated"] == 1 and snap["reserved"] == 0
