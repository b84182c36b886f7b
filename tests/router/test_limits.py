"""Per-target limits: in-flight slots, RPM/TPM buckets, skip vs wait, and composing with routers."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

import evalkit
from evalkit import ChatRequest, ChatResponse, FinishReason, Message, RateLimitError, Usage
from evalkit.router import FallbackChain
from evalkit.router.limits import LOCAL_LIMIT, LimitedTarget, Limits
from evalkit.tokens import count_tokens

from .fakes import ScriptedProvider, fast_policy

REQ = ChatRequest.from_prompt("hello", max_tokens=10)


class FakeClock:
    """A clock that moves only when told to; ``sleep`` advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class GatedProvider:
    """Answers once ``gate`` is open (or after a few event-loop turns); tracks concurrency."""

    def __init__(self, name: str = "gated", *, usage: Usage | None = None,
                 gate: asyncio.Event | None = None) -> None:
        self.name = name
        self.context_window = 8000
        self.usage = usage or Usage(input_tokens=10, output_tokens=5)
        self.gate = gate
        self.calls = self.in_flight = self.max_in_flight = 0

    async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            for _ in range(3):
                await asyncio.sleep(0)
            return ChatResponse(text="ok", finish_reason=FinishReason.STOP, model=self.name,
                                usage=self.usage, provider=self.name)
        finally:
            self.in_flight -= 1

    def prices(self) -> evalkit.Prices:
        return evalkit.Prices(input=Decimal(1), output=Decimal(2))


def estimate(request: ChatRequest, name: str) -> int:
    return count_tokens(list(request.messages), name).count + (request.max_tokens or 0)


async def test_max_in_flight_holds_under_a_hundred_concurrent_calls_in_wait_mode() -> None:
    provider = GatedProvider()
    limited = LimitedTarget(provider, Limits(max_in_flight=4, on_saturated="wait"))
    responses = await asyncio.gather(*(limited.complete(REQ) for _ in range(100)))
    assert len(responses) == 100 and provider.calls == 100
    assert provider.max_in_flight == 4
    assert limited.in_flight == 0


async def test_skip_mode_refuses_beyond_max_in_flight_without_sending() -> None:
    gate = asyncio.Event()
    provider = GatedProvider(gate=gate)
    limited = LimitedTarget(provider, Limits(max_in_flight=5))
    tasks = [asyncio.ensure_future(limited.complete(REQ)) for _ in range(100)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    refused = [r for r in results if isinstance(r, RateLimitError)]
    assert provider.calls == 5 == provider.max_in_flight
    assert len(refused) == 95
    assert all(r.code == LOCAL_LIMIT and r.retry_after is None for r in refused)


async def test_rpm_refusal_says_when_capacity_returns_and_the_bucket_refills() -> None:
    clock = FakeClock()
    provider = GatedProvider()
    limited = LimitedTarget(provider, Limits(rpm=2), clock=clock)
    await limited.complete(REQ)
    await limited.complete(REQ)
    with pytest.raises(RateLimitError) as caught:
        await limited.complete(REQ)
    assert caught.value.code == "local_limit" and caught.value.retryable
    assert caught.value.retry_after == pytest.approx(30.0)  # 2 per minute: one every 30 s
    assert provider.calls == 2 and limited.saturated()
    clock.now += 30.0
    assert not limited.saturated()
    await limited.complete(REQ)
    assert provider.calls == 3


async def test_tpm_is_corrected_with_the_actual_usage() -> None:
    request = ChatRequest.from_prompt("hello", max_tokens=600)
    provider = GatedProvider(usage=Usage(input_tokens=10, output_tokens=5))
    limited = LimitedTarget(provider, Limits(tpm=1000), clock=FakeClock())
    assert 600 < estimate(request, provider.name) <= 1000 < 2 * estimate(request, provider.name)
    await limited.complete(request)
    # Only 15 tokens were really used, so a second worst-case call still fits the minute.
    await limited.complete(request)
    assert provider.calls == 2


async def test_tpm_is_corrected_with_what_a_failed_call_was_billed() -> None:
    """A refusal says what the vendor counted: the bucket keeps that, not the worst-case estimate."""
    from evalkit.errors import ContentFilterError

    class Refusing(GatedProvider):
        async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
            self.calls += 1
            raise ContentFilterError("refused", usage=Usage(input_tokens=10, output_tokens=0))

    request = ChatRequest.from_prompt("hello", max_tokens=600)
    provider = Refusing()
    limited = LimitedTarget(provider, Limits(tpm=1000, on_saturated="skip"), clock=FakeClock())
    for _ in range(2):  # without the correction the second worst case would not fit the minute
        with pytest.raises(ContentFilterError):
            await limited.complete(request)
    assert provider.calls == 2


async def test_tpm_overrun_becomes_a_debt_that_delays_the_next_call() -> None:
    request = ChatRequest.from_prompt("hello", max_tokens=100)
    provider = GatedProvider(usage=Usage(input_tokens=1000, output_tokens=1000))
    limited = LimitedTarget(provider, Limits(tpm=1200), clock=FakeClock())
    await limited.complete(request)
    with pytest.raises(RateLimitError) as caught:
        await limited.complete(request)
    # Level is 1200 - 2000 = -800; the next call needs its estimate on top, at 20 tokens/s.
    assert caught.value.retry_after == pytest.approx((800 + estimate(request, provider.name)) / 20.0)


async def test_wait_mode_waits_for_the_bucket_then_sends() -> None:
    clock = FakeClock()
    provider = GatedProvider()
    limits = Limits(rpm=1, on_saturated="wait", max_wait_s=120.0)
    limited = LimitedTarget(provider, limits, clock=clock, sleep=clock.sleep)
    await limited.complete(REQ)
    response = await limited.complete(REQ)
    assert response.text == "ok" and provider.calls == 2
    assert sum(clock.slept) == pytest.approx(60.0)


async def test_wait_mode_gives_up_after_max_wait() -> None:
    clock = FakeClock()
    provider = GatedProvider()
    limits = Limits(rpm=1, on_saturated="wait", max_wait_s=5.0)
    limited = LimitedTarget(provider, limits, clock=clock, sleep=clock.sleep)
    await limited.complete(REQ)
    with pytest.raises(RateLimitError) as caught:
        await limited.complete(REQ)
    assert provider.calls == 1 and caught.value.code == LOCAL_LIMIT
    assert sum(clock.slept) == pytest.approx(5.0)
    assert caught.value.retry_after == pytest.approx(55.0)


async def test_wait_mode_serves_callers_first_come_first_served() -> None:
    gate = asyncio.Event()
    order: list[int] = []
    limited = LimitedTarget(GatedProvider(gate=gate), Limits(max_in_flight=1, on_saturated="wait"))

    async def call(i: int) -> None:
        await limited.complete(REQ)
        order.append(i)

    tasks = [asyncio.ensure_future(call(i)) for i in range(6)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert order == list(range(6))


async def test_a_cancelled_waiter_leaves_the_queue_without_blocking_the_next() -> None:
    gate = asyncio.Event()
    provider = GatedProvider(gate=gate)
    limited = LimitedTarget(provider, Limits(max_in_flight=1, on_saturated="wait"))
    first, second, third = (asyncio.ensure_future(limited.complete(REQ)) for _ in range(3))
    await asyncio.sleep(0)
    second.cancel()
    gate.set()
    async with asyncio.timeout(10):
        await asyncio.gather(first, third)
    assert second.cancelled() and provider.calls == 2
    assert limited.in_flight == 0 and not limited.saturated()


async def test_a_saturated_primary_in_a_fallback_chain_is_passed_over_without_a_call() -> None:
    clock = FakeClock()
    primary_provider, secondary = GatedProvider("primary"), ScriptedProvider("secondary")
    primary = LimitedTarget(primary_provider, Limits(rpm=1), clock=clock)
    chain = FallbackChain([primary, secondary], policy=fast_policy(retries_per_target=2))
    first = await chain.complete(REQ)
    second = await chain.complete(REQ)
    assert first.provider == "primary" and second.provider == "secondary"
    assert primary_provider.calls == 1
    refused = second.attempts[0]
    assert (refused.target, refused.error_kind) == ("primary", "rate_limit")
    assert refused.error.startswith("local limit")


async def test_the_wrapper_looks_like_its_target() -> None:
    provider = GatedProvider("openai:gpt-4o-mini")
    limited = LimitedTarget(provider, Limits(max_in_flight=1))
    assert limited.name == "openai:gpt-4o-mini" and limited.context_window == 8000
    assert limited.prices() == provider.prices()
    assert not hasattr(LimitedTarget(ScriptedProvider("s"), Limits()), "prices")


async def test_a_stream_holds_its_slot_until_it_ends() -> None:
    class StreamingProvider(GatedProvider):
        def stream(self, request: ChatRequest):
            outer = self

            class Stream:
                response = None

                async def __aiter__(self):
                    for word in ("a", "b"):
                        yield word
                    Stream.response = await outer.complete(request)

            return Stream()

    limited = LimitedTarget(StreamingProvider(), Limits(max_in_flight=1))
    stream = limited.stream(REQ)
    seen = []
    async for delta in stream:
        seen.append(delta)
        assert limited.saturated()
        with pytest.raises(RateLimitError):
            await limited.complete(REQ)
    assert seen == ["a", "b"] and stream.response.text == "ok"
    assert not limited.saturated()


def test_limits_reject_nonsense() -> None:
    for bad in ({"max_in_flight": 0}, {"max_in_flight": 1.5}, {"rpm": 0}, {"tpm": -1},
                {"on_saturated": "queue"}, {"max_wait_s": -1}):
        with pytest.raises(ValueError):
            Limits(**bad)
    assert Limits(max_in_flight=3.0).max_in_flight == 3


def test_request_with_system_prompt_counts_it() -> None:
    limited = LimitedTarget(GatedProvider(), Limits(tpm=10_000))
    plain = ChatRequest(messages=(Message("user", "hi"),))
    with_system = plain.replace(system="You are a very verbose assistant. " * 20)
    assert limited._estimate(with_system) > limited._estimate(plain) + 50
