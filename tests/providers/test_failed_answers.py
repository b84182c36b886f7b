"""Failures that look like answers, and what a failed attempt is billed (issue 11, items 3 and 4).

* A refusal or an empty answer is an error with its kind (``content_filter``,
  ``invalid_response``) on every wire, streamed or not, carrying the usage and
  cost the vendor reported: the emulator's faults and constructed vendor shapes.
* Every wire x {stream, not} x {cut, empty, malformed} gives a kind that says
  what happened (a body cut after its headers is not a ``connection`` error).
* A stream that breaks after some output carries an estimated usage and its
  price, and a router records them on the failed attempt.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any, AsyncIterator, Callable

import httpx
import pytest

import evalkit
from evalkit.emulator import Emulator
from evalkit.errors import ErrorKind, ProviderError
from evalkit.pricing import Prices
from evalkit.router import FallbackChain, RetryPolicy
from evalkit.tokens import count_tokens
from evalkit.types import ChatRequest, Message

KEY = "sk-test-FAILED-ANSWERS-0000000000000000"
PRICES = {"input": 2.0, "output": 8.0}

# wire -> (provider, emulator model, base URL attribute, provider options)
WIRES: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "openai": ("openai", "sim-large", "openai_base_url", {}),
    "anthropic": ("anthropic", "sim-small", "anthropic_base_url", {}),
    "gemini-sse": ("gemini", "sim-fast", "gemini_base_url", {}),
    "gemini-array": ("gemini", "sim-fast", "gemini_base_url", {"stream_format": "json-array"}),
}
# The kind each fault must become, streamed or not.
KINDS = {
    "content_filter": ErrorKind.CONTENT_FILTER,
    "empty": ErrorKind.INVALID_RESPONSE,
    "malformed": ErrorKind.INVALID_RESPONSE,
    "cut": ErrorKind.STREAM_INTERRUPTED,
}


@pytest.fixture(scope="module")
def emu():
    with Emulator(seed=0, time_scale=0.0, datasets=()) as emulator:
        yield emulator


def _emulated(emu: Emulator, wire: str, fault: str) -> evalkit.HTTPProvider:
    vendor, model, url, options = WIRES[wire]
    return evalkit.get_provider(f"{vendor}:{model}", base_url=getattr(emu, url), api_key=KEY,
                                headers={"x-evalkit-fault": fault}, prices=PRICES, **options)


async def _failure(provider: Any, request: ChatRequest) -> ProviderError:
    try:
        response = await provider.complete(request)
    except ProviderError as exc:
        return exc
    finally:
        await provider.aclose()
    pytest.fail(f"returned as an answer: finish_reason={response.finish_reason}, text={response.text!r}")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", sorted(KINDS))
@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_fault_is_a_failed_attempt_of_its_kind(emu: Emulator, wire: str, fault: str,
                                                     stream: bool) -> None:
    request = ChatRequest.from_prompt("Name a prime over 100.", max_tokens=20, stream=stream)
    error = await _failure(_emulated(emu, wire, fault), request)
    assert error.kind is KINDS[fault], error
    if fault in ("content_filter", "empty"):
        # The emulated vendor reported usage with its refusal / empty answer: billed, and priced.
        assert error.usage is not None and error.usage.input_tokens > 0 and error.usage.exact
        assert error.cost is not None and error.cost.total > 0
    if fault == "cut" and not stream:
        assert "response body cut after" in error.message
    if fault == "cut" and stream:
        # Text was streamed before the cut: the vendor bills it; counted locally, priced like an answer.
        assert error.usage is not None and error.usage.output_tokens > 0 and not error.usage.exact
        assert error.cost == Prices.from_mapping(PRICES).cost(error.usage)


# -- constructed vendor shapes ------------------------------------------------------------------

def _mock(target: str, body: bytes | dict, content_type: str = "application/json",
          prices: dict | None = PRICES) -> evalkit.HTTPProvider:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, content=content)

    options: dict[str, Any] = {"prices": prices} if prices is not None else {}
    return evalkit.get_provider(target, api_key=KEY, base_url="http://mock.invalid",
                                transport=httpx.MockTransport(answer), **options)


def _chat(message: dict, finish: str, usage: dict | None = None) -> dict:
    return {"id": "c1", "object": "chat.completion", "model": "gpt-4o", "usage": usage or {
        "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}]}


def _sse(*payloads: Any) -> bytes:
    return b"".join(b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n"
                    for p in payloads)


def _chunk(delta: dict, finish: str | None = None, model: str = "gpt-4o") -> dict:
    return {"id": "c1", "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


HI = ChatRequest.from_prompt("hi")
HI_STREAM = ChatRequest.from_prompt("hi", stream=True)


async def test_openai_structured_output_refusal_is_content_filter() -> None:
    body = _chat({"content": None, "refusal": "I'm sorry, I can't help with that."}, "stop")
    error = await _failure(_mock("openai:gpt-4o", body), HI)
    assert error.kind is ErrorKind.CONTENT_FILTER and error.retryable is False
    assert "I'm sorry, I can't help with that." in error.message
    assert (error.usage.input_tokens, error.usage.output_tokens, error.usage.exact) == (12, 5, True)
    assert error.cost == Prices.from_mapping(PRICES).cost(error.usage)
    stream = _sse(_chunk({"role": "assistant", "refusal": ""}), _chunk({"refusal": "I'm sorry"}),
                  _chunk({}, "stop"), b"[DONE]")
    error = await _failure(_mock("openai:gpt-4o", stream, "text/event-stream"), HI_STREAM)
    assert error.kind is ErrorKind.CONTENT_FILTER and "I'm sorry" in error.message
    assert error.usage is not None and not error.usage.exact  # none reported: counted locally


async def test_content_filter_with_partial_text_is_still_a_refusal() -> None:
    # Azure stops the text where its filter hit and says content_filter: not an answer.
    error = await _failure(_mock("azure:dep", _chat({"content": "Here is how to"}, "content_filter")), HI)
    assert error.kind is ErrorKind.CONTENT_FILTER and "Here is how" not in error.message


async def test_anthropic_refusal_names_the_vendors_explanation() -> None:
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Hello.."}], "stop_reason": "refusal",
            "stop_details": {"type": "refusal", "category": "cyber",
                             "explanation": "This request was declined because it could enable cyber harm."},
            "usage": {"input_tokens": 20, "output_tokens": 3}}
    error = await _failure(_mock("anthropic:claude-sonnet-4-5", body), HI)
    assert error.kind is ErrorKind.CONTENT_FILTER and "cyber: This request was declined" in error.message
    assert (error.usage.input_tokens, error.usage.output_tokens) == (20, 3)  # billed up to the refusal
    events = [("message_start", {"type": "message_start", "message": {
                  "id": "msg_1", "model": "claude-sonnet-4-5",
                  "usage": {"input_tokens": 20, "output_tokens": 1}}}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "Hello.."}}),
              ("message_delta", {"type": "message_delta", "delta": {
                  "stop_reason": "refusal", "stop_details": {"type": "refusal", "category": "cyber"}},
                  "usage": {"output_tokens": 3}}),
              ("message_stop", {"type": "message_stop"})]
    raw = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
    error = await _failure(_mock("anthropic:claude-sonnet-4-5", raw, "text/event-stream"), HI_STREAM)
    assert error.kind is ErrorKind.CONTENT_FILTER and "cyber" in error.message
    assert (error.usage.input_tokens, error.usage.output_tokens, error.usage.exact) == (20, 3, True)


async def test_length_with_no_text_is_a_failure_not_worth_retrying_as_is() -> None:
    # A reasoning model spent every output token thinking (max_completion_tokens=300).
    body = _chat({"content": ""}, "length", {"prompt_tokens": 30, "completion_tokens": 300,
                                             "completion_tokens_details": {"reasoning_tokens": 300}})
    error = await _failure(_mock("openai:o3-mini", body), ChatRequest.from_prompt("hi", max_tokens=300))
    assert error.kind is ErrorKind.INVALID_RESPONSE and error.retryable is False
    assert "300 reasoning tokens" in error.message and "max_tokens" in error.message
    assert error.usage.output_tokens == 300 and error.cost.total > 0


@pytest.mark.parametrize("content", ["", "  \n ", None])
async def test_no_text_and_no_tool_calls_is_invalid_response(content: str | None) -> None:
    error = await _failure(_mock("openai:gpt-4o", _chat({"content": content}, "stop")), HI)
    assert error.kind is ErrorKind.INVALID_RESPONSE and error.retryable and "empty answer" in error.message


async def test_tool_calls_without_text_and_truncated_text_are_answers() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    calls_only = _chat({"content": None, "tool_calls": [call]}, "tool_calls")
    response = await _mock("openai:gpt-4o", calls_only).complete(HI)
    assert response.tool_calls[0].name == "f"
    response = await _mock("openai:gpt-4o", _chat({"content": "The answer is"}, "length")).complete(HI)
    assert response.text == "The answer is"  # cut by max_tokens: an answer the grader can judge


async def test_unpriced_refusal_keeps_its_usage_with_cost_none() -> None:
    body = {**_chat({"content": None}, "content_filter"), "model": "no-such-model-x"}
    with pytest.warns(evalkit.UnpricedModelWarning):
        error = await _failure(_mock("openai:no-such-model-x", body, prices=None), HI)
    assert error.kind is ErrorKind.CONTENT_FILTER and error.usage.input_tokens == 12 and error.cost is None


# -- a stream that breaks after output is billed for it ------------------------------------------

class _BreakingStream(httpx.AsyncByteStream):
    """Sends ``parts``, then fails the read with ``failure`` (a cut connection, a stalled read)."""

    def __init__(self, parts: list[bytes], failure: Exception) -> None:
        self.parts, self.failure = parts, failure

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        raise self.failure


def _breaking(target: str, parts: list[bytes], failure: Exception,
              prices: dict | None = PRICES) -> evalkit.HTTPProvider:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=_BreakingStream(parts, failure))

    options: dict[str, Any] = {"prices": prices} if prices is not None else {}
    return evalkit.get_provider(target, api_key=KEY, base_url="http://mock.invalid",
                                transport=httpx.MockTransport(answer), **options)


PROMPT = ChatRequest.from_prompt("Count from one to twenty in words.", system="Be brief.", stream=True)
STREAMED = "one two three four five six seven eight"


def _prompt_tokens(model: str) -> int:
    return count_tokens([Message("system", "Be brief."), *PROMPT.messages], model).count


@pytest.mark.parametrize("failure", [httpx.ReadError("connection reset"), httpx.ReadTimeout("stalled")],
                         ids=["cut", "stalled"])
async def test_broken_stream_carries_the_usage_of_what_was_streamed(failure: Exception) -> None:
    words = STREAMED.split(" ")
    parts = [_sse(_chunk({"content": w + " "})) for w in words]
    provider = _breaking("openai:gpt-4o", parts, failure)
    error = await _failure(provider, PROMPT)
    cut = isinstance(failure, httpx.ReadError)
    assert error.kind is (ErrorKind.STREAM_INTERRUPTED if cut else ErrorKind.TIMEOUT)
    usage = error.usage
    assert usage is not None and usage.exact is False
    assert usage.input_tokens == _prompt_tokens("openai:gpt-4o")
    assert usage.output_tokens == count_tokens(STREAMED + " ", "openai:gpt-4o").count
    assert error.cost == Prices.from_mapping(PRICES).cost(usage) and error.cost.total > 0


async def test_vendor_running_usage_is_kept_and_raised_to_what_streamed() -> None:
    # Anthropic's message_start reports the prompt exactly and output_tokens=1 whatever follows.
    start = {"type": "message_start", "message": {"id": "m", "model": "claude-3-5-haiku-latest",
                                                  "usage": {"input_tokens": 25, "output_tokens": 1}}}
    parts = [f"event: message_start\ndata: {json.dumps(start)}\n\n".encode()]
    for word in STREAMED.split(" "):
        delta = {"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": word + " "}}
        parts.append(f"event: content_block_delta\ndata: {json.dumps(delta)}\n\n".encode())
    model = "anthropic:claude-3-5-haiku-latest"
    error = await _failure(_breaking(model, parts, httpx.ReadError("reset")), PROMPT)
    assert error.kind is ErrorKind.STREAM_INTERRUPTED
    assert error.usage.input_tokens == 25 and error.usage.exact is False
    assert error.usage.output_tokens == count_tokens(STREAMED + " ", model).count


async def test_cut_before_any_output_bills_nothing_known() -> None:
    error = await _failure(_breaking("openai:gpt-4o", [], httpx.ReadError("reset")), PROMPT)
    assert error.kind is ErrorKind.STREAM_INTERRUPTED and error.usage is None and error.cost is None


async def test_unpriced_broken_stream_has_usage_and_cost_none() -> None:
    parts = [_sse(_chunk({"content": "one two"}, model="no-such-model-y"))]
    with pytest.warns(evalkit.UnpricedModelWarning):
        error = await _failure(_breaking("openai:no-such-model-y", parts, httpx.ReadError("x"), None), PROMPT)
    assert error.usage is not None and error.usage.output_tokens > 0 and error.cost is None


async def test_non_streamed_body_cut_after_its_headers_is_not_a_connection_error() -> None:
    body = json.dumps(_chat({"content": "Paris"}, "stop")).encode()
    error = await _failure(_breaking("openai:gpt-4o", [body[:40]], httpx.ReadError("reset")), HI)
    assert error.kind is ErrorKind.STREAM_INTERRUPTED and error.retryable
    assert "response body cut after 40 bytes" in error.message


async def test_router_records_the_partial_bill_on_the_failed_attempt() -> None:
    parts = [_sse(_chunk({"content": w + " "})) for w in STREAMED.split(" ")]
    broken = _breaking("openai:gpt-4o", parts, httpx.ReadError("reset"))
    backup = _mock("openai:gpt-4o-mini", _sse(_chunk({"content": "one two three"}, "stop"), b"[DONE]"),
                   "text/event-stream")
    chain = FallbackChain([broken, backup], policy=RetryPolicy(retries_per_target=0, backoff_base_s=0.0))
    response = await chain.complete(PROMPT)
    failed = response.attempts[0]
    assert failed.error_kind == "stream_interrupted" and failed.usage.output_tokens > 0
    assert failed.cost is not None
    assert failed.cost.total == Prices.from_mapping(PRICES).cost(failed.usage).total
    assert response.provider == "openai:gpt-4o-mini" and response.text == "one two three"
