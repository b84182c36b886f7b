"""FallbackChain: ordered targets, one retry owner, bounded by attempts and a deadline."""

from __future__ import annotations

import asyncio
import enum
import random
import time
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, Unpack

from ..errors import ErrorKind, ProviderError
from ..types import Attempt, ChatRequest, ChatResponse
from ._base import Router, RouterOptions, Target
from ._call import RoutedCall
from ._credentials import SAME_CREDENTIALS, FailedCredentials
from ._retry import Action, RetryPolicy
from ._shared_breaker import BreakerOpened, breaker_opened_hook, make_breaker
from ._window import PromptSize
from .health import BreakerSettings, CircuitBreaker

if TYPE_CHECKING:
    from .state import RedisState

_DEFAULT_BREAKER = BreakerSettings()

__all__ = ["FallbackChain"]


class FallbackChain(Router):
    """Try targets in order; retry, move on or stop per error kind (see :class:`RetryPolicy`).

    * A target whose context window cannot hold the prompt plus ``max_tokens``
      is skipped without a call, and after a ``context_length`` error every
      later target with a window no larger than the failed one is skipped too.
    * After an ``auth`` error the chain moves on (another vendor's key may be
      fine), skipping every later target with the same endpoint and key
      (``same_credentials``, see :mod:`evalkit.router._credentials`).
    * Retries of one target back off with full jitter and honour
      ``retry_after`` up to the policy's cap; no attempt starts after the
      deadline, and no more than ``max_attempts`` are sent.
    * Each target has a circuit breaker (``breaker``, a
      :class:`~evalkit.router.health.BreakerSettings`; ``None`` turns them
      off): a target that keeps failing is skipped (``circuit_open``) and gets
      one probe per cooldown, so a down primary costs one request per
      cooldown instead of its retries on every call, and the chain returns to
      it once a probe succeeds. With ``state`` (a
      :class:`~evalkit.router.state.RedisState`) the breakers are shared by
      every replica using it, per target name: a target one replica found down
      is skipped by all, and all of them together send one probe per cooldown
      (:mod:`evalkit.router._shared_breaker`). ``on_breaker_open`` is called
      with a target's name when its breaker opens (default: this router's
      ``monitor``, if any); ``Router.from_config`` points every node's at the
      config's one monitor.
    * When everything fails, :class:`~evalkit.errors.AllTargetsFailed` holds
      every attempt and every error.
    """

    kind = "fallback"

    def __init__(self, targets: Iterable[Target | str], *, policy: RetryPolicy | None = None,
                 seed: int | None = None, breaker: BreakerSettings | None = _DEFAULT_BREAKER,
                 clock: Callable[[], float] = time.monotonic, state: RedisState | None = None,
                 on_breaker_open: BreakerOpened | None = None, **router_options: Unpack[RouterOptions]) -> None:
        super().__init__(targets, **router_options)
        self.policy = policy or RetryPolicy()
        self.state = state
        self._rng = random.Random(seed)
        self.breakers: tuple[CircuitBreaker, ...] | None = None if breaker is None else tuple(
            make_breaker(t.name, breaker, clock=clock, state=state,
                         on_open=breaker_opened_hook(self, t.name, on_breaker_open))
            for t in self.targets)

    async def _route(self, request: ChatRequest, attempts: list[Attempt], call: RoutedCall) -> ChatResponse:
        policy = self.policy
        deadline = time.monotonic() + policy.deadline_s
        if call.deadline is not None:
            deadline = min(deadline, call.deadline)
        size = PromptSize(request)
        errors: list[ProviderError] = []
        bad_keys = FailedCredentials()
        sent = 0
        breakers: Sequence[CircuitBreaker | _NullBreaker] = self.breakers or (_NO_BREAKER,) * len(self.targets)
        for target, breaker in zip(self.targets, breakers):
            if not self._enters(target, size, bad_keys, attempts):
                continue
            retry, probe = 0, False
            while True:
                remaining = deadline - time.monotonic()
                if sent >= policy.max_attempts or remaining <= 0:
                    raise self._exhausted(errors, attempts)
                # The breaker decides whether a call enters a target; its retries are the policy's.
                if retry == 0:
                    permit = breaker.acquire()
                    if permit is None:  # a shared breaker's answer needs Redis (the half-open probe)
                        permit = await breaker.acquire_async()
                    if not permit:
                        self._skip(target, "circuit_open", attempts)
                        break
                    probe = breaker.state == "half_open"  # this call holds the half-open probe
                sent += 1
                try:
                    response = await self._attempt(target, request, attempts, call, retry, remaining)
                except ProviderError as exc:
                    breaker.record_failure(exc)
                    errors.append(exc)
                    if exc.kind is ErrorKind.CONTEXT_LENGTH:
                        size.too_big_for(target)
                    elif exc.kind is ErrorKind.AUTH:
                        bad_keys.add(target)
                except BaseException:
                    if probe:
                        breaker.release()  # cancelled: no verdict, but the half-open probe goes back
                    raise
                else:
                    breaker.record_success()
                    return response
                wait = self._retry_wait(target, errors[-1], call, breaker, retry, deadline)
                if wait is _Stop.STOP:
                    raise self._exhausted(errors, attempts)
                if wait is None:
                    break
                await asyncio.sleep(wait)
                retry += 1
        raise self._exhausted(errors, attempts)

    def _enters(self, target: Target, size: PromptSize, bad_keys: FailedCredentials,
                attempts: list[Attempt]) -> bool:
        """Whether the call may try ``target`` at all; a skip is recorded with its reason."""
        if not size.fits(target):
            self._skip(target, "context_window", attempts, size.why_not(target))
            return False
        if (why := bad_keys.why_skip(target)) is not None:
            self._skip(target, SAME_CREDENTIALS, attempts, why)
            return False
        return True

    def _retry_wait(self, target: Target, error: ProviderError, call: RoutedCall,
                    breaker: CircuitBreaker | _NullBreaker, retry: int, deadline: float) -> float | _Stop | None:
        """Seconds to wait before retrying the same target; ``None``: move on; ``_Stop.STOP``: end the call."""
        action = Action.STOP if self._stream_lost(call) else self.policy.action_for(error)
        if action is Action.STOP:
            return _Stop.STOP
        if action is not Action.RETRY or retry >= self.policy.retries_per_target:
            return None
        if call.shown and self.mid_stream == "continue" and not self._accepts_prefill(target):
            return None  # retrying could only restart the answer; the next target may continue it
        if breaker.state == "open" and error.retry.retry_after is None:
            return None  # this failure opened the circuit: the target is down, not busy
        wait = self.policy.backoff_s(retry, error, self._rng)
        return None if time.monotonic() + wait >= deadline else wait


class _NullBreaker:
    """The breaker of a chain built with ``breaker=None``: every call enters, nothing is counted."""

    state = "closed"

    def acquire(self) -> bool:
        return True

    async def acquire_async(self) -> bool:
        return True

    def record_failure(self, error: ProviderError) -> None:
        return None

    def record_success(self) -> None:
        return None

    def release(self) -> None:
        return None


_NO_BREAKER = _NullBreaker()


class _Stop(enum.Enum):
    """What :meth:`FallbackChain._retry_wait` answers when the call must end (a typed sentinel)."""

    STOP = "stop"
