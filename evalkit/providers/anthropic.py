"""Anthropic Messages wire format: ``POST {base}/v1/messages``.

Differences from OpenAI's shape that matter here:

* ``max_tokens`` is required; :data:`DEFAULT_MAX_TOKENS` is sent when the request has none.
* The system prompt is a top-level ``system`` field, not a message; tool calls and
  tool results are ``tool_use`` / ``tool_result`` content blocks.
* There is no JSON mode: ``response_format`` becomes an instruction appended to
  the system prompt (:func:`json_instruction`), so the answer is JSON by request,
  not by guarantee.
* Usage counts the prompt in three disjoint parts (``input_tokens``,
  ``cache_read_input_tokens``, ``cache_creation_input_tokens``); evalkit's
  ``input_tokens`` is their sum. Thinking tokens are billed inside
  ``output_tokens``; only the newer usage shape splits them out
  (``output_tokens_details.thinking_tokens``). Without it ``reasoning_tokens`` is 0,
  meaning "not separated by the vendor", never a local estimate.
* With server-side compaction the top-level usage covers only the final sampling
  pass; ``usage.iterations`` lists every pass (the compaction summary included),
  and their sum is what was billed, so it wins when present.
* A prefill (a final assistant turn, ``_prefill.py``) is sent as the last
  ``assistant`` message without its trailing whitespace: Anthropic answers 400
  "final assistant content cannot end with trailing whitespace". The model
  continues the stripped text, so its answer usually starts with that
  whitespace again; what the caller already had is dropped from the answer.
* A stream is complete at ``message_stop``, or, when the body ends cleanly
  without it, once ``message_delta`` carried the ``stop_reason`` (with the
  final usage). A body that ends before any ``stop_reason`` is a cut answer
  (:class:`~evalkit.errors.StreamInterruptedError`), never a success.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..errors import ConfigError, InvalidResponseError, ProviderError, StreamInterruptedError
from ..types import ChatRequest, FinishReason, Message, ToolCall, Usage
from ._prefill import PrefillJoin, prefill_text
from ._wire import HttpCall, Reply, stream_event
from .anthropic_errors import anthropic_error_from_payload, classify_anthropic_error

__all__ = ["AnthropicStream", "AnthropicWire", "anthropic_messages", "anthropic_usage", "json_instruction"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Sent when the request sets no ``max_tokens`` (Anthropic rejects a request without one)."""

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    # A server tool loop paused; the turn is complete as far as this call goes.
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    # Newer models stop here when the context window, not max_tokens, ran out.
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}

_USAGE_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")


def json_instruction(response_format: Any) -> str:
    """The system-prompt instruction that stands in for JSON mode (Anthropic has none)."""
    if response_format == "json":
        return "Respond with a single valid JSON object and nothing else: no prose, no code fences."
    schema = json.dumps(dict(response_format), separators=(",", ":"))
    return ("Respond with a single valid JSON value matching this JSON schema and nothing else "
            f"(no prose, no code fences): {schema}")


def _system_prompt(request: ChatRequest) -> str:
    parts = [request.system] if request.system else []
    parts += [m.content for m in request.messages if m.role == "system" and m.content]
    if request.response_format is not None:
        parts.append(json_instruction(request.response_format))
    return "\n\n".join(parts)


def _tool_input(call: ToolCall) -> Any:
    if not call.arguments.strip():
        return {}
    try:
        return json.loads(call.arguments)
    except ValueError:
        raise ConfigError(f"arguments of tool call {call.id!r} ({call.name}) are not JSON",
                          field="messages") from None


def anthropic_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The conversation as Anthropic ``messages`` (system turns are left to ``system``).

    Tool results become ``tool_result`` blocks in a user turn; consecutive results
    (parallel calls) and a user text that follows them share that one turn, as
    Anthropic requires every result of one assistant turn in the next user turn.
    """
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_input(c)}
                       for c in m.tool_calls]
            out.append({"role": "assistant", "content": blocks})
        elif m.role == "user" and out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
            out[-1]["content"].append({"type": "text", "text": m.content})
        else:
            out.append({"role": m.role, "content": m.content})
    if out and messages and messages[-1].role == "assistant" and isinstance(out[-1]["content"], str):
        # A prefill: Anthropic refuses a final assistant text ending in whitespace (400).
        out[-1]["content"] = out[-1]["content"].rstrip()
    return out


class AnthropicWire:
    """Anthropic Messages: ``POST {base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    name = "anthropic"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def build(self, request: ChatRequest, model: str, stream: bool) -> HttpCall:
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "messages": anthropic_messages(request.messages),
        }
        if system := _system_prompt(request):
            body["system"] = system
        # Anthropic has no seed; it is not sent.
        for name in ("temperature", "top_p"):
            if (value := getattr(request, name)) is not None:
                body[name] = value
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in request.tools
            ]
        if stream:
            body["stream"] = True
        return HttpCall(path="/v1/messages", body=body, headers={"anthropic-version": API_VERSION},
                        stream_format="sse" if stream else None)

    def parse(self, body: Any, request: ChatRequest | None = None) -> Reply:
        reply = self._parse(body)
        if (join := _join(request)) is not None:
            reply.text = join.apply(reply.text)
        return reply

    def _parse(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            raise InvalidResponseError("response body is not a JSON object")
        if body.get("type") == "error":
            raise anthropic_error_from_payload(body.get("error"), status=None, request_id=body.get("request_id"))
        content = body.get("content")
        if not isinstance(content, list):
            raise InvalidResponseError("response has no content list")
        text, reasoning, calls = [], [], []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                text.append(block.get("text") or "")
            elif kind == "thinking":
                reasoning.append(block.get("thinking") or "")
            elif kind == "tool_use":
                calls.append(ToolCall(id=block.get("id") or "", name=block.get("name") or "",
                                      arguments=json.dumps(block.get("input") or {})))
            # redacted_thinking, compaction and server-tool blocks carry no text for the caller.
        tool_calls = tuple(calls)
        return Reply(
            text="".join(text),
            finish_reason=_finish(body.get("stop_reason"), tool_calls),
            model=body.get("model") or "",
            usage=anthropic_usage(body.get("usage")),
            tool_calls=tool_calls,
            reasoning="".join(reasoning),
            request_id=body.get("id") or None,
            refusal=_stop_explanation(body.get("stop_details")),
        )

    def stream_parser(self, request: ChatRequest | None = None) -> AnthropicStream:
        return AnthropicStream(_join(request))

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_anthropic_error(status, headers, body)


def _join(request: ChatRequest | None) -> PrefillJoin | None:
    """What drops, from a prefilled answer, the whitespace the caller's prefill ended with and we stripped."""
    prefill = prefill_text(request) if request is not None else None
    stripped = prefill[len(prefill.rstrip()):] if prefill else ""
    return PrefillJoin(stripped, whole=False) if stripped else None


class AnthropicStream:
    """Accumulates a Messages SSE stream; complete after ``message_stop`` or a ``stop_reason``.

    Usage arrives twice: ``message_start`` carries the prompt side and an initial
    output count, ``message_delta`` the cumulative totals (older API versions send
    only ``output_tokens`` there; newer ones repeat the prompt side, and with
    compaction may report cache reads only in ``message_start``). Each count is
    therefore the larger of the two reports. ``join`` drops the whitespace a
    prefill was stripped of from the start of the text.
    """

    def __init__(self, join: PrefillJoin | None = None) -> None:
        self.started = False
        self._join = join
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, list[Any]] = {}  # block index -> [id, name, [json parts], start input]
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._stop_details: Any = None
        self._model = ""
        self._id = ""
        self._done = False

    def feed(self, data: str, event: str | None = None) -> str:
        chunk = stream_event(data)
        kind = chunk.get("type")
        if kind == "content_block_delta":
            return self._delta(chunk.get("index", 0), chunk.get("delta") or {})
        if kind == "content_block_start":
            self._block_start(chunk.get("index", 0), chunk.get("content_block") or {})
        elif kind == "message_start":
            message = chunk.get("message") or {}
            self._model = message.get("model") or ""
            self._id = message.get("id") or ""
            self._merge_usage(message.get("usage"))
        elif kind == "message_delta":
            delta = chunk.get("delta") or {}
            self._stop_reason = delta.get("stop_reason") or self._stop_reason
            self._stop_details = delta.get("stop_details") or self._stop_details
            self._merge_usage(chunk.get("usage"))
            if self._stop_reason is not None and self._join is not None:
                self._join.flush()  # what it still holds is whitespace the caller's prefill ended with
        elif kind == "message_stop":
            self._done = True
        elif kind == "error" or event == "error":
            error = anthropic_error_from_payload(chunk.get("error"), status=None, request_id=chunk.get("request_id"))
            raise StreamInterruptedError(f"error inside the stream: {error.code}: {error.message}",
                                         code=error.kind.value, request_id=error.request_id)
        # ping, content_block_stop and unknown events carry nothing to keep.
        return ""

    def _delta(self, index: int, delta: Mapping[str, Any]) -> str:
        kind = delta.get("type")
        if kind == "text_delta":
            self.started = True
            return self._text_out(delta.get("text") or "")
        if kind == "thinking_delta":
            self.started = True
            self._reasoning.append(delta.get("thinking") or "")
        elif kind == "input_json_delta":
            self.started = True
            if (call := self._calls.get(index)) is not None:
                call[2].append(delta.get("partial_json") or "")
        # signature_delta and compaction_delta are opaque to the caller.
        return ""

    def _block_start(self, index: int, block: Mapping[str, Any]) -> None:
        kind = block.get("type")
        if kind == "tool_use":
            self.started = True
            self._calls[index] = [block.get("id") or "", block.get("name") or "", [], block.get("input")]
        elif kind == "text" and block.get("text"):
            self.started = True
            self._text_out(block["text"])
        elif kind == "thinking" and block.get("thinking"):
            self.started = True
            self._reasoning.append(block["thinking"])

    def _text_out(self, text: str) -> str:
        """``text`` as the caller sees it (a prefill's repeated whitespace dropped), kept for the reply."""
        if self._join is not None:
            text = self._join.feed(text)
        if text:
            self._text.append(text)
        return text

    def _merge_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        merged = self._usage
        for name, value in usage.items():
            if isinstance(value, int) and not isinstance(value, bool):
                merged[name] = max(merged.get(name) or 0, value)
            elif value is not None:
                merged[name] = value  # iterations, output_tokens_details: the latest report wins

    def partial(self) -> Reply:
        calls = tuple(ToolCall(id=i, name=n, arguments=_stream_arguments(parts, start))
                      for _, (i, n, parts, start) in sorted(self._calls.items()))
        return Reply(
            text="".join(self._text),
            finish_reason=_finish(self._stop_reason, calls),
            model=self._model,
            usage=anthropic_usage(self._usage),
            tool_calls=calls,
            reasoning="".join(self._reasoning),
            request_id=self._id or None,
            refusal=_stop_explanation(self._stop_details),
        )

    def finish(self) -> Reply:
        if not self._done and self._stop_reason is None:
            # Without message_stop, only message_delta's stop_reason says the answer is whole.
            raise StreamInterruptedError("stream ended before its stop_reason (and before message_stop)")
        return self.partial()


def _stream_arguments(parts: list[str], start_input: Any) -> str:
    """Tool arguments in the same text as the non-streamed parse gives (``json.dumps(input)``)."""
    raw = "".join(parts)
    if not raw.strip():
        return json.dumps(start_input or {})
    try:
        # Once per call at the end, not per chunk: normalises whitespace to the non-stream form.
        return json.dumps(json.loads(raw))
    except ValueError:
        return raw


def _stop_explanation(details: Any) -> str:
    """Why a refusal happened, from ``stop_details`` (``{"type": "refusal", "category", "explanation"}``)."""
    if not isinstance(details, dict):
        return ""
    words = [str(details[k]) for k in ("category", "explanation") if details.get(k)]
    return ": ".join(words)


def _finish(reason: str | None, calls: tuple[ToolCall, ...]) -> FinishReason:
    if reason is None:
        return FinishReason.TOOL_CALLS if calls else FinishReason.STOP
    return _FINISH.get(reason, FinishReason.ERROR)


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) else 0


def anthropic_usage(usage: Mapping[str, Any] | None) -> Usage | None:
    """Usage in evalkit's meaning from an Anthropic ``usage`` object (``None`` when absent)."""
    if not usage:
        return None
    iterations = usage.get("iterations")
    passes = [p for p in iterations if isinstance(p, dict)] if isinstance(iterations, list) else []
    # Compaction: the top level is the last pass only; every pass was billed.
    parts: list[Mapping[str, Any]] = [*passes] or [usage]
    fresh, read, written, output = (sum(_count(p, name) for p in parts) for name in _USAGE_FIELDS)
    details = usage.get("output_tokens_details")
    thinking = _count(details, "thinking_tokens") if isinstance(details, dict) else 0
    return Usage(
        input_tokens=fresh + read + written,
        cached_input_tokens=read,
        cache_write_tokens=written,
        output_tokens=output,
        reasoning_tokens=thinking,
    )
