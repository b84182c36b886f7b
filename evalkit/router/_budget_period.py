"""A budget period: its UTC bounds and what was spent and held in it (used by :mod:`evalkit.router.budget`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, NotRequired, TypedDict

Period = Literal["day", "hour", "month", "total"]
"""A budget's period: calendar day, hour or month in UTC, or ``total`` (never resets)."""
_ZERO = Decimal(0)


class TargetSpend(TypedDict):
    """One target's part of a :class:`BudgetSnapshot` (USD; ``cap`` ``None`` when it has none of its own)."""

    cap: Decimal | None
    spent: Decimal
    reserved: Decimal


class BudgetSnapshot(TypedDict):
    """What :meth:`~evalkit.router.BudgetLedger.snapshot` returns: the current period's totals, money as ``Decimal``."""

    period: Period
    period_label: str
    period_start: str | None
    """ISO 8601 UTC; ``None`` for the ``total`` period, which has no bounds."""
    period_end: str | None
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    remaining: Decimal
    open_reservations: int
    overrun: Decimal
    overruns: int
    unpriced: int
    estimated: int
    refused: int
    max_share_of_remaining: Decimal | None
    targets: dict[str, TargetSpend]
    expired: NotRequired[int]
    """A shared ledger's only: holds of replicas that died mid-call, kept as spent."""
    restored: NotRequired[Decimal]
    backend: NotRequired[str]


class _Tally:
    """Money spent and held by one target (or the whole ledger) in one period."""

    __slots__ = ("reserved", "spent")

    def __init__(self) -> None:
        self.spent = _ZERO
        self.reserved = _ZERO


class _Window:
    """One budget period: its UTC bounds and everything spent or held in it."""

    __slots__ = (
        "end",
        "estimated",
        "label",
        "open",
        "overrun",
        "overruns",
        "refused",
        "start",
        "targets",
        "total",
        "unpriced",
    )

    def __init__(self, start: float, end: float, label: str) -> None:
        self.start, self.end, self.label = start, end, label
        self.total = _Tally()
        self.targets: dict[str, _Tally] = {}
        self.open = 0
        self.overrun = _ZERO  # money settled beyond what was held
        self.overruns = 0
        self.unpriced = 0  # settlements without a known cost
        self.estimated = 0  # settlements of an estimated cost (counted locally, or partly unknown)
        self.refused = 0

    def tally(self, target: str) -> _Tally:
        tally = self.targets.get(target)
        if tally is None:
            tally = self.targets[target] = _Tally()
        return tally


def _window_at(period: str, now: float) -> _Window:
    """The period containing ``now``, aligned to UTC (Unix time has no leap seconds)."""
    if period == "total":
        return _Window(float("-inf"), float("inf"), "total")
    if period == "hour" or period == "day":
        size = 3600 if period == "hour" else 86400
        start = now - now % size
        moment = datetime.fromtimestamp(start, UTC)
        label = moment.strftime("%Y-%m-%dT%H:00Z" if period == "hour" else "%Y-%m-%d UTC")
        return _Window(start, start + size, label)
    moment = datetime.fromtimestamp(now, UTC)
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    after = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    return _Window(first.timestamp(), after.timestamp(), first.strftime("%Y-%m UTC"))


def _iso(moment: float) -> str | None:
    if moment in (float("inf"), float("-inf")):
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
