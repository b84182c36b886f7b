"""Circuit breakers shared by replicas through a real Redis (evalkit/router/_shared_breaker.py).

Each "replica" is its own RedisState (its own connections, subscription and
replica id) with its own router and its own fake providers bearing the same
target names, all in one process; the multi-process tests are in
test_shared_state_processes.py. Times shared between replicas are measured by
Redis, so these tests use the real clock with short cooldowns.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

import evalkit
from evalkit.errors import ServerError
from evalkit.router import BreakerSettings, FallbackChain, WeightedBalancer
from evalkit.router.monitor import Monitor
from evalkit.router.state import RedisState
from tests.redis_server import RedisServer

from .fakes import ScriptedProvider, fast_policy

pytest.importorskip("redis")

REQ = evalkit.ChatRequest.from_prompt("hello", max_tokens=10)


class Replica:
    """One app replica: a state, a router over ``primary`` and ``backup``, and its own fake providers."""

    def __init__(self, url: str, prefix: str, kind: str = "fallback", *, cooldown_s: float = 0.3,
                 primary: str = "server", primary_delay_s: float = 0.0, monitor: Monitor | None = None,
                 **state_options) -> None:
        self.state = RedisState(url, prefix=prefix, **state_options)
        self.primary = ScriptedProvider("primary", default=primary, delay_s=primary_delay_s)
        self.backup = ScriptedProvider("backup")
        settings = BreakerSettings(consecutive_failures=2, cooldown_s=cooldown_s)
        if kind == "fallback":
            self.router = FallbackChain([self.primary, self.backup], policy=fast_policy(retries_per_target=0),
                                        breaker=settings, state=self.state, monitor=monitor)
            self.breaker = self.router.breakers[0]
        else:
            self.router = WeightedBalancer([self.primary, self.backup], weights=[1, 1e-9], seed=1,
                                           breaker=settings, state=self.state, monitor=monitor)
            self.breaker = self.router.health[0].breaker

    async def call(self) -> evalkit.ChatResponse:
        return await self.router.complete(REQ)


@pytest.fixture
async def replicas(redis_server, redis_prefix):
    """``make(**options)`` builds a replica on the session Redis; every state is closed after the test."""
    made: list[Replica] = []

    def make(url: str | None = None, **options) -> Replica:
        replica = Replica(url or redis_server.url, redis_prefix, **options)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        await replica.state.aclose()


async def eventually(check, what: str, timeout_s: float = 3.0) -> None:
    """Wait for a message between replicas to arrive (pub/sub delivery is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.001)


async def listening(group: list[Replica]) -> None:
    """Wait until every replica of ``group`` is subscribed (they subscribe in the background, on a first call)."""
    state = group[0].state
    channel = state.key("breaker")

    def subscribers() -> int:
        return dict(state.sync_client().pubsub_numsub(channel)).get(channel.encode(), 0)

    await eventually(lambda: subscribers() >= len(group), "every replica subscribed")


async def open_on(replica: Replica) -> None:
    """Two failed calls open ``replica``'s primary; its write and publish are awaited (flushed)."""
    for _ in range(2):
        assert (await replica.call()).provider == "backup"
    assert replica.breaker.state == "open"
    await replica.state.flush()


@pytest.mark.parametrize("kind", ["fallback", "balance"])
async def test_a_circuit_opened_by_one_replica_is_respected_by_another_on_its_next_call(replicas, kind) -> None:
    a, b = replicas(kind=kind), replicas(kind=kind, primary="ok")
    assert (await b.call()).provider == "primary"  # b is up, its primary healthy from where it is
    await listening([b])
    await open_on(a)
    # A's opening is published by the time flush returns; b applies it when the message arrives (sub-ms here).
    await eventually(lambda: b.breaker.state == "open", "b hears that a opened primary")
    sent = b.primary.calls
    for _ in range(5):
        response = await b.call()
        assert response.provider == "backup"
        if kind == "fallback":
            assert (response.attempts[0].target, response.attempts[0].error_kind) == ("primary", "circuit_open")
            assert not response.attempts[0].sent
    assert b.primary.calls == sent, "nothing is sent to a target another replica found down"


async def test_a_replica_started_after_the_opening_skips_the_target_from_its_first_call(replicas) -> None:
    a = replicas()
    await open_on(a)
    late = replicas(primary="ok")  # started now: it never heard the message, it reads the state
    response = await late.call()
    assert [(x.target, x.error_kind, x.sent) for x in response.attempts] == [
        ("primary", "circuit_open", False), ("backup", None, True)]
    assert late.primary.calls == 0


async def test_a_vendor_retry_after_opens_the_circuit_for_that_long_for_every_replica(replicas) -> None:
    a = replicas(cooldown_s=30.0)
    b = replicas(cooldown_s=30.0, primary="ok")
    await b.call()
    await listening([b])
    a.primary.script.append("rate_limit")
    a.primary.retry_after = 0.4
    assert (await a.call()).provider == "backup"  # one 429 with Retry-After: 0.4 opens it (not 5 failures)
    await a.state.flush()
    await eventually(lambda: b.breaker.state == "open", "b hears of the 429")
    assert (await b.call()).provider == "backup" and b.primary.calls == 1
    await asyncio.sleep(0.45)
    assert (await b.call()).provider == "primary", "after Retry-After (not the 30 s cooldown), b probes"
    await b.state.flush()
    await eventually(lambda: a.breaker.state == "closed", "a hears that b's probe closed it")


async def opened_and_cooled(replicas, n: int, **options) -> list[Replica]:
    """``n`` listening replicas whose primary was opened by the first; the cooldown (0.3 s) is over."""
    group = [replicas(**options) for _ in range(n)]
    for replica in group[1:]:
        replica.primary.script.append("ok")
        await replica.call()
    await listening(group[1:])
    await open_on(group[0])
    await eventually(lambda: all(r.breaker.state == "open" for r in group), "every replica hears the opening")
    await asyncio.sleep(0.35)
    return group


async def race(group: list[Replica], calls_each: int = 4) -> list[evalkit.ChatResponse]:
    return await asyncio.gather(*(r.call() for r in group for _ in range(calls_each)))


@pytest.mark.parametrize("kind", ["fallback", "balance"])
async def test_five_replicas_racing_after_the_cooldown_send_one_probe_and_its_success_closes_for_all(
        replicas, kind) -> None:
    group = await opened_and_cooled(replicas, 5, kind=kind, primary_delay_s=0.05)
    for replica in group:
        replica.primary.default = "ok"  # the vendor is back
    before = sum(r.primary.calls for r in group)
    responses = await race(group)  # 20 calls at once, from 5 replicas
    assert sum(r.primary.calls for r in group) - before == 1, "exactly one probe across the replicas"
    assert sorted(r.provider for r in responses).count("primary") == 1
    for replica in group:
        await replica.state.flush()
    await eventually(lambda: all(r.breaker.state == "closed" for r in group), "every replica hears the close")
    for replica in group:
        assert (await replica.call()).provider == "primary"


async def test_a_failed_probe_reopens_the_circuit_for_every_replica(replicas) -> None:
    group = await opened_and_cooled(replicas, 3, primary_delay_s=0.05)
    before = sum(r.primary.calls for r in group)
    await race(group)
    assert sum(r.primary.calls for r in group) - before == 1, "one probe, which fails"
    for replica in group:
        await replica.state.flush()
    # Had the failed probe only given its slot back, the next race would send another probe at once.
    await race(group)
    assert sum(r.primary.calls for r in group) - before == 1, "no second probe within the new cooldown"
    await asyncio.sleep(0.35)
    await race(group)
    assert sum(r.primary.calls for r in group) - before == 2, "one probe per cooldown"


async def test_a_replica_that_dies_holding_the_probe_blocks_the_others_for_one_lease_not_forever(
        replicas) -> None:
    dying, other = await opened_and_cooled(replicas, 2)
    assert await dying.breaker.acquire_async(), "dying takes the probe"
    await dying.state.aclose()  # and is gone without a verdict (no release)
    other.primary.default = "ok"
    assert (await other.call()).provider == "backup"
    assert other.primary.calls == 1, "the probe is held: nothing sent"  # (1: its warm-up call)
    await asyncio.sleep(0.32)  # the probe's lease (one cooldown) runs out
    assert (await other.call()).provider == "primary" and other.primary.calls == 2
    assert other.breaker.state == "closed"


async def test_a_cancelled_probe_is_given_back_to_every_replica_at_once(replicas) -> None:
    slow, other = await opened_and_cooled(replicas, 2, cooldown_s=0.3)
    slow.primary.default, slow.primary.delay_s = "ok", 10.0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow.call(), timeout=0.05)  # took the probe, then was cancelled
    await slow.state.flush()  # the probe is given back in the background
    other.primary.default = "ok"
    assert (await other.call()).provider == "primary", "the next replica probes now, not a lease later"
    assert other.breaker.state == "closed"


async def test_an_opening_is_counted_once_on_the_replica_that_made_it(replicas) -> None:
    monitors = [Monitor() for _ in range(3)]
    a, b, c = (replicas(monitor=m, primary="ok") for m in monitors)
    for replica in (a, b, c):
        await replica.call()
    await listening([a, b, c])
    # a and b trip their own counters in the same instant, neither having heard of the other's opening.
    for breaker in (a.breaker, b.breaker):
        breaker.record_failure(ServerError("down"))
        breaker.record_failure(ServerError("down"))
    await asyncio.gather(a.state.flush(), b.state.flush())
    await eventually(lambda: c.breaker.state == "open", "c hears the opening")
    assert sorted([a.breaker.opens, b.breaker.opens, c.breaker.opens]) == [0, 0, 1]
    assert sorted(_opens(m) for m in monitors) == [0, 0, 1], "one opening in the fleet, counted once"


def _opens(monitor: Monitor) -> int:
    found = re.search(r'evalkit_circuit_breaker_opens_total\{target="primary"\} (\d+)', monitor.to_prometheus())
    return int(found.group(1)) if found else 0


async def test_a_closed_circuit_costs_no_redis_round_trip(tmp_path, redis_prefix) -> None:
    server = RedisServer(tmp_path).start()
    state = RedisState(server.url, prefix=redis_prefix)
    try:
        primary = ScriptedProvider("primary")
        chain = FallbackChain([primary, ScriptedProvider("backup")], state=state)
        await chain.complete(REQ)  # the first call reads the shared state once
        await asyncio.sleep(0.05)  # and the listener subscribes
        before = _commands(state)
        for _ in range(100):
            assert (await chain.complete(REQ)).provider == "primary"
        assert _commands(state) == before, "closed: the calls read this replica's mirror only"
    finally:
        await state.aclose()
        server.kill()


def _commands(state: RedisState) -> dict[str, int]:
    """Commands Redis has run, by name (INFO itself left out)."""
    stats = state.sync_client().info("commandstats")
    return {name: v["calls"] for name, v in stats.items() if name != "cmdstat_info"}


async def test_breakers_work_locally_while_redis_is_down_and_are_shared_again_once_it_is_back(
        tmp_path, redis_prefix, replicas) -> None:
    server = RedisServer(tmp_path).start()
    try:
        a = replicas(server.url, cooldown_s=3.0, retry_interval_s=0.1)
        b = replicas(server.url, cooldown_s=3.0, retry_interval_s=0.1, primary="ok")
        a.primary.script.append("ok")
        await a.call()
        await b.call()
        server.kill()
        for _ in range(5):  # a's primary fails: its breaker opens on a's own state, no error escapes
            assert (await a.call()).provider == "backup"
        assert a.breaker.state == "open" and a.primary.calls == 3, "2 failures open it; later calls skip it"
        await a.state.flush()  # its write finds Redis down (and waits to be run again)
        assert a.breaker.opens == 1, "an opening while Redis is down is counted by its replica"
        assert (await b.call()).provider == "primary", "b cannot know: its own state says closed"
        server.start()  # same port, empty: nothing survived
        # a writes what it learned meanwhile; b reads the shared state again. Neither was rebuilt.
        await eventually(lambda: b.breaker.state == "open", "b learns a's opening after Redis restarts")
        sent = b.primary.calls
        assert (await b.call()).provider == "backup" and b.primary.calls == sent
        await a.state.flush()
        assert a.breaker.opens == 1, "the opening written after the outage is not counted twice"
    finally:
        server.kill()


async def test_a_probe_that_finds_redis_paused_waits_one_timeout_then_probes_locally(
        tmp_path, redis_prefix, replicas) -> None:
    server = RedisServer(tmp_path).start()
    try:
        a = replicas(server.url, cooldown_s=0.2, timeout_ms=50.0)
        await open_on(a)
        await asyncio.sleep(0.25)
        a.primary.default = "ok"
        server.pause()
        started = time.perf_counter()
        assert (await a.call()).provider == "primary", "the probe is sent on a's own say"
        assert time.perf_counter() - started < 1.0, "bounded by the state's timeout, not stuck"
        assert a.breaker.state == "closed"
        server.resume()
    finally:
        server.kill()


async def test_a_replica_started_while_redis_is_down_routes_on_its_own_breakers(tmp_path, replicas) -> None:
    nowhere = RedisServer(tmp_path)  # a free port, no server
    a = replicas(nowhere.url, retry_interval_s=60.0)
    for _ in range(5):
        assert (await a.call()).provider == "backup"  # its first look finds Redis refused: no error
    assert a.breaker.state == "open" and a.primary.calls == 2, "opened on its own state, as without Redis"
    assert a.state.failures >= 1


async def test_a_cancelled_call_that_was_not_the_probe_does_not_give_the_probe_away() -> None:
    """A chain gave the half-open probe back when any call was cancelled: a second probe could start."""
    now = [1000.0]
    target = ScriptedProvider("primary", delay_s=10.0)
    chain = FallbackChain([target, ScriptedProvider("backup")], policy=fast_policy(retries_per_target=0),
                          breaker=BreakerSettings(consecutive_failures=1, cooldown_s=5), clock=lambda: now[0])
    early = asyncio.create_task(chain.complete(REQ))  # sent while closed; still in flight below
    await asyncio.sleep(0)
    chain.breakers[0].record_failure(ServerError("down"))  # another call saw the target fail: open
    now[0] += 5
    probe = asyncio.create_task(chain.complete(REQ))  # the half-open probe, in flight
    await asyncio.sleep(0)
    early.cancel()
    await asyncio.gather(early, return_exceptions=True)
    target.delay_s = 0.0
    assert (await chain.complete(REQ)).provider == "backup", "the probe is still out: this call skips"
    assert target.calls == 2 and target.max_in_flight == 2  # the early call and the one probe, no second
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
