"""From a generation (or an error) and a fault to a :class:`ReplyPlan`: bytes and their timing."""

from __future__ import annotations

from types import ModuleType

from ._responses import ReplyPlan
from ._simulate import Generation
from ._wire_common import HttpReply, ReplyContext, StreamEvent

__all__ = ["error_plan", "json_plan", "stream_plan"]


def error_plan(reply: HttpReply) -> ReplyPlan:
    """An error response, sent at once."""
    headers = reply.headers + [("content-length", str(len(reply.body)))]
    return ReplyPlan(reply.status, headers, [(0.0, reply.body)])


def _headers(wire: ModuleType, ctx: ReplyContext, stream: bool, total_s: float) -> list[tuple[str, str]]:
    return [
        ("content-type", wire.content_type(stream, ctx)),
        *wire.success_headers(ctx, round(total_s * 1000)),
    ]


def json_plan(
    gen: Generation, wire: ModuleType, ctx: ReplyContext, fault: str | None, stall_s: float
) -> ReplyPlan:
    """A non-streamed 200: the body after the whole generation time, shaped by ``fault``.

    ``stall`` sends the headers and then holds the body; ``timeout`` holds
    everything; ``cut`` sends half the body and closes; ``malformed`` sends
    invalid JSON.
    """
    body = wire.malformed_body(gen, ctx) if fault == "malformed" else wire.render(gen, ctx)
    headers = _headers(wire, ctx, False, gen.total_s) + [("content-length", str(len(body)))]
    if fault == "cut":
        return ReplyPlan(200, headers, [(gen.total_s, body[: len(body) // 2])], ending="cut")
    if fault == "stall":
        return ReplyPlan(200, headers, [(gen.total_s + stall_s, body)])
    pre_delay = gen.total_s + (stall_s if fault == "timeout" else 0.0)
    return ReplyPlan(200, headers, [(0.0, body)], pre_delay_s=pre_delay)


def stream_plan(
    gen: Generation, wire: ModuleType, ctx: ReplyContext, fault: str | None, stall_s: float
) -> ReplyPlan:
    """A streamed 200: headers at once, then events paced by the generation's timing.

    ``timeout`` holds the headers too; ``stall`` pauses after the first content
    event; ``cut`` drops the ending (finish, usage, ``[DONE]``/``message_stop``)
    and closes the connection; ``malformed`` slips in an event with broken JSON.
    """
    events: list[StreamEvent] = wire.stream_events(gen, ctx)
    if fault == "malformed":
        events.insert(min(1, len(events)), wire.malformed_event(gen, ctx))
    ending = "complete"
    if fault == "cut":
        first_tail = next((i for i, e in enumerate(events) if e.part == "tail"), len(events))
        events, ending = events[:first_tail], "cut"
    delays = _event_delays(gen, events)
    if fault == "stall" and events:
        first_content = next((i for i, e in enumerate(events) if e.tokens), None)
        at = (
            first_content + 1
            if first_content is not None and first_content + 1 < len(events)
            else len(events) - 1
        )
        delays[at] += stall_s
    pre_delay = stall_s if fault == "timeout" else 0.0
    headers = _headers(wire, ctx, True, gen.total_s) + [("cache-control", "no-cache")]
    return ReplyPlan(
        200, headers, list(zip(delays, (e.data for e in events))), pre_delay_s=pre_delay, ending=ending
    )  # type: ignore[arg-type]


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
