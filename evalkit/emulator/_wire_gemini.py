"""Gemini on the wire: ``POST /v1beta/models/{model}:generateContent`` / ``:streamGenerateContent``.

Shapes follow shared/wire/gemini (``test_google_model_instructions.yaml``,
``test_google_model_stream.yaml``). Streams are SSE ``data:`` events with
``?alt=sse`` (``\\r\\n\\r\\n`` separators, as recorded) and, without it, one JSON
array sent element by element.

``generationConfig.maxOutputTokens`` bounds the visible candidates; thinking is
bounded separately by ``generationConfig.thinkingConfig.thinkingBudget`` (-1:
dynamic up to the model's maximum, 0: off where the model allows it; absent:
the model's default), and billed as ``thoughtsTokenCount`` on top. This is the
documented contract; the recording
``test_google_model_max_tokens_thinking_model_empty_response.yaml`` (2.5 Pro,
``maxOutputTokens: 5``: 2 thought tokens, no text, ``MAX_TOKENS``) suggests the
real service may also count thoughts against ``maxOutputTokens``.
"""

from __future__ import annotations

import json
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
    base62,
    float_or_none,
    int_or_none,
    retry_after_text,
)
from .answers import content_text

NAME = "gemini"
_FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}


def parse_request(
    body: Any, *, model: str | None = None, stream: bool | None = None, query: Mapping[str, str] | None = None
) -> ChatCall:
    """A :class:`ChatCall` from a generateContent body whose field types are checked already
    (``_request_checks.gemini_body``; ``model`` and ``stream`` come from the URL)."""
    if not isinstance(body, Mapping):
        raise WireError("Invalid JSON payload received.")
    raw = body.get("contents")
    if not isinstance(raw, list) or not raw:
        raise WireError("* GenerateContentRequest.contents: contents is not specified", "contents")
    messages = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(system, Mapping):
        messages.append(("system", content_text(system.get("parts"))))
    for i, content in enumerate(raw):
        if not isinstance(content, Mapping) or not isinstance(content.get("parts"), list):
            raise WireError(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty",
                f"contents[{i}].parts",
            )
        role = "assistant" if content.get("role") == "model" else "user"
        messages.append((role, content_text(content["parts"])))
    config = body.get("generationConfig") or body.get("generation_config") or {}
    max_tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise WireError(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be positive",
            "generationConfig.maxOutputTokens",
        )
    stop = config.get("stopSequences", config.get("stop_sequences")) or ()
    thinking_budget = _thinking_budget(config)
    return ChatCall(
        wire=NAME,
        model=model or "",
        messages=tuple(messages),
        max_tokens=max_tokens,
        stop=tuple(str(s) for s in stop) if isinstance(stop, list) else (),
        stream=bool(stream),
        json_mode=config.get("responseMimeType", config.get("response_mime_type")) == "application/json",
        stream_format="sse" if (query or {}).get("alt") == "sse" else "json-array",
        seed=int_or_none(config.get("seed")),
        temperature=float_or_none(config.get("temperature")),
        thinking_budget=thinking_budget,
        cap_includes_thinking=False,
    )


def _thinking_budget(config: Mapping[str, Any]) -> int | None:
    """``thinkingConfig.thinkingBudget`` (None when absent); what the API refuses whatever the model."""
    thinking = config.get("thinkingConfig", config.get("thinking_config"))
    if thinking is None:
        return None
    if not isinstance(thinking, Mapping):
        raise WireError("* GenerateContentRequest.generation_config.thinking_config: must be an object",
                        "generationConfig.thinkingConfig")
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    if budget is None:
        return None
    if int_or_none(budget) is None or budget < -1:
        raise WireError(
            "* GenerateContentRequest.generation_config.thinking_config.thinking_budget: "
            f"must be an integer >= -1, got {budget!r}",
            "generationConfig.thinkingConfig.thinkingBudget",
        )
    return budget


def check_call(call: ChatCall, spec: ModelSpec) -> None:
    """What Gemini refuses once it knows the model: a budget out of range, or on a model that cannot think."""
    budget = call.thinking_budget
    if budget is None or budget == -1:
        return
    if not spec.thinks:
        if budget:
            raise WireError("Thinking is not enabled for models/" + spec.name,
                            "generationConfig.thinkingConfig.thinkingBudget")
        return
    refusal = spec.thinking.refusal(budget)
    if refusal is not None:
        raise WireError(refusal, "generationConfig.thinkingConfig.thinkingBudget")


def _usage(gen: Generation, *, final: bool = True) -> dict[str, Any]:
    u = gen.usage
    usage: dict[str, Any] = {"promptTokenCount": u.prompt}
    visible = u.completion - u.reasoning if final else 0
    if visible:
        usage["candidatesTokenCount"] = visible
    if u.cached:
        usage["cachedContentTokenCount"] = u.cached
    if u.reasoning:
        usage["thoughtsTokenCount"] = u.reasoning
    # Thinking is over before the first candidate token, so every chunk's total counts it
    # (``test_google_model_thinking_part_iter.yaml``: total = prompt + thoughts + candidates so far).
    usage["totalTokenCount"] = u.prompt + u.reasoning + visible
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.prompt}]
    if visible:
        usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": visible}]
    return usage


def _candidate(gen: Generation, text: str | None, finish: bool) -> dict[str, Any]:
    if gen.finish == "content_filter":
        return {
            "content": {},
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                {"blocked": True, "category": "HARM_CATEGORY_HATE_SPEECH", "probability": "MEDIUM"}
            ],
        }
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text or ""}], "role": "model"}}
    if finish:
        candidate["finishReason"] = _FINISH[gen.finish]
    return candidate


def _response(gen: Generation, ctx: ReplyContext, candidates: list[Any], final: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"candidates": candidates} if candidates else {}
    payload.update(
        usageMetadata=_usage(gen, final=final), modelVersion=ctx.model, responseId=base62(gen.response_id, 23)
    )
    return payload


def render(gen: Generation, ctx: ReplyContext) -> bytes:
    """The non-streamed ``GenerateContentResponse`` body."""
    candidates = [] if gen.empty else [_candidate(gen, gen.text, True)]
    if candidates and gen.finish != "content_filter":
        candidates[0]["avgLogprobs"] = -0.12
    return json.dumps(_response(gen, ctx, candidates, True), ensure_ascii=False).encode()


def _frame(payload: Any, ctx: ReplyContext, first: bool) -> bytes:
    text = json.dumps(payload, separators=(",", ": "), ensure_ascii=False)
    if ctx.call is not None and ctx.call.stream_format == "json-array":
        return (("[" if first else ",\r\n") + text).encode()
    return f"data: {text}\r\n\r\n".encode()


def stream_events(gen: Generation, ctx: ReplyContext) -> list[StreamEvent]:
    """The stream of a streamed answer: one event per chunk, the last with finishReason and full usage."""
    chunks = [] if gen.empty or gen.finish == "content_filter" else list(gen.chunks)
    events: list[StreamEvent] = []
    for i, (text, tokens) in enumerate(chunks[:-1]):
        payload = _response(gen, ctx, [_candidate(gen, text, False)], False)
        events.append(StreamEvent(_frame(payload, ctx, i == 0), "content", tokens))
    last_text, last_tokens = chunks[-1] if chunks else ("", 0)
    candidates = [] if gen.empty else [_candidate(gen, last_text, True)]
    final = _response(gen, ctx, candidates, True)
    events.append(StreamEvent(_frame(final, ctx, not events), "tail", last_tokens))
    if ctx.call is not None and ctx.call.stream_format == "json-array":
        events.append(StreamEvent(b"]", "tail", terminator=True))
    return events


def malformed_body(gen: Generation, ctx: ReplyContext) -> bytes:
    """A 200 body that is not valid JSON."""
    body = render(gen, ctx)
    return body[: body.find(b'"parts"') + 12] if b'"parts"' in body else body[:20]


def malformed_event(gen: Generation, ctx: ReplyContext, first: bool = False) -> StreamEvent:
    """A stream element that is not valid JSON; ``first``: it opens the stream (a JSON array's ``[``)."""
    broken = '{"candidates": [{"content": {"parts": [{"text": "'
    if ctx.call is not None and ctx.call.stream_format == "json-array":
        return StreamEvent(f"{'[' if first else ','}\r\n{broken}".encode(), "content")
    return StreamEvent(f"data: {broken}\r\n\r\n".encode(), "content")


def content_type(stream: bool, ctx: ReplyContext | None = None) -> str:
    """The Content-Type of a 200 response."""
    if stream and ctx is not None and ctx.call is not None and ctx.call.stream_format == "sse":
        return "text/event-stream"
    return "application/json; charset=UTF-8"


def success_headers(ctx: ReplyContext, processing_ms: int) -> list[tuple[str, str]]:
    """Response headers of a 200 (Gemini sends no rate-limit headers)."""
    return [("server-timing", f"gfet4t7; dur={processing_ms}"), ("x-request-id", ctx.request_id)]


# kind -> (status, status name, message template)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "server": (500, "INTERNAL", "An internal error has occurred. Please retry later."),
    "unavailable": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "overloaded": (529, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "context_length": (
        400,
        "INVALID_ARGUMENT",
        "The input token count ({prompt_tokens}) exceeds the maximum number of tokens allowed ({window}).",
    ),
    "auth": (
        403,
        "PERMISSION_DENIED",
        (
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API."
        ),
    ),
    "unauthenticated": (
        401,
        "UNAUTHENTICATED",
        (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
            "other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project."
        ),
    ),
    "not_found": (
        404,
        "NOT_FOUND",
        (
            "models/{model} is not found for API version v1beta, or is not supported for generateContent. "
            "Call ModelService.ListModels to see the list of available models and their supported methods."
        ),
    ),
    "bad_request": (400, "INVALID_ARGUMENT", "{message}"),
}


def error(kind: str, ctx: ReplyContext, info: ErrorInfo) -> HttpReply:
    """The error response Gemini sends for ``kind`` (``{"error": {"code", "message", "status"}}``)."""
    if kind == "bad_gateway":
        return HttpReply(502, [("content-type", "text/html")], BAD_GATEWAY_HTML)
    status, state, template = _ERRORS[kind]
    message = template.format(
        model=ctx.model,
        window=info.context_window,
        prompt_tokens=info.prompt_tokens,
        message=info.message or "Invalid JSON payload received.",
    )
    error_body: dict[str, Any] = {"code": status, "message": message, "status": state}
    if info.details:
        error_body["details"] = list(info.details)
    headers = [("content-type", "application/json; charset=UTF-8"), ("x-request-id", ctx.request_id)]
    if kind == "rate_limit":
        details = [] if info.rate_budget is None else _quota_details(ctx, info)
        if info.rate_budget is not None:
            error_body["message"] = _QUOTA_MESSAGE
        if info.retry_after is not None:
            wait = retry_after_text(info.retry_after)
            # Google says when to retry in the body (RetryInfo); the header is for generic HTTP clients.
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait}s"})
            headers.append(("retry-after", wait))
        error_body["details"] = details
    return HttpReply(status, headers, json.dumps({"error": error_body}).encode())


_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information on "
    "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
# The quota names Gemini reports per minute (as in its public 429 bodies), by the budget that ran out.
_QUOTAS = {
    "requests": ("generativelanguage.googleapis.com/generate_content_free_tier_requests",
                 "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
    "tokens": ("generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
               "GenerateContentInputTokensPerModelPerMinute-FreeTier"),
}


def _quota_details(ctx: ReplyContext, info: ErrorInfo) -> list[dict[str, Any]]:
    """A 429 from a per-minute quota: the ``QuotaFailure`` naming it and the ``Help`` link, as Gemini sends."""
    budget = "requests" if info.rate_budget == "requests" else "tokens"
    metric, quota_id = _QUOTAS[budget]
    limit = ctx.rate.limit_requests if budget == "requests" else ctx.rate.limit_tokens
    violation = {"quotaMetric": metric, "quotaId": quota_id,
                 "quotaDimensions": {"location": "global", "model": ctx.model}, "quotaValue": str(limit)}
    return [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
    ]


def count_tokens_payload(prompt_tokens: int) -> dict[str, Any]:
    """``:countTokens``."""
    return {"totalTokens": prompt_tokens}


def models_payload(fleet: Fleet, created: int) -> dict[str, Any]:
    """``GET /v1beta/models``: the models served on this wire."""
    return {
        "models": [model_payload(m.name, m.context_window, m.max_output_tokens) for m in fleet.serving(NAME)]
    }


def model_payload(name: str, input_limit: int, output_limit: int) -> dict[str, Any]:
    """One Gemini model description."""
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "inputTokenLimit": input_limit,
        "outputTokenLimit": output_limit,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    }
