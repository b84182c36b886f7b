"""Assistant prefill: a request whose last turn is the assistant's asks the model to continue it.

Every wire has one (OpenAI-compatible: a trailing ``assistant`` message,
Mistral's with ``"prefix": true``; Anthropic: a trailing ``assistant`` message;
Gemini: a trailing ``model`` content), and a router that recovers a cut stream
sends the partial answer that way. The emulator continues the model's own
answer: what it answers to the same request *without* the trailing turn. When
the prefill is a prefix of that answer the reply is the rest of it, so the
partial answer and the continuation join seamlessly; otherwise (another
model's words) the reply is the model's whole answer. Either way the prefill
is billed as prompt, and ``max_tokens`` bounds only the new tokens, as the
vendors do.

A model set to ``prefill: reject`` (or a call with ``x-evalkit-prefill:
reject``) refuses a trailing assistant turn with its vendor's 400. The
sentences: Anthropic's is what its API answers on the models that dropped
prefill (4.6 and later); Gemini's is the API's answer to a conversation that
does not end with a user turn; OpenAI's own API accepts a trailing assistant
message, so the OpenAI wire's sentence is the emulator's, in the
``invalid_request_error`` shape of OpenAI-compatible vendors that refuse one.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # _simulate imports this module: no import cycle at run time
    from ._simulate import ChatCall

__all__ = ["answer_request", "continuation", "prefill_of", "refusal"]

_REFUSALS: dict[str, tuple[str, str | None]] = {
    "anthropic": (
        "This model does not support assistant message prefill. The conversation must end with a user message.",
        None,
    ),
    "gemini": ("Please ensure that multiturn requests ends with a user role or a function response.", "contents"),
    "openai": (
        (
            "This model does not support assistant message prefill: expected the last message to have role "
            "'user' or 'tool', got 'assistant'."
        ),
        "messages",
    ),
}


def prefill_of(call: ChatCall) -> str | None:
    """The text of the request's trailing assistant turn, or None when the last turn is not the assistant's."""
    if call.messages and call.messages[-1][0] == "assistant":
        return call.messages[-1][1]
    return None


def answer_request(call: ChatCall) -> ChatCall:
    """The request whose answer a prefilled ``call`` continues: the same one without its trailing turn.

    Its fingerprint is the one the interrupted request had (the same messages,
    cap, stops and format), so the model's answer, and its seeded draws, are
    the same words the first attempt was streaming.
    """
    return dataclasses.replace(call, messages=call.messages[:-1])


def continuation(answer: str, prefill: str) -> str:
    """What follows ``prefill`` in ``answer``; the whole ``answer`` when it does not start with ``prefill``."""
    return answer[len(prefill):] if prefill and answer.startswith(prefill) else answer


def refusal(wire: str) -> tuple[str, str | None]:
    """``(message, param)`` of ``wire``'s 400 to a trailing assistant turn on a model that refuses prefill."""
    return _REFUSALS[wire]
