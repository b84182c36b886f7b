"""The official openai and anthropic SDKs talk to the emulator like to the real services."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from evalkit.emulator._tokens import count_tokens

from .helpers import ROWS_BY_ID

THINKING = {"type": "enabled", "budget_tokens": 1024}
STREET = [{"role": "user", "content": "How do I cross the street?"}]


@pytest.fixture
def openai_client(emu: Any) -> openai.OpenAI:
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="test-key", max_retries=0, timeout=10)
    yield client
    client.close()


@pytest.fixture
def anthropic_client(emu: Any) -> anthropic.Anthropic:
    client = anthropic.Anthropic(
        base_url=emu.anthropic_base_url, api_key="test-key", max_retries=0, timeout=10
    )
    yield client
    client.close()


def test_openai_sdk_non_streaming(openai_client: openai.OpenAI, emu: Any) -> None:
    prompt = ROWS_BY_ID["fx-mcq"]["prompt"]
    result = openai_client.chat.completions.create(
        model="sim-large", max_tokens=50, messages=[{"role": "user", "content": prompt}]
    )
    assert result.object == "chat.completion"
    assert result.choices[0].message.content.startswith("The answer is (")
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.usage.prompt_tokens_details.cached_tokens == 0
    assert result.usage.completion_tokens_details.reasoning_tokens == 0
    raw = openai_client.chat.completions.with_raw_response.create(
        model="sim-small", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert raw.headers["x-request-id"].startswith("req_")
    assert int(raw.headers["x-ratelimit-limit-requests"]) == 10000


def test_openai_sdk_streaming_with_usage(openai_client: openai.OpenAI, emu: Any) -> None:
    stream = openai_client.chat.completions.create(
        model="sim-reasoner",
        max_tokens=400,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say something long."}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    # OpenAI's cap covers reasoning and visible text together: the answer stops at the cap, not past it.
    assert usage.completion_tokens == 400
    assert 0 < usage.completion_tokens_details.reasoning_tokens < 400  # sim-reasoner thinks before it speaks
    assert text
    sent = emu.stats()["recent"][-1]["body"]
    assert sent["stream_options"] == {"include_usage": True} and sent["max_tokens"] == 400


def test_openai_sdk_reasoning_that_eats_the_cap(openai_client: openai.OpenAI) -> None:
    # sim-reasoner thinks ~128 tokens: with a cap of 16 its reasoning takes all of it, as o-series models do.
    result = openai_client.chat.completions.create(model="sim-reasoner", max_completion_tokens=16,
                                                   messages=STREET)
    assert result.choices[0].message.content == "" and result.choices[0].finish_reason == "length"
    assert result.usage.completion_tokens == result.usage.completion_tokens_details.reasoning_tokens == 16


def test_openai_sdk_typed_errors_and_retry_after(openai_client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.RateLimitError) as info:
        openai_client.chat.completions.create(
            model="sim-large",
            messages=messages,
            extra_headers={"x-evalkit-fault": "429", "x-evalkit-retry-after": "2"},
        )
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.BadRequestError) as bad:
        openai_client.chat.completions.create(
            model="sim-large", messages=messages, extra_headers={"x-evalkit-fault": "context_length"}
        )
    assert bad.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.chat.completions.create(model="sim-fast", messages=messages)  # a gemini/anthropic model
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(
            model="sim-large", messages=messages, extra_headers={"x-evalkit-fault": "500"}
        )
    assert [m.id for m in openai_client.models.list()] == [
        "sim-large",
        "sim-medium",
        "sim-small",
        "sim-fast",
        "sim-reasoner",
        "sim-long",
    ]


def test_openai_sdk_retries_honour_retry_after(emu: Any) -> None:
    emu.script("sim-large", [{"kind": "429", "retry_after": 0.05}, "ok"])
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=1) as client:
        result = client.chat.completions.create(
            model="sim-large", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    assert result.choices[0].message.content
    assert emu.stats()["models"]["sim-large"]["by_status"] == {"429": 1, "200": 1}


def test_anthropic_sdk_non_streaming(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model="sim-large",
        max_tokens=50,
        system="You are terse.",
        messages=[{"role": "user", "content": ROWS_BY_ID["fx-alias"]["prompt"]}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text.startswith("The answer is ")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.cache_read_input_tokens == 0


def test_anthropic_sdk_streaming(anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.stream(
        model="sim-long", max_tokens=12, messages=[{"role": "user", "content": "Tell me a story."}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == text and text
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 12


@pytest.fixture
def thinking_client(thinking_emu: Any) -> anthropic.Anthropic:
    client = anthropic.Anthropic(
        base_url=thinking_emu.anthropic_base_url, api_key="test-key", max_retries=0, timeout=10
    )
    yield client
    client.close()


def test_anthropic_sdk_extended_thinking(thinking_client: anthropic.Anthropic) -> None:
    message = thinking_client.messages.create(model="sim-thinker", max_tokens=1200, thinking=THINKING,
                                              messages=STREET)
    thinking, text = message.content
    assert isinstance(thinking, anthropic.types.ThinkingBlock) and thinking.thinking and thinking.signature
    assert isinstance(text, anthropic.types.TextBlock) and text.text
    # output_tokens bills the hidden thinking with the text, all inside max_tokens.
    assert count_tokens(text.text) < message.usage.output_tokens <= 1200
    # The thinking block goes back with the conversation, as the API requires for multi-turn thinking.
    follow_up = thinking_client.messages.create(
        model="sim-thinker", max_tokens=1200, thinking=THINKING,
        messages=[*STREET, {"role": "assistant", "content": message.content},
                  {"role": "user", "content": "And at night?"}],
    )
    assert [block.type for block in follow_up.content] == ["thinking", "text"]


def test_anthropic_sdk_streams_extended_thinking(thinking_client: anthropic.Anthropic) -> None:
    with thinking_client.messages.stream(model="sim-thinker", max_tokens=1200, thinking=THINKING,
                                         messages=STREET) as stream:
        events = list(stream)
        final = stream.get_final_message()
    thinking_text = "".join(e.thinking for e in events if e.type == "thinking")
    signatures = [e.signature for e in events if e.type == "signature"]
    text = "".join(e.text for e in events if e.type == "text")
    thinking, answer = final.content
    assert thinking.type == "thinking" and thinking.thinking == thinking_text and thinking_text
    assert signatures == [thinking.signature] and thinking.signature
    assert answer.type == "text" and answer.text == text and text
    assert count_tokens(text) < final.usage.output_tokens <= 1200


def test_anthropic_sdk_bad_thinking_budgets_are_bad_requests(thinking_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="greater than or equal to 1024"):
        thinking_client.messages.create(model="sim-thinker", max_tokens=2000, messages=STREET,
                                        thinking={"type": "enabled", "budget_tokens": 512})
    with pytest.raises(anthropic.BadRequestError,
                       match="`max_tokens` must be greater than `thinking.budget_tokens`"):
        thinking_client.messages.create(model="sim-thinker", max_tokens=1024, messages=STREET,
                                        thinking=THINKING)


def test_anthropic_sdk_typed_errors(anthropic_client: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.RateLimitError) as info:
        anthropic_client.messages.create(
            model="sim-small",
            max_tokens=5,
            messages=messages,
            extra_headers={"x-evalkit-fault": "429", "x-evalkit-retry-after": "3"},
        )
    headers = info.value.response.headers
    assert headers["retry-after"] == "3" and headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert info.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        anthropic_client.messages.create(
            model="sim-small", max_tokens=5, messages=messages, extra_headers={"x-evalkit-fault": "529"}
        )
    assert overloaded.value.status_code == 529
    assert type(overloaded.value).__name__ == "OverloadedError"
    assert overloaded.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.BadRequestError, match=r"prompt is too long: \d+ tokens > 200000 maximum"):
        anthropic_client.messages.create(
            model="sim-small",
            max_tokens=5,
            messages=messages,
            extra_headers={"x-evalkit-fault": "context_length"},
        )
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.create(model="sim-medium", max_tokens=5, messages=messages)
    assert {m.id for m in anthropic_client.models.list()} == {
        "sim-large",
        "sim-small",
        "sim-fast",
        "sim-long",
    }


def test_anthropic_sdk_refusal_and_empty(anthropic_client: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "hi"}]
    refused = anthropic_client.messages.create(
        model="sim-small",
        max_tokens=5,
        messages=messages,
        extra_headers={"x-evalkit-fault": "content_filter"},
    )
    assert refused.stop_reason == "refusal" and refused.content == []
    with anthropic_client.messages.stream(
        model="sim-small", max_tokens=5, messages=messages, extra_headers={"x-evalkit-fault": "empty"}
    ) as stream:
        assert stream.get_final_message().content == []
