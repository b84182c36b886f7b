"""HedgedRouter: when a hedge is sent, who wins, what is cancelled, and what the evidence shows."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from evalkit import ChatRequest, ChatResponse, Cost, FinishReason, Usage
from evalkit.errors import AllTargetsFailed
from evalkit.router import FallbackChain
from evalkit.router.hedge import HedgedRouter
from evalkit.router.limits import LimitedTarget, Limits

from .fakes import ScriptedProvider, fast_policy

REQ = ChatRequest.from_prompt("hello", max_tokens=10)
# Long enough that a test would hang (and hit SAFETY) if a hedge waited for it by mistake.
NEVER = 3600.0
SAFETY = 10.0


class HangingProvider:
    """Pushes one delta, then never answers; records that it was cancelled."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.cancelled = 0

    async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
        self.calls += 1
        if on_delta is not None:
            on_delta(f"partial from {self.name} ")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")


class TimedProvider:
    """Answers at once, pushing its text like a streaming leaf; advances a fake clock by scripted latencies."""

    def __init__(self, name: str, clock: list[float] | None = None, latencies: list[float] | None = None,
                 gate: asyncio.Event | None = None) -> None:
        self.name = name
        self.gate = gate
        self.clock = clock
        self.latencies = list(latencies or [])
        self.calls = 0

    async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.clock is not None and self.latencies:
            self.clock[0] += self.latencies.pop(0)
        text = f"answer from {self.name}"
        if on_delta is not None:
            on_delta(text)
        zero = Decimal(0)
        return ChatResponse(text=text, finish_reason=FinishReason.STOP, model=self.name,
                            usage=Usage(input_tokens=10, output_tokens=5), provider=self.name,
                            cost=Cost(Decimal("0.002"), zero, zero, zero, zero, source="test"))


async def test_slow_primary_fast_secondary_secondary_wins_and_primary_is_cancelled() -> None:
    primary, secondary = HangingProvider("primary"), TimedProvider("secondary")
    router = HedgedRouter([primary, secondary], delay_s=0.01)
    async with asyncio.timeout(SAFETY):
        response = await router.complete(REQ)
    assert response.provider == "secondary"
    assert primary.calls == 1 and primary.cancelled == 1
    loser, winner = response.attempts
    assert (loser.target, loser.error_kind, loser.sent, loser.cost) == ("primary", "cancelled", True, None)
    assert loser.latency_ms > 0
    assert (winner.target, winner.error_kind, winner.depth) == ("secondary", None, 1)
    assert winner.cost.total == Decimal("0.002")


async def test_fast_primary_sends_no_hedge() -> None:
    primary, secondary = TimedProvider("primary"), TimedProvider("secondary")
    router = HedgedRouter([primary, secondary], delay_s=NEVER)
    async with asyncio.timeout(SAFETY):
        response = await router.complete(REQ)
    assert response.provider == "primary" and secondary.calls == 0
    assert [a.target for a in response.attempts] == ["primary"]


async def test_primary_failing_fast_starts_the_hedge_at_once() -> None:
    primary, secondary = ScriptedProvider("primary", default="server"), TimedProvider("secondary")
    router = HedgedRouter([primary, secondary], delay_s=NEVER)
    async with asyncio.timeout(SAFETY):
        response = await router.complete(REQ)
    assert response.provider == "secondary"
    assert [(a.target, a.error_kind) for a in response.attempts] == [("primary", "server"), ("secondary", None)]


async def test_everything_failing_raises_with_both_attempts() -> None:
    targets = [ScriptedProvider("a", default="overloaded"), ScriptedProvider("b", default="server")]
    with pytest.raises(AllTargetsFailed) as caught:
        async with asyncio.timeout(SAFETY):
            await HedgedRouter(targets, delay_s=NEVER).complete(REQ)
    assert [(a.target, a.error_kind) for a in caught.value.attempts] == [("a", "overloaded"), ("b", "server")]
    assert len(caught.value.errors) == 2


async def test_a_loser_that_answered_in_the_same_instant_keeps_its_cost() -> None:
    gate = asyncio.Event()
    primary, secondary = TimedProvider("primary", gate=gate), TimedProvider("secondary", gate=gate)
    call = asyncio.ensure_future(HedgedRouter([primary, secondary], delay_s=0).complete(REQ))
    async with asyncio.timeout(SAFETY):
        while secondary.calls == 0:
            await asyncio.sleep(0)
        gate.set()  # both answer in the same loop turn
        response = await call
    assert response.provider == "primary"
    loser, winner = response.attempts
    assert (loser.target, loser.error_kind, loser.sent) == ("secondary", "cancelled", True)
    assert loser.cost.total == Decimal("0.002") and loser.usage.output_tokens == 5
    assert winner.target == "primary" and winner.ok


async def test_max_hedges_bounds_the_requests_sent_and_cancelling_the_call_cancels_every_branch() -> None:
    targets = [HangingProvider("a"), HangingProvider("b"), HangingProvider("c")]
    extra = TimedProvider("d")
    call = asyncio.ensure_future(HedgedRouter([*targets, extra], delay_s=0.001, max_hedges=2).complete(REQ))
    async with asyncio.timeout(SAFETY):
        while targets[2].calls == 0:
            await asyncio.sleep(0.001)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert [t.calls for t in targets] == [1, 1, 1] and extra.calls == 0  # "d" would be a third hedge
    assert [t.cancelled for t in targets] == [1, 1, 1]


async def test_p95_delay_adapts_after_warm_up() -> None:
    clock = [0.0]
    latencies = [0.1 * (i + 1) for i in range(20)]  # 0.1 … 2.0 s
    primary = TimedProvider("primary", clock, latencies + [0.2] * 20)
    router = HedgedRouter([primary, TimedProvider("secondary")], cold_delay_s=NEVER, window=20,
                          clock=lambda: clock[0])
    for _ in range(19):
        await router.complete(REQ)
        assert router.current_delay_s() == NEVER  # cold: fewer than 20 samples
    await router.complete(REQ)
    assert router.current_delay_s() == pytest.approx(1.9)  # nearest-rank p95 of 0.1 … 2.0
    for _ in range(20):
        await router.complete(REQ)
    assert router.current_delay_s() == pytest.approx(0.2)  # the window now holds only faster calls
    assert primary.calls == 40


async def test_p95_is_floored_by_min_delay() -> None:
    router = HedgedRouter([TimedProvider("a"), TimedProvider("b")], min_delay_s=0.05, min_samples=3)
    for _ in range(3):
        router.observe_primary(0.001)
    assert router.current_delay_s() == 0.05
    assert HedgedRouter([TimedProvider("a")], delay_s=0.3).current_delay_s() == 0.3


async def test_a_hedged_stream_delivers_only_the_winners_text() -> None:
    router = HedgedRouter([HangingProvider("primary"), TimedProvider("secondary")], delay_s=0.01)
    stream = router.stream(REQ)
    async with asyncio.timeout(SAFETY):
        deltas = [d async for d in stream]
    assert deltas == ["answer from secondary"]
    assert stream.response.provider == "secondary"


async def test_a_locally_saturated_primary_hedges_at_once() -> None:
    primary = TimedProvider("primary")
    limited = LimitedTarget(primary, Limits(rpm=1))
    router = HedgedRouter([limited, TimedProvider("secondary")], delay_s=NEVER)
    async with asyncio.timeout(SAFETY):
        first = await router.complete(REQ)
        second = await router.complete(REQ)
    assert (first.provider, second.provider, primary.calls) == ("primary", "secondary", 1)
    assert second.attempts[0].error_kind == "rate_limit"


async def test_a_hedged_router_nests_inside_a_fallback_chain() -> None:
    hedge = HedgedRouter([ScriptedProvider("a", default="server"), ScriptedProvider("b", default="server")],
                         delay_s=NEVER)
    chain = FallbackChain([hedge, TimedProvider("c")], policy=fast_policy())
    async with asyncio.timeout(SAFETY):
        response = await chain.complete(REQ)
    assert response.provider == "c"
    assert [(a.target, a.depth) for a in response.attempts] == [("a", 0), ("b", 1), ("c", 2)]


def test_options_are_checked() -> None:
    targets = [TimedProvider("a"), TimedProvider("b")]
    for bad in ({"delay_s": -1}, {"delay_s": "p99"}, {"max_hedges": -1}, {"min_samples": 0}):
        with pytest.raises(ValueError):
            HedgedRouter(targets, **bad)
    assert HedgedRouter(targets).kind == "hedge"
