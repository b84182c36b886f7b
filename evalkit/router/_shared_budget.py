"""The Redis side of a :class:`~evalkit.router.budget.BudgetLedger` built with ``state=RedisState(...)``.

Replicas that give their ledgers the same ``name`` and the same Redis share one
ledger; each replica's constructor supplies the caps, so **replicas must agree
on** ``limit``, ``period``, ``per_target`` and ``max_share_of_remaining``.

Per period (``prefix:budget:<name>:<label>``, e.g. ``...:2024-05-01 UTC``):

* a hash of totals: ``spent``, ``reserved``, ``open``, ``refused``,
  ``expired``, ``overrun``... and ``t:<target>:spent``/``reserved`` per
  target, all **integer nano-dollars** (1e-9 USD), never floats;
* ``...:holds``, the open reservations (member ``<nanos>|<hold id>|<target>``,
  scored by when the hold expires, in Redis server time);
* ``...:closed``, the hold ids already settled or released (scored by when
  they are forgotten), which makes every settle and release idempotent.

The three keys expire one period after the period ends; ``total`` never expires.

Amounts are rounded up to the nano-dollar (reservations and settled costs) and
caps down, so the shared ledger can over-count by less than a nano-dollar per
call and never under-count. A cap of 2**53 nano-dollars (about $9M) or more is
refused: Lua compares numbers as doubles, exact only below that.

``areserve`` is one Lua script, one round trip: it sweeps a few expired holds,
checks the shared cap, the target's cap and ``max_share_of_remaining`` exactly
as the in-memory ledger does, and holds or counts a refusal. ``settle`` and
``release`` update the :class:`~evalkit.router.budget.Reservation` at once and
send their script in the background (:meth:`~evalkit.router.state.RedisState.background`):
until it lands the hold keeps covering the worst case, so deferring can never
overspend; if Redis is down it is re-run when Redis is back.

A hold not settled within ``hold_ttl_s`` (its replica died mid-call) is swept
by a later reservation into ``spent`` at the held amount, since the call may
have been billed, and counted as ``expired``. A settle that arrives after its
hold was swept adds only what exceeds the held amount. So ``hold_ttl_s`` must
be longer than the slowest call.

If Redis restarts empty (no persistence), each replica restores the period's
spend as it last saw it (the largest ``spent + reserved`` any live replica saw,
counted as spent) on its next reservation, and settles of calls in flight add
their cost; money a dead replica alone knew about is lost, so run Redis with
``appendonly yes`` where that matters.
"""

from __future__ import annotations

import asyncio
import itertools
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from ..errors import StateUnavailableError
from ._budget_period import BudgetSnapshot, TargetSpend, _iso, _Tally, _Window
from ._budget_scripts import CLOSE, RESERVE
from ._nanos import dollars, nanos
from .budget import BudgetLedger, Reservation, as_money
from .state import RedisState

__all__ = ["SharedLedger", "SharedReservation"]

_ZERO = Decimal(0)
MAX_NANOS = 2**53 - 1
"""The largest cap in nano-dollars: Lua numbers are doubles, exact integers only up to 2**53."""
_BEYOND = str(2**53 + 2)  # a share threshold no amount left can reach (exactly representable as a double)
_SWEEP = "8"  # expired holds (or old markers) handled per script: bounded work on each call


def nanos_up(amount: Decimal) -> int:
    """``amount`` in nano-dollars, rounded up: the shared ledger may over-count, never under-count."""
    return nanos(amount, ROUND_CEILING)


def cap_nanos(cap: Decimal, what: str) -> int:
    """A cap in nano-dollars, rounded down; ValueError when Lua's doubles could not compare it exactly."""
    floor = nanos(cap, ROUND_FLOOR)
    if floor > MAX_NANOS:
        raise ValueError(f"{what} ${cap} is too large for a shared ledger (at most ${dollars(MAX_NANOS)}: "
                         "Redis scripts compare amounts as doubles, exact to the nano-dollar only below 2**53)")
    return floor


class SharedReservation(Reservation):
    """A reservation held in Redis: its hold id and the keys of its period.

    ``local`` is set when it was held by this replica alone while Redis was down (``fail_open``).
    """

    __slots__ = ("hold", "keys", "local", "nanos")

    def __init__(self, ledger: SharedLedger, window: _Window, target: str, amount: Decimal, hold: str, nanos: str,
                 keys: tuple[str, str, str], local: Reservation | None = None) -> None:
        super().__init__(ledger, window, target, amount)
        self.hold, self.nanos, self.keys, self.local = hold, nanos, keys, local


class SharedLedger:
    """What a :class:`BudgetLedger` with a ``state`` does with Redis (see the module docstring)."""

    def __init__(self, ledger: BudgetLedger, state: RedisState, hold_ttl_s: float) -> None:
        if not isinstance(state, RedisState):
            raise TypeError(f"state must be a RedisState, got {type(state).__name__}")
        if not hold_ttl_s > 0:
            raise ValueError(f"hold_ttl_s must be positive, got {hold_ttl_s!r}")
        self.ledger, self.state = ledger, state
        from redis.exceptions import RedisError  # RedisState imported it already

        # Redis answering with an error (out of memory, a read-only replica) fails closed like no answer.
        self._refused = RedisError
        self.limit_nanos = str(cap_nanos(ledger.limit, "limit"))
        self.caps = {name: str(cap_nanos(cap, f"per_target[{name!r}]")) for name, cap in ledger.per_target.items()}
        share = ledger.max_share_of_remaining
        self._share = None if share is None else share.as_integer_ratio()
        self.hold_ttl_ms = str(int(hold_ttl_s * 1000))
        # Closed ids are remembered past any hold's life, so a settle after a sweep is recognised.
        self.marker_ttl_ms = str(int(max(2 * hold_ttl_s, 3600.0) * 1000))
        self._ids = itertools.count()
        self._keys_window: _Window | None = None
        self._keys: tuple[str, str, str] = ("", "", "")
        # What this replica last saw of the current period, to restore it if Redis loses it.
        self._epoch, self._used = "", 0
        self._seen: dict[str, tuple[str, int]] = {}
        self._local: BudgetLedger | None = None
        self.local_reservations = 0
        """Reservations held by this replica alone while Redis was down (``fail_open``)."""

    # -- reserving ---------------------------------------------------------------------------

    async def reserve(self, target: str, amount: Decimal) -> Reservation:
        """Hold ``amount`` in Redis; BudgetExceeded or (fail closed) StateUnavailableError holds nothing."""
        if type(amount) is not Decimal or not amount.is_finite() or amount < 0:
            amount = as_money(amount)
        ledger = self.ledger
        now = ledger._clock()
        with ledger._lock:
            window = ledger._current(now)
        keys = self._period_keys(window)
        nanos = nanos_up(amount)
        held = str(nanos)
        hold = f"{self.state.replica}.{next(self._ids):x}"
        epoch, used = self._seen.get(target, ("", 0))
        args = ("\n".join((held, self.limit_nanos, self.caps.get(target, ""), self._least_left(nanos), hold,
                           self.hold_ttl_ms, _key_ttl_ms(window, now), _SWEEP, self.marker_ttl_ms, self._epoch,
                           str(self._used), epoch, str(used), target)),)
        tried = self.state.up
        try:
            reply = await self.state.run(RESERVE, keys, args)
        except (StateUnavailableError, self._refused) as exc:
            if tried:  # the script may have run before Redis went quiet: give its hold back
                self._send("release", hold, held, hold, target, 0, 0, False, False, keys, window)
            if not self.state.fail_open:
                raise _unavailable(exc, self.state) from None
            return self._reserve_locally(target, amount, hold, held)
        except asyncio.CancelledError:
            self._send("release", hold, held, hold, target, 0, 0, False, False, keys, window)
            raise
        outcome = reply[0].decode()
        self._saw(window, reply, target, nanos if outcome == "ok" else 0)
        if outcome == "ok":
            return SharedReservation(self, window, target, amount, hold, held, keys)
        scope = outcome.rpartition(":")[2]
        which = reply[2:4] if scope == "shared" else reply[4:6]
        tally = _Tally()
        tally.spent, tally.reserved = dollars(which[0]), dollars(which[1])
        limit = ledger.limit if scope == "shared" else ledger.per_target[target]
        share = ledger.max_share_of_remaining if outcome.startswith("share:") else None
        raise ledger._refusal(window, target, amount, limit, tally, scope, share=share)

    def _least_left(self, nanos: int) -> str:
        """The share rule as an integer: refused when less than ``ceil(amount / share)`` is left ('' = no rule)."""
        if self._share is None or not nanos:
            return ""
        numerator, denominator = self._share
        least = -(-nanos * denominator // numerator)
        # For an integer amount left, ``amount > share * left`` holds exactly when ``left < least``.
        return str(least) if least <= MAX_NANOS else _BEYOND

    def _saw(self, window: _Window, reply: list[bytes], target: str, added: int) -> None:
        """Remember the largest ``spent + reserved`` seen in this period (all, and ``target``'s)."""
        if window is not self._keys_window:
            return
        epoch = reply[1].decode()
        used = int(reply[2]) + int(reply[3]) + added
        self._used = used if epoch != self._epoch else max(self._used, used)
        self._epoch = epoch
        seen = self._seen.get(target)
        used = int(reply[4]) + int(reply[5]) + added
        if seen is None or seen[0] != epoch or seen[1] < used:
            self._seen[target] = (epoch, used)

    def _period_keys(self, window: _Window) -> tuple[str, str, str]:
        if window is not self._keys_window:
            self._keys = period_keys(self.state, self.ledger.name, window.label)
            self._keys_window = window
            self._epoch, self._used, self._seen = "", 0, {}
        return self._keys

    def _reserve_locally(self, target: str, amount: Decimal, hold: str, held: str) -> Reservation:
        """``fail_open``: hold against this replica's own copy of the caps while Redis is down."""
        if self._local is None:
            ledger = self.ledger
            self._local = BudgetLedger(ledger.limit, period=ledger.period, per_target=ledger.per_target,
                                       max_share_of_remaining=ledger.max_share_of_remaining, clock=ledger._clock)
        local = self._local.reserve(target, amount)
        self.local_reservations += 1
        keys = period_keys(self.state, self.ledger.name, local.period)
        return SharedReservation(self, local._window, target, amount, hold, held, keys, local)

    # -- settling ----------------------------------------------------------------------------

    def _close(self, reservation: SharedReservation, cost: Decimal | None, *, unpriced: bool,
               estimated: bool) -> Decimal:
        """Settle (``cost`` given) or release ``reservation`` now; tell Redis in the background."""
        with self.ledger._lock:
            state = reservation.state
            if state == "settled" or (state == "released" and cost is None):
                return reservation.actual or _ZERO
            if cost is None:
                reservation.state = "released"
            else:
                reservation.state, reservation.actual = "settled", cost
        local = reservation.local
        if local is not None:
            local._ledger._close(local, cost, unpriced=unpriced, estimated=estimated)
            if cost is None:
                return _ZERO
            mode, marker, held = "add", f"{reservation.hold}:local", int(reservation.nanos)
        elif cost is None:
            mode, marker, held = "release", reservation.hold, 0
        elif state == "open":
            mode, marker, held = "settle", reservation.hold, int(reservation.nanos)
        else:  # a cost reported after a release: still spent
            mode, marker, held = "add", f"{reservation.hold}:late", 0
        spent = 0 if cost is None else nanos_up(cost)
        self._send(mode, marker, reservation.nanos, reservation.hold, reservation.target, spent,
                   max(spent - held, 0), unpriced, estimated, reservation.keys, reservation._window)
        return _ZERO if cost is None else cost

    def _send(self, mode: str, marker: str, held: str, hold: str, target: str, cost: int, overrun: int,
              unpriced: bool, estimated: bool, keys: tuple[str, str, str], window: _Window) -> None:
        args = ("\n".join((mode, marker, str(cost), str(overrun), "1" if unpriced else "0", "1" if estimated else "0",
                           _key_ttl_ms(window, self.ledger._clock()), _SWEEP, self.marker_ttl_ms, held, hold,
                           target)),)
        self.state.defer(CLOSE, keys, args)  # batched with other settles: one round trip for several calls

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self) -> BudgetSnapshot:
        """The current period's totals across every replica, read from Redis (blocking, off the hot path)."""
        ledger = self.ledger
        with ledger._lock:
            window = ledger._current(ledger._clock())
        totals_key = period_keys(self.state, ledger.name, window.label)[0]
        fields = {k.decode(): v for k, v in self.state.read(lambda client: client.hgetall(totals_key)).items()}
        targets: dict[str, TargetSpend] = {}
        for field, value in fields.items():
            name, _, what = field[2:].rpartition(":")
            if field.startswith("t:") and what in ("spent", "reserved"):
                spend = targets.setdefault(name, TargetSpend(cap=ledger.per_target.get(name), spent=_ZERO,
                                                             reserved=_ZERO))
                spend["spent" if what == "spent" else "reserved"] = dollars(value)
        money = {name: dollars(fields.get(name, 0)) for name in ("spent", "reserved", "overrun", "restored")}
        counts = {name: int(fields.get(name, 0)) for name in ("open", "overruns", "unpriced", "estimated",
                                                               "refused", "expired")}
        names = sorted(set(targets) | set(ledger.per_target))
        return BudgetSnapshot(
            period=ledger.period, period_label=window.label, period_start=_iso(window.start),
            period_end=_iso(window.end), limit=ledger.limit,
            spent=money["spent"],
            reserved=money["reserved"],
            remaining=max(ledger.limit - money["spent"] - money["reserved"], _ZERO),
            open_reservations=counts["open"],
            overrun=money["overrun"],
            overruns=counts["overruns"], unpriced=counts["unpriced"], estimated=counts["estimated"],
            refused=counts["refused"], expired=counts["expired"],
            max_share_of_remaining=ledger.max_share_of_remaining,
            targets={name: targets.get(name) or TargetSpend(cap=ledger.per_target.get(name), spent=_ZERO,
                                                            reserved=_ZERO) for name in names},
            restored=money["restored"],
            backend="redis",
        )


def _unavailable(exc: Exception, state: RedisState) -> StateUnavailableError:
    if isinstance(exc, StateUnavailableError):
        return exc
    return StateUnavailableError(f"shared state (redis, prefix {state.prefix!r}) refused the budget script: "
                                 f"{type(exc).__name__}: {exc}"[:300], provider="state",
                                 retry_after=state.retry_interval_s)


def period_keys(state: RedisState, name: str, label: str) -> tuple[str, str, str]:
    """The totals hash, the open holds and the closed ids of ledger ``name``'s period ``label``."""
    totals = state.key("budget", name, label)
    return totals, f"{totals}:holds", f"{totals}:closed"


def _key_ttl_ms(window: _Window, now: float) -> str:
    """Keep a period's keys until one period after it ends ('' = never: the ``total`` period)."""
    if window.label == "total":
        return ""
    return str(max(int((window.end - now + (window.end - window.start)) * 1000), 1))

