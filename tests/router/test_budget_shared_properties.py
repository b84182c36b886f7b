"""A ledger shared through Redis behaves exactly like the in-memory ledger with the same caps.

For any sequence of reserve / settle (exact, estimated, unpriced, above the hold) / release /
a cost reported after a release / clock ticks across periods, with per-target caps and
``max_share_of_remaining``, both ledgers refuse the same reservations (same scope, same
message) and end with the same totals. Amounts have at most 9 decimals, so rounding up to
the nano-dollar changes nothing.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.errors import BudgetExceeded
from evalkit.router.budget import BudgetLedger, Reservation
from evalkit.router.state import RedisState

from .test_budget import FakeClock

D = Decimal
AMOUNTS = st.decimals(min_value=0, max_value=3, places=9)
FRACTIONS = st.decimals(min_value=0, max_value="1.5", places=3)  # above 1: an overrun
RESERVE = st.tuples(st.just("reserve"), st.sampled_from(["a", "b", "openai:gpt-4o"]), AMOUNTS)
OPS = st.one_of(
    RESERVE,
    RESERVE,
    st.tuples(st.sampled_from(["settle", "settle_estimated"]), st.integers(0, 50), FRACTIONS),
    st.tuples(st.just("settle_unpriced"), st.integers(0, 50)),
    st.tuples(st.just("release"), st.integers(0, 50)),
    st.tuples(st.just("tick"), st.sampled_from([600.0, 7200.0])),
)
COMPARED = ("period_label", "limit", "spent", "reserved", "remaining", "open_reservations", "overrun", "overruns",
            "unpriced", "estimated", "refused", "targets")


def _close(reservation: Reservation, op: tuple) -> None:
    if op[0] == "release":
        reservation.release()
    elif op[0] == "settle_unpriced":
        reservation.settle(None)
    else:
        actual = (reservation.amount * op[2]).quantize(D("0.000000001"))
        reservation.settle(actual, estimated=op[0] == "settle_estimated")


def _comparable(snapshot: dict) -> dict:
    """The compared fields; a target that never held anything may be listed by one ledger and not the other."""
    seen = {name: tally for name, tally in snapshot["targets"].items()
            if tally["cap"] is not None or tally["spent"] or tally["reserved"]}
    return {**{k: snapshot[k] for k in COMPARED}, "targets": seen}


async def _reserve(ledger: BudgetLedger, target: str, amount: Decimal) -> Reservation | tuple:
    try:
        return await ledger.areserve(target, amount)
    except BudgetExceeded as exc:
        return (exc.message, exc.scope, exc.cap, exc.spent, exc.reserved, exc.period)


async def _run(url: str, prefix: str, ops: list, limit: Decimal, cap_b: Decimal, share: Decimal | None) -> None:
    clock = FakeClock("2024-05-01T22:30:00")
    options = {"period": "hour", "per_target": {"b": cap_b}, "max_share_of_remaining": share, "clock": clock}
    state = RedisState(url, prefix=prefix, timeout_ms=2000)
    memory, redis = BudgetLedger(limit, **options), BudgetLedger(limit, state=state, **options)
    pairs: list[tuple[Reservation, Reservation]] = []
    try:
        for op in ops:
            if op[0] == "reserve":
                mine, theirs = await _reserve(memory, op[1], op[2]), await _reserve(redis, op[1], op[2])
                assert isinstance(mine, tuple) == isinstance(theirs, tuple), f"{op}: memory {mine!r}, redis {theirs!r}"
                if isinstance(mine, tuple):
                    assert mine == theirs
                else:
                    pairs.append((mine, theirs))
            elif op[0] == "tick":
                clock.advance(op[1])
            elif pairs:
                # Any reservation, open or not: closing one twice, or settling a released one, is part of the plan.
                for reservation in pairs[op[1] % len(pairs)]:
                    _close(reservation, op)
                await state.flush()
        await state.flush()
        mine, theirs = _comparable(memory.snapshot()), _comparable(redis.snapshot())
        assert mine == theirs
        assert redis.snapshot()["expired"] == 0
    finally:
        await state.aclose()


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(OPS, min_size=1, max_size=60), limit=st.decimals(min_value=0, max_value=8, places=9),
       cap_b=st.decimals(min_value=0, max_value=3, places=9),
       share=st.one_of(st.none(), st.decimals(min_value="0.05", max_value=1, places=2)))
def test_property_a_shared_ledger_refuses_and_counts_like_the_memory_ledger(redis_server, ops, limit, cap_b,
                                                                             share) -> None:
    import uuid

    asyncio.run(_run(redis_server.url, f"p{uuid.uuid4().hex[:10]}", ops, limit, cap_b, share))


async def _many_tasks(url: str, prefix: str, plans: list[list[tuple[Decimal, Decimal, str]]],
                      limit: Decimal) -> None:
    states = [RedisState(url, prefix=prefix, timeout_ms=2000) for _ in range(2)]
    ledgers = [BudgetLedger(limit, period="total", state=state) for state in states]
    recorded: list[Decimal] = []

    async def work(ledger: BudgetLedger, plan: list[tuple[Decimal, Decimal, str]]) -> None:
        for amount, fraction, ending in plan:
            try:
                reservation = await ledger.areserve("t", amount)
            except BudgetExceeded:
                continue
            snap = ledger.snapshot()  # seen by one task while the others hold and settle
            assert snap["spent"] + snap["reserved"] <= limit
            await asyncio.sleep(0)
            if ending == "release":
                reservation.release()
            else:
                recorded.append(reservation.settle((amount * fraction).quantize(D("0.000000001"), "ROUND_DOWN")))

    try:
        await asyncio.gather(*(work(ledgers[i % 2], plan) for i, plan in enumerate(plans)))
        for state in states:
            await state.flush()
        snap = ledgers[0].snapshot()
        assert snap["spent"] == sum(recorded, D(0)) <= limit and snap["reserved"] == 0
        assert snap["open_reservations"] == 0
    finally:
        for state in states:
            await state.aclose()


@settings(max_examples=15, deadline=None)
@given(plans=st.lists(st.lists(st.tuples(st.decimals(min_value=0, max_value=2, places=6),
                                         st.decimals(min_value=0, max_value=1, places=3),
                                         st.sampled_from(["settle", "release"])), min_size=1, max_size=20),
                      min_size=2, max_size=12),
       limit=st.decimals(min_value="0.5", max_value=10, places=2))
def test_property_concurrent_tasks_on_two_replicas_never_pass_the_cap(redis_server, plans, limit) -> None:
    import uuid

    asyncio.run(_many_tasks(redis_server.url, f"c{uuid.uuid4().hex[:10]}", plans, limit))
