"""evalkit against a server it did not write: llama-cpp-python's OpenAI-compatible server.

Before evalkit said ``content-type: application/json``, every call here failed
(FastAPI parsed neither aiohttp's ``application/octet-stream`` nor a missing
type as JSON: ``ServerError [server 500] ... model_attributes_type``).
"""

from __future__ import annotations

import httpx
import pytest

import evalkit
from evalkit import ChatRequest, FinishReason

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["aiohttp", "httpx"])
async def provider(request, llamacpp_server):
    """The same provider on the default transport (aiohttp) and on a plain ``httpx.AsyncClient``."""
    client = httpx.AsyncClient(timeout=120.0) if request.param == "httpx" else None
    async with evalkit.get_provider(llamacpp_server.target, base_url=llamacpp_server.base_url,
                                    **({"client": client} if client else {})) as p:
        yield p
    if client is not None:
        await client.aclose()


async def test_a_plain_completion_is_answered_with_the_servers_usage(provider) -> None:
    response = await provider.complete(ChatRequest.from_prompt("What is the capital of France?", max_tokens=24))
    assert response.text.strip()
    assert response.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert response.usage.exact  # llama.cpp reports usage for a non-streamed answer
    assert 0 < response.usage.output_tokens <= 24 and response.usage.input_tokens > 0
    assert response.provider == "llamacpp:gemma-3-270m" and response.cost is None  # self-hosted: unpriced


async def test_a_streamed_completion_arrives_in_deltas_with_estimated_usage(provider) -> None:
    stream = provider.stream(ChatRequest.from_prompt("Count from one to twenty in words.", max_tokens=12,
                                                     stream=True))
    deltas = [d async for d in stream]
    response = stream.response
    assert response is not None and len(deltas) > 1 and "".join(deltas) == response.text
    assert response.ttft_ms is not None and 0 < response.ttft_ms <= response.latency_ms
    # llama.cpp streams no usage: the counts are local estimates, and a cut answer used the whole cap.
    assert not response.usage.exact
    assert response.usage.output_tokens <= 12
    if response.finish_reason is FinishReason.LENGTH:
        assert response.usage.output_tokens == 12


async def test_a_dead_server_is_a_typed_connection_error() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with evalkit.get_provider("llamacpp:gemma-3-270m", base_url=f"http://127.0.0.1:{port}/v1") as p:
        with pytest.raises(evalkit.errors.ProviderError) as caught:
            await p.complete(ChatRequest.from_prompt("hi", max_tokens=4))
    assert caught.value.kind.value == "connection" and caught.value.retryable
