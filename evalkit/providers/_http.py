"""The one HTTP layer every wire format runs on.

:class:`HTTPProvider` sends what a :class:`~._wire.Wire` builds over an
``httpx.AsyncClient``, times it, frames streams, estimates missing usage, prices
the answer and tags errors with the provider. Transport failures are classified
in ``_transport_errors.py``; HTTP error responses by the wire. Nothing here
retries: the router is the one retry owner.

Also here, once for every wire (the rules are in ``_answers.py``): a reply that
is a refusal or empty is a failed attempt, a failure after output arrived
carries what the vendor bills for it (``usage``/``cost``), and every known
secret value is scrubbed from what an upstream sends back: a non-streamed body
whole as it is read, a stream event by event, then the parsed reply (a key split
across two events, or JSON-escaped, is plain only there).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any, AsyncIterator, Callable, Mapping

import httpx

from .._json import loads
from .._relay import relay
from .._secret import Secret, SecretHeaders, redact, scrub, scrub_bytes
from .._version import __version__
from ..errors import InvalidResponseError, ProviderError, StreamInterruptedError, ProviderTimeoutError
from ..pricing import PriceTable, Prices
from ..types import ChatRequest, ChatResponse, Cost, Deadlines, Usage
from ._answers import estimate_usage, partial_usage, scrub_reply, unusable
from ._framing import events
from ._deadlines import Unwatched, Watchdog, watchdog
from ._cookies import AnswerCookieJar
from ._headers import rate_limit_headers
from ._transport_errors import classify_transport_error
from ._wire import HttpCall, Reply, StreamParser, Wire

__all__ = ["ACCEPT", "ChatStream", "HTTPProvider", "DEFAULT_TIMEOUT", "REQUEST_HEADERS", "TIMING_EXTENSION"]

TIMING_EXTENSION = "evalkit.timing"
"""A response extension a transport may set: ``hook(latency_ms, ttft_ms) -> (latency_ms, ttft_ms)``.

Called with what the provider measured once the call is done. A cassette's
transport sets it: recording stores the values, replay returns the recorded
ones, so a replayed run reports the original latencies
(``evalkit.runner.cassettes``).
"""

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)
_DEFAULT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30.0)
_SHARED_PRICES = PriceTable()
_NO_DEADLINES = Deadlines()
_TIERED_FROM = 128_000  # long-context price tiers start at 128k+ prompt tokens: look those up each time

REQUEST_HEADERS: Mapping[str, str] = {
    "content-type": "application/json",
    "accept-encoding": "gzip, deflate",
    "user-agent": f"evalkit/{__version__}",
}
"""Sent with every request, whatever the transport.

Set here rather than left to the transport because transports differ: for a
bytes body aiohttp sends ``application/octet-stream`` and plain httpx sends no
content type, and FastAPI servers (llama.cpp's, vLLM) parse neither as JSON.
``accept-encoding`` is fixed to what every transport decodes (httpx adds
``br``/``zstd`` when their packages happen to be installed).
"""
ACCEPT: Mapping[str | None, str] = {None: "application/json", "sse": "text/event-stream",
                                    "json-array": "application/json"}
"""The ``accept`` header for each stream format (``None``: a plain JSON answer)."""
_ACCEPT_HEADERS = {fmt: {"accept": value} for fmt, value in ACCEPT.items()}  # built once, never mutated


class HTTPProvider:
    """A model behind a vendor's HTTP API: ``await complete(request)`` or ``stream(request)``.

    Build it with :func:`evalkit.get_provider`. One ``httpx.AsyncClient`` per
    provider is created on first use and reused; pass ``client=`` to share one,
    or ``transport=`` to choose the transport (the router benchmarks pick it by
    measurement; a cassette passes its recording or replaying wrapper).
    ``deadlines`` bound every call (a call's own ``request.deadlines`` win
    field by field; see :class:`~evalkit.types.Deadlines`).
    """

    def __init__(
        self,
        *,
        vendor: str,
        model: str,
        wire: Wire,
        base_url: str,
        api_key: Secret | None = None,
        price_provider: str | None = None,
        prices: PriceTable | None = None,
        timeout: httpx.Timeout | float | None = None,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        context_window: int | None = None,
        deadlines: Deadlines | None = None,
        accepts_prefill: bool = False,
    ) -> None:
        self.vendor = vendor
        self.model = model
        self.name = f"{vendor}:{model}"
        self.wire = wire
        self.base_url = base_url.rstrip("/")
        self.context_window = context_window
        self.deadlines = deadlines or _NO_DEADLINES
        self.accepts_prefill = accepts_prefill
        """Whether the model continues a trailing assistant turn (a prefill); routers restart streams otherwise."""
        self._api_key = api_key
        self._price_provider = price_provider
        self._prices = prices or _SHARED_PRICES
        self._timeout = DEFAULT_TIMEOUT if timeout is None else httpx.Timeout(timeout)
        self._client = client
        self._owns_client = client is None
        self._transport = transport
        self._urls: dict[str | tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}
        self._price_of: dict[str, Prices | None] = {}
        # The user's headers may replace evalkit's defaults; the wire's auth headers win over both.
        self._headers = SecretHeaders({**REQUEST_HEADERS, **(headers or {}),
                                       **(wire.auth_headers(api_key.reveal()) if api_key else {})})

    def __repr__(self) -> str:
        return f"HTTPProvider({self.name!r}, base_url={self.base_url!r})"

    # -- public interface ---------------------------------------------------------------

    async def complete(self, request: ChatRequest, on_delta: Callable[[str], None] | None = None) -> ChatResponse:
        """Send ``request`` and return the whole answer.

        With ``request.stream`` true the call streams on the wire (measuring
        time to first token), passes each text delta to ``on_delta`` as it
        arrives, and still returns the whole response.
        """
        if not request.stream:
            return await self._send_json(request)
        return await self._stream_into(request, on_delta)

    def prices(self) -> Prices | None:
        """USD per 1M tokens for this model (overrides first, then genai-prices); ``None`` if unpriced."""
        return self._prices.lookup(self._price_provider, self.model)

    def stream(self, request: ChatRequest) -> ChatStream:
        """An async iterator of text deltas; ``.response`` holds the whole answer once done."""
        return ChatStream(self, request)

    async def aclose(self) -> None:
        """Close the HTTP client if this provider created it."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> HTTPProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the I/O --------------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            transport = self._transport
            # aiohttp under httpx's API: CPU per request stays flat with concurrency, where httpx's own
            # pool doubles it from c=1 to c=100 (encode/httpx#3215; benchmarks/router_overhead.py).
            # Imported here, on first use: aiohttp alone costs ~170 ms to import.
            from httpx_aiohttp import HttpxAiohttpClient

            self._client = HttpxAiohttpClient(timeout=self._timeout, limits=_DEFAULT_LIMITS, transport=transport,
                                              headers=self._headers, cookies=AnswerCookieJar())
        return self._client

    def _http_request(self, call: HttpCall, deadlines: Deadlines) -> httpx.Request:
        key = (call.path, tuple(call.params.items())) if call.params else call.path
        url = self._urls.get(key)
        if url is None:  # parsed once per path: URL parsing is a large share of httpx's per-call cost
            url = self._urls[key] = httpx.URL(self.base_url + call.path, params=call.params or None)
        # A client we own carries the auth and default headers already; a shared one gets them per request.
        accept = _ACCEPT_HEADERS[call.stream_format]
        if not self._owns_client:
            headers = {**self._headers, **accept, **call.headers}
        else:
            headers = {**accept, **call.headers} if call.headers else accept
        body = json.dumps(call.body, separators=(",", ":")).encode()
        if deadlines.connect_timeout_s is None:
            return self.client.build_request("POST", url, headers=headers, content=body)
        timeout = self.client.timeout
        timeout = httpx.Timeout(connect=deadlines.connect_timeout_s, read=timeout.read, write=timeout.write,
                                pool=timeout.pool)
        return self.client.build_request("POST", url, headers=headers, content=body, timeout=timeout)

    def _deadlines(self, request: ChatRequest) -> Deadlines:
        return self.deadlines if request.deadlines is None else self.deadlines.merged(request.deadlines)

    def credential_id(self) -> tuple[str, str, int]:
        """Who authenticates this provider's calls: vendor, base URL and the headers sent (key included).

        Two providers with the same ``credential_id`` fail authentication
        together, so a router that saw one fail ``auth`` skips the other. The
        headers (the key, or credentials passed as ``headers=``) enter only as
        a hash with a per-process salt (``hash``): never kept, never shown.
        """
        return (self.vendor, self.base_url, hash(tuple(sorted(self._headers.items()))))

    async def _open(self, call: HttpCall, deadlines: Deadlines, watch: Watchdog | Unwatched) -> httpx.Response:
        """Send ``call`` and return the response once its status and headers arrived (the body still unread)."""
        try:
            response = await self.client.send(self._http_request(call, deadlines), stream=True)
        except httpx.HTTPError as exc:
            raise self._tag(classify_transport_error(exc, began=False)) from None
        watch.headers()
        return response

    async def _send_json(self, request: ChatRequest) -> ChatResponse:
        call = self.wire.build(request, self.model, stream=False)
        deadlines = self._deadlines(request)
        started = time.perf_counter()
        async with watchdog(deadlines, streamed=False) as watch:
            response = await self._open(call, deadlines, watch)
            try:
                # Scrubbed as soon as it is read: no local (or traceback) ever holds an echoed key.
                body = scrub_bytes(await response.aread())
            except httpx.HTTPError as exc:
                # The response had started: a body cut short is a broken response, not a failed connection.
                raise self._tag(classify_transport_error(
                    exc, began=True, received=response.num_bytes_downloaded,
                    expected=response.headers.get("content-length"))) from None
            finally:
                await response.aclose()
        latency_ms = (time.perf_counter() - started) * 1000.0
        if response.status_code >= 300:
            raise self._error_response(response.status_code, response.headers, body)
        try:
            data = loads(body)
        except ValueError:
            raise self._tag(InvalidResponseError(f"response body is not JSON ({len(body)} bytes)",
                                                 status=response.status_code)) from None
        try:
            reply = self.wire.parse(data, request)
        except ProviderError as exc:
            raise self._priced(self._tag(exc)) from None
        return self._finish(request, reply, response, latency_ms, None)

    async def _stream_into(self, request: ChatRequest, on_delta: Callable[[str], None] | None) -> ChatResponse:
        """Stream ``request``, passing each text delta to ``on_delta``; the whole answer at the end.

        One coroutine with no ``yield``: the deadlines' timer may cancel it
        wherever it waits, and no reader's code runs inside it but the callback.
        """
        parser = self.wire.stream_parser(request)
        try:
            return await self._streamed(request, parser, on_delta)
        except ProviderTimeoutError as exc:  # a deadline passed (Watchdog): billed for what arrived
            raise self._broken(self._tag(exc), request, parser) from None

    async def _streamed(self, request: ChatRequest, parser: StreamParser,
                        on_delta: Callable[[str], None] | None) -> ChatResponse:
        call = self.wire.build(request, self.model, stream=True)
        deadlines = self._deadlines(request)
        started = time.perf_counter()
        ttft_ms: float | None = None
        async with watchdog(deadlines, streamed=True) as watch:
            response = await self._open(call, deadlines, watch)
            if response.status_code >= 300:
                try:
                    body = scrub_bytes(await response.aread())
                except httpx.HTTPError as exc:
                    raise self._tag(classify_transport_error(exc, began=True)) from None
                finally:
                    await response.aclose()
                raise self._error_response(response.status_code, response.headers, body)
            try:
                async for data, event, last in events(response, call.stream_format or "sse"):
                    try:
                        delta = parser.feed(data, event)
                    except InvalidResponseError:
                        if not last:
                            raise
                        # The body ended inside its final event: the stream was cut, not malformed.
                        raise StreamInterruptedError(f"stream cut inside its last event: {data[:80]!r}") from None
                    if ttft_ms is not None:
                        watch.tick()
                    elif parser.started:
                        ttft_ms = (time.perf_counter() - started) * 1000.0
                        watch.first_token()
                    if delta and on_delta is not None:
                        on_delta(delta)
                reply = parser.finish()
            except ProviderError as exc:
                raise self._broken(self._tag(exc), request, parser) from None
            except httpx.HTTPError as exc:
                error = self._tag(classify_transport_error(exc, began=True))
                raise self._broken(error, request, parser) from None
            finally:
                await response.aclose()
        latency_ms = (time.perf_counter() - started) * 1000.0
        return self._finish(request, reply, response, latency_ms, ttft_ms)

    # -- turning replies and failures into evalkit values ---------------------------------

    def _finish(self, request: ChatRequest, reply: Reply, response: httpx.Response,
                latency_ms: float, ttft_ms: float | None) -> ChatResponse:
        headers = response.headers
        if (timing := response.extensions.get(TIMING_EXTENSION)) is not None:
            latency_ms, ttft_ms = timing(latency_ms, ttft_ms)
        # The parsed texts: where a key split across stream events comes back together, and where
        # one the upstream's JSON escaped (``\/``, ``\u00e9``), missed in the raw bytes, is plain.
        reply = scrub_reply(reply)
        usage = reply.usage or estimate_usage(request, reply, self.name)
        served = reply.model or self.model
        cost = self._cost(served, usage, reply.reported_cost)
        if (failure := unusable(reply, request)) is not None:
            # A refusal or an empty answer is billed like an answer (the vendor counted its tokens).
            failure.usage, failure.cost = usage, cost
            failure.request_id = _request_id(headers) or reply.request_id
            raise self._tag(failure)
        return ChatResponse(
            text=reply.text,
            finish_reason=reply.finish_reason,
            model=served,
            usage=usage,
            provider=self.name,
            tool_calls=reply.tool_calls,
            reasoning=reply.reasoning,
            request_id=_request_id(headers) or reply.request_id,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            rate_limits=rate_limit_headers(headers),
            cost=cost,
        )

    def _broken(self, error: ProviderError, request: ChatRequest, parser: StreamParser) -> ProviderError:
        """``error``, raised once a 200 stream had begun, billed for the output that arrived."""
        if error.usage is not None:  # the wire knew the bill (an empty stream that did end)
            return self._priced(error)
        partial = scrub_reply(parser.partial())  # its model names the price (and may reach a warning)
        error.usage = partial_usage(request, partial, self.name)
        return self._priced(error, partial.model)

    def _priced(self, error: ProviderError, served: str = "") -> ProviderError:
        """``error`` with the price of its ``usage`` (``None`` when unpriced or nothing is known)."""
        if error.usage is not None and error.cost is None:
            error.cost = self._cost(served or self.model, error.usage, None)
        return error

    def _cost(self, served: str, usage: Usage, reported: Any) -> Cost | None:
        if reported is not None:
            # The vendor billed this call itself (OpenRouter): its number is the truth.
            return Cost.reported(Decimal(str(reported)))
        # Prices per served model are looked up once: the table's lookups cost more than the arithmetic.
        try:
            prices = self._price_of[served]
        except KeyError:
            lookup = self._prices.lookup
            prices = lookup(self._price_provider, served, 0) or lookup(self._price_provider, self.model, 0)
            self._price_of[served] = prices
        if prices is None or usage.input_tokens >= _TIERED_FROM:
            return self._prices.cost(self._price_provider, served, usage, self.model,  # warns once; tiers
                                     target=self.name)
        return prices.cost(usage)

    def _error_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        error = self.wire.classify(status, headers, body)
        if error.request_id is None:
            error.request_id = _request_id(headers)
        return self._tag(error)

    def _tag(self, error: ProviderError) -> ProviderError:
        error.provider = error.provider or self.vendor
        error.model = error.model or self.model
        # This provider's key at any length, then every other key this process holds.
        error.message = scrub(redact(error.message, self._api_key))
        error.args = (error.message,)
        return error


class ChatStream:
    """Text deltas of one streamed answer; after the last one, ``response`` is the whole answer."""

    def __init__(self, provider: HTTPProvider, request: ChatRequest) -> None:
        self.provider = provider
        self.request = request
        self.response: ChatResponse | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        request = self.request if self.request.stream else self.request.replace(stream=True)
        return relay(lambda push: self.provider._stream_into(request, push), self)


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in ("x-request-id", "request-id", "apim-request-id", "x-goog-request-id"):
        if value := headers.get(name):
            return value
    return None
