"""A BudgetLedger shared by replicas through Redis (issue 16): one cap, whatever the replica count.

Eight replicas each holding ``BudgetLedger("100")`` in memory may spend $800; with
``state=RedisState(...)`` they hold against one ledger in Redis, reserve with one atomic
script, and fail closed (nothing sent) when Redis does not answer. Each ``RedisState`` is
a replica here: its own connections and its own replica id.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from evalkit import ChatRequest
from evalkit.errors import BudgetExceeded
from evalkit.router.budget import BudgetLedger
from evalkit.router.cost import CostAwareRouter
from evalkit.router.state import RedisState

from .test_budget import FakeClock
from .test_cost import MeteredProvider

D = Decimal
REQ = ChatRequest.from_prompt("hello", max_tokens=100)


@pytest.fixture
async def replica(redis_server, redis_prefix):
    """``replica(**options)``: a new RedisState (one replica) on the session server, closed after the test."""
    made: list[RedisState] = []

    def make(**options) -> RedisState:
        # Generous unless a test is about timeouts: a burst of first calls opens many connections at
        # once, which on a loaded 2-core machine can take longer than the default 50 ms.
        options.setdefault("timeout_ms", 2000)
        state = RedisState(redis_server.url, prefix=redis_prefix, **options)
        made.append(state)
        return state

    yield make
    for state in made:
        await state.aclose()


def shared(state: RedisState, limit: str = "1", **options) -> BudgetLedger:
    return BudgetLedger(limit, state=state, **options)


async def settled(state: RedisState, ledger: BudgetLedger) -> dict:
    """The ledger's snapshot once every background settle has landed."""
    await state.flush()
    return ledger.snapshot()


# -- one ledger for every replica ------------------------------------------------------------------


async def test_two_replicas_hold_against_one_cap(replica) -> None:
    a, b = shared(replica(), "1"), shared(replica(), "1")
    held = await a.areserve("x", D("0.6"))
    with pytest.raises(BudgetExceeded) as caught:
        await b.areserve("x", D("0.5"))  # in memory, b would have its own $1
    assert (caught.value.spent, caught.value.reserved, caught.value.scope) == (D(0), D("0.6"), "shared")
    held.settle(D("0.2"))
    assert held.state == "settled"
    with pytest.raises(BudgetExceeded):  # until the settle lands, the hold still covers its worst case
        await b.areserve("x", D("0.8"))
    await a._shared.state.flush()
    await b.areserve("x", D("0.8"))
    snap = await settled(a._shared.state, a)
    assert (snap["spent"], snap["reserved"], snap["open_reservations"], snap["refused"]) == (D("0.2"), D("0.8"), 1, 2)
    assert snap["backend"] == "redis" and b.snapshot()["spent"] == D("0.2")


async def test_ledgers_with_different_names_do_not_share(replica) -> None:
    state = replica()
    await shared(state, "1", name="team-a").areserve("x", D("1"))
    await shared(state, "1", name="team-b").areserve("x", D("1"))


async def test_many_concurrent_reservations_from_two_replicas_never_pass_the_cap(replica) -> None:
    ledgers = [shared(replica(), "0.5"), shared(replica(), "0.5")]

    async def one(i: int) -> bool:
        try:
            reservation = await ledgers[i % 2].areserve("x", D("0.01"))
        except BudgetExceeded:
            return False
        await asyncio.sleep(0)
        reservation.settle(D("0.01"))
        return True

    served = await asyncio.gather(*(one(i) for i in range(200)))
    await ledgers[1]._shared.state.flush()  # the other replica's settles too
    snap = await settled(ledgers[0]._shared.state, ledgers[0])
    assert sum(served) == 50 and snap["spent"] == D("0.5") and snap["reserved"] == 0
    assert snap["refused"] == 150 and snap["open_reservations"] == 0


async def test_refusals_say_what_the_memory_ledger_says(replica) -> None:
    clock = FakeClock()
    options = {"per_target": {"b": "0.3"}, "max_share_of_remaining": "0.5", "clock": clock}
    memory, redis = BudgetLedger("1", **options), shared(replica(), "1", **options)
    for target, amount in (("a", "0.2"), ("b", "0.31"), ("b", "0.2"), ("a", "0.5"), ("a", "0.9")):
        outcomes = []
        for ledger in (memory, redis):
            try:
                outcomes.append(await ledger.areserve(target, D(amount)))
            except BudgetExceeded as exc:
                outcomes.append((exc.message, exc.scope, exc.cap, exc.spent, exc.reserved, exc.requested,
                                 exc.period, exc.target, exc.kind))
        if isinstance(outcomes[0], tuple):
            assert outcomes[0] == outcomes[1]
        else:
            assert not isinstance(outcomes[1], tuple), f"{target} {amount} accepted in memory only"
    assert redis.snapshot()["refused"] == memory.snapshot()["refused"] == 4


async def test_per_target_caps_and_the_share_rule_hold_across_replicas(replica) -> None:
    options = {"per_target": {"pricey": "0.1"}, "max_share_of_remaining": "0.5"}
    a, b = shared(replica(), "1", **options), shared(replica(), "1", **options)
    await a.areserve("pricey", D("0.05"))  # half of the target's $0.1: the most one call may hold
    with pytest.raises(BudgetExceeded) as caught:
        await b.areserve("pricey", D("0.06"))
    assert caught.value.scope == "target" and "day cap for pricey $0.1" in caught.value.message
    with pytest.raises(BudgetExceeded) as caught:
        await b.areserve("pricey", D("0.03"))  # fits the cap, but more than half of the $0.05 left
    assert caught.value.scope == "share" and "of the $0.05 left of the day cap for pricey" in caught.value.message
    await b.areserve("cheap", D("0.4"))  # 0.4 <= 0.5 x (1 - 0.05)
    with pytest.raises(BudgetExceeded) as caught:
        await a.areserve("cheap", D("0.3"))  # 0.3 > 0.5 x 0.55 left
    assert caught.value.scope == "share" and "max_share_of_remaining=0.5 of the $0.55 left" in caught.value.message
    snap = b.snapshot()
    assert snap["targets"]["pricey"] == {"cap": D("0.1"), "spent": D(0), "reserved": D("0.05")}
    assert snap["refused"] == 3


async def test_amounts_round_up_to_the_nano_dollar_and_never_undercount(replica) -> None:
    state = replica()
    ledger = shared(state, "1", period="total")
    reservation = await ledger.areserve("x", D("0.0000000001"))  # a tenth of a nano-dollar
    assert ledger.reserved == D("0.000000001")
    reservation.settle(D("0.0000000004"))
    snap = await settled(state, ledger)
    assert snap["spent"] == D("0.000000001") and snap["reserved"] == 0
    assert isinstance(snap["spent"], Decimal) and isinstance(snap["remaining"], Decimal)


async def test_the_cap_is_exact_to_the_nano_dollar(replica) -> None:
    ledger = shared(replica(), "1")
    await ledger.areserve("x", D("0.6"))
    await ledger.areserve("x", D("0.4"))  # exactly reaching the cap is allowed
    with pytest.raises(BudgetExceeded):
        await ledger.areserve("x", D("0.000000001"))
    await ledger.areserve("x", D("0"))
    assert ledger.remaining == 0


def test_a_cap_lua_cannot_compare_exactly_is_refused_at_construction(redis_server, redis_prefix) -> None:
    state = RedisState(redis_server.url, prefix=redis_prefix)
    BudgetLedger("9007199.254740991", state=state)  # 2**53 - 1 nano-dollars: exact
    with pytest.raises(ValueError, match="too large for a shared ledger"):
        BudgetLedger("9007199.254740992", state=state)
    with pytest.raises(ValueError, match="per_target"):
        BudgetLedger("1", per_target={"x": "1e7"}, state=state)
    BudgetLedger("1e12")  # in memory there is no such bound


async def test_a_shared_ledger_refuses_a_blocking_reserve_and_a_memory_one_awaits(replica) -> None:
    with pytest.raises(TypeError, match="areserve"):
        shared(replica()).reserve("x", D("0.1"))
    memory = BudgetLedger("1")
    reservation = await memory.areserve("x", D("0.4"))
    assert memory.reserved == D("0.4") and reservation.settle(D("0.1")) == D("0.1") and memory.spent == D("0.1")


@pytest.mark.parametrize(("limit", "share", "amount"), [
    ("0.000000003", "0.3", "0.000000001"),  # 1 > 0.3 x 3: refused, by a hair
    ("0.000000002", "0.5", "0.000000001"),  # 1 = 0.5 x 2: allowed
    ("0.000000010", "0.1", "0.000000001"),
    ("0.000000009", "0.1", "0.000000001"),
    ("7", "0.07", "0.49"),
    ("7", "0.07", "0.490000001"),
])
async def test_the_share_rule_is_exact_to_the_nano_dollar(replica, limit, share, amount) -> None:
    outcomes = []
    for ledger in (BudgetLedger(limit, max_share_of_remaining=share),
                   shared(replica(), limit, max_share_of_remaining=share)):
        try:
            await ledger.areserve("x", D(amount))
            outcomes.append("held")
        except BudgetExceeded as exc:
            outcomes.append(exc.message)
    assert outcomes[0] == outcomes[1]


# -- periods -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("period", "at", "expected_s"), [
    ("day", "2024-05-01T12:00:00", 12 * 3600 + 86400),  # half a day left, then one more day for reading
    ("hour", "2024-05-01T12:45:00", 15 * 60 + 3600),
    ("month", "2024-02-29T00:00:00", 86400 + 29 * 86400),
])
async def test_a_period_key_expires_one_period_after_the_period_ends(replica, period, at, expected_s) -> None:
    state = replica()
    ledger = shared(state, "1", period=period, clock=FakeClock(at))
    (await ledger.areserve("x", D("0.1"))).settle(D("0.1"))
    await state.flush()
    totals, _, closed = ledger._shared._keys  # no hold is open: its zset is gone
    ttls = state.read(lambda client: [client.pttl(key) for key in (totals, closed)])
    assert all(expected_s * 1000 - 5000 < ttl <= expected_s * 1000 for ttl in ttls), ttls


async def test_the_total_period_never_expires(replica) -> None:
    state = replica()
    ledger = shared(state, "1", period="total")
    (await ledger.areserve("x", D("0.1"))).settle(D("0.1"))
    await state.flush()
    assert state.read(lambda client: client.pttl(ledger._shared._keys[0])) == -1


async def test_a_reservation_settles_into_its_own_period_after_the_day_rolls_over(replica) -> None:
    clock = FakeClock("2024-05-01T23:59:00")
    state = replica()
    ledger = shared(state, "1", clock=clock)
    late = await ledger.areserve("x", D("0.9"))
    clock.advance(120)
    fresh = await ledger.areserve("x", D("1"))
    late.settle(D("0.9"))
    snap = await settled(state, ledger)
    assert snap["period_label"] == "2024-05-02 UTC" and (snap["spent"], snap["reserved"]) == (D(0), D(1))
    assert fresh.period == "2024-05-02 UTC"
    yesterday = state.read(lambda client: client.hget(state.key("budget", "budget", "2024-05-01 UTC"), "spent"))
    assert yesterday == b"900000000"


# -- settle and release: background, idempotent ------------------------------------------------------


async def test_settle_and_release_run_in_the_background_and_are_idempotent(replica, monkeypatch) -> None:
    state = replica()
    ledger = shared(state, "1")
    ops = []
    monkeypatch.setattr(state, "defer", lambda *call: ops.append(call))  # capture them, to run each one twice
    one, two, three = [await ledger.areserve("x", D("0.3")) for _ in range(3)]
    assert one.settle(D("0.25")) == D("0.25") and one.state == "settled"  # at once, no round trip
    two.release()
    three.release()
    three.settle(D("0.05"))  # a cost reported after a release still counts
    assert len(ops) == 4 and ledger.reserved == D("0.9"), "until a settle lands, its hold covers the worst case"
    for script, keys, args in ops + ops:  # as a re-run after a lost reply would
        await state.run(script, keys, args)
    snap = ledger.snapshot()
    assert (snap["spent"], snap["reserved"], snap["open_reservations"]) == (D("0.3"), D(0), 0)
    assert (snap["overrun"], snap["overruns"]) == (D("0.05"), 1)


async def test_a_hold_whose_replica_died_is_swept_into_spent(replica) -> None:
    dead, alive = replica(), replica()
    doomed = await shared(dead, "1", hold_ttl_s=0.05).areserve("x", D("0.6"))
    await asyncio.sleep(0.1)  # the replica never settles: it died mid-call
    ledger = shared(alive, "1", hold_ttl_s=0.05)
    await ledger.areserve("x", D("0.1"))  # the next reservation sweeps the expired hold
    snap = ledger.snapshot()
    assert (snap["spent"], snap["reserved"], snap["expired"], snap["open_reservations"]) == (D("0.6"), D("0.1"), 1, 1)
    doomed.settle(D("0.2"))  # late, and below what was held: already counted at the worst case
    await dead.flush()
    assert ledger.snapshot()["spent"] == D("0.6")


async def test_a_late_settle_above_a_swept_hold_adds_the_excess(replica) -> None:
    state = replica()
    ledger = shared(state, "2", hold_ttl_s=0.05)
    slow = await ledger.areserve("x", D("0.5"))
    await asyncio.sleep(0.1)
    await ledger.areserve("y", D("0"))
    slow.settle(D("0.7"))
    snap = await settled(state, ledger)
    assert (snap["spent"], snap["overrun"], snap["expired"]) == (D("0.7"), D("0.2"), 1)


# -- CostAwareRouter ---------------------------------------------------------------------------------


async def test_routers_in_two_replicas_stop_when_the_next_reservation_would_not_fit(replica) -> None:
    states = [replica(), replica()]
    worst = CostAwareRouter([(MeteredProvider("probe"), 1.0)]).quote(REQ)[0].worst_case
    providers = [MeteredProvider("p", charge=lambda r: worst) for _ in states]
    routers = [CostAwareRouter([(p, 1.0)], ledger=shared(s, str(worst * 30))) for p, s in zip(providers, states)]

    async def call(i: int) -> bool:
        try:
            await routers[i % 2].complete(REQ)
        except BudgetExceeded:
            return False
        return True

    served = await asyncio.gather(*(call(i) for i in range(80)))
    await states[1].flush()
    snap = await settled(states[0], routers[0].ledger)
    assert sum(served) == 30 == sum(p.calls for p in providers)
    assert snap["spent"] == worst * 30 and snap["reserved"] == 0 and snap["refused"] == 50
