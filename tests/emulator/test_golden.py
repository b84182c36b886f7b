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

from evalkit.emulator import Emulator

from .helpers import ANTHROPIC_AUTH, WIRE_DIR, collapse, key_shape, post, recorded, request_body, sse_events

pytestmark = pytest.mark.skipif(not WIRE_DIR.is_dir(), reason=f"recorded traffic not found at {WIRE_DIR}")

AUTH = {"authorization": "Bearer k", "x-goog-api-key": "k",
        **ANTHROPIC_AUTH}


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


# -- thinking: the recorded extended-thinking (Anthropic) and thoughts (Gemini 2.5) traffic ----------------


def test_anthropic_thinking_message_blocks_and_usage(thinking_emu: Emulator) -> None:
    body, _, recorded_body = _first("anthropic/test_anthropic_model_thinking_part.yaml")
    ours = _post(f"{thinking_emu.anthropic_base_url}/v1/messages", {**body, "model": "sim-thinker"}).json()
    theirs = json.loads(recorded_body)
    assert [key_shape(b) for b in ours["content"]] == [key_shape(b) for b in theirs["content"]]
    assert key_shape({**ours, "content": 0, "usage": 0}) == key_shape({**theirs, "content": 0, "usage": 0})
    # usage.inference_geo is in the newer recordings only (test_anthropic_model_instructions.yaml, which
    # the plain message matches, has none); everything else is the same set of fields.
    assert set(ours["usage"]) == set(theirs["usage"]) - {"inference_geo"}


def test_anthropic_thinking_stream_event_order_and_payloads(thinking_emu: Emulator) -> None:
    body, _, recorded_body = _first("anthropic/test_anthropic_model_thinking_part_stream.yaml")
    response = _post(f"{thinking_emu.anthropic_base_url}/v1/messages", {**body, "model": "sim-thinker"})
    ours, theirs = sse_events(response.text), sse_events(recorded_body.decode())
    assert collapse([name for name, _ in ours]) == collapse([name for name, _ in theirs])
    assert collapse([key_shape(json.loads(d)) for _, d in ours]) == collapse(
        [key_shape(json.loads(d)) for _, d in theirs]
    )

    def thinking_ending(events: list[tuple[str | None, str]]) -> list[tuple[str, bool]]:
        deltas = [json.loads(d)["delta"] for name, d in events if name == "content_block_delta"]
        thinking = [d for d in deltas if d["type"] != "text_delta"]
        return [(d["type"], d.get("thinking") == "") for d in thinking[-2:]]

    # The thinking block ends with an empty thinking_delta, then its signature.
    ending = [("thinking_delta", True), ("signature_delta", False)]
    assert thinking_ending(ours) == thinking_ending(theirs) == ending


def _counts_thoughts_in_total(usage: dict[str, Any]) -> bool:
    expected = usage["promptTokenCount"] + usage["thoughtsTokenCount"] + usage.get("candidatesTokenCount", 0)
    return usage["thoughtsTokenCount"] > 0 and usage["totalTokenCount"] == expected


def test_gemini_thinking_usage_fields(thinking_emu: Emulator) -> None:
    body, _, recorded_body = _first("gemini/test_google_model_thinking_config.yaml")
    response = _post(f"{thinking_emu.gemini_base_url}/v1beta/models/sim-thinker:generateContent", body)
    ours, theirs = response.json()["usageMetadata"], json.loads(recorded_body)["usageMetadata"]
    assert set(theirs) <= set(ours)
    assert _counts_thoughts_in_total(ours) and _counts_thoughts_in_total(theirs)


def test_gemini_thinking_stream_counts_thoughts_in_every_chunk(thinking_emu: Emulator) -> None:
    body, _, recorded_body = _first("gemini/test_google_model_thinking_part_iter.yaml")
    body = {**body, "generationConfig": {"maxOutputTokens": 30}}  # no includeThoughts: no thought parts
    url = f"{thinking_emu.gemini_base_url}/v1beta/models/sim-thinker:streamGenerateContent?alt=sse"
    for text in (_post(url, body).text, recorded_body.decode()):
        usages = [json.loads(data)["usageMetadata"] for _, data in sse_events(text)]
        assert len(usages) > 1 and all(_counts_thoughts_in_total(u) for u in usages), usages
