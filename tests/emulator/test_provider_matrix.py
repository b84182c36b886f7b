"""evalkit's own adapters against the emulator: every fault kind maps to the right error kind.

A matrix over the three wires x every fault kind x streamed or not. Each case
asks the adapter for an answer with ``x-evalkit-fault`` set and checks the
:class:`evalkit.ProviderError` kind it raises: a refusal or an empty answer is an
error too, never a response. A stream that is complete but for its end-of-stream
marker (``no_done``) is the one fault that must come back as the answer.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import pytest

import evalkit
from evalkit.emulator.faults import FAULT_KINDS

WIRES = {
    "openai": ("sim-large", "openai_base_url"),
    "anthropic": ("sim-small", "anthropic_base_url"),
    "gemini": ("sim-fast", "gemini_base_url"),
}
# The one kind each fault must become, streamed or not (a non-streamed body cut after its headers
# is a response that began and broke, like a cut stream).
EXPECTED: dict[str, str] = {
    "429": "rate_limit",
    "500": "server",
    "502": "server",
    "503": "overloaded",
    "529": "overloaded",
    "reset": "connection",
    "timeout": "timeout",
    "stall": "timeout",
    "cut": "stream_interrupted",
    "malformed": "invalid_response",
    "empty": "invalid_response",
    "context_length": "context_length",
    "content_filter": "content_filter",
    "slow_first_token": "timeout",
    "no_done": "finish:length",  # text, finish reason and usage all came: a success (issue 14)
}
SLOW_FAULTS = {"timeout", "stall", "slow_first_token"}
# One TLS context for every test client: building one per httpx client costs ~30 ms (never used: plain HTTP).
_TLS = ssl.create_default_context()


def _provider(emu: Any, wire: str, client: httpx.AsyncClient, **options: Any) -> Any:
    model, url_attr = WIRES[wire]
    return evalkit.get_provider(
        f"{wire}:{model}",
        base_url=getattr(emu, url_attr),
        api_key="test-key",
        client=client,
        prices=emu.fleet.model(model).price.as_prices(),
        **options,
    )


def _outcome(emu: Any, wire: str, fault: str, stream: bool) -> str:
    timeout = httpx.Timeout(10.0, read=0.3 if fault in SLOW_FAULTS else 10.0)

    async def call() -> str:
        async with httpx.AsyncClient(verify=_TLS, timeout=timeout) as client:
            provider = _provider(
                emu, wire, client, headers={"x-evalkit-fault": fault, "x-evalkit-retry-after": "2"}
            )
            try:
                response = await provider.complete(
                    evalkit.ChatRequest.from_prompt("hi", max_tokens=20, stream=stream)
                )
            except evalkit.ProviderError as exc:
                if exc.kind.value == "rate_limit":
                    assert exc.retry_after == 2.0
                return exc.kind.value
        return f"finish:{response.finish_reason.value}"

    return asyncio.run(call())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", FAULT_KINDS)
@pytest.mark.parametrize("wire", sorted(WIRES))
def test_fault_becomes_the_right_error_kind(
    emu: Any, wire: str, fault: str, stream: bool, request: pytest.FixtureRequest
) -> None:
    outcome = _outcome(emu, wire, fault, stream)
    assert outcome == EXPECTED[fault]
    stats = emu.stats()["models"][WIRES[wire][0]]
    assert stats["faults"] == {fault: 1}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("wire", sorted(WIRES))
def test_clean_answers_round_trip(emu: Any, wire: str, stream: bool) -> None:
    async def call() -> Any:
        async with httpx.AsyncClient(verify=_TLS, timeout=10.0) as client:
            provider = _provider(emu, wire, client)
            return await provider.complete(
                evalkit.ChatRequest.from_prompt("hi", max_tokens=20, stream=stream)
            )

    response = asyncio.run(call())
    assert response.text and response.finish_reason.value == "length"
    assert response.usage.output_tokens == 20 and response.usage.input_tokens > 0
    assert response.cost is not None and response.cost.total > 0
    assert (response.ttft_ms is not None) == stream
