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
from typing import Any

from ._simulate import ChatCall, Generation
from ._specs import Fleet, ModelSpec
from ._wire_common import (
    BAD_GATEWAY_HTML,
    ErrorInfo,
    HttpReply,
    ReplyContext,
    StreamEvent,
    WireError,
    compact_json,
    float_or_none,
    go_duration,
    int_or_none,
    retry_after_text,
)
from .answers import content_text

NAME = "openai"
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "content_filter": "content_filter"}
_FINGERPRINT = "fp_evalkit0"


def parse_request(
    body: Any, *, model: str | None = None, stream: bool | None = None, query: Mapping[str, str] | None = None
) -> ChatCall:
    """A :class:`ChatCall` from a Chat Completions body whose field types are checked already
    (``_request_checks.openai_body``); :class:`WireError` for the values OpenAI rejects."""
    if not isinstance(body, Mapping):
        raise WireError("We could not parse the JSON body of your request.")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise WireError("you must provide a model parameter")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise WireError(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
            "array instead.",
            "messages",
            code="empty_array",
        )
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
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = int_or_none(body.get(field))
    if max_tokens is not None and max_tokens < 1:
        raise WireError(
            f"Invalid '{field}': integer below minimum value. Expected a value >= 1, but got {max_tokens} "
            "instead.",
            field,
            code="integer_below_min_value",
        )
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
    stop = body.get("stop") or ()
    options = body.get("stream_options") if isinstance(body.get("stream_options"), Mapping) else {}
    response_format = body.get("response_format") if isinstance(body.get("response_format"), Mapping) else {}
    return ChatCall(
        wire=NAME,
        model=name,
        messages=tuple(messages),
        max_tokens=max_tokens,
        stop=(stop,) if isinstance(stop, str) else tuple(str(s) for s in stop),
        stream=bool(body.get("stream")),
        include_usage=bool(options.get("include_usage")),
        json_mode=response_format.get("type") in ("json_object", "json_schema"),
        seed=int_or_none(body.get("seed")),
        temperature=temperature,
        thinking_budget=-1,  # dynamic: reasoning models decide, bounded by the cap itself
        cap_includes_thinking=True,
    )


def check_call(call: ChatCall, spec: ModelSpec) -> None:
    """What OpenAI refuses once it knows the model: nothing modelled (reasoning lives inside the cap)."""


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


def render(gen: Generation, ctx: ReplyContext) -> bytes:
    """The non-streamed ``chat.completion`` body."""
    choices = (
        []
        if gen.empty
        else [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": gen.text if gen.finish != "content_filter" else None,
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": _FINISH[gen.finish],
            }
        ]
    )
    return compact_json(
        {
            "id": _completion_id(gen),
            "object": "chat.completion",
            "created": ctx.created,
            "model": ctx.model,
            "choices": choices,
            "usage": _usage(gen),
            "system_fingerprint": _FINGERPRINT,
        }
    )


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


def _event(payload: Any, part: str, tokens: int = 0) -> StreamEvent:
    return StreamEvent(b"data: " + compact_json(payload) + b"\n\n", part, tokens)  # type: ignore[arg-type]


def _choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]


def stream_events(gen: Generation, ctx: ReplyContext) -> list[StreamEvent]:
    """The SSE events of a streamed answer, in order."""
    events: list[StreamEvent] = []
    if not gen.empty:
        events.append(
            _event(_chunk(gen, ctx, _choice({"role": "assistant", "content": "", "refusal": None})), "head")
        )
        for text, tokens in gen.chunks:
            events.append(_event(_chunk(gen, ctx, _choice({"content": text})), "content", tokens))
        events.append(_event(_chunk(gen, ctx, _choice({}, _FINISH[gen.finish])), "tail"))
    if ctx.call is not None and ctx.call.include_usage:
        events.append(_event(_chunk(gen, ctx, [], _usage(gen)), "tail"))
    events.append(StreamEvent(b"data: [DONE]\n\n", "tail", terminator=True))
    return events


def malformed_body(gen: Generation, ctx: ReplyContext) -> bytes:
    """A 200 body that is not valid JSON (cut inside the first choice)."""
    body = render(gen, ctx)
    return body[: body.find(b'"choices"') + 14]


def malformed_event(gen: Generation, ctx: ReplyContext, first: bool = False) -> StreamEvent:
    """An SSE event whose data is not valid JSON (the same wherever it goes: SSE has no opening)."""
    return StreamEvent(
        b'data: {"id":"' + _completion_id(gen).encode() + b'","choices":[{"delta":{"content":"\n\n', "content"
    )


def content_type(stream: bool, ctx: ReplyContext | None = None) -> str:
    """The Content-Type of a 200 response."""
    return "text/event-stream; charset=utf-8" if stream else "application/json"


def success_headers(ctx: ReplyContext, processing_ms: int) -> list[tuple[str, str]]:
    """Response headers of a 200: request id, processing time and the ``x-ratelimit-*`` set."""
    return [
        ("openai-version", "2020-10-01"),
        ("openai-processing-ms", str(processing_ms)),
        ("x-request-id", ctx.request_id),
        *_rate_headers(ctx),
    ]


def _rate_headers(ctx: ReplyContext) -> list[tuple[str, str]]:
    r = ctx.rate
    return [
        ("x-ratelimit-limit-requests", str(r.limit_requests)),
        ("x-ratelimit-limit-tokens", str(r.limit_tokens)),
        ("x-ratelimit-remaining-requests", str(r.remaining_requests)),
        ("x-ratelimit-remaining-tokens", str(r.remaining_tokens)),
        ("x-ratelimit-reset-requests", go_duration(r.reset_requests_s)),
        ("x-ratelimit-reset-tokens", go_duration(r.reset_tokens_s)),
    ]


def _error_body(message: str, err_type: str, code: str | None, param: str | None = None) -> bytes:
    return compact_json({"error": {"message": message, "type": err_type, "param": param, "code": code}})


# kind -> (status, error type, error code, message template)
_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "server": (
        500,
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    "unavailable": (503, "server_error", None, "The engine is currently overloaded, please try again later."),
    "overloaded": (529, "server_error", "overloaded", "The server is overloaded, please try again later."),
    "context_length": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        (
            "This model's maximum context length is {window} tokens. However, your messages resulted in "
            "{prompt_tokens} tokens. Please reduce the length of the messages."
        ),
    ),
    "auth": (
        401,
        "invalid_request_error",
        None,
        (
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
            "username) if you're accessing the API from your browser and are prompted for a username and "
            "password. You can obtain an API key from https://platform.openai.com/account/api-keys."
        ),
    ),
    "not_found": (
        404,
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    "bad_request": (400, "invalid_request_error", None, "{message}"),
}


def error(kind: str, ctx: ReplyContext, info: ErrorInfo) -> HttpReply:
    """The error response OpenAI sends for ``kind``."""
    headers = [("x-request-id", ctx.request_id)]
    if kind == "bad_gateway":
        return HttpReply(502, [("content-type", "text/html"), *headers], BAD_GATEWAY_HTML)
    if kind == "rate_limit":
        return _rate_limited(ctx, info, headers)
    status, err_type, code, template = _ERRORS[kind]
    message = template.format(
        model=ctx.model,
        window=info.context_window,
        prompt_tokens=info.prompt_tokens,
        message=info.message or "Invalid request.",
    )
    param = "messages" if kind == "context_length" else info.param
    return HttpReply(
        status,
        [("content-type", "application/json; charset=utf-8"), *headers],
        _error_body(message, err_type, code or info.code, param),
    )


_RATE_LIMITS_URL = "Visit https://platform.openai.com/account/rate-limits to learn more."


def _rate_limited(ctx: ReplyContext, info: ErrorInfo, headers: list[tuple[str, str]]) -> HttpReply:
    """OpenAI's 429: ``type`` names the budget (``requests``/``tokens``), ``code`` is ``rate_limit_exceeded``.

    The messages are OpenAI's ("Rate limit reached for gpt-4o in organization org-... on tokens per min
    (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms."; "Request too large for
    ... The input or output tokens must be reduced in order to run successfully."). The
    ``x-ratelimit-*`` headers carry the budget as it stands; ``ctx.rate`` says it.
    """
    r, budget = ctx.rate, info.rate_budget or "requests"
    org = f"for {ctx.model} in organization org-emulator"
    if budget == "too_large":
        message = (f"Request too large {org} on tokens per min (TPM): Limit {r.limit_tokens}, Requested "
                   f"{info.requested_tokens}. The input or output tokens must be reduced in order to run "
                   f"successfully. {_RATE_LIMITS_URL}")
    else:
        wait = _wait_text(info.retry_after or 0.0)
        if budget == "tokens":
            what, limit, used, asked = "tokens per min (TPM)", r.limit_tokens, r.limit_tokens - r.remaining_tokens, \
                info.requested_tokens
        else:
            what, limit, used, asked = "requests per min (RPM)", r.limit_requests, \
                r.limit_requests - r.remaining_requests, 1
        message = (f"Rate limit reached {org} on {what}: Limit {limit}, Used {used}, Requested {asked}. "
                   f"Please try again in {wait}. {_RATE_LIMITS_URL}")
    if info.retry_after is not None:
        # retry-after-ms first: what OpenAI's SDK reads before retry-after.
        millis = str(math.ceil(round(info.retry_after * 1000, 6)))
        headers += [("retry-after", retry_after_text(info.retry_after)), ("retry-after-ms", millis)]
    headers += _rate_headers(ctx)
    err_type = "tokens" if budget in ("tokens", "too_large") else "requests"
    return HttpReply(
        429,
        [("content-type", "application/json; charset=utf-8"), *headers],
        _error_body(message, err_type, "rate_limit_exceeded"),
    )


def _wait_text(seconds: float) -> str:
    """How OpenAI's 429 message says the wait: ``644ms`` below a second, else ``9.816s``."""
    if seconds < 1:
        return f"{math.ceil(round(seconds * 1000, 6))}ms"
    return f"{math.ceil(round(seconds * 1000, 6)) / 1000:g}s"


def models_payload(fleet: Fleet, created: int) -> dict[str, Any]:
    """``GET /v1/models``: every model of the fleet."""
    return {"object": "list", "data": [model_payload(m.name, created) for m in fleet]}


def model_payload(name: str, created: int) -> dict[str, Any]:
    """``GET /v1/models/{id}``."""
    return {"id": name, "object": "model", "created": created, "owned_by": "evalkit-emulator"}
