"""Google Gemini API (``generativelanguage.googleapis.com``) wire format.

``POST /v1beta/models/{model}:generateContent`` answers one JSON
``GenerateContentResponse``; ``:streamGenerateContent`` answers a sequence of
them, as SSE with ``?alt=sse`` (the default here) or as one streamed JSON array
without it (``GeminiWire(stream_format="json-array")``). Every stream chunk is a
whole ``GenerateContentResponse`` carrying only the new parts; there is no
terminal event, so a stream is complete when its last chunk with output carries
``finishReason`` (in every recorded stream the last chunk carries it, with the
final usage). A body that ends after text without one is a cut answer
(:class:`~evalkit.errors.StreamInterruptedError`), never a success, in either
form; a streamed JSON array that ends after the finish chunk but before its
closing ``]`` is complete.

Usage mapping (see ``evalkit.types``): ``promptTokenCount`` already includes
``cachedContentTokenCount`` (the recorded explicit-cache call reports prompt
3520 with 3512 cached, and ``totalTokenCount`` 3564 = 3520 + 2 + 42), so it is
``input_tokens`` as is, plus ``toolUsePromptTokenCount`` when present.
``candidatesTokenCount`` excludes thinking, so ``output_tokens`` is
``candidatesTokenCount + thoughtsTokenCount``.

The API key travels in the ``x-goog-api-key`` header, never as ``?key=``:
query strings end up in proxy and access logs. Error bodies (Google's
``google.rpc.Status``) are classified in ``gemini_errors.py``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..errors import InvalidResponseError, ProviderError, StreamInterruptedError
from ..types import ChatRequest, FinishReason, Message, ToolCall, Usage
from ._wire import HttpCall, Reply, StreamFormat, stream_event
from .gemini_errors import classify_gemini_error, gemini_error_from_payload

__all__ = ["GeminiStream", "GeminiWire", "gemini_usage"]

_API = "/v1beta"

_FINISH = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
    "MALFORMED_FUNCTION_CALL": FinishReason.ERROR,
    "OTHER": FinishReason.ERROR,
    "LANGUAGE": FinishReason.ERROR,
    "FINISH_REASON_UNSPECIFIED": FinishReason.ERROR,
}


_STREAM_FORMATS: dict[str, StreamFormat] = {"sse": "sse", "json-array": "json-array"}


class GeminiWire:
    """Gemini ``generateContent`` / ``streamGenerateContent`` on the Gemini API (v1beta)."""

    name = "gemini"

    def __init__(self, stream_format: str = "sse") -> None:
        checked = _STREAM_FORMATS.get(stream_format)
        if checked is None:
            raise ValueError(f"stream_format must be 'sse' or 'json-array', not {stream_format!r}")
        self.stream_format: StreamFormat = checked

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def thinking_budget(self, request: ChatRequest) -> int | None:
        """The ``thinkingConfig.thinkingBudget`` this wire sends for ``request``; ``None``: it sends none.

        evalkit sends none, so the model's default applies. A budget a subclass
        returns here is written into the body and bounds what a budget reserves
        (``providers/_billing.py``), from this one place.
        """
        return None

    def build(self, request: ChatRequest, model: str, stream: bool) -> HttpCall:
        body: dict[str, Any] = {"contents": gemini_contents(request.messages)}
        system = [request.system] if request.system else []
        system += [m.content for m in request.messages if m.role == "system" and m.content]
        if system:
            body["systemInstruction"] = {"parts": [{"text": t} for t in system]}
        config = _generation_config(request)
        if (budget := self.thinking_budget(request)) is not None:
            config["thinkingConfig"] = {"thinkingBudget": budget}
        if config:
            body["generationConfig"] = config
        if request.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
                for t in request.tools
            ]}]
        # Tuned models and full resource names ("models/x", "tunedModels/y") are used as given.
        resource = model if "/" in model else f"models/{model}"
        if not stream:
            return HttpCall(path=f"{_API}/{resource}:generateContent", body=body)
        params = {"alt": "sse"} if self.stream_format == "sse" else {}
        return HttpCall(path=f"{_API}/{resource}:streamGenerateContent", body=body, params=params,
                        stream_format=self.stream_format)

    def parse(self, body: Any, request: ChatRequest | None = None) -> Reply:
        if not isinstance(body, dict):
            raise InvalidResponseError("response body is not a JSON object")
        if "error" in body and not body.get("candidates"):
            raise gemini_error_from_payload(body["error"], status=None, headers={})
        candidates = body.get("candidates")
        if not candidates:
            if blocked := _block_reason(body):
                return _reply(body, "", "", (), FinishReason.CONTENT_FILTER, body.get("usageMetadata"), blocked)
            usage = gemini_usage(body.get("usageMetadata"))  # a prompt that was read is billed
            raise InvalidResponseError("response has no candidates", usage=usage)
        candidate = candidates[0]
        if not isinstance(candidate, dict):
            raise InvalidResponseError("candidate is not a JSON object")
        text: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            _collect(part, text, thinking, calls)
        calls_t = tuple(calls)
        reason = candidate.get("finishReason")
        return _reply(body, "".join(text), "".join(thinking), calls_t, _finish(reason, calls_t),
                      body.get("usageMetadata"), _refusal(reason, candidate))

    def stream_parser(self, request: ChatRequest | None = None) -> GeminiStream:
        return GeminiStream()

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_gemini_error(status, headers, body)


def gemini_contents(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The conversation as Gemini ``contents`` (system turns go to ``systemInstruction``)."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for functionResponse parts
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "", "")
            part = {"functionResponse": _function_response(name, m.tool_call_id, m.content)}
            # Parallel calls are answered in ONE user turn holding every functionResponse.
            previous = out[-1] if out else None
            if previous and previous["role"] == "user" and "functionResponse" in previous["parts"][-1]:
                previous["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
            continue
        if m.role == "assistant":
            parts: list[dict[str, Any]] = [{"text": m.content}] if m.content or not m.tool_calls else []
            for call in m.tool_calls:
                names[call.id] = call.name
                parts.append({"functionCall": _function_call(call)})
            out.append({"role": "model", "parts": parts})
            continue
        out.append({"role": "user", "parts": [{"text": m.content}]})
    return out


def _function_call(call: ToolCall) -> dict[str, Any]:
    try:
        args = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        args = {}
    item: dict[str, Any] = {"name": call.name, "args": args if isinstance(args, dict) else {}}
    if call.id:
        item["id"] = call.id
    return item


def _function_response(name: str, call_id: str | None, content: str) -> dict[str, Any]:
    # ``response`` must be a JSON object; Gemini reads a non-object result under "output".
    try:
        value = json.loads(content)
    except ValueError:
        value = content
    item: dict[str, Any] = {"name": name, "response": value if isinstance(value, dict) else {"output": value}}
    if call_id:
        item["id"] = call_id
    return item


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for field, key in (("max_tokens", "maxOutputTokens"), ("temperature", "temperature"),
                       ("top_p", "topP"), ("seed", "seed")):
        if (value := getattr(request, field)) is not None:
            config[key] = value
    if request.stop:
        config["stopSequences"] = list(request.stop)
    fmt = request.response_format
    if fmt is not None:
        config["responseMimeType"] = "application/json"
        schema = _json_schema(fmt)
        if schema is not None:
            # responseJsonSchema takes full JSON Schema; responseSchema only an OpenAPI subset.
            config["responseJsonSchema"] = schema
    return config


def _json_schema(fmt: Any) -> dict[str, Any] | None:
    """The JSON schema in a ``response_format`` (``None`` for plain JSON mode)."""
    if fmt == "json" or not isinstance(fmt, Mapping):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return None
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), Mapping):
        return dict(fmt["json_schema"].get("schema") or {})  # OpenAI's envelope, accepted for portability
    return dict(fmt)


def _collect(part: Any, text: list[str], thinking: list[str], calls: list[ToolCall]) -> bool:
    """Sort one content part into text, thinking or a tool call; true when it carried output."""
    if not isinstance(part, dict):
        return False
    if isinstance(call := part.get("functionCall"), dict):
        calls.append(ToolCall(id=call.get("id") or "", name=call.get("name") or "",
                              arguments=json.dumps(call.get("args") or {})))
        return True
    value = part.get("text")
    if not isinstance(value, str):
        return False  # inline data, executable code and the like carry no text
    (thinking if part.get("thought") else text).append(value)
    return bool(value)


def _finish(reason: str | None, calls: tuple[ToolCall, ...]) -> FinishReason:
    # Gemini ends a function-calling turn with plain STOP; callers key on TOOL_CALLS.
    finish = _FINISH.get(reason or "STOP", FinishReason.ERROR)
    return FinishReason.TOOL_CALLS if calls and finish is FinishReason.STOP else finish


def _model(version: Any) -> str:
    # Some models answer with the resource name ("models/gemini-2.5-pro"); prices key on the id.
    return version.removeprefix("models/") if isinstance(version, str) else ""


def _reply(body: Mapping[str, Any], text: str, thinking: str, calls: tuple[ToolCall, ...],
           finish: FinishReason, usage: Any, refusal: str = "") -> Reply:
    return Reply(text=text, finish_reason=finish, model=_model(body.get("modelVersion")),
                 usage=gemini_usage(usage), tool_calls=calls, reasoning=thinking,
                 request_id=body.get("responseId") or None, refusal=refusal)


def _block_reason(body: Mapping[str, Any]) -> str:
    """``"prompt blocked: SAFETY (message)"`` when ``promptFeedback`` blocked the prompt, else ``""``."""
    feedback = body.get("promptFeedback")
    if not isinstance(feedback, dict) or not (reason := feedback.get("blockReason")):
        return ""
    message = feedback.get("blockReasonMessage")
    return f"prompt blocked: {reason}" + (f" ({message})" if message else "")


def _refusal(reason: Any, candidate: Mapping[str, Any]) -> str:
    """The vendor's words for a content-filter finish: the reason, blocked categories, ``finishMessage``."""
    if _FINISH.get(reason or "") is not FinishReason.CONTENT_FILTER:
        return ""
    ratings = candidate.get("safetyRatings")
    blocked = [str(r.get("category")) for r in ratings if isinstance(r, dict) and r.get("blocked")] \
        if isinstance(ratings, list) else []
    said = [", ".join(blocked)] if blocked else []
    if message := candidate.get("finishMessage"):
        said.append(str(message))
    return f"finishReason {reason}" + (f" ({'; '.join(said)})" if said else "")


def gemini_usage(meta: Mapping[str, Any] | None) -> Usage | None:
    """Usage from ``usageMetadata`` (``None`` when absent); see the module docstring."""
    if not meta:
        return None
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        input_tokens=int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0),
        cached_input_tokens=int(meta.get("cachedContentTokenCount") or 0),
        cache_write_tokens=0,
        output_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        reasoning_tokens=thoughts,
    )


class GeminiStream:
    """Accumulates ``streamGenerateContent`` chunks; whole once the last chunk with output had a finishReason.

    Output after a ``finishReason`` reopens the answer: the stream is then
    whole only if a later chunk finishes it again. Chunks without output
    (usage only) after the finish change nothing.
    """

    def __init__(self) -> None:
        self.started = False
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._calls: list[ToolCall] = []
        self._finish: str | None = None
        self._final: Mapping[str, Any] = {}  # the candidate that carried the finishReason
        self._blocked = ""
        self._chunks = 0
        self._candidates = False
        self._usage: Mapping[str, Any] | None = None
        self._model = ""
        self._id = ""

    def feed(self, data: str, event: str | None = None) -> str:
        chunk = stream_event(data)
        if chunk.get("error"):
            error = gemini_error_from_payload(chunk["error"], status=None, headers={})
            raise StreamInterruptedError(f"error inside the stream: {error.message}", code=error.code)
        self._chunks += 1
        self._model = self._model or _model(chunk.get("modelVersion"))
        self._id = self._id or chunk.get("responseId") or ""
        if meta := chunk.get("usageMetadata"):
            # Counts are running totals and the prompt count can change: the last one is the bill.
            self._usage = meta
        candidates = chunk.get("candidates")
        if not candidates:
            # A blocked prompt ends the stream in this one chunk.
            self._blocked = _block_reason(chunk) or self._blocked
            return ""
        self._candidates = True
        return self._candidate(candidates[0])

    def _candidate(self, candidate: Any) -> str:
        if not isinstance(candidate, dict):
            return ""
        mark = len(self._text)
        output = False
        for part in (candidate.get("content") or {}).get("parts") or ():
            output = _collect(part, self._text, self._thinking, self._calls) or output
        self.started = self.started or output
        if candidate.get("finishReason"):
            self._finish = candidate["finishReason"]
            self._final = candidate
        elif output:
            self._finish, self._final = None, {}  # generation went on past a finish: it must end again
        return "".join(self._text[mark:])

    def partial(self) -> Reply:
        calls = tuple(self._calls)
        if self._finish is None and self._blocked:
            finish, refusal = FinishReason.CONTENT_FILTER, self._blocked
        else:
            finish, refusal = _finish(self._finish, calls), _refusal(self._finish, self._final)
        return Reply(
            text="".join(self._text),
            finish_reason=finish,
            model=self._model,
            usage=gemini_usage(self._usage),
            tool_calls=calls,
            reasoning="".join(self._thinking),
            request_id=self._id or None,
            refusal=refusal,
        )

    def finish(self) -> Reply:
        if self._finish is None and not self._blocked:
            if self._chunks and not self._candidates:
                # Whole chunks arrived and none had a candidate: an empty answer, not a cut stream
                # (a cut one has candidates without a finishReason, or no chunk at all).
                raise InvalidResponseError("stream carried no candidates", usage=gemini_usage(self._usage))
            raise StreamInterruptedError("stream ended before any chunk carried a finishReason")
        return self.partial()
