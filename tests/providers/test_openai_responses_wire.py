"""The OpenAI Responses wire (``evalkit.providers.openai_responses``).

Recorded traffic from ``../shared/wire`` is replayed through a real provider
(``get_provider(..., api="responses")``) and every interaction's text, finish
reason, usage and error kind is checked against values extracted here, directly
from the recorded JSON/SSE, by code that shares nothing with the parser. Shapes
the recordings lack (429, 500, failed and incomplete responses, cut streams,
reasoning summaries) are built by hand with ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalkit
from evalkit import ChatRequest, ErrorKind, FinishReason, Message, ToolCall, ToolSpec
from evalkit.providers._framing import SSEDecoder
from evalkit.providers.openai_responses import OpenAIResponsesWire, parse_response

from .recordings import FAKE_KEY, WIRE, Interaction, load, needs_wire, replay_provider, request_for

COVERED = {
    "openai/test_openai_responses_gpt_5_5_drops_sampling_params_by_default.yaml",
    "openai/test_openai_include_raw_annotations_streaming.yaml",
    "openai/test_openai_responses_phase_streamed_on_part_start.yaml",
    "openai/test_openai_responses_prompt_cache_e2e.yaml",
    "openai/test_model_name_suggestion[openai-responses].yaml",
    "azure-openai/test_azure_responses_reasoning_context_default_wire_contract[gpt-5.4].yaml",
    "openai/test_openai_conversation_id_tool_call_continuation.yaml",
}
SKIPPED: dict[str, str] = {}
# Interactions of covered files that are not Responses calls (keyed "file#index").
SKIPPED_INTERACTIONS = {
    "openai/test_openai_conversation_id_tool_call_continuation.yaml#0":
        "POST /v1/conversations (conversation create) is not a model call; evalkit has no conversations API",
    "openai/test_openai_conversation_id_tool_call_continuation.yaml#3":
        "DELETE /v1/conversations/{id} is not a model call; evalkit has no conversations API",
}

_AZURE_FILE = "azure-openai/test_azure_responses_reasoning_context_default_wire_contract[gpt-5.4].yaml"


# -- independent extraction from the recordings -------------------------------------------------


def _sse_events(text: str) -> list[dict[str, Any]]:
    """The JSON payloads of an SSE body: split on blank lines, join each block's ``data:`` lines."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:")]
        if data:
            events.append(json.loads("\n".join(data)))
    return events


def _final_response(it: Interaction) -> dict[str, Any]:
    if not it.streamed:
        return it.json()
    terminal = [e for e in _sse_events(it.text())
                if e["type"] in ("response.completed", "response.incomplete")]
    assert len(terminal) == 1, it.id
    return terminal[0]["response"]


def _expected(it: Interaction) -> dict[str, Any]:
    final = _final_response(it)
    assert final["status"] == "completed", it.id  # every recorded Responses call completed
    output = final["output"]
    text = "".join(part["text"] for item in output if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")
    calls = [ToolCall(i["call_id"], i["name"], i["arguments"])
             for i in output if i["type"] == "function_call"]
    usage = final["usage"]
    return {
        "text": text,
        "finish": FinishReason.TOOL_CALLS if calls else FinishReason.STOP,
        "calls": tuple(calls),
        "model": final["model"],
        "input_tokens": usage["input_tokens"],
        "cached_input_tokens": usage["input_tokens_details"].get("cached_tokens", 0),
        "cache_write_tokens": usage["input_tokens_details"].get("cache_write_tokens", 0),
        "output_tokens": usage["output_tokens"],
        "reasoning_tokens": usage["output_tokens_details"].get("reasoning_tokens", 0),
    }


def _responses_interactions() -> list[Interaction]:
    if not WIRE.is_dir():
        return []
    return [it for f in sorted(COVERED) for it in load(f) if it.id not in SKIPPED_INTERACTIONS]


def _target(it: Interaction) -> str:
    return "azure:gpt-5.4" if it.file.startswith("azure-openai/") else "openai:gpt-5"


def provider_for(it: Interaction) -> evalkit.HTTPProvider:
    """A provider replaying ``it`` (``test_conformance_coverage`` replays every module's calls)."""
    return replay_provider(it, _target(it), api="responses")


_INTERACTIONS = MODEL_CALLS = _responses_interactions()
_OK = [it for it in _INTERACTIONS if it.status < 300]
_ERRORS = [it for it in _INTERACTIONS if it.status >= 300]
_STREAMS = [it for it in _OK if it.streamed]
# The one recorded error code and the kind it means (README: Responses answers an unknown model with 400).
_ERROR_KIND_BY_CODE = {"model_not_found": ErrorKind.NOT_FOUND}


# -- conformance over every recorded interaction ------------------------------------------------


@needs_wire
def test_skipped_interactions_are_exactly_the_non_responses_calls():
    for f in COVERED:
        for it in load(f):
            is_responses_call = it.method == "POST" and it.uri.endswith("/v1/responses")
            assert (it.id in SKIPPED_INTERACTIONS) != is_responses_call, it.id


@needs_wire
@pytest.mark.parametrize("it", _OK, ids=lambda it: it.id)
async def test_recorded_answer_parses_as_recorded(it: Interaction):
    expected = _expected(it)
    provider = replay_provider(it, _target(it), api="responses")
    request = request_for(it)
    if it.streamed:
        stream = provider.stream(request)
        deltas = [d async for d in stream]
        response = stream.response
        assert "".join(deltas) == expected["text"]
        recorded_deltas = [e["delta"] for e in _sse_events(it.text())
                           if e["type"] == "response.output_text.delta"]
        assert deltas == recorded_deltas
        assert response.ttft_ms is not None
    else:
        response = await provider.complete(request)
    assert response.text == expected["text"]
    assert response.finish_reason is expected["finish"]
    assert response.tool_calls == expected["calls"]
    assert response.model == expected["model"]
    u = response.usage
    assert u.input_tokens == expected["input_tokens"]
    assert u.cached_input_tokens == expected["cached_input_tokens"]
    assert u.cache_write_tokens == expected["cache_write_tokens"]
    assert u.output_tokens == expected["output_tokens"]
    assert u.reasoning_tokens == expected["reasoning_tokens"]
    assert u.exact is True


@needs_wire
@pytest.mark.parametrize("it", _ERRORS, ids=lambda it: it.id)
async def test_recorded_error_is_classified_by_its_code(it: Interaction):
    payload = it.json()["error"]
    provider = replay_provider(it, _target(it), api="responses")
    with pytest.raises(evalkit.ProviderError) as caught:
        await provider.complete(request_for(it))
    assert caught.value.kind is _ERROR_KIND_BY_CODE[payload["code"]]
    assert caught.value.status == it.status
    assert caught.value.code == payload["code"]


@needs_wire
async def test_openai_request_goes_to_responses_with_bearer_auth():
    it = load("openai/test_openai_responses_gpt_5_5_drops_sampling_params_by_default.yaml")[0]
    provider = replay_provider(it, "openai:gpt-5", api="responses")
    await provider.complete(ChatRequest.from_prompt("hello"))
    sent = provider.sent[0]
    assert sent.url.path == "/responses"
    assert sent.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert json.loads(sent.content) == {"model": "gpt-5", "input": [{"role": "user", "content": "hello"}],
                                        "store": False}


# -- hand-written spot checks of the README's headline numbers ----------------------------------


def _one(file: str, index: int = 0) -> Interaction:
    return load(file)[index]


@needs_wire
async def test_gpt_5_5_answers_paris_without_sampling_params():
    it = _one("openai/test_openai_responses_gpt_5_5_drops_sampling_params_by_default.yaml")
    provider = replay_provider(it, "openai:gpt-5.5", api="responses")
    r = await provider.complete(ChatRequest.from_prompt("What is the capital of France?"))
    assert (r.text, r.finish_reason, r.model) == ("Paris", FinishReason.STOP, "gpt-5.5-2026-04-23")
    assert (r.usage.input_tokens, r.usage.output_tokens) == (18, 5)
    body = json.loads(provider.sent[0].content)
    assert "temperature" not in body and "top_p" not in body


@needs_wire
async def test_prompt_cache_write_then_read():
    first, second = load("openai/test_openai_responses_prompt_cache_e2e.yaml")
    r1 = await replay_provider(first, "openai:gpt-5", api="responses").complete(request_for(first))
    r2 = await replay_provider(second, "openai:gpt-5", api="responses").complete(request_for(second))
    u1, u2 = r1.usage, r2.usage
    assert (u1.input_tokens, u1.cache_write_tokens, u1.cached_input_tokens) == (4020, 4012, 0)
    assert (u2.input_tokens, u2.cache_write_tokens, u2.cached_input_tokens) == (4020, 0, 4012)
    assert r1.text == r2.text == "OK"


@needs_wire
async def test_annotation_streams_usage_from_response_completed():
    first, _, third = load("openai/test_openai_include_raw_annotations_streaming.yaml")
    r1 = await replay_provider(first, "openai:gpt-5.2", api="responses").complete(request_for(first))
    assert (r1.usage.input_tokens, r1.usage.output_tokens, r1.usage.reasoning_tokens) == (12243, 140, 100)
    assert r1.text.startswith("The tallest mountain in Alberta is **Mount Columbia**")
    r3 = await replay_provider(third, "openai:gpt-5.2", api="responses").complete(request_for(third))
    assert (r3.text, r3.finish_reason) == ("2+2 = 4", FinishReason.STOP)
    assert (r3.usage.input_tokens, r3.usage.output_tokens) == (20, 10)


@needs_wire
async def test_phase_stream_function_call_then_answer():
    first, second = load("openai/test_openai_responses_phase_streamed_on_part_start.yaml")
    r1 = await replay_provider(first, "openai:gpt-5.5", api="responses").complete(request_for(first))
    assert r1.finish_reason is FinishReason.TOOL_CALLS
    call = ToolCall("call_LabG58Uhrq9kZvR52BYKjToD", "get_capital", '{"country":"PotatoLand"}')
    assert r1.tool_calls == (call,)
    assert r1.text == "I\u2019ll check the capital lookup tool for \u201cPotatoLand.\u201d"
    assert (r1.usage.output_tokens, r1.usage.reasoning_tokens) == (69, 26)
    r2 = await replay_provider(second, "openai:gpt-5.5", api="responses").complete(request_for(second))
    assert (r2.text, r2.finish_reason) == ("The capital of PotatoLand is **Potato City**.", FinishReason.STOP)


@needs_wire
async def test_conversation_function_call_then_text():
    its = load("openai/test_openai_conversation_id_tool_call_continuation.yaml")
    r1 = await replay_provider(its[1], "openai:gpt-4.1", api="responses").complete(request_for(its[1]))
    assert r1.tool_calls == (ToolCall("call_010000000000000000000000", "get_conversation_code", "{}"),)
    assert (r1.text, r1.finish_reason, r1.usage.input_tokens, r1.usage.output_tokens) == (
        "", FinishReason.TOOL_CALLS, 57, 13)
    r2 = await replay_provider(its[2], "openai:gpt-4.1", api="responses").complete(request_for(its[2]))
    assert (r2.text, r2.finish_reason, r2.usage.input_tokens) == ("TOOL-PAI-5222", FinishReason.STOP, 88)


@needs_wire
async def test_responses_400_model_not_found_is_not_found():
    it = _one("openai/test_model_name_suggestion[openai-responses].yaml")
    with pytest.raises(evalkit.NotFoundError) as caught:
        await replay_provider(it, "openai:gpt-5.2-proo", api="responses").complete(request_for(it))
    assert caught.value.status == 400 and caught.value.retryable is False
    assert "gpt-5.2-proo" in caught.value.message


@needs_wire
async def test_azure_responses_v1_path_and_api_key():
    it = _one(_AZURE_FILE)
    provider = replay_provider(it, "azure:gpt-5.4", api="responses")
    r = await provider.complete(request_for(it))
    sent = provider.sent[0]
    assert sent.url.path == "/openai/v1/responses" and not sent.url.query
    assert sent.headers["api-key"] == FAKE_KEY and "authorization" not in sent.headers
    assert json.loads(sent.content)["model"] == "gpt-5.4"
    assert (r.text, r.usage.input_tokens, r.usage.output_tokens) == ("Paris", 18, 5)
    assert r.request_id == "e946626e-517f-4a17-982f-0852ada6fe66"  # apim-request-id header


# -- stream parser vs non-stream parse, cut anywhere ---------------------------------------------


def _sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _response(output: list[dict[str, Any]], status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "model": "gpt-5-2025", "status": status, "output": output,
            "usage": {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 3},
                      "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 30}}, **extra}


_REASONING_ITEM = {"type": "reasoning", "id": "rs_1",
                   "summary": [{"type": "summary_text", "text": "**Plan** add"},
                               {"type": "summary_text", "text": "then answer"}]}
_MESSAGE_ITEM = {"type": "message", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Four. ", "annotations": []},
                             {"type": "output_text", "text": "Done\u00e9", "annotations": []}]}


def _summary_delta(summary_index: int, delta: str) -> dict[str, Any]:
    return {"type": "response.reasoning_summary_text.delta", "output_index": 0,
            "summary_index": summary_index, "delta": delta}


_SYNTHETIC_STREAM = _sse(
    {"type": "response.created", "response": _response([], status="in_progress")},
    _summary_delta(0, "**Plan**"),
    _summary_delta(0, " add"),
    _summary_delta(1, "then answer"),
    {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "Four. "},
    {"type": "response.output_text.delta", "output_index": 1, "content_index": 1, "delta": "Done\u00e9"},
    {"type": "response.completed", "response": _response([_REASONING_ITEM, _MESSAGE_ITEM])},
)


def _feed(body: bytes, cuts: list[int]) -> tuple[Any, list[str]]:
    parser = OpenAIResponsesWire().stream_parser()
    decoder = SSEDecoder()
    deltas: list[str] = []
    start = 0
    for cut in sorted(set(cuts)) + [len(body)]:
        for event, data in decoder.feed(body[start:cut]):
            deltas.append(parser.feed(data, event))
        start = cut
    for event, data in decoder.end():
        deltas.append(parser.feed(data, event))
    return parser.finish(), [d for d in deltas if d]


def _stream_bodies() -> list[tuple[str, bytes, dict[str, Any]]]:
    bodies = [(it.id, it.body, _final_response(it)) for it in _STREAMS]
    final = _sse_events(_SYNTHETIC_STREAM.decode())[-1]["response"]
    return bodies + [("synthetic-reasoning", _SYNTHETIC_STREAM, final)]


@pytest.mark.parametrize("name,body,final", _stream_bodies(), ids=lambda v: v if isinstance(v, str) else "")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_stream_cut_anywhere_equals_non_stream_parse(name: str, body: bytes, final: dict[str, Any], data):
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=max(len(body) - 1, 1)), max_size=40))
    reply, deltas = _feed(body, cuts)
    assert reply == parse_response(final)
    assert "".join(deltas) == reply.text


def test_synthetic_stream_reasoning_summary_paragraphs():
    reply, _ = _feed(_SYNTHETIC_STREAM, [])
    assert reply.reasoning == "**Plan** add\n\nthen answer"
    assert reply.text == "Four. Done\u00e9"
    assert reply.usage == evalkit.Usage(11, 3, 0, 40, 30)


# -- shapes the recordings lack, over a mock transport -------------------------------------------


def _provider(status: int, body: bytes | dict[str, Any], headers: dict[str, str] | None = None,
              target: str = "openai:gpt-5") -> evalkit.HTTPProvider:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    ctype = "text/event-stream" if isinstance(body, bytes) else "application/json"
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, headers={"content-type": ctype, **(headers or {})}, content=content)

    provider = evalkit.get_provider(target, api_key=FAKE_KEY, base_url="http://mock.invalid",
                                    transport=httpx.MockTransport(answer), api="responses")
    provider.sent = sent  # type: ignore[attr-defined]
    return provider


_HELLO = ChatRequest.from_prompt("hello")
_STREAM_HELLO = ChatRequest.from_prompt("hello", stream=True)


async def test_429_with_retry_after_ms_is_rate_limit():
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    provider = _provider(429, body, {"retry-after-ms": "1500", "x-request-id": "req_9"})
    with pytest.raises(evalkit.RateLimitError) as caught:
        await provider.complete(_HELLO)
    assert caught.value.retry_after == 1.5 and caught.value.retryable
    error = caught.value
    assert (error.status, error.code, error.request_id) == (429, "rate_limit_exceeded", "req_9")


async def test_429_insufficient_quota_is_not_retryable():
    body = {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}
    with pytest.raises(evalkit.RateLimitError) as caught:
        await _provider(429, body).complete(_HELLO)
    assert caught.value.retryable is False


async def test_500_is_server_error():
    body = {"error": {"message": "The server had an error", "type": "server_error", "code": None}}
    with pytest.raises(evalkit.ServerError) as caught:
        await _provider(500, body).complete(_STREAM_HELLO)
    assert caught.value.status == 500 and caught.value.retryable


async def test_400_context_length_exceeded():
    body = {"error": {"message": "too long", "type": "invalid_request_error",
                      "code": "context_length_exceeded"}}
    with pytest.raises(evalkit.ContextLengthError):
        await _provider(400, body).complete(_HELLO)


async def test_incomplete_max_output_tokens_is_length():
    body = _response([_MESSAGE_ITEM], status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    r = await _provider(200, body).complete(_HELLO)
    assert (r.finish_reason, r.text, r.usage.output_tokens) == (FinishReason.LENGTH, "Four. Done\u00e9", 40)


async def test_incomplete_content_filter_is_a_content_filter_error():
    body = _response([], status="incomplete", incomplete_details={"reason": "content_filter"})
    with pytest.raises(evalkit.ContentFilterError) as info:
        await _provider(200, body).complete(_HELLO)
    assert info.value.usage is not None and info.value.retryable is False


async def test_refusal_content_part_is_a_content_filter_error():
    # Structured outputs: the model declines in a "refusal" part of a completed message.
    refusal = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
               "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    with pytest.raises(evalkit.ContentFilterError) as info:
        await _provider(200, _response([refusal])).complete(_HELLO)
    assert "I can't help with that." in info.value.message


async def test_streamed_response_incomplete_is_terminal_and_length():
    final = _response([_MESSAGE_ITEM], status="incomplete",
                      incomplete_details={"reason": "max_output_tokens"})
    stream = _sse({"type": "response.output_text.delta", "delta": "Four. "},
                  {"type": "response.output_text.delta", "delta": "Done\u00e9"},
                  {"type": "response.incomplete", "response": final})
    r = await _provider(200, stream).complete(_STREAM_HELLO)
    assert (r.finish_reason, r.text) == (FinishReason.LENGTH, "Four. Done\u00e9")


async def test_failed_response_raises_its_classified_error():
    body = _response([], status="failed", error={"code": "rate_limit_exceeded", "message": "slow down"})
    with pytest.raises(evalkit.RateLimitError) as caught:
        await _provider(200, body).complete(_HELLO)
    assert caught.value.code == "rate_limit_exceeded" and caught.value.status is None


async def test_failed_response_with_responses_only_code():
    body = _response([], status="failed", error={"code": "invalid_prompt", "message": "flagged"})
    with pytest.raises(evalkit.ContentFilterError):
        await _provider(200, body).complete(_HELLO)


async def test_response_failed_event_interrupts_the_stream():
    failed = _response([], status="failed", error={"code": "server_error", "message": "boom"})
    stream = _sse({"type": "response.output_text.delta", "delta": "Hel"},
                  {"type": "response.failed", "response": failed})
    deltas: list[str] = []
    with pytest.raises(evalkit.StreamInterruptedError) as caught:
        async for delta in _provider(200, stream).stream(_STREAM_HELLO):
            deltas.append(delta)
    assert deltas == ["Hel"]
    assert caught.value.code == "server_error" and "boom" in caught.value.message and caught.value.retryable


@pytest.mark.parametrize("event", [
    {"type": "error", "code": "ERR_SOMETHING", "message": "Something went wrong", "param": None},
    {"type": "error",
     "error": {"type": "invalid_request_error", "code": "rate_limit_exceeded", "message": "x"}},
])
async def test_error_event_interrupts_the_stream(event: dict[str, Any]):
    with pytest.raises(evalkit.StreamInterruptedError) as caught:
        await _provider(200, _sse(event)).complete(_STREAM_HELLO)
    assert caught.value.code == (event.get("code") or event["error"]["code"])


async def test_stream_cut_before_response_completed():
    stream = _sse({"type": "response.created", "response": _response([], status="in_progress")},
                  {"type": "response.output_text.delta", "delta": "Hel"})
    with pytest.raises(evalkit.StreamInterruptedError, match="response.completed"):
        await _provider(200, stream).complete(_STREAM_HELLO)


async def test_stream_function_call_kept_when_final_object_lacks_output():
    added = {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": ""}
    stream = _sse(
        {"type": "response.output_item.added", "output_index": 0, "item": added},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '{"q":'},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '"x"}'},
        {"type": "response.output_text.delta", "output_index": 1, "delta": "ok"},
        {"type": "response.completed", "response": _response([])},
    )
    r = await _provider(200, stream).complete(_STREAM_HELLO)
    assert r.tool_calls == (ToolCall("call_1", "lookup", '{"q":"x"}'),)
    assert (r.text, r.finish_reason) == ("ok", FinishReason.TOOL_CALLS)


def test_parser_ignores_unknown_events_and_marks_first_output():
    parser = OpenAIResponsesWire().stream_parser()
    created = json.dumps({"type": "response.created", "response": _response([], status="in_progress")})
    assert parser.feed(created, "response.created") == "" and not parser.started
    searching = "response.web_search_call.searching"
    assert parser.feed(json.dumps({"type": searching}), searching) == ""
    assert parser.feed("[DONE]") == "" and not parser.started
    # Without an ``event:`` line the type comes from the payload.
    assert parser.feed('{"type": "response.output_text.delta", "delta": "Hi"}') == "Hi" and parser.started


def test_malformed_event_is_an_invalid_response():
    parser = OpenAIResponsesWire().stream_parser()
    with pytest.raises(evalkit.InvalidResponseError):
        parser.feed("{not json", "response.output_text.delta")


def test_non_stream_reasoning_summary_and_malformed_body():
    wire = OpenAIResponsesWire()
    assert wire.parse(_response([_REASONING_ITEM, _MESSAGE_ITEM])).reasoning == "**Plan** add\n\nthen answer"
    with pytest.raises(evalkit.InvalidResponseError):
        wire.parse({"id": "resp_1", "status": "completed"})
    with pytest.raises(evalkit.InvalidResponseError):
        wire.parse(["not", "an", "object"])


# -- the request body ------------------------------------------------------------------------------


def test_build_maps_every_request_field():
    request = ChatRequest(
        messages=(
            Message("user", "weather in Paris?"),
            Message("assistant", "", tool_calls=(ToolCall("call_1", "weather", '{"city":"Paris"}'),)),
            Message("tool", "sunny", tool_call_id="call_1"),
        ),
        system="Be brief.", max_tokens=64, temperature=0.2, top_p=0.9, stop=("END",), seed=7,
        response_format="json", tools=(ToolSpec("weather", "Weather by city"),),
    )
    call = OpenAIResponsesWire().build(request, "gpt-5", stream=True)
    assert call.path == "/responses" and call.stream_format == "sse" and not call.params
    assert call.body == {
        "model": "gpt-5",
        "input": [
            {"role": "user", "content": "weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "weather",
             "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "instructions": "Be brief.",
        "max_output_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "text": {"format": {"type": "json_object"}},
        "tools": [{"type": "function", "name": "weather", "description": "Weather by city",
                   "parameters": {"type": "object", "properties": {}}, "strict": False}],
        "stream": True,
        "store": False,
    }


@pytest.mark.parametrize("given_format,expected", [
    ({"type": "object", "properties": {"a": {"type": "string"}}},
     {"type": "json_schema", "name": "response",
      "schema": {"type": "object", "properties": {"a": {"type": "string"}}}, "strict": True}),
    ({"type": "json_schema",
      "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": False}},
     {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": False}),
    ({"type": "json_schema", "name": "x", "schema": {}, "strict": True},
     {"type": "json_schema", "name": "x", "schema": {}, "strict": True}),
])
def test_build_structured_output_formats(given_format: dict[str, Any], expected: dict[str, Any]):
    request = ChatRequest.from_prompt("hi", response_format=given_format)
    call = OpenAIResponsesWire().build(request, "m", stream=False)
    assert call.body["text"] == {"format": expected}
    assert "stream" not in call.body and call.stream_format is None


def test_auth_headers_bearer_and_azure_api_key():
    assert OpenAIResponsesWire().auth_headers("k") == {"authorization": "Bearer k"}
    assert OpenAIResponsesWire(auth="api-key").auth_headers("k") == {"api-key": "k"}
