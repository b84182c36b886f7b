"""A token bucket refilled continuously: the RPM and TPM limits of :class:`~evalkit.router.limits.Limits`."""

from __future__ import annotations

__all__ = ["TokenBucket"]

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
