"""Routed streams: deltas flow from the serving target; no fallback once text was shown."""

from __future__ import annotations

import json

import httpx
import pytest

import evalkit
from evalkit.router import FallbackChain

from .fakes import fast_policy


def _sse(*texts: str, done: bool = True, error_after: bool = False) -> bytes:
    out = []
    for t in texts:
        out.append({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]})
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in out)
    if error_after:
        body += 'data: {"error": {"code": 500, "message": "upstream died"}}\n\n'
    if done:
        body += 'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        body += 'data: {"id":"c","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
        body += "data: [DONE]\n\n"
    return body.encode()


def provider(name: str, status: int, body: bytes) -> evalkit.HTTPProvider:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=body)

    return evalkit.get_provider(f"openai:{name}", api_key="k", base_url="http://mock.invalid/v1",
                                transport=httpx.MockTransport(answer))


async def test_stream_falls_back_before_the_first_delta() -> None:
    down = provider("down", 503, b'{"error": {"message": "busy", "type": "server_error"}}')
    up = provider("up", 200, _sse("Hel", "lo"))
    stream = FallbackChain([down, up], policy=fast_policy(retries_per_target=0)).stream(
        evalkit.ChatRequest.from_prompt("hi"))
    deltas = [d async for d in stream]
    assert deltas == ["Hel", "lo"]
    assert stream.response.provider == "openai:up" and stream.response.ttft_ms is not None
    assert [a.error_kind for a in stream.response.attempts] == ["overloaded", None]


async def test_no_fallback_after_text_was_shown() -> None:
    breaks = provider("breaks", 200, _sse("Hel", done=False, error_after=True))
    backup = provider("backup", 200, _sse("other answer"))
    stream = FallbackChain([breaks, backup], policy=fast_policy()).stream(evalkit.ChatRequest.from_prompt("hi"))
    seen = []
    with pytest.raises(evalkit.errors.AllTargetsFailed) as caught:
        async for delta in stream:
            seen.append(delta)
    assert seen == ["Hel"], "the caller never sees a second answer spliced onto the first"
    assert [a.target for a in caught.value.attempts] == ["openai:breaks"]


async def test_complete_with_stream_flag_still_falls_back() -> None:
    breaks = provider("breaks", 200, _sse("Hel", done=False, error_after=True))
    backup = provider("backup", 200, _sse("whole"))
    response = await FallbackChain([breaks, backup], policy=fast_policy(retries_per_target=0)).complete(
        evalkit.ChatRequest.from_prompt("hi", stream=True))
    assert response.text == "whole" and response.provider == "openai:backup"
