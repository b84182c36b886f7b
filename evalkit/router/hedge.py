"""HedgedRouter: a second request when the first is slow, to cut tail latency.

The primary (``targets[0]``) is sent at once. If it has not answered after a
delay (fixed, or the primary's observed p95), the same request goes to the next
target, up to ``max_hedges`` extra requests, one delay apart; a branch that
fails is replaced by the next target at once. The first success wins and every
other branch is cancelled (and awaited). Each hedge costs money: a hedged call
may be billed twice, so :attr:`HedgedRouter.fan_out` is ``1 + max_hedges``
(times its targets' own fan-out) and a budget in front of it reserves that many
worst cases (``CostAwareRouter``).

Attempts, in the response or in :class:`~evalkit.errors.AllTargetsFailed`:

* failed branches, in the order they failed, then the losers, then the winner
  last (as in every router);
* a loser cancelled mid-flight is an attempt with ``error_kind="cancelled"``,
  ``sent=True``, its latency so far and ``cost=None``: vendors bill a
  cancelled request for the tokens it already generated, and we cannot know
  how many;
* a loser that had already answered when the winner was chosen (a race) is
  also ``"cancelled"``, but keeps its usage and cost, which were really spent;
* a branch cancelled before it started is ``"cancelled"`` with ``sent=False``.

``"cancelled"`` says nothing about the target's health.

Streaming: hedged branches never push deltas to the caller, because racing
branches would splice two answers: each branch gets a muted copy of the call
(:meth:`~evalkit.router._call.RoutedCall.branch`) and only the winner's text
is replayed to the caller at the end. A hedged stream therefore delivers the
winner's text all at once: hedging trades streaming for tail latency.

The p95 delay comes from a ring buffer of the primary's last ``window``
successful latencies (censored samples, the primary's cancelled calls, are not
in it, so the p95 leans low and hedges a little more often than 5 %). Until
``min_samples`` are in, ``cold_delay_s`` is used; the p95 is floored at
``min_delay_s`` so a very fast primary does not hedge on every jitter. It is
recomputed every ``window // 20`` new samples (every 10 by default), which keeps
the per-call cost of the policy low.

Thread-safety: none beyond asyncio; use one router from one event loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Iterable, Literal

from ..errors import ProviderError
from ..types import Attempt, ChatRequest, ChatResponse
from ._base import Router, RouterOptions, Target, _shift, fan_out
from ._call import RoutedCall
from ._window import PromptSize

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["HedgedRouter"]

CANCELLED = "cancelled"


class HedgedRouter(Router):
    """Send to ``targets[0]``; after ``delay_s`` without an answer, also to the next target.

    ``delay_s`` is seconds, or ``"p95"`` for the primary's observed p95 (see the
    module docstring). ``max_hedges`` bounds the extra requests per call.
    ``clock`` measures the primary's latency (injectable for tests).
    """

    kind = "hedge"

    def __init__(self, targets: Iterable[Target | str], *, delay_s: float | Literal["p95"] = "p95",
                 min_delay_s: float = 0.05, max_hedges: int = 1, cold_delay_s: float = 1.0,
                 window: int = 200, min_samples: int = 20,
                 clock: Callable[[], float] = time.perf_counter,
                 **router_options: Unpack[RouterOptions]) -> None:
        super().__init__(targets, **router_options)
        if delay_s != "p95" and not (isinstance(delay_s, (int, float)) and delay_s >= 0):
            raise ValueError(f"delay_s must be a non-negative number or 'p95', got {delay_s!r}")
        if int(max_hedges) != max_hedges or max_hedges < 0:
            raise ValueError(f"max_hedges must be a non-negative integer, got {max_hedges!r}")
        if window < 1 or not 1 <= min_samples <= window:
            raise ValueError("need window >= 1 and 1 <= min_samples <= window")
        self.delay_s = delay_s
        self.min_delay_s = min_delay_s
        self.cold_delay_s = cold_delay_s
        self.max_hedges = int(max_hedges)
        self.min_samples = min_samples
        self._clock = clock
        self._latencies: deque[float] = deque(maxlen=window)
        self._p95: float | None = None
        # Sorting the window costs ~10 µs; the p95 of 200 samples hardly moves per sample.
        self._refresh_every = max(1, window // 20)
        self._stale = 0

    @property
    def fan_out(self) -> int:
        """A hedged call sends to at most ``1 + max_hedges`` targets, each billed: their largest fan-outs."""
        return sum(sorted((fan_out(t) for t in self.targets), reverse=True)[: 1 + self.max_hedges])

    def current_delay_s(self) -> float:
        """Seconds the next call waits for the primary before hedging."""
        if self.delay_s != "p95":
            return float(self.delay_s)
        if len(self._latencies) < self.min_samples:
            return self.cold_delay_s
        if self._p95 is None or self._stale >= self._refresh_every:
            self._stale = 0
            ordered = sorted(self._latencies)
            self._p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
        return max(self.min_delay_s, self._p95)

    def observe_primary(self, latency_s: float) -> None:
        """Add one successful primary latency to the p95 window."""
        self._latencies.append(latency_s)
        self._stale += 1

    async def _route(self, request: ChatRequest, attempts: list[Attempt], call: RoutedCall) -> ChatResponse:
        size = PromptSize(request)
        candidates: list[Target] = []
        for target in self.targets:
            if len(candidates) > self.max_hedges:
                break
            if size.fits(target):
                candidates.append(target)
            else:
                self._skip(target, "context_window", attempts, size.why_not(target))
        if not candidates:
            raise self._exhausted([], attempts)
        race = _Race(self, request, candidates, call)
        try:
            winner = await race.run(self.current_delay_s())
        finally:
            await race.cancel_losers()
            attempts.extend(race.attempts())
        if winner is None:
            raise self._exhausted(race.errors, attempts)
        assert race.winner is not None
        call.adopt(race.winner.call)  # the winner's text reaches the caller, all at once
        return winner


class _Branch:
    """One target's request inside a hedged call."""

    __slots__ = ("attempts", "call", "cancelled_after", "index", "started", "started_at", "target", "task")

    def __init__(self, target: Target, index: int, call: RoutedCall,
                 run: Callable[[_Branch], Coroutine[Any, Any, ChatResponse]]) -> None:
        self.target = target
        self.index = index
        self.call = call
        self.attempts: list[Attempt] = []  # this branch's own, merged in order at the end
        self.started: float | None = None
        self.started_at = 0.0
        self.cancelled_after: float | None = None
        self.task: asyncio.Task[ChatResponse] = asyncio.ensure_future(run(self))  # starts at the next await


class _Race:
    """The branches of one hedged call: start, wait, pick the winner, cancel the rest."""

    def __init__(self, router: HedgedRouter, request: ChatRequest, targets: list[Target], call: RoutedCall) -> None:
        self.router = router
        self.request = request
        self.targets = targets
        self.call = call
        self.branches: list[_Branch] = []
        self.failed: list[_Branch] = []
        self.errors: list[ProviderError] = []
        self.winner: _Branch | None = None

    def _start_next(self) -> None:
        index = len(self.branches)
        self.branches.append(_Branch(self.targets[index], index, self.call.branch(), self._run))

    async def _run(self, branch: _Branch) -> ChatResponse:
        router = self.router
        branch.started_at = time.time()
        branch.started = router._clock()
        response = await router._attempt(branch.target, self.request, branch.attempts, branch.call)
        if branch.target is router.targets[0]:  # not a stand-in for a skipped primary
            router.observe_primary(router._clock() - branch.started)
        return response

    async def run(self, delay_s: float) -> ChatResponse | None:
        """The winner's response, or ``None`` when every branch failed."""
        loop = asyncio.get_running_loop()
        self._start_next()
        last_start = loop.time()
        while True:
            can_hedge = len(self.branches) < len(self.targets)
            pending = {b.task for b in self.branches if not b.task.done()}
            if not pending:
                if not can_hedge:
                    return None
                self._start_next()
                last_start = loop.time()
                continue
            timeout = max(0.0, last_start + delay_s - loop.time()) if can_hedge else None
            done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                self._start_next()
                last_start = loop.time()
                continue
            finished = [b for b in self.branches if b.task in done]  # in target order
            ok = [b for b in finished if b.task.exception() is None]
            for branch in finished:
                if (error := branch.task.exception()) is not None:
                    self._failed(branch, error)
            if ok:
                self.winner = ok[0]
                return ok[0].task.result()
            for _ in range(min(len(finished), len(self.targets) - len(self.branches))):
                self._start_next()  # a failure frees its place at once
                last_start = loop.time()

    def _failed(self, branch: _Branch, error: BaseException) -> None:
        if not isinstance(error, ProviderError):
            raise error  # a bug, not a provider failure: let it through
        self.failed.append(branch)
        self.errors.append(error)

    async def cancel_losers(self) -> None:
        """Cancel every branch but the winner and wait until they are gone."""
        losers = [b for b in self.branches if b is not self.winner and not b.task.done()]
        now = self.router._clock()
        for branch in losers:
            if branch.started is not None:
                branch.cancelled_after = now - branch.started
            branch.task.cancel()
        if losers:
            await asyncio.gather(*(b.task for b in losers), return_exceptions=True)

    def attempts(self) -> list[Attempt]:
        """Failures in the order they failed, then losers, then the winner last."""
        out: list[Attempt] = []
        for branch in self.failed:
            out.extend(_shift(branch.attempts, branch.index))
        for branch in self.branches:
            if branch is not self.winner and branch not in self.failed:
                out.extend(self._loser_attempts(branch))
        if self.winner is not None:
            out.extend(_shift(self.winner.attempts, self.winner.index))
        return out

    def _loser_attempts(self, branch: _Branch) -> list[Attempt]:
        task = branch.task
        if not task.cancelled():
            # It finished anyway: a failure keeps its attempts as they are; an answer
            # that lost the race is marked cancelled but keeps its (real) cost.
            own = _shift(branch.attempts, branch.index)
            if task.exception() is None and own and own[-1].ok:
                own[-1] = replace(own[-1], error_kind=CANCELLED, error="answered after the winner; discarded")
            return own
        if branch.started is None:
            return [Attempt(target=branch.target.name, error_kind=CANCELLED, depth=branch.index, sent=False,
                            error="winner found before this hedge started", started_at=time.time())]
        latency_ms = (branch.cancelled_after or 0.0) * 1000.0
        return [Attempt(target=branch.target.name, error_kind=CANCELLED, latency_ms=latency_ms,
                        started_at=branch.started_at, depth=branch.index, sent=True,
                        error="lost the hedge; cancelled (cost unknown: billed for tokens generated so far)")]
