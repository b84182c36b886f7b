"""Test-wide rules: no network beyond loopback, ever."""

from __future__ import annotations

import ipaddress
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # unix socket path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(real):
    def connect(self, address):
        if not _is_local(address):
            raise OSError(f"network access blocked in tests: {address!r}")
        return real(self, address)

    return connect


@pytest.fixture(autouse=True, scope="session")
def _block_network():
    """Every test runs with sockets limited to 127.0.0.0/8, ::1 and unix sockets."""
    socket.socket.connect = _guarded(_real_connect)
    socket.socket.connect_ex = _guarded(_real_connect_ex)
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server with Gemma 3 270M (``tests/llamacpp.py``), one per session."""
    from tests.llamacpp import start_llamacpp_server

    with start_llamacpp_server(tmp_path_factory.mktemp("llamacpp")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """Debian's ``redis-server`` on a free loopback port (``tests/redis_server.py``), one per session.

    Tests share it; each uses its own key prefix (``redis_prefix``), so none sees another's state.
    """
    from tests.redis_server import start_redis_server

    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture
def redis_prefix(request) -> str:
    """A key prefix no other test uses."""
    import uuid

    return f"t{uuid.uuid4().hex[:10]}"
