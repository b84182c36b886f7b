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
