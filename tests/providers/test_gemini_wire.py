"""The Gemini wire (``evalkit/providers/gemini.py``) against recorded and constructed traffic.

Recorded: every ``generateContent`` / ``streamGenerateContent`` interaction in
``shared/wire/gemini`` is replayed through a real provider, and text, finish
reason, tool calls, reasoning and every usage field are compared with values
extracted independently from the recorded JSON/SSE. Constructed: the documented
shapes the recordings lack (429/503/500/403/400 errors, the JSON-array stream,
cut streams, blocked prompts, errors inside a stream).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalkit
from evalkit._secret import Secret
from evalkit.errors import ErrorKind, ProviderError
from evalkit.providers import HTTPProvider, get_provider
from evalkit.providers._framing import JSONArrayDecoder, SSEDecoder
from evalkit.providers.gemini import GeminiWire
from evalkit.providers.gemini_errors import classify_gemini_error
from evalkit.types import ChatRequest, FinishReason, Message, ToolCall, ToolSpec

from .recordings import (
    FAKE_KEY,
    NOT_ANSWERS,
    WIRE,
    Interaction,
    load,
    needs_wire,
    replay_provider,
    request_for,
)

COVERED = {
    "gemini/test_google_model_instructions.yaml",
    "gemini/test_google_model_thinking_config.yaml",
    "gemini/test_google_model_stream.yaml",
    "gemini/test_google_stream_usage_is_live_mid_stream.yaml",
    "gemini/test_google_model_iter_stream.yaml",
    "gemini/test_google_model_thinking_part_iter.yaml",
    "gemini/test_google_tool_output.yaml",
    "gemini/test_google_model_cached_content.yaml",
    "gemini/test_google_model_max_tokens_thinking_model_empty_response.yaml",
    "gemini/test_google_model_safety_settings.yaml",
    "gemini/test_model_name_suggestion[google].yaml",
}
SKIPPED = {
    "gemini/test_compatible_api_with_tool_calls_without_id.yaml":
        "OpenAI-compatible endpoint: covered in test_openai_chat_wire.py",
}
# Interactions of covered files that are not generation calls, by id.
SKIPPED_INTERACTIONS = {
    "gemini/test_google_model_cached_content.yaml#0":
        "POST /v1beta/cachedContents (explicit cache creation): cache management is out of scope",
    "gemini/test_google_model_cached_content.yaml#3":
        "DELETE /v1beta/cachedContents/{id}: cache management is out of scope",
}

_GENERATION_URI = re.compile(r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)")


def _generation_interactions() -> list[Interaction]:
    if not WIRE.is_dir():
        return []
    return [it for f in sorted(COVERED) for it in load(f) if _GENERATION_URI.search(it.uri)]


GENERATION = MODEL_CALLS = _generation_interactions()
STREAMED = [it for it in GENERATION if it.streamed]


def _ids(items: list[Interaction]) -> list[str]:
    return [it.id for it in items]


# -- an independent, deliberately plain reading of the recorded bodies -------------------------

def _sse_chunks(raw: str) -> list[dict[str, Any]]:
    """The JSON payloads of a Gemini SSE body: one ``data:`` line per event."""
    events = [e for e in re.split(r"\r?\n\r?\n", raw) if e.strip()]
    assert all(e.startswith("data: ") and "\n" not in e.strip() for e in events)
    return [json.loads(e[len("data: "):]) for e in events]


def _chunks(it: Interaction) -> list[dict[str, Any]]:
    return _sse_chunks(it.text()) if it.streamed else [it.json()]


def _expected(it: Interaction) -> dict[str, Any]:
    """What the recorded response says, read with plain dict lookups."""
    chunks = _chunks(it)
    parts = [p for c in chunks for cand in c.get("candidates", [])[:1]
             for p in cand.get("content", {}).get("parts", [])]
    reasons = [cand["finishReason"] for c in chunks for cand in c.get("candidates", [])[:1]
               if "finishReason" in cand]
    calls = [(p["functionCall"]["name"], p["functionCall"].get("args", {})) for p in parts
             if "functionCall" in p]
    reason = reasons[-1]
    finish = "tool_calls" if calls and reason == "STOP" else {
        "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}[reason]
    usage = [c["usageMetadata"] for c in chunks if "usageMetadata" in c][-1]
    thoughts = usage.get("thoughtsTokenCount", 0)
    return {
        "text": "".join(p["text"] for p in parts if "text" in p and not p.get("thought")),
        "reasoning": "".join(p["text"] for p in parts if "text" in p and p.get("thought")),
        "calls": calls,
        "finish": finish,
        "input": usage.get("promptTokenCount", 0) + usage.get("toolUsePromptTokenCount", 0),
        "cached": usage.get("cachedContentTokenCount", 0),
        "output": usage.get("candidatesTokenCount", 0) + thoughts,
        "reasoning_tokens": thoughts,
        "total": usage["totalTokenCount"],
        "response_id": chunks[-1]["responseId"],
    }


def _model_of(it: Interaction) -> str:
    match = _GENERATION_URI.search(it.uri)
    assert match
    return match.group(1)


def provider_for(it: Interaction) -> HTTPProvider:
    """A provider replaying ``it`` (``test_conformance_coverage`` replays every module's calls)."""
    return replay_provider(it, f"gemini:{_model_of(it)}")


# -- conformance over every recorded generation call -------------------------------------------

@needs_wire
def test_every_gemini_file_is_covered_or_skipped() -> None:
    files = {f"gemini/{p.name}" for p in (WIRE / "gemini").glob("*.yaml")}
    assert files == COVERED | set(SKIPPED)
    assert not COVERED & set(SKIPPED)
    skipped = {it.id for f in COVERED for it in load(f) if not _GENERATION_URI.search(it.uri)}
    assert skipped == set(SKIPPED_INTERACTIONS)


@needs_wire
@pytest.mark.parametrize("it", GENERATION, ids=_ids(GENERATION))
async def test_recorded_interaction(it: Interaction) -> None:
    provider = provider_for(it)
    if it.status >= 300:
        with pytest.raises(ProviderError) as info:
            await provider.complete(request_for(it))
        body = it.json()["error"]
        assert info.value.kind is {"NOT_FOUND": ErrorKind.NOT_FOUND}[body["status"]]
        error = info.value
        assert (error.status, error.code, error.message) == (it.status, body["status"], body["message"])
        return
    want = _expected(it)
    if it.id in NOT_ANSWERS:
        # A refusal or an empty answer is a failed attempt, billed for what the vendor counted.
        with pytest.raises(ProviderError) as info:
            await provider.complete(request_for(it))
        refused = want["finish"] == "content_filter"
        assert info.value.kind is (ErrorKind.CONTENT_FILTER if refused else ErrorKind.INVALID_RESPONSE)
        usage = info.value.usage
    else:
        response = await provider.complete(request_for(it))
        assert response.text == want["text"]
        assert response.reasoning == want["reasoning"]
        assert response.finish_reason.value == want["finish"]
        assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == want["calls"]
        assert response.request_id == want["response_id"]
        usage = response.usage
    assert usage.input_tokens == want["input"]
    assert usage.cached_input_tokens == want["cached"]
    assert usage.cache_write_tokens == 0
    assert usage.output_tokens == want["output"]
    assert usage.reasoning_tokens == want["reasoning_tokens"]
    assert usage.exact is True
    # Gemini's own total is prompt + candidates + thoughts: our split must add up to it.
    assert usage.total_tokens == want["total"]


@needs_wire
@pytest.mark.parametrize("it", GENERATION, ids=_ids(GENERATION))
async def test_recorded_request_shape(it: Interaction) -> None:
    """The URL we build equals the recorded one; the key travels only in the header."""
    provider = provider_for(it)
    try:
        await provider.complete(request_for(it))
    except ProviderError:
        pass
    sent = provider.sent[0]  # type: ignore[attr-defined]
    recorded = urlsplit(it.uri)
    assert sent.url.path == recorded.path
    assert sent.url.query.decode() == recorded.query
    assert sent.headers["x-goog-api-key"] == FAKE_KEY
    assert "key" not in sent.url.params and "authorization" not in sent.headers


@needs_wire
@pytest.mark.parametrize("it", STREAMED, ids=_ids(STREAMED))
async def test_recorded_stream_deltas_and_ttft(it: Interaction) -> None:
    provider = provider_for(it)
    stream = provider.stream(request_for(it))
    deltas = [d async for d in stream]
    assert stream.response is not None
    assert "".join(deltas) == _expected(it)["text"]
    assert stream.response.ttft_ms is not None


async def _replay(file: str, index: int) -> evalkit.ChatResponse:
    it = load(file)[index]
    return await provider_for(it).complete(request_for(it))


@needs_wire
async def test_spot_checks_plain_and_thinking() -> None:
    r = await _replay("gemini/test_google_model_instructions.yaml", 0)
    assert (r.text, r.finish_reason, r.model) == ("The capital of France is Paris.\n", FinishReason.STOP,
                                                  "gemini-2.0-flash")
    assert (r.usage.input_tokens, r.usage.output_tokens, r.request_id) == (13, 8, "41peaK-wOMSenvgPh-vRiAY")
    r = await _replay("gemini/test_google_model_thinking_config.yaml", 0)
    # 15 + 8 + 275 = 298: thinking is output; the "models/" resource prefix is dropped.
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (15, 283, 275)
    assert r.model == "gemini-2.5-pro"


@needs_wire
async def test_spot_checks_cached_content() -> None:
    # promptTokenCount 3520 already includes the 3512 cached tokens (total 3564 = 3520 + 2 + 42).
    r = await _replay("gemini/test_google_model_cached_content.yaml", 1)
    assert (r.text, r.usage.input_tokens, r.usage.cached_input_tokens) == ("Paris.", 3520, 3512)
    assert (r.usage.output_tokens, r.usage.reasoning_tokens, r.usage.cache_write_tokens) == (44, 42, 0)
    r = await _replay("gemini/test_google_model_cached_content.yaml", 2)
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens) == (3520, 3512, 53)


@needs_wire
async def test_spot_checks_streams() -> None:
    r = await _replay("gemini/test_google_model_stream.yaml", 0)
    # The last chunk says prompt 13; the earlier ones said 15.
    assert r.text == "The capital of France is Paris.\n"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (13, 8)
    r = await _replay("gemini/test_google_stream_usage_is_live_mid_stream.yaml", 0)
    assert r.text == "\n".join(str(n) for n in range(1, 31))
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (18, 115, 35)
    r = await _replay("gemini/test_google_model_thinking_part_iter.yaml", 0)
    assert r.reasoning.startswith("**Clarifying User Goals**")
    assert r.text.startswith("This is a great question!")
    assert "Clarifying" not in r.text and r.reasoning.count("**") == 8  # four bolded thought summaries
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (34, 1256, 787)


@needs_wire
async def test_spot_checks_tool_calls() -> None:
    r = await _replay("gemini/test_google_model_iter_stream.yaml", 0)
    assert r.tool_calls == (ToolCall(id="", name="get_capital", arguments='{"country": "France"}'),)
    assert (r.finish_reason, r.text) == (FinishReason.TOOL_CALLS, "")
    r = await _replay("gemini/test_google_model_iter_stream.yaml", 2)
    assert (r.text, r.finish_reason, r.usage.input_tokens) == ("The temperature in Paris is 30°C.\n",
                                                               FinishReason.STOP, 79)
    r = await _replay("gemini/test_google_tool_output.yaml", 0)
    assert r.tool_calls == (ToolCall(id="", name="get_user_country", arguments="{}"),)
    r = await _replay("gemini/test_google_tool_output.yaml", 1)
    assert json.loads(r.tool_calls[0].arguments) == {"city": "Mexico City", "country": "Mexico"}
    assert (r.usage.input_tokens, r.usage.output_tokens) == (47, 8)


@needs_wire
async def test_spot_checks_empty_candidates_and_404() -> None:
    # Every output token went to thinking: no answer, not worth retrying with the same max_tokens.
    with pytest.raises(evalkit.InvalidResponseError) as info:
        await _replay("gemini/test_google_model_max_tokens_thinking_model_empty_response.yaml", 0)
    error = info.value
    assert error.retryable is False and "output-token limit" in error.message
    assert (error.usage.input_tokens, error.usage.output_tokens, error.usage.reasoning_tokens) == (15, 2, 2)
    assert error.cost is not None and error.cost.total > 0 and error.request_id == "fH8oaunbEbr9qtsPjYGX4A0"
    with pytest.raises(evalkit.ContentFilterError) as info:
        await _replay("gemini/test_google_model_safety_settings.yaml", 0)
    error = info.value
    assert "finishReason SAFETY" in error.message
    assert (error.usage.input_tokens, error.usage.output_tokens) == (14, 0)
    with pytest.raises(evalkit.errors.NotFoundError) as info:
        await _replay("gemini/test_model_name_suggestion[google].yaml", 0)
    assert (info.value.status, info.value.code, info.value.retryable) == (404, "NOT_FOUND", False)


# -- build: the request body against recorded requests -------------------------------------------

@needs_wire
def test_build_matches_recorded_system_and_contents() -> None:
    it = load("gemini/test_google_model_instructions.yaml")[0]
    request = ChatRequest.from_prompt("What is the capital of France?", system="You are a helpful assistant.")
    call = GeminiWire().build(request, "gemini-2.0-flash", stream=False)
    assert call.path == "/v1beta/models/gemini-2.0-flash:generateContent" and call.stream_format is None
    assert call.body["contents"] == it.request_body["contents"]
    assert call.body["systemInstruction"]["parts"] == it.request_body["systemInstruction"]["parts"]


@needs_wire
def test_build_matches_recorded_tool_loop() -> None:
    it = load("gemini/test_google_model_iter_stream.yaml")[2]
    recorded = it.request_body
    tools = tuple(ToolSpec(d["name"], d["description"], d["parameters"])
                  for d in recorded["tools"][0]["functionDeclarations"])
    messages = [Message("system", "You are a helpful chatbot."),
                Message("user", "What is the temperature of the capital of France?")]
    for turn in recorded["contents"][1:]:
        part = turn["parts"][0]
        if "functionCall" in part:
            fc = part["functionCall"]
            call = ToolCall(fc["id"], fc["name"], json.dumps(fc["args"]))
            messages.append(Message("assistant", "", tool_calls=(call,)))
        else:
            fr = part["functionResponse"]
            messages.append(Message("tool", fr["response"]["return_value"], tool_call_id=fr["id"]))
    request = ChatRequest(messages=tuple(messages), tools=tools)
    call = GeminiWire().build(request, "gemini-2.0-flash", stream=True)
    assert call.path.endswith(":streamGenerateContent") and call.params == {"alt": "sse"}
    assert call.body["tools"] == recorded["tools"]
    assert call.body["systemInstruction"]["parts"] == recorded["systemInstruction"]["parts"]
    # pydantic-ai wraps tool results as {"return_value": ...}; evalkit uses Gemini's documented "output" key.
    for ours, theirs in zip(call.body["contents"], recorded["contents"], strict=True):
        assert ours["role"] == theirs["role"]
        if "functionResponse" in theirs["parts"][0]:
            mine, rec = ours["parts"][0]["functionResponse"], theirs["parts"][0]["functionResponse"]
            assert (mine["id"], mine["name"]) == (rec["id"], rec["name"])
            assert mine["response"] == {"output": rec["response"]["return_value"]}
        else:
            assert ours["parts"] == theirs["parts"]


def test_build_generation_config_and_json_modes() -> None:
    request = ChatRequest.from_prompt("hi", max_tokens=50, temperature=0.2, top_p=0.9, stop=("END",), seed=7,
                                      response_format="json")
    body = GeminiWire().build(request, "gemini-2.0-flash", stream=False).body
    assert body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2, "topP": 0.9, "seed": 7,
                                        "stopSequences": ["END"], "responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    config = GeminiWire().build(ChatRequest.from_prompt("hi", response_format=schema), "m", False).body
    assert config["generationConfig"] == {"responseMimeType": "application/json",
                                          "responseJsonSchema": schema}
    openai_style = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    config = GeminiWire().build(ChatRequest.from_prompt("hi", response_format=openai_style), "m", False).body
    assert config["generationConfig"]["responseJsonSchema"] == schema
    assert "generationConfig" not in GeminiWire().build(ChatRequest.from_prompt("hi"), "m", False).body


def test_build_parallel_tool_results_share_one_user_turn() -> None:
    calls = (ToolCall("a", "f", '{"x": 1}'), ToolCall("b", "g", "{}"))
    request = ChatRequest(messages=(Message("user", "go"), Message("assistant", "", tool_calls=calls),
                                    Message("tool", '{"ok": true}', tool_call_id="a"),
                                    Message("tool", "plain", tool_call_id="b")))
    contents = GeminiWire().build(request, "m", stream=False).body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "f", "args": {"x": 1}, "id": "a"}},
                                    {"functionCall": {"name": "g", "args": {}, "id": "b"}}]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "f", "response": {"ok": True}, "id": "a"}},
        {"functionResponse": {"name": "g", "response": {"output": "plain"}, "id": "b"}},
    ]


def test_build_stream_formats_and_resource_names() -> None:
    request = ChatRequest.from_prompt("hi")
    call = GeminiWire("json-array").build(request, "gemini-2.0-flash", stream=True)
    assert (call.path, dict(call.params), call.stream_format) == (
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent", {}, "json-array")
    assert GeminiWire().build(request, "tunedModels/mine", stream=False).path == (
        "/v1beta/tunedModels/mine:generateContent")
    assert GeminiWire().auth_headers("k") == {"x-goog-api-key": "k"}
    with pytest.raises(ValueError):
        GeminiWire("ndjson")  # type: ignore[arg-type]


def test_get_provider_uses_the_gemini_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_BASE_URL", raising=False)
    provider = get_provider("gemini:gemini-2.0-flash", api_key="k")
    assert isinstance(provider.wire, GeminiWire)
    assert provider.base_url == "https://generativelanguage.googleapis.com"


# -- parse: documented shapes the recordings lack ------------------------------------------------

def _body(parts: list[dict[str, Any]] | None, finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"role": "model"} if parts is None else {"role": "model", "parts": parts}
    candidate: dict[str, Any] = {"content": content}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-2.0-flash", "responseId": "r1", **extra}


@pytest.mark.parametrize(("reason", "finish"), [
    ("STOP", FinishReason.STOP), ("MAX_TOKENS", FinishReason.LENGTH), ("SAFETY", FinishReason.CONTENT_FILTER),
    ("RECITATION", FinishReason.CONTENT_FILTER), ("BLOCKLIST", FinishReason.CONTENT_FILTER),
    ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER), ("SPII", FinishReason.CONTENT_FILTER),
    ("IMAGE_SAFETY", FinishReason.CONTENT_FILTER), ("MALFORMED_FUNCTION_CALL", FinishReason.ERROR),
    ("OTHER", FinishReason.ERROR), ("LANGUAGE", FinishReason.ERROR),
    ("FINISH_REASON_UNSPECIFIED", FinishReason.ERROR), ("SOMETHING_NEW", FinishReason.ERROR),
])
def test_finish_reasons(reason: str, finish: FinishReason) -> None:
    assert GeminiWire().parse(_body(None, reason)).finish_reason is finish


def test_parse_function_call_id_thoughts_and_tool_use_tokens() -> None:
    body = _body([{"text": "plan", "thought": True}, {"text": "ok"},
                  {"functionCall": {"id": "c1", "name": "f", "args": {"q": "x"}}}],
                 usageMetadata={"promptTokenCount": 10, "toolUsePromptTokenCount": 4,
                                "candidatesTokenCount": 3})
    reply = GeminiWire().parse(body)
    assert (reply.text, reply.reasoning, reply.finish_reason) == ("ok", "plan", FinishReason.TOOL_CALLS)
    assert reply.tool_calls == (ToolCall("c1", "f", '{"q": "x"}'),)
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.usage.reasoning_tokens) == (14, 3, 0)


def test_parse_without_usage_leaves_it_to_the_http_layer() -> None:
    assert GeminiWire().parse(_body([{"text": "x"}])).usage is None


def test_parse_blocked_prompt_is_a_content_filter_finish() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9},
            "modelVersion": "gemini-2.0-flash"}
    reply = GeminiWire().parse(body)
    assert (reply.text, reply.finish_reason, reply.usage.input_tokens) == ("", FinishReason.CONTENT_FILTER, 9)


def test_parse_rejects_bodies_without_candidates() -> None:
    with pytest.raises(evalkit.errors.InvalidResponseError):
        GeminiWire().parse({"modelVersion": "x"})
    with pytest.raises(evalkit.errors.InvalidResponseError):
        GeminiWire().parse([{"candidates": []}])
    with pytest.raises(evalkit.errors.ServerError):
        GeminiWire().parse({"error": {"code": 500, "message": "boom", "status": "INTERNAL"}})


# -- classify ---------------------------------------------------------------------------------------

def _google_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error}).encode()


_QUOTA_429 = _google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "PerMinute"}]},
    {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"url": "https://ai.google.dev"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"},
])
_TOO_LONG = "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576)."


@pytest.mark.parametrize(("status", "body", "kind"), [
    (429, _QUOTA_429, ErrorKind.RATE_LIMIT),
    (503, _google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
     ErrorKind.OVERLOADED),
    (500, _google_error(500, "INTERNAL", "An internal error has occurred."), ErrorKind.SERVER),
    (504, _google_error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
     ErrorKind.TIMEOUT),
    (403, _google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
     ErrorKind.AUTH),
    (401, _google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
     ErrorKind.AUTH),
    (404, _google_error(404, "NOT_FOUND", "models/x is not found."), ErrorKind.NOT_FOUND),
    (400, _google_error(400, "INVALID_ARGUMENT", _TOO_LONG), ErrorKind.CONTEXT_LENGTH),
    (400, _google_error(400, "INVALID_ARGUMENT", "Please use a valid role: user, model."),
     ErrorKind.BAD_REQUEST),
    (400, _google_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
     ErrorKind.BAD_REQUEST),
    (400, _google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com"}]), ErrorKind.AUTH),
    (502, b"<html>Bad Gateway</html>", ErrorKind.SERVER),
    (409, _google_error(409, "ABORTED", "Concurrency conflict."), ErrorKind.BAD_REQUEST),
])
def test_classify(status: int, body: bytes, kind: ErrorKind) -> None:
    error = classify_gemini_error(status, {}, body)
    assert (error.kind, error.status) == (kind, status)


def test_classify_code_names_what_decided_the_kind() -> None:
    bad_key = _google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}])
    assert classify_gemini_error(400, {}, bad_key).code == "API_KEY_INVALID"
    other = _google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo",
         "retryDelay": {"seconds": 2, "nanos": 500000000}}])
    error = classify_gemini_error(429, {}, other)
    assert (error.kind, error.code, error.retry_after) == (ErrorKind.RATE_LIMIT, "RESOURCE_EXHAUSTED", 2.5)


def test_classify_rate_limit_retry_delay_from_retry_info() -> None:
    error = classify_gemini_error(429, {"retry-after": "3"}, _QUOTA_429)
    assert (error.retry_after, error.retryable, error.code) == (17.0, True, "RESOURCE_EXHAUSTED")
    # Without RetryInfo the header decides; the body can also be wrapped in a JSON array.
    bare = b"[" + _google_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.") + b"]"
    error = classify_gemini_error(429, {"Retry-After": "5"}, bare)
    assert (error.kind, error.retry_after) == (ErrorKind.RATE_LIMIT, 5.0)
    assert classify_gemini_error(429, {}, bare).retry_after is None


def test_classify_context_length_regex_is_anchored() -> None:
    wrapped = json.dumps([{"error": {"code": 400, "message": _TOO_LONG, "status": "INVALID_ARGUMENT",
                                     "errors": [{"message": _TOO_LONG, "reason": "badRequest"}]}}]).encode()
    assert classify_gemini_error(400, {}, wrapped).kind is ErrorKind.CONTEXT_LENGTH
    quoted = _google_error(400, "INVALID_ARGUMENT", f"Invalid value: {_TOO_LONG}")
    assert classify_gemini_error(400, {}, quoted).kind is ErrorKind.BAD_REQUEST
    # Only INVALID_ARGUMENT (or no status at all) is refined: another status keeps its own kind.
    assert classify_gemini_error(500, {}, _google_error(500, "INTERNAL", _TOO_LONG)).kind is ErrorKind.SERVER


# -- through the HTTP layer: constructed responses ---------------------------------------------------

def _provider(handler: Callable[[httpx.Request], httpx.Response], stream_format: str = "sse") -> HTTPProvider:
    wire = GeminiWire(stream_format)  # type: ignore[arg-type]
    return HTTPProvider(vendor="gemini", model="gemini-2.0-flash", wire=wire,
                        base_url="http://constructed.invalid", api_key=Secret(FAKE_KEY),
                        price_provider="google",
                        transport=httpx.MockTransport(handler))


def _answer(status: int, body: bytes, content_type: str = "application/json",
            headers: dict[str, str] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, headers={"content-type": content_type, **(headers or {})},
                                          content=body)


def _split_answer(body: bytes, seed: int, content_type: str) -> Callable[[httpx.Request], httpx.Response]:
    async def pieces() -> AsyncIterator[bytes]:
        rng = random.Random(seed)
        at = 0
        while at < len(body):
            step = rng.randint(1, 17)
            yield body[at:at + step]
            at += step

    return lambda request: httpx.Response(200, headers={"content-type": content_type}, content=pieces())


def _sse(chunks: list[dict[str, Any]]) -> bytes:
    return "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode()


def _json_array(chunks: list[dict[str, Any]]) -> bytes:
    return ("[" + ",\r\n".join(json.dumps(c) for c in chunks) + "]").encode()


_STREAM_REQUEST = ChatRequest.from_prompt("hi", stream=True)


async def test_http_error_carries_status_code_and_retry_after() -> None:
    provider = _provider(_answer(429, _QUOTA_429))
    with pytest.raises(evalkit.errors.RateLimitError) as info:
        await provider.complete(ChatRequest.from_prompt("hi"))
    assert (info.value.status, info.value.retry_after, info.value.provider) == (429, 17.0, "gemini")
    provider = _provider(_answer(400, _google_error(400, "INVALID_ARGUMENT", _TOO_LONG)))
    with pytest.raises(evalkit.errors.ContextLengthError):
        await provider.complete(_STREAM_REQUEST)


async def test_malformed_json_on_200_is_invalid_response() -> None:
    with pytest.raises(evalkit.errors.InvalidResponseError):
        await _provider(_answer(200, b'{"candidates": [')).complete(ChatRequest.from_prompt("hi"))


async def test_safety_without_parts_is_a_content_filter_error() -> None:
    blocked = _body(None, "SAFETY", usageMetadata={"promptTokenCount": 8, "totalTokenCount": 8})
    blocked["candidates"][0]["content"] = {}
    with pytest.raises(evalkit.ContentFilterError) as info:
        await _provider(_answer(200, json.dumps(blocked).encode())).complete(ChatRequest.from_prompt("hi"))
    assert "SAFETY" in info.value.message and info.value.retryable is False
    assert (info.value.usage.input_tokens, info.value.usage.exact) == (8, True)  # billed as reported
    with pytest.raises(evalkit.ContentFilterError) as info:
        await _provider(_answer(200, _sse([blocked]), "text/event-stream")).complete(_STREAM_REQUEST)
    assert "SAFETY" in info.value.message
    prompt_blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                      "usageMetadata": {"promptTokenCount": 8}}
    for body, ctype in ((_sse([prompt_blocked]), "text/event-stream"),
                        (json.dumps(prompt_blocked).encode(), "application/json")):
        with pytest.raises(evalkit.ContentFilterError) as info:
            await _provider(_answer(200, body, ctype)).complete(
                _STREAM_REQUEST if "event" in ctype else ChatRequest.from_prompt("hi"))
        assert "prompt blocked: PROHIBITED_CONTENT" in info.value.message
        assert info.value.usage.input_tokens == 8


@needs_wire
@pytest.mark.parametrize("it", STREAMED, ids=_ids(STREAMED))
@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_json_array_stream_equals_sse_stream(it: Interaction, seed: int) -> None:
    """The README notes the JSON-array form is absent from the recordings: build it from the SSE chunks."""
    chunks = _sse_chunks(it.text())
    sse = await _provider(_split_answer(_sse(chunks), seed, "text/event-stream")).complete(_STREAM_REQUEST)
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return _split_answer(_json_array(chunks), seed, "application/json")(request)

    array = await _provider(answer, "json-array").complete(_STREAM_REQUEST)
    assert "alt" not in sent[0].url.params and sent[0].url.path.endswith(":streamGenerateContent")
    for field in ("text", "reasoning", "finish_reason", "model", "usage", "tool_calls", "request_id"):
        assert getattr(array, field) == getattr(sse, field)
    assert array.text == _expected(it)["text"] and array.ttft_ms is not None


async def test_stream_cut_before_finish_reason_is_interrupted() -> None:
    chunks = [_body([{"text": "The"}], None), _body([{"text": " capital"}], None)]
    with pytest.raises(evalkit.errors.StreamInterruptedError):
        await _provider(_answer(200, _sse(chunks), "text/event-stream")).complete(_STREAM_REQUEST)
    # A closed array without a finishReason is cut too; an unclosed one is caught by the HTTP layer.
    with pytest.raises(evalkit.errors.StreamInterruptedError):
        await _provider(_answer(200, _json_array(chunks)), "json-array").complete(_STREAM_REQUEST)
    with pytest.raises(evalkit.errors.StreamInterruptedError):
        await _provider(_answer(200, _json_array(chunks)[:-1]), "json-array").complete(_STREAM_REQUEST)


async def test_error_inside_a_stream_is_interrupted() -> None:
    failure = {"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}
    chunks = [_body([{"text": "The"}], None), failure]
    provider = _provider(_answer(200, _sse(chunks), "text/event-stream"))
    stream = provider.stream(_STREAM_REQUEST)
    seen: list[str] = []
    with pytest.raises(evalkit.errors.StreamInterruptedError) as info:
        async for delta in stream:
            seen.append(delta)
    assert seen == ["The"] and info.value.code == "INTERNAL"
    with pytest.raises(evalkit.errors.InvalidResponseError):  # a whole event that is not JSON
        garbled = _answer(200, b"data: {not json\r\n\r\n", "text/event-stream")
        await _provider(garbled).complete(_STREAM_REQUEST)
    with pytest.raises(evalkit.errors.StreamInterruptedError):  # the body ended inside its last event
        garbled = _answer(200, _sse([_body([{"text": "The"}], None)]) + b'data: {"candidates": [{"con',
                          "text/event-stream")
        await _provider(garbled).complete(_STREAM_REQUEST)


def test_stream_started_marks_first_output_only() -> None:
    parser = GeminiWire().stream_parser()
    parser.feed(json.dumps({"usageMetadata": {"promptTokenCount": 3}}))
    parser.feed(json.dumps(_body([{"text": ""}], None)))
    assert not parser.started
    assert parser.feed(json.dumps(_body([{"text": "hm", "thought": True}], None))) == ""
    assert parser.started


# -- property: any cut of a stream parses like the same answer sent whole -------------------------

def _merged(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed body equivalent to ``chunks``: all parts, the last finishReason and usage."""
    parts = [p for c in chunks for cand in c.get("candidates", [])[:1]
             for p in cand.get("content", {}).get("parts", [])]
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    for c in chunks:
        for cand in c.get("candidates", [])[:1]:
            if "finishReason" in cand:
                candidate["finishReason"] = cand["finishReason"]
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": chunks[0]["modelVersion"],
                            "responseId": chunks[0]["responseId"]}
    usage = [c["usageMetadata"] for c in chunks if "usageMetadata" in c]
    if usage:
        body["usageMetadata"] = usage[-1]
    return body


def _cut(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]


def _stream_sse(pieces: list[bytes]) -> Any:
    parser, decoder = GeminiWire().stream_parser(), SSEDecoder()
    for piece in pieces:
        for event, data in decoder.feed(piece):
            parser.feed(data, event)
    for event, data in decoder.end():
        parser.feed(data, event)
    return parser.finish()


def _stream_json_array(pieces: list[bytes]) -> Any:
    parser, decoder = GeminiWire("json-array").stream_parser(), JSONArrayDecoder()
    for piece in pieces:
        for value in decoder.feed(piece):
            parser.feed(json.dumps(value))
    assert decoder.complete
    return parser.finish()


_PROPERTY = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@needs_wire
@pytest.mark.parametrize("it", STREAMED, ids=_ids(STREAMED))
@_PROPERTY
@given(cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_recorded_stream_cut_anywhere_equals_whole_parse(it: Interaction, cuts: list[int]) -> None:
    chunks = _sse_chunks(it.text())
    whole = GeminiWire().parse(_merged(chunks))
    assert _stream_sse(_cut(it.text().encode(), cuts)) == whole
    assert _stream_json_array(_cut(_json_array(chunks), cuts)) == whole


@_PROPERTY
@given(texts=st.lists(st.text(min_size=1), min_size=1, max_size=6),
       thoughts=st.lists(st.text(min_size=1), max_size=3),
       cuts=st.lists(st.integers(min_value=0), max_size=30),
       reason=st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER"]))
def test_constructed_stream_cut_anywhere_equals_whole_parse(texts: list[str], thoughts: list[str],
                                                            cuts: list[int], reason: str) -> None:
    parts = [{"text": t, "thought": True} for t in thoughts] + [{"text": t} for t in texts]
    chunks = [_body([p], None, usageMetadata={"promptTokenCount": 5, "candidatesTokenCount": i})
              for i, p in enumerate(parts)]
    chunks[-1]["candidates"][0]["finishReason"] = reason
    whole = GeminiWire().parse(_merged(chunks))
    assert whole.text == "".join(texts) and whole.reasoning == "".join(thoughts)
    assert _stream_sse(_cut(_sse(chunks), cuts)) == whole
    assert _stream_json_array(_cut(_json_array(chunks), cuts)) == whole
