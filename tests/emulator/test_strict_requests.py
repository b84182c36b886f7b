"""The emulator refuses what the real servers refuse, with their status and error body.

Before: any body was parsed as JSON whatever its content type (evalkit shipped sending
``application/octet-stream`` and no test noticed), any key header was accepted on any route,
``anthropic-version`` was never checked, and ``max_tokens: "100"`` was answered like 100 everywhere.
Every request here is hand-made with raw httpx and exact headers.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

import evalkit
from evalkit import ChatRequest

from .helpers import ANTHROPIC_AUTH, get, post

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = {"model": "sim-large", "messages": MESSAGES, "max_tokens": 5}
MESSAGE = {"model": "sim-large", "messages": MESSAGES, "max_tokens": 5}
GENERATE = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 3}}
BEARER = {"authorization": "Bearer k"}
GOOGLE = {"x-goog-api-key": "k"}
OCTET = {"content-type": "application/octet-stream"}
OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if "
    "you're accessing the API from your browser and are prompted for a username and password. You can "
    "obtain an API key from https://platform.openai.com/account/api-keys."
)
GEMINI_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
    "or other form of API consumer identity to call this API."
)


def _send(url: str, body: Any, headers: dict[str, str], content_type: str | None = "application/json"):
    """POST ``body`` as bytes with exactly ``headers`` (and ``content_type`` unless None)."""
    sent = {**headers, **({"content-type": content_type} if content_type else {})}
    return post(url, content=body if isinstance(body, bytes) else json.dumps(body).encode(), headers=sent)


# -- OpenAI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"authorization": "Basic abc"}, {"authorization": "Bearer"},
                                     {"x-api-key": "k"}, {"api-key": "k"}, GOOGLE])
def test_openai_without_a_bearer_key_is_401(emu: Any, headers: dict[str, str]) -> None:
    reply = _send(f"{emu.openai_base_url}/chat/completions", CHAT, headers)
    assert reply.status_code == 401
    assert reply.json() == {"error": {"message": OPENAI_NO_KEY, "type": "invalid_request_error",
                                      "param": None, "code": None}}
    if "x-api-key" not in headers:  # that header makes GET /v1/models Anthropic's listing
        assert get(f"{emu.openai_base_url}/models", headers=headers).status_code == 401


@pytest.mark.parametrize("content_type", ["application/octet-stream", None, "text/plain",
                                          "application/x-www-form-urlencoded"])
def test_openai_reads_no_parameters_from_a_body_not_sent_as_json(emu: Any, content_type: str | None) -> None:
    reply = _send(f"{emu.openai_base_url}/chat/completions", CHAT, BEARER, content_type)
    assert reply.status_code == 400
    assert reply.json() == {"error": {"message": "you must provide a model parameter",
                                      "type": "invalid_request_error", "param": None, "code": None}}
    assert emu.stats()["models"]["(none)"]["by_status"] == {"400": 1}  # refused requests are counted too


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON",
                                          "application/vnd.api+json"])
def test_every_json_content_type_is_read(emu: Any, content_type: str) -> None:
    assert _send(f"{emu.openai_base_url}/chat/completions", CHAT, BEARER, content_type).status_code == 200


@pytest.mark.parametrize(
    ("change", "message", "param"),
    [
        ({"max_tokens": "100"}, "Invalid type for 'max_tokens': expected an integer, but got a string instead.",
         "max_tokens"),
        ({"max_tokens": 1.5}, "Invalid type for 'max_tokens': expected an integer, but got a decimal instead.",
         "max_tokens"),
        ({"messages": "hi"}, "Invalid type for 'messages': expected an array of objects, but got a string "
         "instead.", "messages"),
        ({"messages": ["hi"]}, "Invalid type for 'messages[0]': expected an object, but got a string instead.",
         "messages[0]"),
        ({"temperature": "hot"}, "Invalid type for 'temperature': expected a decimal, but got a string "
         "instead.", "temperature"),
        ({"stream": "yes"}, "Invalid type for 'stream': expected a boolean, but got a string instead.", "stream"),
        ({"stream_options": {"include_usage": 1}}, "Invalid type for 'stream_options.include_usage': expected "
         "a boolean, but got an integer instead.", "stream_options.include_usage"),
    ],
)
def test_openai_field_types_are_checked_strictly(emu: Any, change: dict[str, Any], message: str,
                                                 param: str) -> None:
    reply = _send(f"{emu.openai_base_url}/chat/completions", {**CHAT, **change}, BEARER)
    assert reply.status_code == 400
    assert reply.json() == {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                      "code": "invalid_type"}}


def test_openai_missing_and_unparsable_bodies(emu: Any) -> None:
    url = f"{emu.openai_base_url}/chat/completions"
    missing = _send(url, {"model": "sim-large"}, BEARER).json()["error"]
    assert missing == {"message": "Missing required parameter: 'messages'.", "type": "invalid_request_error",
                       "param": "messages", "code": "missing_required_parameter"}
    broken = _send(url, b'{"model": ', BEARER)
    assert broken.status_code == 400
    assert broken.json()["error"]["message"].startswith("We could not parse the JSON body of your request.")
    below = _send(url, {**CHAT, "max_tokens": 0}, BEARER).json()["error"]
    assert below["code"] == "integer_below_min_value" and below["param"] == "max_tokens"
    hot = _send(url, {**CHAT, "temperature": 3}, BEARER).json()["error"]
    assert hot["message"] == ("Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but "
                              "got 3 instead.") and hot["code"] == "decimal_above_max_value"


# -- Anthropic ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_anthropic_without_a_key_is_401(emu: Any, path: str) -> None:
    for headers in ({"anthropic-version": "2023-06-01"},
                    {"anthropic-version": "2023-06-01", "x-goog-api-key": "k"}):
        reply = _send(emu.anthropic_base_url + path, MESSAGE, headers)
        assert reply.status_code == 401
        body = reply.json()
        assert body["request_id"].startswith("req_011C") and body["request_id"] == reply.headers["request-id"]
        assert body == {"type": "error", "request_id": body["request_id"],
                        "error": {"type": "authentication_error", "message": "x-api-key header is required"}}


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_anthropic_requires_a_known_version(emu: Any, path: str) -> None:
    url = emu.anthropic_base_url + path
    missing = _send(url, MESSAGE, {"x-api-key": "k"})
    assert missing.status_code == 400
    assert missing.json()["error"] == {"type": "invalid_request_error",
                                       "message": "anthropic-version: header is required"}
    unknown = _send(url, MESSAGE, {"x-api-key": "k", "anthropic-version": "2024-13-45"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == 'anthropic-version: "2024-13-45" is not a valid version'
    assert get(f"{emu.anthropic_base_url}/v1/models", headers={"x-api-key": "k"}).status_code == 400


def test_anthropic_takes_a_bearer_token_like_the_sdks_auth_token(emu: Any) -> None:
    headers = {"authorization": "Bearer k", "anthropic-version": "2023-06-01"}
    assert _send(f"{emu.anthropic_base_url}/v1/messages", MESSAGE, headers).status_code == 200
    client = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key=None, auth_token="k", max_retries=0)
    with client:
        assert client.messages.create(model="sim-large", max_tokens=5, messages=MESSAGES).content


@pytest.mark.parametrize("content_type", ["application/octet-stream", None, "text/plain"])
def test_anthropic_refuses_a_body_not_sent_as_json(emu: Any, content_type: str | None) -> None:
    reply = _send(f"{emu.anthropic_base_url}/v1/messages", MESSAGE, ANTHROPIC_AUTH, content_type)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and "application/json" in error["message"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": "abc"}, "max_tokens: Input should be a valid integer, unable to parse string as an "
         "integer"),
        ({"max_tokens": [5]}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": 5.5}, "max_tokens: Input should be a valid integer, got a number with a fractional "
         "part"),
        ({"messages": "hi"}, "messages: Input should be a valid list"),
        ({"temperature": "hot"}, "temperature: Input should be a valid number, unable to parse string as a "
         "number"),
        ({"stop_sequences": [1]}, "stop_sequences.0: Input should be a valid string"),
        ({"max_tokens": None}, "max_tokens: Field required"),
    ],
)
def test_anthropic_field_types_are_checked_as_pydantic_does(emu: Any, change: dict[str, Any],
                                                            message: str) -> None:
    reply = _send(f"{emu.anthropic_base_url}/v1/messages", {**MESSAGE, **change}, ANTHROPIC_AUTH)
    assert reply.status_code == 400
    assert reply.json()["error"] == {"type": "invalid_request_error", "message": message}


def test_anthropic_reads_numbers_written_as_strings_and_words_broken_json(emu: Any) -> None:
    url = f"{emu.anthropic_base_url}/v1/messages"
    assert _send(url, {**MESSAGE, "max_tokens": "5"}, ANTHROPIC_AUTH).status_code == 200  # pydantic's lax mode
    broken = _send(url, b'{"model": nope}', ANTHROPIC_AUTH).json()["error"]["message"]
    assert broken.startswith("The request body is not valid JSON: ") and "line 1 column" in broken


# -- Gemini ---------------------------------------------------------------------------------------


def test_gemini_without_a_key_is_403(emu: Any) -> None:
    url = f"{emu.gemini_base_url}/v1beta/models/sim-fast:generateContent"
    for headers in ({}, ANTHROPIC_AUTH, {"x-goog-api-key": ""}):
        reply = _send(url, GENERATE, headers)
        assert reply.status_code == 403
        assert reply.json() == {"error": {"code": 403, "message": GEMINI_NO_KEY, "status": "PERMISSION_DENIED"}}
    bearer = _send(url, GENERATE, BEARER)
    assert bearer.status_code == 401 and bearer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert get(f"{emu.gemini_base_url}/v1beta/models").status_code == 403
    count = _send(f"{emu.gemini_base_url}/v1beta/models/sim-fast:countTokens", GENERATE, {})
    assert count.status_code == 403


@pytest.mark.parametrize("content_type", ["application/octet-stream", None])
def test_gemini_refuses_a_body_not_sent_as_json(emu: Any, content_type: str | None) -> None:
    reply = _send(f"{emu.gemini_base_url}/v1beta/models/sim-fast:generateContent", GENERATE, GOOGLE,
                  content_type)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith("Invalid JSON payload received.")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**GENERATE, "generationConfig": {"maxOutputTokens": "abc"}}, "generation_config.max_output_tokens",
         "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), \"abc\""),
        ({**GENERATE, "generationConfig": {"temperature": "hot"}}, "generation_config.temperature",
         "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\""),
        ({"contents": "hi"}, "contents",
         "Invalid value at 'contents' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content), \"hi\""),
        ({"contents": [{"parts": [{"text": 5}]}]}, "contents[0].parts[0].text",
         "Invalid value at 'contents[0].parts[0].text' (TYPE_STRING), 5"),
    ],
)
def test_gemini_field_types_are_checked_as_protobuf_json(emu: Any, body: dict[str, Any], field: str,
                                                         message: str) -> None:
    reply = _send(f"{emu.gemini_base_url}/v1beta/models/sim-fast:generateContent", body, GOOGLE)
    assert reply.status_code == 400
    assert reply.json() == {"error": {
        "code": 400, "message": message, "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations": [{"field": field, "description": message}]}]}}


def test_gemini_reads_numbers_written_as_strings(emu: Any) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generation_config": {"max_output_tokens": "2"}}
    reply = _send(f"{emu.gemini_base_url}/v1beta/models/sim-fast:generateContent", body, GOOGLE)
    assert reply.status_code == 200
    assert reply.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"  # the cap of 2 was read


# -- the official SDKs and evalkit's providers still pass ------------------------------------------


def test_the_sdks_and_evalkits_providers_send_what_the_servers_accept(emu: Any) -> None:
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        assert client.chat.completions.create(model="sim-large", messages=MESSAGES, max_tokens=5).choices
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0) as client:
        assert client.messages.create(model="sim-large", max_tokens=5, messages=MESSAGES).content
        assert client.messages.count_tokens(model="sim-large", messages=MESSAGES).input_tokens > 0
    assert {r["status"] for r in emu.stats()["recent"]} == {"200"}


@pytest.mark.asyncio
@pytest.mark.parametrize(("target", "server"), [("openai:sim-large", "openai"),
                                                ("anthropic:sim-large", "anthropic"),
                                                ("gemini:sim-fast", "gemini"),
                                                ("llamacpp:sim-large", "llamacpp"),
                                                ("vllm:sim-large", "vllm"),
                                                ("ollama:sim-large", "ollama")])
async def test_evalkits_providers_are_accepted_on_every_server(emu: Any, target: str, server: str) -> None:
    base = emu.base_url_for(server)
    async with evalkit.get_provider(target, base_url=base, api_key="k", prices={"input": 1, "output": 1}) as llm:
        plain = await llm.complete(ChatRequest.from_prompt("hi", max_tokens=5))
        streamed = [d async for d in llm.stream(ChatRequest.from_prompt("hi", max_tokens=5))]
    assert plain.text and streamed
    assert {r["status"] for r in emu.stats()["recent"]} == {"200"}
    assert {r["wire"] for r in emu.stats()["recent"]} == {server}
