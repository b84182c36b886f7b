"""OpenAI Chat Completions on the wire: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Shapes follow the recordings in shared/wire/openai (``test_chat.yaml``,
``test_chat_stream_with_include_usage_option.yaml``): the same keys, the same
chunk sequence (role chunk, content chunks, finish chunk, usage chunk with
``choices: []`` when ``stream_options.include_usage``, ``data: [DONE]``).

``max_completion_tokens`` (or ``max_tokens``) bounds visible *and* reasoning
tokens: "an upper bound for the number of tokens that can be generated for a
completion, including visible output tokens and reasoning tokens". A reasoning
model always thinks (dynamically), and its reasoning eats the cap first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from ._simulate import ChatCall, Generation
from ._specs import Fleet, ModelSpec
from ._wire_base import ErrorShape, WireRenderer
from ._wire_common import (
    ErrorInfo,
    ReplyContext,
    StreamEvent,
    WireError,
    compact_json,
    float_or_none,
    go_duration,
    int_or_none,
)
from .answers import content_text

__all__ = ["WIRE", "OpenAIWire"]

_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "content_filter": "content_filter"}
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_FINGERPRINT = "fp_evalkit0"
_RATE_LIMITS_URL = "Visit https://platform.openai.com/account/rate-limits to learn more."


class OpenAIWire(WireRenderer):
    """OpenAI's Chat Completions: compact JSON, ``data:`` events, ``data: [DONE]``, ``x-ratelimit-*``."""

    name = "openai"
    finish_reasons = _FINISH
    not_an_object = "We could not parse the JSON body of your request."
    missing_model = ("you must provide a model parameter", None)
    default_error_message = "Invalid request."
    malformed_cut = (b'"choices"', 14)
    error_content_type = "application/json; charset=utf-8"
    lists_every_model = True
    errors: ClassVar[Mapping[str, ErrorShape]] = {
        "rate_limit": ErrorShape(429, "requests", code="rate_limit_exceeded"),
        "server": ErrorShape(
            500, "server_error", "The server had an error while processing your request. Sorry about that!"
        ),
        "unavailable": ErrorShape(503, "server_error", "The engine is currently overloaded, please try again later."),
        "overloaded": ErrorShape(529, "server_error", "The server is overloaded, please try again later.",
                                 "overloaded"),
        "context_length": ErrorShape(
            400,
            "invalid_request_error",
            "This model's maximum context length is {window} tokens. However, your messages resulted in "
            "{prompt_tokens} tokens. Please reduce the length of the messages.",
            "context_length_exceeded",
        ),
        "auth": ErrorShape(
            401,
            "invalid_request_error",
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
            "username) if you're accessing the API from your browser and are prompted for a username and "
            "password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
        ),
        "not_found": ErrorShape(
            404,
            "invalid_request_error",
            "The model `{model}` does not exist or you do not have access to it.",
            "model_not_found",
        ),
        "bad_request": ErrorShape(400, "invalid_request_error"),
    }

    def read_request(
        self, body: Mapping[str, Any], *, model: str, stream: bool | None, query: Mapping[str, str]
    ) -> ChatCall:
        """Values OpenAI rejects, in its words (field types are ``_request_checks.openai_body``'s)."""
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise WireError(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
                "array instead.",
                "messages",
                code="empty_array",
            )
        messages = _messages(raw)
        max_tokens = _max_tokens(body)
        temperature = _temperature(body)
        stop = body.get("stop") or ()  # one string, or a list of them
        options = body.get("stream_options") if isinstance(body.get("stream_options"), Mapping) else {}
        response_format = body.get("response_format") if isinstance(body.get("response_format"), Mapping) else {}
        return self.chat_call(
            model,
            messages,
            max_tokens=max_tokens,
            stop=[stop] if isinstance(stop, str) else stop,
            stream=bool(body.get("stream")),
            include_usage=bool(options.get("include_usage")),
            json_mode=response_format.get("type") in ("json_object", "json_schema"),
            seed=int_or_none(body.get("seed")),
            temperature=temperature,
            thinking_budget=-1,  # dynamic: reasoning models decide, bounded by the cap itself
            cap_includes_thinking=True,
        )

    # -- a whole body: ``chat.completion``

    def body(self, gen: Generation, ctx: ReplyContext) -> dict[str, Any]:
        """The non-streamed ``chat.completion``."""
        choices = [] if gen.empty else [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": gen.text if gen.finish != "content_filter" else None,
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": self.finish_reason(gen),
        }]
        return {
            "id": _completion_id(gen),
            "object": "chat.completion",
            "created": ctx.created,
            "model": ctx.model,
            "choices": choices,
            "usage": _usage(gen),
            "system_fingerprint": _FINGERPRINT,
        }

    # -- a stream: role chunk, content chunks, finish chunk, usage chunk, ``data: [DONE]``

    def answer_events(self, gen: Generation, ctx: ReplyContext) -> list[StreamEvent]:
        """As recorded: the usage chunk (``choices: []``) only with ``stream_options.include_usage``."""
        events: list[StreamEvent] = []
        if not gen.empty:
            opening = _choice({"role": "assistant", "content": "", "refusal": None})
            events.append(self.event(_chunk(gen, ctx, opening), ctx, "head"))
            for text, tokens in gen.chunks:
                events.append(self.event(_chunk(gen, ctx, _choice({"content": text})), ctx, "content", tokens))
            events.append(self.event(_chunk(gen, ctx, _choice({}, self.finish_reason(gen))), ctx, "tail"))
        if ctx.call is not None and ctx.call.include_usage:
            events.append(self.event(_chunk(gen, ctx, [], _usage(gen)), ctx, "tail"))
        return events

    def end_of_stream(self, ctx: ReplyContext) -> bytes | None:
        """``data: [DONE]``."""
        return self.frame(b"[DONE]", ctx)

    def broken_json(self, gen: Generation) -> bytes:
        """A chunk cut inside its first delta."""
        return b'{"id":"' + _completion_id(gen).encode() + b'","choices":[{"delta":{"content":"'

    # -- headers

    def leading_headers(self, processing_ms: int) -> list[tuple[str, str]]:
        """The API version and the processing time."""
        return [("openai-version", "2020-10-01"), ("openai-processing-ms", str(processing_ms))]

    def rate_headers(self, ctx: ReplyContext) -> list[tuple[str, str]]:
        """The ``x-ratelimit-*`` set; resets in Go's duration format."""
        r = ctx.rate
        return [
            ("x-ratelimit-limit-requests", str(r.limit_requests)),
            ("x-ratelimit-limit-tokens", str(r.limit_tokens)),
            ("x-ratelimit-remaining-requests", str(r.remaining_requests)),
            ("x-ratelimit-remaining-tokens", str(r.remaining_tokens)),
            ("x-ratelimit-reset-requests", go_duration(r.reset_requests_s)),
            ("x-ratelimit-reset-tokens", go_duration(r.reset_tokens_s)),
        ]

    # -- errors: ``{"error": {"message", "type", "param", "code"}}``

    def retry_headers(self, seconds: float) -> list[tuple[str, str]]:
        """``retry-after`` and ``retry-after-ms`` (what OpenAI's SDK reads first)."""
        millis = str(math.ceil(round(seconds * 1000, 6)))
        return [*super().retry_headers(seconds), ("retry-after-ms", millis)]

    def rate_limit_message(self, ctx: ReplyContext, info: ErrorInfo) -> str:
        """OpenAI's 429 message, for the budget that ran out.

        ("Rate limit reached for gpt-4o in organization org-... on tokens per min (TPM): Limit 30000, Used
        29937, Requested 385. Please try again in 644ms."; "Request too large for ... The input or output
        tokens must be reduced in order to run successfully.")
        """
        r, budget = ctx.rate, info.rate_budget or "requests"
        org = f"for {ctx.model} in organization org-emulator"
        if budget == "too_large":
            return (f"Request too large {org} on tokens per min (TPM): Limit {r.limit_tokens}, Requested "
                    f"{info.requested_tokens}. The input or output tokens must be reduced in order to run "
                    f"successfully. {_RATE_LIMITS_URL}")
        if budget == "tokens":
            what, limit, used, asked = ("tokens per min (TPM)", r.limit_tokens, r.limit_tokens - r.remaining_tokens,
                                        info.requested_tokens)
        else:
            what, limit, used, asked = ("requests per min (RPM)", r.limit_requests,
                                        r.limit_requests - r.remaining_requests, 1)
        return (f"Rate limit reached {org} on {what}: Limit {limit}, Used {used}, Requested {asked}. "
                f"Please try again in {_wait_text(info.retry_after or 0.0)}. {_RATE_LIMITS_URL}")

    def error_body(self, kind: str, shape: ErrorShape, message: str, ctx: ReplyContext, info: ErrorInfo) -> bytes:
        """A 429's ``type`` names the budget (``requests``/``tokens``); a context-length error's ``param`` is
        ``messages``."""
        err_type, param = shape.type, info.param
        if kind == "rate_limit":
            err_type, param = ("tokens" if info.rate_budget in ("tokens", "too_large") else "requests"), None
        elif kind == "context_length":
            param = "messages"
        error = {"message": message, "type": err_type, "param": param, "code": shape.code or info.code}
        return compact_json({"error": error})

    # -- models

    def models_payload(self, fleet: Fleet, created: int) -> dict[str, Any]:
        """``GET /v1/models``: every model of the fleet."""
        return {"object": "list", "data": [self.model_payload(m, created) for m in self.listed(fleet)]}

    def model_payload(self, spec: ModelSpec, created: int) -> dict[str, Any]:
        """``GET /v1/models/{id}``."""
        return {"id": spec.name, "object": "model", "created": created, "owned_by": "evalkit-emulator"}


WIRE = OpenAIWire()


def _messages(raw: list[Any]) -> tuple[tuple[str, str], ...]:
    messages = []
    for i, message in enumerate(raw):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in _ROLES:
            raise WireError(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'function', 'tool', and 'developer'.",
                f"messages[{i}].role",
                code="invalid_value",
            )
        role = "system" if role == "developer" else str(role)
        messages.append((role, content_text(message.get("content"))))
    return tuple(messages)


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = int_or_none(body.get(field))
    if max_tokens is not None and max_tokens < 1:
        raise WireError(
            f"Invalid '{field}': integer below minimum value. Expected a value >= 1, but got {max_tokens} "
            "instead.",
            field,
            code="integer_below_min_value",
        )
    return max_tokens


def _temperature(body: Mapping[str, Any]) -> float | None:
    temperature = float_or_none(body.get("temperature"))
    if temperature is not None and not 0 <= temperature <= 2:
        side, bound, code = (("above maximum", "<= 2", "decimal_above_max_value") if temperature > 2
                             else ("below minimum", ">= 0", "decimal_below_min_value"))
        raise WireError(
            f"Invalid 'temperature': decimal {side} value. Expected a value {bound}, but got "
            f"{body['temperature']} instead.",
            "temperature",
            code=code,
        )
    return temperature


def _usage(gen: Generation) -> dict[str, Any]:
    u = gen.usage
    return {
        "prompt_tokens": u.prompt,
        "completion_tokens": u.completion,
        "total_tokens": u.prompt + u.completion,
        "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion_id(gen: Generation) -> str:
    return "chatcmpl-emu" + gen.response_id[:26]


def _chunk(gen: Generation, ctx: ReplyContext, choices: list[Any], usage: Any = None) -> dict[str, Any]:
    chunk = {
        "id": _completion_id(gen),
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": ctx.model,
        "system_fingerprint": _FINGERPRINT,
        "choices": choices,
    }
    if ctx.call is not None and ctx.call.include_usage:
        chunk["usage"] = usage  # null on every chunk but the last, as recorded
    return chunk


def _choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]


def _wait_text(seconds: float) -> str:
    """How OpenAI's 429 message says the wait: ``644ms`` below a second, else ``9.816s``."""
    if seconds < 1:
        return f"{math.ceil(round(seconds * 1000, 6))}ms"
    return f"{math.ceil(round(seconds * 1000, 6)) / 1000:g}s"
