"""What every grader returns and the interface every grader offers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..datasets import Item

__all__ = ["Grade", "Grader", "short"]

# Reasons are one line for tables and logs; details carry anything longer.
REASON_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Grade:
    """The verdict on one output: a score in [0, 1], pass/fail and a short reason.

    ``details`` holds what a reader may want to check the verdict against (the
    extracted answer, the judge's text, the process's exit code); its values
    are plain JSON values so results serialise as they are.
    """

    score: float
    passed: bool
    reason: str
    details: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not (
            isinstance(self.score, (int, float)) and math.isfinite(self.score) and 0.0 <= self.score <= 1.0
        ):
            raise ValueError(f"a grade's score must be a number in [0, 1], got {self.score!r}")
        object.__setattr__(self, "score", float(self.score))

    @classmethod
    def correct(cls, reason: str, **details: Any) -> Grade:
        """Score 1, passed."""
        return cls(1.0, True, short(reason), details or None)

    @classmethod
    def wrong(cls, reason: str, **details: Any) -> Grade:
        """Score 0, failed."""
        return cls(0.0, False, short(reason), details or None)

    @classmethod
    def of(cls, ok: bool, reason: str, **details: Any) -> Grade:
        """A binary grade: :meth:`correct` when ``ok``, else :meth:`wrong`."""
        return cls.correct(reason, **details) if ok else cls.wrong(reason, **details)


@runtime_checkable
class Grader(Protocol):
    """Grades a model's output for a dataset item.

    ``grade`` is async because some graders run a subprocess (``code_exec``)
    or call a model (``judge``); the others return at once.
    """

    name: str

    async def grade(self, item: Item, output: str) -> Grade:
        """Grade ``output``, the model's answer to ``item``."""
        ...


def short(text: str, limit: int = REASON_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
