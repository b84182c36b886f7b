"""Per-target limits: calls in flight, requests per minute and tokens per minute.

:class:`LimitedTarget` wraps a provider (or a router) and offers the same
interface, so it composes with every policy. When the target is saturated it
either refuses at once (``on_saturated="skip"``) or waits for capacity
(``"wait"``, at most ``max_wait_s``). A refusal is a
:class:`LocalLimitError` (a :class:`~evalkit.RateLimitError` whose ``code`` is
:data:`LOCAL_LIMIT`) with, when a bucket is the reason, a ``retry_after``; it is
raised *before* anything is sent, so routers treat it like a vendor's 429:

* a :class:`~evalkit.router.FallbackChain` applies its retry policy to it: it
  retries after ``retry_after`` when that is within ``retry_after_cap_s`` and
  moves on to the next target when it is longer; a full in-flight limit has no
  ``retry_after`` (nobody knows when a call ends), so the chain retries after
  its ordinary backoff, then moves on;
* a balancer's breaker opens for ``retry_after`` and it tries another target;
  a refusal without ``retry_after`` (a full in-flight limit) is no failure of
  the target for a breaker, and no refusal is a throttling signal for the
  adaptive limit: both tell it from a vendor's 429 by its type
  (:class:`LocalLimitError`), never by its ``code`` text.
  Routers that want to pass over a saturated target without an attempt can
  ask :meth:`LimitedTarget.saturated` first.

The attempt a router records for a local refusal says ``sent=True`` (the router
cannot know the call never left); its ``error`` text starts with
``"local limit"`` and the error's ``code`` is ``"local_limit"``, which is how
evidence (rows, logs) tells a local refusal from a vendor's; code tells them
apart by type (``isinstance(error, LocalLimitError)``).

Adaptive in-flight limit (``Limits(max_in_flight=32, adaptive=True)``): the
calls allowed in flight start at ``max_in_flight``, are halved (not below
``min_in_flight``) when the vendor throttles (a 429 or an overload that is not
a local refusal, or a success whose rate-limit headers say under 5 % of a
budget is left), at most once per burst, and grow back by one per window of
successes (none while the headers say under 20 % is left); see
:mod:`evalkit.router._aimd`. After a cut, no call starts until the calls in
flight fall below the new limit, and :meth:`LimitedTarget.saturated` says so.
``allowed_in_flight`` and ``decreases`` are the evidence.

Token accounting: a call takes ``count_tokens(prompt) + (max_tokens or 0)`` from
the TPM bucket before it is sent (the worst case, which is also how vendors
meter), then the bucket is corrected with the actual ``usage.input_tokens +
usage.output_tokens``: unused tokens go back, an overrun is taken (the bucket
may go into debt). A failed call is corrected the same way when its error
says what the vendor counted (``error.usage``: a refusal, an empty answer, a
stream cut after some text); otherwise it keeps its estimate charged, because
the vendor most likely counted it too. A call larger than a whole minute's budget passes
when the bucket is full (otherwise it could never pass) and leaves it in debt.

Replicas (``state=RedisState(...)``): ``rpm`` and ``tpm`` are one window per target name across
the replicas sharing the state (GCRA in Redis, one round trip per call: :mod:`evalkit.router._shared_rate`);
``max_in_flight`` and the adaptive limit stay per process. While Redis is down or slow each replica
uses its own buckets (up to the full limit per replica) and shares again once Redis answers.

Thread-safety: none. Counters and buckets are plain attributes changed with no
``await`` between check and take, which is what makes them safe under asyncio
concurrency; use one :class:`LimitedTarget` from one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, AsyncIterator, Awaitable, Callable

from ..errors import ProviderError
from ..providers import OnDelta
from ..tokens import count_tokens
from ..types import ChatRequest, ChatResponse, Message, StreamRestart, Usage
from ._aimd import LOCAL_LIMIT, AimdLimit, LocalLimitError
from ._base import Target, as_target, close_all, close_on_exit
from ._bucket import TokenBucket, TokensTaken, Waiter
from ._credentials import credential_of
from ._limit_settings import Limits
from ._shared_rate import SharedRate
from .state import RedisState

__all__ = ["LOCAL_LIMIT", "LimitedStream", "LimitedTarget", "Limits", "LocalLimitError", "TokenBucket"]

_NOT_ADAPTIVE = (0, 0)

class LimitedTarget:
    """``target`` behind :class:`Limits`; the same interface as a provider.

    ``name``, ``context_window`` and ``prices()`` (when the target has it) are
    the target's own. ``clock`` and ``sleep`` are injectable for tests.
    ``in_flight`` is the number of calls currently holding a slot. ``state``:
    share ``rpm``/``tpm`` with every replica using the same Redis (see the
    module docstring); give every replica the same limits for a target name.
    """

    def __init__(self, target: Target | str, limits: Limits, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, state: RedisState | None = None) -> None:
        self.target = as_target(target)
        self.limits = limits
        self.name: str = self.target.name
        self.in_flight = 0
        self._clock = clock
        self._sleep = sleep
        ceiling = self._max_in_flight = limits.max_in_flight  # adaptive: the limit's current value
        self._aimd = AimdLimit(ceiling, limits.min_in_flight) if limits.adaptive and ceiling else None
        now = clock()
        self._requests = TokenBucket(limits.rpm, now) if limits.rpm else None
        self._tokens = TokenBucket(limits.tpm, now) if limits.tpm else None
        self._shared: SharedRate | None = None
        if state is not None and (limits.rpm or limits.tpm):
            # The shared buckets replace the local ones (kept inside for outages); the in-memory path is untouched.
            self._shared = SharedRate(state, self.name, limits.rpm, limits.tpm, clock)
            self._requests = self._tokens = None
        self._queue: deque[Waiter] = deque()
        prices = getattr(self.target, "prices", None)
        if prices is not None:
            self.prices = prices  # only when the target has it: callers probe with getattr

    def __repr__(self) -> str:
        return f"LimitedTarget({self.name!r}, {self.limits!r})"

    @property
    def allowed_in_flight(self) -> int | None:
        """Calls allowed in flight now: ``max_in_flight``, or the adaptive limit's current value."""
        return self._max_in_flight

    @property
    def decreases(self) -> int:
        """How many times the vendor's throttling lowered the adaptive limit (0 when not adaptive)."""
        return 0 if self._aimd is None else self._aimd.decreases

    @property
    def context_window(self) -> int | None:
        return getattr(self.target, "context_window", None)

    @property
    def accepts_prefill(self) -> bool:
        """The wrapped target's: limits change nothing about what the model accepts."""
        return getattr(self.target, "accepts_prefill", False) is True

    def credential_id(self) -> Any:
        """The wrapped target's credential identity (``None`` when it has none): limits change no key."""
        return credential_of(self.target)

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        """Send ``request`` when the limits allow it; refuse or wait per ``on_saturated``.

        ``on_delta`` is handed to the target as it is (text deltas of a streamed call).
        """
        tokens = self._estimate(request)
        bucket = await self._acquire(tokens)
        started = self._generation()
        try:
            if on_delta is None:
                response = await self.target.complete(request)
            else:
                response = await self.target.complete(request, on_delta=on_delta)
        except ProviderError as exc:
            self._failed(tokens, started, exc, bucket)
            raise
        finally:
            self._release()
        self._succeeded(tokens, started, response, bucket)
        return response

    def stream(self, request: ChatRequest) -> LimitedStream:
        """The target's stream, holding a slot until the stream ends (consume it fully or close it)."""
        return LimitedStream(self, request)

    async def aclose(self) -> None:
        """Close the wrapped target (every provider under it, when it is a router)."""
        await close_all([self.target])

    async def __aenter__(self) -> LimitedTarget:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        await close_on_exit(self, exc)

    def saturated(self, request: ChatRequest | None = None) -> bool:
        """Would a call (``request``, if given) be refused or kept waiting now? Takes nothing, does no I/O.

        With a shared state, the RPM/TPM part is the last answer this replica got from Redis (a refusal's
        wait, until it ends): a replica that has not asked since others emptied the window says no.
        """
        if self._queue:
            return True
        tokens = self._estimate(request) if request is not None else 0
        if self._shared is not None and self._shared.wait_s(tokens, self._clock()) > 0:
            return True
        return self._shortfall(tokens) is not None

    # -- accounting -----------------------------------------------------------------------

    def _estimate(self, request: ChatRequest) -> int:
        if self.limits.tpm is None:
            return 0  # no TPM limit: never pay for a tokenizer
        messages = list(request.messages)
        if request.system:
            messages.insert(0, Message("system", request.system))
        return count_tokens(messages, self.name).count + (request.max_tokens or 0)

    def _shortfall(self, tokens: int) -> float | None:
        """``None`` when a call could start now; else seconds until the buckets allow it (0.0: slots only)."""
        wait = 0.0
        if self._requests is not None or self._tokens is not None:
            now = self._clock()
            if self._requests is not None:
                wait = self._requests.wait_s(1, now)
            if self._tokens is not None:
                wait = max(wait, self._tokens.wait_s(tokens, now))
        aimd = self._aimd
        if aimd is not None and (aimd.resume_at or aimd.level is not None):  # asked to wait, or budget low
            wait = max(wait, aimd.wait_s(self._clock()))
        if wait > 0 or (self._max_in_flight is not None and self.in_flight >= self._max_in_flight):
            return wait
        return None

    def _try_take(self, tokens: int) -> float | None:
        # Check and take with no await in between: atomic under asyncio.
        wait = self._shortfall(tokens)
        if wait is None:
            if self._requests is not None:
                self._requests.take(1)
            if self._tokens is not None:
                self._tokens.take(tokens)
            if self._aimd is not None:
                self._aimd.started(self._clock() if self._aimd.level is not None else 0.0)
            self.in_flight += 1
        return wait

    def _release(self) -> None:
        self.in_flight -= 1
        if self._queue:
            self._queue[0].wake()

    def _settle(self, tokens: int, usage: Usage | None, bucket: TokensTaken | None) -> None:
        """Correct the TPM bucket the call took from (local, or shared: in the background) with ``usage``."""
        if bucket is not None and usage is not None:
            bucket.give_back(tokens - (usage.input_tokens + usage.output_tokens))

    def _generation(self) -> tuple[int, int]:
        """The adaptive limit's (generation, calls started) as a call starts (read right after its slot is taken)."""
        return _NOT_ADAPTIVE if self._aimd is None else (self._aimd.generation, self._aimd.starts)

    def _succeeded(self, tokens: int, started: tuple[int, int], response: ChatResponse,
                   bucket: TokensTaken | None) -> None:
        self._settle(tokens, response.usage, bucket)
        aimd = self._aimd
        if aimd is not None:
            aimd.succeeded(started[0], response.rate_limits, index=started[1], now=self._clock())
            self._max_in_flight = aimd.allowed

    def _failed(self, tokens: int, started: tuple[int, int], error: ProviderError,
                bucket: TokensTaken | None) -> None:
        self._settle(tokens, error.usage, bucket)
        aimd = self._aimd
        if aimd is not None:
            aimd.failed(started[0], error, self._clock(), index=started[1])
            self._max_in_flight = aimd.allowed

    # -- saturation -----------------------------------------------------------------------

    async def _acquire(self, tokens: int) -> TokensTaken | None:
        """Take a slot and the buckets' share, or wait / refuse; returns the TPM bucket to correct after the call.

        With shared state the buckets are in Redis (one round trip), or local while it is down.
        """
        if not self._queue:  # queued callers go first
            bucket: TokensTaken | None
            if self._shared is None:
                wait, bucket = self._try_take(tokens), self._tokens
            else:
                wait, bucket = await self._take_shared(self._shared, tokens)
            if wait is None:
                return bucket
            if self.limits.on_saturated == "skip":
                raise self._refusal(wait)
        return await self._wait_turn(tokens)

    async def _take_shared(self, shared: SharedRate, tokens: int) -> tuple[float | None, TokensTaken | None]:
        """The local checks, then the shared buckets (``shared``); the slot is held while Redis answers."""
        wait = self._shortfall(tokens)  # in flight and the adaptive limit: the shared buckets are not in it
        if wait is not None:
            return wait, None
        self.in_flight += 1
        try:
            wait, bucket = await shared.take(tokens)
        except BaseException:  # cancelled while Redis answered
            self._release()
            raise
        if wait is not None:
            self._release()
            return wait, None
        if self._aimd is not None:
            self._aimd.started(self._clock() if self._aimd.level is not None else 0.0)
        return None, bucket

    async def _wait_turn(self, tokens: int) -> TokensTaken | None:
        """Queue until this call is first and the limits allow it, or ``max_wait_s`` passes."""
        waiter = Waiter()
        self._queue.append(waiter)
        deadline = self._clock() + self.limits.max_wait_s
        bucket: TokensTaken | None = self._tokens
        try:
            while True:
                wait: float | None
                if self._queue[0] is not waiter:
                    wait = 0.0
                elif self._shared is None:
                    wait = self._try_take(tokens)
                else:
                    wait, bucket = await self._take_shared(self._shared, tokens)
                if wait is None:
                    return bucket
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise self._refusal(wait)
                if wait > 0:
                    await self._sleep(min(wait, remaining))
                elif not await waiter.woken_within(remaining):
                    raise self._refusal(wait)
        finally:
            was_first = self._queue[0] is waiter
            self._queue.remove(waiter)
            if was_first and self._queue:
                self._queue[0].wake()

    def _refusal(self, wait_s: float) -> LocalLimitError:
        reasons = []
        allowed = self._max_in_flight
        if allowed is not None and self.in_flight >= allowed:
            ceiling = self.limits.max_in_flight or allowed
            cut = f", lowered from {ceiling} after rate limits" if allowed < ceiling else ""
            reasons.append(f"{self.in_flight} in flight (max {allowed}{cut})")
        if wait_s > 0:
            reasons.append(f"rpm/tpm capacity in {wait_s:.3g}s")
        waited = " after waiting" if self.limits.on_saturated == "wait" else ""
        return LocalLimitError(
            f"local limit: {self.name} saturated{waited} ({', '.join(reasons) or 'queue full'}); not sent",
            provider=self.name, retry_after=wait_s if wait_s > 0 else None,
        )


class LimitedStream:
    """A limited target's text deltas; after the last one, ``response`` is the whole answer."""

    def __init__(self, owner: LimitedTarget, request: ChatRequest) -> None:
        self.owner = owner
        self.request = request
        self.response: ChatResponse | None = None

    async def __aiter__(self) -> AsyncIterator[str | StreamRestart]:
        owner = self.owner
        tokens = owner._estimate(self.request)
        bucket = await owner._acquire(tokens)
        started = owner._generation()
        try:
            inner = owner.target.stream(self.request)
            async for delta in inner:
                yield delta
            self.response = inner.response
        except ProviderError as exc:
            owner._failed(tokens, started, exc, bucket)
            raise
        finally:
            owner._release()
        if self.response is not None:
            owner._succeeded(tokens, started, self.response, bucket)
