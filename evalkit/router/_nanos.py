"""Money in Redis: whole nano-dollars (1e-9 USD), never floats, and text from Redis replies.

Every shared component (the budget, the monitor's counters) stores money this
way, so one conversion decides how a Decimal becomes an integer and back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = ["as_text", "dollars", "nanos"]

_PER_USD = Decimal(1_000_000_000)


def nanos(amount: Decimal, rounding: str) -> int:
    """``amount`` USD in whole nano-dollars, rounded with a :mod:`decimal` rounding mode (``ROUND_CEILING``...)."""
    return int((amount * _PER_USD).to_integral_value(rounding=rounding))


def dollars(value: int | bytes | str) -> Decimal:
    """USD, exact, from a count of nano-dollars as Redis returns it."""
    return Decimal(int(value)) / _PER_USD


def as_text(value: Any) -> str:
    """A Redis reply item (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
