"""FallbackChain: ordered targets, one retry owner, bounded by attempts and a deadline."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Iterable

from ..errors import ErrorKind, ProviderError
from ..types import Attempt, ChatRequest, ChatResponse
from ._base import Router, Target, committed_to_stream
from ._credentials import SAME_CREDENTIALS, FailedCredentials
from ._retry import Action, RetryPolicy
from ._window import PromptSize

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
    * When everything fails, :class:`~evalkit.errors.AllTargetsFailed` holds
      every attempt and every error.
    """

    kind = "fallback"

    def __init__(self, targets: Iterable[Target | str], *, policy: RetryPolicy | None = None,
                 seed: int | None = None, **router_options) -> None:
        super().__init__(targets, **router_options)
        self.policy = policy or RetryPolicy()
        self._rng = random.Random(seed)

    async def _route(self, request: ChatRequest, attempts: list[Attempt]) -> ChatResponse:
        policy = self.policy
        deadline = time.monotonic() + policy.deadline_s
        size = PromptSize(request)
        errors: list[ProviderError] = []
        bad_keys = FailedCredentials()
        sent = 0
        for target in self.targets:
            if not size.fits(target):
                self._skip(target, "context_window", attempts, size.why_not(target))
                continue
            if (why := bad_keys.why_skip(target)) is not None:
                self._skip(target, SAME_CREDENTIALS, attempts, why)
                continue
            retry = 0
            while True:
                remaining = deadline - time.monotonic()
                if sent >= policy.max_attempts or remaining <= 0:
                    raise self._exhausted(errors, attempts)
                sent += 1
                try:
                    return await self._attempt(target, request, attempts, retry, remaining)
                except ProviderError as exc:
                    errors.append(exc)
                    action = Action.STOP if committed_to_stream() else policy.action_for(exc)
                    if exc.kind is ErrorKind.CONTEXT_LENGTH:
                        size.too_big_for(target)
                    elif exc.kind is ErrorKind.AUTH:
                        bad_keys.add(target)
                if action is Action.STOP:
                    raise self._exhausted(errors, attempts)
                if action is not Action.RETRY or retry >= policy.retries_per_target:
                    break
                wait = policy.backoff_s(retry, errors[-1], self._rng)
                if time.monotonic() + wait >= deadline:
                    break
                await asyncio.sleep(wait)
                retry += 1
        raise self._exhausted(errors, attempts)
