"""Usage counted locally when a server reports none (llama.cpp streams no usage)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit import ChatRequest
from evalkit.providers._answers import estimate_usage, partial_usage
from evalkit.providers._wire import Reply
from evalkit.types import FinishReason

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400)


@settings(max_examples=150, deadline=None)
@given(text=_TEXT, cap=st.integers(1, 64), cut=st.booleans())
def test_an_estimated_output_count_never_exceeds_max_tokens(text: str, cap: int, cut: bool) -> None:
    # Counted with a tokenizer that is not the server's, the estimate could claim more tokens than
    # the server was allowed to generate: a bill for tokens that cannot exist.
    reason = FinishReason.LENGTH if cut else FinishReason.STOP
    usage = estimate_usage(ChatRequest.from_prompt("hi", max_tokens=cap),
                           Reply(text=text, finish_reason=reason), "llamacpp:gemma-3-270m")
    assert not usage.exact
    assert usage.output_tokens <= cap
    if cut:  # the server stopped because the cap was reached: the whole cap was generated
        assert usage.output_tokens == cap


def test_without_max_tokens_the_count_is_the_local_one() -> None:
    usage = estimate_usage(ChatRequest.from_prompt("hi"), Reply(text="word " * 50), "llamacpp:m")
    assert usage.output_tokens >= 50 and not usage.exact


def test_a_broken_stream_is_billed_at_most_its_cap() -> None:
    usage = partial_usage(ChatRequest.from_prompt("hi", max_tokens=5), Reply(text="word " * 50), "llamacpp:m")
    assert usage is not None and usage.output_tokens == 5 and not usage.exact
