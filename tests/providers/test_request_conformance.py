"""Conformance: the request evalkit puts on the socket for a recorded call, against the SDK's request.

For every model call recorded in ``../shared/wire`` (``recorded_calls.py`` makes
each the same evalkit call: target, options, a ChatRequest from the recorded
body), evalkit sends the call to a loopback server that records the bytes as
they arrived (``wire_capture.py``) and answers with the recorded response. It
does so on each transport: the default (aiohttp through httpx-aiohttp), a shared
plain ``httpx.AsyncClient``, and evalkit's own client over
``httpx.AsyncHTTPTransport``.

Until evalkit set its headers itself, aiohttp sent ``content-type:
application/octet-stream`` and plain httpx no content type, FastAPI servers
(llama.cpp's, vLLM) refused both, and every test passed: ``httpx.MockTransport``
never reaches either transport's defaults. Checked here, per call and transport:
method, path and query; ``content-type``, ``accept``, ``user-agent`` and the
vendor's auth headers; the body's meaning; and, per call, that every transport
sent the same headers and the same body bytes.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

import evalkit
from evalkit.providers.anthropic import API_VERSION

from .body_rules import RULES, VENDOR_RULES, canonical
from .recorded_calls import EXCLUDED, RecordedCall, model_calls
from .recordings import FAKE_KEY, WIRE, load, needs_wire
from .wire_capture import CannedResponse, CapturedRequest, WireCapture

# Unpriced recorded model names warn. Without ../shared/wire the parametrised tests have no cases.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TRANSPORTS = ("aiohttp", "httpx-client", "httpx-transport")
CALLS = {call.id: call for call in model_calls()}

CREDENTIAL_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")
EVERY_REQUEST = {"host", "connection", "content-length", "content-type", "accept", "accept-encoding",
                 "user-agent"}
"""The headers every evalkit request carries besides the vendor's own: nothing else may reach the wire."""


def _auth(call: RecordedCall) -> dict[str, str]:
    """The credential headers each vendor documents, for the key evalkit was given (none: a local server)."""
    if call.local:
        return {}
    if call.vendor == "azure":
        return {"api-key": FAKE_KEY}  # learn.microsoft.com: Azure OpenAI REST "api-key" header
    if call.family == "anthropic":
        return {"x-api-key": FAKE_KEY}  # docs.anthropic.com: x-api-key (+ anthropic-version, checked apart)
    if call.family == "gemini":
        return {"x-goog-api-key": FAKE_KEY}  # ai.google.dev: x-goog-api-key (a ?key= query lands in logs)
    return {"authorization": f"Bearer {FAKE_KEY}"}  # OpenAI and every OpenAI-compatible API


def _ids(transports: bool = True) -> list[Any]:
    """Parameters per call (and transport)."""
    if transports:
        return [pytest.param(call_id, t, id=f"{call_id}-{t}") for call_id in sorted(CALLS) for t in TRANSPORTS]
    return [pytest.param(call_id, id=call_id) for call_id in sorted(CALLS)]


@pytest.fixture(scope="module")
def wire() -> Any:
    with WireCapture() as server:
        yield server


_CAPTURED: dict[tuple[str, str], CapturedRequest] = {}


async def _capture(wire: WireCapture, call: RecordedCall, transport: str) -> CapturedRequest:
    """The request evalkit sent for ``call`` on ``transport`` (sent once, then remembered)."""
    if (call.id, transport) in _CAPTURED:
        return _CAPTURED[call.id, transport]
    it = call.interaction
    wire.respond(CannedResponse(it.status, list(it.headers.items()), it.body))
    # The default (no option) is aiohttp. verify=False: the capture server speaks plain HTTP, and loading
    # the CA bundle costs ~40 ms per client.
    client: httpx.AsyncClient | None = None
    chosen: dict[str, Any] = {}
    if transport == "httpx-client":
        client = httpx.AsyncClient(verify=False)
        chosen = {"client": client}
    elif transport == "httpx-transport":
        chosen = {"transport": httpx.AsyncHTTPTransport(verify=False)}
    provider = evalkit.get_provider(call.target, api_key=None if call.local else FAKE_KEY,
                                    base_url=wire.url + call.base_path, timeout=10, **call.options, **chosen)
    try:
        await provider.complete(call.request)
    except evalkit.ProviderError:
        pass  # a recorded 4xx, a refusal, an error inside a 200 stream: the request is what is checked here
    finally:
        await provider.aclose()
        if client is not None:
            await client.aclose()
    _CAPTURED[call.id, transport] = captured = wire.take()
    return captured


def _expected_query(call: RecordedCall) -> list[tuple[str, str]]:
    query = parse_qsl(urlsplit(call.interaction.uri).query, keep_blank_values=True)
    if call.family == "anthropic":
        # ?beta=true marks calls made through the Anthropic SDK's beta namespace
        # (client.beta.messages.create); it is the SDK's, not a parameter of the Messages API call.
        query = [q for q in query if q != ("beta", "true")]
    if call.stream_format == "json-array":
        query = [q for q in query if q != ("alt", "sse")]  # the same call without alt=sse: one JSON array
    return query


@pytest.mark.parametrize(("call_id", "transport"), _ids())
async def test_method_path_and_query_are_the_recorded_ones(wire: WireCapture, call_id: str,
                                                           transport: str) -> None:
    call = CALLS[call_id]
    sent = await _capture(wire, call, transport)
    assert (sent.method, sent.version) == (call.interaction.method, "HTTP/1.1")
    # The path is the vendor's documented base URL path plus evalkit's wire path; Mistral's recorded
    # "#stream" is a fragment (client-side, never sent), which urlsplit keeps apart.
    assert sent.path == urlsplit(call.interaction.uri).path
    assert sent.query == _expected_query(call)


@pytest.mark.parametrize(("call_id", "transport"), _ids())
async def test_headers_say_json_evalkit_and_the_vendors_auth(wire: WireCapture, call_id: str,
                                                             transport: str) -> None:
    call = CALLS[call_id]
    sent = await _capture(wire, call, transport)
    recorded = dict(call.interaction.request_headers)
    names = Counter(name.lower() for name, _ in sent.headers)
    assert [n for n, count in names.items() if count > 1] == [], "a header sent twice"
    assert sent.header("content-type") == "application/json"
    assert not sent.chunked and sent.header("content-length") == str(len(sent.body))
    if "event-stream" in call.interaction.headers.get("content-type", ""):
        # The SDKs ask for application/json even for streams; evalkit names the SSE it reads. Both are served.
        assert sent.header("accept") in ("text/event-stream", "application/json")
    else:
        assert sent.header("accept") == "application/json"
    assert sent.header("user-agent") == f"evalkit/{evalkit.__version__}"
    offered = {c.strip() for c in (sent.header("accept-encoding") or "").split(",")}
    assert offered <= {c.strip() for c in recorded.get("accept-encoding", "gzip, deflate").split(",")}

    expected = _auth(call)
    assert {n: sent.header(n) for n in CREDENTIAL_HEADERS if sent.header(n) is not None} == expected
    assert FAKE_KEY not in sent.target, "the key is in the URL (query strings end up in access logs)"
    # The recordings mostly stripped credentials; where one remains (a placeholder), its name and scheme.
    for name in set(CREDENTIAL_HEADERS) & set(recorded):
        assert name in expected, f"the SDK sent {name}; evalkit sends {sorted(expected)}"
        if name == "authorization":
            assert recorded[name].split(" ")[0] == expected[name].split(" ")[0]
    if call.family == "anthropic":
        assert sent.header("anthropic-version") == recorded.get("anthropic-version", API_VERSION)
    vendor_headers = {*expected, *(["anthropic-version"] if call.family == "anthropic" else [])}
    assert set(names) - EVERY_REQUEST - vendor_headers == set(), "headers no vendor asked for"


@pytest.mark.parametrize(("call_id", "transport"), _ids())
async def test_body_means_what_the_recorded_body_means(wire: WireCapture, call_id: str,
                                                       transport: str) -> None:
    call = CALLS[call_id]
    sent = await _capture(wire, call, transport)
    body = canonical(json.loads(sent.body), call.rules, recorded=False)
    for name, (value, _why) in call.rules.added.items():
        if name not in call.expected_body and body.get(name) == value:
            del body[name]
    assert body == call.expected_body


@pytest.mark.parametrize("call_id", _ids(transports=False))
async def test_every_transport_sends_the_same_headers_and_bytes(wire: WireCapture, call_id: str) -> None:
    """A header one transport adds on its own (a default content type, a connection header) differs here."""

    def comparable(sent: CapturedRequest) -> tuple[Any, ...]:
        # Field order carries no meaning across names (RFC 9110 5.3); the stable sort keeps same-name order.
        headers = [(n.lower(), v) for n, v in sent.headers if n.lower() not in ("host", "content-length")]
        headers.sort(key=lambda h: h[0])
        return sent.method, sent.target, headers, sent.body

    call = CALLS[call_id]
    first, *others = [comparable(await _capture(wire, call, t)) for t in TRANSPORTS]
    for transport, other in zip(TRANSPORTS[1:], others):
        assert other == first, f"{transport} differs from {TRANSPORTS[0]}"


# -- the list of calls itself --------------------------------------------------------------------


@needs_wire
def test_every_recorded_interaction_is_checked_or_excluded_with_a_reason() -> None:
    recorded = {it.id for p in WIRE.glob("*/*.yaml") for it in load(str(p.relative_to(WIRE)))}
    checked = {call.interaction.id for call in CALLS.values()}
    assert all(EXCLUDED.values()) and not checked & set(EXCLUDED)
    assert checked | set(EXCLUDED) == recorded
    assert {call.family for call in CALLS.values()} == set(RULES)
    streams = {c.interaction.id for c in CALLS.values() if c.family == "gemini" and c.stream_format == "sse"}
    assert streams == {c.interaction.id for c in CALLS.values() if c.stream_format == "json-array"}
    assert (len(checked), len(CALLS)) == (90, 96)  # 100 recorded, less 10 excluded; 6 Gemini streams twice


@needs_wire
def test_every_rule_is_used() -> None:
    """The lists of what evalkit does not produce name only what some recording has."""
    owners = [(family, None, rules) for family, rules in RULES.items()]
    owners += [(family, vendor, rules) for (vendor, family), rules in VENDOR_RULES.items()]
    for family, vendor, rules in owners:
        calls = [c for c in CALLS.values() if c.family == family and vendor in (None, c.vendor)]
        used = set().union(*(c.not_produced for c in calls))
        keys = {*rules.not_sent, *rules.not_compared, *(f"default:{p}" for p in rules.defaults),
                *(f"renamed:{n}" for n in rules.renamed),
                *("item:" + ":".join(k) for k in rules.items_not_sent)}
        assert keys - used == set(), f"{family} {vendor or ''}: rules no recording needs"


def test_the_capture_server_records_the_bytes_as_sent() -> None:
    """Header lines in order, case and duplicates; a repeated query parameter; a chunked body."""
    with WireCapture() as server:
        framing = [("content-type", "text/plain"), ("content-length", "999")]  # the server writes its own
        server.respond(CannedResponse(201, framing, b"ok"))
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(b"POST /v1/x?a=1&a=2 HTTP/1.1\r\nHost: h\r\nX-Twice: 1\r\nx-twice: 2\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            answer = raw.recv(4096)
        sent = server.take()
    assert answer == b"HTTP/1.1 201 Recorded\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
    assert (sent.method, sent.path, sent.query) == ("POST", "/v1/x", [("a", "1"), ("a", "2")])
    assert sent.headers == (("Host", "h"), ("X-Twice", "1"), ("x-twice", "2"),
                            ("Transfer-Encoding", "chunked"))
    assert (sent.body, sent.chunked, sent.values("X-TWICE")) == (b"abcde", True, ["1", "2"])
    with pytest.raises(AssertionError, match="sent 2 times"):
        sent.header("x-twice")
