"""What evalkit does not produce of a recorded request body, and why: the rules that make bodies comparable.

A recorded body (``../shared/wire``) loses, per :class:`Rules`, each with its
reason: fields for features evalkit has no option for (thinking budgets, cache
breakpoints, safety settings), values equal to the API's default that an SDK
spells out (``n: 1``, ``stream: false``), and content blocks evalkit cannot
send back (encrypted reasoning, signed thinking). Equivalent forms are written
one way on both sides: a list of text parts is the text (the SDKs send
``[{"type": "text", "text": "hi"}]``, evalkit ``"hi"``), an empty tool
description is no description. Nothing else is dropped: a recorded field no
rule names stays, and then the bodies differ.

Evalkit's side loses only what it adds on purpose where the SDK call did not
(``store: false``, ``stream_options.include_usage``), unless the vendor refuses
that field (:data:`VENDOR_RULES`): then it stays and the bodies differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["RULES", "VENDOR_RULES", "Rules", "canonical", "rules_for"]

# -- what evalkit does not produce, and equivalent forms ---------------------------------------


@dataclass(frozen=True)
class Rules:
    """How one wire family's recorded body becomes comparable with evalkit's (paths: ``a.b[].c``)."""

    not_sent: Mapping[str, str] = field(default_factory=dict)
    """Recorded fields evalkit has no option for: path -> why."""
    defaults: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    """Recorded fields that equal the API's default, which evalkit leaves implicit: path -> (value, why)."""
    items_not_sent: Mapping[tuple[str, str, str], str] = field(default_factory=dict)
    """List items evalkit cannot send: (list path, key, value) -> why."""
    renamed: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Top-level fields the vendor accepts under evalkit's name too: recorded -> (evalkit's name, why)."""
    not_compared: Mapping[str, str] = field(default_factory=dict)
    """Fields removed on both sides: path -> why."""
    added: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    """Top-level fields evalkit sends that an SDK call may lack: name -> (value, why); dropped only then."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Fields of ``added`` this vendor refuses, so they count as differences: name -> the vendor's answer."""
    text_parts: tuple[str, ...] = ()
    """Paths whose list of text parts equals their joined text."""
    empty_is_absent: tuple[str, ...] = ()
    """Paths where ``""`` means the same as no value (tool descriptions)."""

    def merged(self, other: Rules) -> Rules:
        """These rules and ``other``'s (a vendor's), ``other`` winning; what it refuses is no longer added."""
        fields = {f: (getattr(self, f) + getattr(other, f)) if f in ("text_parts", "empty_is_absent")
                  else {**getattr(self, f), **getattr(other, f)} for f in self.__dataclass_fields__}
        fields["added"] = {k: v for k, v in fields["added"].items() if k not in fields["refused"]}
        return Rules(**fields)


_NO_OPTION = "no ChatRequest field for it"
_STREAM_USAGE = ("stream_options", ({"include_usage": True}, "evalkit asks every stream for its usage so "
                                    "token counts are exact; the SDK call asked only when told to"))
_CHAT = Rules(
    not_sent={
        "tools[].function.strict": "ToolSpec has no strict flag: tools go out non-strict, the API default",
        "moderation": f"OpenAI moderation option: {_NO_OPTION}",
        "prompt_cache_key": f"prompt-cache routing key: {_NO_OPTION}",
        "prompt_cache_options": f"explicit prompt caching: {_NO_OPTION}",
        "messages[].content[].prompt_cache_breakpoint": "cache breakpoint on a part: evalkit sends text",
        "reasoning_effort": f"reasoning effort: {_NO_OPTION}",
        "frequency_penalty": f"sampling penalty: {_NO_OPTION}",
        "presence_penalty": f"sampling penalty: {_NO_OPTION}",
        "reasoning": f"OpenRouter's reasoning switch: {_NO_OPTION}",
        "usage": f"OpenRouter's usage accounting switch (it reports usage regardless): {_NO_OPTION}",
    },
    defaults={
        "stream": (False, "not streaming is the default"),
        "n": (1, "one choice is the default"),
        "tool_choice": ("auto", "auto is the default when tools are given"),
        "messages[].tool_calls": ([], "no tool calls"),
        "messages[].prefix": (False, "Mistral: not a prefix is the default"),
    },
    added=dict([_STREAM_USAGE]),
    text_parts=("messages[].content",),
    empty_is_absent=("tools[].function.description",),
)
_RESPONSES = Rules(
    not_sent={
        "include": "reasoning.encrypted_content is asked for to send reasoning back; evalkit sends none back",
        "reasoning": f"reasoning options (context, effort): {_NO_OPTION}",
        "conversation": "server-side conversation: evalkit sends the whole conversation every time",
        "prompt_cache_key": f"prompt-cache routing key: {_NO_OPTION}",
        "prompt_cache_options": f"explicit prompt caching: {_NO_OPTION}",
        "input[].content[].prompt_cache_breakpoint": "cache breakpoint on a content part: evalkit sends text",
        "input[].id": "id of an item the API returned: evalkit replays turns as new input (store: false)",
        "input[].status": "status of an item the API returned: evalkit replays turns as new input",
        "input[].phase": "phase of an item the API returned: evalkit replays turns as new input",
        "input[].content[].annotations": "annotations the API returned (none here): evalkit sends text",
    },
    defaults={
        "stream": (False, "not streaming is the default"),
        "tool_choice": ("auto", "auto is the default when tools are given"),
        "input[].type": ("message", "an input item with a role is a message"),
        "tools": ([], "no tools (once built-in tools are set aside)"),
    },
    items_not_sent={
        ("input", "type", "reasoning"): "encrypted reasoning item the API returned: evalkit keeps none",
        ("tools", "type", "web_search"): "built-in web search tool: ToolSpec describes function tools only",
    },
    not_compared={"tools[].strict": "ToolSpec has no strict flag; evalkit sends strict: false on purpose "
                                    "(OpenAIResponsesWire.build: strict rejects most portable schemas)"},
    added={"store": (False, "evalkit sends the whole conversation and has the API store nothing")},
    text_parts=("input[].content",),
    empty_is_absent=("tools[].description",),
)
_ANTHROPIC = Rules(
    not_sent={
        "cache_control": f"automatic prompt caching: {_NO_OPTION}",
        "context_management": f"server-side compaction (beta): {_NO_OPTION}",
        "thinking": f"extended thinking budget: {_NO_OPTION}",
        "output_config": f"effort (beta): {_NO_OPTION}",
    },
    defaults={
        "stream": (False, "not streaming is the default"),
        "tool_choice": ({"type": "auto"}, "auto is the default when tools are given"),
        "messages[].content[].is_error": (False, "a tool result is not an error by default"),
    },
    items_not_sent={
        ("messages[].content", "type", "thinking"):
            "signed thinking block the API returned: evalkit's Message carries no reasoning back",
        ("messages", "role", "system"):
            "inline system message (beta; a cache test): evalkit sends system text in the top-level system",
    },
    text_parts=("system", "messages[].content", "messages[].content[].content"),
    empty_is_absent=("tools[].description",),
)
_GEMINI = Rules(
    not_sent={
        "systemInstruction.role": "google-genai labels systemInstruction 'user'; the API reads no role there",
        "generationConfig.thinkingConfig": f"thinking options (includeThoughts): {_NO_OPTION}",
        "safetySettings": f"safety thresholds: {_NO_OPTION}",
        "toolConfig": f"function-calling mode (ANY, allowed names): {_NO_OPTION}",
        "cachedContent": "explicit context cache: evalkit manages no caches",
    },
    defaults={
        "generationConfig.responseModalities": (["TEXT"], "text is the default modality of text models"),
        "generationConfig": ({}, "an empty generationConfig is no generationConfig"),
    },
    empty_is_absent=("tools[].functionDeclarations[].description",),
)
RULES: Mapping[str, Rules] = {"openai-chat": _CHAT, "openai-responses": _RESPONSES, "anthropic": _ANTHROPIC,
                              "gemini": _GEMINI}
VENDOR_RULES: Mapping[tuple[str, str], Rules] = {
    ("azure", "openai-chat"): Rules(
        not_sent={"model": "Azure reads the deployment from the URL; the openai SDK repeats it in the body, "
                           "evalkit does not"},
        refused={"stream_options": "accepted from api-version 2024-10-21 on (evalkit's default); the "
                                   "recorded streams pin 2024-02-01, which answers 400 unknown_parameter"}),
    ("mistral", "openai-chat"): Rules(refused={
        "stream_options": "Mistral answers 422 extra_forbidden (body.stream_options.include_usage); its "
                          "streams end with a usage chunk unasked"}),
    ("openrouter", "openai-chat"): Rules(renamed={"max_completion_tokens": (
        "max_tokens", "OpenRouter documents max_tokens and honoured the recorded max_completion_tokens "
                      "(the stream stopped at finish_reason length)")}),
}
_TEXT_TYPES = ("text", "input_text", "output_text")


def rules_for(family: str, vendor: str) -> Rules:
    """The family's rules plus the vendor's own."""
    return RULES[family].merged(VENDOR_RULES.get((vendor, family), Rules()))


def canonical(body: Any, rules: Rules, recorded: bool, seen: set[str] | None = None) -> Any:
    """``body`` in comparable form: a recorded body loses what ``rules`` say evalkit does not produce.

    ``recorded=False`` (evalkit's own body) applies only the equivalent forms and
    ``not_compared``. Each removal is added to ``seen`` as the rule's key.
    """
    seen = set() if seen is None else seen
    out = _walk(body, "", rules, recorded, seen)
    if recorded:
        for old, (new, _) in rules.renamed.items():
            if old in out:
                out[new] = out.pop(old)
                seen.add(f"renamed:{old}")
    return out


def _walk(value: Any, path: str, rules: Rules, recorded: bool, seen: set[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            at = f"{path}.{key}" if path else key
            if at in rules.not_compared or (recorded and at in rules.not_sent):
                seen.add(at)
                continue
            if recorded and child is None:
                seen.add(f"null:{at}")  # a JSON null is "not set" in every one of these APIs
                continue
            child = _walk(child, at, rules, recorded, seen)
            if recorded and at in rules.defaults and child == rules.defaults[at][0]:
                seen.add(f"default:{at}")
                continue
            if at in rules.empty_is_absent and child == "":
                seen.add(f"empty:{at}")
                continue
            out[key] = child
        return out
    if isinstance(value, list):
        kept = []
        for item in value:
            if recorded and (rule := _item_rule(item, path, rules)) is not None:
                seen.add("item:" + ":".join(rule))
                continue
            kept.append(_walk(item, f"{path}[]", rules, recorded, seen))
        if path in rules.text_parts and kept and all(_is_text_part(p) for p in kept):
            return "".join(p["text"] for p in kept)
        return kept
    return value


def _item_rule(item: Any, path: str, rules: Rules) -> tuple[str, str, str] | None:
    """The ``items_not_sent`` rule that matches list item ``item`` of ``path``, if any."""
    if not isinstance(item, dict):
        return None
    return next((rule for rule in rules.items_not_sent
                 if rule[0] == path and item.get(rule[1]) == rule[2]), None)


def _is_text_part(part: Any) -> bool:
    return isinstance(part, dict) and part.keys() == {"type", "text"} and part["type"] in _TEXT_TYPES
