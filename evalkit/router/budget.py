"""BudgetLedger: a spending cap per UTC period that reserves before it spends.

A budget that only *checks* what was spent lets every concurrent first request
through (LiteLLM's bug): they all see zero spent. The ledger instead
**reserves** each request's worst-case cost before the call and settles it to
the actual cost afterwards, so ``spent + reserved`` never passes the cap, however
many requests are in flight::

    ledger = BudgetLedger("25.00", period="day", per_target={"openai:gpt-4o": "10"})
    reservation = ledger.reserve("openai:gpt-4o", worst_case)   # BudgetExceeded if it would not fit
    try:
        response = await provider.complete(request)
    except ProviderError:
        reservation.release()
        raise
    reservation.settle(response.cost.total if response.cost else None)

A call that failed may still be billed (a stream cut after some text): settle
what the error carries instead of releasing, marked as an estimate::

    except ProviderError as exc:
        if exc.cost is not None:
            reservation.settle(exc.cost.total, estimated=not (exc.usage and exc.usage.exact))
        elif exc.usage is not None:
            reservation.settle(None)       # billed, price unknown: keep the worst case
        else:
            reservation.release()          # nothing was generated, nothing is billed
        raise

``max_share_of_remaining`` (a fraction in (0, 1], e.g. ``"0.1"``) adds the rule
"no single call may hold more than this share of what is left": a reservation
larger than ``share × (cap − spent − reserved)`` is refused with
``BudgetExceeded`` (``scope="share"``), for the shared cap and for the target's
own cap if it has one. It keeps one runaway request (a huge prompt, a large
``max_tokens``) from eating the rest of the period, at the price of refusing
ever smaller requests as the budget runs low: with ``"0.1"`` and $1 left, no
call may hold more than $0.10. ``BudgetLedger(..., max_share_of_remaining=None)``
(the default) has no such rule; the routing config's ``budget:`` mapping takes
the same key.

Thread safety: every read and write of the totals holds one ``threading.Lock``.
``reserve`` is synchronous, so in asyncio nothing can run between the check and
the reservation; the lock only matters when threads share a ledger, and is
uncontended (tens of nanoseconds) otherwise.

Replicas share one ledger through Redis with ``BudgetLedger(..., state=RedisState(...),
name="budget")``: then reserve with ``await ledger.areserve(target, amount)``,
one atomic script per call (:mod:`evalkit.router._shared_budget`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol, Self, TypeVar

from ..errors import BudgetExceeded
from ._budget_period import BudgetSnapshot, Period, TargetSpend, _iso, _Tally, _Window, _window_at

if TYPE_CHECKING:
    from ._shared_budget import SharedLedger
    from .state import RedisState

__all__ = ["BudgetLedger", "BudgetSnapshot", "Period", "Reservation", "TargetSpend"]

_PERIODS = ("day", "hour", "month", "total")
_ZERO = Decimal(0)


def as_money(value: Decimal | int | str, what: str = "amount") -> Decimal:
    """``value`` as a finite, non-negative Decimal; floats are refused (they cannot hold cents exactly)."""
    if isinstance(value, float):
        raise TypeError(f"{what} must be a Decimal or a string, not float ({value!r}): floats lose cents")
    try:
        money = value if isinstance(value, Decimal) else Decimal(value)
    except Exception as exc:
        raise ValueError(f"{what} is not an amount of money: {value!r}") from exc
    if not money.is_finite() or money < 0:
        raise ValueError(f"{what} must be a finite amount >= 0, got {value!r}")
    return money


def as_share(value: Decimal | int | str, what: str = "max_share_of_remaining") -> Decimal:
    """``value`` as a Decimal fraction in (0, 1]; floats are refused like money."""
    if isinstance(value, (float, bool)):
        raise TypeError(f"{what} must be a Decimal, an int or a string such as '0.1', not {value!r}")
    try:
        share = value if isinstance(value, Decimal) else Decimal(value)
    except Exception as exc:
        raise ValueError(f"{what} is not a number: {value!r}") from exc
    if not share.is_finite() or not 0 < share <= 1:
        raise ValueError(f"{what} must be a fraction in (0, 1], got {value!r}")
    return share


def _usd(amount: Decimal) -> str:
    """``$0.0123``: plain notation, no exponent, no trailing zeros."""
    text = format(amount.normalize(), "f")
    return f"${text}"


_Held = TypeVar("_Held", bound="Reservation", contravariant=True)


class _Closes(Protocol[_Held]):
    """What a reservation settles through: its :class:`BudgetLedger`, or a shared ledger's Redis side."""

    def _close(self, reservation: _Held, cost: Decimal | None, *, unpriced: bool, estimated: bool) -> Decimal: ...


class Reservation:
    """Money held for one call until it is settled to the actual cost or released.

    Both :meth:`settle` and :meth:`release` are idempotent: the first one decides,
    later calls change nothing, except that a cost reported *after* a release is
    still recorded as spent (money that was spent is never dropped). A
    reservation always settles into the period it was made in, even after the
    ledger rolled over to a new one.
    """

    __slots__ = ("_ledger", "_window", "actual", "amount", "state", "target")

    def __init__(self, ledger: _Closes[Self], window: _Window, target: str, amount: Decimal) -> None:
        self.target = target
        self.amount = amount
        self._ledger: _Closes[Self] = ledger
        self._window = window
        self.state: Literal["open", "settled", "released"] = "open"
        self.actual: Decimal | None = None  # what was recorded as spent, once settled

    def __repr__(self) -> str:
        return f"Reservation({self.target!r}, {_usd(self.amount)}, {self.state}, period={self.period!r})"

    @property
    def period(self) -> str:
        """The label of the period this reservation counts in (``2024-05-01 UTC``)."""
        return self._window.label

    def settle(self: Self, actual: Decimal | int | str | None, *, estimated: bool = False) -> Decimal:
        """Turn the hold into spend at the call's actual cost; returns what was recorded.

        ``actual=None`` means the call was unpriced (the provider gave no cost):
        the whole reserved amount is kept as spent, conservatively, because an
        unknown cost is never counted as free. An ``actual`` above the reserved
        amount is recorded in full (the overrun shows in ``snapshot()``), so
        ``spent`` may then pass the cap; estimates that always cover the real
        cost keep it under. ``estimated=True`` marks a cost that is not the
        vendor's own count (tokens of a cut stream counted locally, or a share
        kept for a request whose cost is unknown); ``snapshot()`` counts them.
        """
        cost = self.amount if actual is None else as_money(actual, "actual cost")
        return self._ledger._close(self, cost, unpriced=actual is None, estimated=estimated)

    def release(self: Self) -> None:
        """Give the held money back (the call failed or was never sent)."""
        self._ledger._close(self, None, unpriced=False, estimated=False)


class BudgetLedger:
    """A cap on money spent per UTC period, optionally also per target.

    * ``limit``: the cap for all targets together, per period (``"25.00"`` or a Decimal).
    * ``period``: ``"day"``, ``"hour"``, ``"month"`` (calendar months) or
      ``"total"`` (never resets). Periods are aligned to UTC.
    * ``per_target``: caps per target name (``{"openai:gpt-4o": "5"}``) that hold
      in addition to ``limit``; unnamed targets have only the shared cap.
    * ``max_share_of_remaining``: optional fraction in (0, 1] (``"0.1"``): no
      single reservation may exceed that share of what remains of a cap (see
      the module docstring). ``None``: no such rule.
    * ``clock``: wall-clock seconds since the epoch; inject a fake one in tests.
      A clock that goes backwards stays in the current period (never re-opens
      a fresh copy of an old one).

    :meth:`reserve` refuses with :class:`~evalkit.errors.BudgetExceeded` when
    ``spent + reserved + amount`` would pass a cap, or when ``amount`` is more
    than the allowed share of what remains. Money is ``Decimal`` only.

    * ``state``: a :class:`~evalkit.router.state.RedisState` to share the ledger
      with every replica that uses the same ``name`` (``None``: this process
      only). Each replica brings its own caps: they must agree. A shared ledger
      reserves with :meth:`areserve` only; ``hold_ttl_s`` is how long a hold
      outlives a replica that died mid-call (see :mod:`evalkit.router._shared_budget`).
    """

    def __init__(self, limit: Decimal | int | str, *, period: Period = "day",
                 per_target: Mapping[str, Decimal | int | str] | None = None,
                 max_share_of_remaining: Decimal | int | str | None = None,
                 clock: Callable[[], float] = time.time, state: RedisState | None = None, name: str = "budget",
                 hold_ttl_s: float = 600.0) -> None:
        if period not in _PERIODS:
            raise ValueError(f"period must be one of {', '.join(_PERIODS)}, got {period!r}")
        self.limit = as_money(limit, "limit")
        self.period = period
        self.per_target = {name: as_money(cap, f"per_target[{name!r}]") for name, cap in (per_target or {}).items()}
        share = max_share_of_remaining
        self.max_share_of_remaining = None if share is None else as_share(share)
        self._clock = clock
        self._lock = threading.Lock()
        self._window = _window_at(period, clock())
        if not name or not isinstance(name, str) or any(ch.isspace() for ch in name):
            raise ValueError(f"name must be a non-empty word, got {name!r}")
        self.name, self.state = name, state
        self._shared: SharedLedger | None = None
        if state is not None:
            from ._shared_budget import SharedLedger

            self._shared = SharedLedger(self, state, hold_ttl_s)

    def __repr__(self) -> str:
        if self._shared is not None:  # no network I/O in a repr
            return f"BudgetLedger({_usd(self.limit)} per {self.period}, shared as {self.name!r} via {self.state!r})"
        return f"BudgetLedger({_usd(self.limit)} per {self.period}, spent={_usd(self.spent)})"

    # -- the hot path ------------------------------------------------------------------------

    async def areserve(self, target: str, amount: Decimal) -> Reservation:
        """:meth:`reserve` for async callers; a shared ledger's one round trip to Redis.

        A shared ledger that cannot reach Redis raises
        :class:`~evalkit.errors.StateUnavailableError` and holds nothing,
        unless its state has ``fail_open=True`` (then this replica holds
        against its own copy of the caps until Redis is back).
        """
        if self._shared is None:
            return self.reserve(target, amount)
        return await self._shared.reserve(target, amount)

    def reserve(self, target: str, amount: Decimal) -> Reservation:
        """Hold ``amount`` for a call to ``target``, or raise ``BudgetExceeded`` without holding anything."""
        if self._shared is not None:
            raise TypeError(f"BudgetLedger {self.name!r} is shared through Redis: reserve with "
                            "`await ledger.areserve(target, amount)` (a blocking reserve would stall the event loop)")
        if type(amount) is not Decimal or not amount.is_finite() or amount < 0:
            amount = as_money(amount)
        now = self._clock()
        share = self.max_share_of_remaining
        with self._lock:
            window = self._current(now)
            total = window.total
            if total.spent + total.reserved + amount > self.limit:
                window.refused += 1
                raise self._refusal(window, target, amount, self.limit, total, "shared")
            cap = self.per_target.get(target)
            tally = window.tally(target)
            if cap is not None and tally.spent + tally.reserved + amount > cap:
                window.refused += 1
                raise self._refusal(window, target, amount, cap, tally, "target")
            if share is not None and amount:
                for limit, held, scope in ((self.limit, total, "shared"), (cap, tally, "target")):
                    if limit is not None and amount > share * (limit - held.spent - held.reserved):
                        window.refused += 1
                        raise self._refusal(window, target, amount, limit, held, scope, share=share)
            total.reserved += amount
            tally.reserved += amount
            window.open += 1
        return Reservation(self, window, target, amount)

    def _close(self, reservation: Reservation, cost: Decimal | None, *, unpriced: bool,
               estimated: bool) -> Decimal:
        """Settle (``cost`` given) or release (``cost`` None) ``reservation`` in its own period."""
        with self._lock:
            state = reservation.state
            if state == "settled" or (state == "released" and cost is None):
                return reservation.actual or _ZERO
            window = reservation._window
            held = reservation.amount if state == "open" else _ZERO
            tally = window.tally(reservation.target)
            window.total.reserved -= held
            tally.reserved -= held
            if state == "open":
                window.open -= 1
            if cost is None:
                reservation.state = "released"
                return _ZERO
            window.total.spent += cost
            tally.spent += cost
            if cost > held:
                window.overrun += cost - held
                window.overruns += 1
            if unpriced:
                window.unpriced += 1
            if estimated:
                window.estimated += 1
            reservation.state, reservation.actual = "settled", cost
            return cost

    def _current(self, now: float) -> _Window:
        # Called with the lock held. Only forward: see the class docstring.
        if now >= self._window.end:
            self._window = _window_at(self.period, now)
        return self._window

    def _refusal(self, window: _Window, target: str, amount: Decimal, cap: Decimal, tally: _Tally,
                 scope: str, *, share: Decimal | None = None) -> BudgetExceeded:
        which = f"{self.period} cap" if scope == "shared" else f"{self.period} cap for {target}"
        state = f"spent {_usd(tally.spent)}, reserved {_usd(tally.reserved)}, requested {_usd(amount)}"
        if share is None:
            message = f"over budget for {target}: {which} {_usd(cap)} ({window.label}), {state}"
        else:
            left = cap - tally.spent - tally.reserved
            message = (f"over budget for {target}: requested {_usd(amount)} is more than "
                       f"max_share_of_remaining={share} of the {_usd(left)} left of the {which} {_usd(cap)} "
                       f"({window.label}), {state}")
            scope = "share"
        exc = BudgetExceeded(message, provider=target)
        exc.cap, exc.spent, exc.reserved, exc.requested = cap, tally.spent, tally.reserved, amount
        exc.period, exc.scope, exc.target = window.label, scope, target
        return exc

    # -- reading -----------------------------------------------------------------------------

    @property
    def spent(self) -> Decimal:
        """Money settled in the current period (all replicas' for a shared ledger: a blocking read)."""
        if self._shared is not None:
            return self._shared.snapshot()["spent"]
        with self._lock:
            return self._current(self._clock()).total.spent

    @property
    def reserved(self) -> Decimal:
        """Money held by calls in flight that were reserved in the current period."""
        if self._shared is not None:
            return self._shared.snapshot()["reserved"]
        with self._lock:
            return self._current(self._clock()).total.reserved

    @property
    def remaining(self) -> Decimal:
        """What a new reservation may still take from the shared cap (never negative)."""
        if self._shared is not None:
            return self._shared.snapshot()["remaining"]
        with self._lock:
            total = self._current(self._clock()).total
            return max(self.limit - total.spent - total.reserved, _ZERO)

    def snapshot(self) -> BudgetSnapshot:
        """The current period's totals for a monitor or an export; money stays ``Decimal``.

        ``overrun`` is money settled beyond what was reserved (estimates that
        fell short), ``unpriced`` counts settlements without a known cost (kept
        at the reserved amount), ``estimated`` counts settlements of estimated
        costs (a cut stream's tokens counted locally, a hedge loser's unknown
        share), ``refused`` counts refused reservations. A shared ledger's
        snapshot (every replica's, read from Redis) adds ``expired`` (holds of
        replicas that died mid-call, kept as spent), ``restored`` and ``backend``.
        """
        if self._shared is not None:
            return self._shared.snapshot()
        with self._lock:
            window = self._current(self._clock())
            total = window.total
            names = sorted(set(window.targets) | set(self.per_target))
            targets = {name: TargetSpend(cap=self.per_target.get(name),
                                         spent=window.targets[name].spent if name in window.targets else _ZERO,
                                         reserved=window.targets[name].reserved if name in window.targets else _ZERO)
                       for name in names}
            return {
                "period": self.period,
                "period_label": window.label,
                "period_start": _iso(window.start),
                "period_end": _iso(window.end),
                "limit": self.limit,
                "spent": total.spent,
                "reserved": total.reserved,
                "remaining": max(self.limit - total.spent - total.reserved, _ZERO),
                "open_reservations": window.open,
                "overrun": window.overrun,
                "overruns": window.overruns,
                "unpriced": window.unpriced,
                "estimated": window.estimated,
                "refused": window.refused,
                "max_share_of_remaining": self.max_share_of_remaining,
                "targets": targets,
            }
