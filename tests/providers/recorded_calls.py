"""The calls recorded in ``../shared/wire`` as evalkit makes them: vendor, request, and the body to expect.

For each recorded model call, :func:`model_calls` gives a :class:`RecordedCall`:
the evalkit target and options that make "the same call", the
:class:`~evalkit.ChatRequest` derived from the recorded request body, and that
body in canonical form (``body_rules.py``: without what evalkit does not
produce, each with its reason), the form evalkit's own body is compared with
(``test_request_conformance.py``). The derivation reads every field the
canonical body has: one it cannot make fails here, never silently.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from evalkit import ChatRequest
from evalkit.providers.vendors import VENDORS
from evalkit.types import Message, ToolCall, ToolSpec

from .body_rules import Rules, canonical, rules_for
from .recordings import WIRE, Interaction, as_json_array_stream, load

__all__ = ["EXCLUDED", "RecordedCall", "family_of", "model_calls"]

# -- which recorded interactions are model calls ----------------------------------------------

FAMILIES = (("/chat/completions", "openai-chat"), ("/responses", "openai-responses"),
            ("/v1/messages", "anthropic"), (":generateContent", "gemini"),
            (":streamGenerateContent", "gemini"))
"""How a recorded path ends, per wire family (``urlsplit`` drops Mistral's client-side ``#stream``)."""

EXCLUDED: Mapping[str, str] = {
    "anthropic/test_anthropic_count_tokens_error.yaml#0":
        "POST /v1/messages/count_tokens: evalkit never asks the API to count tokens",
    "anthropic/test_anthropic_model_usage_limit_not_exceeded.yaml#0":
        "POST /v1/messages/count_tokens: evalkit never asks the API to count tokens",
    **{f"azure-openai/test_azure_openai_embeddings.yaml#{i}":
       "embeddings endpoint: evalkit makes chat calls only" for i in range(4)},
    "gemini/test_google_model_cached_content.yaml#0":
        "POST /v1beta/cachedContents: evalkit manages no caches",
    "gemini/test_google_model_cached_content.yaml#3":
        "DELETE /v1beta/cachedContents/{id}: evalkit manages no caches",
    "openai/test_openai_conversation_id_tool_call_continuation.yaml#0":
        "POST /v1/conversations: evalkit keeps no server-side conversations",
    "openai/test_openai_conversation_id_tool_call_continuation.yaml#3":
        "DELETE /v1/conversations/{id}: evalkit keeps no server-side conversations",
}
"""Every recorded interaction that is not a model call, by id, with why evalkit never makes it."""

VENDOR_OF_FOLDER = {"openai": "openai", "azure-openai": "azure", "anthropic": "anthropic", "gemini": "gemini",
                    "groq": "groq", "mistral": "mistral", "deepseek": "deepseek", "openrouter": "openrouter",
                    "ollama": "ollama", "cerebras": "cerebras"}
OPENAI_COMPATIBLE_AT = {"/v1beta/openai/chat/completions": "/v1beta/openai"}
"""Gemini's OpenAI-compatible endpoint: evalkit's ``openai`` provider at Google's documented base URL."""

# -- the same call, in evalkit -------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedCall:
    """One recorded model call and how evalkit makes it."""

    interaction: Interaction
    """What the capture server answers (for ``json-array``, the recorded SSE chunks as one JSON array)."""
    family: str
    vendor: str
    model: str
    options: Mapping[str, Any]
    base_path: str
    """The path part of the vendor's documented base URL, which evalkit's wire path extends."""
    request: ChatRequest
    expected_body: Any
    """The recorded body in canonical form."""
    not_produced: frozenset[str]
    """The rules that removed something from the recorded body."""
    stream_format: str | None
    """``None`` (a JSON answer), ``"sse"`` or ``"json-array"`` (Gemini without ``alt=sse``)."""
    local: bool
    """Recorded against a server on localhost (self-hosted Ollama): called without a key."""

    @property
    def id(self) -> str:
        return self.interaction.id + ("+json-array" if self.stream_format == "json-array" else "")

    @property
    def target(self) -> str:
        return f"{self.vendor}:{self.model}"

    @property
    def rules(self) -> Rules:
        return rules_for(self.family, self.vendor)


def family_of(it: Interaction) -> str | None:
    """The wire family of a recorded model call; ``None`` for any other endpoint."""
    path = urlsplit(it.uri).path
    return next((family for suffix, family in FAMILIES if path.endswith(suffix)), None)


def model_calls() -> list[RecordedCall]:
    """Every recorded model call (and, for each Gemini SSE stream, its JSON-array form)."""
    if not WIRE.is_dir():
        return []
    calls = []
    for path in sorted(WIRE.glob("*/*.yaml")):
        for it in load(str(path.relative_to(WIRE))):
            if it.id in EXCLUDED:
                continue
            call = _call(it)
            calls.append(call)
            if call.stream_format == "sse" and call.family == "gemini":
                calls.append(replace(call, interaction=as_json_array_stream(it), stream_format="json-array",
                                     options={**call.options, "stream_format": "json-array"}))
    return calls


def _call(it: Interaction) -> RecordedCall:
    family = family_of(it)
    assert family is not None and it.method == "POST", f"{it.id}: not a model call and not in EXCLUDED"
    url = urlsplit(it.uri)
    vendor = VENDOR_OF_FOLDER[it.file.split("/")[0]]
    base_path = urlsplit(VENDORS[vendor].base_url).path.rstrip("/")
    if family == "openai-chat" and url.path in OPENAI_COMPATIBLE_AT:
        vendor, base_path = "openai", OPENAI_COMPATIBLE_AT[url.path]
    rules = rules_for(family, vendor)
    seen: set[str] = set()
    expected = canonical(it.request_body, rules, recorded=True, seen=seen)
    options: dict[str, Any] = {"api": "responses"} if family == "openai-responses" else {}
    if family == "gemini":
        model = url.path.rsplit("/", 1)[1].split(":")[0]
        stream = url.path.endswith(":streamGenerateContent")
    elif vendor == "azure" and family == "openai-chat":
        model = url.path.split("/deployments/")[1].split("/")[0]  # the deployment
        options["api_version"] = dict(parse_qsl(url.query))["api-version"]  # the query test checks it
        stream = bool(expected.get("stream"))
    else:
        model, stream = it.request_body["model"], bool(expected.get("stream"))
    request = DERIVE[family](copy.deepcopy(expected)).replace(stream=stream)
    return RecordedCall(it, family, vendor, model, options, base_path, request, expected, frozenset(seen),
                        "sse" if stream else None, url.hostname == "localhost")


# -- recorded bodies (canonical) to ChatRequests -------------------------------------------------


def _take(body: dict[str, Any], *names: str) -> Any:
    values = [body.pop(n) for n in names if n in body]
    return values[0] if values else None


def _done(body: dict[str, Any], what: str) -> None:
    assert not body, f"recorded {what} fields evalkit cannot make: {sorted(body)} (add a rule, with why)"


def _request(body: dict[str, Any], messages: list[Message], **fields: Any) -> ChatRequest:
    body.pop("model", None)
    body.pop("stream", None)  # from the path (Gemini) or the recorded flag, set by the caller
    stop = fields.pop("stop", None)
    request = ChatRequest(messages=messages, stop=tuple([stop] if isinstance(stop, str) else stop or ()),
                          **{k: v for k, v in fields.items() if v is not None})
    _done(body, "request")
    return request


def _spec(name: str, description: str | None, parameters: Any) -> ToolSpec:
    if parameters is None:
        return ToolSpec(name, description or "")
    return ToolSpec(name, description or "", parameters)


def _chat(body: dict[str, Any]) -> ChatRequest:
    messages = []
    for m in body.pop("messages"):
        m = dict(m)
        calls = tuple(ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                      for c in m.pop("tool_calls", ()))
        messages.append(Message(m.pop("role"), _take(m, "content") or "", calls, _take(m, "tool_call_id"),
                                _take(m, "name")))
        _done(m, "message")
    functions = [t["function"] for t in body.pop("tools", ())]
    tools = tuple(_spec(f["name"], f.get("description"), f.get("parameters")) for f in functions)
    body.pop("stream_options", None)  # follows from stream; compared as part of the body
    return _request(body, messages, max_tokens=_take(body, "max_completion_tokens", "max_tokens"),
                    temperature=_take(body, "temperature"), top_p=_take(body, "top_p"),
                    seed=_take(body, "seed"), stop=_take(body, "stop"),
                    response_format=_take(body, "response_format"), tools=tools)


def _responses(body: dict[str, Any]) -> ChatRequest:
    messages: list[Message] = []
    for item in body.pop("input"):
        if item.get("type") == "function_call":
            call = ToolCall(item["call_id"], item["name"], item["arguments"])
            if messages and messages[-1].role == "assistant":  # text, then the calls of the same turn
                messages[-1] = replace(messages[-1], tool_calls=(*messages[-1].tool_calls, call))
            else:
                messages.append(Message("assistant", "", (call,)))
        elif item.get("type") == "function_call_output":
            messages.append(Message("tool", item["output"], tool_call_id=item["call_id"]))
        else:
            assert item.keys() == {"role", "content"}, f"input item evalkit cannot make: {item}"
            messages.append(Message(item["role"], item["content"]))
    tools = tuple(_spec(t["name"], t.get("description"), t.get("parameters")) for t in body.pop("tools", ()))
    return _request(body, messages, system=_take(body, "instructions"),
                    max_tokens=_take(body, "max_output_tokens"), temperature=_take(body, "temperature"),
                    top_p=_take(body, "top_p"), tools=tools)


def _anthropic(body: dict[str, Any]) -> ChatRequest:
    messages: list[Message] = []
    for m in body.pop("messages"):
        content, role = m["content"], m["role"]
        if isinstance(content, str):
            messages.append(Message(role, content))
            continue
        texts = "".join(b["text"] for b in content if b["type"] == "text")
        calls = tuple(ToolCall(b["id"], b["name"], json.dumps(b["input"]))
                      for b in content if b["type"] == "tool_use")
        messages += [Message("tool", b["content"], tool_call_id=b["tool_use_id"])
                     for b in content if b["type"] == "tool_result"]
        assert {b["type"] for b in content} <= {"text", "tool_use", "tool_result"}, f"blocks: {content}"
        if texts or calls:
            messages.append(Message(role, texts, calls))
    tools = tuple(_spec(t["name"], t.get("description"), t["input_schema"]) for t in body.pop("tools", ()))
    return _request(body, messages, system=_take(body, "system"), max_tokens=_take(body, "max_tokens"),
                    temperature=_take(body, "temperature"), top_p=_take(body, "top_p"),
                    stop=_take(body, "stop_sequences"), tools=tools)


def _gemini(body: dict[str, Any]) -> ChatRequest:
    system = None
    instruction = body.pop("systemInstruction", None)
    if instruction is not None:
        (part,) = instruction.pop("parts")  # evalkit sends one part per system text: one here
        system = part["text"]
        _done(instruction, "systemInstruction")
    messages: list[Message] = []
    for turn in body.pop("contents"):
        parts = turn["parts"]
        calls = tuple(ToolCall(p["functionCall"].get("id", ""), p["functionCall"]["name"],
                               json.dumps(p["functionCall"]["args"])) for p in parts if "functionCall" in p)
        texts = [p["text"] for p in parts if "text" in p]
        messages += [Message("tool", json.dumps(p["functionResponse"]["response"]),
                             tool_call_id=p["functionResponse"].get("id"), name=p["functionResponse"]["name"])
                     for p in parts if "functionResponse" in p]
        assert len(texts) <= 1 and all(len(p) == 1 for p in parts), f"parts evalkit cannot make: {parts}"
        if texts or calls:
            role = "assistant" if turn["role"] == "model" else "user"
            messages.append(Message(role, "".join(texts), calls))
    config = body.pop("generationConfig", {})
    tools = tuple(_spec(d["name"], d.get("description"), d.get("parameters"))
                  for t in body.pop("tools", ()) for d in t["functionDeclarations"])
    request = _request(body, messages, system=system, max_tokens=_take(config, "maxOutputTokens"),
                       temperature=_take(config, "temperature"), top_p=_take(config, "topP"),
                       seed=_take(config, "seed"), stop=_take(config, "stopSequences"), tools=tools)
    _done(config, "generationConfig")
    return request


DERIVE = {"openai-chat": _chat, "openai-responses": _responses, "anthropic": _anthropic, "gemini": _gemini}
