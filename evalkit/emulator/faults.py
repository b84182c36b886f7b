"""Fault kinds, scripted fault sequences and rate-based fault draws.

A fault reaches a request in one of three ways, checked in this order:

1. the request header ``x-evalkit-fault: KIND`` (with optional
   ``x-evalkit-retry-after: SECONDS`` and ``x-evalkit-stall-s: SECONDS``);
2. the model's script, a queue of steps consumed one per call (from the fleet
   file, :meth:`Emulator.script` or ``POST /_emulator/script``);
3. the model's fault rates, drawn per attempt from the seeded RNG.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._seeding import unit_draw

MAX_SCRIPT_TIMES = 10_000
"""Most times one scripted step may repeat (each repeat is kept in memory, so one request could ask for GBs)."""

__all__ = [
    "FAULT_KINDS",
    "STREAM_ONLY_KINDS",
    "FaultScripts",
    "FaultStep",
    "canonical_kind",
    "draw_rate_fault",
    "parse_step",
    "parse_steps",
]

FAULT_KINDS: tuple[str, ...] = (
    "429",
    "500",
    "502",
    "503",
    "529",
    "reset",
    "timeout",
    "stall",
    "cut",
    "malformed",
    "empty",
    "context_length",
    "content_filter",
)
"""Every fault the emulator can inject, by the name the header takes."""

STREAM_ONLY_KINDS = frozenset({"stall", "cut"})
"""Kinds whose natural home is a stream; on a non-streamed call they stall or cut the body."""

_ALIASES = {
    "rate_limit": "429",
    "server": "500",
    "server_error": "500",
    "bad_gateway": "502",
    "unavailable": "503",
    "overloaded": "529",
    "connection_reset": "reset",
    "refusal": "content_filter",
}
_NO_FAULT = frozenset({"ok", "none", "pass", ""})


def canonical_kind(name: object) -> str | None:
    """The canonical kind for ``name`` (an alias such as ``rate_limit`` or a kind); None for ``ok``.

    Raises ``ValueError`` naming the known kinds for anything else.
    """
    if name is None:
        return None
    text = str(name).strip().lower()
    if text in _NO_FAULT:
        return None
    text = _ALIASES.get(text, text)
    if text not in FAULT_KINDS:
        known = ", ".join(FAULT_KINDS + tuple(sorted(_ALIASES)))
        raise ValueError(f"unknown fault kind {name!r}; known: {known}, ok")
    return text


@dataclass(frozen=True, slots=True)
class FaultStep:
    """One injected fault (``kind`` None means "answer normally").

    ``retry_after`` is the Retry-After seconds of a 429 (None: the model's
    default); ``stall_s`` how long ``timeout``/``stall`` hold the response.
    """

    kind: str | None
    retry_after: float | None = None
    stall_s: float | None = None


def parse_step(value: Any) -> list[FaultStep]:
    """Steps from ``"429"``, ``"ok"`` or ``{"kind": "429", "retry_after": 2, "times": 3}``.

    ``ValueError`` for a bad value, ``TypeError`` for a step of the wrong type.
    """
    if value is None or isinstance(value, (str, int)):
        return [FaultStep(canonical_kind(value))]
    if not isinstance(value, Mapping):
        raise TypeError(f"a script step is a kind name or a mapping, got {type(value).__name__}")
    unknown = set(value) - {"kind", "fault", "retry_after", "retry_after_s", "stall_s", "times"}
    if unknown:
        raise ValueError(f"unknown script step field(s): {', '.join(sorted(map(str, unknown)))}")
    kind = canonical_kind(value.get("kind", value.get("fault")))
    retry_after = _optional_seconds(value.get("retry_after", value.get("retry_after_s")), "retry_after")
    stall_s = _optional_seconds(value.get("stall_s"), "stall_s")
    times = value.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= MAX_SCRIPT_TIMES:
        raise ValueError(f"times must be a whole number from 1 to {MAX_SCRIPT_TIMES}, got {times!r}")
    return [FaultStep(kind, retry_after, stall_s)] * times


def parse_steps(values: Iterable[Any]) -> list[FaultStep]:
    """All steps of a script, in order (``times`` expanded)."""
    if isinstance(values, (str, bytes, Mapping)):
        raise TypeError("a script is a list of steps")
    steps: list[FaultStep] = []
    for value in values:
        steps.extend(parse_step(value))
    return steps


def _optional_seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite, non-negative number of seconds, got {value!r}")
    return float(value)


class FaultScripts:
    """Per-model queues of scripted steps; thread-safe (the test thread programs, the server consumes)."""

    def __init__(self, initial: Mapping[str, Iterable[FaultStep]] | None = None) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[FaultStep]] = {}
        self._initial = {model: tuple(steps) for model, steps in (initial or {}).items()}
        self.reset()

    def reset(self) -> None:
        """Back to the scripts the fleet file declared."""
        with self._lock:
            self._queues = {model: deque(steps) for model, steps in self._initial.items() if steps}

    def program(self, model: str, steps: Iterable[FaultStep], *, append: bool = False) -> None:
        """Set (or extend) the queue of ``model``."""
        with self._lock:
            queue = self._queues.setdefault(model, deque())
            if not append:
                queue.clear()
            queue.extend(steps)

    def next_step(self, model: str) -> FaultStep | None:
        """The next scripted step for ``model``, consumed; None when its queue is empty."""
        with self._lock:
            queue = self._queues.get(model)
            return queue.popleft() if queue else None

    def pending(self) -> dict[str, list[str]]:
        """What is still queued, per model (kinds; ``ok`` for a normal answer)."""
        with self._lock:
            return {m: [s.kind or "ok" for s in q] for m, q in self._queues.items() if q}


def draw_rate_fault(rates: Mapping[str, float], seed: int, *key: object) -> str | None:
    """The fault kind a seeded draw picks from ``rates`` (kind -> probability), or None.

    ``key`` names the attempt (model, request fingerprint, attempt number), so
    the draw does not depend on the order requests arrive in.
    """
    if not rates:
        return None
    u = unit_draw(seed, "fault", *key)
    edge = 0.0
    for kind in FAULT_KINDS:  # fixed order keeps draws stable when the mapping's order changes
        edge += rates.get(kind, 0.0)
        if u < edge:
            return kind
    return None
