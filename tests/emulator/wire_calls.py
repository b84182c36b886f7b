"""Raw calls to the emulator on each wire, with what reached the socket and when.

The stream-fault tests assert timing and framing, so they read bytes with httpx
directly (no evalkit provider in between) and decode each wire's events here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .helpers import ANTHROPIC_AUTH, TLS

WIRES = ("openai", "anthropic", "gemini")


def fleet_text(models: str, *, output_tokens: int = 40) -> str:
    """A fleet file whose models (``models``, YAML list items) speak every wire at 50 tokens/s, always right."""
    return f"""
version: 1
defaults:
  wires: [openai, anthropic, gemini]
  price: {{input: 1, output: 2}}
  context_window: 100000
  latency: {{ttft_ms: 0, tokens_per_s: 50}}
  output_tokens: {output_tokens}
  skills: {{default: 1.0}}
models:
{models}"""
MAX_TOKENS = 200


def conversation(prompt: str, prefill: str | None = None) -> list[dict[str, Any]]:
    """A one-question chat, ending with an assistant turn when ``prefill`` is given."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    if prefill is not None:
        messages.append({"role": "assistant", "content": prefill})
    return messages


def chat_request(
    emu: Any, wire: str, model: str, messages: list[dict[str, Any]], *, stream: bool, json_array: bool = False
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and body of a chat call on ``wire`` (same conversation and cap on every wire)."""
    if wire == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return f"{emu.openai_base_url}/chat/completions", {"authorization": "Bearer k"}, body
    if wire == "anthropic":
        body = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "stream": stream}
        return f"{emu.anthropic_base_url}/v1/messages", dict(ANTHROPIC_AUTH), body
    action = "streamGenerateContent" if stream else "generateContent"
    query = "?alt=sse" if stream and not json_array else ""
    contents = [
        {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
        for m in messages
    ]
    body = {"contents": contents, "generationConfig": {"maxOutputTokens": MAX_TOKENS}}
    return f"{emu.gemini_base_url}/v1beta/models/{model}:{action}{query}", {"x-goog-api-key": "k"}, body


@dataclass
class Answer:
    """What one non-streamed call returned, decoded the wire's way."""

    status: int
    body: dict[str, Any]
    seconds: float

    def text(self, wire: str) -> str:
        """The answer's text."""
        if wire == "openai":
            return self.body["choices"][0]["message"]["content"]
        if wire == "anthropic":
            return "".join(b["text"] for b in self.body["content"] if b["type"] == "text")
        return "".join(p.get("text", "") for p in self.body["candidates"][0]["content"]["parts"])

    def usage(self, wire: str) -> tuple[int, int]:
        """(prompt tokens, completion tokens) as the wire reports them."""
        return usage_numbers(wire, self.body)


def usage_numbers(wire: str, payload: dict[str, Any]) -> tuple[int, int]:
    """(prompt tokens, completion tokens) from a wire's usage object."""
    if wire == "openai":
        u = payload["usage"]
        return u["prompt_tokens"], u["completion_tokens"]
    if wire == "anthropic":
        u = payload["usage"]
        return u["input_tokens"], u["output_tokens"]
    u = payload["usageMetadata"]
    return u["promptTokenCount"], u.get("candidatesTokenCount", 0)


def call(
    emu: Any, wire: str, model: str, messages: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> Answer:
    """One non-streamed call."""
    url, base_headers, body = chat_request(emu, wire, model, messages, stream=False)
    started = time.monotonic()
    response = httpx.post(url, json=body, headers={**base_headers, **(headers or {})}, timeout=10, verify=TLS)
    return Answer(response.status_code, response.json(), time.monotonic() - started)


@dataclass
class Stream:
    """A streamed call as it reached the socket.

    ``events`` are ``(seconds after the response headers, event name, data)``;
    ``error`` is what ended the body if it did not end cleanly.
    """

    status: int
    headers_after_s: float
    events: list[tuple[float, str | None, str]] = field(default_factory=list)
    raw: bytes = b""
    error: Exception | None = None

    def content(self, wire: str, upto: int | None = None) -> list[tuple[float, str]]:
        """``(arrival, text)`` of every event (before index ``upto``) that carries answer text; invalid
        events are skipped."""
        out = []
        for at, name, data in self.events[:upto]:
            payload = _json(data)
            if payload is not None and (text := _delta_text(wire, name, payload)):
                out.append((at, text))
        return out

    def text(self, wire: str) -> str:
        """All the answer text that arrived."""
        return "".join(text for _, text in self.content(wire))

    def invalid(self) -> list[int]:
        """Indexes of events whose data is not JSON (``[DONE]`` is not data)."""
        return [i for i, (_, _, data) in enumerate(self.events) if data != "[DONE]" and _json(data) is None]

    def finish(self, wire: str) -> str | None:
        """The finish reason the stream reported, if any."""
        for _, name, data in self.events:
            payload = _json(data) or {}
            if wire == "openai" and payload.get("choices") and payload["choices"][0].get("finish_reason"):
                return payload["choices"][0]["finish_reason"]
            if wire == "anthropic" and name == "message_delta":
                return payload["delta"]["stop_reason"]
            if wire == "gemini" and payload.get("candidates") and "finishReason" in payload["candidates"][0]:
                return payload["candidates"][0]["finishReason"]
        return None

    def usage(self, wire: str) -> tuple[int, int] | None:
        """(prompt, completion) tokens of the stream's final usage, if it sent one."""
        found = None
        for _, name, data in self.events:
            payload = _json(data) or {}
            if wire == "openai" and payload.get("usage"):
                found = usage_numbers(wire, payload)
            elif wire == "anthropic" and name == "message_delta":
                found = payload["usage"]["input_tokens"], payload["usage"]["output_tokens"]
            elif wire == "gemini" and payload.get("candidates") and "finishReason" in payload["candidates"][0]:
                found = usage_numbers(wire, payload)
        return found

    def terminated(self, wire: str) -> bool:
        """Whether the wire's end-of-stream marker arrived (``[DONE]``, ``message_stop``)."""
        if wire == "openai":
            return any(data == "[DONE]" for _, _, data in self.events)
        if wire == "anthropic":
            return any(name == "message_stop" for _, name, _ in self.events)
        raise ValueError("Gemini's SSE stream has no end-of-stream marker")


def stream(
    emu: Any,
    wire: str,
    model: str,
    messages: list[dict[str, Any]],
    headers: dict[str, str] | None = None,
    *,
    read_timeout: float = 5.0,
    json_array: bool = False,
) -> Stream:
    """One streamed call, timing every event from the moment the response headers arrived."""
    url, base_headers, body = chat_request(emu, wire, model, messages, stream=True, json_array=json_array)
    timeout = httpx.Timeout(5.0, read=read_timeout)
    started = time.monotonic()
    with (
        httpx.Client(timeout=timeout, verify=TLS) as client,
        client.stream("POST", url, json=body, headers={**base_headers, **(headers or {})}) as response,
    ):
        got = Stream(response.status_code, time.monotonic() - started)
        opened, buffer = time.monotonic(), b""
        try:
            for chunk in response.iter_raw():
                at = time.monotonic() - opened
                got.raw += chunk
                buffer += chunk
                while (cut := _event_end(buffer)) is not None:
                    block, buffer = buffer[: cut[0]], buffer[cut[1] :]
                    got.events.append((at, *_sse_block(block.decode())))
        except httpx.HTTPError as exc:
            got.error = exc
    return got


def _event_end(buffer: bytes) -> tuple[int, int] | None:
    ends = [(i, i + len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := buffer.find(sep)) != -1]
    return min(ends) if ends else None


def _sse_block(block: str) -> tuple[str | None, str]:
    name, data = None, []
    for line in block.replace("\r\n", "\n").split("\n"):
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    return name, "\n".join(data)


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _delta_text(wire: str, name: str | None, payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    if wire == "openai":
        choices = payload.get("choices") or [{}]
        return (choices[0].get("delta") or {}).get("content") or ""
    if wire == "anthropic":
        delta = payload.get("delta") or {}
        return delta.get("text", "") if name == "content_block_delta" else ""
    candidates = payload.get("candidates") or [{}]
    return "".join(p.get("text", "") for p in (candidates[0].get("content") or {}).get("parts", []))


def split_at(items: list[tuple[float, str]], threshold_s: float) -> tuple[str, float | None]:
    """The text that arrived within ``threshold_s`` of the headers, and when the first later text came."""
    before = []
    for at, text in items:
        if at >= threshold_s:
            return "".join(before), at
        before.append(text)
    return "".join(before), None
