"""The seam between the HTTP layer and a vendor's wire format.

A wire module knows one vendor format and nothing about I/O: it builds the HTTP
request for a :class:`~evalkit.ChatRequest`, parses a JSON answer, parses a
stream event by event, and classifies an error response. The HTTP layer
(``_http.py``) does the sending, timing, decompression and SSE framing for every
wire alike, so a fix to transport behaviour lands once.

Contract:

* :meth:`Wire.build` is pure; the auth header comes from :meth:`Wire.auth_headers`
  so credentials stay in the HTTP layer.
* :meth:`Wire.parse` gets the decoded JSON body of a 2xx response and returns a
  :class:`Reply`; it raises :class:`~evalkit.errors.InvalidResponseError` when the
  body does not have the vendor's shape, or a :class:`~evalkit.errors.ProviderError`
  when a 2xx body carries an error.
* A :class:`StreamParser` gets each event's ``data`` (and SSE ``event`` name) in
  order. :meth:`StreamParser.feed` returns the text delta (``""`` for none) and
  raises on an error event; :meth:`StreamParser.finish` raises
  :class:`~evalkit.errors.StreamInterruptedError` when the vendor's terminal event
  never came. :meth:`StreamParser.partial` is what arrived so far, whatever
  happened: the HTTP layer bills a broken stream for it.
* A reply that parsed is not yet an answer: a refusal (``finish_reason``
  ``content_filter``) or an empty one (no text, no tool calls) is turned into
  an error by the HTTP layer, once for every wire (``_answers.unusable``). Wires
  only report what the vendor said, including its words for a refusal
  (:attr:`Reply.refusal`).
* :meth:`Wire.classify` maps a non-2xx response to exactly one error kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Protocol

from .._json import loads
from ..errors import InvalidResponseError, ProviderError
from ..types import ChatRequest, FinishReason, ToolCall, Usage

StreamFormat = Literal["sse", "json-array"]


@dataclass(frozen=True, slots=True)
class HttpCall:
    """What to send: a path relative to the base URL, query parameters and a JSON body."""

    path: str
    body: Mapping[str, Any]
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    stream_format: StreamFormat | None = None


@dataclass(slots=True)
class Reply:
    """A parsed answer before the HTTP layer adds timing, cost and identity.

    ``usage`` is ``None`` when the vendor reported no usage (the HTTP layer then
    estimates it and marks it inexact). ``reported_cost`` is set when the vendor
    bills in the response (OpenRouter ``usage.cost``). ``refusal`` is what the
    vendor said about a refusal (OpenAI's ``message.refusal``, Anthropic's
    ``stop_details.explanation``, Gemini's finish or block reason), ``""`` when
    it said nothing.
    """

    text: str = ""
    finish_reason: FinishReason = FinishReason.STOP
    model: str = ""
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    request_id: str | None = None
    reported_cost: Any = None
    refusal: str = ""


class StreamParser(Protocol):
    """Accumulates one streamed answer; see the module docstring for the contract."""

    started: bool
    """True once any output (text, reasoning or a tool call) has arrived: the TTFT mark."""

    def feed(self, data: str, event: str | None = None) -> str: ...

    def finish(self) -> Reply:
        """The whole answer once the stream ended: after its terminator, or after a body that ended
        cleanly once the finish event had arrived; a stream without its finish is interrupted."""
        ...

    def partial(self) -> Reply:
        """Text, reasoning, tool calls and the vendor's running usage (if any) received so far."""
        ...


class Wire(Protocol):
    """One vendor wire format."""

    name: str

    def auth_headers(self, api_key: str) -> dict[str, str]: ...

    def build(self, request: ChatRequest, model: str, stream: bool) -> HttpCall: ...

    def parse(self, body: Any, request: ChatRequest | None = None) -> Reply:
        """The answer in a JSON body; ``request`` tells a continued prefill apart (its repeat is dropped)."""
        ...

    def stream_parser(self, request: ChatRequest | None = None) -> StreamParser: ...

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError: ...


def stream_event(data: str) -> dict[str, Any]:
    """One stream event's JSON object.

    Anything else is a body evalkit cannot read (invalid_response), like a
    malformed non-streamed body; the HTTP layer reports a broken *last* event
    (the connection closed inside it) as stream_interrupted instead. A
    malformed event fails the attempt rather than being skipped: it may have
    carried text, and skipping it would return a silently garbled answer (a
    router recovers the stream from the text shown, ``mid_stream``).
    """
    try:
        chunk = loads(data)
    except ValueError:
        raise InvalidResponseError(f"malformed stream event: {data[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise InvalidResponseError(f"stream event is not a JSON object: {data[:80]!r}")
    return chunk


def error_body(body: bytes) -> Any:
    """The decoded body of an error response; ``{}`` when it is empty or not JSON (an HTML gateway page)."""
    try:
        return loads(body) if body else {}
    except ValueError:
        return {}
