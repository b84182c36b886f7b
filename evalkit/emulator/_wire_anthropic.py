"""Anthropic Messages on the wire: ``POST /v1/messages`` (+ ``count_tokens``) and ``GET /v1/models``.

Shapes follow shared/wire/anthropic (``test_anthropic_model_instructions.yaml``,
``test_request_stream_fallback_for_high_max_tokens.yaml``): ``message_start``,
``content_block_start``, ``ping``, ``content_block_delta``..., ``content_block_stop``,
``message_delta``, ``message_stop``, each framed ``event: X\\ndata: {json}\\n\\n``.

Extended thinking (``thinking: {type: "enabled", budget_tokens: N}``, as in
``test_anthropic_model_thinking_part[_stream].yaml``) happens only when asked
for: ``max_tokens`` includes the thinking tokens, so ``budget_tokens`` must be
at least 1,024 and below ``max_tokens`` (a 400 otherwise, as the API answers).
The answer starts with a ``thinking`` block (a short summary and a signature)
and ``output_tokens`` bills thinking and text together.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from ._simulate import CHUNK_TOKENS, ChatCall, Generation
from ._specs import Fleet, ModelSpec
from ._tokens import chunk_tokens, split_tokens
from ._wire_base import ErrorShape, WireRenderer
from ._wire_common import (
    ErrorInfo,
    ReplyContext,
    StreamEvent,
    WireError,
    base62,
    compact_json,
    float_or_none,
    int_or_none,
    rfc3339,
)
from .answers import content_text

__all__ = ["WIRE", "AnthropicWire"]

_MIN_THINKING_BUDGET = 1024
_THINKING_DOCS = (
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
)
_FINAL_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
"""What ``message_delta`` reports of the usage."""


class AnthropicWire(WireRenderer):
    """Anthropic's Messages: compact JSON, named SSE events ending ``message_stop``, ``anthropic-ratelimit-*``."""

    name = "anthropic"
    finish_reasons: ClassVar[Mapping[str, str]] = {
        "stop": "end_turn",
        "stop_sequence": "stop_sequence",
        "length": "max_tokens",
        "content_filter": "refusal",
    }
    not_an_object = "Request body must be a JSON object"
    missing_model = ("model: Field required", "model")
    default_error_message = "Invalid request"
    malformed_cut = (b'"content"', 13)
    broken_event_name = "content_block_delta"
    request_id_header = "request-id"
    errors: ClassVar[Mapping[str, ErrorShape]] = {
        "rate_limit": ErrorShape(429, "rate_limit_error"),
        "server": ErrorShape(500, "api_error", "Internal server error"),
        "unavailable": ErrorShape(503, "overloaded_error", "Service unavailable"),
        "overloaded": ErrorShape(529, "overloaded_error", "Overloaded"),
        "context_length": ErrorShape(
            400, "invalid_request_error", "prompt is too long: {prompt_tokens} tokens > {window} maximum"
        ),
        "auth": ErrorShape(401, "authentication_error", "x-api-key header is required"),
        "not_found": ErrorShape(404, "not_found_error", "model: {model}"),
        "bad_request": ErrorShape(400, "invalid_request_error"),
    }

    def read_request(
        self, body: Mapping[str, Any], *, model: str, stream: bool | None, query: Mapping[str, str]
    ) -> ChatCall:
        """Values Anthropic rejects, in its words (field types are ``_request_checks.anthropic_body``'s)."""
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise WireError("max_tokens: Field required", "max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise WireError("max_tokens: Input should be greater than or equal to 1", "max_tokens")
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise WireError("messages: Field required", "messages")
        messages = _messages(body.get("system"), raw)
        temperature = float_or_none(body.get("temperature"))
        if temperature is not None and not 0 <= temperature <= 1:
            bound = "less than or equal to 1" if temperature > 1 else "greater than or equal to 0"
            raise WireError(f"temperature: Input should be {bound}", "temperature")
        return self.chat_call(
            model,
            messages,
            max_tokens=max_tokens,
            stop=body.get("stop_sequences"),
            stream=bool(body.get("stream")),
            cache_control=_mentions_cache_control(body.get("system")) or _mentions_cache_control(raw),
            temperature=temperature,  # Messages has no seed: samples agree
            thinking_budget=_thinking_budget(body.get("thinking"), max_tokens),
            cap_includes_thinking=True,
        )

    def check_call(self, call: ChatCall, spec: ModelSpec) -> None:
        """Thinking on a model that cannot think."""
        if call.thinking_budget and not spec.thinks:
            raise WireError(f"thinking: extended thinking is not supported by {spec.name}", "thinking")

    def count_request(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """count_tokens takes no ``max_tokens``; a thinking budget must not be checked against this stand-in."""
        return {"max_tokens": 1, **{k: v for k, v in body.items() if k != "thinking"}}

    def new_request_id(self) -> str:
        """``req_011C`` and 20 base-62 characters, as Anthropic's ids look."""
        return "req_011C" + base62(uuid.uuid4().hex, 20)

    # -- a whole body: ``message``

    def body(self, gen: Generation, ctx: ReplyContext) -> dict[str, Any]:
        """The non-streamed ``message``."""
        return {
            "content": _content(gen),
            "id": _message_id(gen),
            "model": ctx.model,
            "role": "assistant",
            "stop_reason": self.finish_reason(gen),
            "stop_sequence": gen.stop_sequence,
            "type": "message",
            "usage": _usage(gen),
        }

    # -- a stream: message_start, blocks (ping after the first block's start), message_delta, message_stop

    def event_name(self, payload: Any) -> str | None:
        """Every Messages event is named by its ``type``."""
        return str(payload["type"])

    def answer_events(self, gen: Generation, ctx: ReplyContext) -> list[StreamEvent]:
        """Events up to ``message_delta``, as recorded."""
        start_usage = {**_usage(gen, output_tokens=1), "inference_geo": "not_available"}  # as recorded in streams
        start = {
            "type": "message_start",
            "message": {
                "model": ctx.model,
                "id": _message_id(gen),
                "type": "message",
                "role": "assistant",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        }
        events = [self.event(start, ctx, "head")]
        for index, block in enumerate(_content(gen)):
            events += self._block_events(gen, ctx, block, index)
            if index == 0:
                # After the first block's start, as recorded.
                events.insert(2, self.event({"type": "ping"}, ctx, "head"))
        final_usage = {k: v for k, v in _usage(gen).items() if k in _FINAL_USAGE}
        delta = {"stop_reason": self.finish_reason(gen), "stop_sequence": gen.stop_sequence}
        events.append(self.event({"type": "message_delta", "delta": delta, "usage": final_usage}, ctx, "tail"))
        return events

    def _block_events(
        self, gen: Generation, ctx: ReplyContext, block: dict[str, Any], index: int
    ) -> list[StreamEvent]:
        """One content block's start, deltas and stop.

        Thinking streams as ``test_anthropic_model_thinking_part_stream.yaml`` does:
        ``thinking_delta`` pieces, an empty one, then one ``signature_delta``. It all
        goes out at the first token's time (the hidden reasoning is inside the TTFT).
        """
        kind = block["type"]
        empty: dict[str, Any] = {"type": kind, "text": ""}
        if kind == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
        start = {"type": "content_block_start", "index": index, "content_block": empty}
        events = [self.event(start, ctx, "head" if index == 0 else "content")]
        if kind == "thinking":
            pieces = [text for text, _ in chunk_tokens(split_tokens(block["thinking"]), CHUNK_TOKENS)] + [""]
            deltas = [({"type": "thinking_delta", "thinking": p}, int(i == 0)) for i, p in enumerate(pieces)]
            deltas.append(({"type": "signature_delta", "signature": block["signature"]}, 0))
        else:
            deltas = [({"type": "text_delta", "text": text}, tokens) for text, tokens in gen.chunks]
        for delta, tokens in deltas:
            payload = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(self.event(payload, ctx, "content", tokens, visible=kind == "text"))
        # The text block's stop starts the ending a cut drops; a thinking block before it is body.
        stop = {"type": "content_block_stop", "index": index}
        events.append(self.event(stop, ctx, "tail" if kind == "text" else "content"))
        return events

    def end_of_stream(self, ctx: ReplyContext) -> bytes | None:
        """The ``message_stop`` event."""
        return self.event({"type": "message_stop"}, ctx, "tail").data

    def broken_json(self, gen: Generation) -> bytes:
        """A ``content_block_delta`` cut inside its delta."""
        return b'{"type":"content_block_delta","index":0,"delta":{"type'

    # -- headers

    def rate_headers(self, ctx: ReplyContext) -> list[tuple[str, str]]:
        """The ``anthropic-ratelimit-*`` set; resets as RFC 3339 instants."""
        r = ctx.rate
        headers = [
            ("anthropic-ratelimit-requests-limit", str(r.limit_requests)),
            ("anthropic-ratelimit-requests-remaining", str(r.remaining_requests)),
            ("anthropic-ratelimit-requests-reset", rfc3339(r.reset_requests_s)),
        ]
        for budget in ("tokens", "input-tokens", "output-tokens"):
            headers += [
                (f"anthropic-ratelimit-{budget}-limit", str(r.limit_tokens)),
                (f"anthropic-ratelimit-{budget}-remaining", str(r.remaining_tokens)),
                (f"anthropic-ratelimit-{budget}-reset", rfc3339(r.reset_tokens_s)),
            ]
        return headers

    # -- errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}``

    def rate_limit_message(self, ctx: ReplyContext, info: ErrorInfo) -> str:
        """Anthropic's 429 message ("This request would exceed your organization's rate limit of 30,000 input
        tokens per minute (org: ..., model: ...). For details, ..."), for the budget that ran out."""
        r = ctx.rate
        budget = f"{r.limit_requests:,} requests" if info.rate_budget in (None, "requests") else \
            f"{r.limit_tokens:,} tokens"
        return (
            f"This request would exceed your organization's rate limit of {budget} per minute (org: emulator, "
            f"model: {ctx.model}). For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see "
            "the response headers for current usage. Please reduce the prompt length or the maximum tokens "
            "requested, or try again later. You may also contact sales at https://claude.com/contact-sales to "
            "discuss your options for a rate limit increase."
        )

    def error_body(self, kind: str, shape: ErrorShape, message: str, ctx: ReplyContext, info: ErrorInfo) -> bytes:
        """The error type and message, and the request id again."""
        error = {"type": shape.type, "message": message}
        return compact_json({"type": "error", "error": error, "request_id": ctx.request_id})

    # -- models and token counts

    def models_payload(self, fleet: Fleet, created: int) -> dict[str, Any]:
        """``GET /v1/models`` as Anthropic lists models (only those served on this wire)."""
        data = [self.model_payload(m, created) for m in self.listed(fleet)]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def model_payload(self, spec: ModelSpec, created: int) -> dict[str, Any]:
        """``GET /v1/models/{id}`` as Anthropic describes a model."""
        stamp = datetime.fromtimestamp(created, tz=UTC).isoformat().replace("+00:00", "Z")
        return {"type": "model", "id": spec.name, "display_name": spec.name, "created_at": stamp}

    def count_tokens_payload(self, prompt_tokens: int) -> dict[str, Any]:
        """``POST /v1/messages/count_tokens``."""
        return {"input_tokens": prompt_tokens}


WIRE = AnthropicWire()


def _messages(system: Any, raw: list[Any]) -> tuple[tuple[str, str], ...]:
    messages = [("system", content_text(system))] if system else []
    for i, message in enumerate(raw):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise WireError(f"messages.{i}.role: Input should be 'user' or 'assistant'", f"messages.{i}.role")
        messages.append((str(message["role"]), _block_text(message.get("content"))))
    return tuple(messages)


def _thinking_budget(thinking: Any, max_tokens: int) -> int:
    """Thinking tokens allowed: 0 unless enabled; -1 (up to the cap) for adaptive; else ``budget_tokens``."""
    if thinking is None:
        return 0
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind == "disabled":
        return 0
    if kind == "adaptive":
        return -1
    if kind != "enabled":
        raise WireError(
            f"thinking: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive'",
            "thinking.type",
        )
    budget = int_or_none(thinking.get("budget_tokens"))
    if budget is None:
        raise WireError("thinking.enabled.budget_tokens: Field required", "thinking.budget_tokens")
    if budget < _MIN_THINKING_BUDGET:
        raise WireError(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{_MIN_THINKING_BUDGET}",
            "thinking.budget_tokens",
        )
    if budget >= max_tokens:
        raise WireError(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation "
            f"at {_THINKING_DOCS}",
            "max_tokens",
        )
    return budget


def _block_text(content: Any) -> str:
    if isinstance(content, list):
        # tool_result blocks nest their text one level down
        return "".join(
            _block_text(block.get("content")) if block.get("type") == "tool_result" else content_text([block])
            for block in content
            if isinstance(block, Mapping)
        )
    return content_text(content)


def _mentions_cache_control(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "cache_control" in value or any(_mentions_cache_control(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_cache_control(v) for v in value)
    return False


def _message_id(gen: Generation) -> str:
    return "msg_01" + base62(gen.response_id, 22)


def _usage(gen: Generation, *, output_tokens: int | None = None) -> dict[str, Any]:
    u = gen.usage
    return {
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": u.cache_write},
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cached,
        # Anthropic's input_tokens excludes cache reads and writes.
        "input_tokens": max(u.prompt - u.cached - u.cache_write, 0),
        "output_tokens": u.completion if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def _content(gen: Generation) -> list[dict[str, Any]]:
    if gen.empty or gen.finish == "content_filter":
        return []
    thinking = (
        [{"signature": _signature(gen), "thinking": gen.thinking, "type": "thinking"}] if gen.thinking else []
    )
    # Thinking that ate the whole cap leaves no text block, as the API answers.
    text = [{"text": gen.text, "type": "text"}] if gen.text or not thinking else []
    return thinking + text


def _signature(gen: Generation) -> str:
    return "Eq" + base62(gen.response_id, 40)
