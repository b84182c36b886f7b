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
from typing import Any, ClassVar

from ._simulate import ChatCall, Generation
from ._specs import Fleet, ModelSpec
from ._wire_base import ErrorShape, WireRenderer
from ._wire_common import (
    ErrorInfo,
    ReplyContext,
    StreamEvent,
    WireError,
    base62,
    float_or_none,
    int_or_none,
    retry_after_text,
)
from .answers import content_text

__all__ = ["WIRE", "GeminiWire"]

_FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
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
_BUDGET_FIELD = "generationConfig.thinkingConfig.thinkingBudget"


class GeminiWire(WireRenderer):
    """Gemini's generateContent: spaced JSON, SSE with ``\\r\\n\\r\\n`` or a JSON array, no rate-limit headers."""

    name = "gemini"
    finish_reasons = _FINISH
    not_an_object = "Invalid JSON payload received."
    default_error_message = "Invalid JSON payload received."
    malformed_cut = (b'"parts"', 12)
    json_content_type = "application/json; charset=UTF-8"
    stream_content_type = "text/event-stream"
    error_content_type = "application/json; charset=UTF-8"
    gateway_sends_request_id = False
    sse_separator = b"\r\n\r\n"
    errors: ClassVar[Mapping[str, ErrorShape]] = {
        "rate_limit": ErrorShape(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        "server": ErrorShape(500, "INTERNAL", "An internal error has occurred. Please retry later."),
        "unavailable": ErrorShape(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        "overloaded": ErrorShape(529, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        "context_length": ErrorShape(
            400,
            "INVALID_ARGUMENT",
            "The input token count ({prompt_tokens}) exceeds the maximum number of tokens allowed ({window}).",
        ),
        "auth": ErrorShape(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        ),
        "unauthenticated": ErrorShape(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
            "other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        ),
        "not_found": ErrorShape(
            404,
            "NOT_FOUND",
            "models/{model} is not found for API version v1beta, or is not supported for generateContent. "
            "Call ModelService.ListModels to see the list of available models and their supported methods.",
        ),
        "bad_request": ErrorShape(400, "INVALID_ARGUMENT"),
    }

    def read_request(
        self, body: Mapping[str, Any], *, model: str, stream: bool | None, query: Mapping[str, str]
    ) -> ChatCall:
        """Values Gemini rejects, in its words; ``model`` and ``stream`` come from the URL (field types are
        ``_request_checks.gemini_body``'s)."""
        raw = body.get("contents")
        if not isinstance(raw, list) or not raw:
            raise WireError("* GenerateContentRequest.contents: contents is not specified", "contents")
        messages = _messages(body.get("systemInstruction") or body.get("system_instruction"), raw)
        config = body.get("generationConfig") or body.get("generation_config") or {}
        max_tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise WireError(
                "* GenerateContentRequest.generation_config.max_output_tokens: must be positive",
                "generationConfig.maxOutputTokens",
            )
        thinking_budget = _thinking_budget(config)
        return self.chat_call(
            model,
            messages,
            max_tokens=max_tokens,
            stop=config.get("stopSequences", config.get("stop_sequences")),
            stream=bool(stream),
            json_mode=config.get("responseMimeType", config.get("response_mime_type")) == "application/json",
            stream_format="sse" if query.get("alt") == "sse" else "json-array",
            seed=int_or_none(config.get("seed")),
            temperature=float_or_none(config.get("temperature")),
            thinking_budget=thinking_budget,
            cap_includes_thinking=False,
        )

    def check_call(self, call: ChatCall, spec: ModelSpec) -> None:
        """A thinking budget out of the model's range, or on a model that cannot think."""
        budget = call.thinking_budget
        if budget is None or budget == -1:
            return
        if not spec.thinks:
            if budget:
                raise WireError("Thinking is not enabled for models/" + spec.name, _BUDGET_FIELD)
            return
        refusal = spec.thinking.refusal(budget)
        if refusal is not None:
            raise WireError(refusal, _BUDGET_FIELD)

    # -- a whole body: ``GenerateContentResponse``

    def encode(self, payload: Any) -> bytes:
        """JSON as Gemini sends it: spaced (``", "``, ``": "``)."""
        return json.dumps(payload, ensure_ascii=False).encode()

    def encode_event(self, payload: Any) -> bytes:
        """A streamed response's JSON: no space after a comma, one after a colon, as recorded."""
        return json.dumps(payload, separators=(",", ": "), ensure_ascii=False).encode()

    def body(self, gen: Generation, ctx: ReplyContext) -> dict[str, Any]:
        """The non-streamed ``GenerateContentResponse``."""
        candidates = [] if gen.empty else [self._candidate(gen, gen.text, True)]
        if candidates and gen.finish != "content_filter":
            candidates[0]["avgLogprobs"] = -0.12
        return _response(gen, ctx, candidates, True)

    def _candidate(self, gen: Generation, text: str | None, finish: bool) -> dict[str, Any]:
        if gen.finish == "content_filter":
            return {
                "content": {},
                "finishReason": self.finish_reason(gen),
                "index": 0,
                "safetyRatings": [
                    {"blocked": True, "category": "HARM_CATEGORY_HATE_SPEECH", "probability": "MEDIUM"}
                ],
            }
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text or ""}], "role": "model"}}
        if finish:
            candidate["finishReason"] = self.finish_reason(gen)
        return candidate

    # -- a stream: one response per chunk, the last with finishReason and the full usage

    def answer_events(self, gen: Generation, ctx: ReplyContext) -> list[StreamEvent]:
        """One event per chunk; the last carries the finish reason and the full usage."""
        chunks = [] if gen.empty or gen.finish == "content_filter" else list(gen.chunks)
        events: list[StreamEvent] = []
        for i, (text, tokens) in enumerate(chunks[:-1]):
            payload = _response(gen, ctx, [self._candidate(gen, text, False)], False)
            events.append(self.event(payload, ctx, "content", tokens, first=i == 0))
        last_text, last_tokens = chunks[-1] if chunks else ("", 0)
        candidates = [] if gen.empty else [self._candidate(gen, last_text, True)]
        events.append(self.event(_response(gen, ctx, candidates, True), ctx, "tail", last_tokens, first=not events))
        return events

    def end_of_stream(self, ctx: ReplyContext) -> bytes | None:
        """The ``]`` that closes a JSON-array stream; an SSE stream just ends."""
        return b"]" if _json_array(ctx) else None

    def frame(self, data: bytes, ctx: ReplyContext, *, first: bool = False, name: str | None = None) -> bytes:
        """Without ``?alt=sse``, a stream is one JSON array sent element by element."""
        if _json_array(ctx):
            return (b"[" if first else b",\r\n") + data
        return super().frame(data, ctx, first=first, name=name)

    def broken_json(self, gen: Generation) -> bytes:
        """A response cut inside its first part."""
        return b'{"candidates": [{"content": {"parts": [{"text": "'

    def malformed_event(self, gen: Generation, ctx: ReplyContext, first: bool = False) -> StreamEvent:
        """A broken array element opens with its own line break (``[\\r\\n``), as the broken one was recorded."""
        if _json_array(ctx) and first:
            return StreamEvent(b"[\r\n" + self.broken_json(gen), "content")
        return super().malformed_event(gen, ctx, first)

    # -- headers

    def content_type(self, stream: bool, ctx: ReplyContext | None = None) -> str:
        """SSE only with ``?alt=sse``; a JSON-array stream is JSON."""
        if stream and ctx is not None and ctx.call is not None and ctx.call.stream_format == "sse":
            return self.stream_content_type
        return self.json_content_type

    def leading_headers(self, processing_ms: int) -> list[tuple[str, str]]:
        """Google's ``server-timing`` (Gemini sends no rate-limit headers)."""
        return [("server-timing", f"gfet4t7; dur={processing_ms}")]

    # -- errors: ``{"error": {"code", "message", "status", "details"}}``

    def rate_limit_message(self, ctx: ReplyContext, info: ErrorInfo) -> str | None:
        """A 429 from a per-minute quota says so; an injected one keeps the table's message."""
        return None if info.rate_budget is None else _QUOTA_MESSAGE

    def error_body(self, kind: str, shape: ErrorShape, message: str, ctx: ReplyContext, info: ErrorInfo) -> bytes:
        """The status and message; a 429's details name the quota (``QuotaFailure``) and when to retry
        (``RetryInfo``: Google says it in the body, the header is for generic HTTP clients)."""
        error: dict[str, Any] = {"code": shape.status, "message": message, "status": shape.type}
        if info.details:
            error["details"] = list(info.details)
        if kind == "rate_limit":
            details = [] if info.rate_budget is None else _quota_details(ctx, info)
            if info.retry_after is not None:
                wait = retry_after_text(info.retry_after)
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait}s"})
            error["details"] = details
        return json.dumps({"error": error}).encode()

    # -- models and token counts

    def models_payload(self, fleet: Fleet, created: int) -> dict[str, Any]:
        """``GET /v1beta/models``: the models served on this wire."""
        return {"models": [self.model_payload(m, created) for m in self.listed(fleet)]}

    def model_payload(self, spec: ModelSpec, created: int) -> dict[str, Any]:
        """One Gemini model description."""
        return {
            "name": f"models/{spec.name}",
            "version": "001",
            "displayName": spec.name,
            "inputTokenLimit": spec.context_window,
            "outputTokenLimit": spec.max_output_tokens,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        }

    def count_tokens_payload(self, prompt_tokens: int) -> dict[str, Any]:
        """``:countTokens``."""
        return {"totalTokens": prompt_tokens}


WIRE = GeminiWire()


def _json_array(ctx: ReplyContext) -> bool:
    return ctx.call is not None and ctx.call.stream_format == "json-array"


def _messages(system: Any, raw: list[Any]) -> tuple[tuple[str, str], ...]:
    messages = [("system", content_text(system.get("parts")))] if isinstance(system, Mapping) else []
    for i, content in enumerate(raw):
        if not isinstance(content, Mapping) or not isinstance(content.get("parts"), list):
            raise WireError(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty",
                f"contents[{i}].parts",
            )
        role = "assistant" if content.get("role") == "model" else "user"
        messages.append((role, content_text(content["parts"])))
    return tuple(messages)


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
            _BUDGET_FIELD,
        )
    return budget


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


def _response(gen: Generation, ctx: ReplyContext, candidates: list[Any], final: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"candidates": candidates} if candidates else {}
    payload.update(
        usageMetadata=_usage(gen, final=final), modelVersion=ctx.model, responseId=base62(gen.response_id, 23)
    )
    return payload


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
