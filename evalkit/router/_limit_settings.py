"""What a target's :class:`Limits` are: the settings a :class:`~evalkit.router.limits.LimitedTarget` enforces.

Kept apart from the enforcement so the YAML parser and the exporters can read and check limits without
loading the buckets, the adaptive limit and the shared-rate machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._aimd import checked_floor

__all__ = ["ON_SATURATED", "Limits", "OnSaturated"]

OnSaturated = Literal["skip", "wait"]
ON_SATURATED: tuple[OnSaturated, ...] = ("skip", "wait")
"""What a saturated :class:`LimitedTarget` does: refuse at once, or wait for capacity."""



@dataclass(frozen=True, slots=True)
class Limits:
    """How much one target may be asked, and what to do when it is saturated.

    ``None`` means unlimited. ``rpm`` and ``tpm`` are token buckets holding one
    minute's budget and refilling continuously. ``on_saturated="skip"`` refuses
    at once; ``"wait"`` queues (first come, first served) for at most
    ``max_wait_s`` seconds, then refuses.

    ``adaptive=True`` makes ``max_in_flight`` a ceiling: the calls allowed in
    flight are halved when the vendor throttles and grow back slowly (AIMD),
    never below ``min_in_flight``.
    """

    max_in_flight: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    on_saturated: OnSaturated = "skip"
    max_wait_s: float = 30.0
    adaptive: bool = False
    min_in_flight: int = 1

    def __post_init__(self) -> None:
        if self.max_in_flight is not None:
            if int(self.max_in_flight) != self.max_in_flight or self.max_in_flight < 1:
                raise ValueError(f"max_in_flight must be a positive integer, got {self.max_in_flight!r}")
            object.__setattr__(self, "max_in_flight", int(self.max_in_flight))
        for field_name in ("rpm", "tpm"):
            value = getattr(self, field_name)
            if value is not None and not value > 0:
                raise ValueError(f"{field_name} must be positive, got {value!r}")
        if self.on_saturated not in ("skip", "wait"):
            raise ValueError(f"on_saturated must be 'skip' or 'wait', got {self.on_saturated!r}")
        if not self.max_wait_s >= 0:
            raise ValueError(f"max_wait_s must not be negative, got {self.max_wait_s!r}")
        floor = checked_floor(self.adaptive, self.min_in_flight, self.max_in_flight)
        object.__setattr__(self, "min_in_flight", floor)
