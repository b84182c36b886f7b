"""The parts of a local limit: a token bucket refilled continuously (``rpm``, ``tpm``) and a queued caller.

Used by :class:`~evalkit.router.limits.LimitedTarget`, and by
:mod:`evalkit.router._shared_rate` while Redis is down.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["TokenBucket", "TokensTaken", "Waiter"]


class TokensTaken(Protocol):
    """The TPM bucket a call took its estimate from, corrected once the call says what it used.

    A local :class:`TokenBucket`, or the shared one (:class:`~evalkit.router._shared_rate.SharedRate`).
    """

    def give_back(self, amount: float) -> None:
        """Return ``amount`` tokens (negative: take the overrun)."""

# Float slack when comparing bucket levels: a waiter that slept exactly the
# computed shortfall must not find itself a billionth of a token short.
_SLACK = 1e-6


class TokenBucket:
    """``per_minute`` capacity, refilled continuously at ``per_minute / 60`` per second.

    ``level`` may go negative: a correction after the fact (more tokens used
    than estimated) is a debt that the refill pays back before the next take.
    """

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = self.capacity / 60.0
        self.level = self.capacity
        self.updated = now

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` can be taken (0.0: now)."""
        if now > self.updated:  # a clock that went backwards refills nothing
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now
        short = min(amount, self.capacity) - self.level
        return 0.0 if short <= _SLACK else short / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount

    def give_back(self, amount: float) -> None:
        """Return ``amount`` (negative: take more), never above capacity."""
        self.level = min(self.capacity, self.level + amount)


class Waiter:
    """One queued call in wait mode; woken when it may be able to proceed."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    async def woken_within(self, timeout_s: float) -> bool:
        """Wait to be woken: False when ``timeout_s`` passed first."""
        self.future = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self.future, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self.future = None
