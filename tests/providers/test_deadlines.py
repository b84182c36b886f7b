"""Deadlines of one call: each phase's deadline fires on time, names itself, and bills what arrived."""

from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator

import httpx
import pytest

import evalkit
from evalkit.errors import ProviderTimeoutError as EvalkitTimeout

# Generous upper bounds on wall time: a deadline of 0.2 s must end the call well before the server's
# 5 s silence, even on a loaded CI machine.
SILENCE_S = 5.0
LATE_S = 2.0


def _chunk(text: str | None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    body = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


_END = (_chunk(None, "stop") + b'data: {"id":"c","model":"m","choices":[],"usage":{"prompt_tokens":3,'
        b'"completion_tokens":2,"total_tokens":5}}\n\n' + b"data: [DONE]\n\n")


class _Body(httpx.AsyncByteStream):
    """An SSE body: (seconds to wait, bytes) steps, as a slow upstream would send them."""

    def __init__(self, steps: list[tuple[float, bytes]]) -> None:
        self.steps = steps

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for wait, data in self.steps:
            if wait:
                await asyncio.sleep(wait)
            yield data


def _provider(steps: list[tuple[float, bytes]], *, headers_after_s: float = 0.0,
              deadlines: evalkit.Deadlines | None = None, seen: list[httpx.Request] | None = None) -> evalkit.HTTPProvider:
    async def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if headers_after_s:
            await asyncio.sleep(headers_after_s)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Body(steps))

    return evalkit.get_provider("openai:m", api_key="sk-test-DEADLINES-0000", base_url="http://mock.invalid/v1",
                                transport=httpx.MockTransport(answer), deadlines=deadlines,
                                prices={"input": 1, "output": 2})


STREAMED = evalkit.ChatRequest.from_prompt("hi", stream=True, max_tokens=20)


async def _timed_failure(provider: evalkit.HTTPProvider, request: evalkit.ChatRequest) -> tuple[EvalkitTimeout, float]:
    started = time.monotonic()
    with pytest.raises(EvalkitTimeout) as caught:
        await provider.complete(request)
    return caught.value, time.monotonic() - started


async def test_no_first_token_within_the_ttft_deadline_fails_fast_and_names_it() -> None:
    slow = _provider([(SILENCE_S, _chunk("late")), (0, _END)], deadlines=evalkit.Deadlines(ttft_timeout_s=0.2))
    error, elapsed = await _timed_failure(slow, STREAMED)
    assert elapsed < LATE_S and "ttft_timeout_s" in str(error) and "first token" in str(error)
    assert error.usage is None, "nothing was generated: nothing to bill"


async def test_a_stall_after_text_fails_and_bills_the_partial_answer() -> None:
    stalls = _provider([(0, _chunk("Hello there")), (SILENCE_S, _chunk(" late")), (0, _END)],
                       deadlines=evalkit.Deadlines(stall_timeout_s=0.2))
    error, elapsed = await _timed_failure(stalls, STREAMED)
    assert elapsed < LATE_S and "stall_timeout_s" in str(error)
    assert error.usage is not None and error.usage.output_tokens > 0 and not error.usage.exact
    assert error.cost is not None and error.cost.total > 0


async def test_headers_deadline_covers_a_server_that_never_answers() -> None:
    mute = _provider([(0, _chunk("x")), (0, _END)], headers_after_s=SILENCE_S,
                     deadlines=evalkit.Deadlines(headers_timeout_s=0.2))
    for request in (STREAMED, STREAMED.replace(stream=False)):
        error, elapsed = await _timed_failure(mute, request)
        assert elapsed < LATE_S and "headers_timeout_s" in str(error)


async def test_total_deadline_ends_a_trickle_that_never_stalls() -> None:
    trickle = _provider([(0.05, _chunk("a")) for _ in range(100)] + [(0, _END)],
                        deadlines=evalkit.Deadlines(stall_timeout_s=1.0, total_timeout_s=0.4))
    error, elapsed = await _timed_failure(trickle, STREAMED)
    assert elapsed < LATE_S and "total_timeout_s" in str(error)


async def test_a_calls_own_deadline_wins_over_the_targets() -> None:
    slow = _provider([(SILENCE_S, _chunk("late")), (0, _END)], deadlines=evalkit.Deadlines(ttft_timeout_s=60))
    request = STREAMED.replace(deadlines=evalkit.Deadlines(ttft_timeout_s=0.2))
    error, elapsed = await _timed_failure(slow, request)
    assert elapsed < LATE_S and "ttft_timeout_s" in str(error)


async def test_a_healthy_stream_with_every_deadline_armed_completes() -> None:
    armed = evalkit.Deadlines(connect_timeout_s=5, headers_timeout_s=5, ttft_timeout_s=5, stall_timeout_s=5,
                              total_timeout_s=5)
    seen: list[httpx.Request] = []
    healthy = _provider([(0.01, _chunk("Hel")), (0.01, _chunk("lo")), (0, _END)], deadlines=armed, seen=seen)
    deltas: list[str] = []
    response = await healthy.complete(STREAMED, on_delta=deltas.append)
    assert (response.text, deltas, response.usage.output_tokens) == ("Hello", ["Hel", "lo"], 2)
    assert seen[0].extensions["timeout"]["connect"] == 5, "the connect deadline is the transport's"


async def test_a_slow_reader_does_not_trip_the_stall_deadline() -> None:
    """The call runs in its own task: time the reader spends between deltas is not upstream silence."""
    quick = _provider([(0, _chunk("a")), (0, _chunk("b")), (0, _chunk("c")), (0, _END)],
                      deadlines=evalkit.Deadlines(stall_timeout_s=0.1))
    stream = quick.stream(STREAMED)
    seen = []
    async for delta in stream:
        seen.append(delta)
        await asyncio.sleep(0.3)
    assert seen == ["a", "b", "c"] and stream.response is not None and stream.response.text == "abc"


def test_deadlines_reject_nonsense() -> None:
    for bad in (0, -1, float("inf"), True, "5"):
        with pytest.raises(ValueError, match="ttft_timeout_s"):
            evalkit.Deadlines(ttft_timeout_s=bad)
    merged = evalkit.Deadlines(ttft_timeout_s=2, stall_timeout_s=1).merged(evalkit.Deadlines(ttft_timeout_s=3))
    assert (merged.ttft_timeout_s, merged.stall_timeout_s, merged.total_timeout_s) == (3, 1, None)
