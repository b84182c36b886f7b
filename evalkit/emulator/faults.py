"""Fault kinds, scripted fault sequences and rate-based fault draws.

A fault reaches a request in one of three ways, checked in this order:

1. the request header ``x-evalkit-fault: KIND`` with its parameters, each in a
   header of its own (:data:`PARAMETER_HEADERS`; read only beside
   ``x-evalkit-fault``);
2. the model's script, a queue of steps consumed one per call (from the fleet
   file, :meth:`Emulator.script` or ``POST /_emulator/script``);
3. the model's fault rates, drawn per attempt from the seeded RNG, with the
   parameters of the fleet file's ``faults:`` mapping.

Parameters of a step (every seconds value is wall-clock time, never scaled by
the emulator's ``time_scale``, like ``stall_s`` always was):

* ``retry_after``: the Retry-After of a 429;
* ``stall_s``: how long ``timeout`` and ``stall`` hold;
* ``ttft_s``: how long ``slow_first_token`` holds the first content token;
* ``after_tokens``: where ``stall``, ``cut`` and ``malformed`` strike in a
  stream: after exactly this many answer tokens (unset: their old places);
* ``for_s``: an outage window: the step answers every call to the model for
  this long, from the first call that takes it, and only then is consumed;
* ``prefill``: ``accept`` or ``reject`` a trailing assistant turn (overrides
  the model's ``prefill`` setting; the ``x-evalkit-prefill`` header overrides
  both, with or without ``x-evalkit-fault``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._seeding import unit_draw

MAX_SCRIPT_TIMES = 10_000
"""Most times one scripted step may repeat (each repeat is kept in memory, so one request could ask for GBs)."""

__all__ = [
    "AFTER_TOKENS_KINDS",
    "FAULT_KINDS",
    "PARAMETER_HEADERS",
    "PREFILL_HEADER",
    "PREFILL_MODES",
    "STREAM_ONLY_KINDS",
    "FaultScripts",
    "FaultStep",
    "StepError",
    "canonical_kind",
    "draw_rate_fault",
    "make_step",
    "parse_step",
    "parse_steps",
    "prefill_mode",
    "step_from_headers",
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
    "slow_first_token",
    "no_done",
)
"""Every fault the emulator can inject, by the name the header takes."""

STREAM_ONLY_KINDS = frozenset({"stall", "cut", "no_done"})
"""Kinds whose natural home is a stream; on a non-streamed call they stall or cut the body (``no_done``:
a JSON body has no end-of-stream marker to leave out, so it is a normal answer)."""

AFTER_TOKENS_KINDS = frozenset({"stall", "cut", "malformed"})
"""Kinds that take ``after_tokens`` (where in a stream they strike)."""

PREFILL_MODES = ("accept", "reject")
"""What a model does with a request whose last turn is the assistant's."""

PARAMETER_HEADERS = {
    "retry_after": "x-evalkit-retry-after",
    "stall_s": "x-evalkit-stall-s",
    "ttft_s": "x-evalkit-ttft-s",
    "after_tokens": "x-evalkit-after-tokens",
    "for_s": "x-evalkit-for-s",
}
"""The request header of each step parameter, read beside ``x-evalkit-fault``."""

PREFILL_HEADER = "x-evalkit-prefill"
"""``accept`` or ``reject``: what this call does with a trailing assistant turn, whatever the fault."""

_ALIASES = {
    "rate_limit": "429",
    "server": "500",
    "server_error": "500",
    "bad_gateway": "502",
    "unavailable": "503",
    "overloaded": "529",
    "connection_reset": "reset",
    "refusal": "content_filter",
    "slow_ttft": "slow_first_token",
    "missing_done": "no_done",
    "no_terminator": "no_done",
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
    """One injected fault (``kind`` None means "answer normally") and its parameters.

    Unset parameters (None) fall back to the model's ``faults:`` settings; see
    the module docstring for what each one means.
    """

    kind: str | None
    retry_after: float | None = None
    stall_s: float | None = None
    ttft_s: float | None = None
    after_tokens: int | None = None
    for_s: float | None = None
    prefill: str | None = None


class StepError(ValueError):
    """A bad step parameter; ``field`` names it (``after_tokens``), so a header can be named instead."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


_STEP_FIELDS = frozenset(
    {"kind", "fault", "retry_after", "retry_after_s", "stall_s", "ttft_s", "after_tokens", "for_s", "prefill",
     "times"}
)


def make_step(
    kind: str | None,
    *,
    retry_after: Any = None,
    stall_s: Any = None,
    ttft_s: Any = None,
    after_tokens: Any = None,
    for_s: Any = None,
    prefill: Any = None,
) -> FaultStep:
    """A checked step (``kind`` canonical already); :class:`StepError` naming the first bad parameter.

    A parameter that the kind does not use is refused, not ignored: a typo'd
    kind must not quietly turn into a different fault.
    """
    if after_tokens is not None:
        if isinstance(after_tokens, bool) or not isinstance(after_tokens, int) or after_tokens < 0:
            raise StepError("after_tokens", f"must be a whole number >= 0, got {after_tokens!r}")
        if kind not in AFTER_TOKENS_KINDS:
            raise StepError("after_tokens", f"applies to {', '.join(sorted(AFTER_TOKENS_KINDS))} only, not {kind}")
    if ttft_s is not None and kind != "slow_first_token":
        raise StepError("ttft_s", f"applies to slow_first_token only, not {kind}")
    if for_s is not None and (_optional_seconds(for_s, "for_s") or 0.0) <= 0:
        raise StepError("for_s", f"must be a finite number of seconds > 0, got {for_s!r}")
    if prefill is not None and prefill not in PREFILL_MODES:
        raise StepError("prefill", f"must be one of {', '.join(PREFILL_MODES)}, got {prefill!r}")
    return FaultStep(
        kind,
        _optional_seconds(retry_after, "retry_after"),
        _optional_seconds(stall_s, "stall_s"),
        _optional_seconds(ttft_s, "ttft_s"),
        after_tokens,
        _optional_seconds(for_s, "for_s"),
        prefill,
    )


def parse_step(value: Any) -> list[FaultStep]:
    """Steps from ``"429"``, ``"ok"`` or ``{"kind": "429", "retry_after": 2, "times": 3}``.

    ``ValueError`` for a bad value, ``TypeError`` for a step of the wrong type.
    """
    if value is None or isinstance(value, (str, int)):
        return [FaultStep(canonical_kind(value))]
    if not isinstance(value, Mapping):
        raise TypeError(f"a script step is a kind name or a mapping, got {type(value).__name__}")
    unknown = set(value) - _STEP_FIELDS
    if unknown:
        raise ValueError(f"unknown script step field(s): {', '.join(sorted(map(str, unknown)))}")
    step = make_step(
        canonical_kind(value.get("kind", value.get("fault"))),
        retry_after=value.get("retry_after", value.get("retry_after_s")),
        stall_s=value.get("stall_s"),
        ttft_s=value.get("ttft_s"),
        after_tokens=value.get("after_tokens"),
        for_s=value.get("for_s"),
        prefill=value.get("prefill"),
    )
    times = value.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= MAX_SCRIPT_TIMES:
        raise ValueError(f"times must be a whole number from 1 to {MAX_SCRIPT_TIMES}, got {times!r}")
    return [step] * times


def parse_steps(values: Iterable[Any]) -> list[FaultStep]:
    """All steps of a script, in order (``times`` expanded)."""
    if isinstance(values, (str, bytes, Mapping)):
        raise TypeError("a script is a list of steps")
    steps: list[FaultStep] = []
    for value in values:
        steps.extend(parse_step(value))
    return steps


def step_from_headers(headers: Mapping[str, str]) -> FaultStep | None:
    """The step ``x-evalkit-fault`` and its parameter headers ask for (None without that header).

    ``ValueError`` naming the header of the first bad value.
    """
    header = headers.get("x-evalkit-fault")
    if header is None:
        return None
    try:
        kind = canonical_kind(header)
    except ValueError as exc:
        raise ValueError(f"x-evalkit-fault: {exc}") from None
    values: dict[str, Any] = {}
    for name, header_name in PARAMETER_HEADERS.items():
        text = headers.get(header_name)
        if text is not None:
            values[name] = _header_number(text, header_name, whole=name == "after_tokens")
    try:
        return make_step(kind, **values)
    except StepError as exc:
        raise ValueError(f"{PARAMETER_HEADERS.get(exc.field, 'x-evalkit-fault')}: {exc}") from None


def prefill_mode(headers: Mapping[str, str]) -> str | None:
    """The ``x-evalkit-prefill`` header's mode (None when absent); ``ValueError`` naming it if bad."""
    value = headers.get(PREFILL_HEADER)
    if value is None:
        return None
    mode = value.strip().lower()
    if mode not in PREFILL_MODES:
        raise ValueError(f"{PREFILL_HEADER}: must be one of {', '.join(PREFILL_MODES)}, got {value!r}")
    return mode


def _header_number(text: str, header: str, *, whole: bool) -> int | float:
    try:
        number = int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number of seconds"
        raise ValueError(f"{header}: must be {kind}, got {text!r}") from None
    if number < 0 or not math.isfinite(number):
        raise ValueError(f"{header}: must be finite and not negative, got {text!r}")
    return number


def _optional_seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise StepError(name, f"must be a finite, non-negative number of seconds, got {value!r}")
    return float(value)


class FaultScripts:
    """Per-model queues of scripted steps; thread-safe (the test thread programs, the server consumes).

    A step with ``for_s`` is an outage window: it stays at the head of its
    queue, answering every call, until ``for_s`` seconds after the first call
    that took it; the next call after that takes the next step.
    """

    def __init__(self, initial: Mapping[str, Iterable[FaultStep]] | None = None) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[FaultStep]] = {}
        self._opened: dict[str, float] = {}  # model -> when the window at the head of its queue opened
        self._initial = {model: tuple(steps) for model, steps in (initial or {}).items()}
        self.reset()

    def reset(self) -> None:
        """Back to the scripts the fleet file declared (their windows not yet opened)."""
        with self._lock:
            self._queues = {model: deque(steps) for model, steps in self._initial.items() if steps}
            self._opened.clear()

    def program(self, model: str, steps: Iterable[FaultStep], *, append: bool = False) -> None:
        """Set (or extend) the queue of ``model``."""
        with self._lock:
            queue = self._queues.setdefault(model, deque())
            if not append:
                queue.clear()
                self._opened.pop(model, None)
            queue.extend(steps)

    def open_window(self, model: str, step: FaultStep) -> None:
        """Put window ``step`` at the head of ``model``'s queue, opened now (a header's ``for_s``)."""
        with self._lock:
            self._queues.setdefault(model, deque()).appendleft(step)
            self._opened[model] = time.monotonic()

    def next_step(self, model: str) -> FaultStep | None:
        """The next scripted step for ``model`` (consumed, or held while its window lasts); None when none."""
        with self._lock:
            queue = self._queues.get(model)
            while queue:
                step = queue[0]
                if step.for_s is None:
                    return queue.popleft()
                now = time.monotonic()
                opened = self._opened.setdefault(model, now)
                if now - opened < step.for_s:
                    return step
                queue.popleft()  # the window is over: on to the next step
                del self._opened[model]
            return None

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
