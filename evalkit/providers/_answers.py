"""What the HTTP layer decides about a parsed reply, the same way for every wire.

* :func:`unusable`: a reply that parsed but is not an answer is a failed
  attempt: a refusal (``finish_reason`` ``content_filter``: OpenAI's
  ``content_filter`` or ``message.refusal``, Anthropic's ``refusal``, Gemini's
  SAFETY-like finish reasons and blocked prompts) is ``content_filter``; a reply
  with no text and no tool calls is ``invalid_response``, unless it continues a
  prefill (``_prefill.py``) that has text: the answer is the prefill and its
  continuation, and a continuation may be empty (the prefill was the whole
  answer, as when a stream broke just before its finish event). Keyed on the
  normalised finish reason, so a new wire gets it by mapping its reasons.
* :func:`estimate_usage` / :func:`partial_usage`: what a call is billed when
  the vendor did not say (counted locally, ``exact=False``), including a stream
  that broke after some output.
* :func:`scrub_reply`: every known secret value removed from a parsed
  reply, where a key split across two stream events comes back together and
  one the upstream's JSON escaped is plain text. (Bodies and stream events
  are scrubbed as they are read, with :func:`evalkit._secret.scrub_bytes`
  and :func:`~evalkit._secret.scrub`.)
"""

from __future__ import annotations

from dataclasses import replace

from .._secret import scrub
from ..errors import ContentFilterError, InvalidResponseError, ProviderError
from ..types import ChatRequest, FinishReason, Message, Usage
from ._prefill import prefill_text
from ._wire import Reply

__all__ = ["estimate_usage", "partial_usage", "scrub_reply", "unusable"]

_REFUSAL_SHOWN = 200
"""Characters of the vendor's refusal text kept in the error message."""


def unusable(reply: Reply, request: ChatRequest | None = None) -> ProviderError | None:
    """The failure ``reply`` stands for (a refusal, an empty answer), or ``None`` when it is an answer.

    A refusal fails even with partial text: the vendor withdrew the answer
    (Anthropic: "reset the context"; Azure cuts the text where its filter hit).
    ``finish_reason=length`` with no text means every output token went to
    reasoning: not retryable on the same target with the same ``max_tokens``.
    ``request`` (when given) may carry a prefill with text, which ``reply``
    continues: then an empty reply is an answer (nothing more to say).
    """
    if reply.finish_reason is FinishReason.CONTENT_FILTER:
        said = f": {reply.refusal[:_REFUSAL_SHOWN]}" if reply.refusal else ""
        return ContentFilterError(f"the vendor refused to answer (finish_reason=content_filter){said}")
    if reply.tool_calls or reply.text.strip():
        return None
    if request is not None and (prefill_text(request) or "").strip():
        return None
    if reply.finish_reason is FinishReason.LENGTH:
        spent = reply.usage.reasoning_tokens if reply.usage is not None else 0
        on = f" ({spent} reasoning tokens)" if spent else ""
        return InvalidResponseError(
            f"empty answer: the output-token limit was reached before any text{on}; raise max_tokens",
            code="length_before_answer", retryable=False)
    return InvalidResponseError(
        f"empty answer: no text and no tool calls (finish_reason={reply.finish_reason.value})",
        code="empty_answer")


def estimate_usage(request: ChatRequest, reply: Reply, model: str) -> Usage:
    """Usage counted locally when the vendor reported none; marked inexact."""
    from ..tokens import count_tokens

    prompt = list(request.messages)
    if request.system:
        prompt.insert(0, Message("system", request.system))
    out_text = reply.text + reply.reasoning + "".join(c.name + c.arguments for c in reply.tool_calls)
    output = count_tokens(out_text, model).count if out_text else 0
    if (cap := request.max_tokens) is not None:
        # The server stops at max_tokens in its own tokenizer, which is not the one counted with here:
        # an answer cut for length used the whole cap, and no answer used more than it.
        output = cap if reply.finish_reason is FinishReason.LENGTH else min(output, cap)
    return Usage(input_tokens=count_tokens(prompt, model).count, output_tokens=output, exact=False)


def partial_usage(request: ChatRequest, partial: Reply, model: str) -> Usage | None:
    """What a stream that broke is billed for: its prompt and the output that arrived.

    ``None`` when nothing was generated and the vendor reported nothing. The
    vendor's running usage is kept when there is one, but its output count is
    raised to what was counted locally (Anthropic's ``message_start`` says 1
    output token whatever followed), and the result is inexact: the bill of a
    broken stream is never reported.
    """
    generated = bool(partial.text or partial.reasoning or partial.tool_calls)
    reported = partial.usage
    if not generated:
        return None if reported is None else replace(reported, exact=False)
    counted = estimate_usage(request, partial, model)
    if reported is None:
        return counted
    return replace(reported, input_tokens=reported.input_tokens or counted.input_tokens,
                   output_tokens=max(reported.output_tokens, counted.output_tokens), exact=False)


def scrub_reply(reply: Reply) -> Reply:
    """``reply`` with known secrets removed from its texts (in place; returned).

    A secret split across two stream events survives the per-event scrub, and
    one written JSON-escaped (``\\/`` for ``/``) survives the scrub of the raw
    bytes; the parsed text, reasoning, refusal and tool-call arguments are
    where either is plain.
    """
    reply.text, reply.reasoning = scrub(reply.text), scrub(reply.reasoning)
    reply.refusal, reply.model = scrub(reply.refusal), scrub(reply.model)
    if reply.tool_calls:
        reply.tool_calls = tuple(replace(c, name=scrub(c.name), arguments=scrub(c.arguments))
                                 for c in reply.tool_calls)
    return reply
