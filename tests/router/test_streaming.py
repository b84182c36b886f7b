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


async def test_mid_stream_fail_ends_the_call_after_text_was_shown() -> None:
    breaks = provider("breaks", 200, _sse("Hel", done=False, error_after=True))
    backup = provider("backup", 200, _sse("other answer"))
    chain = FallbackChain([breaks, backup], policy=fast_policy(), mid_stream="fail")
    stream = chain.stream(evalkit.ChatRequest.from_prompt("hi"))
    seen = []
    with pytest.raises(evalkit.errors.AllTargetsFailed) as caught:
        async for delta in stream:
            seen.append(delta)
    assert seen == ["Hel"], "the caller never sees a second answer spliced onto the first"
    assert [a.target for a in caught.value.attempts] == ["openai:breaks"]


async def test_a_target_without_prefill_restarts_the_stream_with_a_typed_event() -> None:
    breaks = provider("breaks", 200, _sse("Hel", done=False, error_after=True))
    backup = provider("backup", 200, _sse("other answer"))  # OpenAI: answers a prefill afresh, so no prefill
    stream = FallbackChain([breaks, backup], policy=fast_policy(retries_per_target=0)).stream(
        evalkit.ChatRequest.from_prompt("hi"))
    seen = [delta async for delta in stream]
    assert seen[0] == "Hel" and seen[-1] == "other answer"
    restart = seen[1]
    assert isinstance(restart, evalkit.StreamRestart) and restart.discarded == 3, "never silently spliced"
    assert stream.response.text == "other answer"
    assert [(a.target, a.recovery) for a in stream.response.attempts] == [
        ("openai:breaks", None), ("openai:backup", "restart")]


async def test_complete_with_stream_flag_still_falls_back() -> None:
    breaks = provider("breaks", 200, _sse("Hel", done=False, error_after=True))
    backup = provider("backup", 200, _sse("whole"))
    response = await FallbackChain([breaks, backup], policy=fast_policy(retries_per_target=0)).complete(
        evalkit.ChatRequest.from_prompt("hi", stream=True))
    assert response.text == "whole" and response.provider == "openai:backup"


def recording_provider(name: str, answers: list[tuple[int, bytes]], seen: list[dict], *,
                       vendor: str = "groq") -> evalkit.HTTPProvider:
    """A provider whose server answers ``answers`` in turn and keeps each request body in ``seen``."""
    pending = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        status, body = pending.pop(0)
        kind = "text/event-stream" if status == 200 else "application/json"
        return httpx.Response(status, headers={"content-type": kind}, content=body)

    return evalkit.get_provider(f"{vendor}:{name}", api_key="sk-test-STREAMS-0000", base_url="http://mock.invalid/v1",
                                transport=httpx.MockTransport(answer), prices={"input": 1, "output": 2})


async def test_continue_sends_the_shown_text_as_a_prefill_and_streams_one_seamless_answer() -> None:
    primary_seen: list[dict] = []
    backup_seen: list[dict] = []
    primary = recording_provider("a", [(200, _sse("Hel", done=False))], primary_seen)
    backup = recording_provider("b", [(200, _sse("lo", " world"))], backup_seen)  # Groq: takes a prefill
    chain = FallbackChain([primary, backup], policy=fast_policy(retries_per_target=0))
    stream = chain.stream(evalkit.ChatRequest.from_prompt("hi"))
    seen = [delta async for delta in stream]
    assert seen == ["Hel", "lo", " world"] and stream.response.text == "Hello world"
    assert backup_seen[0]["messages"][-1] == {"role": "assistant", "content": "Hel"}, "the prefill"
    cut, served = stream.response.attempts
    assert (cut.target, cut.error_kind, served.target, served.recovery, served.join_at) == (
        "groq:a", "stream_interrupted", "groq:b", "continue", 3)
    assert cut.usage is not None and cut.cost is not None, "the cut attempt is billed for what it produced"
    assert stream.response.usage == served.usage and stream.response.provider == "groq:b"


async def test_a_refused_prefill_restarts_and_the_400_is_never_the_calls_error() -> None:
    refusal = b'{"error": {"message": "prefill not supported", "type": "invalid_request_error"}}'
    seen: list[dict] = []
    primary = recording_provider("a", [(200, _sse("Hel", done=False))], [])
    backup = recording_provider("b", [(400, refusal), (200, _sse("Hello", " again"))], seen)
    chain = FallbackChain([primary, backup], policy=fast_policy(retries_per_target=0))
    stream = chain.stream(evalkit.ChatRequest.from_prompt("hi"))
    items = [delta async for delta in stream]
    assert items[0] == "Hel" and isinstance(items[1], evalkit.StreamRestart) and items[2:] == ["Hello", " again"]
    assert [(a.error_kind, a.recovery) for a in stream.response.attempts] == [
        ("stream_interrupted", None), ("bad_request", "continue"), (None, "restart")]
    assert seen[1]["messages"][-1]["role"] == "user", "the restart sends the original request"

    # Everything fails after a refused prefill: the call's error is the original failure, not the 400.
    primary = recording_provider("a", [(200, _sse("Hel", done=False))], [])
    backup = recording_provider("b", [(400, refusal), (200, _sse("Hel", done=False))], [])
    with pytest.raises(evalkit.AllTargetsFailed) as caught:
        async for _ in FallbackChain([primary, backup], policy=fast_policy(retries_per_target=0)).stream(
                evalkit.ChatRequest.from_prompt("hi")):
            pass
    assert caught.value.kind is evalkit.ErrorKind.STREAM_INTERRUPTED


async def test_a_content_filter_refusal_ends_the_call_with_the_vendors_reason() -> None:
    refusal = (b'{"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI\'s '
               b'content management policy.", "type": null, "code": "content_filter", "status": 400}}')
    backup_seen: list[dict] = []
    primary = evalkit.get_provider("openai:a", api_key="sk-test-STREAMS-0000", base_url="http://mock.invalid/v1",
                                   transport=httpx.MockTransport(lambda r: httpx.Response(400, content=refusal)))
    backup = recording_provider("b", [(200, _sse("sure"))], backup_seen)
    with pytest.raises(evalkit.AllTargetsFailed) as caught:
        await FallbackChain([primary, backup], policy=fast_policy()).complete(evalkit.ChatRequest.from_prompt("hi"))
    assert caught.value.kind is evalkit.ErrorKind.CONTENT_FILTER and not backup_seen, "one attempt, no bypass"
    assert "content management policy" in str(caught.value.errors[0])
    opted_in = FallbackChain([primary, backup], policy=fast_policy().with_actions({"content_filter": "next"}))
    assert (await opted_in.complete(evalkit.ChatRequest.from_prompt("hi", stream=True))).text == "sure"


async def test_a_cut_on_a_target_without_prefill_moves_on_instead_of_restarting_it() -> None:
    """Retrying the same target could only restart the answer: the chain moves to one that can continue it."""
    primary_seen: list[dict] = []
    backup_seen: list[dict] = []
    primary = recording_provider("a", [(200, _sse("Hel", done=False))] * 2, primary_seen, vendor="openai")
    backup = recording_provider("b", [(200, _sse("lo"))], backup_seen)
    stream = FallbackChain([primary, backup], policy=fast_policy(retries_per_target=1)).stream(
        evalkit.ChatRequest.from_prompt("hi"))
    seen = [delta async for delta in stream]
    assert seen == ["Hel", "lo"] and len(primary_seen) == 1 and len(backup_seen) == 1
