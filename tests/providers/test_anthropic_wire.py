"""The Anthropic Messages wire: recorded traffic, documented shapes the recordings lack, properties.

Expected values for the recordings are read straight from the recorded JSON/SSE
by the small helpers below, which share no code with ``evalkit.providers.anthropic``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalkit
from evalkit.errors import ConfigError, ErrorKind, ProviderError
from evalkit.providers._framing import SSEDecoder
from evalkit.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicStream, AnthropicWire
from evalkit.types import ChatRequest, FinishReason, Message, ToolCall, ToolSpec, Usage

from .recordings import FAKE_KEY, Interaction, load, needs_wire, replay_provider, request_for

TARGET = "anthropic:claude-3-5-haiku-latest"

COVERED = {
    "anthropic/test_anthropic_compaction_usage_with_cache_streaming.yaml",
    "anthropic/test_anthropic_explicit_effort_xhigh_unsupported_model_errors.yaml",
    "anthropic/test_anthropic_message_create_legacy.yaml",
    "anthropic/test_anthropic_message_streaming_legacy.yaml",
    "anthropic/test_anthropic_model_instructions.yaml",
    "anthropic/test_anthropic_model_thinking_part.yaml",
    "anthropic/test_anthropic_model_thinking_part_stream.yaml",
    # Its messages interaction (#1); the count_tokens interaction (#0) is out of scope.
    "anthropic/test_anthropic_model_usage_limit_not_exceeded.yaml",
    "anthropic/test_anthropic_tools_legacy.yaml",
    "anthropic/test_inline_system_prompt_cache_prefix_is_reused.yaml",
    "anthropic/test_model_name_suggestion[anthropic].yaml",
    "anthropic/test_multiple_parallel_tool_calls.yaml",
    "anthropic/test_request_stream_fallback_for_high_max_tokens.yaml",
}
SKIPPED = {
    "anthropic/test_anthropic_count_tokens_error.yaml":
        "only a POST /v1/messages/count_tokens interaction; evalkit does not call count_tokens",
}
_COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # unpriced replayed model names


def _interactions() -> list[Interaction]:
    from .recordings import WIRE

    if not WIRE.is_dir():
        return []
    return [it for file in sorted(COVERED) for it in load(file) if _COUNT_TOKENS_PATH not in it.uri]


INTERACTIONS = MODEL_CALLS = _interactions()


def provider_for(it: Interaction) -> evalkit.HTTPProvider:
    """A provider replaying ``it`` (``test_conformance_coverage`` replays every module's calls)."""
    return replay_provider(it, TARGET)


# -- independent expectations from the raw recordings ------------------------------------

_EXPECTED_FINISH = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "tool_use": "tool_calls", "refusal": "content_filter",
}
_EXPECTED_KIND = {"invalid_request_error": "bad_request", "not_found_error": "not_found"}


def _sse_payloads(text: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(event name, decoded data) of every event in a recorded SSE body, in order."""
    out = []
    for block in re.split(r"\r?\n\r?\n", text):
        lines = block.splitlines()
        event = next((line[6:].strip() for line in lines if line.startswith("event:")), None)
        data = "\n".join(line[5:].strip() for line in lines if line.startswith("data:"))
        if data:
            out.append((event, json.loads(data)))
    return out


def _expected_usage(usage: dict[str, Any]) -> dict[str, int]:
    # Compaction: every pass listed in iterations was billed; the top level is the last pass only.
    passes = usage.get("iterations") or [usage]

    def total(name: str) -> int:
        return sum(p.get(name) or 0 for p in passes)

    read, written = total("cache_read_input_tokens"), total("cache_creation_input_tokens")
    return {
        "input_tokens": total("input_tokens") + read + written,
        "cached_input_tokens": read,
        "cache_write_tokens": written,
        "output_tokens": total("output_tokens"),
        "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("thinking_tokens", 0),
    }


def _expected_from_message(body: dict[str, Any]) -> dict[str, Any]:
    blocks = body["content"]
    return {
        "text": "".join(b["text"] for b in blocks if b["type"] == "text"),
        "reasoning": "".join(b["thinking"] for b in blocks if b["type"] == "thinking"),
        "tool_calls": [(b["id"], b["name"], json.dumps(b["input"]))
                       for b in blocks if b["type"] == "tool_use"],
        "finish": _EXPECTED_FINISH[body["stop_reason"]],
        "usage": _expected_usage(body["usage"]),
        "model": body["model"],
        "id": body["id"],
    }


def _expected_from_stream(text: str) -> dict[str, Any]:
    events = [data for _, data in _sse_payloads(text)]
    start = next(e["message"] for e in events if e["type"] == "message_start")
    final = next(e for e in events if e["type"] == "message_delta")
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    usage: dict[str, Any] = dict(final["usage"])
    for name, value in start["usage"].items():
        if isinstance(value, int):  # message_delta counts are cumulative; a field it lacks keeps the start's
            usage[name] = max(value, usage.get(name) or 0)
    return {
        "text": "".join(d["text"] for d in deltas if d["type"] == "text_delta"),
        "reasoning": "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta"),
        "tool_calls": [],
        "finish": _EXPECTED_FINISH[final["delta"]["stop_reason"]],
        "usage": _expected_usage(usage),
        "model": start["model"],
        "id": start["id"],
        "complete": events[-1]["type"] == "message_stop",
    }


# -- the recordings, replayed through a real provider ---------------------------------------


@needs_wire
@pytest.mark.parametrize("interaction", INTERACTIONS, ids=lambda it: it.id)
async def test_recorded_interaction(interaction: Interaction) -> None:
    provider = replay_provider(interaction, TARGET)
    request = request_for(interaction)
    if interaction.status >= 300:
        body = interaction.json()
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request)
        error = caught.value
        assert error.kind.value == _EXPECTED_KIND[body["error"]["type"]]
        assert error.status == interaction.status
        assert error.code == body["error"]["type"]
        assert error.message == body["error"]["message"]
        assert error.request_id == body["request_id"]
        assert error.provider == "anthropic"
        return
    expected = (_expected_from_stream(interaction.text()) if interaction.streamed
                else _expected_from_message(interaction.json()))
    response = await provider.complete(request)
    assert response.text == expected["text"]
    assert response.reasoning == expected["reasoning"]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == expected["tool_calls"]
    assert response.finish_reason.value == expected["finish"]
    usage = response.usage
    assert usage.input_tokens == expected["usage"]["input_tokens"]
    assert usage.cached_input_tokens == expected["usage"]["cached_input_tokens"]
    assert usage.cache_write_tokens == expected["usage"]["cache_write_tokens"]
    assert usage.output_tokens == expected["usage"]["output_tokens"]
    assert usage.reasoning_tokens == expected["usage"]["reasoning_tokens"]
    assert usage.exact is True
    assert response.model == expected["model"]
    assert response.request_id == interaction.headers.get("request-id", expected["id"])
    assert (response.ttft_ms is not None) == interaction.streamed


@needs_wire
@pytest.mark.parametrize("interaction", INTERACTIONS[:1], ids=lambda it: it.id)
async def test_the_request_goes_to_messages_with_key_and_version(interaction: Interaction) -> None:
    provider = replay_provider(interaction, TARGET)
    await provider.complete(request_for(interaction))
    sent = provider.sent[0]  # type: ignore[attr-defined]
    assert sent.url.path == "/v1/messages"
    assert sent.headers["x-api-key"] == FAKE_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = json.loads(sent.content)
    assert body["model"] == "claude-3-5-haiku-latest"
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert body.get("stream", False) == interaction.streamed


# -- hand-written spot checks of the README's headline numbers -------------------------------


async def _replay(file: str, index: int = 0) -> evalkit.ChatResponse:
    interaction = load(file)[index]
    return await replay_provider(interaction, TARGET).complete(request_for(interaction))


@needs_wire
async def test_spot_compaction_stream_bills_every_pass() -> None:
    response = await _replay("anthropic/test_anthropic_compaction_usage_with_cache_streaming.yaml")
    assert response.text == "Hello! 👋"
    # The 55096 cache reads appear only in message_start and iterations, never in message_delta's totals.
    assert response.usage.cached_input_tokens == 55096
    assert response.usage.input_tokens == 100 + 55096 + 181
    assert response.usage.output_tokens == 83 + 8
    assert response.finish_reason is FinishReason.STOP


@needs_wire
async def test_spot_cache_write_then_read() -> None:
    file = "anthropic/test_inline_system_prompt_cache_prefix_is_reused.yaml"
    first, second = await _replay(file, 0), await _replay(file, 1)
    assert first.usage == Usage(input_tokens=2 + 1590, cache_write_tokens=1590, output_tokens=4)
    assert second.usage == Usage(input_tokens=2 + 1590, cached_input_tokens=1590, output_tokens=4)
    assert first.usage.reasoning_tokens == 0 and first.text == "OK"


@needs_wire
async def test_spot_thinking_stream() -> None:
    response = await _replay("anthropic/test_anthropic_model_thinking_part_stream.yaml")
    assert response.usage.output_tokens == 282
    assert response.usage.input_tokens == 43
    assert response.reasoning == (
        "This is a straightforward question about pedestrian safety. I should provide clear, helpful"
        " advice about how to safely cross a street. This is basic safety information that could help"
        " prevent accidents."
    )
    assert response.text.endswith("when crossing streets.")
    # The older usage shape does not split thinking out of output_tokens: 0 means "not separated".
    assert response.usage.reasoning_tokens == 0


@needs_wire
async def test_spot_thinking_non_stream() -> None:
    response = await _replay("anthropic/test_anthropic_model_thinking_part.yaml")
    assert response.reasoning.startswith("This is a straightforward question about pedestrian safety.")
    assert response.text.startswith("Here's how to cross the street safely:")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (43, 321)


@needs_wire
async def test_spot_parallel_tool_calls() -> None:
    response = await _replay("anthropic/test_multiple_parallel_tool_calls.yaml")
    assert response.finish_reason is FinishReason.TOOL_CALLS
    names = [json.loads(c.arguments)["name"] for c in response.tool_calls]
    assert names == ["Alice", "Bob", "Charlie", "Daisy"]
    assert {c.name for c in response.tool_calls} == {"retrieve_entity_info"}
    assert response.tool_calls[0].id == "toolu_0167cfEnoQaPviGdVXA95zcu"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (423, 202)
    after = await _replay("anthropic/test_multiple_parallel_tool_calls.yaml", 1)
    assert after.finish_reason is FinishReason.STOP and after.tool_calls == ()
    assert "Daisy is the youngest" in after.text


@needs_wire
async def test_spot_legacy_files_with_rate_limit_headers() -> None:
    create = await _replay("anthropic/test_anthropic_message_create_legacy.yaml")
    assert (create.usage.input_tokens, create.usage.output_tokens) == (17, 220)
    assert create.request_id == "req_01A7u6aDNi2C6mvDawgML8jB"
    assert create.rate_limits["anthropic-ratelimit-tokens-remaining"] == "10000"
    tools = await _replay("anthropic/test_anthropic_tools_legacy.yaml")
    assert [c.name for c in tools.tool_calls] == ["get_weather", "get_time"]
    assert json.loads(tools.tool_calls[0].arguments) == {"location": "New York, NY", "unit": "fahrenheit"}
    assert (tools.usage.input_tokens, tools.usage.output_tokens) == (514, 152)
    streamed = await _replay("anthropic/test_anthropic_message_streaming_legacy.yaml")
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (17, 171)
    assert streamed.text.startswith("Here's an OpenTelemetry-themed joke for you:")
    assert streamed.rate_limits["anthropic-ratelimit-requests-remaining"] == "49"


@needs_wire
async def test_spot_small_files() -> None:
    plain = await _replay("anthropic/test_anthropic_model_instructions.yaml")
    assert plain.text == "The capital of France is Paris."
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (20, 10)
    smallest = await _replay("anthropic/test_request_stream_fallback_for_high_max_tokens.yaml")
    assert smallest.text == "2" and (smallest.usage.input_tokens, smallest.usage.output_tokens) == (20, 5)
    limited = await _replay("anthropic/test_anthropic_model_usage_limit_not_exceeded.yaml", 1)
    assert (limited.usage.input_tokens, limited.usage.output_tokens) == (19, 77)
    assert limited.rate_limits["retry-after"] == "19"  # on a 200: recorded, not acted on


@needs_wire
async def test_spot_errors() -> None:
    with pytest.raises(ProviderError) as caught:
        await _replay("anthropic/test_model_name_suggestion[anthropic].yaml")
    assert caught.value.kind is ErrorKind.NOT_FOUND and not caught.value.retryable
    assert caught.value.request_id == "req_011CdufXo8Y2LVfY2veyuQWG"
    with pytest.raises(ProviderError) as caught:
        await _replay("anthropic/test_anthropic_explicit_effort_xhigh_unsupported_model_errors.yaml")
    assert caught.value.kind is ErrorKind.BAD_REQUEST and caught.value.status == 400


def test_coverage_lists_every_anthropic_file() -> None:
    from .recordings import WIRE

    if not WIRE.is_dir():
        pytest.skip("recorded traffic not found")
    on_disk = {f"anthropic/{p.name}" for p in (WIRE / "anthropic").glob("*.yaml")}
    assert on_disk == COVERED | set(SKIPPED)
    assert not COVERED & set(SKIPPED)


# -- build ---------------------------------------------------------------------------------


_CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def test_build_maps_the_whole_request() -> None:
    request = ChatRequest(
        messages=(
            Message("system", "Answer briefly."),
            Message("user", "Weather in Paris and Rome?"),
            Message("assistant", "Checking.", tool_calls=(ToolCall("tu_1", "weather", '{"city": "Paris"}'),
                                                          ToolCall("tu_2", "weather", '{"city": "Rome"}'))),
            Message("tool", "18C", tool_call_id="tu_1"),
            Message("tool", "21C", tool_call_id="tu_2"),
            Message("user", "And tomorrow?"),
        ),
        system="You are a weather bot.",
        max_tokens=300, temperature=0.2, top_p=0.9, seed=7, stop=("END",),
        tools=(ToolSpec("weather", "Current weather", _CITY_SCHEMA),),
    )
    call = AnthropicWire().build(request, "claude-sonnet-4-5", stream=False)
    assert call.path == "/v1/messages"
    assert call.headers == {"anthropic-version": "2023-06-01"}
    assert call.stream_format is None
    body = call.body
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 300
    assert body["system"] == "You are a weather bot.\n\nAnswer briefly."
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (0.2, 0.9, ["END"])
    assert "seed" not in body and "stream" not in body  # Anthropic has no seed
    assert body["tools"] == [{"name": "weather", "description": "Current weather",
                              "input_schema": _CITY_SCHEMA}]
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "tu_2", "name": "weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "tu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "tu_2", "content": "21C"},
            {"type": "text", "text": "And tomorrow?"},
        ]},
    ]


def test_build_defaults_max_tokens_and_streams() -> None:
    call = AnthropicWire().build(ChatRequest.from_prompt("hi"), "claude-3-5-haiku-latest", stream=True)
    assert call.body == {"model": "claude-3-5-haiku-latest", "max_tokens": DEFAULT_MAX_TOKENS,
                         "messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert call.stream_format == "sse"


def test_build_json_mode_is_a_system_instruction() -> None:
    wire = AnthropicWire()
    plain = wire.build(ChatRequest.from_prompt("hi", system="Be terse.", response_format="json"), "m", False)
    assert plain.body["system"].startswith("Be terse.\n\n")
    assert "JSON object" in plain.body["system"]
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    structured = wire.build(ChatRequest.from_prompt("hi", response_format=schema), "m", False)
    assert json.dumps(schema, separators=(",", ":")) in structured.body["system"]
    assert "response_format" not in structured.body


def test_build_rejects_tool_arguments_that_are_not_json() -> None:
    bad = Message("assistant", "", tool_calls=(ToolCall("tu_1", "f", "{not json"),))
    with pytest.raises(ConfigError):
        AnthropicWire().build(ChatRequest(messages=(Message("user", "x"), bad)), "m", False)


async def test_provider_sends_x_api_key_not_bearer() -> None:
    provider, sent = _mock(200, _message_body())
    await provider.complete(ChatRequest.from_prompt("hi"))
    assert sent[0].headers["x-api-key"] == FAKE_KEY
    assert sent[0].headers["anthropic-version"] == "2023-06-01"
    assert str(sent[0].url) == "http://mock.invalid/v1/messages"


# -- documented shapes the recordings lack ------------------------------------------------


def _message_body(content: list[dict[str, Any]] | None = None, stop_reason: str = "end_turn",
                  usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": content if content is not None else [{"type": "text", "text": "hello"}],
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": usage or {"input_tokens": 5, "output_tokens": 2}}


def _error_body(etype: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_mock"}


def _mock(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[evalkit.HTTPProvider, list]:
    sent: list[httpx.Request] = []
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    streamed = isinstance(body, bytes) and body.startswith(b"event:")
    ctype = "text/event-stream" if streamed else "application/json"

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, headers={"content-type": ctype, **(headers or {})}, content=content)

    provider = evalkit.get_provider(TARGET, api_key=FAKE_KEY, base_url="http://mock.invalid",
                                    transport=httpx.MockTransport(answer))
    return provider, sent


async def _error_of(status: int, body: Any, headers: dict[str, str] | None = None,
                    stream: bool = False) -> ProviderError:
    provider, _ = _mock(status, body, headers)
    with pytest.raises(ProviderError) as caught:
        await provider.complete(ChatRequest.from_prompt("hi", stream=stream))
    return caught.value


async def test_429_with_retry_after() -> None:
    body = _error_body("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
    error = await _error_of(429, body, {"retry-after": "7", "request-id": "req_h"})
    assert error.kind is ErrorKind.RATE_LIMIT and error.retryable
    assert error.retry_after == 7
    assert error.request_id == "req_mock"  # the body's request_id
    assert error.code == "rate_limit_error"


async def test_429_with_only_the_anthropic_reset_header() -> None:
    now = datetime.now(timezone.utc)
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": (now + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # A budget that is not exhausted does not say "wait", however far its reset is.
        "anthropic-ratelimit-tokens-remaining": "9000",
        "anthropic-ratelimit-tokens-reset": (now + timedelta(hours=1)).isoformat(),
    }
    error = await _error_of(429, _error_body("rate_limit_error", "rate limited"), headers)
    assert error.kind is ErrorKind.RATE_LIMIT
    assert error.retry_after is not None and 25 <= error.retry_after <= 31


async def test_529_overloaded() -> None:
    error = await _error_of(529, _error_body("overloaded_error", "Overloaded"))
    assert error.kind is ErrorKind.OVERLOADED and error.retryable and error.status == 529


@pytest.mark.parametrize(("status", "etype", "message", "kind", "retryable"), [
    (500, "api_error", "Internal server error", ErrorKind.SERVER, True),
    (401, "authentication_error", "invalid x-api-key", ErrorKind.AUTH, False),
    (403, "permission_error", "Your API key does not have permission", ErrorKind.AUTH, False),
    (404, "not_found_error", "model: claude-nope", ErrorKind.NOT_FOUND, False),
    (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.",
     ErrorKind.CONTEXT_LENGTH, False),
    (504, "timeout_error", "Request timed out", ErrorKind.TIMEOUT, True),
    (402, "billing_error", "Your credit balance is too low", ErrorKind.RATE_LIMIT, False),
    (400, "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum",
     ErrorKind.CONTEXT_LENGTH, False),
    (400, "invalid_request_error", "input length and `max_tokens` exceed context limit: 197626 + 8192 > "
     "200000, decrease input length or `max_tokens` and try again", ErrorKind.CONTEXT_LENGTH, False),
    (400, "invalid_request_error", "messages: roles must alternate between \"user\" and \"assistant\"",
     ErrorKind.BAD_REQUEST, False),
    # Anchored: the phrase inside another message is not a context-length error.
    (400, "invalid_request_error", "tool result: prompt is too long: 5 tokens > 2 maximum",
     ErrorKind.BAD_REQUEST, False),
    (418, "some_new_error", "teapot", ErrorKind.BAD_REQUEST, False),
    (503, "some_new_error", "busy", ErrorKind.OVERLOADED, True),
])
async def test_error_kinds(status: int, etype: str, message: str, kind: ErrorKind, retryable: bool) -> None:
    error = await _error_of(status, _error_body(etype, message))
    assert error.kind is kind
    assert error.retryable is retryable
    assert (error.status, error.code, error.message) == (status, etype, message)


async def test_non_json_error_falls_back_to_status() -> None:
    error = await _error_of(502, b"<html>Bad gateway</html>", {"request-id": "req_gw"})
    assert error.kind is ErrorKind.SERVER and error.request_id == "req_gw"
    assert "Bad gateway" in error.message


async def test_malformed_json_on_200_is_invalid_response() -> None:
    error = await _error_of(200, b'{"id": "msg_1", "content": [')
    assert error.kind is ErrorKind.INVALID_RESPONSE and error.retryable


async def test_json_without_content_is_invalid_response() -> None:
    error = await _error_of(200, {"id": "msg_1", "type": "message"})
    assert error.kind is ErrorKind.INVALID_RESPONSE


async def test_error_body_on_200_is_raised() -> None:
    error = await _error_of(200, _error_body("overloaded_error", "Overloaded"))
    assert error.kind is ErrorKind.OVERLOADED and error.request_id == "req_mock"


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", FinishReason.STOP), ("stop_sequence", FinishReason.STOP), ("pause_turn", FinishReason.STOP),
    ("max_tokens", FinishReason.LENGTH), ("tool_use", FinishReason.TOOL_CALLS),
    ("refusal", FinishReason.CONTENT_FILTER), ("something_new", FinishReason.ERROR),
])
def test_finish_reasons(stop_reason: str, finish: FinishReason) -> None:
    assert AnthropicWire().parse(_message_body(stop_reason=stop_reason)).finish_reason is finish


def test_redacted_thinking_is_skipped_and_newer_usage_counts_thinking() -> None:
    body = _message_body(
        content=[{"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
                 {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                 {"type": "text", "text": "Done."}],
        usage={"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
               "output_tokens": 50, "output_tokens_details": {"thinking_tokens": 30}},
    )
    reply = AnthropicWire().parse(body)
    assert (reply.text, reply.reasoning) == ("Done.", "Let me think.")
    assert reply.usage == Usage(input_tokens=130, cached_input_tokens=100, cache_write_tokens=20,
                                output_tokens=50, reasoning_tokens=30)


def test_missing_usage_is_left_for_the_http_layer_to_estimate() -> None:
    body = _message_body()
    del body["usage"]
    assert AnthropicWire().parse(body).usage is None


# -- streams ---------------------------------------------------------------------------------


def _sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _block_start(index: int, **block: Any) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, **delta: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


_START = {"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant",
                                               "model": "claude-x", "content": [], "stop_reason": None,
                                               "usage": {"input_tokens": 12, "output_tokens": 1}}}
_TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
_HELLO = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}
_END = [{"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"}]


async def test_stream_cut_before_message_stop_is_interrupted() -> None:
    error = await _error_of(200, _sse(_START, _TEXT_START, _HELLO), stream=True)
    assert error.kind is ErrorKind.STREAM_INTERRUPTED and error.retryable


async def test_error_event_inside_a_200_stream() -> None:
    failure = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = await _error_of(200, _sse(_START, _TEXT_START, _HELLO, failure), stream=True)
    assert error.kind is ErrorKind.STREAM_INTERRUPTED and error.retryable
    assert error.code == "overloaded"
    assert "Overloaded" in error.message


async def test_thinking_stream_accumulates_reasoning() -> None:
    events = [
        _START,
        _block_start(0, type="thinking", thinking=""),
        _delta(0, type="thinking_delta", thinking="First, "),
        _delta(0, type="thinking_delta", thinking="add."),
        _delta(0, type="signature_delta", signature="EqQB"),
        {"type": "content_block_stop", "index": 0},
        _block_start(1, type="redacted_thinking", data="x"),
        {"type": "content_block_stop", "index": 1},
        _block_start(2, type="text", text=""),
        {"type": "ping"},
        _delta(2, type="text_delta", text="4"),
        *_END,
    ]
    provider, _ = _mock(200, _sse(*events))
    stream = provider.stream(ChatRequest.from_prompt("2+2?"))
    deltas = [d async for d in stream]
    assert deltas == ["4"]
    response = stream.response
    assert response is not None
    assert (response.reasoning, response.text) == ("First, add.", "4")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 9)
    assert response.ttft_ms is not None


def test_stream_tool_use_arguments_match_the_non_stream_form() -> None:
    parser = AnthropicStream()
    for event in [
        _START,
        _block_start(0, type="tool_use", id="tu_1", name="weather", input={}),
        _delta(0, type="input_json_delta", partial_json=""),
        _delta(0, type="input_json_delta", partial_json='{"city":'),
        _delta(0, type="input_json_delta", partial_json='"Paris"}'),  # compact: normalised to json.dumps
        {"type": "content_block_stop", "index": 0},
        _block_start(1, type="tool_use", id="tu_2", name="now", input={}),
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
        {"type": "message_stop"},
    ]:
        parser.feed(json.dumps(event), event["type"])
    reply = parser.finish()
    assert reply.tool_calls == (ToolCall("tu_1", "weather", json.dumps({"city": "Paris"})),
                                ToolCall("tu_2", "now", "{}"))
    assert reply.finish_reason is FinishReason.TOOL_CALLS


def test_stream_started_marks_the_first_output() -> None:
    parser = AnthropicStream()
    parser.feed(json.dumps(_START), "message_start")
    parser.feed(json.dumps(_TEXT_START), "content_block_start")
    parser.feed('{"type": "ping"}', "ping")
    assert not parser.started
    assert parser.feed(json.dumps(_HELLO) + "      ", "content_block_delta") == "Hel"
    assert parser.started


def test_stream_usage_keeps_the_larger_report_of_each_count() -> None:
    # Newer streams repeat the prompt side in message_delta, and may report a cache read there as 0
    # that message_start already counted (compaction recording); output_tokens grows from 1.
    parser = AnthropicStream()
    first = {"input_tokens": 12, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 0,
             "output_tokens": 1}
    final = {"input_tokens": 12, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 7,
             "output_tokens": 40}
    start = {**_START, "message": {**_START["message"], "usage": first}}
    for event in [start, _TEXT_START, _HELLO, {"type": "content_block_stop", "index": 0},
                  {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": final},
                  {"type": "message_stop"}]:
        parser.feed(json.dumps(event), event["type"])
    reply = parser.finish()
    assert reply.usage == Usage(input_tokens=12 + 500 + 7, cached_input_tokens=500, cache_write_tokens=7,
                                output_tokens=40)
    assert reply.finish_reason is FinishReason.LENGTH


def test_stream_malformed_event_is_an_invalid_response() -> None:
    # A whole event that is not JSON is a body evalkit cannot read, as it is without streaming
    # (the HTTP layer calls a broken *last* event, where the connection closed, a cut stream).
    with pytest.raises(ProviderError) as caught:
        AnthropicStream().feed('{"type": "message_start", ', "message_start")
    assert caught.value.kind is ErrorKind.INVALID_RESPONSE


# -- properties: a stream cut anywhere parses like the non-stream answer -------------------------


def _cut(raw: bytes, sizes: list[int]) -> list[bytes]:
    chunks, at, i = [], 0, 0
    while at < len(raw):
        size = sizes[i % len(sizes)] if sizes else len(raw)
        chunks.append(raw[at:at + size])
        at, i = at + size, i + 1
    return chunks


def _run_stream(raw: bytes, sizes: list[int]):
    parser, decoder = AnthropicStream(), SSEDecoder()
    for chunk in _cut(raw, sizes):
        for event, data in decoder.feed(chunk):
            parser.feed(data, event)
    for event, data in decoder.end():
        parser.feed(data, event)
    return parser.finish()


_texts = st.text(max_size=40)
_blocks = st.lists(st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _texts),
    st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "sig"}, _texts),
    st.builds(lambda i, n, a: {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a},
              st.integers(0, 999), st.sampled_from(["f", "get_weather"]),
              st.dictionaries(_texts, st.one_of(st.integers(), _texts, st.booleans()), max_size=3)),
    st.just({"type": "redacted_thinking", "data": "opaque"}),
), max_size=5)
_usages = st.fixed_dictionaries(
    {"input_tokens": st.integers(0, 10**6), "cache_read_input_tokens": st.integers(0, 10**6),
     "cache_creation_input_tokens": st.integers(0, 10**6), "output_tokens": st.integers(1, 10**5)},
    optional={"output_tokens_details": st.fixed_dictionaries({"thinking_tokens": st.integers(0, 100)})},
)


def _padded(event: dict[str, Any], pad: int) -> str:
    data = json.dumps(event, ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data[:-1]}{' ' * pad}}}\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _render_stream(blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, Any],
                   piece: int) -> bytes:
    prompt_side = {k: v for k, v in usage.items() if k != "output_tokens_details"}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {
        "id": "msg_p", "type": "message", "role": "assistant", "model": "claude-p", "content": [],
        "stop_reason": None, "usage": {**prompt_side, "output_tokens": 1}}}, {"type": "ping"}]
    for index, block in enumerate(blocks):
        kind = block["type"]
        stub = {"text": {"type": "text", "text": ""}, "thinking": {"type": "thinking", "thinking": ""},
                "redacted_thinking": block}.get(kind) or {**block, "input": {}}
        events.append({"type": "content_block_start", "index": index, "content_block": stub})
        if kind == "text":
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], piece)]
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"], piece)]
            deltas.append({"type": "signature_delta", "signature": "sig"})
        elif kind == "tool_use":
            deltas = [{"type": "input_json_delta", "partial_json": p}
                      for p in ["", *_pieces(json.dumps(block["input"]), piece)]]
        else:
            deltas = []
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    final = {"output_tokens": usage["output_tokens"]}
    if "output_tokens_details" in usage:
        final["output_tokens_details"] = usage["output_tokens_details"]
    events += [{"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": final}, {"type": "message_stop"}]
    return "".join(_padded(e, (i * 7) % 13) for i, e in enumerate(events)).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=_blocks, usage=_usages, piece=st.integers(1, 9),
       stop_reason=st.sampled_from(sorted(_EXPECTED_FINISH)),
       sizes=st.lists(st.integers(1, 64), max_size=20))
def test_generated_stream_in_any_chunks_equals_non_stream(blocks, usage, piece, stop_reason, sizes) -> None:
    body = {"id": "msg_p", "type": "message", "role": "assistant", "model": "claude-p", "content": blocks,
            "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}
    expected = AnthropicWire().parse(json.loads(json.dumps(body)))
    assert _run_stream(_render_stream(blocks, stop_reason, usage, piece), sizes) == expected


_STREAMED = [it for it in INTERACTIONS if it.streamed]


@needs_wire
@pytest.mark.parametrize("interaction", _STREAMED, ids=lambda it: it.id)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=20))
def test_recorded_stream_in_any_chunks_parses_the_same(interaction: Interaction, sizes: list[int]) -> None:
    raw = interaction.text().encode()
    assert _run_stream(raw, sizes) == _run_stream(raw, [])
