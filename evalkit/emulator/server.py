"""Run the emulator: in-process on a background thread (tests, notebooks) or in the foreground (CLI).

::

    with Emulator(seed=0, time_scale=0.0) as emu:
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="test")
        emu.script("sim-large", ["429", "ok"])
        ...
        emu.stats()["models"]["sim-large"]["by_status"]

Inside an event loop (async code, a notebook), ``async with Emulator(...) as emu`` (or
``await emu.astart()`` / ``await emu.astop()``) starts and stops it without holding up the loop.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import uvicorn

from ..errors import ConfigError
from ._app import build_app
from ._specs import Fleet
from ._state import EmulatorState
from ._transport import SheddingSocket, protocol_class
from ._urls import WireURLs
from .answers import AnswerBook, Registration, bundled_dataset_files
from .faults import parse_steps
from .fleet import load_fleet

__all__ = ["Emulator"]

_HOST = "127.0.0.1"
_START_TIMEOUT_S = 10.0


class _ListeningServer(uvicorn.Server):
    """A uvicorn server that sets ``listening`` once it accepts connections (instead of being polled for it)."""

    def __init__(self, config: uvicorn.Config, listening: threading.Event) -> None:
        super().__init__(config)
        self.listening = listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()


class Emulator(WireURLs):
    """An OpenAI/Anthropic/Gemini-compatible HTTP server on 127.0.0.1 with simulated models.

    It also imitates the self-hosted OpenAI-compatible servers under a path
    prefix each: ``base_url_for("llamacpp")`` (``vllm``, ``ollama``,
    ``fastapi``) is ``.../llamacpp/v1``. Every route refuses what the real
    server refuses, with its status and error body.

    ``fleet`` is a :class:`Fleet`, a fleet file path, or None for the built-in
    fleet. ``datasets`` are JSONL files whose prompts get gradable answers
    (None: the bundled suites, ``()``: none). ``time_scale`` multiplies every
    simulated delay (0: answer at once). ``stall_s`` overrides how long the
    ``timeout``/``stall`` faults hold a response (never scaled). Port 0 picks a
    free port. ``read_timeout_s`` bounds how long a client may take to send
    one request (headers and body); a slower one is disconnected.

    :meth:`register` adds a suite of your own (``Dataset.items``) to the prompts
    answered gradably, while the server runs. A model's ``rate_limits`` with
    ``enforce: true`` are enforced as token buckets whose minute lasts
    ``60 * time_scale`` seconds (60 at time scale 0); see ``FLEET.md``.
    """

    def __init__(
        self,
        fleet: Fleet | str | Path | None = None,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        port: int = 0,
        datasets: Iterable[str | Path] | None = None,
        stall_s: float | None = None,
        recent_requests: int = 100,
        read_timeout_s: float = 30.0,
    ) -> None:
        _check_seconds(time_scale, "time_scale", allow_zero=True)
        if stall_s is not None:
            _check_seconds(stall_s, "stall_s")
        _check_seconds(read_timeout_s, "read_timeout_s")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"must be a whole number, got {seed!r}", field="seed")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"must be a port number (0 picks a free one), got {port!r}", field="port")
        self.read_timeout_s = float(read_timeout_s)
        self.fleet: Fleet = fleet if isinstance(fleet, Fleet) else load_fleet(fleet)
        self.seed, self.time_scale = int(seed), float(time_scale)
        self.book = AnswerBook.from_files(bundled_dataset_files() if datasets is None else datasets)
        self._state = EmulatorState(
            self.fleet,
            seed=self.seed,
            time_scale=self.time_scale,
            book=self.book,
            stall_s=stall_s,
            recent=recent_requests,
        )
        self._requested_port = port
        self.port: int | None = None
        self._server: _ListeningServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self._settled = threading.Event()
        """Set by the server thread once it listens, or once it has given up (``_error`` says why)."""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving on a background thread; returns once the port accepts connections.

        It waits on the server thread's signal, not in a poll; in async code, :meth:`astart`
        waits without blocking the event loop.
        """
        self._launch()
        self._check_started(self._settled.wait(_START_TIMEOUT_S))
        return self

    async def astart(self) -> Emulator:
        """:meth:`start` for code running in an event loop: the loop runs other tasks while the server starts."""
        self._launch()
        settled = await asyncio.to_thread(self._settled.wait, _START_TIMEOUT_S)
        if not self._listening(settled):
            await asyncio.to_thread(self._check_started, settled)  # stop() joins the thread: not on the loop
        return self

    def _listening(self, settled: bool) -> bool:
        return settled and self._server is not None and self._server.started

    def _check_started(self, settled: bool) -> None:
        """Stop and raise unless the server thread said it listens (``settled``: it listens, or gave up)."""
        if not self._listening(settled):
            error = self._error
            self.stop()
            raise RuntimeError(f"the emulator did not start: {error!r}")

    def _launch(self) -> None:
        """Bind the port and start the server thread (which sets ``_settled``)."""
        if self._thread is not None:
            raise RuntimeError("this emulator is already started")
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every response waits ~40 ms on Nagle + delayed ACK.
        sock = SheddingSocket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._sock, self.port = sock, sock.getsockname()[1]
        self._settled.clear()
        self._error = None
        self._server = _ListeningServer(self._config(), self._settled)
        self._thread = threading.Thread(target=self._run, name=f"evalkit-emulator-{self.port}", daemon=True)
        self._thread.start()

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            build_app(self._state),
            http=protocol_class(self._state.registry, self.read_timeout_s),
            loop="asyncio",
            lifespan="off",
            ws="none",
            log_config=None,  # never reconfigure the host program's logging
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # scope["client"] must be the real peer: it keys the connection registry
            server_header=False,
            timeout_graceful_shutdown=3,
            # Vendors keep idle connections for minutes; uvicorn's 5 s default makes clients that pool
            # connections for longer (evalkit keeps them 30 s) race a server-side close on reuse.
            timeout_keep_alive=120,
            backlog=2048,
        )

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
        finally:
            self._settled.set()  # a thread that ends before it listens wakes start() at once

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        assert self._server is not None and self._sock is not None
        await self._server.serve(sockets=[self._sock])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: wake stalled responses, close connections, join the thread, free the port."""
        if self._thread is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._state.interrupts.stop_all)
            except RuntimeError:  # the loop closed between the check and the call
                pass
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._thread = self._server = self._loop = self._sock = None

    async def astop(self) -> None:
        """:meth:`stop` for code running in an event loop: the wait for the server thread leaves the loop free."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self.port is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{_HOST}:{self.port}"

    # -- control ---------------------------------------------------------------------------------

    def script(self, model: str, faults: Iterable[Any], *, append: bool = False) -> None:
        """Queue faults for the next calls to ``model``: ``["429", {"kind": "500"}, "ok"]``.

        Each call to the model consumes one step; ``"ok"`` answers normally.
        Steps may be mappings with ``retry_after``, ``stall_s``, ``ttft_s``,
        ``after_tokens``, ``for_s`` (an outage window: the step answers every
        call for that long from the first one, then is consumed), ``prefill``
        (``accept``/``reject``) and ``times``; see ``FLEET.md``, "Faults".
        ``ValueError`` naming the field of a bad value.
        """
        self.fleet.model(model)  # KeyError naming the fleet's models
        self._state.scripts.program(model, parse_steps(faults), append=append)

    def register(self, items: Iterable[Any]) -> Registration:
        """Answer the prompts of ``items`` (a loaded suite's ``Dataset.items``) gradably from now on.

        Each item's last user message gets the right answer, in the form its grader
        parses, with the model's skill for the item's ``task_type`` (the model's
        ``default`` skill for a task type it does not list), and a plausible wrong
        answer otherwise: exactly as the bundled suites' items are answered. Safe to
        call while the server runs, from any thread. Returns the counts
        ``Registration(registered, already_known, shared_prompt)``: items newly
        answered (or whose prompt the emulator answered for a different item
        before), items it already answered so, and items whose prompt an earlier
        item of the batch took. Items without a user message are skipped.
        """
        return self.book.register(items)

    def stats(self) -> dict[str, Any]:
        """What ``GET /_emulator/stats`` returns: per-model counters, recent requests, pending scripts."""
        return {**self._state.stats.snapshot(), "scripts": self._state.scripts.pending()}

    def reset(self) -> None:
        """Clear stats, runtime scripts and the simulated prompt cache; fill every rate-limit bucket again."""
        self._state.reset()


def _check_seconds(value: object, field: str, *, allow_zero: bool = False) -> None:
    """A finite number > 0 (>= 0 with ``allow_zero``) of seconds or a factor; never NaN or infinity."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"must be a finite number {bound}, got {value!r}", field=field)
