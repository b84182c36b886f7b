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
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ConnectionRegistry", "protocol_class"]


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


def protocol_class(registry: ConnectionRegistry) -> type[H11Protocol]:
    """A uvicorn h11 protocol class that keeps ``registry`` up to date (pass as ``Config(http=...)``)."""

    class RegisteringH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Headers and body go out as separate writes; never let Nagle hold the second one.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            registry.add(self.client, transport)

        def connection_lost(self, exc: Exception | None) -> None:
            registry.discard(self.client, self.transport)
            super().connection_lost(exc)

    return RegisteringH11Protocol
