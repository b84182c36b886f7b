"""OpenAI Responses API wire format: ``POST {base}/responses``.

Used by ``get_provider("openai:…", api="responses")`` and by Azure OpenAI's v1
endpoint (``/openai/v1/responses``, ``api-key`` auth). The answer is a list of
typed ``output`` items (``message``, ``reasoning``, ``function_call``, and
server-side tool items we ignore) plus a ``status``; errors use the same body
shape as Chat Completions, so HTTP errors are classified by
:func:`~.openai_errors.classify_openai_error`.

A stream is a sequence of typed SSE events; the terminal ``response.completed``
or ``response.incomplete`` event carries the whole final response object, so a
stream's result is parsed by the same function as a non-streamed answer.

That terminal event is also the only one that says the answer is whole: the
recorded streams end ``… response.output_text.done, response.content_part.done,
response.output_item.done, response.completed`` and nothing follows it, while
an ``output_item.done`` closes one output item of several (a message can be
followed by function calls) and carries neither the response's status nor its
usage. So there is no "finished but unterminated" state to recover here: a
body that ends before ``response.completed``/``.incomplete`` is a cut answer
(:class:`~evalkit.errors.StreamInterruptedError`), never a success.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import (
    ErrorKind,
    InvalidResponseError,
    ProviderError,
    StreamInterruptedError,
    provider_error,
)
from ..types import ChatRequest, FinishReason, Message, ToolCall, Usage
from ._wire import HttpCall, Reply, stream_event

# The error-payload reader is shared with Chat Completions: both APIs send {"code", "type", "message"}.
from .openai_errors import classify_openai_error, openai_error_from_payload

__all__ = [
    "OpenAIResponsesStream",
    "OpenAIResponsesWire",
    "parse_response",
    "response_error",
    "responses_input",
    "responses_usage",
]

# ``incomplete_details.reason`` of a ``status: incomplete`` response → finish reason.
_INCOMPLETE_FINISH = {
    "max_output_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}

# Codes only the Responses ``error`` object uses (a ``failed`` response or stream);
# the shared OpenAI map decides every other code. Without these a failed response
# has no HTTP status to fall back on and would read as a retryable server error.
_RESPONSE_CODE_KINDS = {
    "invalid_prompt": ErrorKind.CONTENT_FILTER,  # OpenAI's usage-policy flag on the prompt
    "image_content_policy_violation": ErrorKind.CONTENT_FILTER,
    "vector_store_timeout": ErrorKind.TIMEOUT,
    "invalid_image": ErrorKind.BAD_REQUEST,
    "invalid_image_format": ErrorKind.BAD_REQUEST,
    "invalid_base64_image": ErrorKind.BAD_REQUEST,
    "invalid_image_url": ErrorKind.BAD_REQUEST,
    "image_too_large": ErrorKind.BAD_REQUEST,
    "image_too_small": ErrorKind.BAD_REQUEST,
    "image_parse_error": ErrorKind.BAD_REQUEST,
    "invalid_image_mode": ErrorKind.BAD_REQUEST,
    "image_file_too_large": ErrorKind.BAD_REQUEST,
    "unsupported_image_media_type": ErrorKind.BAD_REQUEST,
    "empty_image_file": ErrorKind.BAD_REQUEST,
    "failed_to_download_image": ErrorKind.BAD_REQUEST,
    "image_file_not_found": ErrorKind.BAD_REQUEST,
}

# Stream events the parser reads; every other event (response.created, web_search_call.*,
# annotation.added, content_part.*, …) is skipped without decoding its JSON.
_TEXT_DELTA = "response.output_text.delta"
_REASONING_DELTAS = ("response.reasoning_summary_text.delta", "response.reasoning_text.delta")
_TERMINAL = ("response.completed", "response.incomplete")
_FAILURES = ("response.failed", "error")
_READ_EVENTS = frozenset({
    _TEXT_DELTA, *_REASONING_DELTAS, *_TERMINAL, *_FAILURES,
    "response.output_item.added", "response.output_item.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
})


def responses_input(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation as Responses ``input`` items.

    Text turns are ``{role, content}``; an assistant turn's tool calls become
    ``function_call`` items and a ``tool`` turn a ``function_call_output`` item,
    linked by ``call_id``.
    """
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"type": "function_call_output", "call_id": m.tool_call_id or "", "output": m.content})
            continue
        if m.content or not m.tool_calls:
            out.append({"role": m.role, "content": m.content})
        for call in m.tool_calls:
            out.append({"type": "function_call", "call_id": call.id, "name": call.name,
                        "arguments": call.arguments})
    return out


def _text_format(value: Any) -> dict[str, Any]:
    """``text.format`` for JSON mode, a bare JSON schema, or an explicit format object."""
    if value == "json":
        return {"type": "json_object"}
    if isinstance(value, Mapping):
        kind = value.get("type")
        inner = value.get("json_schema")
        if kind == "json_schema" and isinstance(inner, Mapping):
            # Chat Completions nests the schema; Responses puts its fields beside "type".
            return {"type": "json_schema", "name": inner.get("name", "response"),
                    "schema": dict(inner.get("schema") or {}), "strict": inner.get("strict", True)}
        if kind in ("json_object", "json_schema", "text"):
            return dict(value)
    return {"type": "json_schema", "name": "response", "schema": dict(value), "strict": True}


class OpenAIResponsesWire:
    """The Responses API: ``POST {base}{path}``.

    ``stop`` and ``seed`` have no Responses equivalent and are not sent; the
    API stores nothing (``store: false``) since evalkit sends whole
    conversations every time.
    """

    name = "openai-responses"

    def __init__(self, auth: str = "bearer", path: str = "/responses") -> None:
        self.auth = auth
        self.path = path

    def auth_headers(self, api_key: str) -> dict[str, str]:
        if self.auth == "api-key":
            return {"api-key": api_key}
        return {"authorization": f"Bearer {api_key}"}

    def build(self, request: ChatRequest, model: str, stream: bool) -> HttpCall:
        body: dict[str, Any] = {"model": model, "input": responses_input(request.messages)}
        if request.system:
            body["instructions"] = request.system
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        # Reasoning models reject sampling parameters, so they go out only when set.
        for name in ("temperature", "top_p"):
            if (value := getattr(request, name)) is not None:
                body[name] = value
        if request.response_format is not None:
            body["text"] = {"format": _text_format(request.response_format)}
        if request.tools:
            # Responses makes function tools strict by default, which rejects any schema
            # without additionalProperties:false; Chat's non-strict default keeps specs portable.
            body["tools"] = [
                {"type": "function", "name": t.name, "description": t.description,
                 "parameters": dict(t.parameters), "strict": False}
                for t in request.tools
            ]
        if stream:
            body["stream"] = True
        body["store"] = False
        return HttpCall(path=self.path, body=body, stream_format="sse" if stream else None)

    def parse(self, body: Any, request: ChatRequest | None = None) -> Reply:
        return parse_response(body)

    def stream_parser(self, request: ChatRequest | None = None) -> OpenAIResponsesStream:
        return OpenAIResponsesStream()

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_openai_error(status, headers, body)


def parse_response(body: Any) -> Reply:
    """A :class:`Reply` from a Responses ``response`` object (a 2xx body or a terminal stream event's)."""
    if not isinstance(body, dict):
        raise InvalidResponseError("response body is not a JSON object")
    output = body.get("output")
    if body.get("status") == "failed" or (body.get("error") and not isinstance(output, list)):
        raise response_error(body.get("error") or {"message": "response failed"})
    if not isinstance(output, list):
        raise InvalidResponseError("response has no output list")
    text: list[str] = []
    reasoning: list[str] = []
    refusal: list[str] = []
    calls: list[ToolCall] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    text.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    refusal.append(str(part.get("refusal") or "refusal"))
        elif kind == "reasoning":
            reasoning.extend(_reasoning_texts(item))
        elif kind == "function_call":
            calls.append(ToolCall(id=item.get("call_id") or "", name=item.get("name") or "",
                                  arguments=item.get("arguments") or ""))
    tool_calls = tuple(calls)
    return Reply(
        text="".join(text),
        # A refusal content part is the model declining (structured outputs); status says "completed".
        finish_reason=FinishReason.CONTENT_FILTER if refusal else _finish(body, tool_calls),
        model=body.get("model") or "",
        usage=responses_usage(body.get("usage")),
        tool_calls=tool_calls,
        reasoning="\n\n".join(reasoning),
        request_id=body.get("id") or None,
        refusal="".join(refusal),
    )


def _reasoning_texts(item: Mapping[str, Any]) -> list[str]:
    """A reasoning item's summary paragraphs, or its raw ``reasoning_text`` when it has no summary."""
    summary = [p.get("text") or "" for p in item.get("summary") or () if isinstance(p, dict)]
    if summary:
        return summary
    return [p.get("text") or "" for p in item.get("content") or ()
            if isinstance(p, dict) and p.get("type") == "reasoning_text"]


def _finish(body: Mapping[str, Any], calls: tuple[ToolCall, ...]) -> FinishReason:
    status = body.get("status")
    if status in ("completed", None):
        return FinishReason.TOOL_CALLS if calls else FinishReason.STOP
    if status == "incomplete":
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE_FINISH.get(reason, FinishReason.ERROR) if isinstance(reason, str) else FinishReason.ERROR
    return FinishReason.ERROR  # cancelled, or a background response still queued/in_progress


def responses_usage(usage: Mapping[str, Any] | None) -> Usage | None:
    """Usage from a Responses ``usage`` object (``None`` when absent); already in evalkit's meaning."""
    if not usage:
        return None
    in_details = usage.get("input_tokens_details") or {}
    out_details = usage.get("output_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        cached_input_tokens=int(in_details.get("cached_tokens") or 0),
        cache_write_tokens=int(in_details.get("cache_write_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        reasoning_tokens=int(out_details.get("reasoning_tokens") or 0),
    )


def response_error(payload: Any) -> ProviderError:
    """The error in a Responses ``error`` object (failed response, ``error`` stream event)."""
    error = openai_error_from_payload(payload, status=None)
    kind = _RESPONSE_CODE_KINDS.get(error.code or "")
    if kind is None or kind == error.kind:
        return error
    return provider_error(kind, error.message, status=error.status, code=error.code)


class OpenAIResponsesStream:
    """Accumulates a Responses SSE stream; complete only after ``response.completed``/``.incomplete``.

    The terminal event's ``response`` object is the source of truth; the deltas
    gathered on the way fill in only what that object lacks.
    """

    def __init__(self) -> None:
        self.started = False
        self._text: list[str] = []
        self._reasoning: dict[tuple[int, int], list[str]] = {}  # (output_index, summary_index) -> deltas
        self._calls: dict[int, list[str]] = {}  # output_index -> [call_id, name, arguments]
        self._final: Reply | None = None

    def feed(self, data: str, event: str | None = None) -> str:
        if event is not None and event not in _READ_EVENTS:
            return ""
        if data.strip() == "[DONE]":  # some proxies append Chat's terminator; it carries nothing
            return ""
        chunk = stream_event(data)
        kind = chunk.get("type") or event
        if kind == _TEXT_DELTA:
            delta = chunk.get("delta") or ""
            if delta:
                self.started = True
                self._text.append(delta)
            return delta
        if kind in _REASONING_DELTAS:
            self._reasoning_delta(chunk)
        elif kind in _TERMINAL:
            self._final = parse_response(chunk.get("response"))
        elif kind in _FAILURES:
            self._fail(chunk, kind)
        elif kind is not None and kind.startswith(("response.output_item.", "response.function_call_")):
            self._call_event(chunk, kind)
        return ""

    def _reasoning_delta(self, chunk: Mapping[str, Any]) -> None:
        delta = chunk.get("delta") or ""
        if delta:
            self.started = True
            key = (chunk.get("output_index", 0), chunk.get("summary_index", chunk.get("content_index", 0)))
            self._reasoning.setdefault(key, []).append(delta)

    def _call_event(self, chunk: Mapping[str, Any], kind: str) -> None:
        index = chunk.get("output_index", len(self._calls))
        if kind.startswith("response.output_item."):
            item = chunk.get("item") or {}
            if item.get("type") != "function_call":
                return
            self.started = True
            self._calls[index] = [item.get("call_id") or "", item.get("name") or "",
                                  item.get("arguments") or ""]
            return
        slot = self._calls.setdefault(index, ["", "", ""])
        if kind.endswith(".delta"):
            slot[2] += chunk.get("delta") or ""
        elif kind.endswith(".done") and isinstance(chunk.get("arguments"), str):
            slot[2] = chunk["arguments"]

    def _fail(self, chunk: Mapping[str, Any], kind: str) -> None:
        if kind == "error":
            # Older streams put code/message at the top level, newer ones nest an "error" object.
            nested = chunk.get("error")
            payload = nested if isinstance(nested, dict) else chunk
        else:
            payload = (chunk.get("response") or {}).get("error") or {"message": "response failed"}
        error = response_error(payload)
        raise StreamInterruptedError(f"error inside the stream: {error.message}", code=error.code)

    def partial(self) -> Reply:
        if self._final is not None:
            return self.finish()
        return Reply(
            text="".join(self._text),
            reasoning="\n\n".join("".join(parts) for _, parts in sorted(self._reasoning.items())),
            tool_calls=tuple(ToolCall(id=i, name=n, arguments=a)
                             for _, (i, n, a) in sorted(self._calls.items())),
        )

    def finish(self) -> Reply:
        if self._final is None:
            raise StreamInterruptedError("stream ended before response.completed")
        reply = self._final
        if not reply.text and self._text:
            reply.text = "".join(self._text)
        if not reply.reasoning and self._reasoning:
            reply.reasoning = "\n\n".join("".join(parts) for _, parts in sorted(self._reasoning.items()))
        if not reply.tool_calls and self._calls:
            reply.tool_calls = tuple(ToolCall(id=i, name=n, arguments=a)
                                     for _, (i, n, a) in sorted(self._calls.items()))
            if reply.finish_reason is FinishReason.STOP:
                reply.finish_reason = FinishReason.TOOL_CALLS
        return reply
