"""Reaching the TCP connection from the app: resets and mid-body closes.

ASGI gives an app no handle on its connection, and uvicorn puts none in the
scope. So the emulator runs uvicorn with a small subclass of its h11 protocol
that records each connection's transport in a registry keyed by the peer
address, which *is* in the scope (``scope["client"]``). The app then looks up
its own connection to

* **reset** it: ``SO_LINGER`` 0 then abort, so the kernel sends an RST and the
  client sees "connection reset", not an HTTP response;
* **close** it after part of a body: the client sees the body end early (no
  final chunk), as when a proxy or the vendor drops a stream.

The protocol also bounds how long a client may take to *send* a request:
uvicorn times out idle keep-alive connections, but a connection that sends
nothing, or half its headers, or fewer body bytes than it announced, would be
held forever. From its first byte (or from accept) a request must arrive
whole within ``read_timeout_s``; otherwise the connection is closed.
Answering is not bounded: stall faults hold responses on purpose.

:class:`SheddingSocket` is the listening socket. When the process runs out of
file descriptors, ``accept()`` fails with ``EMFILE``; asyncio (3.11) then logs
a traceback for every retry while pending clients hang (150 clients against
64 descriptors: about 2,000 tracebacks in 13 s, and no answer within 10 s of
the descriptors being free again). Instead the socket sheds the pending
connection (a spare descriptor is closed, the connection accepted and closed
at once, the spare reopened), logs one line when the condition starts and one
when it ends, and accepts normally as soon as descriptors are free.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ConnectionRegistry", "SheddingSocket", "protocol_class"]

log = logging.getLogger("evalkit.emulator")

_OUT_OF_RESOURCES = {errno.EMFILE: "EMFILE", errno.ENFILE: "ENFILE", errno.ENOBUFS: "ENOBUFS",
                     errno.ENOMEM: "ENOMEM"}
_REQUEST_RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)
LOG_EVERY_S = 60.0
"""Out-of-descriptor episodes are announced at most this often (each announced one also logs its end)."""


class ConnectionRegistry:
    """Open connections by peer address; used only from the server's event loop."""

    def __init__(self) -> None:
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}

    def add(self, peer: tuple[str, int] | None, transport: asyncio.Transport) -> None:
        """Remember the transport of a new connection from ``peer``."""
        if peer is not None:
            self._transports[peer] = transport

    def discard(self, peer: tuple[str, int] | None, transport: asyncio.Transport | None) -> None:
        """Forget a closed connection (only if ``peer`` still maps to this transport)."""
        if peer is not None and self._transports.get(peer) is transport:
            del self._transports[peer]

    def _find(self, scope: dict[str, Any]) -> asyncio.Transport | None:
        client = scope.get("client")
        return self._transports.get(tuple(client)) if client else None  # type: ignore[arg-type]

    def reset(self, scope: dict[str, Any]) -> bool:
        """Abort the connection of ``scope`` with a TCP RST; False if it is already gone."""
        transport = self._find(scope)
        if transport is None or transport.is_closing():
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns close() into an RST: the client gets ECONNRESET, not a clean EOF.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        return True

    def close(self, scope: dict[str, Any]) -> bool:
        """Close the connection of ``scope`` after what was written so far is flushed."""
        transport = self._find(scope)
        if transport is None or transport.is_closing():
            return False
        transport.close()
        return True

    def __len__(self) -> int:
        return len(self._transports)


def protocol_class(registry: ConnectionRegistry, read_timeout_s: float = 30.0) -> type[H11Protocol]:
    """A uvicorn h11 protocol class that keeps ``registry`` up to date (pass as ``Config(http=...)``).

    A request that has not fully arrived ``read_timeout_s`` after its first
    byte (or after the connection was accepted) closes its connection.
    """

    class RegisteringH11Protocol(H11Protocol):
        _read_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Headers and body go out as separate writes; never let Nagle hold the second one.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            registry.add(self.client, transport)
            self._arm_read_deadline()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state in _REQUEST_RECEIVED:
                self._disarm_read_deadline()
            else:  # headers or body still coming: the clock runs from the request's first byte
                self._arm_read_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_read_deadline()
            registry.discard(self.client, self.transport)
            super().connection_lost(exc)

        def _arm_read_deadline(self) -> None:
            if self._read_deadline is None:
                self._read_deadline = self.loop.call_later(read_timeout_s, self._read_timed_out)

        def _disarm_read_deadline(self) -> None:
            if self._read_deadline is not None:
                self._read_deadline.cancel()
                self._read_deadline = None

        def _read_timed_out(self) -> None:
            self._read_deadline = None
            if self.conn.their_state not in _REQUEST_RECEIVED and not self.transport.is_closing():
                log.debug("closed a connection from %s: no complete request within %g s", self.client,
                          read_timeout_s)
                self.transport.close()  # the app (if it was reading a body) sees a disconnect

    return RegisteringH11Protocol


class SheddingSocket(socket.socket):
    """A listening TCP socket whose ``accept()`` sheds connections while the process is out of descriptors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._spare: int | None = _open_spare()
        self._shortage: str | None = None  # the condition in progress, until an accept succeeds
        self._logged = False  # whether this episode was announced (at most one per LOG_EVERY_S)
        self._last_log = -LOG_EVERY_S
        self._shed = 0
        self._since = 0.0

    def accept(self) -> tuple[socket.socket, Any]:  # type: ignore[override]
        try:
            conn, addr = super().accept()
        except OSError as exc:
            condition = _OUT_OF_RESOURCES.get(exc.errno or 0)
            if condition is None:
                raise
            self._shed_one(condition, exc)
            # asyncio reads this as "nothing more to accept now"; the next pending client wakes it again.
            raise BlockingIOError(errno.EAGAIN, "connection shed") from None
        if self._shortage is not None:
            if self._logged:
                log.warning("evalkit emulator: accepting connections again after %s; shed %d connection(s) "
                            "in %.1f s", self._shortage, self._shed, time.monotonic() - self._since)
            self._shortage, self._shed = None, 0
            if self._spare is None:
                self._spare = _open_spare()
        return conn, addr

    def _shed_one(self, condition: str, exc: OSError) -> None:
        if self._shortage is None:
            self._shortage, self._since = condition, time.monotonic()
            # A limit hovered around starts and ends many episodes: announce one per LOG_EVERY_S.
            self._logged = self._since - self._last_log >= LOG_EVERY_S
            if self._logged:
                self._last_log = self._since
                log.warning("evalkit emulator: cannot accept connections (%s: %s); shedding new connections "
                            "until descriptors are free", condition, exc.strerror)
        if self._spare is not None:
            os.close(self._spare)  # one free descriptor: take the pending connection, and drop it at once
            self._spare = None
        try:
            conn, _ = super().accept()
        except OSError:
            # Nothing freed (another thread took the descriptor, or the shortage is not of descriptors):
            # the loop retries at once, still serving open connections; the spare is reopened on recovery.
            return
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # a reset: the client fails at once instead of waiting in the backlog
        self._shed += 1
        self._spare = _open_spare()

    def close(self) -> None:
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
        super().close()


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
