"""The one rendering base of the three vendor wires: what they do alike, with each vendor's data left open.

Every wire (``_wire_openai``, ``_wire_anthropic``, ``_wire_gemini``) turns a
request body into a :class:`ChatCall`, and a :class:`Generation` or an error
into the vendor's bytes. The steps are the same on every wire, and live here:

- a request: refuse a body that is not a JSON object, then the vendor reads it
  (:meth:`WireRenderer.read_request`) and, once the model is known, refuses
  what that model cannot do (:meth:`~WireRenderer.check_call`);
- a whole body: the vendor's payload (:meth:`~WireRenderer.body`), encoded
  (:meth:`~WireRenderer.encode`); a malformed one is that body cut inside its
  answer (:attr:`~WireRenderer.malformed_cut`);
- a stream: the vendor's events (:meth:`~WireRenderer.answer_events`), each
  framed as SSE (``event:`` line where the vendor names events, ``data:``, the
  vendor's separator) and then the vendor's end-of-stream marker; a malformed
  event is the same frame around broken JSON;
- headers: the vendor's leading headers, its request id, its rate-limit set;
- errors: a table from error kind to :class:`ErrorShape` (status, the vendor's
  error type, message template, code), the message filled from
  :class:`ErrorInfo`, the vendor's error body around it; a 429 adds
  ``Retry-After`` and the rate-limit headers; a 502 is the CDN's HTML page;
- models: which models the vendor lists, and its list and model payloads.

A vendor module subclasses :class:`WireRenderer` with its data (finish reasons,
error table, content types, header names) and the payloads only it has, and
exposes one instance, ``WIRE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ._simulate import ChatCall, Generation
from ._specs import Fleet, ModelSpec
from ._wire_common import (
    BAD_GATEWAY_HTML,
    ErrorInfo,
    HttpReply,
    ReplyContext,
    StreamEvent,
    StreamPart,
    WireError,
    compact_json,
    retry_after_text,
)

__all__ = ["ErrorShape", "WireRenderer"]

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ErrorShape:
    """How a vendor answers one kind of error.

    ``type`` is the vendor's error type (Gemini: its status name, ``RESOURCE_EXHAUSTED``);
    ``template`` may name ``{model}``, ``{window}``, ``{prompt_tokens}`` and ``{message}``
    (the refusal's own message); ``code`` is the vendor's error code, where it sends one.
    """

    status: int
    type: str
    template: str = "{message}"
    code: str | None = None


class WireRenderer:
    """One vendor's wire format; subclasses fill in the class attributes and the payload methods."""

    name: ClassVar[str]
    """The wire's name (``openai``, ``anthropic``, ``gemini``), as :meth:`ModelSpec.serves` takes it."""
    finish_reasons: ClassVar[Mapping[str, str]]
    """A generation's finish (``stop``, ``stop_sequence``, ``length``, ``content_filter``) in the vendor's word."""
    errors: ClassVar[Mapping[str, ErrorShape]]
    """Error kind (``rate_limit``, ``server``, ``context_length``, ...) to the vendor's answer."""
    not_an_object: ClassVar[str]
    """What the vendor says of a body that is not a JSON object."""
    missing_model: ClassVar[tuple[str, str | None] | None] = None
    """What the vendor says (message, param) of a body that names no model; None where the URL names it."""
    default_error_message: ClassVar[str]
    """The message of a ``bad_request`` that brings none."""
    malformed_cut: ClassVar[tuple[bytes, int]]
    """Where a malformed body ends: this many bytes from the start of this key (its first 20 bytes without it)."""
    broken_event_name: ClassVar[str | None] = None
    """The ``event:`` name of a malformed stream event, on a wire that names events."""
    json_content_type: ClassVar[str] = "application/json"
    stream_content_type: ClassVar[str] = "text/event-stream; charset=utf-8"
    error_content_type: ClassVar[str] = "application/json"
    request_id_header: ClassVar[str] = "x-request-id"
    gateway_sends_request_id: ClassVar[bool] = True
    """Whether a 502 from the vendor's front end carries its request id."""
    sse_separator: ClassVar[bytes] = b"\n\n"
    lists_every_model: ClassVar[bool] = False
    """Whether ``GET .../models`` lists the whole fleet (OpenAI's does), not only the models on this wire."""

    # -- requests --------------------------------------------------------------------------------

    def parse_request(
        self,
        body: Any,
        *,
        model: str | None = None,
        stream: bool | None = None,
        query: Mapping[str, str] | None = None,
    ) -> ChatCall:
        """A :class:`ChatCall` from a request body whose field types are checked already
        (``_request_checks``); :class:`WireError` for the values the vendor rejects for any model.

        ``model`` and ``stream`` are what the URL says, where the vendor puts them there (Gemini).
        """
        if not isinstance(body, Mapping):
            raise WireError(self.not_an_object)
        if self.missing_model is not None:
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise WireError(*self.missing_model)
        return self.read_request(body, model=model or "", stream=stream, query=query or {})

    def read_request(
        self, body: Mapping[str, Any], *, model: str, stream: bool | None, query: Mapping[str, str]
    ) -> ChatCall:
        """The vendor's reading of a JSON-object body that names ``model``."""
        raise NotImplementedError

    def chat_call(
        self, model: str, messages: tuple[tuple[str, str], ...], *, max_tokens: int | None, stop: Any, **fields: Any
    ) -> ChatCall:
        """A :class:`ChatCall` on this wire; ``stop`` is the body's list of stop sequences (anything else: none)."""
        stops = tuple(str(s) for s in stop) if isinstance(stop, (list, tuple)) else ()
        return ChatCall(wire=self.name, model=model, messages=messages, max_tokens=max_tokens, stop=stops, **fields)

    def check_call(self, call: ChatCall, spec: ModelSpec) -> None:
        """What the vendor refuses once it knows the model (:class:`WireError`); nothing by default."""

    def count_request(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The body of a token-count request as :meth:`parse_request` takes it (the same by default)."""
        return body

    def new_request_id(self) -> str:
        """A fresh request id in the vendor's format."""
        return "req_" + uuid.uuid4().hex

    # -- a whole body ----------------------------------------------------------------------------

    def finish_reason(self, gen: Generation) -> str:
        """The generation's finish in the vendor's word."""
        return self.finish_reasons[gen.finish]

    def body(self, gen: Generation, ctx: ReplyContext) -> dict[str, Any]:
        """The non-streamed response payload."""
        raise NotImplementedError

    def encode(self, payload: Any) -> bytes:
        """JSON as the vendor sends it (compact by default)."""
        return compact_json(payload)

    def encode_event(self, payload: Any) -> bytes:
        """A stream event's JSON (as the body's by default)."""
        return self.encode(payload)

    def render(self, gen: Generation, ctx: ReplyContext) -> bytes:
        """The non-streamed response body."""
        return self.encode(self.body(gen, ctx))

    def malformed_body(self, gen: Generation, ctx: ReplyContext) -> bytes:
        """A 200 body that is not valid JSON: the real one, cut inside the answer."""
        body = self.render(gen, ctx)
        key, keep = self.malformed_cut
        return body[: body.find(key) + keep] if key in body else body[:20]

    # -- streams ---------------------------------------------------------------------------------

    def stream_events(self, gen: Generation, ctx: ReplyContext) -> list[StreamEvent]:
        """The events of a streamed answer, in order, ending with the wire's end-of-stream marker."""
        events = self.answer_events(gen, ctx)
        end = self.end_of_stream(ctx)
        if end is not None:
            events.append(StreamEvent(end, "tail", terminator=True))
        return events

    def answer_events(self, gen: Generation, ctx: ReplyContext) -> list[StreamEvent]:
        """The stream's events before its end-of-stream marker."""
        raise NotImplementedError

    def end_of_stream(self, ctx: ReplyContext) -> bytes | None:
        """The bytes that end a stream (which ``no_done`` leaves out), or None where nothing does."""
        return None

    def event_name(self, payload: Any) -> str | None:
        """The ``event:`` name of a stream event, on a wire that names its events."""
        return None

    def frame(self, data: bytes, ctx: ReplyContext, *, first: bool = False, name: str | None = None) -> bytes:
        """One stream event around encoded JSON ``data`` (valid or not): SSE by default.

        ``first``: it opens the stream (matters only to a stream with an opening, Gemini's JSON array).
        """
        head = b"" if name is None else b"event: " + name.encode() + b"\n"
        return head + b"data: " + data + self.sse_separator

    def event(
        self,
        payload: Any,
        ctx: ReplyContext,
        part: StreamPart,
        tokens: int = 0,
        *,
        first: bool = False,
        visible: bool = True,
    ) -> StreamEvent:
        """A framed stream event of ``payload``; ``tokens`` pace it (see :class:`StreamEvent`)."""
        data = self.frame(self.encode_event(payload), ctx, first=first, name=self.event_name(payload))
        return StreamEvent(data, part, tokens, visible)

    def broken_json(self, gen: Generation) -> bytes:
        """The start of an event's JSON, cut: what a malformed event carries."""
        raise NotImplementedError

    def malformed_event(self, gen: Generation, ctx: ReplyContext, first: bool = False) -> StreamEvent:
        """A stream event whose data is not valid JSON; ``first``: it opens the stream."""
        data = self.frame(self.broken_json(gen), ctx, first=first, name=self.broken_event_name)
        return StreamEvent(data, "content")

    # -- headers ---------------------------------------------------------------------------------

    def content_type(self, stream: bool, ctx: ReplyContext | None = None) -> str:
        """The Content-Type of a 200 response."""
        return self.stream_content_type if stream else self.json_content_type

    def leading_headers(self, processing_ms: int) -> Headers:
        """The vendor's headers before the request id on a 200 (its version, its processing time)."""
        return []

    def rate_headers(self, ctx: ReplyContext) -> Headers:
        """The rate-limit headers: the budget as it stands (``ctx.rate``); none by default."""
        return []

    def success_headers(self, ctx: ReplyContext, processing_ms: int) -> Headers:
        """Response headers of a 200 (after the content type)."""
        return [*self.leading_headers(processing_ms), (self.request_id_header, ctx.request_id),
                *self.rate_headers(ctx)]

    # -- errors ----------------------------------------------------------------------------------

    def error(self, kind: str, ctx: ReplyContext, info: ErrorInfo) -> HttpReply:
        """The error response the vendor sends for ``kind``."""
        ids = [(self.request_id_header, ctx.request_id)]
        if kind == "bad_gateway":
            return HttpReply(502, [("content-type", "text/html"), *(ids if self.gateway_sends_request_id else [])],
                             BAD_GATEWAY_HTML)
        shape = self.errors[kind]
        headers = [("content-type", self.error_content_type), *ids]
        if kind == "rate_limit":
            headers += self.rate_limit_headers(ctx, info)
        message = self.error_message(kind, shape, ctx, info)
        return HttpReply(shape.status, headers, self.error_body(kind, shape, message, ctx, info))

    def error_message(self, kind: str, shape: ErrorShape, ctx: ReplyContext, info: ErrorInfo) -> str:
        """The error's message: the vendor's rate-limit message for a 429 where it has one, else the template."""
        if kind == "rate_limit" and (message := self.rate_limit_message(ctx, info)) is not None:
            return message
        return shape.template.format(
            model=ctx.model,
            window=info.context_window,
            prompt_tokens=info.prompt_tokens,
            message=info.message or self.default_error_message,
        )

    def rate_limit_message(self, ctx: ReplyContext, info: ErrorInfo) -> str | None:
        """The message of a 429 (None: the table's template)."""
        return None

    def retry_headers(self, seconds: float) -> Headers:
        """How the vendor says when to retry."""
        return [("retry-after", retry_after_text(seconds))]

    def rate_limit_headers(self, ctx: ReplyContext, info: ErrorInfo) -> Headers:
        """A 429's headers after the request id: when to retry, then the budget as it stands."""
        retry = [] if info.retry_after is None else self.retry_headers(info.retry_after)
        return retry + self.rate_headers(ctx)

    def error_body(self, kind: str, shape: ErrorShape, message: str, ctx: ReplyContext, info: ErrorInfo) -> bytes:
        """The vendor's error body."""
        raise NotImplementedError

    # -- models ----------------------------------------------------------------------------------

    def lists(self, spec: ModelSpec) -> bool:
        """Whether the vendor's model routes know ``spec`` (list it, describe it)."""
        return self.lists_every_model or spec.serves(self.name)

    def listed(self, fleet: Fleet) -> list[ModelSpec]:
        """The models ``GET .../models`` lists."""
        return [m for m in fleet if self.lists(m)]

    def models_payload(self, fleet: Fleet, created: int) -> dict[str, Any]:
        """``GET .../models``."""
        raise NotImplementedError

    def model_payload(self, spec: ModelSpec, created: int) -> dict[str, Any]:
        """One model, as the vendor describes it."""
        raise NotImplementedError

    def count_tokens_payload(self, prompt_tokens: int) -> dict[str, Any]:
        """The answer of the vendor's token-count route (a wire without one never gets here)."""
        raise NotImplementedError(f"{self.name} has no token-count route")
