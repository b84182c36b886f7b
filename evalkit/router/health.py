"""Health of one target: a circuit breaker, in-flight count and an EWMA of latency."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..errors import ErrorKind, ProviderError
from ._aimd import LocalLimitError

__all__ = ["BreakerSettings", "CircuitBreaker", "TargetHealth"]

# Failures that say something about the target, not about the request.
_TARGET_FAULTS = frozenset({
    ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED, ErrorKind.SERVER, ErrorKind.TIMEOUT, ErrorKind.CONNECTION,
    ErrorKind.STREAM_INTERRUPTED, ErrorKind.INVALID_RESPONSE, ErrorKind.AUTH, ErrorKind.NOT_FOUND,
})


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a circuit opens and for how long.

    Opens after ``consecutive_failures`` failures in a row, or when at least
    ``min_volume`` calls in the last ``window_s`` seconds failed at a rate of
    ``failure_rate`` or more. Stays open ``cooldown_s``, then lets one probe
    through (half-open): success closes it, failure opens it again. A rate
    limit with ``retry_after`` opens it for that long instead.
    """

    consecutive_failures: int = 5
    failure_rate: float = 0.5
    window_s: float = 60.0
    min_volume: int = 20
    cooldown_s: float = 30.0
    max_retry_after_s: float = 300.0


class CircuitBreaker:
    """closed → open → half-open → closed, per :class:`BreakerSettings`.

    The failure-rate window is kept in ten time buckets, so memory stays
    constant however busy the target is.
    """

    __slots__ = ("settings", "state", "_clock", "_on_open", "_open_until", "_consecutive",
                 "_probing", "_buckets", "_bucket_s", "opens")

    def __init__(self, settings: BreakerSettings | None = None, *, clock: Callable[[], float] = time.monotonic,
                 on_open: Callable[[], None] | None = None) -> None:
        self.settings = settings or BreakerSettings()
        self.state = "closed"
        self.opens = 0
        self._clock = clock
        self._on_open = on_open
        self._open_until = 0.0
        self._consecutive = 0
        self._probing = False
        self._bucket_s = self.settings.window_s / 10
        self._buckets: list[list[float]] = []  # [bucket start, calls, failures]

    def available(self) -> bool:
        """Could a call be sent now? (Does not take the half-open probe.)"""
        if self.state == "closed":
            return True
        if self.state == "open":
            return self._clock() >= self._open_until
        return not self._probing

    def acquire(self) -> bool | None:
        """Take permission to send one call; in half-open only one probe gets it.

        This in-process breaker always answers ``True`` or ``False``. A breaker
        shared through Redis (:class:`~evalkit.router._shared_breaker.SharedBreaker`)
        may answer ``None``: the answer needs Redis (the half-open probe, or its
        first look at the shared state), so ``await`` :meth:`acquire_async`.
        """
        if self.state == "closed":
            return True
        if self.state == "open":
            if self._clock() < self._open_until:
                return False
            self.state = "half_open"
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    async def acquire_async(self) -> bool:
        """:meth:`acquire` for callers that can wait; what routers await when :meth:`acquire` says ``None``."""
        return bool(self.acquire())

    def release(self) -> None:
        """Give back a permission from :meth:`acquire` without a verdict (the call was cancelled).

        In half-open the probe slot is freed, so the next call probes;
        otherwise there is nothing to give back.
        """
        if self.state == "half_open":
            self._drop_probe()

    def record_success(self) -> None:
        self._consecutive = 0
        self._count(failed=False)
        if self.state == "half_open":
            self._close()

    def record_failure(self, error: ProviderError) -> None:
        """Count a failure; open the circuit when the settings say so."""
        if error.kind not in _TARGET_FAULTS:
            if self.state == "half_open":
                self._drop_probe()  # the probe proved nothing about the target
            return
        s = self.settings
        if isinstance(error, LocalLimitError) and not error.retry_after:
            return  # our own in-flight cap said "busy": no news about the target's health
        if error.kind is ErrorKind.RATE_LIMIT and error.retry_after:
            self._open(min(error.retry_after, s.max_retry_after_s))
            return
        if self.state == "half_open":
            self._open(s.cooldown_s)
            return
        self._consecutive += 1
        calls, failures = self._count(failed=True)
        if self._consecutive >= s.consecutive_failures or (
            calls >= s.min_volume and failures / calls >= s.failure_rate
        ):
            self._open(s.cooldown_s)

    def _open(self, seconds: float) -> None:
        was_open = self.state == "open"
        self.state = "open"
        self._probing = False
        self._open_until = max(self._open_until, self._clock() + seconds)
        self._consecutive = 0
        self._buckets = []
        if not was_open:
            self._opened()

    # Transitions a shared breaker extends (it also writes them to Redis); not on the closed-state path.

    def _opened(self) -> None:
        """A new opening (closed or half-open → open): count it and tell the monitor."""
        self.opens += 1
        if self._on_open is not None:
            self._on_open()

    def _close(self) -> None:
        """The half-open probe succeeded."""
        self.state, self._probing, self._buckets = "closed", False, []

    def _drop_probe(self) -> None:
        """The half-open probe ended without a verdict: the next call may probe."""
        self._probing = False

    def _count(self, *, failed: bool) -> tuple[float, float]:
        now = self._clock()
        start = now - now % self._bucket_s
        buckets = self._buckets
        if not buckets or buckets[-1][0] != start:
            buckets.append([start, 0.0, 0.0])
            horizon = now - self.settings.window_s
            while buckets and buckets[0][0] + self._bucket_s <= horizon:
                buckets.pop(0)
        buckets[-1][1] += 1
        buckets[-1][2] += failed
        return sum(b[1] for b in buckets), sum(b[2] for b in buckets)


class TargetHealth:
    """What a balancer knows about one target: breaker, calls in flight, latency EWMA."""

    __slots__ = ("breaker", "in_flight", "ewma_ms", "samples", "_alpha")

    def __init__(self, breaker: CircuitBreaker, alpha: float = 0.2) -> None:
        self.breaker = breaker
        self.in_flight = 0
        self.ewma_ms = 0.0
        self.samples = 0
        self._alpha = alpha

    def observe_latency(self, latency_ms: float) -> None:
        # The first sample seeds the average; afterwards it moves by alpha.
        self.ewma_ms = latency_ms if self.samples == 0 else (
            self._alpha * latency_ms + (1 - self._alpha) * self.ewma_ms)
        self.samples += 1
