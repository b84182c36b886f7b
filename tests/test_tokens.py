"""Local token counts work offline and say when they are approximations."""

from __future__ import annotations

from evalkit import Message, count_tokens


def test_openai_model_counted_exactly_with_cl100k() -> None:
    got = count_tokens([Message("user", "hello world")], "openai:gpt-4")
    assert got.exact and got.encoding == "cl100k_base"
    assert got.count == 2 + 3 + 3  # two tokens, message framing, reply priming


def test_claude_is_an_estimate_never_exact() -> None:
    got = count_tokens([Message("user", "hello world")], "anthropic:claude-3-5-haiku-latest")
    assert got.exact is False and got.count > 0


def test_gpt4o_without_o200k_file_is_an_estimate(monkeypatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    assert count_tokens("some text", "openai:gpt-4o-mini").exact is False


def test_plain_text_and_dict_messages() -> None:
    assert count_tokens("hello world", "gpt-4").count == 2
    assert count_tokens([{"role": "user", "content": "hello world"}], "gpt-4").count == 8
