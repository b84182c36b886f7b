"""Conformance: every recorded Chat Completions exchange, replayed through evalkit's adapter.

Covers OpenAI, Azure OpenAI and the OpenAI-compatible vendors. Expected values
come from a small independent reading of each recorded body (``_expected``),
plus spot checks of the headline numbers in ``../shared/wire/README.md``.
"""

from __future__ import annotations

import json

import pytest

import evalkit
from evalkit.errors import ErrorKind

from .recordings import WIRE, Interaction, load, needs_wire, replay_provider, request_for

pytestmark = needs_wire

# file -> provider used to replay it
TARGETS = {
    "openai/test_chat.yaml": "openai",
    "openai/test_chat_stream_with_include_usage_option.yaml": "openai",
    "openai/test_chat_stream_with_parallel_tools_and_capture_message_content.yaml": "openai",
    "openai/test_chat_tools_with_followup_and_capture_message_content.yaml": "openai",
    "openai/test_chat_with_model_not_found.yaml": "openai",
    "openai/test_max_completion_tokens[gpt-4o-mini].yaml": "openai",
    "openai/test_max_completion_tokens[o3-mini].yaml": "openai",
    "openai/test_model_name_suggestion[openai-chat].yaml": "openai",
    "openai/test_openai_chat_prompt_cache_e2e.yaml": "openai",
    "openai/test_openai_moderation_stream.yaml": "openai",
    "openai/test_run_stream_sync_streams_real_model.yaml": "openai",
    "azure-openai/test_azure_provider_call.yaml": "azure",
    "azure-openai/test_chat.yaml": "azure",
    "azure-openai/test_chat_streaming.yaml": "azure",
    "azure-openai/test_chat_reasoning.yaml": "azure",
    "azure-openai/test_azure_openai_embeddings.yaml": "azure",
    "groq/test_groq_model_instructions.yaml": "groq",
    "groq/test_groq_model_web_search_tool_stream.yaml": "groq",
    "groq/test_tool_regular_error.yaml": "groq",
    "mistral/test_mistral_forwards_penalties.yaml": "mistral",
    "mistral/test_mistral_history_uses_prompt_cache.yaml": "mistral",
    "mistral/test_mistral_model_thinking_part_iter.yaml": "mistral",
    "deepseek/test_deepseek_model_thinking_part.yaml": "deepseek",
    "deepseek/test_deepseek_model_thinking_stream.yaml": "deepseek",
    "openrouter/test_openrouter_tool_calling.yaml": "openrouter",
    "openrouter/test_openrouter_usage.yaml": "openrouter",
    "openrouter/test_openrouter_streaming_reasoning.yaml": "openrouter",
    "openrouter/test_openrouter_stream_error.yaml": "openrouter",
    "ollama/test_ollama_cloud_prompted_output.yaml": "ollama",
    "ollama/test_ollama_local_native_output_uses_json_schema.yaml": "ollama",
    "cerebras/test_cerebras_model_simple.yaml": "cerebras",
    "gemini/test_compatible_api_with_tool_calls_without_id.yaml": "openai",
}
COVERED = set(TARGETS)
# Interactions inside covered files that are not chat completions.
SKIPPED_INTERACTIONS = {
    "azure-openai/test_azure_openai_embeddings.yaml#0": "embeddings endpoint: evalkit adapters are chat-only",
    "azure-openai/test_azure_openai_embeddings.yaml#1": "embeddings endpoint: evalkit adapters are chat-only",
}
SKIPPED: dict[str, str] = {}

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def _interactions() -> list[Interaction]:
    if not WIRE.is_dir():
        return []
    return [it for f in TARGETS for it in load(f) if it.id not in SKIPPED_INTERACTIONS]


def _text_of(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _chunks(it: Interaction) -> list[dict]:
    out = []
    for line in it.text().splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            out.append(json.loads(line[5:]))
    return out


def _expected(it: Interaction) -> dict:
    """What the recorded body says, read plainly."""
    if not it.streamed:
        body = it.json()
        choice = body["choices"][0]
        usage = body.get("usage")
        return {"text": _text_of(choice["message"].get("content")),
                "finish": _FINISH[choice["finish_reason"]], "usage": usage}
    chunks = _chunks(it)
    text = "".join(
        _text_of((c.get("delta") or {}).get("content")) for ch in chunks for c in ch.get("choices") or []
    )
    finish = [c["finish_reason"] for ch in chunks for c in ch.get("choices") or [] if c.get("finish_reason")]
    usages = [ch.get("usage") or (ch.get("x_groq") or {}).get("usage") for ch in chunks]
    usages = [u for u in usages if u]
    return {"text": text, "finish": _FINISH[finish[-1]], "usage": usages[-1] if usages else None}


def _target(it: Interaction) -> str:
    model = (it.request_body or {}).get("model") or "deployment"
    return f"{TARGETS[it.file]}:{model}"


MODEL_CALLS = _interactions()


def provider_for(it: Interaction) -> evalkit.HTTPProvider:
    """A provider replaying ``it`` (``test_conformance_coverage`` replays every module's calls)."""
    return replay_provider(it, _target(it))


@pytest.mark.parametrize("it", [i for i in _interactions() if i.status == 200], ids=lambda i: i.id)
async def test_success_matches_recording(it: Interaction) -> None:
    if it.file == "openrouter/test_openrouter_stream_error.yaml":
        pytest.skip("error inside a 200 stream: asserted in test_error_inside_200_stream")
    expected = _expected(it)
    response = await replay_provider(it, _target(it)).complete(request_for(it))
    assert response.text == expected["text"]
    assert response.finish_reason.value == expected["finish"]
    usage = expected["usage"]
    if usage is None:
        assert response.usage.exact is False, "no usage on the wire: the count must be flagged an estimate"
        return
    details_in = usage.get("prompt_tokens_details") or {}
    details_out = usage.get("completion_tokens_details") or {}
    hidden = max(usage.get("total_tokens", 0) - usage["prompt_tokens"] - usage["completion_tokens"], 0)
    assert response.usage.exact is True
    assert response.usage.input_tokens == usage["prompt_tokens"]
    assert response.usage.cached_input_tokens == (details_in.get("cached_tokens") or 0)
    assert response.usage.cache_write_tokens == (details_in.get("cache_write_tokens") or 0)
    assert response.usage.reasoning_tokens == (details_out.get("reasoning_tokens") or hidden)
    assert response.usage.output_tokens == usage["completion_tokens"] + hidden
    if it.streamed:
        assert response.ttft_ms is not None and response.ttft_ms <= response.latency_ms


@pytest.mark.parametrize("it", [i for i in _interactions() if i.status >= 400], ids=lambda i: i.id)
async def test_error_matches_recording(it: Interaction) -> None:
    code = (it.json().get("error") or {}).get("code")
    expected = {404: ErrorKind.NOT_FOUND, 401: ErrorKind.AUTH}[it.status]
    with pytest.raises(evalkit.ProviderError) as caught:
        await replay_provider(it, _target(it)).complete(request_for(it))
    assert caught.value.kind is expected
    assert caught.value.status == it.status
    assert caught.value.retryable is False
    assert caught.value.code == str(code) or code is None


# -- spot checks of the numbers the recordings are known for --------------------------------


async def _replay(file: str, index: int = 0, **fields) -> evalkit.ChatResponse:
    it = load(file)[index]
    return await replay_provider(it, _target(it)).complete(request_for(it, **fields))


async def test_o3_mini_reasoning_tokens_are_part_of_output() -> None:
    r = await _replay("openai/test_max_completion_tokens[o3-mini].yaml")
    assert (r.usage.reasoning_tokens, r.usage.output_tokens) == (64, 87)
    assert r.cost is not None and r.cost.reasoning > 0


async def test_prompt_cache_write_then_read() -> None:
    first = await _replay("openai/test_openai_chat_prompt_cache_e2e.yaml", 0)
    second = await _replay("openai/test_openai_chat_prompt_cache_e2e.yaml", 1)
    assert (first.usage.cache_write_tokens, first.usage.cached_input_tokens) == (4012, 0)
    assert (second.usage.cache_write_tokens, second.usage.cached_input_tokens) == (0, 4012)
    assert second.cost.total < first.cost.total, "cached reads are cheaper than a fresh prompt"


async def test_parallel_tool_calls_stream_accumulates_both_calls() -> None:
    r = await _replay("openai/test_chat_stream_with_parallel_tools_and_capture_message_content.yaml")
    assert r.finish_reason == evalkit.FinishReason.TOOL_CALLS
    assert len(r.tool_calls) == 2
    assert all(json.loads(c.arguments) for c in r.tool_calls)
    assert r.usage.exact is False  # no include_usage on that stream


async def test_rate_limit_headers_are_kept() -> None:
    r = await _replay("openai/test_chat.yaml")
    assert {"x-ratelimit-limit-requests", "x-ratelimit-reset-tokens"} <= set(r.rate_limits)
    assert r.request_id and r.request_id.startswith("req_")


async def test_azure_first_chunk_with_only_prompt_filter_results() -> None:
    r = await _replay("azure-openai/test_chat_streaming.yaml")
    assert r.text.startswith("Why did the Opentelemetry developer")
    sent = load("azure-openai/test_chat_streaming.yaml")[0]
    provider = replay_provider(sent, "azure:openllmetry-testing")
    await provider.complete(request_for(sent))
    url = provider.sent[0].url
    assert url.path == "/openai/deployments/openllmetry-testing/chat/completions"
    assert url.params["api-version"] and "api-key" in provider.sent[0].headers


async def test_deepseek_reasoning_content() -> None:
    r = await _replay("deepseek/test_deepseek_model_thinking_part.yaml")
    assert r.reasoning and r.usage.reasoning_tokens == 415
    s = await _replay("deepseek/test_deepseek_model_thinking_stream.yaml")
    assert s.reasoning and s.usage.reasoning_tokens == 198


async def test_groq_usage_from_x_groq() -> None:
    r = await _replay("groq/test_groq_model_web_search_tool_stream.yaml")
    assert r.usage.exact and r.usage.input_tokens > 0 and r.usage.output_tokens > 0


async def test_mistral_thinking_parts_are_reasoning_not_text() -> None:
    r = await _replay("mistral/test_mistral_model_thinking_part_iter.yaml")
    assert r.reasoning and r.reasoning not in r.text


async def test_openrouter_reported_cost_wins() -> None:
    it = load("openrouter/test_openrouter_usage.yaml")[1]
    r = await replay_provider(it, _target(it)).complete(request_for(it))
    assert r.cost is not None and r.cost.source == "provider-reported"
    assert str(r.cost.total) == str(it.json()["usage"]["cost"])


async def test_error_inside_200_stream() -> None:
    with pytest.raises(evalkit.StreamInterruptedError) as caught:
        await _replay("openrouter/test_openrouter_stream_error.yaml")
    assert "Token limit reached" in str(caught.value)


async def test_gemini_compat_counts_hidden_thinking_as_output() -> None:
    r = await _replay("gemini/test_compatible_api_with_tool_calls_without_id.yaml")
    assert r.usage.input_tokens == 35
    assert r.usage.output_tokens == 109 - 35 and r.usage.reasoning_tokens == 109 - 35 - 12
    assert r.tool_calls and r.tool_calls[0].id == ""


async def test_azure_401_string_code_is_auth() -> None:
    it = load("azure-openai/test_azure_openai_embeddings.yaml")[2]
    with pytest.raises(evalkit.AuthError):
        await replay_provider(it, "azure:test-deployment").complete(request_for(it))
