"""The emulator's run-time state, shared by every request of one server."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping

from ._prompt_cache import PromptCache
from ._rate_limits import RateBuckets
from ._responses import Interrupts
from ._simulate import Simulator
from ._specs import Fleet, ModelSpec
from ._stats import Stats
from ._transport import ConnectionRegistry
from .answers import AnswerBook
from .faults import FaultScripts, FaultStep, draw_rate_fault, prefill_mode, step_from_headers

__all__ = ["EmulatorState"]

_MAX_TRACKED_REQUESTS = 200_000


class EmulatorState:
    """Fleet, simulator, fault scripts, stats and connection handles of one running emulator."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        seed: int,
        time_scale: float,
        book: AnswerBook,
        stall_s: float | None = None,
        recent: int = 100,
    ) -> None:
        self.fleet, self.seed, self.time_scale, self.book = fleet, seed, time_scale, book
        self.stall_s = stall_s
        self.simulator = Simulator(seed, time_scale, book, PromptCache())
        self.scripts = FaultScripts({m.name: m.faults.script for m in fleet})
        self.stats = Stats(recent)
        self.rates = RateBuckets(time_scale)
        self.registry = ConnectionRegistry()
        self.interrupts = Interrupts()
        self._attempts: dict[tuple[str, str], int] = {}
        self._attempts_lock = threading.Lock()

    def next_attempt(self, model: str, fingerprint: str) -> int:
        """0 for the first time this exact request reaches ``model``, then 1, 2, ..."""
        with self._attempts_lock:
            if len(self._attempts) > _MAX_TRACKED_REQUESTS:
                self._attempts.clear()
            n = self._attempts.get((model, fingerprint), 0)
            self._attempts[(model, fingerprint)] = n + 1
            return n

    def pick_fault(
        self, headers: Mapping[str, str], spec: ModelSpec, fingerprint: str, attempt: int
    ) -> FaultStep | None:
        """The fault for this call: header, then script, then the model's rates; ValueError for a bad header.

        A header step with ``for_s`` opens an outage window on the model: later
        calls without the header get the same step until it closes. The step's
        ``prefill`` is resolved here (``x-evalkit-prefill``, else the step's,
        else the model's), so the reply needs nothing but the step.
        """
        mode = prefill_mode(headers)
        step = step_from_headers(headers)
        if step is not None and step.for_s is not None:
            self.scripts.open_window(spec.name, step)
        if step is None:
            step = self.scripts.next_step(spec.name)
        if step is None:
            kind = draw_rate_fault(spec.faults.rates, self.seed, spec.name, fingerprint, attempt)
            step = FaultStep(kind) if kind else None
        prefill = mode or (step.prefill if step else None) or spec.prefill
        if prefill == "accept" and (step is None or step.prefill is None):
            return step  # the common case: nothing to record on the step
        return dataclasses.replace(step or FaultStep(None), prefill=prefill)

    def retry_after(self, step: FaultStep | None, spec: ModelSpec) -> float:
        """Retry-After seconds of a 429: the step's own, else the model's default."""
        return step.retry_after if step and step.retry_after is not None else spec.faults.retry_after_s

    def stall_seconds(self, step: FaultStep | None, spec: ModelSpec) -> float:
        """How long ``timeout``/``stall`` hold; never scaled by the time scale (it must outlast client timeouts)."""
        if step and step.stall_s is not None:
            return step.stall_s
        return self.stall_s if self.stall_s is not None else spec.faults.stall_s

    def ttft_seconds(self, step: FaultStep | None, spec: ModelSpec) -> float:
        """How long ``slow_first_token`` holds the first token: the step's, else the model's; never scaled."""
        return step.ttft_s if step and step.ttft_s is not None else spec.faults.ttft_s

    def after_tokens(self, step: FaultStep | None, spec: ModelSpec) -> int | None:
        """Where in a stream ``stall``/``cut``/``malformed`` strike: the step's, else the model's (None: default)."""
        return step.after_tokens if step and step.after_tokens is not None else spec.faults.after_tokens

    def reset(self) -> None:
        """Clear stats, scripts (back to the fleet file's), rate buckets (full again), attempts and the prompt cache."""
        self.stats.reset()
        self.scripts.reset()
        self.rates.reset()
        self.simulator.cache.clear()
        with self._attempts_lock:
            self._attempts.clear()

