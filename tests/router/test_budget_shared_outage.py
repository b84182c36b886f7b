"""A shared BudgetLedger when Redis fails (issue 16, item 2): fail closed, nothing sent, recovery.

Redis refused, killed, paused (slower than ``timeout_ms``) or out of memory: the reservation
raises ``StateUnavailableError`` and the router sends nothing and records a ``state_unavailable``
attempt, unless ``fail_open=True``; when Redis is back the same ledger works again, and
nothing held or spent during the outage is lost. Each test has its own ``redis-server``.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from evalkit import ChatRequest
from evalkit.errors import BudgetExceeded, ErrorKind, StateUnavailableError
from evalkit.router.cost import CostAwareRouter
from evalkit.router.state import RedisState
from tests.redis_server import RedisServer

from .test_budget_shared import settled, shared
from .test_cost import MeteredProvider, RecordingMonitor

D = Decimal
REQ = ChatRequest.from_prompt("hello", max_tokens=100)


@pytest.fixture
def own_server(tmp_path):
    """A redis-server this test may pause, kill and restart (never the session's)."""
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
async def replica(own_server, redis_prefix):
    """``replica(**options)``: a new RedisState (one replica) on this test's own server."""
    made: list[RedisState] = []

    def make(**options) -> RedisState:
        options.setdefault("timeout_ms", 2000)  # generous unless the test is about timeouts
        state = RedisState(own_server.url, prefix=redis_prefix, **options)
        made.append(state)
        return state

    yield make
    for state in made:
        await state.aclose()


async def test_redis_down_fails_closed_sends_nothing_and_reports_the_attempt(own_server, replica) -> None:
    state = replica(retry_interval_s=30)
    provider = MeteredProvider("p")
    monitor = RecordingMonitor()
    router = CostAwareRouter([(provider, 1.0), (MeteredProvider("q", "3", "4"), 0.5)],
                             ledger=shared(state, "1"), monitor=monitor)
    await router.complete(REQ)
    own_server.kill()
    with pytest.raises(StateUnavailableError) as caught:
        await router.complete(REQ)
    err = caught.value
    assert err.kind is ErrorKind.STATE_UNAVAILABLE and err.retryable and err.retry_after > 0
    assert provider.calls == 1, "nothing was sent while the budget could not be checked"
    assert [(a.target, a.error_kind, a.sent) for a in err.attempts] == [("p", "state_unavailable", False)]
    assert [a.error_kind for a in monitor.calls[-1][0]] == ["state_unavailable"]
    started = time.perf_counter()
    with pytest.raises(StateUnavailableError):  # marked down: refused at once, no network wait
        await router.complete(REQ)
    assert time.perf_counter() - started < 0.05


async def test_a_redis_slower_than_the_timeout_fails_closed_within_it(own_server, replica) -> None:
    state = replica(timeout_ms=50)
    ledger = shared(state, "1")
    (await ledger.areserve("x", D("0.1"))).settle(D("0.1"))
    await state.flush()
    own_server.pause()
    try:
        started = time.perf_counter()
        with pytest.raises(StateUnavailableError):
            await ledger.areserve("x", D("0.2"))
        assert time.perf_counter() - started < 0.5
    finally:
        own_server.resume()


async def test_a_redis_that_refuses_writes_fails_closed_with_the_typed_error(own_server, replica) -> None:
    state = replica()
    provider = MeteredProvider("p")
    router = CostAwareRouter([(provider, 1.0)], ledger=shared(state, "1"))
    state.read(lambda client: client.config_set("maxmemory", "1"))  # out of memory: every write is refused
    with pytest.raises(StateUnavailableError, match="OutOfMemoryError") as caught:
        await router.complete(REQ)
    assert provider.calls == 0 and caught.value.attempts[0].error_kind == "state_unavailable"
    state.read(lambda client: client.config_set("maxmemory", "0"))
    await router.complete(REQ)
    assert provider.calls == 1


async def test_a_reservation_that_timed_out_is_given_back_when_redis_answers(own_server, replica) -> None:
    state = replica(timeout_ms=50, retry_interval_s=0.05)
    ledger = shared(state, "1")
    await ledger.areserve("x", D("0.1"))  # connected, scripts loaded
    own_server.pause()
    with pytest.raises(StateUnavailableError):
        await ledger.areserve("x", D("0.7"))  # the script waits in the server's socket
    own_server.resume()
    await asyncio.sleep(0.1)
    assert ledger.reserved == D("0.8"), "the script ran once the server woke up: its hold is orphaned"
    await ledger.areserve("x", D("0"))  # Redis answers again: the queued release runs
    snap = await settled(state, ledger)
    assert snap["reserved"] == D("0.1") and snap["open_reservations"] == 2


async def test_recovery_after_a_restart_without_recreating_the_ledger(own_server, replica) -> None:
    state = replica(retry_interval_s=0.05)
    ledger = shared(state, "1")
    (await ledger.areserve("x", D("0.7"))).settle(D("0.7"))
    in_flight = await ledger.areserve("x", D("0.2"))
    await state.flush()
    own_server.kill()
    in_flight.settle(D("0.1"))  # Redis is down: re-run once it is back
    with pytest.raises(StateUnavailableError):
        await ledger.areserve("x", D("0.05"))
    own_server.start()  # empty: no persistence, as after a crash
    await asyncio.sleep(0.1)
    with pytest.raises(BudgetExceeded):  # this replica restored what it had seen: the cap still holds
        await ledger.areserve("x", D("0.2"))
    await ledger.areserve("x", D("0.01"))
    snap = await settled(state, ledger)
    # 0.9 seen before the crash, restored as spent, plus the in-flight call's 0.1 settled after it:
    # over-counted by the call's share, never under-counted.
    assert snap["spent"] >= D("0.8") and snap["restored"] == D("0.9") and snap["spent"] == D("1.0")


async def test_fail_open_holds_against_local_caps_and_adds_its_spend_when_redis_is_back(own_server,
                                                                                         replica) -> None:
    state = replica(fail_open=True, retry_interval_s=0.05)
    other = replica()
    ledger = shared(state, "1")
    await ledger.areserve("x", D("0"))
    own_server.kill()
    local = await ledger.areserve("x", D("0.6"))  # Redis is down: held by this replica alone
    with pytest.raises(BudgetExceeded):
        await ledger.areserve("x", D("0.5"))  # one replica alone never passes the cap
    local.settle(D("0.4"))
    assert ledger._shared.local_reservations == 1
    own_server.start()
    await asyncio.sleep(0.1)
    await ledger.areserve("x", D("0.1"))  # Redis answers: the local spend is added to the shared ledger
    await state.flush()
    snap = shared(other, "1").snapshot()
    assert (snap["spent"], snap["reserved"]) == (D("0.4"), D("0.1"))
