"""The emulator survives clients that misbehave: slow or partial requests, hostile bodies, disconnects, fd exhaustion.

Before: a connection that sent half its headers was held forever; a body of 50,000 nested ``[`` was a 500
(RecursionError); a client leaving mid-body logged a ``ClientDisconnect`` traceback; under RLIMIT_NOFILE
asyncio logged thousands of ``accept()`` tracebacks and the emulator stopped answering even after the
descriptors were free.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit.emulator import Emulator
from evalkit.errors import ConfigError

from .helpers import get, post

REPO = Path(__file__).parents[2]
DEEP = b"[" * 50_000 + b"]" * 50_000
CHAT = {"model": "sim-large", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def strict() -> Emulator:
    """An emulator that gives clients half a second to send a whole request."""
    with Emulator(seed=0, time_scale=0.0, datasets=(), read_timeout_s=0.5) as emu:
        yield emu


def _closed_after(sock: socket.socket, limit_s: float = 10.0) -> float:
    """Seconds until the server closes ``sock`` (fails if it is still open after ``limit_s``)."""
    sock.settimeout(limit_s)
    start = time.monotonic()
    try:
        data = sock.recv(65536)
    except (TimeoutError, socket.timeout):
        pytest.fail(f"the connection was still held after {limit_s} s")
    except ConnectionResetError:
        data = b""
    assert data == b"", data[:200]
    return time.monotonic() - start


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (headers and body may come in separate reads)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects and says nothing
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthoriz",  # half the headers
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b"Content-Length: 500\r\n\r\n{\"model\"",  # fewer body bytes than announced
    ],
)
def test_a_request_that_never_finishes_arriving_is_cut_off(strict: Emulator, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        if sent:
            sock.sendall(sent)
        assert 0.3 < _closed_after(sock) < 5.0


def test_a_kept_alive_connection_that_starts_a_second_request_and_stalls_is_cut_off(strict: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(0.8)  # idle keep-alive longer than the read timeout is fine: no request has started
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHo")
        assert 0.3 < _closed_after(sock) < 5.0


def test_slow_answers_are_not_cut_off() -> None:
    # The read timeout bounds how long a *request* takes to arrive, never how long the answer takes.
    with Emulator(seed=0, time_scale=1.0, datasets=(), read_timeout_s=0.2) as emu:
        start = time.monotonic()
        reply = post(f"{emu.openai_base_url}/chat/completions", json={**CHAT, "max_tokens": 20},
                     headers={"authorization": "Bearer k"})
        assert reply.status_code == 200 and time.monotonic() - start > 0.2


@pytest.mark.parametrize(
    ("path", "headers", "check"),
    [
        ("/v1/chat/completions", {"authorization": "Bearer k"},
         lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1/messages", {"x-api-key": "k", "anthropic-version": "2023-06-01"},
         lambda b: b["type"] == "error" and b["error"]["type"] == "invalid_request_error"),
        ("/v1beta/models/sim-large:generateContent", {"x-goog-api-key": "k"},
         lambda b: b["error"]["status"] == "INVALID_ARGUMENT"),
        ("/v1/messages/count_tokens", {"x-api-key": "k", "anthropic-version": "2023-06-01"},
         lambda b: b["error"]["type"] == "invalid_request_error"),
    ],
)
@pytest.mark.parametrize(
    ("body", "problem"),
    [(b'{"model": "sim-large", "messages": ' + DEEP + b"}", "nested deeper than 100 levels"),
     (b'{"model": "sim-large", "max_tokens": ' + b"1" * 5000 + b"}", "an integer of 5000 digits")],
)
def test_hostile_json_bodies_are_400_in_the_vendors_shape(strict: Emulator, path: str, headers: dict[str, str],
                                                          check, body: bytes, problem: str) -> None:
    reply = post(strict.base_url + path, content=body, headers={**headers, "content-type": "application/json"})
    assert reply.status_code == 400, reply.text[:300]
    assert check(reply.json()) and problem in reply.text


def test_a_body_past_the_size_limit_is_400(strict: Emulator) -> None:
    from evalkit.emulator import _app

    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                     b"Content-Length: %d\r\n\r\n" % (_app.MAX_BODY_BYTES + 1))
        sock.settimeout(5)
        reply = b""
        while b"Request body too large" not in reply:  # headers and body may arrive in separate reads
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400") and b"Request body too large" in reply


def test_client_disconnects_are_not_logged_as_errors(strict: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    body = json.dumps({**CHAT, "stream": True}).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n")
    with Emulator(seed=0, time_scale=1.0, datasets=(), read_timeout_s=0.5) as slow:
        for port in (strict.port, slow.port):
            # leaves in the middle of its body: the app is reading it when the connection closes
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(head % (len(body) + 100) + body)
                time.sleep(0.2)
            # leaves in the middle of a (slow) stream, once with a FIN and once with an RST
            for linger in (False, True):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(head % len(body) + body)
                sock.settimeout(5)
                assert sock.recv(65536)
                if linger:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
        time.sleep(1.0)  # the read timeout fires for the half-sent body; streams notice the closed socket
        assert get(f"{slow.openai_base_url}/models", headers={"authorization": "Bearer k"}).status_code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [f"{r.name}: {r.getMessage()}" for r in errors]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"time_scale": float("nan")}, "time_scale"), ({"time_scale": float("inf")}, "time_scale"),
     ({"stall_s": float("inf")}, "stall_s"), ({"stall_s": 0}, "stall_s"), ({"read_timeout_s": 0}, "read_timeout_s"),
     ({"port": True}, "port"), ({"seed": 1.5}, "seed")],
)
def test_non_finite_settings_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Emulator(datasets=(), **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def _limited_fds() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_out_of_file_descriptors_it_sheds_logs_once_and_recovers(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "evalkit.cli", "emulate", "--time-scale", "0", "--no-datasets"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                          preexec_fn=_limited_fds) as proc:
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, "no base URL within 30 s"
            base_url = proc.stdout.readline().strip()
            port = int(base_url.rsplit(":", 1)[1])
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(150)]  # 64 fds: exhausted
            time.sleep(2.0)
            for client in clients:
                client.close()
            deadline = time.monotonic() + 10
            while True:  # serving again once descriptors are free
                try:
                    reply = get(f"{base_url}/v1/models", headers={"authorization": "Bearer k"}, timeout=2)
                    break
                except Exception:  # noqa: BLE001 - not yet: retry until the deadline
                    assert time.monotonic() < deadline, "not serving 10 s after the descriptors were freed"
            assert reply.status_code == 200
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
    lines = err.splitlines()
    assert "Traceback" not in err, err[:3000]
    assert [line for line in lines if "EMFILE" in line][:1], err[:3000]
    assert len(lines) <= 4, err[:3000]  # the banner, then one line when it starts and one when it ends
