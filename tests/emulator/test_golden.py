"""Golden shapes: emulator responses have the keys and event order of real recorded traffic.

The recordings live in shared/wire (next to the repository); each test replays a
recorded request against the emulator (with a simulated model name) and compares
key structure recursively (JSON bodies) or the event sequence (streams).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .helpers import WIRE_DIR, collapse, key_shape, post, recorded, request_body, sse_events

pytestmark = pytest.mark.skipif(not WIRE_DIR.is_dir(), reason=f"recorded traffic not found at {WIRE_DIR}")

AUTH = {"authorization": "Bearer k", "x-api-key": "k", "x-goog-api-key": "k"}


def _first(cassette: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    request, status, headers, body = next(recorded(cassette))
    assert status == 200
    return request_body(request), headers, body


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    response = post(url, json=body, headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return response


def _chunk_shapes(text: str) -> list[Any]:
    return collapse(
        [key_shape(json.loads(data)) if data != "[DONE]" else "[DONE]" for _, data in sse_events(text)]
    )


def test_openai_chat_completion_keys(emu: Any) -> None:
    body, headers, recorded_body = _first("openai/test_chat.yaml")
    response = _post(f"{emu.openai_base_url}/chat/completions", {**body, "model": "sim-small"})
    assert key_shape(response.json()) == key_shape(json.loads(recorded_body))
    recorded_limits = {h for h in headers if h.startswith("x-ratelimit-")}
    assert recorded_limits <= set(response.headers)
    assert "x-request-id" in response.headers
    assert response.headers["content-type"] == "application/json"


def test_openai_stream_with_usage_chunk_sequence(emu: Any) -> None:
    body, headers, recorded_body = _first("openai/test_chat_stream_with_include_usage_option.yaml")
    response = _post(
        f"{emu.openai_base_url}/chat/completions", {**body, "model": "sim-small", "max_tokens": 8}
    )
    assert _chunk_shapes(response.text) == _chunk_shapes(recorded_body.decode())
    assert response.text.endswith("data: [DONE]\n\n")
    assert response.headers["content-type"] == headers["content-type"][0]


def test_anthropic_message_keys(emu: Any) -> None:
    body, _, recorded_body = _first("anthropic/test_anthropic_model_instructions.yaml")
    response = _post(f"{emu.anthropic_base_url}/v1/messages", {**body, "model": "sim-small"})
    assert key_shape(response.json()) == key_shape(json.loads(recorded_body))


def test_anthropic_stream_event_order_and_payloads(emu: Any) -> None:
    body, _, recorded_body = _first("anthropic/test_request_stream_fallback_for_high_max_tokens.yaml")
    response = _post(
        f"{emu.anthropic_base_url}/v1/messages", {**body, "model": "sim-small", "max_tokens": 20}
    )
    ours, theirs = sse_events(response.text), sse_events(recorded_body.decode())
    assert collapse([name for name, _ in ours]) == collapse([name for name, _ in theirs])
    assert collapse([key_shape(json.loads(d)) for _, d in ours]) == collapse(
        [key_shape(json.loads(d)) for _, d in theirs]
    )


def test_gemini_generate_content_keys(emu: Any) -> None:
    body, _, recorded_body = _first("gemini/test_google_model_instructions.yaml")
    response = _post(f"{emu.gemini_base_url}/v1beta/models/sim-fast:generateContent", body)
    assert key_shape(response.json()) == key_shape(json.loads(recorded_body))


def test_gemini_sse_stream_chunk_sequence(emu: Any) -> None:
    body, headers, recorded_body = _first("gemini/test_google_model_stream.yaml")
    body = {**body, "generationConfig": {"maxOutputTokens": 9}}
    response = _post(f"{emu.gemini_base_url}/v1beta/models/sim-fast:streamGenerateContent?alt=sse", body)
    assert _chunk_shapes(response.text) == _chunk_shapes(recorded_body.decode())
    assert "\r\n\r\n" in response.text  # Google's event separator, as recorded
    assert response.headers["content-type"] == headers["content-type"][0]


def test_error_shapes_match_recorded_404s(emu: Any) -> None:
    cases = [
        ("openai/test_chat_with_model_not_found.yaml", f"{emu.openai_base_url}/chat/completions"),
        ("anthropic/test_model_name_suggestion[anthropic].yaml", f"{emu.anthropic_base_url}/v1/messages"),
        (
            "gemini/test_model_name_suggestion[google].yaml",
            f"{emu.gemini_base_url}/v1beta/models/no-such-model:generateContent",
        ),
    ]
    for cassette, url in cases:
        request, status, _, recorded_body = next(recorded(cassette))
        response = post(url, json=request_body(request), headers=AUTH, timeout=10)
        assert (response.status_code, key_shape(response.json())) == (
            status,
            key_shape(json.loads(recorded_body)),
        )
