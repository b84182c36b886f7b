"""Record a run's HTTP traffic to a vcrpy cassette, and replay it with no network.

``evalkit run --record cassettes/NAME.yaml`` and ``--replay cassettes/NAME.yaml``
wrap the whole run in :func:`cassette`, which sets the ``CASSETTE`` context
variable of :mod:`evalkit.providers._http`:

* **Recording** does not use vcrpy's own httpx patching, because vcrpy reads a
  whole response body before the client sees its first byte, which would turn
  every time to first token into the total latency. Instead every client gets
  :class:`RecordingTransport`, which tees the body stream: chunks reach the
  client as they arrive and a copy is kept. When the provider has measured the
  call it reports its latency and TTFT through ``timing()``; the cassette stores
  them as ``x-evalkit-latency-ms`` / ``x-evalkit-ttft-ms`` response headers.
  The file is written on exit in vcrpy's YAML layout (version 1), with secrets
  removed before anything is written (:func:`scrub_request`).
* **Replaying** is plain vcrpy (``record_mode="none"``), matching on method,
  path, query and body (never host or port: the emulator's port changes every
  run). ``timing()`` returns the recorded values, so a replay reports the
  original latencies, not its own microseconds. A request that is not in the
  cassette raises vcrpy's ``CannotOverwriteExistingCassetteException`` inside
  httpx; it is not an ``httpx`` error, so the runner records it as a failed
  cell of kind ``internal`` whose message names the exception.

Bodies are stored as text, never decompressed; a stream is stored as its whole
SSE text. A call that failed before its response headers arrived (connect
error, timeout) leaves no interaction, so its replay fails as "not in cassette".
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx

from ..emulator._urls import WireURLs
from ..providers._http import CASSETTE

__all__ = [
    "LATENCY_HEADER", "MATCH_ON", "PLACEHOLDER_BASE_URL", "TTFT_HEADER", "RecordingCassette",
    "RecordingTransport", "ReplayCassette", "ReplayEmulator", "cassette", "replay_emulator", "replay_timing",
    "replaying", "same_body", "scrub_request", "vcr_config",
]

LATENCY_HEADER = "x-evalkit-latency-ms"
TTFT_HEADER = "x-evalkit-ttft-ms"
INTERACTION_HEADER = "x-evalkit-interaction"
MATCH_ON = ("method", "path", "query", "body")
PLACEHOLDER_BASE_URL = "http://127.0.0.1:9"
"""Where replayed emulator targets point: the discard port, never contacted (vcrpy answers first)."""

REDACTED = "REDACTED"
SECRET_REQUEST_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
                          "cookie", "openai-organization", "openai-project", "anthropic-organization-id")
SECRET_RESPONSE_HEADERS = ("set-cookie", "openai-organization", "openai-project", "anthropic-organization-id")
SECRET_QUERY_PARAMETERS = ("key",)
# Headers whose values are credentials: besides being dropped, their values are searched for
# (and replaced) in every URI, body and response header, in case a server echoes them.
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie")
# Shorter values are still dropped from headers and queries, but replacing a 4-letter test key
# everywhere would mangle ordinary text and gain nothing.
_MIN_SECRET_LEN = 8
# What httpx would give a client that has no transport of its own (HTTPProvider's own limits).
_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30.0)


# -- secrets -------------------------------------------------------------------------------------


def scrub_request(request: Any, secrets: set[str] | None = None) -> Any:
    """A copy of the vcrpy ``request`` without credentials; the values found are added to ``secrets``.

    Drops the secret headers and the ``key`` query parameter, then replaces any
    occurrence of a credential value left in the URI or body by ``REDACTED``.
    Recording applies it before storing; replay applies it to live requests
    before matching, so both sides are compared in the same, scrubbed form.
    """
    request = copy.deepcopy(request)
    found = secrets if secrets is not None else set()
    for name in _CREDENTIAL_HEADERS:
        if (value := request.headers.get(name)) is not None:
            found.update(_credential_values(name, str(value)))
    parts = urlsplit(request.uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    found.update(v for k, v in query if k in SECRET_QUERY_PARAMETERS)
    kept = [(k, v) for k, v in query if k not in SECRET_QUERY_PARAMETERS]
    request.uri = scrub_text(urlunsplit(parts._replace(query=urlencode(kept))), found)
    request.headers = {k: v for k, v in request.headers.items() if k.lower() not in SECRET_REQUEST_HEADERS}
    if isinstance(request.body, (bytes, str)):
        request.body = scrub_bytes(_as_bytes(request.body), found)
    return request


def scrub_text(text: str, secrets: set[str]) -> str:
    """``text`` with every secret (raw or URL-encoded) replaced, longest first."""
    for secret in _needles(secrets):
        text = text.replace(secret, REDACTED)
    return text


def scrub_bytes(data: bytes, secrets: set[str]) -> bytes:
    """Like :func:`scrub_text` for bytes."""
    for secret in _needles(secrets):
        data = data.replace(secret.encode(), REDACTED.encode())
    return data


def _credential_values(name: str, value: str) -> set[str]:
    values = {value}
    if name.endswith("authorization") and " " in value:
        values.add(value.split(" ", 1)[1].strip())  # "Bearer sk-...": the token alone
    if name == "cookie":
        values.update(v.strip() for _, _, v in (c.partition("=") for c in value.split(";")))
    return {v for v in values if len(v) >= _MIN_SECRET_LEN}


def _needles(secrets: set[str]) -> list[str]:
    needles = {s for s in secrets if len(s) >= _MIN_SECRET_LEN}
    needles |= {quote(s, safe="") for s in needles}
    return sorted(needles, key=len, reverse=True)  # "Bearer sk-x" before "sk-x"


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


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
    timing: tuple[float, float | None] | None = None


class RecordingCassette:
    """Collects interactions in memory; :meth:`save` writes them, scrubbed, as a vcrpy cassette."""

    replay = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._interactions: list[_Interaction] = []
        self._secrets: set[str] = set()
        self._lock = threading.Lock()  # several event loops (threads) may share one recording

    def transport(self, inner: httpx.AsyncBaseTransport | None) -> httpx.AsyncBaseTransport:
        """What a new client sends through: ``inner`` (or httpx's own transport), teed into this cassette."""
        return RecordingTransport(self, inner or httpx.AsyncHTTPTransport(limits=_LIMITS))

    def timing(self, headers: Mapping[str, str], latency_ms: float, ttft_ms: float | None
               ) -> tuple[float, float | None]:
        """Remember what the provider measured for the interaction these headers belong to."""
        number = headers.get(INTERACTION_HEADER)
        if number is not None:
            with self._lock:
                self._interactions[int(number)].timing = (latency_ms, ttft_ms)
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


class RecordingTransport(httpx.AsyncBaseTransport):
    """Forwards to ``inner``; the response the client sees streams as it arrives and is kept for the cassette."""

    def __init__(self, recording: RecordingCassette, inner: httpx.AsyncBaseTransport) -> None:
        self._recording = recording
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()  # bodies are bytes already; aread() keeps the stream re-readable
        number = self._recording.begin(request, body)
        response = await self._inner.handle_async_request(request)
        self._recording.respond(number, response)
        # The number rides on the response so that timing() can find its interaction.
        headers = [*response.headers.raw, (INTERACTION_HEADER.encode(), str(number).encode())]
        return httpx.Response(response.status_code, headers=headers, extensions=response.extensions,
                              stream=_TeeStream(response.stream, self._recording, number))

    async def aclose(self) -> None:
        await self._inner.aclose()


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
    """The ``CASSETTE`` of a replay: vcrpy answers the requests, this reports the recorded timing."""

    replay = True

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)

    def transport(self, inner: httpx.AsyncBaseTransport | None) -> httpx.AsyncBaseTransport | None:
        """``inner`` unchanged: vcrpy patches httpx's own transports."""
        return inner

    def timing(self, headers: Mapping[str, str], latency_ms: float, ttft_ms: float | None
               ) -> tuple[float, float | None]:
        """The recorded latency and TTFT; the measured ones only for a cassette without timing."""
        recorded = headers.get(LATENCY_HEADER)
        if recorded is None:
            return latency_ms, ttft_ms
        ttft = headers.get(TTFT_HEADER)
        return float(recorded), None if ttft is None else float(ttft)


def vcr_config() -> dict[str, Any]:
    """``use_cassette`` settings of a replay (also what pytest-recording's ``vcr_config`` fixture returns)."""
    return {"record_mode": "none", "match_on": list(MATCH_ON), "allow_playback_repeats": False,
            "before_record_request": scrub_request, "decode_compressed_response": False}


@contextlib.contextmanager
def replay_timing(path: str | Path | None = None) -> Iterator[ReplayCassette]:
    """Report recorded timing while someone else (pytest-recording, a plain ``vcr.use_cassette``) replays."""
    replay = ReplayCassette(path)
    token = CASSETTE.set(replay)
    try:
        yield replay
    finally:
        CASSETTE.reset(token)


def replaying() -> bool:
    """Whether the active cassette is a replay (so no emulator server is needed)."""
    return getattr(CASSETTE.get(), "replay", False) is True


@contextlib.contextmanager
def cassette(path: str | Path, *, record: bool) -> Iterator[RecordingCassette | ReplayCassette]:
    """Record every HTTP call made inside the block to ``path``, or replay them from it.

    A recording is written when the block exits without an exception, so a
    failed run never overwrites a good cassette with a partial one.
    """
    if record:
        recording = RecordingCassette(path)
        token = CASSETTE.set(recording)
        try:
            yield recording
        finally:
            CASSETTE.reset(token)
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
    with (player.use_cassette(str(path), serializer="evalkit-yaml", **vcr_config()),
          replay_timing(path) as replay):
        yield replay


def same_body(live: Any, recorded: Any) -> None:
    """vcrpy's ``body`` matcher without its diff: both bodies are exact bytes written by the same code.

    vcrpy compares every live request with every recorded one and builds a
    unified diff for each mismatch; on a 300-interaction cassette that blocked
    the event loop for seconds, long enough for a code-exec grader to time out.
    """
    a, b = _as_bytes(live.body or b""), _as_bytes(recorded.body or b"")
    if a != b:
        raise AssertionError(f"the bodies differ ({len(a)} bytes in this request, {len(b)} recorded)")


# -- emulator targets without an emulator ----------------------------------------------------------


@dataclass(frozen=True)
class ReplayEmulator(WireURLs):
    """Stands in for :class:`~evalkit.emulator.Emulator` in a replay: the fleet, but no server."""

    fleet: Any
    seed: int = 0
    time_scale: float = 0.02
    base_url: str = PLACEHOLDER_BASE_URL
    running: bool = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def replay_emulator(fleet: Any = None, seed: int = 0, time_scale: float = 0.02) -> ReplayEmulator:
    """What ``emulator:MODEL`` targets resolve against in a replay (``fleet``: a Fleet, a path, or the default)."""
    from ..emulator.fleet import Fleet, load_fleet

    return ReplayEmulator(fleet if isinstance(fleet, Fleet) else load_fleet(fleet), int(seed), float(time_scale))
