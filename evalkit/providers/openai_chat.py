"""OpenAI Chat Completions wire format, and every vendor that speaks it.

Azure OpenAI, Groq, Mistral, DeepSeek, OpenRouter, Together, Fireworks,
Cerebras, Ollama, vLLM and llama.cpp server all speak this format with small
differences; those are :class:`ChatOptions` values (see ``vendors.py``), and
the tolerant parsing below (content arrays, ``reasoning_content``/``reasoning``,
``x_groq.usage``, ``usage.cost``, errors inside a 200 stream) is shared.

A stream is complete at ``data: [DONE]``, or, when the body ends cleanly
without it, once a choice carried its ``finish_reason``: the answer is whole
then, and the usage chunk that follows the finish chunk (``include_usage``) is
used when it arrived. A body that ends before any ``finish_reason`` is a cut
answer (:class:`~evalkit.errors.StreamInterruptedError`), never a success.

A prefill (a final assistant turn, ``_prefill.py``) goes out as a plain last
``assistant`` message, flagged where the vendor needs it
(:attr:`ChatOptions.prefill_flag`: Mistral's ``"prefix": true``); a vendor
that repeats the prefill before continuing it (:attr:`ChatOptions.prefill_echo`)
has the repeat dropped, so the answer is only the continuation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InvalidResponseError, ProviderError, StreamInterruptedError
from ..types import ChatRequest, FinishReason, Message, ToolCall, Usage
from ._prefill import PrefillJoin, prefill_text
from ._wire import HttpCall, Reply, stream_event
from .openai_errors import classify_openai_error, openai_error_from_payload

__all__ = ["ChatOptions", "OpenAIChatWire", "openai_messages"]

_FINISH = {
    "stop": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "max_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "error": FinishReason.ERROR,
}



@dataclass(frozen=True, slots=True)
class ChatOptions:
    """How one vendor deviates from OpenAI's Chat Completions."""

    path: str = "/chat/completions"
    """Request path under the base URL; ``{model}`` is replaced (Azure deployments)."""
    auth: str = "bearer"
    """``bearer`` (``Authorization: Bearer``) or ``api-key`` (Azure)."""
    api_version: str | None = None
    """Sent as the ``api-version`` query parameter (Azure)."""
    max_tokens_field: str = "max_tokens"
    """``max_completion_tokens`` for OpenAI itself (required by reasoning models)."""
    stream_usage: bool = True
    """Whether the vendor accepts ``stream_options.include_usage``."""
    send_model: bool = True
    """Azure deployment URLs carry the model in the path instead."""
    prefill_flag: str | None = None
    """The field set ``true`` on a final assistant message to make it a prefill (Mistral: ``prefix``)."""
    prefill_echo: bool = False
    """Whether the answer repeats the prefill before continuing it (Mistral); the repeat is dropped."""


def openai_messages(request: ChatRequest, prefill_flag: str | None = None) -> list[dict[str, Any]]:
    """The request's conversation as OpenAI ``messages``; a prefill's message gets ``prefill_flag: true``."""
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for m in request.messages:
        out.append(_message(m))
    if prefill_flag and prefill_text(request) is not None:
        out[-1][prefill_flag] = True
    return out


def _message(m: Message) -> dict[str, Any]:
    # A turn that only calls tools has no content key, as the official SDK sends it ("" is not "none").
    item: dict[str, Any] = {"role": m.role}
    if m.content or not m.tool_calls:
        item["content"] = m.content
    if m.tool_calls:
        item["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id:
        item["tool_call_id"] = m.tool_call_id
    if m.name:
        item["name"] = m.name
    return item


_FIRST_STREAM_OPTIONS_VERSION = "2024-10-21"
"""Azure's first GA api-version that takes ``stream_options``; earlier ones answer 400 ``unknown_parameter``."""


def _accepts_stream_options(api_version: str | None) -> bool:
    # api-versions are dates ("2024-10-21", "2024-08-01-preview"): their first ten characters order them.
    return api_version is None or api_version[:10] >= _FIRST_STREAM_OPTIONS_VERSION


def _response_format(value: Any) -> dict[str, Any]:
    if value == "json":
        return {"type": "json_object"}
    if isinstance(value, Mapping) and value.get("type") in ("json_object", "json_schema", "text"):
        return dict(value)
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": dict(value), "strict": True}}


class OpenAIChatWire:
    """Chat Completions: ``POST {base}/chat/completions``."""

    name = "openai-chat"

    def __init__(self, options: ChatOptions | None = None) -> None:
        self.options = options or ChatOptions()

    def auth_headers(self, api_key: str) -> dict[str, str]:
        if self.options.auth == "api-key":
            return {"api-key": api_key}
        return {"authorization": f"Bearer {api_key}"}

    def build(self, request: ChatRequest, model: str, stream: bool) -> HttpCall:
        o = self.options
        body: dict[str, Any] = {"messages": openai_messages(request, o.prefill_flag)}
        if o.send_model:
            body["model"] = model
        if request.max_tokens is not None:
            body[o.max_tokens_field] = request.max_tokens
        for name in ("temperature", "top_p", "seed"):
            if (value := getattr(request, name)) is not None:
                body[name] = value
        if request.stop:
            body["stop"] = list(request.stop)
        if request.response_format is not None:
            body["response_format"] = _response_format(request.response_format)
        if request.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": dict(t.parameters)}}
                for t in request.tools
            ]
        if stream:
            body["stream"] = True
            if o.stream_usage and _accepts_stream_options(o.api_version):
                body["stream_options"] = {"include_usage": True}
        params = {"api-version": o.api_version} if o.api_version else {}
        return HttpCall(path=o.path.replace("{model}", model), body=body, params=params,
                        stream_format="sse" if stream else None)

    def _join(self, request: ChatRequest | None) -> PrefillJoin | None:
        """What drops the vendor's repeat of ``request``'s prefill from the answer (``None``: none to drop)."""
        prefill = prefill_text(request) if request is not None and self.options.prefill_echo else None
        return PrefillJoin(prefill, whole=True) if prefill else None

    def parse(self, body: Any, request: ChatRequest | None = None) -> Reply:
        reply = self._parse(body)
        if (join := self._join(request)) is not None:
            reply.text = join.apply(reply.text)
        return reply

    def _parse(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            raise InvalidResponseError("response body is not a JSON object")
        if "error" in body and not body.get("choices"):
            raise openai_error_from_payload(body["error"], status=None)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            # An empty list is still billed for the prompt when the body says so.
            raise InvalidResponseError("response has no choices", usage=chat_usage(body.get("usage")))
        choice = choices[0]
        message = choice.get("message") or {}
        text, thinking = _content(message.get("content"))
        calls = tuple(
            ToolCall(id=c.get("id") or "", name=(c.get("function") or {}).get("name", ""),
                     arguments=(c.get("function") or {}).get("arguments") or "")
            for c in message.get("tool_calls") or ()
        )
        refusal = message.get("refusal") or ""
        return Reply(
            text=text,
            finish_reason=_finish(choice.get("finish_reason"), calls, refusal),
            model=body.get("model") or "",
            usage=chat_usage(body.get("usage")),
            tool_calls=calls,
            reasoning=thinking or message.get("reasoning_content") or message.get("reasoning") or "",
            request_id=body.get("id") or None,
            reported_cost=(body.get("usage") or {}).get("cost"),
            refusal=refusal if isinstance(refusal, str) else "",
        )

    def stream_parser(self, request: ChatRequest | None = None) -> OpenAIChatStream:
        return OpenAIChatStream(self._join(request))

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_openai_error(status, headers, body)


class OpenAIChatStream:
    """Accumulates a Chat Completions SSE stream; complete after ``data: [DONE]`` or a ``finish_reason``.

    ``join`` drops the vendor's repeat of a prefill from the text (it holds
    text back while it may still be the repeat, and lets it go at the finish
    chunk).
    """

    def __init__(self, join: PrefillJoin | None = None) -> None:
        self.started = False
        self._join = join
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._model = ""
        self._id = ""
        self._done = False

    def feed(self, data: str, event: str | None = None) -> str:
        if data.strip() == "[DONE]":
            self._done = True
            held = self._join.flush() if self._join is not None else ""  # no finish chunk let it go
            if held:
                self._text.append(held)
            return held
        chunk = stream_event(data)
        if chunk.get("error"):
            error = openai_error_from_payload(chunk["error"], status=None)
            raise StreamInterruptedError(f"error inside the stream: {error.message}", code=error.code)
        self._model = self._model or chunk.get("model") or ""
        self._id = self._id or chunk.get("id") or ""
        usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if usage:
            self._usage = usage
        delta_text = ""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta_text += self._choice(choice)
        return delta_text

    def _choice(self, choice: Mapping[str, Any]) -> str:
        delta = choice.get("delta") or {}
        text, thinking = _content(delta.get("content"))
        thinking += delta.get("reasoning_content") or delta.get("reasoning") or ""
        generated = bool(text)
        if self._join is not None:
            text = self._join.feed(text)
            if choice.get("finish_reason"):
                text += self._join.flush()
        if text:
            self._text.append(text)
        if thinking:
            self._reasoning.append(thinking)
        if refusal := delta.get("refusal"):
            self._refusal.append(str(refusal))
        for call in delta.get("tool_calls") or ():
            slot = self._calls.setdefault(call.get("index", len(self._calls)), ["", "", ""])
            fn = call.get("function") or {}
            slot[0] = slot[0] or call.get("id") or ""
            slot[1] += fn.get("name") or ""
            slot[2] += fn.get("arguments") or ""
        if generated or thinking or self._calls:
            self.started = True
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        return text

    def partial(self) -> Reply:
        calls = tuple(ToolCall(id=i, name=n, arguments=a) for _, (i, n, a) in sorted(self._calls.items()))
        refusal = "".join(self._refusal)
        return Reply(
            text="".join(self._text),
            finish_reason=_finish(self._finish, calls, refusal),
            model=self._model,
            usage=chat_usage(self._usage),
            tool_calls=calls,
            reasoning="".join(self._reasoning),
            request_id=self._id or None,
            reported_cost=(self._usage or {}).get("cost"),
            refusal=refusal,
        )

    def finish(self) -> Reply:
        if not self._done and self._finish is None:
            # Without [DONE], only the finish chunk says the answer is whole: text alone may be cut anywhere.
            raise StreamInterruptedError("stream ended before its finish_reason (and before data: [DONE])")
        if self._finish is None and not self._text and not self._calls and not self._refusal:
            # The stream did end: its usage chunk, if any, is the vendor's whole bill.
            raise InvalidResponseError("stream carried no choices", usage=chat_usage(self._usage))
        return self.partial()


def _content(content: Any) -> tuple[str, str]:
    """(text, thinking) from a string or a content-part array (Mistral, Gemini-compat)."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    text, thinking = [], []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            text.append(part.get("text") or "")
        elif kind == "thinking":
            inner = part.get("thinking")
            thinking.append(inner if isinstance(inner, str) else _content(inner)[0])
    return "".join(text), "".join(thinking)


def _finish(reason: str | None, calls: tuple[ToolCall, ...], refusal: str = "") -> FinishReason:
    if refusal:
        # Structured outputs: the model declined in ``message.refusal``, finish_reason says "stop".
        return FinishReason.CONTENT_FILTER
    if reason is None:
        return FinishReason.TOOL_CALLS if calls else FinishReason.STOP
    return _FINISH.get(reason, FinishReason.ERROR)


def chat_usage(usage: Mapping[str, Any] | None) -> Usage | None:
    """Usage from a Chat Completions ``usage`` object (``None`` when absent)."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    p_details = usage.get("prompt_tokens_details") or {}
    c_details = usage.get("completion_tokens_details") or {}
    cached = p_details.get("cached_tokens")
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")  # DeepSeek's older name
    reasoning = int(c_details.get("reasoning_tokens") or 0)
    total = usage.get("total_tokens")
    if not reasoning and isinstance(total, int) and total > prompt + completion:
        # Gemini's OpenAI-compatible endpoint counts thinking only in the total;
        # it is billed as output, so it belongs in output_tokens.
        reasoning = total - prompt - completion
        completion += reasoning
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=int(cached or 0),
        cache_write_tokens=int(p_details.get("cache_write_tokens") or 0),
        output_tokens=completion,
        reasoning_tokens=reasoning,
    )
