"""BudgetLedger: reserve before spending, settle or release after, caps per UTC period and per target."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.errors import BudgetExceeded, ErrorKind
from evalkit.router.budget import BudgetLedger

D = Decimal


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, iso: str = "2024-05-01T12:00:00") -> None:
        self.now = datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_reserve_holds_money_and_settle_turns_it_into_spend() -> None:
    ledger = BudgetLedger("10.00")
    reservation = ledger.reserve("a", D("4"))
    assert (ledger.spent, ledger.reserved, ledger.remaining) == (D(0), D(4), D(6))
    assert reservation.settle(D("2.5")) == D("2.5")
    assert (ledger.spent, ledger.reserved, ledger.remaining) == (D("2.5"), D(0), D("7.5"))


def test_over_budget_is_refused_with_a_message_that_explains_why() -> None:
    ledger = BudgetLedger("1.00", clock=FakeClock())
    ledger.reserve("a", D("0.40")).settle(D("0.40"))
    ledger.reserve("a", D("0.50"))
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve("a", D("0.20"))
    err = caught.value
    assert err.kind is ErrorKind.BUDGET_EXCEEDED and err.retryable is False
    for part in ("day cap $1", "2024-05-01 UTC", "spent $0.4", "reserved $0.5", "requested $0.2"):
        assert part in err.message
    assert (err.cap, err.spent, err.reserved, err.requested) == (D(1), D("0.4"), D("0.5"), D("0.2"))
    assert ledger.reserved == D("0.5"), "a refused reservation holds nothing"
    assert ledger.snapshot()["refused"] == 1


def test_exactly_reaching_the_cap_is_allowed() -> None:
    ledger = BudgetLedger("1")
    ledger.reserve("a", D("0.6"))
    ledger.reserve("a", D("0.4"))
    assert ledger.remaining == 0


def test_release_gives_the_money_back_and_is_idempotent() -> None:
    ledger = BudgetLedger("1")
    reservation = ledger.reserve("a", D("0.7"))
    reservation.release()
    reservation.release()
    assert (ledger.spent, ledger.reserved) == (D(0), D(0))
    assert reservation.state == "released"
    ledger.reserve("a", D("1"))  # the whole cap is available again


def test_settle_is_idempotent_and_release_after_settle_changes_nothing() -> None:
    ledger = BudgetLedger("1")
    reservation = ledger.reserve("a", D("0.5"))
    reservation.settle(D("0.3"))
    reservation.settle(D("0.3"))
    reservation.release()
    assert (ledger.spent, ledger.reserved, reservation.actual) == (D("0.3"), D(0), D("0.3"))


def test_unpriced_settlement_keeps_the_reserved_amount_as_spent() -> None:
    ledger = BudgetLedger("1")
    assert ledger.reserve("a", D("0.25")).settle(None) == D("0.25")
    assert ledger.spent == D("0.25") and ledger.snapshot()["unpriced"] == 1


def test_actual_cost_above_the_reservation_is_recorded_not_dropped() -> None:
    ledger = BudgetLedger("1")
    ledger.reserve("a", D("0.1")).settle(D("0.35"))
    snap = ledger.snapshot()
    assert ledger.spent == D("0.35")
    assert (snap["overrun"], snap["overruns"]) == (D("0.25"), 1)


def test_a_cost_reported_after_a_release_still_counts() -> None:
    ledger = BudgetLedger("1")
    reservation = ledger.reserve("a", D("0.2"))
    reservation.release()
    reservation.settle(D("0.05"))
    assert ledger.spent == D("0.05") and ledger.reserved == 0


def test_per_target_cap_holds_alongside_the_shared_cap() -> None:
    ledger = BudgetLedger("10", per_target={"pricey": "1"})
    ledger.reserve("pricey", D("0.8")).settle(D("0.8"))
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve("pricey", D("0.3"))
    assert caught.value.scope == "target" and "day cap for pricey $1" in caught.value.message
    ledger.reserve("cheap", D("5"))  # other targets only meet the shared cap
    snap = ledger.snapshot()
    assert snap["targets"]["pricey"] == {"cap": D(1), "spent": D("0.8"), "reserved": D(0)}
    assert snap["targets"]["cheap"]["reserved"] == D(5)


def test_day_rollover_resets_spend_and_old_reservations_settle_into_their_own_day() -> None:
    clock = FakeClock("2024-05-01T23:59:00")
    ledger = BudgetLedger("1", clock=clock)
    late = ledger.reserve("a", D("0.9"))
    assert late.period == "2024-05-01 UTC"
    clock.advance(120)  # past midnight UTC
    assert (ledger.spent, ledger.reserved, ledger.remaining) == (D(0), D(0), D(1))
    fresh = ledger.reserve("a", D("1"))
    late.settle(D("0.9"))
    assert ledger.spent == 0, "yesterday's call is billed to yesterday"
    assert fresh.period == "2024-05-02 UTC" and ledger.snapshot()["period_start"] == "2024-05-02T00:00:00Z"


@pytest.mark.parametrize(("period", "start", "later", "label"), [
    ("hour", "2024-05-01T10:59:59", 1, "2024-05-01T10:00Z"),
    ("month", "2024-12-31T23:00:00", 3600, "2024-12 UTC"),
])
def test_hour_and_month_periods_roll_over_at_utc_boundaries(period, start, later, label) -> None:
    clock = FakeClock(start)
    ledger = BudgetLedger("1", period=period, clock=clock)
    assert ledger.reserve("a", D("1")).period == label
    clock.advance(later)
    assert ledger.reserve("a", D("1")).period != label


def test_total_period_never_resets() -> None:
    clock = FakeClock()
    ledger = BudgetLedger("1", period="total", clock=clock)
    ledger.reserve("a", D("1")).settle(D("1"))
    clock.advance(400 * 86400)
    with pytest.raises(BudgetExceeded):
        ledger.reserve("a", D("0.01"))
    assert ledger.snapshot()["period_end"] is None


def test_a_clock_going_backwards_does_not_reopen_a_fresh_period() -> None:
    clock = FakeClock("2024-05-02T00:00:01")
    ledger = BudgetLedger("1", clock=clock)
    ledger.reserve("a", D("1"))
    clock.advance(-10)
    with pytest.raises(BudgetExceeded):
        ledger.reserve("a", D("0.5"))


def test_money_is_decimal_and_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="float"):
        BudgetLedger(10.0)
    ledger = BudgetLedger("10", per_target={"a": 2})
    with pytest.raises(TypeError):
        ledger.reserve("a", 0.1)
    with pytest.raises(ValueError):
        ledger.reserve("a", D("-1"))
    with pytest.raises(ValueError):
        ledger.reserve("a", D("NaN"))
    reservation = ledger.reserve("a", "0.1")
    with pytest.raises(TypeError):
        reservation.settle(0.1)
    reservation.settle("0.05")
    snap = ledger.snapshot()
    assert all(isinstance(snap[k], Decimal) for k in ("limit", "spent", "reserved", "remaining", "overrun"))


def test_unknown_period_is_rejected() -> None:
    with pytest.raises(ValueError, match="period"):
        BudgetLedger("1", period="week")  # type: ignore[arg-type]


def test_threads_sharing_a_ledger_never_pass_the_cap() -> None:
    ledger = BudgetLedger("5")
    served = []
    lock = threading.Lock()

    def spend(_: int) -> None:
        try:
            reservation = ledger.reserve("a", D("0.01"))
        except BudgetExceeded:
            return
        reservation.settle(D("0.01"))
        with lock:
            served.append(1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(spend, range(2000)))
    assert len(served) == 500 and ledger.spent == D(5) and ledger.reserved == 0


# -- property: the cap holds over any order of reserve / settle / release / clock ticks -----------

AMOUNTS = st.decimals(min_value=0, max_value=3, places=2)
OPS = st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from(["a", "b"]), AMOUNTS),
    st.tuples(st.just("settle"), st.integers(0, 40), st.decimals(min_value=0, max_value=1, places=2)),
    st.tuples(st.just("settle_unpriced"), st.integers(0, 40)),
    st.tuples(st.just("release"), st.integers(0, 40)),
    st.tuples(st.just("tick"), st.sampled_from([60.0, 3600.0, 43200.0])),
)


class _Model:
    """The ledger's bookkeeping done the obvious way, to compare against."""

    def __init__(self) -> None:
        self.spent: dict[tuple[str, str], Decimal] = {}
        self.held: dict[tuple[str, str], Decimal] = {}

    def total(self, period: str, target: str | None = None) -> Decimal:
        keys = [k for k in set(self.spent) | set(self.held) if k[0] == period and target in (None, k[1])]
        return sum((self.spent.get(k, D(0)) + self.held.get(k, D(0)) for k in keys), D(0))

    def add(self, book: dict, key: tuple[str, str], amount: Decimal) -> None:
        book[key] = book.get(key, D(0)) + amount


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(OPS, max_size=80), limit=st.decimals(min_value=0, max_value=10, places=2),
       cap_b=st.decimals(min_value=0, max_value=4, places=2))
def test_property_cap_holds_for_any_interleaving(ops, limit, cap_b) -> None:
    clock = FakeClock("2024-05-01T18:00:00")
    ledger = BudgetLedger(limit, per_target={"b": cap_b}, clock=clock)
    model, reservations = _Model(), []
    for op in ops:
        period = ledger.snapshot()["period_label"]
        if op[0] == "reserve":
            _, target, amount = op
            fits = model.total(period) + amount <= limit and (
                target != "b" or model.total(period, "b") + amount <= cap_b)
            try:
                reservations.append(ledger.reserve(target, amount))
                model.add(model.held, (period, target), amount)
            except BudgetExceeded:
                assert not fits, "refused a reservation that fits"
            else:
                assert fits, "accepted a reservation over a cap"
        elif op[0] == "tick":
            clock.advance(op[1])
        elif reservations:
            r = reservations[op[1] % len(reservations)]
            key = (r.period, r.target)
            if op[0] == "release" and r.state == "open":
                r.release()
                model.add(model.held, key, -r.amount)
            elif op[0].startswith("settle") and r.state == "open":
                actual = None if op[0] == "settle_unpriced" else (r.amount * op[2]).quantize(D("0.0001"))
                r.settle(actual)
                model.add(model.held, key, -r.amount)
                model.add(model.spent, key, r.amount if actual is None else actual)
        period = ledger.snapshot()["period_label"]
        assert ledger.spent + ledger.reserved <= limit
        assert ledger.spent + ledger.reserved == model.total(period)
        assert model.total(period, "b") <= cap_b


@settings(max_examples=200, deadline=None)
@given(plan=st.lists(st.tuples(AMOUNTS, AMOUNTS), max_size=40))
def test_property_settled_money_is_never_dropped(plan) -> None:
    ledger = BudgetLedger("1000", period="total")
    for reserved, actual in plan:
        ledger.reserve("a", reserved).settle(actual)
    assert ledger.spent == sum((actual for _, actual in plan), D(0))
    expected_overrun = sum((max(actual - reserved, D(0)) for reserved, actual in plan), D(0))
    assert ledger.snapshot()["overrun"] == expected_overrun and ledger.reserved == 0
