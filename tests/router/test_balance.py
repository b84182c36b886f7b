"""WeightedBalancer and its circuit breakers."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import evalkit
from evalkit.errors import AllTargetsFailed, ErrorKind, RateLimitError, ServerError
from evalkit.router import BreakerSettings, CircuitBreaker, FallbackChain, WeightedBalancer
from evalkit.router.limits import LocalLimitError

from .fakes import ScriptedProvider, fast_policy

REQ = evalkit.ChatRequest.from_prompt("hello", max_tokens=10)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_weights_shape_the_traffic() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    balancer = WeightedBalancer([a, b], weights=[3, 1], seed=7)
    served = Counter([(await balancer.complete(REQ)).provider for _ in range(2000)])
    assert 0.70 < served["a"] / 2000 < 0.80  # 75 % expected; ±5 pts is > 4 sigma at n=2000


async def test_every_target_down_is_one_error_not_a_recursion() -> None:
    targets = [ScriptedProvider(n, default="server") for n in "abc"]
    balancer = WeightedBalancer(targets, seed=1)
    with pytest.raises(AllTargetsFailed) as caught:
        await balancer.complete(REQ)
    assert sorted(a.target for a in caught.value.attempts) == ["a", "b", "c"]
    assert all(t.calls == 1 for t in targets)


async def test_open_circuits_are_skipped_and_recorded() -> None:
    clock = FakeClock()
    a, b = ScriptedProvider("a", default="server"), ScriptedProvider("b")
    balancer = WeightedBalancer([a, b], weights=[1, 0.000001], seed=3, clock=clock,
                                breaker=BreakerSettings(consecutive_failures=2, cooldown_s=30))
    for _ in range(2):
        await balancer.complete(REQ)  # a fails, b serves
    assert balancer.health[0].breaker.state == "open"
    calls_before = a.calls
    response = await balancer.complete(REQ)
    assert a.calls == calls_before and response.provider == "b"


def test_breaker_opens_cools_down_and_recovers_half_open() -> None:
    clock = FakeClock()
    opened = []
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=3, cooldown_s=10), clock=clock,
                             on_open=lambda: opened.append(clock.now))
    script = ["fail", "fail", "fail"]
    for _ in script:
        assert breaker.acquire()
        breaker.record_failure(ServerError("boom"))
    assert breaker.state == "open" and opened == [1000.0]
    assert not breaker.acquire()
    clock.now += 10
    assert breaker.acquire() and breaker.state == "half_open"
    assert not breaker.acquire(), "only one probe in half-open"
    breaker.record_failure(ServerError("still down"))
    assert breaker.state == "open" and len(opened) == 2
    clock.now += 10
    assert breaker.acquire()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.acquire()


def test_failure_rate_over_window_with_minimum_volume() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=100, failure_rate=0.5, min_volume=10,
                                             window_s=60), clock=clock)
    for i in range(9):  # alternate: 4-5 failures, under min volume
        breaker.record_failure(ServerError("x")) if i % 2 else breaker.record_success()
    assert breaker.state == "closed"
    breaker.record_failure(ServerError("x"))
    assert breaker.state == "open"


def test_request_faults_do_not_trip_the_breaker() -> None:
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=1))
    breaker.record_failure(evalkit.BadRequestError("bad"))
    breaker.record_failure(evalkit.ContextLengthError("long"))
    assert breaker.state == "closed"


def test_rate_limit_retry_after_cools_for_that_long() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock)
    breaker.record_failure(RateLimitError("slow down", retry_after=7))
    assert breaker.state == "open"
    clock.now += 6.9
    assert not breaker.available()
    clock.now += 0.2
    assert breaker.available()


async def test_least_inflight_prefers_the_idle_target() -> None:
    busy, idle = ScriptedProvider("busy"), ScriptedProvider("idle")
    balancer = WeightedBalancer([busy, idle], strategy="least_inflight", seed=0)
    balancer.health[0].in_flight = 5
    assert (await balancer.complete(REQ)).provider == "idle"


async def test_latency_strategy_cold_start_then_prefers_fast() -> None:
    slow, fast = ScriptedProvider("slow"), ScriptedProvider("fast")
    balancer = WeightedBalancer([slow, fast], strategy="latency", seed=0, cold_samples=2)
    assert balancer.health[0].ewma_ms == 0.0  # empty stats must not divide by zero
    for _ in range(4):
        await balancer.complete(REQ)
    assert min(h.samples for h in balancer.health) >= 2, "cold targets are explored first"
    balancer.health[0].ewma_ms, balancer.health[1].ewma_ms = 900.0, 10.0
    served = Counter([(await balancer.complete(REQ)).provider for _ in range(300)])
    assert served["fast"] > 250


async def test_bad_request_stops_the_balancer() -> None:
    a, b = ScriptedProvider("a", ["bad_request"]), ScriptedProvider("b", ["bad_request"])
    with pytest.raises(AllTargetsFailed) as caught:
        await WeightedBalancer([a, b], seed=0).complete(REQ)
    assert caught.value.kind is ErrorKind.BAD_REQUEST and a.calls + b.calls == 1


def test_local_in_flight_refusal_is_not_a_target_failure() -> None:
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=1))
    breaker.record_failure(LocalLimitError("local limit: 4 in flight"))
    assert breaker.state == "closed"


def test_a_vendor_error_that_reuses_the_local_code_string_still_counts() -> None:
    # The marker is the type: a vendor whose own error code happens to read "local_limit" is a real failure.
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=1))
    breaker.record_failure(RateLimitError("slow down", code="local_limit"))
    assert breaker.state == "open"


async def test_auth_moves_on_and_skips_targets_sharing_the_key() -> None:
    key = ("openai", "https://api.openai.com/v1", 1)
    a = ScriptedProvider("openai:a", default="auth", credential=key)
    a2 = ScriptedProvider("openai:a2", default="auth", credential=key)
    b = ScriptedProvider("anthropic:b", credential=("anthropic", "https://api.anthropic.com", 2))
    balancer = WeightedBalancer([a, a2, b], weights=[5, 5, 1], seed=4,
                                breaker=BreakerSettings(consecutive_failures=10**6))
    for _ in range(30):
        response = await balancer.complete(REQ)
        assert response.provider == "anthropic:b"
        sent_auth = [x for x in response.attempts if x.error_kind == "auth"]
        skipped = [x for x in response.attempts if x.error_kind == "same_credentials"]
        assert len(sent_auth) <= 1 and all(not x.sent for x in skipped)
        assert len(sent_auth) + len(skipped) in (0, 2)  # a key that failed once is not sent again in the call
    assert 15 < a.calls + a2.calls <= 30  # the bad key was met in most calls, and sent once per call at most


async def test_cancelled_half_open_probe_frees_the_slot() -> None:
    """asyncio.wait_for cancels the probe: the breaker must let the next call probe, not stay stuck."""
    clock = FakeClock()
    target = ScriptedProvider("a", delay_s=10.0)
    balancer = WeightedBalancer([target], clock=clock,
                                breaker=BreakerSettings(consecutive_failures=1, cooldown_s=5))
    breaker = balancer.health[0].breaker
    breaker.record_failure(ServerError("down"))
    clock.now += 5
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(balancer.complete(REQ), timeout=0.05)
    assert breaker.state == "half_open" and breaker.available()
    target.delay_s = 0.0
    assert (await balancer.complete(REQ)).provider == "a"
    assert breaker.state == "closed"


async def test_chain_deadline_cancelling_a_probe_frees_the_slot() -> None:
    clock = FakeClock()
    target = ScriptedProvider("a", delay_s=10.0)
    balancer = WeightedBalancer([target], clock=clock,
                                breaker=BreakerSettings(consecutive_failures=1, cooldown_s=5))
    balancer.health[0].breaker.record_failure(ServerError("down"))
    clock.now += 5
    chain = FallbackChain([balancer], policy=fast_policy(deadline_s=0.05))
    with pytest.raises(AllTargetsFailed) as caught:
        await chain.complete(REQ)
    assert caught.value.kind is ErrorKind.TIMEOUT
    target.delay_s = 0.0
    assert (await chain.complete(REQ)).provider == "a"
