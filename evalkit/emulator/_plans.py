"""From a generation (or an error) and a fault to a :class:`ReplyPlan`: bytes and their timing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ._responses import ReplyPlan
from ._simulate import Generation
from ._tokens import split_chunks_at
from ._wire_base import WireRenderer
from ._wire_common import HttpReply, ReplyContext, StreamEvent
from .faults import AFTER_TOKENS_KINDS

__all__ = ["BodyFault", "error_plan", "json_plan", "stream_plan"]


@dataclass(frozen=True, slots=True)
class BodyFault:
    """How a fault shapes a 200 response: its kind and resolved parameters.

    ``stall_s`` is how long ``timeout``/``stall`` hold; ``after_tokens`` where
    ``stall``/``cut``/``malformed`` strike in a stream (None: their default
    places). ``slow_first_token`` needs neither: it is already in the
    generation's timing.
    """

    kind: str | None = None
    stall_s: float = 0.0
    after_tokens: int | None = None


def error_plan(reply: HttpReply) -> ReplyPlan:
    """An error response, sent at once."""
    headers = reply.headers + [("content-length", str(len(reply.body)))]
    return ReplyPlan(reply.status, headers, [(0.0, reply.body)])


def _headers(wire: WireRenderer, ctx: ReplyContext, stream: bool, total_s: float) -> list[tuple[str, str]]:
    return [
        ("content-type", wire.content_type(stream, ctx)),
        *wire.success_headers(ctx, round(total_s * 1000)),
    ]


def json_plan(gen: Generation, wire: WireRenderer, ctx: ReplyContext, fault: BodyFault) -> ReplyPlan:
    """A non-streamed 200: the body after the whole generation time, shaped by ``fault``.

    ``stall`` sends the headers and then holds the body; ``timeout`` holds
    everything; ``cut`` sends half the body and closes; ``malformed`` sends
    invalid JSON. A JSON body has no tokens to count, so ``after_tokens`` does
    not apply, and no end-of-stream marker, so ``no_done`` is a normal answer.
    """
    kind = fault.kind
    body = wire.malformed_body(gen, ctx) if kind == "malformed" else wire.render(gen, ctx)
    headers = _headers(wire, ctx, False, gen.total_s) + [("content-length", str(len(body)))]
    if kind == "cut":
        return ReplyPlan(200, headers, [(gen.total_s, body[: len(body) // 2])], ending="cut")
    if kind == "stall":
        return ReplyPlan(200, headers, [(gen.total_s + fault.stall_s, body)])
    pre_delay = gen.total_s + (fault.stall_s if kind == "timeout" else 0.0)
    return ReplyPlan(200, headers, [(0.0, body)], pre_delay_s=pre_delay)


def stream_plan(gen: Generation, wire: WireRenderer, ctx: ReplyContext, fault: BodyFault) -> ReplyPlan:
    """A streamed 200: headers at once, then events paced by the generation's timing.

    ``timeout`` holds the headers too. Without ``after_tokens``, ``stall``
    pauses after the first content event, ``cut`` drops the ending (finish,
    usage, ``[DONE]``/``message_stop``) and closes the connection, and
    ``malformed`` slips in a broken event after the first one. With
    ``after_tokens`` N, each strikes after exactly N answer tokens (a chunk is
    split there if need be): the stall pauses before the rest, the cut closes
    before it, the broken event goes in before it and the stream then goes on
    complete. ``no_done`` sends everything but the wire's end-of-stream marker
    and ends the body cleanly.
    """
    kind, n = fault.kind, fault.after_tokens if fault.kind in AFTER_TOKENS_KINDS else None
    if n is not None:
        gen = dataclasses.replace(gen, chunks=split_chunks_at(gen.chunks, n))
    events: list[StreamEvent] = wire.stream_events(gen, ctx)
    if kind == "no_done":
        events = [e for e in events if not e.terminator]
    at = None if n is None else _after_tokens(events, n)
    if kind == "malformed":
        where = min(1, len(events)) if at is None else at
        events.insert(where, wire.malformed_event(gen, ctx, first=where == 0))
    ending = "complete"
    if kind == "cut":
        end = next((i for i, e in enumerate(events) if e.part == "tail"), len(events)) if at is None else at
        events, ending = events[:end], "cut"
    parts = list(zip(_event_delays(gen, events), (e.data for e in events)))
    if kind == "stall":
        _hold(parts, _default_stall_at(events) if at is None else at, fault.stall_s)
    pre_delay = fault.stall_s if kind == "timeout" else 0.0
    headers = _headers(wire, ctx, True, gen.total_s) + [("cache-control", "no-cache")]
    return ReplyPlan(200, headers, parts, pre_delay_s=pre_delay, ending=ending)


def _after_tokens(events: list[StreamEvent], n: int) -> int:
    """The index of the first event after exactly ``n`` answer tokens (chunks are split at ``n`` already).

    0 tokens: before the first answer token (after the opening events); past
    the answer: right after its last token.
    """
    seen, after_last = 0, None
    for i, event in enumerate(events):
        if event.visible and event.tokens:
            if seen >= n:
                return i
            seen += event.tokens
            after_last = i + 1
    if after_last is not None:
        return after_last
    return next((i for i, e in enumerate(events) if e.part != "head"), len(events))  # an answer with no text


def _default_stall_at(events: list[StreamEvent]) -> int:
    """Where a stall without ``after_tokens`` pauses: after the first content event (as it always has)."""
    first_content = next((i for i, e in enumerate(events) if e.tokens), None)
    if first_content is not None and first_content + 1 < len(events):
        return first_content + 1
    return len(events) - 1


def _hold(parts: list[tuple[float, bytes]], at: int, seconds: float) -> None:
    """Hold the stream ``seconds`` before part ``at``; past the last part, after it (an empty write)."""
    if 0 <= at < len(parts):
        delay, data = parts[at]
        parts[at] = (delay + seconds, data)
    else:
        parts.append((seconds, b""))


def _event_delays(gen: Generation, events: list[StreamEvent]) -> list[float]:
    """TTFT before the first token-bearing event, decode time before each later one, 0 for the rest."""
    delays = [0.0] * len(events)
    seen_tokens = False
    for i, event in enumerate(events):
        if event.tokens:
            delays[i] = gen.timing.chunk_delay(event.tokens, first=not seen_tokens)
            seen_tokens = True
    if not seen_tokens:
        first_body = next((i for i, e in enumerate(events) if e.part != "head"), None)
        if first_body is not None:
            delays[first_body] = gen.timing.ttft_s
    return delays
