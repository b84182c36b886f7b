"""CostAwareRouter: cheapest adequate candidate, reserve → call → settle, never sent over budget."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from decimal import Decimal

import pytest

import evalkit
from evalkit import ChatRequest, ChatResponse, Cost, FinishReason, Usage
from evalkit.errors import AllTargetsFailed, BudgetExceeded, ConfigError, ErrorKind, provider_error
from evalkit.pricing import Prices
from evalkit.router import FallbackChain
from evalkit.router.budget import BudgetLedger
from evalkit.router.cost import Candidate, CostAwareRouter

from .fakes import ScriptedProvider
from .test_budget import FakeClock

D = Decimal
REQ = ChatRequest.from_prompt("hello", max_tokens=100)


class MeteredProvider:
    """A priced fake: answers ``"ok"`` or a scripted error kind, and bills what ``charge`` says.

    ``charge(request)`` returns the cost (``None`` = unpriced answer); by default a
    tenth of a cent. ``jitter`` interleaves concurrent calls at random.
    """

    def __init__(self, name: str, input: str = "1", output: str = "2", *, script=(), context_window=None,
                 charge: Callable[[ChatRequest], Decimal | None] | None = None,
                 jitter: random.Random | None = None) -> None:
        self.name = name
        self.context_window = context_window
        self._prices = Prices(D(input), D(output))
        self.script = deque(script)
        self.charge = charge or (lambda request: D("0.001"))
        self.jitter = jitter
        self.requests: list[ChatRequest] = []
        self.release = asyncio.Event()

    @property
    def calls(self) -> int:
        return len(self.requests)

    def prices(self) -> Prices:
        return self._prices

    async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
        self.requests.append(request)
        for _ in range(self.jitter.randrange(4) if self.jitter else 0):
            await asyncio.sleep(0)
        outcome = self.script.popleft() if self.script else "ok"
        if outcome == "hang":
            await self.release.wait()
        elif outcome != "ok":
            raise provider_error(outcome, f"scripted {outcome}", provider="fake", model=self.name)
        cost = self.charge(request)
        return ChatResponse(text=f"from {self.name}", finish_reason=FinishReason.STOP, model=self.name,
                            usage=Usage(input_tokens=5, output_tokens=5), provider=self.name,
                            cost=None if cost is None else Cost.reported(cost))

    def stream(self, request: ChatRequest):
        raise NotImplementedError


class RecordingMonitor:
    def __init__(self) -> None:
        self.calls: list[tuple[list, ChatRequest]] = []

    def record(self, attempts, request) -> None:
        self.calls.append((list(attempts), request))


def three_tiers():
    cheap, mid, top = MeteredProvider("cheap", "0.1", "0.4"), MeteredProvider("mid", "1", "4"), \
        MeteredProvider("top", "10", "40")
    return cheap, mid, top, [Candidate(cheap, 0.3), Candidate(mid, 0.6), Candidate(top, 0.9)]


# -- choosing ------------------------------------------------------------------------------------


async def test_cheapest_candidate_meeting_the_quality_bar_serves() -> None:
    cheap, _, top, candidates = three_tiers()
    router = CostAwareRouter(candidates[::-1], min_quality=0.5)
    response = await router.complete(REQ)
    assert response.provider == "mid" and (cheap.calls, top.calls) == (0, 0)
    assert [q.target for q in router.quote(REQ)] == ["mid", "top"]


async def test_min_quality_from_request_metadata_wins_over_the_default() -> None:
    *_, candidates = three_tiers()
    router = CostAwareRouter(candidates, min_quality=0.5)
    assert (await router.complete(REQ.replace(metadata={"min_quality": 0.8}))).provider == "top"
    assert (await router.complete(REQ.replace(metadata={"min_quality": "basic"}))).provider == "cheap"
    with pytest.raises(ConfigError, match="min_quality"):
        await router.complete(REQ.replace(metadata={"min_quality": "excellent"}))


async def test_equal_cost_goes_to_the_higher_quality() -> None:
    low, high = MeteredProvider("low"), MeteredProvider("high")
    response = await CostAwareRouter([(low, 0.4), (high, "premium")]).complete(REQ)
    assert response.provider == "high"


async def test_no_candidate_good_enough_fails_without_sending() -> None:
    cheap, mid, _, candidates = three_tiers()
    with pytest.raises(AllTargetsFailed) as caught:
        await CostAwareRouter(candidates[:2]).complete(REQ.replace(metadata={"min_quality": 0.95}))
    assert caught.value.kind is ErrorKind.NOT_FOUND and "0.95" in caught.value.message
    assert cheap.calls == mid.calls == 0
    assert {a.error_kind for a in caught.value.attempts} == {"below_quality"}


async def test_worst_case_is_padded_prompt_plus_max_tokens_at_current_prices() -> None:
    provider = MeteredProvider("anthropic:claude-x", input="3", output="15")
    (quote,) = CostAwareRouter([(provider, 1.0)]).quote(REQ)
    counted = evalkit.count_tokens(REQ.messages, "anthropic:claude-x").count
    assert quote.input_tokens == counted + -(-counted // 10) + 16
    assert quote.worst_case == (quote.input_tokens * D(3) + 100 * D(15)) / D(1_000_000)
    assert isinstance(quote.worst_case, Decimal)
    provider._prices = Prices(D(6), D(30))  # a price update shows on the next request
    assert CostAwareRouter([(provider, 1.0)]).quote(REQ)[0].worst_case == 2 * quote.worst_case


async def test_missing_max_tokens_is_bounded_on_the_request_that_is_sent() -> None:
    provider = MeteredProvider("p")
    router = CostAwareRouter([(provider, 1.0)], default_max_tokens=256)
    await router.complete(ChatRequest.from_prompt("hi"))
    await router.complete(REQ)
    assert [r.max_tokens for r in provider.requests] == [256, 100]


async def test_a_candidate_too_small_for_the_prompt_is_skipped() -> None:
    small = MeteredProvider("small", "0.1", "0.1", context_window=50)
    big = MeteredProvider("big")
    response = await CostAwareRouter([(small, 1.0), (big, 1.0)]).complete(REQ)
    assert response.provider == "big" and small.calls == 0
    assert response.attempts[0].error_kind == "context_window" and not response.attempts[0].sent


# -- configuration -------------------------------------------------------------------------------


def test_unpriced_candidate_is_a_configuration_error_unless_given_prices() -> None:
    unpriced = ScriptedProvider("mystery")  # no prices() at all
    with pytest.raises(ConfigError, match=r"mystery has no known price") as caught:
        CostAwareRouter([(unpriced, 0.5)])
    assert caught.value.field == "candidates[0].prices"
    router = CostAwareRouter([Candidate(unpriced, 0.5, prices={"input": "0.5", "output": "1.5"})])
    assert router.quote(REQ)[0].worst_case > 0


def test_a_nested_router_needs_explicit_prices() -> None:
    chain = FallbackChain([ScriptedProvider("a"), ScriptedProvider("b")])
    with pytest.raises(ConfigError):
        CostAwareRouter([(chain, 1.0)])
    router = CostAwareRouter([(chain, 1.0, Prices(D(1), D(2)))])
    assert router.kind == "cost" and router.name == "cost(fallback(a, b))"


@pytest.mark.parametrize("bad", [("p",), ("p", 1.5), ("p", "legendary"), "p"])
def test_malformed_candidates_are_configuration_errors(bad) -> None:
    provider = MeteredProvider("p")
    spec = tuple(provider if x == "p" else x for x in bad) if isinstance(bad, tuple) else provider
    with pytest.raises(ConfigError):
        CostAwareRouter([spec])


def test_on_over_budget_must_be_reroute_or_refuse() -> None:
    with pytest.raises(ConfigError, match="on_over_budget"):
        CostAwareRouter([(MeteredProvider("p"), 1.0)], on_over_budget="queue")  # type: ignore[arg-type]


# -- budget --------------------------------------------------------------------------------------


async def test_settles_the_actual_cost_after_the_call() -> None:
    provider = MeteredProvider("p", charge=lambda r: D("0.00005"))
    ledger = BudgetLedger("1")
    response = await CostAwareRouter([(provider, 1.0)], ledger=ledger).complete(REQ)
    assert ledger.spent == response.cost.total == D("0.00005") and ledger.reserved == 0


async def test_an_unpriced_answer_is_charged_its_worst_case() -> None:
    provider = MeteredProvider("p", charge=lambda r: None)
    ledger = BudgetLedger("1")
    router = CostAwareRouter([(provider, 1.0)], ledger=ledger)
    await router.complete(REQ)
    assert ledger.spent == router.quote(REQ)[0].worst_case


async def test_reroute_moves_past_a_target_over_its_own_cap() -> None:
    cheap, *_, candidates = three_tiers()
    ledger = BudgetLedger("10", per_target={"cheap": "0"})
    response = await CostAwareRouter(candidates, ledger=ledger).complete(REQ)
    assert response.provider == "mid" and cheap.calls == 0
    skipped = response.attempts[0]
    assert (skipped.target, skipped.error_kind, skipped.sent) == ("cheap", "budget_exceeded", False)
    assert "cap for cheap" in skipped.error


async def test_refuse_raises_at_once_and_sends_nothing() -> None:
    cheap, mid, top, candidates = three_tiers()
    ledger = BudgetLedger("10", per_target={"cheap": "0"})
    router = CostAwareRouter(candidates, ledger=ledger, on_over_budget="refuse")
    with pytest.raises(BudgetExceeded) as caught:
        await router.complete(REQ)
    assert cheap.calls == mid.calls == top.calls == 0
    assert "refused" in caught.value.message and caught.value.scope == "target"
    assert [a.error_kind for a in caught.value.attempts] == ["budget_exceeded"]


async def test_nothing_affordable_raises_budget_exceeded_not_all_targets_failed() -> None:
    cheap, mid, top, candidates = three_tiers()
    monitor = RecordingMonitor()
    router = CostAwareRouter(candidates, ledger=BudgetLedger("0.0000001"), monitor=monitor)
    with pytest.raises(BudgetExceeded) as caught:
        await router.complete(REQ)
    err = caught.value
    assert not isinstance(err, AllTargetsFailed) and cheap.calls == mid.calls == top.calls == 0
    assert [a.target for a in err.attempts] == ["cheap", "mid", "top"]
    assert err.requested == router.quote(REQ)[0].worst_case and "also over budget: mid, top" in err.message
    assert len(monitor.calls) == 1 and len(monitor.calls[0][0]) == 3


async def test_downgrade_only_when_allowed() -> None:
    _, mid, top, candidates = three_tiers()
    enough_for_cheap = CostAwareRouter(candidates).quote(REQ)[0].worst_case
    request = REQ.replace(metadata={"min_quality": 0.5})
    strict = CostAwareRouter(candidates, ledger=BudgetLedger(enough_for_cheap))
    with pytest.raises(BudgetExceeded):
        await strict.complete(request)
    lenient = CostAwareRouter(candidates, ledger=BudgetLedger(enough_for_cheap), allow_downgrade=True)
    response = await lenient.complete(request)
    assert response.provider == "cheap" and mid.calls == top.calls == 0


async def test_a_failed_call_releases_its_reservation_and_falls_back() -> None:
    cheap, *_, candidates = three_tiers()
    cheap.script.append("server")
    ledger = BudgetLedger("1")
    response = await CostAwareRouter(candidates, ledger=ledger).complete(REQ)
    assert response.provider == "mid" and [a.error_kind for a in response.attempts] == ["server", None]
    assert ledger.spent == response.cost.total and ledger.reserved == 0


async def test_without_fallback_a_failure_is_raised_and_nothing_is_charged() -> None:
    cheap, mid, _, candidates = three_tiers()
    cheap.script.append("overloaded")
    ledger = BudgetLedger("1")
    with pytest.raises(AllTargetsFailed) as caught:
        await CostAwareRouter(candidates, ledger=ledger, fallback_on_error=False).complete(REQ)
    assert caught.value.kind is ErrorKind.OVERLOADED and mid.calls == 0
    assert (ledger.spent, ledger.reserved) == (D(0), D(0))


async def test_a_cancelled_call_keeps_its_worst_case_as_spent() -> None:
    provider = MeteredProvider("p", script=["hang"])
    ledger = BudgetLedger("1")
    router = CostAwareRouter([(provider, 1.0)], ledger=ledger)
    task = asyncio.ensure_future(router.complete(REQ))
    while provider.calls == 0:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ledger.spent == router.quote(REQ)[0].worst_case and ledger.reserved == 0


async def test_a_new_day_reopens_the_budget() -> None:
    clock = FakeClock("2024-05-01T23:00:00")
    provider = MeteredProvider("p", charge=lambda r: D("0.95"))
    router = CostAwareRouter([(provider, 1.0, Prices(D(1000), D(1000)))], ledger=BudgetLedger("1", clock=clock))
    await router.complete(REQ)
    with pytest.raises(BudgetExceeded):
        await router.complete(REQ)
    clock.advance(3600)
    assert (await router.complete(REQ)).provider == "p" and provider.calls == 2


# -- the cap under concurrency -------------------------------------------------------------------


async def test_500_concurrent_requests_never_overspend_a_cap_for_50() -> None:
    router_ref: list[CostAwareRouter] = []
    provider = MeteredProvider("p", jitter=random.Random(7),
                               charge=lambda request: router_ref[0].quote(request)[0].worst_case)
    router = CostAwareRouter([(provider, 1.0)])
    router_ref.append(router)
    worst = router.quote(REQ)[0].worst_case
    cap = worst * 50
    router.ledger = BudgetLedger(cap)
    outcomes = await asyncio.gather(*(router.complete(REQ) for _ in range(500)), return_exceptions=True)
    served = [o for o in outcomes if isinstance(o, ChatResponse)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(served) == 50 and len(refused) == 450
    assert provider.calls == len(served), "nothing is sent over budget"
    assert router.ledger.spent == cap and router.ledger.reserved == 0


async def test_staggered_concurrent_requests_with_cheaper_answers_stay_under_the_cap() -> None:
    rng = random.Random(11)
    router_ref: list[CostAwareRouter] = []

    def charge(request: ChatRequest) -> Decimal:  # anything up to the worst case
        worst = router_ref[0].quote(request)[0].worst_case
        return (worst * D(rng.randint(30, 100)) / 100).quantize(D("0.00000001"), rounding="ROUND_DOWN")

    a, b = MeteredProvider("a", jitter=rng, charge=charge), MeteredProvider("b", jitter=rng, charge=charge)
    router = CostAwareRouter([(a, 1.0), (b, 1.0)])
    router_ref.append(router)
    cap = router.quote(REQ)[0].worst_case * 50
    router.ledger = BudgetLedger(cap, per_target={"a": cap / 2})

    async def one() -> ChatResponse:
        for _ in range(rng.randrange(20)):
            await asyncio.sleep(0)
        return await router.complete(REQ)

    outcomes = await asyncio.gather(*(one() for _ in range(500)), return_exceptions=True)
    served = [o for o in outcomes if isinstance(o, ChatResponse)]
    assert all(isinstance(o, (ChatResponse, BudgetExceeded)) for o in outcomes)
    assert a.calls + b.calls == len(served) >= 50
    assert router.ledger.spent <= cap and router.ledger.reserved == 0
    assert router.ledger.snapshot()["targets"]["a"]["spent"] <= cap / 2
    assert router.ledger.spent == sum((r.cost.total for r in served), D(0))
