"""A budget in front of a hedge reserves every request the hedge may send (issue 11, item 3).

``CostAwareRouter`` over a ``HedgedRouter`` reserved one call while two were sent: the vendors
billed 181 % of the cap. Routers now say how many billed requests one call can fan out to
(``fan_out``); the budget reserves that many worst cases and settles to what every request
may be billed, keeping a cancelled loser's unknown cost as spent.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from evalkit import ChatRequest, ChatResponse, Cost, FinishReason, Usage
from evalkit.errors import BudgetExceeded
from evalkit.pricing import Prices
from evalkit.router import FallbackChain
from evalkit.router._base import fan_out
from evalkit.router.budget import BudgetLedger
from evalkit.router.cost import Candidate, CostAwareRouter
from evalkit.router.hedge import HedgedRouter
from evalkit.router.limits import LimitedTarget, Limits

from .fakes import ScriptedProvider

D = Decimal
REQ = ChatRequest.from_prompt("hello", max_tokens=100)
PRICES = Prices(D(1), D(2))


class Vendor:
    """The bill of a fake vendor: every request it receives is charged, answered or not."""

    def __init__(self, charge: Decimal) -> None:
        self.charge = charge
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def billed(self) -> Decimal:
        return self.charge * self.requests


class SlowTarget:
    """Answers after a random delay; the vendor bills ``charge`` for each request, even a cancelled one."""

    def __init__(self, name: str, vendor: Vendor, rng: random.Random, delays: tuple[float, float]) -> None:
        self.name, self.vendor, self.rng, self.delays = name, vendor, rng, delays

    def prices(self) -> Prices:
        return PRICES

    async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
        self.vendor.requests += 1
        self.vendor.in_flight += 1
        self.vendor.max_in_flight = max(self.vendor.max_in_flight, self.vendor.in_flight)
        try:
            await asyncio.sleep(self.rng.uniform(*self.delays))
        finally:
            self.vendor.in_flight -= 1
        return ChatResponse(text=f"from {self.name}", finish_reason=FinishReason.STOP, model=self.name,
                            usage=Usage(input_tokens=10, output_tokens=5), provider=self.name,
                            cost=Cost.reported(self.vendor.charge))

    def stream(self, request: ChatRequest):
        raise NotImplementedError


def test_fan_out_counts_the_requests_one_call_can_have_billed() -> None:
    a, b, c = ScriptedProvider("a"), ScriptedProvider("b"), ScriptedProvider("c")
    assert fan_out(a) == 1
    assert HedgedRouter([a, b, c], max_hedges=1).fan_out == 2
    assert HedgedRouter([a, b, c], max_hedges=2).fan_out == 3
    assert HedgedRouter([a, b], max_hedges=5).fan_out == 2  # no more branches than targets
    assert HedgedRouter([a], max_hedges=1).fan_out == 1
    inner = HedgedRouter([a, b], max_hedges=1)
    assert FallbackChain([inner, c]).fan_out == 2  # a chain sends one target at a time
    assert HedgedRouter([inner, c], max_hedges=1).fan_out == 3  # a hedge of a hedge
    assert fan_out(LimitedTarget(inner, Limits(max_in_flight=4))) == 2


def test_the_quote_reserves_one_worst_case_per_request_the_hedge_may_send() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    single = CostAwareRouter([Candidate(a, 1.0, PRICES)]).quote(REQ)[0]
    hedged = CostAwareRouter([Candidate(HedgedRouter([a, b], max_hedges=1), 1.0, PRICES)]).quote(REQ)[0]
    assert hedged.fan_out == 2 and hedged.worst_case == 2 * single.worst_case


async def _hedged_load(calls: int, cap_in_requests: int, seed: int) -> tuple[CostAwareRouter, Vendor, list]:
    rng = random.Random(seed)
    probe = CostAwareRouter([Candidate(ScriptedProvider("p"), 1.0, PRICES)])
    per_request = probe.quote(REQ)[0].worst_case
    vendor = Vendor(per_request)  # each request is billed its worst case: the tightest honest test
    # The primary is sometimes slow (a hedge is sent after 5 ms), the hedge target is quick.
    primary = SlowTarget("primary", vendor, rng, (0.0, 0.02))
    backup = SlowTarget("backup", vendor, rng, (0.0, 0.004))
    hedge = HedgedRouter([primary, backup], delay_s=0.005, max_hedges=1)
    router = CostAwareRouter([Candidate(hedge, 1.0, PRICES)],
                             ledger=BudgetLedger(per_request * cap_in_requests, period="total"))

    async def one() -> object:
        await asyncio.sleep(rng.uniform(0, 0.05))
        try:
            return await router.complete(REQ)
        except BudgetExceeded as exc:
            return exc

    outcomes = await asyncio.gather(*(one() for _ in range(calls)))
    return router, vendor, outcomes


async def test_concurrent_hedged_calls_never_get_billed_past_the_cap() -> None:
    router, vendor, outcomes = await _hedged_load(calls=300, cap_in_requests=60, seed=4)
    cap = router.ledger.limit
    served = [o for o in outcomes if isinstance(o, ChatResponse)]
    hedged = [r for r in served if len(r.attempts) == 2]
    assert served and hedged, "the load must include hedged calls"
    assert any(isinstance(o, BudgetExceeded) for o in outcomes), "the load must reach the cap"
    assert vendor.billed <= cap, f"vendors billed {vendor.billed / cap:.0%} of the cap"
    # The ledger never counts less than the vendors bill: a cancelled loser keeps its share.
    assert router.ledger.spent == vendor.billed and router.ledger.reserved == 0
    assert router.ledger.snapshot()["overruns"] == 0


async def test_a_cancelled_loser_is_kept_as_spent_not_free() -> None:
    a, b = ScriptedProvider("a", delay_s=0.5), ScriptedProvider("b", cost="0.000001")
    hedge = HedgedRouter([a, b], delay_s=0.0, max_hedges=1)
    ledger = BudgetLedger("1", period="total")
    router = CostAwareRouter([Candidate(hedge, 1.0, PRICES)], ledger=ledger)
    per_request = router.quote(REQ)[0].worst_case / 2
    response = await router.complete(REQ)
    assert response.provider == "b" and [x.error_kind for x in response.attempts] == ["cancelled", None]
    assert response.attempts[0].sent and response.attempts[0].cost is None
    assert ledger.spent == D("0.000001") + per_request  # the winner's cost + the loser's worst case
    assert ledger.snapshot()["estimated"] == 1 and ledger.reserved == 0


async def test_a_hedge_that_never_fired_settles_one_request() -> None:
    a, b = ScriptedProvider("a", cost="0.0000005"), ScriptedProvider("b")
    ledger = BudgetLedger("1", period="total")
    router = CostAwareRouter([Candidate(HedgedRouter([a, b], delay_s=5.0), 1.0, PRICES)], ledger=ledger)
    await router.complete(REQ)
    assert b.calls == 0 and ledger.spent == D("0.0000005") and ledger.snapshot()["estimated"] == 0
