"""Adaptive in-flight limits against the real emulator: a burst of 429s lowers the limit once, then it recovers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import evalkit
from evalkit import ChatRequest
from evalkit.router import FallbackChain, LimitedTarget, Limits, RetryPolicy
from evalkit.router._aimd import HOLD_BELOW, remaining_fraction

pytestmark = pytest.mark.asyncio

MODEL = "sim-aimd"
CEILING = 16
KEY = "sk-test-ADAPTIVE-LIMITS-0000"
FLEET = f"""\
version: 1
models:
  - name: {MODEL}
    wires: [openai, anthropic]
    price: {{input: 1.0, output: 2.0}}
    context_window: 100000
    latency: {{ttft_ms: 15, tokens_per_s: 100000}}
    output_tokens: 8
    skills: {{default: 0.9}}
"""
# Retries wait out the 429's Retry-After, so every call of the burst reaches the emulator before any retry.
POLICY = RetryPolicy(retries_per_target=3, max_attempts=4, deadline_s=30.0, backoff_base_s=0.0, backoff_cap_s=0.0)
BURST_RETRY_AFTER_S = 0.5


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory):
    from evalkit.emulator import Emulator

    fleet = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    fleet.write_text(FLEET)
    with Emulator(fleet, seed=3, time_scale=1.0, datasets=()) as emulator:
        yield emulator


class Concurrency:
    """Passes every call to the real provider; notes how many were at the emulator as each one started."""

    def __init__(self, provider: Any) -> None:
        self.provider, self.name = provider, provider.name
        self.now = 0
        self.at_start: list[int] = []

    async def complete(self, request: ChatRequest, on_delta: Any = None) -> Any:
        self.now += 1
        self.at_start.append(self.now)
        try:
            if on_delta is None:
                return await self.provider.complete(request)
            return await self.provider.complete(request, on_delta=on_delta)  # a router streaming through
        finally:
            self.now -= 1

    async def aclose(self) -> None:
        await self.provider.aclose()


async def _ask(chain: FallbackChain, i: int, streamed: bool) -> Any:
    request = ChatRequest.from_prompt(f"Tell me fact number {i}.", max_tokens=8, stream=streamed)
    if not streamed:
        return await chain.complete(request)
    routed = chain.stream(request)
    deltas = [delta async for delta in routed]
    assert "".join(deltas) == routed.response.text
    return routed.response


async def _wave(chain: FallbackChain, start: int, calls: int, streamed: bool) -> list[Any]:
    gate = asyncio.Semaphore(CEILING)  # the runner's workers: as many as the ceiling

    async def one(i: int) -> Any:
        async with gate:
            return await _ask(chain, i, streamed)

    return await asyncio.gather(*(one(start + i) for i in range(calls)))


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_burst_of_429s_halves_the_limit_once_and_successes_bring_it_back(emu: Any, streamed: bool) -> None:
    emu.reset()
    provider = evalkit.get_provider(f"openai:{MODEL}", base_url=emu.openai_base_url, api_key=KEY,
                                    prices={"input": 1, "output": 2})
    counted = Concurrency(provider)
    limited = LimitedTarget(counted, Limits(max_in_flight=CEILING, adaptive=True, on_saturated="wait"))
    async with FallbackChain([limited], policy=POLICY, breaker=None) as chain:
        emu.script(MODEL, [{"kind": "429", "retry_after": BURST_RETRY_AFTER_S, "times": CEILING}])
        burst = await _wave(chain, 0, CEILING, streamed)
        # Every call was answered on its retry; the whole burst of 16 429s cut the limit once, 16 -> 8.
        assert [[a.error_kind for a in r.attempts] for r in burst] == [["rate_limit", None]] * CEILING
        assert all((r.ttft_ms is not None) == streamed for r in burst)  # streamed calls really streamed
        assert limited.decreases == 1
        assert CEILING // 2 <= limited.allowed_in_flight < CEILING
        # The burst went out 16 at a time; its retries at most half as many (+1 grown back meanwhile).
        assert max(counted.at_start[:CEILING]) == CEILING
        assert max(counted.at_start[CEILING:]) <= CEILING // 2 + 1
        trace = [limited.allowed_in_flight]
        for wave in range(8):
            await _wave(chain, 100 + 50 * wave, 50, streamed)
            trace.append(limited.allowed_in_flight)
            if limited.allowed_in_flight == CEILING:
                break
    assert trace == sorted(trace) and trace[-1] == CEILING, trace  # recovered, never cut again
    assert limited.decreases == 1
    served = emu.stats()["models"][MODEL]
    assert served["by_status"] == {"429": CEILING, "200": served["requests"] - CEILING}


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_each_wires_rate_limit_headers_are_read_from_a_real_response(emu: Any, wire: str) -> None:
    emu.reset()
    provider = evalkit.get_provider(f"{wire}:{MODEL}", base_url=emu.base_url_for(wire), api_key=KEY,
                                    prices={"input": 1, "output": 2})
    async with provider:
        response = await provider.complete(ChatRequest.from_prompt("Say hi.", max_tokens=8))
    fraction = remaining_fraction(response.rate_limits)
    # The fleet's default budgets are far from spent: a reading, and one that lets the limit grow.
    assert fraction is not None and HOLD_BELOW <= fraction < 1.0, response.rate_limits
