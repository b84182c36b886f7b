"""Circuit breakers shared by replicas through Redis: one state per target name, one half-open probe.

A :class:`SharedBreaker` is a :class:`~evalkit.router.health.CircuitBreaker`
whose open / half-open / closed state lives in Redis under
``<prefix>:breaker:<target name>``, so every replica (every router built with
the same :class:`~evalkit.router.state.RedisState`) skips a target one of them
found down, sends exactly one half-open probe between them, and honours a
vendor's ``Retry-After`` for as long as the vendor asked.

**The closed state costs no Redis round trip.** Each replica keeps a mirror
of the shared state: a transition is written by a Lua script (using Redis
``TIME``, so replicas' clocks never meet) and published on the ``breaker``
channel; every replica's listener applies it to its mirror (sub-millisecond on
loopback), so "A opened it" holds on B's next call once the message is there.
A call only reads the mirror, except where the answer must come from Redis:

* the first call in an event loop reads every breaker's shared state once (a
  replica that just started must not hammer a target the others know is down);
* taking the half-open probe is one awaited script: ``SET NX`` with an expiry
  of one ``cooldown_s`` (the probe's lease), so a replica that dies holding
  the probe blocks the others for one more cooldown, not forever. One probe
  per cooldown across replicas, then: a probe slower than ``cooldown_s`` may
  meet a second one.

Writes (opening, closing, giving a probe back) run in the background. The
mirror is read again whenever Redis answers after an outage
(:meth:`~evalkit.router.state.RedisState.on_recover`), because messages
published meanwhile were lost. If a script notices the recovery before the
listener has resubscribed, a transition published in between is missed until
the next one; the mirror still converges, since every script's answer (the
probe, this replica's own writes) carries the shared state.

Times cross replicas only as durations measured by Redis ("open for 7.2 s
more"), turned into this process's clock when they arrive; each transition
carries an *epoch* (Redis time in µs when it happened, always increasing), so a
late or reordered message never undoes a newer state. A Redis that restarted
empty has no record: each replica keeps what it saw until its cooldown ends.

**Failures are counted per replica**: each replica's consecutive failures and
failure-rate window are its own, as without Redis. A shared count would need a
write on every call (a success resets the count of failures in a row), which
the zero-round-trip closed state rules out, and batching it would blur "in a
row" across processes. So a circuit opens when one replica has seen enough
failures (with N replicas, up to N x ``consecutive_failures`` - 1 failures can
reach a down target before any opens, against ``consecutive_failures`` in one
process); what is shared is what the issue is about: a state any replica
reached holds for all, and the single probe.

**Opening counts**: ``breaker.opens`` and the router monitor's
``breaker_opened`` count an opening once, on the replica whose script made it
(a second replica that trips its own counters before the message arrives finds
the circuit open already and extends it: not a new opening). A mirrored
opening is not counted: it shows as the target's ``circuit_open`` skips. An
opening made while Redis is down is counted by its replica as soon as its write
finds Redis down, and not again when that write goes through later.

**Redis down**: every breaker falls back to its own state, exactly an
in-process breaker (its own probe, its own cooldowns); what it changed meanwhile
is written when Redis is back (the write is re-run by the state, and writes the
breaker's state at that moment), and the rest is read from Redis then.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import StateUnavailableError
from ._breaker_scripts import CLOSE, OPEN, PROBE, READ, RELEASE
from .health import BreakerSettings, CircuitBreaker

if TYPE_CHECKING:
    from ._base import Router
    from .state import RedisState

__all__ = ["BreakerOpened", "SharedBreaker", "breaker_opened_hook", "make_breaker"]

BreakerOpened: TypeAlias = Callable[[str], object]
"""What a breaker-keeping router calls with a target's name when that target's breaker opens
(:meth:`Monitor.breaker_opened <evalkit.router.monitor.Monitor.breaker_opened>` is one)."""

CHANNEL = "breaker"

_TOKENS = itertools.count(1)


class SharedBreaker(CircuitBreaker):
    """A circuit breaker for ``target`` whose state every replica sharing ``state`` sees (module docstring).

    :meth:`acquire` answers from this replica's mirror without I/O, or
    ``None`` when the answer needs Redis (the first look in an event loop, the
    half-open probe): then ``await`` :meth:`acquire_async`. Use it from a
    running event loop (routers do).
    """

    __slots__ = ("__weakref__", "_epoch", "_holds_probe", "_keys", "_lease_ms", "_mirror", "_pending", "_queued",
                 "_seen_loop", "_shared", "_token", "_uncounted", "target")

    def __init__(self, target: str, state: RedisState, settings: BreakerSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic, on_open: Callable[[], None] | None = None) -> None:
        super().__init__(settings, clock=clock, on_open=on_open)
        self.target = target
        self._shared = state
        self._keys = (state.key("breaker", target), state.key("breaker", target, "probe"))
        self._lease_ms = max(int(self.settings.cooldown_s * 1000), 1)
        self._epoch = 0
        self._holds_probe = False
        self._token = ""
        self._seen_loop: asyncio.AbstractEventLoop | None = None
        self._pending = self._queued = self._uncounted = False
        self._mirror = _mirror_of(state)
        self._mirror.add(self)

    def __repr__(self) -> str:
        return f"SharedBreaker({self.target!r}, {self.state})"

    # -- asking for a call (the routers' path) -----------------------------------------------------

    def acquire(self) -> bool | None:
        """``True``/``False`` from the mirror (no I/O), or ``None``: await :meth:`acquire_async`."""
        self._shared.ensure_listening()
        if self._seen_loop is not asyncio.get_running_loop():
            return None  # this loop's first call: look at the shared state first
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False if self._clock() < self._open_until else None
        return False if self._probing else None  # half-open: the probe is taken through Redis

    async def acquire_async(self) -> bool:
        """Permission for one call, asking Redis when needed; in half-open one probe across all replicas."""
        if self._seen_loop is not asyncio.get_running_loop():
            await self._mirror.first_look(self)
        verdict = self.acquire()
        return verdict if verdict is not None else await self._take_probe()

    async def _take_probe(self) -> bool:
        # While this replica asks, its other calls see a probe in progress and skip: one ask per replica.
        self.state, self._probing = "half_open", True
        self._token = token = f"{self._shared.replica}:{next(_TOKENS)}"
        try:
            got, epoch, remaining = await self._shared.run(PROBE, self._keys, (token, self._lease_ms))
        except StateUnavailableError:
            return True  # Redis is down: this replica's own probe, as an in-process breaker sends
        except BaseException:
            self._probing = False  # cancelled while asking; a probe taken meanwhile lapses after its lease
            raise
        if self._token != token or epoch < self._epoch:
            # Superseded while asking: a newer transition (it voided any probe taken) or another ask.
            return self.state == "closed"
        if got == 1:
            self._holds_probe, self._epoch = True, epoch
            return True
        if got == 2:  # another replica probes: ask again when its lease ends, unless its verdict comes first
            self.state, self._probing = "open", False
            self._open_until = self._clock() + remaining / 1000.0
            return False
        self._apply(epoch, remaining)  # closed, or still cooling down by Redis's clock
        return self.state == "closed"

    # -- transitions: the in-process ones, then written to Redis in the background -------------------

    def _open(self, seconds: float) -> None:
        super()._open(seconds)
        self._holds_probe = False  # the OPEN script voids the probe key
        self._write_soon()

    def _opened(self) -> None:
        self._uncounted = True  # counted once Redis says whether this replica's opening was a new one

    def _close(self) -> None:
        super()._close()
        self._holds_probe = False  # the CLOSE script deletes the probe key
        self._write_soon()

    def _drop_probe(self) -> None:
        super()._drop_probe()
        if self._holds_probe:
            self._holds_probe = False
            shared, key, token = self._shared, self._keys[1], self._token
            shared.background(lambda: shared.run(RELEASE, (key,), (token,)))

    def _write_soon(self) -> None:
        self._pending = True
        if not self._queued:
            self._queued = True
            self._shared.background(self._write)

    async def _write(self) -> None:
        """Write this replica's state as it is now; run again by the state after an outage."""
        try:
            while self._pending:
                self._pending = False
                await self._write_state()
        except StateUnavailableError:
            self._pending = True
            self._count_here()  # Redis cannot say whose opening it was: it is this replica's
            raise  # still queued: the state runs this again once Redis is back
        except BaseException:
            self._queued = False
            raise
        self._queued = False

    async def _write_state(self) -> None:
        shared = self._shared
        if self.state == "open":
            ms = int((self._open_until - self._clock()) * 1000.0)
            if ms <= 0:
                self._count_here()
                return  # the opening ended before Redis heard of it
            changed, epoch, remaining = await shared.run(OPEN, self._keys, (ms, shared.replica))
            if changed == 1:
                self._count_here()
            self._uncounted = False  # changed 0/2: another replica's opening, extended
        elif self.state == "closed":
            changed, epoch, remaining = await shared.run(CLOSE, self._keys, (self._epoch,))
        else:
            return  # half-open: the probe's verdict is the next write
        if epoch > self._epoch or (epoch == self._epoch and self.state != "half_open"):
            self._apply(epoch, remaining)
        if changed:
            await shared.publish(CHANNEL, json.dumps({"t": self.target, "e": epoch, "ms": remaining,
                                                      "by": shared.replica}))

    def _count_here(self) -> None:
        if self._uncounted:
            self._uncounted = False
            super()._opened()

    # -- the mirror: what other replicas did -------------------------------------------------------

    def _apply(self, epoch: int, remaining_ms: int) -> None:
        """Make this replica's state the shared one: open for ``remaining_ms`` more, or closed (-1)."""
        was = self.state
        self._epoch = epoch
        self._probing = self._holds_probe = False
        if remaining_ms < 0:
            self.state = "closed"
        else:
            self.state = "open"  # 0: the cooldown is over, the next call asks for the probe
            self._open_until = self._clock() + remaining_ms / 1000.0
        if self.state != was:
            self._consecutive, self._buckets = 0, []

    def _heard(self, epoch: int, remaining_ms: int) -> None:
        """A transition published by a replica (this one included)."""
        if epoch > self._epoch:
            self._apply(epoch, remaining_ms)
        elif epoch == self._epoch and remaining_ms > 0 and self.state == "open":
            self._open_until = max(self._open_until, self._clock() + remaining_ms / 1000.0)

    def _read_back(self, epoch: int, remaining_ms: int) -> None:
        """The shared state as read from Redis (after an outage, or in an event loop's first call)."""
        if self._queued or epoch < self._epoch:
            return  # this replica's own write is on its way, or a newer message came meanwhile
        if epoch == 0:
            return  # no record (Redis restarted empty): what this replica saw still holds until it expires
        if self.state == "half_open" and epoch == self._epoch:
            return  # this replica is probing the state Redis holds
        self._apply(epoch, remaining_ms)


def breaker_opened_hook(router: Router, target: str, on_breaker_open: BreakerOpened | None) -> Callable[[], None]:
    """What the breaker of ``target`` in ``router`` calls when it opens.

    ``on_breaker_open`` (given by whoever built the tree: ``Router.from_config``
    gives every node of a config the config's one monitor) when there is one,
    else the router's own monitor, looked up when the breaker opens. Only one
    of the two is told, so an opening is counted once.
    """
    if on_breaker_open is None:
        return router._opened_callback(target)

    def opened() -> None:
        on_breaker_open(target)

    return opened


def make_breaker(target: str, settings: BreakerSettings | None, *, clock: Callable[[], float],
                 on_open: Callable[[], None] | None, state: RedisState | None) -> CircuitBreaker:
    """The breaker of ``target``: in-process without a state, shared through Redis with one."""
    if state is None:
        return CircuitBreaker(settings, clock=clock, on_open=on_open)
    return SharedBreaker(target, state, settings, clock=clock, on_open=on_open)


class _Mirror:
    """Every shared breaker of one :class:`RedisState`, fed by one subscription (a channel has one handler)."""

    def __init__(self, state: RedisState) -> None:
        self._state = weakref.ref(state)  # the state holds this mirror (its handlers), not the reverse
        self._breakers: dict[str, weakref.WeakSet[SharedBreaker]] = {}
        self._looking: asyncio.Task[None] | None = None
        state.subscribe(CHANNEL, self._message)
        state.on_recover(self._recovered)
        state.on_subscribed(self._recovered)

    def add(self, breaker: SharedBreaker) -> None:
        self._breakers.setdefault(breaker.target, weakref.WeakSet()).add(breaker)

    def _message(self, text: str) -> None:
        try:
            message = json.loads(text)
            target, epoch, remaining = message["t"], int(message["e"]), int(message["ms"])
        except (ValueError, KeyError, TypeError):
            return  # not a breaker transition: nothing to apply
        for breaker in list(self._breakers.get(target, ())):
            breaker._heard(epoch, remaining)

    def _recovered(self) -> None:
        state = self._state()
        if state is not None:
            state.background(self.read)

    async def first_look(self, breaker: SharedBreaker) -> None:
        """Read the shared states once for every call that arrives before the first read is done."""
        loop = asyncio.get_running_loop()
        while breaker._seen_loop is not loop:
            task = self._looking
            if task is None or task.done() or task.get_loop() is not loop:
                task = self._looking = loop.create_task(self.read(loop))
            await asyncio.shield(task)  # one caller cancelled must not cancel the others' read

    async def read(self, seen: asyncio.AbstractEventLoop | None = None) -> None:
        """Apply every breaker's shared state; ``seen``: mark them as having looked in that loop."""
        state = self._state()
        if state is None:
            return
        groups = [(name, list(breakers)) for name, breakers in self._breakers.items()]
        answer: Any = None
        try:
            answer = await state.run(READ, [state.key("breaker", name) for name, _ in groups], ())
        except StateUnavailableError:
            pass  # local state meanwhile; on_recover reads again
        if answer is not None:
            for i, (_, breakers) in enumerate(groups):
                for breaker in breakers:
                    breaker._read_back(answer[2 * i], answer[2 * i + 1])
        if seen is not None:
            for _, breakers in groups:
                for breaker in breakers:
                    breaker._seen_loop = seen


_MIRRORS: weakref.WeakKeyDictionary[Any, _Mirror] = weakref.WeakKeyDictionary()


def _mirror_of(state: RedisState) -> _Mirror:
    mirror = _MIRRORS.get(state)
    if mirror is None:
        mirror = _MIRRORS[state] = _Mirror(state)
    return mirror
