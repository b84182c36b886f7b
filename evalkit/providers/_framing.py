"""Stream framing: Server-Sent Events and Gemini's streamed JSON array.

Both decoders are incremental: they take bytes as they arrive, in chunks cut
anywhere (inside a UTF-8 character, a line or a JSON value), and give back whole
events. They know nothing about any vendor's payloads.

A malformed element (JSON that more bytes cannot fix) fails the stream
(``InvalidResponseError``) rather than being skipped: a skipped event may have
carried text, and the answer returned without it would be silently garbled,
a truncated "success" in the middle instead of at the end. Failing cleanly
bills what arrived and lets a router recover the stream by continuation. The
same rule holds for each event's JSON (``_wire.stream_event``).
"""

from __future__ import annotations

import codecs
import json
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from .._secret import scrub, scrub_bytes
from ..errors import InvalidResponseError, StreamInterruptedError

if TYPE_CHECKING:
    import httpx


class SSEDecoder:
    """Server-Sent Events per the WHATWG spec: ``event:``/``data:`` lines, blank-line dispatch.

    ``feed`` yields ``(event, data)`` pairs; multi-line ``data`` is joined with
    ``\\n``; comments (``:``) and ``id:``/``retry:`` fields are ignored.
    """

    __slots__ = ("_decoder", "_buffer", "_event", "_data")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> Iterator[tuple[str | None, str]]:
        self._buffer += self._decoder.decode(chunk)
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return
            line, self._buffer = self._buffer[: cut[0]], self._buffer[cut[1] :]
            event = self._line(line)
            if event is not None:
                yield event

    def end(self) -> Iterator[tuple[str | None, str]]:
        """Flush at end of stream: a last event without its blank line still counts."""
        self._buffer += self._decoder.decode(b"", final=True)
        if self._buffer:
            event = self._line(self._buffer)
            self._buffer = ""
            if event is not None:
                yield event
        if self._data:
            yield self._dispatch()

    def _line(self, line: str) -> tuple[str | None, str] | None:
        if not line:
            if self._data:
                return self._dispatch()
            self._reset()
            return None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def _dispatch(self) -> tuple[str | None, str]:
        event = (self._event, "\n".join(self._data))
        self._reset()
        return event

    def _reset(self) -> None:
        self._event, self._data = None, []


def _line_end(text: str) -> tuple[int, int] | None:
    """Position and length-end of the first line break (``\\r\\n``, ``\\n`` or ``\\r``)."""
    n = text.find("\n")
    r = text.find("\r")
    if r == -1 and n == -1:
        return None
    if r == -1 or (n != -1 and n < r):
        return n, n + 1
    if r + 1 < len(text):
        return r, r + (2 if text[r + 1] == "\n" else 1)
    return None  # a lone trailing \r may be the first half of \r\n


class JSONArrayDecoder:
    """Elements of a JSON array streamed as ``[{...},\\r\\n{...}]``, yielded as each one completes."""

    __slots__ = ("_decoder", "_buffer", "_opened", "_closed", "_json")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._opened = False
        self._closed = False
        self._json = json.JSONDecoder()

    def feed(self, chunk: bytes) -> Iterator[Any]:
        self._buffer += self._decoder.decode(chunk)
        while True:
            self._buffer = self._buffer.lstrip(" \t\r\n,")
            if not self._buffer or self._closed:
                return
            if not self._opened:
                if self._buffer[0] != "[":
                    raise InvalidResponseError("stream is not a JSON array")
                self._opened, self._buffer = True, self._buffer[1:]
                continue
            if self._buffer[0] == "]":
                self._closed, self._buffer = True, ""
                return
            try:
                value, end = self._json.raw_decode(self._buffer)
            except json.JSONDecodeError as exc:
                if _broken(exc, len(self._buffer)):
                    raise InvalidResponseError(f"malformed element in a streamed JSON array: {exc.msg}") from None
                return  # incomplete element: wait for more bytes
            self._buffer = self._buffer[end:]
            yield value

    @property
    def complete(self) -> bool:
        """True once the closing ``]`` arrived."""
        return self._closed

    @property
    def pending(self) -> bool:
        """True while part of an element is buffered: a body ending now was cut inside that element.

        A body that ends with nothing pending but no ``]`` ended between
        elements: whether the answer is whole is then the wire's call
        (Gemini: did the last chunk carry its ``finishReason``).
        """
        return not self._closed and bool(self._buffer.lstrip(" \t\r\n,"))


_INCOMPLETE_TAIL = 8
"""A parse error this close to the end of the buffer may be a value cut short (``fals``, ``1.``)."""


def _broken(exc: json.JSONDecodeError, buffered: int) -> bool:
    """True when ``exc`` says the element is invalid, not merely incomplete (more bytes could not fix it)."""
    if exc.msg.startswith("Invalid control character"):
        return True  # raw control characters never become valid inside a string
    return not exc.msg.startswith("Unterminated string") and exc.pos < buffered - _INCOMPLETE_TAIL


async def events(response: httpx.Response, fmt: str) -> AsyncIterator[tuple[str, str | None, bool]]:
    """``(data, event, last)`` from an SSE stream or a streamed JSON array, secrets scrubbed.

    ``last`` marks an SSE event flushed at the end of the body without its
    closing blank line. Each event is scrubbed whole, wherever the network cut
    its chunks. The JSON-array decoder can also fail on a chunk (a malformed
    element): its chunks are scrubbed first, so no frame of that traceback
    holds an echoed key. The SSE decoder never fails: its chunks reach no
    traceback that is shown (a read error is re-raised without its context).
    """
    if fmt == "json-array":
        decoder = JSONArrayDecoder()
        async for chunk in response.aiter_bytes():
            chunk = scrub_bytes(chunk)
            for value in decoder.feed(chunk):
                yield scrub(json.dumps(value)), None, False
        if decoder.pending:
            # A body cut between elements, after the finish, lost only its closing ']': the parser
            # decides whether the answer was complete; one cut inside an element is broken.
            raise StreamInterruptedError("stream cut inside an element of its JSON array")
        return
    sse = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for event, data in sse.feed(chunk):
            yield scrub(data), event, False
    for event, data in sse.end():
        yield scrub(data), event, True
