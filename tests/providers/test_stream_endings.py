"""How a stream ends: a whole answer without its terminator is a success, a cut one never is.

Every stream here is a REAL recorded stream from ``../shared/wire`` (each
streamed 200 model call, every wire, and each Gemini stream in both its SSE
and JSON-array forms), cut at an event boundary the way a connection that
closes cleanly cuts it:

* without its terminator (OpenAI Chat ``data: [DONE]``, Anthropic
  ``message_stop``, the closing ``]`` of Gemini's JSON array) but after the
  event that carries the finish reason: the same answer as the whole stream,
  usage included (issue 14: "a stream whose HTTP body ends properly but
  without [DONE] finalises at once with its usage");
* right after OpenAI Chat's finish chunk, before the usage chunk that follows
  it: the same text and finish reason, usage counted locally (inexact);
* before the event that carries the finish reason (for the Responses API that
  is ``response.completed`` itself): a ``StreamInterruptedError``, never a
  truncated success.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable

import pytest

import evalkit
from evalkit.errors import StreamInterruptedError
from evalkit.providers._framing import JSONArrayDecoder
from evalkit.providers.gemini import GeminiWire

from .recorded_calls import RecordedCall, model_calls
from .recordings import NOT_ANSWERS, Interaction, load, needs_wire, replay_provider

pytestmark = [needs_wire, pytest.mark.filterwarnings("ignore::UserWarning")]  # unpriced recorded models


# -- the recorded streams, event by event ---------------------------------------------------------


def _streams() -> list[RecordedCall]:
    return [c for c in model_calls() if c.stream_format is not None and c.interaction.status == 200
            and c.interaction.id not in NOT_ANSWERS]


STREAMS = _streams()


def _sse_events(it: Interaction) -> list[str]:
    """The SSE events of a recorded body, each its lines without the blank line that ends it."""
    return [e for e in it.text().replace("\r\n", "\n").split("\n\n") if e.strip()]


def _data(event: str) -> Any:
    """An event's decoded ``data`` (``"[DONE]"`` as is; ``None`` for a comment-only event)."""
    lines = [line[5:].lstrip() for line in event.split("\n") if line.startswith("data:")]
    if not lines:
        return None
    data = "\n".join(lines)
    return data if data == "[DONE]" else json.loads(data)


def _is_finish(family: str, chunk: Any) -> bool:
    """Whether a stream event carries the answer's finish reason, per wire."""
    if not isinstance(chunk, dict):
        return False
    if family == "openai-chat":
        return any(c.get("finish_reason") for c in chunk.get("choices") or ())
    if family == "anthropic":
        return chunk.get("type") == "message_delta" and bool((chunk.get("delta") or {}).get("stop_reason"))
    if family == "openai-responses":
        return chunk.get("type") in ("response.completed", "response.incomplete")
    return bool(((chunk.get("candidates") or [{}])[0]).get("finishReason"))  # gemini


def _is_terminator(family: str, chunk: Any) -> bool:
    return (family == "openai-chat" and chunk == "[DONE]") or (
        family == "anthropic" and isinstance(chunk, dict) and chunk.get("type") == "message_stop")


def _body(call: RecordedCall, keep: Callable[[list[Any]], list[int]], closed: bool = True) -> bytes:
    """The recorded body with only the events whose indexes ``keep`` picks (from the decoded chunks)."""
    it = call.interaction
    if call.stream_format == "json-array":
        chunks = json.loads(it.text())
        kept = [json.dumps(chunks[i]) for i in keep(chunks)]
        return ("[" + ",\r\n".join(kept) + ("]" if closed else "")).encode()
    events = _sse_events(it)
    kept = [events[i] for i in keep([_data(e) for e in events])]
    return "".join(e + "\n\n" for e in kept).encode()


def _with_body(call: RecordedCall, body: bytes) -> Interaction:
    headers = {k: v for k, v in call.interaction.headers.items() if k != "content-encoding"}
    return replace(call.interaction, body=body, headers=headers, gzipped=False)


async def _complete(call: RecordedCall, body: bytes | None = None) -> evalkit.ChatResponse:
    it = call.interaction if body is None else _with_body(call, body)
    return await replay_provider(it, call.target, **call.options).complete(call.request)


def _first_finish(call: RecordedCall, chunks: list[Any]) -> int:
    return next(i for i, c in enumerate(chunks) if _is_finish(call.family, c))


def _same_answer(got: evalkit.ChatResponse, whole: evalkit.ChatResponse) -> None:
    for field in ("text", "finish_reason", "model", "usage", "tool_calls", "reasoning", "cost"):
        assert getattr(got, field) == getattr(whole, field), field


def _ids(calls: list[RecordedCall]) -> list[str]:
    return [c.id for c in calls]


TERMINATED = [c for c in STREAMS if c.family in ("openai-chat", "anthropic")]
"""The wires with a terminator after the finish event (Gemini's JSON array: its ``]``, tested apart)."""


@pytest.mark.parametrize("call", TERMINATED, ids=_ids(TERMINATED))
async def test_a_whole_stream_without_its_terminator_is_the_same_answer(call: RecordedCall) -> None:
    whole = await _complete(call)
    chunks = [_data(e) for e in _sse_events(call.interaction)]
    assert any(_is_terminator(call.family, c) for c in chunks), "the recording ends with its terminator"
    unterminated = _body(call, lambda cs: [i for i, c in enumerate(cs) if not _is_terminator(call.family, c)])
    _same_answer(await _complete(call, unterminated), whole)


USAGE_AFTER_FINISH = [c for c in STREAMS if c.family == "openai-chat" and any(
    isinstance(d, dict) and d.get("usage") and not _is_finish("openai-chat", d)
    for d in map(_data, _sse_events(c.interaction)))]


@pytest.mark.parametrize("call", USAGE_AFTER_FINISH, ids=_ids(USAGE_AFTER_FINISH))
async def test_cut_after_the_finish_chunk_is_whole_with_the_usage_that_arrived(call: RecordedCall) -> None:
    whole = await _complete(call)
    got = await _complete(call, _body(call, lambda cs: list(range(_first_finish(call, cs) + 1))))
    for field in ("text", "finish_reason", "tool_calls", "reasoning"):
        assert getattr(got, field) == getattr(whole, field), field
    assert whole.usage.exact and not got.usage.exact, "the usage chunk never came: the count is an estimate"
    assert got.usage.input_tokens > 0 and got.usage.output_tokens > 0


@pytest.mark.parametrize("call", STREAMS, ids=_ids(STREAMS))
async def test_cut_before_the_finish_event_is_interrupted(call: RecordedCall) -> None:
    cut = _body(call, lambda cs: list(range(_first_finish(call, cs))))
    with pytest.raises(StreamInterruptedError):
        await _complete(call, cut)


GEMINI_ARRAYS = [c for c in STREAMS if c.stream_format == "json-array"]


@pytest.mark.parametrize("call", GEMINI_ARRAYS, ids=_ids(GEMINI_ARRAYS))
async def test_a_gemini_array_without_its_closing_bracket_is_the_same_answer(call: RecordedCall) -> None:
    whole = await _complete(call)
    unclosed = _body(call, lambda cs: list(range(len(cs))), closed=False)
    _same_answer(await _complete(call, unclosed), whole)


@pytest.mark.parametrize("call", GEMINI_ARRAYS, ids=_ids(GEMINI_ARRAYS))
async def test_a_gemini_array_cut_before_the_finish_chunk_is_interrupted(call: RecordedCall) -> None:
    for closed in (True, False):
        cut = _body(call, lambda cs: list(range(_first_finish(call, cs))), closed=closed)
        with pytest.raises(StreamInterruptedError):
            await _complete(call, cut)


@pytest.mark.parametrize("call", GEMINI_ARRAYS, ids=_ids(GEMINI_ARRAYS))
def test_the_array_decoder_tells_a_cut_between_elements_from_a_cut_inside_one(call: RecordedCall) -> None:
    """What the HTTP layer needs to let the wire judge an unclosed array: did it end inside an element."""
    whole = _body(call, lambda cs: list(range(len(cs))), closed=False)
    between = JSONArrayDecoder()
    chunks = list(between.feed(whole))
    assert not between.complete and not between.pending
    parser = GeminiWire("json-array").stream_parser()
    for chunk in chunks:
        parser.feed(json.dumps(chunk))
    assert parser.finish().finish_reason is not None  # the last element carried its finishReason: whole
    inside = JSONArrayDecoder()
    assert len(list(inside.feed(whole[:-7]))) == len(chunks) - 1 and inside.pending


GEMINI_SSE = [c for c in STREAMS if c.family == "gemini" and c.stream_format == "sse"]


@pytest.mark.parametrize("call", GEMINI_SSE, ids=_ids(GEMINI_SSE))
async def test_gemini_output_after_the_finish_chunk_must_finish_again(call: RecordedCall) -> None:
    """The last chunk decides: text after a finishReason, then the body ends, is a cut answer."""
    events = _sse_events(call.interaction)
    more = {"candidates": [{"content": {"parts": [{"text": " And"}], "role": "model"}, "index": 0}]}
    body = "".join(e + "\n\n" for e in events) + f"data: {json.dumps(more)}\n\n"
    with pytest.raises(StreamInterruptedError):
        await _complete(call, body.encode())
    usage_only = {"usageMetadata": _data(events[-1]).get("usageMetadata")}
    body = "".join(e + "\n\n" for e in events) + f"data: {json.dumps(usage_only)}\n\n"
    assert (await _complete(call, body.encode())).text == (await _complete(call)).text


def test_every_wire_and_form_is_covered() -> None:
    """The matrix above reaches every wire, and Gemini in both forms, from real recordings."""
    assert {(c.family, c.stream_format) for c in STREAMS} == {
        ("openai-chat", "sse"), ("openai-responses", "sse"), ("anthropic", "sse"),
        ("gemini", "sse"), ("gemini", "json-array")}
    assert len(USAGE_AFTER_FINISH) >= 3


async def test_a_stream_of_text_without_any_finish_is_interrupted_and_billed() -> None:
    """Text, then the body ends cleanly: a truncated answer, billed for what arrived, never a success."""
    recorded = "openai/test_chat_stream_with_include_usage_option.yaml#0"
    (call,) = [c for c in STREAMS if c.interaction.id == recorded]
    cut = _body(call, lambda cs: [i for i, c in enumerate(cs) if isinstance(c, dict) and not c.get("usage")
                                  and not _is_finish(call.family, c)])
    with pytest.raises(StreamInterruptedError) as caught:
        await _complete(call, cut)
    assert "finish_reason" in caught.value.message
    billed = caught.value.usage
    assert billed is not None and billed.output_tokens > 0 and not billed.exact


def test_recordings_end_as_assumed() -> None:
    """The cuts above rest on these recorded facts: the finish event comes before any terminator."""
    it = load("anthropic/test_anthropic_message_streaming_legacy.yaml")[0]
    kinds = [_data(e).get("type") for e in _sse_events(it)]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    it = load("openai/test_chat_stream_with_include_usage_option.yaml")[0]
    tail = [_data(e) for e in _sse_events(it)][-3:]
    assert tail[0]["choices"][0]["finish_reason"] == "stop" and tail[1]["usage"] and tail[2] == "[DONE]"
