"""Monitor counters summed over replicas in a real redis-server: two monitors on two RedisState objects (two
replicas), background batches off the routing path, each count added exactly once, and Redis outages."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from evalkit import Attempt, ChatRequest, Cost, Usage
from evalkit.errors import StateUnavailableError
from evalkit.router import FallbackChain
from evalkit.router.monitor import Monitor
from evalkit.router.state import RedisState
from tests.redis_server import RedisServer

from .fakes import ScriptedProvider, fast_policy

REQ = ChatRequest.from_prompt("hello", max_tokens=10)
ZERO = Decimal(0)
FLUSH_S = 0.05


def served(target: str = "openai:gpt-4o", cost: str | None = "0.000000123", latency_ms: float = 800.0,
           depth: int = 0) -> Attempt:
    return Attempt(target=target, latency_ms=latency_ms, ttft_ms=120.0,
                   usage=Usage(input_tokens=100, cached_input_tokens=20, output_tokens=30, reasoning_tokens=5),
                   cost=None if cost is None else Cost(Decimal(cost), ZERO, ZERO, ZERO, ZERO, source="test"),
                   depth=depth)


def failed(target: str = "anthropic:claude", kind: str = "rate_limit") -> Attempt:
    return Attempt(target=target, error_kind=kind, error="slow down", latency_ms=40.0)


def skipped(target: str = "anthropic:claude", reason: str = "circuit_open") -> Attempt:
    return Attempt(target=target, error_kind=reason, sent=False)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    parser = pytest.importorskip("prometheus_client.parser")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


def added(*texts: str) -> dict[tuple[str, frozenset], float]:
    """The samples of several expositions, summed series by series (what PromQL's sum() over replicas gives)."""
    total: dict[tuple[str, frozenset], float] = {}
    for text in texts:
        for key, value in samples(text).items():
            total[key] = total.get(key, 0.0) + value
    return total


def replica(url: str, prefix: str, **state: Any) -> Monitor:
    """One replica's monitor: its own RedisState (its own connections), the fleet's prefix."""
    return Monitor(state=RedisState(url, prefix=prefix, **state), flush_interval_s=FLUSH_S)


async def close(*monitors: Monitor) -> None:
    for monitor in monitors:
        assert monitor.state is not None
        await monitor.state.aclose()


async def test_two_replicas_fleet_counters_are_the_sum_of_their_own(redis_server: Any, redis_prefix: str) -> None:
    a, b = replica(redis_server.url, redis_prefix), replica(redis_server.url, redis_prefix)
    a.record([failed(), served(depth=1)], REQ)
    a.record([skipped(), served(cost="0.000000001", latency_ms=3000.0)], REQ)
    a.breaker_opened("anthropic:claude")
    b.record([served("groq:llama", cost=None)], REQ)
    b.record([failed("openai:gpt-4o", "server"), served(cost="0.25")], REQ)
    b.breaker_opened("anthropic:claude")
    await a.flush()
    await b.flush()
    fleet = samples(a.to_prometheus(scope="fleet"))
    assert fleet == added(a.to_prometheus(), b.to_prometheus())  # every series, histograms included
    assert fleet == samples(b.to_prometheus(scope="fleet"))  # any replica renders the same totals
    totals = a.fleet_counters()
    gpt = totals["openai:gpt-4o"]
    assert (gpt.served, gpt.failed, gpt.fallbacks) == (3, 1, 1)
    assert gpt.attempts == {None: 3, "server": 1}
    assert gpt.cost_usd == Decimal("0.000000123") + Decimal("0.000000001") + Decimal("0.25")  # exact, not floats
    assert gpt.tokens == {"input": 300, "cached_input": 60, "cache_write": 0, "output": 90, "reasoning": 15}
    assert totals["anthropic:claude"].breaker_opens == 2
    assert totals["anthropic:claude"].attempts == {"rate_limit": 1, "circuit_open": 1}
    assert totals["groq:llama"].cost_usd is None  # unpriced stays unpriced, never $0
    await close(a, b)


async def test_counts_reach_redis_in_one_background_batch_without_anyone_waiting(
        redis_server: Any, redis_prefix: str) -> None:
    monitor = replica(redis_server.url, redis_prefix)
    for _ in range(200):  # record() is synchronous: no call waits on Redis
        monitor.record([served()], REQ)
        await asyncio.sleep(0)
    deadline = time.monotonic() + 5
    while _served(monitor) < 200 and time.monotonic() < deadline:
        await asyncio.sleep(FLUSH_S)
    assert _served(monitor) == 200
    client = monitor.state.sync_client()  # type: ignore[union-attr]
    [batch_key] = client.keys(f"{redis_prefix}:monitor:batch:*")
    assert client.get(batch_key) == b"1"  # 200 routed calls, one round trip
    await close(monitor)


async def test_a_batch_whose_answer_was_lost_is_not_counted_twice(tmp_path: Path, redis_prefix: str) -> None:
    """Redis too slow to answer in time (SIGSTOP) still runs the batch when it resumes; the retry must not add it
    again. Without the batch number in the script, the fleet said 11 for 6 calls."""
    server = RedisServer(tmp_path).start()
    try:
        monitor = replica(server.url, redis_prefix, timeout_ms=250, retry_interval_s=0.2)
        monitor.record([served()], REQ)
        await monitor.flush()  # Redis has the script now: a batch sent to the paused server will run on resume
        for _ in range(5):
            monitor.record([served()], REQ)
        server.pause()
        with pytest.raises(StateUnavailableError):
            await monitor.flush()  # sent, unanswered: the batch is kept
        server.resume()
        await asyncio.sleep(0.3)  # the paused server has run the batch by now; retry_interval_s has passed
        assert monitor.fleet_counters()["openai:gpt-4o"].served == 6  # it did run
        await monitor.flush()  # the same batch again, with the same number
        assert monitor.fleet_counters()["openai:gpt-4o"].served == 6
        monitor.record([served()], REQ)
        await monitor.flush()
        assert monitor.fleet_counters()["openai:gpt-4o"].served == 7
        await close(monitor)
    finally:
        server.kill()


async def test_redis_down_local_counts_go_on_and_the_fleet_catches_up_after_a_restart(
        tmp_path: Path, redis_prefix: str) -> None:
    server = RedisServer(tmp_path).start()
    try:
        monitor = replica(server.url, redis_prefix, timeout_ms=250, retry_interval_s=0.2)
        monitor.record([served()] * 3, REQ)
        await monitor.flush()
        server.kill()  # a crash: Redis loses everything it held (no persistence)
        for _ in range(4):
            monitor.record([served()], REQ)  # routing goes on; nothing raises
            await asyncio.sleep(FLUSH_S)
        local = samples(monitor.to_prometheus())
        assert local[("evalkit_requests_total", _labels(outcome="success"))] == 7
        with pytest.raises(StateUnavailableError):
            monitor.fleet_counters()  # a scrape of the fleet fails rather than show partial totals
        server.start()
        await asyncio.sleep(0.25)  # past retry_interval_s: the next record tries Redis again
        monitor.record([served()], REQ)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await asyncio.sleep(FLUSH_S)
            try:
                if monitor.fleet_counters():
                    break
            except StateUnavailableError:
                continue
        # The 3 acknowledged before the crash died with Redis's memory; the 4 counted while it was down were kept
        # and added, with the one after: nothing the replica had not yet delivered is lost.
        assert monitor.fleet_counters()["openai:gpt-4o"].served == 5
        await close(monitor)
    finally:
        server.kill()


async def test_a_reset_keeps_what_the_fleet_was_given_even_with_a_batch_in_flight(
        tmp_path: Path, redis_prefix: str) -> None:
    server = RedisServer(tmp_path).start()
    try:
        monitor = replica(server.url, redis_prefix, timeout_ms=250, retry_interval_s=0.2)
        monitor.record([served()] * 3, REQ)
        server.pause()
        with pytest.raises(StateUnavailableError):
            await monitor.flush()  # a batch of 3, unanswered
        monitor.reset()  # the local counters start again at zero
        monitor.record([served()] * 2, REQ)
        server.resume()
        await asyncio.sleep(0.3)
        await monitor.flush()
        assert monitor.fleet_counters()["openai:gpt-4o"].served == 5  # never 3 + (2 - 3)
        assert samples(monitor.to_prometheus())[("evalkit_requests_total", _labels(outcome="success"))] == 2
        await close(monitor)
    finally:
        server.kill()


async def test_a_router_feeds_the_fleet_view_of_its_monitor(redis_server: Any, redis_prefix: str) -> None:
    monitors = [replica(redis_server.url, redis_prefix) for _ in range(2)]
    for monitor in monitors:
        chain = FallbackChain([ScriptedProvider("a:one", ["server"]), ScriptedProvider("b:two")],
                              policy=fast_policy(retries_per_target=0), monitor=monitor)
        await chain.complete(REQ)
        await monitor.state.flush()  # type: ignore[union-attr]  # the background batch, as at shutdown
    totals = monitors[0].fleet_counters()
    assert (totals["a:one"].failed, totals["b:two"].served, totals["b:two"].fallbacks) == (2, 2, 2)
    await close(*monitors)


def test_a_monitor_without_state_has_no_fleet_view() -> None:
    monitor = Monitor()
    with pytest.raises(ValueError, match="no state"):
        monitor.to_prometheus(scope="fleet")
    with pytest.raises(ValueError, match="scope must be"):
        monitor.to_prometheus(scope="cluster")  # type: ignore[arg-type]


def _served(monitor: Monitor, target: str = "openai:gpt-4o") -> int:
    totals = monitor.fleet_counters().get(target)
    return 0 if totals is None else totals.served


def _labels(target: str = "openai:gpt-4o", **extra: str) -> frozenset:
    provider, _, model = target.partition(":")
    return frozenset({"target": target, "provider": provider, "model": model, **extra}.items())
