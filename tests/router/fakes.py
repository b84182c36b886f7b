"""In-memory providers with scripted behaviour, for router unit tests.

The fault matrix against real HTTP runs against the emulator; these fakes pin
down policy logic (order, retries, skips) without sockets.
"""

from __future__ import annotations

import asyncio
from collections import deque
from decimal import Decimal
from typing import Iterable

import evalkit
from evalkit import ChatRequest, ChatResponse, Cost, FinishReason, Usage
from evalkit.errors import ProviderError, provider_error


class ScriptedProvider:
    """Answers each call with the next scripted outcome: ``"ok"`` or an error kind (``"rate_limit"``...).

    When the script runs out it answers ``default``. ``delay_s`` makes calls slow.
    ``credential`` is what ``credential_id()`` says (``None``: unknown, like a router).
    """

    def __init__(self, name: str, script: Iterable[str] = (), default: str = "ok", *,
                 delay_s: float = 0.0, context_window: int | None = None, retry_after: float | None = None,
                 cost: str = "0.001", credential: object = None) -> None:
        self.name = name
        self.script = deque(script)
        self.default = default
        self.delay_s = delay_s
        self.context_window = context_window
        self.retry_after = retry_after
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.cost = Decimal(cost)
        self.credential = credential

    def credential_id(self) -> object:
        return self.credential

    async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            outcome = self.script.popleft() if self.script else self.default
            if outcome != "ok":
                raise self._error(outcome)
            zero = Decimal(0)
            return ChatResponse(
                text=f"answer from {self.name}", finish_reason=FinishReason.STOP, model=self.name,
                usage=Usage(input_tokens=10, output_tokens=5), provider=self.name, latency_ms=1.0,
                cost=Cost(self.cost, zero, zero, zero, zero, source="test"),
            )
        finally:
            self.in_flight -= 1

    def _error(self, kind: str) -> ProviderError:
        retry_after = self.retry_after if kind == "rate_limit" else None
        return provider_error(kind, f"scripted {kind}", provider="fake", model=self.name, retry_after=retry_after)

    def stream(self, request: ChatRequest):
        raise NotImplementedError


def fast_policy(**changes) -> evalkit.router.RetryPolicy:
    """A retry policy with no real sleeping, for unit tests."""
    from evalkit.router import RetryPolicy

    base = dict(backoff_base_s=0.0, backoff_cap_s=0.0, retry_after_cap_s=0.05)
    base.update(changes)
    return RetryPolicy(**base)
