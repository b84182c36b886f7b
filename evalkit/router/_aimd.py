"""An adaptive in-flight limit: additive increase, multiplicative decrease (AIMD) on a vendor's throttling.

:class:`AimdLimit` is the controller behind ``Limits(adaptive=True)``: the
allowed number of calls in flight starts at the ceiling (``max_in_flight``),
is halved (down to the floor, ``min_in_flight``) when the vendor signals that
it is throttling, and grows back by one after each ``allowed`` successes
(+1/allowed per success: about one more slot per window of calls), so a run
converges on what the vendor sustains instead of storming it with retries.

The vendor's signals, and only the vendor's:

* a failure of kind ``rate_limit`` or ``overloaded`` that is not a local
  refusal (a :class:`LocalLimitError`: our own limit saying "busy" says
  nothing about the vendor);
* on a success, the rate-limit headers (:func:`remaining_fraction`): below
  :data:`DECREASE_BELOW` of a budget left counts as throttling, below
  :data:`HOLD_BELOW` the limit holds (no increase).

Pacing by time, for what a concurrency limit cannot do (a limit below one call
per response time: even one call in flight would exceed it):

* a vendor's throttling that says how long to wait (``retry_after``) holds
  every new call to the target until then (:attr:`AimdLimit.resume_at`), as
  vendors ask: the 429 is about the key, not about the one request;
* when a success's headers say under :data:`HOLD_BELOW` of a budget is left,
  the request budget is tracked (:attr:`AimdLimit.level`): what the headers
  say is left, less the calls started since that call (the vendor had not
  counted them), refilled at the rate the headers give (the remaining count,
  the limit and the time until the budget is full again: OpenAI's
  ``x-ratelimit-reset-requests`` duration, Anthropic's
  ``anthropic-ratelimit-requests-reset`` instant). A call starts only when a
  request is left; at or above the threshold, nothing is tracked.

Generations: every call notes the generation it started in; a decrease starts
a new one. A throttling signal from a call that started before the last
decrease decreases nothing, because that call was sent under the old limit
and the decrease already answered it: a burst of 32 concurrent 429s halves
once, not 32 times. For the same reason such a call's success does not count
towards an increase: it says nothing about whether the new limit has room.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import AllTargetsFailed, ErrorKind, ProviderError, RateLimitError
from ..providers import remaining_fraction, request_budget

__all__ = ["DECREASE_BELOW", "HOLD_BELOW", "LOCAL_LIMIT", "AimdLimit", "LocalLimitError", "checked_floor",
           "is_vendor_throttling", "remaining_fraction"]

DECREASE_BELOW = 0.05
"""A success whose headers say less than this fraction of a rate-limit budget is left decreases the limit."""
HOLD_BELOW = 0.20
"""A success whose headers say less than this fraction is left holds the limit (no increase)."""

LOCAL_LIMIT = "local_limit"
"""The ``code`` of a :class:`LocalLimitError` (what rows, logs and ``error.code`` show for a local refusal)."""


class LocalLimitError(RateLimitError):
    """A local limit refused the call before anything was sent: our own "busy", not the vendor's 429.

    Raised by :class:`~evalkit.router.limits.LimitedTarget`. It is a
    :class:`~evalkit.RateLimitError` (kind ``rate_limit``, retryable, with a
    ``retry_after`` when a rate bucket says when there is room), so routers
    retry or move on as after a vendor's 429; what tells the two apart is the
    type (a breaker and the adaptive limit ignore it: it says nothing about the
    vendor), never a string. Its ``code`` is :data:`LOCAL_LIMIT`. Defined here,
    where the controller tells the two apart, and re-exported by
    :mod:`evalkit.router.limits`.
    """

    def __init__(self, message: str, *, provider: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, provider=provider, code=LOCAL_LIMIT, retry_after=retry_after)

_SLACK_S = 1e-9
_THROTTLING = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED})


def _retry_after(error: ProviderError) -> float | None:
    while isinstance(error, AllTargetsFailed) and error.errors:
        error = error.errors[-1]
    return error.retry_after


def checked_floor(adaptive: object, floor: object, ceiling: int | None) -> int:
    """``min_in_flight`` as an int once the adaptive settings make sense together; else ValueError."""
    if adaptive is not True and adaptive is not False:
        raise ValueError(f"adaptive must be True or False, got {adaptive!r}")
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or int(floor) != floor or floor < 1:
        raise ValueError(f"min_in_flight must be a positive integer, got {floor!r}")
    if not adaptive:
        if floor != 1:
            raise ValueError("min_in_flight applies only with adaptive=True")
    elif ceiling is None:
        raise ValueError("adaptive=True needs max_in_flight: the limit starts there and recovers to it")
    elif floor > ceiling:
        raise ValueError(f"min_in_flight ({floor}) is above max_in_flight ({ceiling})")
    return int(floor)


def is_vendor_throttling(error: ProviderError) -> bool:
    """Whether ``error`` is the vendor saying "slow down" (a 429 or an overload), not a local refusal.

    A router's :class:`~evalkit.errors.AllTargetsFailed` counts by its last
    error; one with no error sent nothing, so it says nothing about the vendor.
    """
    while isinstance(error, AllTargetsFailed):
        if not error.errors:
            return False
        error = error.errors[-1]
    return error.kind in _THROTTLING and not isinstance(error, LocalLimitError)


class AimdLimit:
    """The allowed calls in flight, between ``floor`` and ``ceiling``, moved by AIMD.

    ``allowed`` is the current limit, ``decreases`` how many throttling
    signals lowered it (one at the floor lowers nothing and is not counted),
    ``generation`` the number of throttling signals acted on: a call passes
    the generation it started in to :meth:`succeeded` / :meth:`failed`.
    """

    __slots__ = ("_successes", "allowed", "ceiling", "decreases", "floor", "generation", "interval_s",
                 "level", "level_at", "level_index", "resume_at", "starts")

    def __init__(self, ceiling: int, floor: int = 1) -> None:
        if not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= min_in_flight <= max_in_flight, got {floor} and {ceiling}")
        self.ceiling = ceiling
        self.floor = floor
        self.allowed = ceiling
        self.decreases = 0
        self.generation = 0
        self._successes = 0  # successes since the last step up: +1 once there are `allowed` of them
        self.resume_at = 0.0  # clock time before which no call starts (a vendor's Retry-After)
        self.starts = 0  # calls started: which later calls a response's remaining count cannot know of
        # While the request budget runs low: what is left of it as of level_at, refilled one per interval_s.
        self.level: float | None = None
        self.level_at = 0.0
        self.level_index = 0  # the start index of the call whose answer set `level`: older answers know less
        self.interval_s = 0.0

    def wait_s(self, now: float) -> float:
        """Seconds until a call may start by time (Retry-After, an empty budget); 0.0 when it may start now."""
        wait = self.resume_at - now
        if self.level is not None:
            level = self.level + (now - self.level_at) / self.interval_s
            if level < 1.0 and (1.0 - level) * self.interval_s > wait:
                wait = (1.0 - level) * self.interval_s
        return wait if wait > _SLACK_S else 0.0  # float noise: a caller that slept the wait may start

    def started(self, now: float) -> None:
        """A call started at ``now``: it takes one request of the budget, when the budget is being tracked."""
        self.starts += 1
        if self.level is not None:
            self.level += (now - self.level_at) / self.interval_s - 1.0
            self.level_at = now

    def __repr__(self) -> str:
        return f"AimdLimit(allowed={self.allowed}, floor={self.floor}, ceiling={self.ceiling})"

    def succeeded(self, started: int, rate_limits: Mapping[str, str], *, index: int | None = None,
                  now: float = 0.0) -> None:
        """A call that started in generation ``started`` succeeded; ``rate_limits``: its headers.

        ``index`` (:attr:`starts` when the call started) and ``now`` let a low
        request budget be tracked: what the headers say is left, less the calls
        started after this one (the vendor had not counted them yet).
        """
        if rate_limits:
            fraction = remaining_fraction(rate_limits)
            if fraction is not None:
                # Answers arrive out of order: one from a call started before the call that set the
                # tracked budget was counted earlier by the vendor, and would make the budget look fuller.
                fresh = index is None or index >= self.level_index
                if fraction < HOLD_BELOW:
                    if fresh and index is not None:
                        self._track(rate_limits, index, now)
                    if fraction < DECREASE_BELOW:
                        self.throttled(started)
                    return
                if fresh:
                    self.level = None
        if started != self.generation or self.allowed >= self.ceiling:
            return
        self._successes += 1
        if self._successes >= self.allowed:
            self._successes = 0
            self.allowed += 1

    def _track(self, rate_limits: Mapping[str, str], index: int, now: float) -> None:
        budget = request_budget(rate_limits)
        if budget is not None:
            self.level = budget.remaining - (self.starts - index)
            self.level_at, self.level_index = now, index
            self.interval_s = budget.refill_interval_s

    def failed(self, started: int, error: ProviderError, now: float = 0.0, *, index: int | None = None) -> None:
        """A call that started in generation ``started`` (start ``index``) failed with ``error`` at ``now``.

        Throttling decreases the limit; one that says when to come back
        (``retry_after``) holds every new call until then, and when the refill
        rate is known, the calls waiting start one refill apart from then on
        instead of all at once.
        """
        if not is_vendor_throttling(error):
            return
        wait = _retry_after(error)
        if wait:
            self.resume_at = max(self.resume_at, now + wait)
            if self.interval_s and (index is None or index >= self.level_index):
                self.level, self.level_at, self.level_index = 0.0, now + wait - self.interval_s, self.starts
        self.throttled(started)

    def throttled(self, started: int) -> None:
        """Halve the limit (not below the floor), once per generation."""
        if started != self.generation:
            return  # sent before the last decrease, which already answered it
        self.generation += 1
        self._successes = 0
        lowered = max(self.floor, self.allowed // 2)
        if lowered < self.allowed:
            self.allowed = lowered
            self.decreases += 1
