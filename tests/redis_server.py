"""A real Debian ``redis-server`` on a free loopback port, for the tests of shared router state.

``.ci/run`` installs ``redis-server`` when it is missing and sets
``EVALKIT_REQUIRE_REDIS=1``, so there a missing server fails the tests
instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process: :meth:`kill` it and :meth:`start` it again on the same port."""

    def __init__(self, folder: Path, port: int | None = None, *, durable: bool = False) -> None:
        self.folder = folder
        self.durable = durable
        self.port = port or _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed (Debian package redis-server; .ci/run installs it)"
            if os.environ.get("EVALKIT_REQUIRE_REDIS"):
                pytest.fail(message)
            pytest.skip(message)
        # Not durable: every start is an empty server. Durable: an append-only file synced on every
        # write, as a deployment that must keep its budgets across a crash runs it.
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *durability,
             "--dir", str(self.folder), "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash; its memory (all state) is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the server still accepts connections but answers nothing (a slow Redis)."""
        assert self.process is not None
        self.process.send_signal(19)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(18)


def start_redis_server(folder: Path, *, durable: bool = False) -> RedisServer:
    """A started :class:`RedisServer` keeping its files in ``folder``."""
    return RedisServer(folder, durable=durable).start()
