"""A loopback HTTP/1.1 server that records each request exactly as it arrived on the socket.

Mocked transports (``httpx.MockTransport``) never reach the code that puts a
request on the wire: aiohttp's default ``Content-Type: application/octet-stream``
for a bytes body, httpx's ``Connection`` and ``Accept`` defaults, header
duplication between client defaults and per-request headers. This server sits
below all of that. It reads the raw bytes a client wrote (request line, header
lines in their order and case, duplicates kept, the body de-framed from
``Content-Length`` or chunked encoding) and answers with a response the test
gives it, so the client's parsing runs on a real socket too.

Usage::

    with WireCapture() as server:
        server.respond(CannedResponse(200, [("content-type", "application/json")], b"{}"))
        ... send to server.url ...
        request = server.take()          # the one request received since respond()

Requests are served one at a time in arrival order; a test that sends one call
and then calls :meth:`WireCapture.take` gets that call's request.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Sequence
from urllib.parse import parse_qsl, urlsplit

__all__ = ["CannedResponse", "CapturedRequest", "WireCapture"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
_IO_TIMEOUT_S = 10.0
# Framing headers the server writes itself from the body it sends.
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass(frozen=True)
class CapturedRequest:
    """One request as the client wrote it."""

    method: str
    target: str
    """The request-target as sent: path plus ``?query`` (never a fragment)."""
    version: str
    headers: tuple[tuple[str, str], ...]
    """``(name, value)`` in arrival order, names in the case sent, duplicates kept."""
    body: bytes
    """The body after de-framing (``Content-Length`` bytes, or the chunks joined)."""
    chunked: bool = False

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        """The query parameters in order (duplicates kept)."""
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def values(self, name: str) -> list[str]:
        """Every value sent for header ``name`` (case-insensitive), in order."""
        wanted = name.lower()
        return [v for n, v in self.headers if n.lower() == wanted]

    def header(self, name: str) -> str | None:
        """The value of header ``name``; ``None`` if absent. Sent twice is an ``AssertionError``."""
        found = self.values(name)
        assert len(found) <= 1, f"header {name!r} sent {len(found)} times: {found}"
        return found[0] if found else None


@dataclass(frozen=True)
class CannedResponse:
    """What the server answers: status, headers (framing headers are replaced) and body bytes."""

    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    reason: str = "Recorded"

    def encode(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{n}: {v}" for n, v in self.headers if n.lower() not in _HOP_BY_HOP]
        lines.append(f"content-length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class _State:
    response: CannedResponse | None = None
    received: list[CapturedRequest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class WireCapture:
    """An HTTP/1.1 server on 127.0.0.1 (a free port), one thread per connection, keep-alive honoured."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._state = _State()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="wire-capture", daemon=True)

    # -- the test's side -----------------------------------------------------------------

    def respond(self, response: CannedResponse) -> None:
        """Answer every following request with ``response``; forget what was received before."""
        with self._lock:
            self._state = _State(response=response)

    def take(self) -> CapturedRequest:
        """The one request received since :meth:`respond`; anything else is an ``AssertionError``."""
        with self._lock:
            state = self._state
            self._state = _State(response=state.response)
        assert not state.errors, f"malformed request(s) on the wire: {state.errors}"
        assert len(state.received) == 1, f"expected one request, got {len(state.received)}"
        return state.received[0]

    def __enter__(self) -> WireCapture:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, end connections a client left open, and wait for every thread."""
        self._closed.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
            except OSError:
                pass  # already closed by its thread
        for thread in self._threads:
            thread.join(timeout=5)

    # -- the server's side ---------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(_IO_TIMEOUT_S)
        reader = _Reader(conn)
        with conn:
            while not self._closed.is_set():
                try:
                    request = _read_request(reader)
                except EOFError:
                    return  # the client closed its connection between requests
                except (OSError, ValueError) as exc:
                    with self._lock:
                        self._state.errors.append(f"{type(exc).__name__}: {exc}")
                    return
                with self._lock:
                    self._state.received.append(request)
                    response = self._state.response
                if response is None:
                    response = CannedResponse(599, [("content-type", "text/plain")], b"no response set")
                conn.sendall(response.encode())
                if any(v.lower() == "close" for v in request.values("connection")):
                    return


class _Reader:
    """Buffered reads from a socket: lines of the head, then exact byte counts."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._buffer = b""

    def _fill(self) -> None:
        chunk = self._conn.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self._buffer += chunk

    def until(self, marker: bytes, limit: int) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            if len(self._buffer) > limit:
                raise ValueError(f"no {marker!r} within {limit} bytes")
            self._fill()
        data, self._buffer = self._buffer[:end], self._buffer[end + len(marker):]
        return data

    def exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            try:
                self._fill()
            except EOFError:
                raise ValueError(f"body cut short: {len(self._buffer)} of {size} bytes") from None
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _read_request(reader: _Reader) -> CapturedRequest:
    head = reader.until(b"\r\n\r\n", _MAX_HEAD).decode("latin-1")
    request_line, *header_lines = head.split("\r\n")
    method, target, version = request_line.split(" ")
    headers = []
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"malformed header line {line!r}")
        headers.append((name, value.strip(" \t")))
    lengths = [v for n, v in headers if n.lower() == "content-length"]
    chunked = any("chunked" in v.lower() for n, v in headers if n.lower() == "transfer-encoding")
    if chunked:
        body = _read_chunks(reader)
    elif lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdigit() or int(lengths[0]) > _MAX_BODY:
            raise ValueError(f"bad content-length {lengths}")
        body = reader.exactly(int(lengths[0]))
    else:
        body = b""
    return CapturedRequest(method, target, version, tuple(headers), body, chunked)


def _read_chunks(reader: _Reader) -> bytes:
    parts = []
    while True:
        size = int(reader.until(b"\r\n", 1024).split(b";")[0], 16)
        if size == 0:
            reader.until(b"\r\n", _MAX_HEAD)  # no trailers expected: the empty line ends the body
            return b"".join(parts)
        parts.append(reader.exactly(size))
        if reader.exactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
