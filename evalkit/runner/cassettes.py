"""Record a run's HTTP traffic to a vcrpy cassette, and replay it with no network.

``evalkit run --record cassettes/NAME.yaml`` and ``--replay cassettes/NAME.yaml``
open a :func:`cassette` around the run, and the runner hands its
:meth:`~RecordingCassette.transport` explicitly to every provider it builds
(``get_provider(..., transport=)``, and every provider of a routing config).
Nothing is global: any provider records or replays when it is given a cassette's
transport, and only then. Each response carries a timing hook in its
``extensions`` (:data:`TIMING_EXTENSION`), which the provider calls with the
latency and time to first token it measured and whose answer it reports:

* **Recording** does not use vcrpy's own httpx patching, because vcrpy reads a
  whole response body before the client sees its first byte, which would turn
  every time to first token into the total latency. :class:`RecordingTransport`
  tees the body stream instead: chunks reach the client as they arrive and a
  copy is kept. Its hook stores the measured timing with the interaction; the
  file holds it as ``x-evalkit-latency-ms`` / ``x-evalkit-ttft-ms`` response
  headers. The file is written on exit in vcrpy's YAML layout (version 1), with
  secrets removed before anything is written (:func:`scrub_request`).
* **Replaying** is vcrpy (``record_mode="none"``), matching on method, path,
  query and body (never host or port: the emulator's port changes every run).
  :class:`ReplayTransport` forwards to the transport a provider uses anyway
  (aiohttp's), which vcrpy patches, so vcrpy answers; its hook returns the
  recorded timing, so a replay reports the original latencies, not its own
  microseconds. A request that is not in the cassette raises vcrpy's
  ``CannotOverwriteExistingCassetteException``; it is not an ``httpx`` error,
  so the runner records it as a failed cell of kind ``internal`` whose message
  names the exception.

One transport serves all the providers of a run, and each provider closes its
own client, which calls the transport's ``aclose``: that closes nothing, so one
provider closing never breaks another mid-run. The connections behind it (one
pool per event loop) are closed by whoever owns the transport, with
:meth:`CassetteTransport.aclose_pool`; the runner does that after closing its
providers.

Bodies are stored as text, never decompressed; a stream is stored as its whole
SSE text. A call that failed before its response headers arrived (connect
error, timeout) leaves no interaction, so its replay fails as "not in cassette".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx

from ..emulator import WireURLs
from ..providers import TIMING_EXTENSION
from ._cassette_scrub import (REDACTED, SECRET_RESPONSE_HEADERS, as_bytes, scrub_bytes, scrub_request,
                              scrub_text)

if TYPE_CHECKING:
    from ..emulator import Fleet

__all__ = [
    "LATENCY_HEADER", "MATCH_ON", "PLACEHOLDER_BASE_URL", "REDACTED", "TIMING_EXTENSION", "TTFT_HEADER",
    "CassetteTransport", "RecordingCassette", "RecordingTransport", "ReplayCassette", "ReplayEmulator",
    "ReplayTransport", "cassette", "recorded_timing", "replay_emulator", "same_body",
    "scrub_request", "vcr_config",
]

LATENCY_HEADER = "x-evalkit-latency-ms"
TTFT_HEADER = "x-evalkit-ttft-ms"
MATCH_ON = ("method", "path", "query", "body")
PLACEHOLDER_BASE_URL = "http://127.0.0.1:9"
"""Where replayed emulator targets point: the discard port, never contacted (vcrpy answers first)."""

# What a provider's client sends through when given no transport (HTTPProvider's own limits).
_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30.0)

Timing = tuple[float, float | None]
"""``(latency_ms, ttft_ms)``."""


# -- the transport both kinds of cassette share ------------------------------------------------


class CassetteTransport(httpx.AsyncBaseTransport):
    """A transport many providers can share: forwards to ``inner``, or to a pool of its own per event loop.

    Without ``inner`` it opens, on first use in each event loop, the transport an
    evalkit provider uses when given none (``httpx_aiohttp.AiohttpTransport``,
    the same limits), so traffic goes out (and vcrpy answers it) exactly as it
    would without a cassette. One pool per event loop, because an aiohttp
    session belongs to the loop that opened it and a cassette may outlive one
    ``asyncio.run``. An ``inner`` you pass stays yours to close.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._given = inner
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncBaseTransport] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()  # several event loops (threads) may share one transport

    def _inner(self) -> httpx.AsyncBaseTransport:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            from httpx_aiohttp import AiohttpTransport

            with self._lock:
                pool = self._pools.setdefault(loop, AiohttpTransport(limits=_LIMITS))
        return pool

    async def aclose(self) -> None:
        """What each client calls when its provider closes: nothing, since others still send through here."""

    async def aclose_pool(self) -> None:
        """Close the connections opened in the running event loop: the owner's job, after its providers closed.

        A provider that sends again afterwards gets a new pool, not a closed one.
        """
        with self._lock:
            pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()


# -- recording -----------------------------------------------------------------------------------


@dataclass
class _Interaction:
    request: Any  # vcr.request.Request, already scrubbed
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    responded: bool = False
    closed: bool = False
    timing: Timing | None = None


class RecordingCassette:
    """Collects interactions in memory; :meth:`save` writes them, scrubbed, as a vcrpy cassette."""

    replay = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._interactions: list[_Interaction] = []
        self._secrets: set[str] = set()
        self._lock = threading.Lock()  # several event loops (threads) may share one recording

    def transport(self, inner: httpx.AsyncBaseTransport | None = None) -> RecordingTransport:
        """What providers send through to be recorded: ``inner``, or a pool of the provider's default kind."""
        return RecordingTransport(self, inner)

    def timing(self, number: int, latency_ms: float, ttft_ms: float | None) -> Timing:
        """Store what the provider measured for interaction ``number``; it reports the same."""
        with self._lock:
            self._interactions[number].timing = (latency_ms, ttft_ms)
        return latency_ms, ttft_ms

    def begin(self, request: httpx.Request, body: bytes) -> int:
        """Register a request about to be sent; returns its interaction number."""
        from vcr.request import Request as VcrRequest

        with self._lock:
            scrubbed = scrub_request(VcrRequest(request.method, str(request.url), body, request.headers),
                                     self._secrets)
            self._interactions.append(_Interaction(scrubbed))
            return len(self._interactions) - 1

    def respond(self, number: int, response: httpx.Response) -> None:
        with self._lock:
            it = self._interactions[number]
            it.status, it.reason = response.status_code, _reason(response)
            it.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
            it.responded = True

    def chunk(self, number: int, data: bytes) -> None:
        self._interactions[number].body += data  # one stream per interaction: no race on this buffer

    def close(self, number: int) -> None:
        self._interactions[number].closed = True

    def save(self) -> int:
        """Write the cassette (atomically); returns the number of interactions written."""
        from vcr.serialize import serialize
        from vcr.serializers import yamlserializer

        with self._lock:
            done = [it for it in self._interactions if it.responded and it.closed]
            secrets = set(self._secrets)
        requests = [scrub_request(it.request, secrets) for it in done]  # keys seen after this request, too
        responses = [_response_dict(it, secrets) for it in done]
        text = serialize({"requests": requests, "responses": responses}, yamlserializer)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        return len(done)


def _reason(response: httpx.Response) -> str:
    phrase = response.extensions.get("reason_phrase")
    return phrase.decode("ascii", "replace") if isinstance(phrase, bytes) else response.reason_phrase


def _response_dict(it: _Interaction, secrets: set[str]) -> dict[str, Any]:
    """vcrpy's response layout: header values as lists, the body as text (bytes if not UTF-8)."""
    headers: dict[str, list[str]] = {}
    for name, value in it.headers:
        if name.lower() in SECRET_RESPONSE_HEADERS or name.lower() in (LATENCY_HEADER, TTFT_HEADER):
            continue
        headers.setdefault(name, []).append(scrub_text(value, secrets))
    if it.timing is not None:
        latency_ms, ttft_ms = it.timing
        headers[LATENCY_HEADER] = [repr(float(latency_ms))]  # repr round-trips a float exactly
        if ttft_ms is not None:
            headers[TTFT_HEADER] = [repr(float(ttft_ms))]
    return {"status": {"code": it.status, "message": it.reason}, "headers": headers,
            "body": {"string": scrub_bytes(bytes(it.body), secrets)}}


class RecordingTransport(CassetteTransport):
    """Forwards to the inner transport; the response the client sees streams as it arrives and is kept."""

    def __init__(self, recording: RecordingCassette, inner: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(inner)
        self._recording = recording

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()  # bodies are bytes already; aread() keeps the stream re-readable
        number = self._recording.begin(request, body)
        response = await self._inner().handle_async_request(request)
        self._recording.respond(number, response)
        # The hook knows its interaction: timing measured by the provider lands on the right one.
        hook = functools.partial(self._recording.timing, number)
        extensions = {**response.extensions, TIMING_EXTENSION: hook}
        return httpx.Response(response.status_code, headers=response.headers.raw, extensions=extensions,
                              stream=_TeeStream(response.stream, self._recording, number))


class _TeeStream(httpx.AsyncByteStream):
    def __init__(self, inner: Any, recording: RecordingCassette, number: int) -> None:
        self._inner, self._recording, self._number = inner, recording, number

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._recording.chunk(self._number, chunk)
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            # Closed early or broken mid-stream: what arrived is what the client saw, so keep it.
            self._recording.close(self._number)


# -- replay --------------------------------------------------------------------------------------


class ReplayCassette:
    """A replay: vcrpy answers the requests, the transport's hook reports the recorded timing.

    :func:`cassette` runs vcrpy for you; with pytest-recording (or a plain
    ``vcr.use_cassette``) doing that part, pass ``ReplayCassette(path)`` to
    :func:`~evalkit.runner.run_suite` (or its :meth:`transport` to providers)
    so the recorded timings are reported.
    """

    replay = True

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)

    def transport(self, inner: httpx.AsyncBaseTransport | None = None) -> ReplayTransport:
        """What providers send through to be answered by vcrpy: ``inner``, or a pool of their default kind."""
        return ReplayTransport(inner)


class ReplayTransport(CassetteTransport):
    """Forwards to a transport vcrpy patches; a recorded response's hook reports the recorded timing."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner().handle_async_request(request)
        recorded = recorded_timing(response.headers)
        if recorded is not None:  # a cassette without timing: the provider keeps what it measured
            response.extensions[TIMING_EXTENSION] = functools.partial(_recorded, recorded)
        return response


def recorded_timing(headers: Mapping[str, str]) -> Timing | None:
    """The ``(latency_ms, ttft_ms)`` a recorded response carries, or None when it has none."""
    latency = headers.get(LATENCY_HEADER)
    if latency is None:
        return None
    ttft = headers.get(TTFT_HEADER)
    return float(latency), None if ttft is None else float(ttft)


def _recorded(recorded: Timing, latency_ms: float, ttft_ms: float | None) -> Timing:
    """A replayed response's timing hook (bound to what was recorded): the measured values are ignored."""
    return recorded


def vcr_config() -> dict[str, Any]:
    """``use_cassette`` settings of a replay (also what pytest-recording's ``vcr_config`` fixture returns)."""
    return {"record_mode": "none", "match_on": list(MATCH_ON), "allow_playback_repeats": False,
            "before_record_request": scrub_request, "decode_compressed_response": False}


@contextlib.contextmanager
def cassette(path: str | Path, *, record: bool) -> Iterator[RecordingCassette | ReplayCassette]:
    """Record to ``path`` (or replay from it) the calls of each provider given the yielded cassette's transport.

    Pass the cassette to :func:`~evalkit.runner.run_suite` (``cassette=``), or
    ``cassette.transport()`` to providers you build (``get_provider(...,
    transport=)``). A recording is written when the block exits without an
    exception, so a failed run never overwrites a good cassette with a partial
    one. A replay runs vcrpy for the whole block.
    """
    if record:
        recording = RecordingCassette(path)
        yield recording
        recording.save()
        return
    if not Path(path).is_file():
        from ..errors import ConfigError

        raise ConfigError("cassette not found", file=str(path), field="--replay")
    import vcr

    from ._cassette_yaml import CheckedCassetteYAML

    player = vcr.VCR()
    player.register_matcher("body", same_body)
    player.register_serializer("evalkit-yaml", CheckedCassetteYAML(str(path)))
    with player.use_cassette(str(path), serializer="evalkit-yaml", **vcr_config()):
        yield ReplayCassette(path)


def same_body(live: Any, recorded: Any) -> None:
    """vcrpy's ``body`` matcher without its diff: both bodies are exact bytes written by the same code.

    vcrpy compares every live request with every recorded one and builds a
    unified diff for each mismatch; on a 300-interaction cassette that blocked
    the event loop for seconds, long enough for a code-exec grader to time out.
    """
    a, b = as_bytes(live.body or b""), as_bytes(recorded.body or b"")
    if a != b:
        raise AssertionError(f"the bodies differ ({len(a)} bytes in this request, {len(b)} recorded)")


# -- emulator targets without an emulator ----------------------------------------------------------


@dataclass(frozen=True)
class ReplayEmulator(WireURLs):
    """Stands in for :class:`~evalkit.emulator.Emulator` in a replay: the fleet, but no server."""

    fleet: Fleet
    seed: int = 0
    time_scale: float = 0.02
    base_url: str = PLACEHOLDER_BASE_URL
    running: bool = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def replay_emulator(fleet: Fleet | str | Path | None = None, seed: int = 0, time_scale: float = 0.02
                    ) -> ReplayEmulator:
    """What ``emulator:MODEL`` targets resolve against in a replay (``fleet``: a Fleet, a path, or the default)."""
    from ..emulator.fleet import Fleet, load_fleet

    return ReplayEmulator(fleet if isinstance(fleet, Fleet) else load_fleet(fleet), int(seed), float(time_scale))
