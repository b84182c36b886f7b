"""A fallback chain over real servers: the first is down, llama.cpp answers."""

from __future__ import annotations

import socket

import pytest

import evalkit
from evalkit import ChatRequest
from evalkit.router import FallbackChain

pytestmark = pytest.mark.asyncio


def _dead_url() -> str:
    with socket.socket() as s:  # nothing listens on this port once it is closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_chain_whose_first_server_is_down_is_answered_by_llamacpp(llamacpp_server, stream) -> None:
    down = evalkit.get_provider("vllm:gemma-3-270m", base_url=_dead_url())
    live = evalkit.get_provider(llamacpp_server.target, base_url=llamacpp_server.base_url)
    async with FallbackChain([down, live]) as chain:
        request = ChatRequest.from_prompt("Name a primary colour.", max_tokens=16, stream=stream)
        if stream:
            routed = chain.stream(request)
            deltas = [d async for d in routed]
            response = routed.response
            assert response is not None and "".join(deltas) == response.text
        else:
            response = await chain.complete(request)
    assert response.text.strip() and response.provider == "llamacpp:gemma-3-270m"
    *failed, served = response.attempts
    # The retry policy may try a refused connection again before moving on; every try is on record.
    assert failed and all(a.target == "vllm:gemma-3-270m" and a.error_kind == "connection" for a in failed)
    assert served.target == "llamacpp:gemma-3-270m" and served.ok and served.depth == 1


def _cut_after_hel(request: "httpx.Request") -> "httpx.Response":
    """An upstream whose stream breaks after one delta: no finish reason, no [DONE]."""
    import httpx

    chunk = b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunk)


async def test_a_stream_cut_mid_answer_restarts_on_llamacpp_with_a_typed_event(llamacpp_server) -> None:
    """llama.cpp's server answers a trailing assistant turn afresh, so the capability data says restart."""
    import httpx

    cut = evalkit.get_provider("openai:cut", api_key="sk-test-REAL-SERVER-0000", base_url="http://cut.invalid/v1",
                               transport=httpx.MockTransport(_cut_after_hel))
    live = evalkit.get_provider(llamacpp_server.target, base_url=llamacpp_server.base_url)
    assert live.accepts_prefill is False
    async with FallbackChain([cut, live]) as chain:
        routed = chain.stream(ChatRequest.from_prompt("Name a primary colour.", max_tokens=16))
        items = [item async for item in routed]
    assert items[0] == "Hel" and isinstance(items[1], evalkit.StreamRestart) and items[1].discarded == 3
    response = routed.response
    assert response is not None and "".join(items[2:]) == response.text and response.text.strip()
    assert [(a.target, a.error_kind, a.recovery) for a in response.attempts] == [
        ("openai:cut", "stream_interrupted", None), ("llamacpp:gemma-3-270m", None, "restart")]


async def test_a_first_token_deadline_fires_against_llamacpp_and_the_next_call_is_healthy(llamacpp_server) -> None:
    strict = evalkit.get_provider(llamacpp_server.target, base_url=llamacpp_server.base_url,
                                  deadlines=evalkit.Deadlines(ttft_timeout_s=0.001))
    async with strict:
        request = ChatRequest.from_prompt("Name a primary colour.", max_tokens=16, stream=True)
        with pytest.raises(evalkit.ProviderTimeoutError, match="ttft_timeout_s"):
            await strict.complete(request)
        relaxed = request.replace(deadlines=evalkit.Deadlines(ttft_timeout_s=60, stall_timeout_s=60))
        response = await strict.complete(relaxed)  # the call's own deadlines win field by field
    assert response.text.strip() and response.ttft_ms is not None
