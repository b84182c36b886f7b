"""A flapping primary: while it is down the chain serves from the fallback with bounded probing, then returns."""

from __future__ import annotations

import evalkit
from evalkit.router import BreakerSettings, FallbackChain

from .fakes import ScriptedProvider, fast_policy

REQ = evalkit.ChatRequest.from_prompt("hello", max_tokens=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Outage(ScriptedProvider):
    """Answers 503 while ``down`` is true, normally otherwise."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.down = True

    async def complete(self, request, on_delta=None):
        self.default = "server" if self.down else "ok"
        return await super().complete(request, on_delta)


async def test_a_down_primary_gets_one_probe_per_cooldown_and_is_returned_to_after_recovery() -> None:
    clock = Clock()
    primary, backup = Outage("primary"), ScriptedProvider("backup")
    chain = FallbackChain([primary, backup], policy=fast_policy(retries_per_target=1), clock=clock,
                          breaker=BreakerSettings(consecutive_failures=3, cooldown_s=30.0))
    served = [(await chain.complete(REQ)).provider for _ in range(15)]
    assert served == ["backup"] * 15
    # Without breakers this was 2 requests (a try and a retry) on every call: 30 for 15 calls.
    assert primary.calls == 3, "the breaker opened after 3 failures; later calls skip the primary unsent"
    skipped = (await chain.complete(REQ)).attempts[0]
    assert (skipped.target, skipped.error_kind, skipped.sent) == ("primary", "circuit_open", False)

    clock.now += 30.0  # one cooldown: one probe, which fails while the outage lasts
    await chain.complete(REQ)
    assert primary.calls == 4
    await chain.complete(REQ)
    assert primary.calls == 4, "no second probe within the same cooldown"

    primary.down = False
    clock.now += 30.0
    assert (await chain.complete(REQ)).provider == "primary", "recovered: back to the primary within a cooldown"
    assert [(await chain.complete(REQ)).provider for _ in range(3)] == ["primary"] * 3


async def test_breakers_can_be_turned_off() -> None:
    primary, backup = ScriptedProvider("primary", default="server"), ScriptedProvider("backup")
    chain = FallbackChain([primary, backup], policy=fast_policy(retries_per_target=0), breaker=None)
    for _ in range(10):
        await chain.complete(REQ)
    assert primary.calls == 10
