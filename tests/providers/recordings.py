"""Replay the real provider traffic in ``../shared/wire`` through evalkit's adapters.

Each recording is a VCR cassette (see that folder's README): bodies are raw
text, ``parsed_body`` (decoded JSON) or gzip bytes. :func:`replay_provider`
builds a real evalkit provider whose httpx transport answers with the recorded
response, so the whole path (headers, gzip, SSE framing, parsing) is exercised.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
import yaml

import evalkit
from evalkit.errors import ErrorKind
from tests.shared import REPO, shared_path

WIRE = shared_path("wire") or REPO.parent / "shared" / "wire"
FAKE_KEY = "sk-test-FAKE0123456789abcdefFAKE0123456789"

needs_wire = pytest.mark.skipif(not WIRE.is_dir(), reason=f"recorded traffic not found at {WIRE}")

NOT_ANSWERS: dict[str, tuple[ErrorKind, str]] = {
    "gemini/test_google_model_safety_settings.yaml#0": (
        ErrorKind.CONTENT_FILTER, "finishReason SAFETY: empty content, HARM_CATEGORY_HATE_SPEECH blocked"),
    "gemini/test_google_model_max_tokens_thinking_model_empty_response.yaml#0": (
        ErrorKind.INVALID_RESPONSE, "finishReason MAX_TOKENS, no parts: both output tokens went to thinking"),
    "openrouter/test_openrouter_stream_error.yaml#0": (
        ErrorKind.STREAM_INTERRUPTED, "a 200 stream whose last chunk is an error: 'Token limit reached'"),
}
"""The recorded 200 responses that are not answers, by interaction id: the kind each must fail with.

Every other recorded 200 model call must replay as an answer
(``test_conformance_coverage.py``): a real answer turned into an error is a bug.
"""


@dataclass(frozen=True)
class Interaction:
    file: str
    index: int
    method: str
    uri: str
    request_body: Any
    status: int
    headers: dict[str, str]
    body: bytes
    gzipped: bool
    request_headers: tuple[tuple[str, str], ...] = ()
    """The recorded request's headers: ``(lowercased name, value)`` in order, list values joined by ", "."""

    @property
    def id(self) -> str:
        return f"{self.file}#{self.index}"

    @property
    def streamed(self) -> bool:
        ctype = self.headers.get("content-type", "")
        return "event-stream" in ctype or "streamGenerateContent" in self.uri or (
            isinstance(self.request_body, dict) and bool(self.request_body.get("stream"))
        )

    def json(self) -> Any:
        raw = gzip.decompress(self.body) if self.gzipped else self.body
        return json.loads(raw)

    def text(self) -> str:
        raw = gzip.decompress(self.body) if self.gzipped else self.body
        return raw.decode()


def _header_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def load(file: str) -> list[Interaction]:
    """Every interaction of ``WIRE/file``."""
    data = yaml.safe_load((WIRE / file).read_text())
    out = []
    for i, it in enumerate(data["interactions"]):
        rq, rs = it["request"], it["response"]
        headers = {k.lower(): _header_value(v) for k, v in (rs.get("headers") or {}).items()}
        gzipped = "gzip" in headers.get("content-encoding", "")
        if "parsed_body" in rs:
            body = json.dumps(rs["parsed_body"]).encode()
            gzipped = False
            headers.pop("content-encoding", None)
        else:
            raw = rs["body"]["string"]
            body = raw if isinstance(raw, bytes) else raw.encode()
        if "parsed_body" in rq:
            req_body = rq["parsed_body"]
        else:
            raw = (rq.get("body") or {}).get("string") if isinstance(rq.get("body"), dict) else rq.get("body")
            try:
                req_body = json.loads(raw) if raw else None
            except (TypeError, ValueError):
                req_body = None
        headers.pop("content-length", None)
        headers.pop("transfer-encoding", None)
        req_headers = tuple((k.lower(), _header_value(v)) for k, v in (rq.get("headers") or {}).items())
        out.append(Interaction(file, i, rq["method"], rq["uri"], req_body, rs["status"]["code"],
                               headers, body, gzipped, req_headers))
    return out


def replay_provider(interaction: Interaction, target: str, **options: Any) -> evalkit.HTTPProvider:
    """A provider for ``target`` whose every request gets ``interaction``'s recorded response."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(interaction.status, headers=interaction.headers, content=interaction.body)

    provider = evalkit.get_provider(target, api_key=FAKE_KEY, base_url="http://recorded.invalid",
                                    transport=httpx.MockTransport(answer), **options)
    provider.sent = sent  # type: ignore[attr-defined]
    return provider


def request_for(interaction: Interaction, **fields: Any) -> evalkit.ChatRequest:
    """A small request with the recording's stream flag (the recorded answer comes back regardless)."""
    return evalkit.ChatRequest.from_prompt("hello", stream=interaction.streamed, **fields)


def as_json_array_stream(interaction: Interaction) -> Interaction:
    """A recorded Gemini ``alt=sse`` stream as the API sends it without ``alt=sse``: one JSON array.

    The recordings hold only the SSE form (``../shared/wire/README.md``, known
    gaps); each SSE event of a Gemini stream is one ``data:`` line holding one
    ``GenerateContentResponse``, and the JSON-array form is those objects in order.
    """
    events = [e.strip() for e in interaction.text().replace("\r\n", "\n").split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") and "\n" not in e for e in events), "not a Gemini SSE body"
    chunks = [json.loads(e[len("data: "):]) for e in events]
    headers = {k: v for k, v in interaction.headers.items() if k != "content-encoding"}
    headers["content-type"] = "application/json; charset=UTF-8"
    return replace(interaction, headers=headers, body=json.dumps(chunks, indent=1).encode(), gzipped=False)
