"""Ledger properties over random plans: the cap holds and money is never lost.

For any order of reserve / settle / partial (estimated) settle / unpriced settle / release,
sequential or from concurrent threads, with or without ``max_share_of_remaining``:

* ``spent + reserved`` never exceeds the cap when every settlement is at most its reservation;
* the money recorded as spent is exactly the sum of what the settlements returned;
* what is held is exactly the sum of the open reservations.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.errors import BudgetExceeded
from evalkit.router.budget import BudgetLedger, Reservation

D = Decimal
AMOUNTS = st.decimals(min_value=0, max_value=5, places=3)
FRACTIONS = st.decimals(min_value=0, max_value=1, places=3)
SHARES = st.one_of(st.none(), st.decimals(min_value="0.05", max_value=1, places=2))
OPS = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from(["a", "b", "c"]), AMOUNTS),
    st.tuples(st.just("settle"), st.integers(0, 60), FRACTIONS),
    st.tuples(st.just("settle_estimated"), st.integers(0, 60), FRACTIONS),
    st.tuples(st.just("settle_unpriced"), st.integers(0, 60)),
    st.tuples(st.just("release"), st.integers(0, 60)),
)


def _close(reservation: Reservation, op: tuple) -> Decimal | None:
    """Apply a closing op to ``reservation``; what it recorded as spent (None for a release)."""
    kind = op[0]
    if kind == "release":
        reservation.release()
        return None
    if kind == "settle_unpriced":
        return reservation.settle(None)
    actual = (reservation.amount * op[2]).quantize(D("0.000001"), rounding="ROUND_DOWN")
    return reservation.settle(actual, estimated=kind == "settle_estimated")


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(OPS, max_size=120), limit=st.decimals(min_value=0, max_value=20, places=2),
       cap_b=st.decimals(min_value=0, max_value=6, places=2), share=SHARES)
def test_property_cap_holds_and_money_is_conserved(ops, limit, cap_b, share) -> None:
    ledger = BudgetLedger(limit, period="total", per_target={"b": cap_b}, max_share_of_remaining=share)
    reservations: list[Reservation] = []
    settled_sum, estimated = D(0), 0
    for op in ops:
        if op[0] == "reserve":
            _, target, amount = op
            before = ledger.snapshot()
            left = limit - before["spent"] - before["reserved"]
            b = before["targets"].get("b", {"spent": D(0), "reserved": D(0)})
            left_b = cap_b - b["spent"] - b["reserved"]
            over_cap = amount > left or (target == "b" and amount > left_b)
            over_share = share is not None and amount > 0 and (
                amount > share * left or (target == "b" and amount > share * left_b))
            try:
                reservations.append(ledger.reserve(target, amount))
            except BudgetExceeded as exc:
                assert over_cap or over_share, f"refused a reservation that fits: {exc.message}"
            else:
                assert not (over_cap or over_share), "accepted a reservation over a cap or over its share"
        else:
            open_ones = [r for r in reservations if r.state == "open"]
            if not open_ones:
                continue
            recorded = _close(open_ones[op[1] % len(open_ones)], op)
            if recorded is not None:
                settled_sum += recorded
                estimated += op[0] == "settle_estimated"
        snap = ledger.snapshot()
        assert snap["spent"] + snap["reserved"] <= limit
        b = snap["targets"].get("b")
        assert b is None or b["spent"] + b["reserved"] <= cap_b
        assert snap["spent"] == settled_sum  # money is never lost, nor made up
        assert snap["reserved"] == sum((r.amount for r in reservations if r.state == "open"), D(0))
        assert snap["estimated"] == estimated and snap["overrun"] == 0


@settings(max_examples=40, deadline=None)
@given(plans=st.lists(st.lists(st.tuples(AMOUNTS, FRACTIONS, st.sampled_from(["settle", "release", "partial"])),
                               min_size=1, max_size=60),
                      min_size=2, max_size=6),
       limit=st.decimals(min_value="0.5", max_value=30, places=2), share=SHARES)
def test_property_concurrent_threads_never_pass_the_cap(plans, limit, share) -> None:
    ledger = BudgetLedger(limit, period="total", max_share_of_remaining=share)
    recorded: list[Decimal] = []
    violations: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def watch() -> None:  # observes the totals while the workers run
        while not stop.is_set():
            snap = ledger.snapshot()
            if snap["spent"] + snap["reserved"] > limit:
                violations.append(f"{snap['spent']} + {snap['reserved']} > {limit}")

    def work(plan: list[tuple[Decimal, Decimal, str]]) -> None:
        for amount, fraction, ending in plan:
            try:
                reservation = ledger.reserve("t", amount)
            except BudgetExceeded:
                continue
            if ending == "release":
                reservation.release()
                continue
            actual = (amount * fraction).quantize(D("0.000001"), rounding="ROUND_DOWN")
            value = reservation.settle(actual, estimated=ending == "partial")
            with lock:
                recorded.append(value)

    watcher = threading.Thread(target=watch)
    workers = [threading.Thread(target=work, args=(plan,)) for plan in plans]
    watcher.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    watcher.join()
    assert not violations
    assert ledger.spent == sum(recorded, D(0)) <= limit and ledger.reserved == 0
    assert ledger.snapshot()["open_reservations"] == 0
