"""Assistant prefill: which targets continue a final assistant turn, and how an answer joins it.

A :class:`~evalkit.ChatRequest` whose LAST message is an assistant turn with
text (and no tool calls) is a *prefill*: the model must continue that text, not
answer afresh. A router recovering a broken stream sends the partial answer
this way (``mid_stream="continue"``); a caller may too. Each wire puts it on
the wire in its vendor's form (Anthropic: the last ``assistant`` message, its
trailing whitespace stripped; Mistral: ``"prefix": true`` on it; other
OpenAI-compatible servers: a plain last ``assistant`` message; Gemini: a last
``model`` content).

Whether the target then *continues* it is capability data, per vendor and
model (:func:`accepts_prefill`, the table :data:`PREFILL_SUPPORT`, each row
with its source). The danger it guards against is silent: OpenAI answers a
trailing assistant turn afresh, so a continuation would repeat the text the
caller already has; a target that refuses (Claude 4.6+ answers 400) costs one
request. Either way a router restarts instead of continuing when this says no.

:class:`PrefillJoin` removes from the start of an answer the text the caller
already has, where a vendor sends some back: Mistral repeats the whole prefix
before continuing it; Anthropic continues the prefill without the whitespace
it made us strip, so its answer usually starts with that whitespace again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from ..types import ChatRequest

__all__ = ["PREFILL_SUPPORT", "PrefillJoin", "PrefillSupport", "accepts_prefill", "prefill_text"]


def prefill_text(request: ChatRequest) -> str | None:
    """The prefill ``request`` carries (its last message, an assistant text turn), or ``None``."""
    if not request.messages:
        return None
    last = request.messages[-1]
    if last.role != "assistant" or last.tool_calls:
        return None
    return last.content


# -- capability data ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrefillSupport:
    """Whether a vendor's models continue a prefill, and where that is documented."""

    accepts: Callable[[str], bool]
    """``model -> bool``."""
    source: str


_CLAUDE_VERSION = re.compile(r"claude-(?:(?:opus|sonnet|haiku|instant)-)?(\d+)(?:[-.](\d{1,2})(?!\d))?")
"""``claude-3-5-sonnet-…`` → 3.5, ``claude-sonnet-4-20250514`` → 4.0 (a date is no minor version),
``claude-opus-4-6`` → 4.6, OpenRouter's ``anthropic/claude-sonnet-4.5`` → 4.5."""

_CLAUDE_LAST_PREFILL = (4, 5)
"""The last Claude version that continues a prefill: "Prefilling assistant messages returns a 400 error
on Claude 4.6 models" (platform.claude.com/docs/en/about-claude/models/migration-guide); later
generations (4.7, 4.8, 5) reject it too."""


def _claude_accepts(model: str) -> bool:
    """Claude up to 4.5 continues a prefill; 4.6 and later answer 400; a name we cannot date: no.

    Extended thinking does not combine with prefill ("Prefilling is only available for
    non-extended thinking modes"), so OpenRouter's ``:thinking`` variants are a no too.
    """
    found = _CLAUDE_VERSION.search(model.lower())
    if found is None or model.endswith(":thinking"):
        return False
    version = (int(found.group(1)), int(found.group(2) or 0))
    return version <= _CLAUDE_LAST_PREFILL


def _always(model: str) -> bool:
    return True


def _never(model: str) -> bool:
    return False


def _openrouter_accepts(model: str) -> bool:
    return model.startswith("anthropic/") and _claude_accepts(model)


PREFILL_SUPPORT: Mapping[str, PrefillSupport] = {
    "anthropic": PrefillSupport(
        _claude_accepts,
        "documented prefill (platform.claude.com/docs/en/build-with-claude/prompt-engineering/"
        "prefill-claudes-response: the prefill 'cannot end with trailing whitespace'); Claude 4.6+ "
        "answer 400 'This model does not support assistant message prefill' (models/migration-guide)"),
    "mistral": PrefillSupport(
        _always,
        "assistant message with prefix: true 'forces the model to start its answer by the content of the "
        "message' (Mistral API spec, AssistantMessage.prefix); the answer repeats the prefix first (the "
        "prefill 'is returned from the API', SillyTavern/SillyTavern#2557), which the wire strips"),
    "groq": PrefillSupport(
        _always,
        "documented 'Assistant Message Prefilling' (console.groq.com/docs/prompting): the model generates a "
        "response starting with the final assistant message"),
    "ollama": PrefillSupport(
        _always,
        "a final assistant message is continued, not answered afresh (ollama/ollama#5802 'preserve last "
        "assistant message', fixing #5775; templates fixed in #5890)"),
    "openrouter": PrefillSupport(
        _openrouter_accepts,
        "only anthropic/ models are known to continue a trailing assistant message (they do on "
        "Anthropic's API, Claude up to 4.5 as above); other upstreams may answer it afresh"),
    "deepseek": PrefillSupport(
        _never,
        "chat prefix completion is a beta: it needs base_url https://api.deepseek.com/beta and prefix: true "
        "(api-docs.deepseek.com, 'Chat Prefix Completion (Beta)'); the default endpoint does not continue"),
    "openai": PrefillSupport(
        _never,
        "a trailing assistant turn is answered afresh, not continued: a continuation would silently repeat "
        "the text the caller already has"),
    "azure": PrefillSupport(_never, "Azure OpenAI serves OpenAI's models: as openai"),
    "gemini": PrefillSupport(
        _never, "a trailing model turn is not documented to be continued; not relied on"),
    "vllm": PrefillSupport(
        _never, "continues only with continue_final_message=true (vLLM's chat-completions extra parameter), "
        "which evalkit does not send; override per target"),
    "llamacpp": PrefillSupport(_never, "depends on the server's chat template; override per target"),
    "together": PrefillSupport(_never, "not documented; override per target"),
    "fireworks": PrefillSupport(_never, "not documented; override per target"),
    "cerebras": PrefillSupport(_never, "not documented; override per target"),
}
"""Per vendor: does a model continue an assistant prefill, and why we believe so.

A vendor missing here is a no: continuing is an optimisation (one answer, no
repeated tokens), restarting is always correct.
"""


def accepts_prefill(vendor: str, model: str) -> bool:
    """Whether ``vendor:model`` continues a final assistant turn (see :data:`PREFILL_SUPPORT`)."""
    support = PREFILL_SUPPORT.get(vendor.lower())
    return support is not None and support.accepts(model)


# -- joining an answer to its prefill ---------------------------------------------------------------


class PrefillJoin:
    """Drops, from the start of a continuation, text the caller already has.

    ``repeated`` is what the vendor may send again first. With ``whole`` it
    is dropped only when the answer starts with all of it (Mistral repeats
    the whole prefix; an answer that merely starts like the prefill is new
    text); without, the longest common start is dropped (Anthropic: the
    whitespace stripped from the prefill, which the continuation usually
    starts with, in part or whole).

    Streamed: :meth:`feed` holds text back while it could still be the
    repeat and returns what the caller should see; :meth:`flush` when the
    answer ended (at its finish event) returns what was held if it turned out
    not to be the repeat. :meth:`apply` does both for a whole answer.
    """

    __slots__ = ("_repeated", "_whole", "_held", "_decided")

    def __init__(self, repeated: str, *, whole: bool) -> None:
        self._repeated = repeated
        self._whole = whole
        self._held = ""
        self._decided = not repeated

    def feed(self, text: str) -> str:
        if self._decided:
            return text
        held = self._held + text
        if self._whole:
            if held.startswith(self._repeated):
                return self._decide(held[len(self._repeated):])
            if self._repeated.startswith(held):
                self._held = held
                return ""
            return self._decide(held)
        shared = _common_start(held, self._repeated)
        if shared == len(held) < len(self._repeated):
            self._held = held
            return ""
        return self._decide(held[shared:])

    def flush(self) -> str:
        """What was held back, once the answer ended: new text (``whole``), or nothing (whitespace we had)."""
        if self._decided:
            return ""
        return self._decide(self._held if self._whole else "")

    def apply(self, text: str) -> str:
        """A whole answer, joined (this object is then used up)."""
        return self.feed(text) + self.flush()

    def _decide(self, out: str) -> str:
        self._decided, self._held = True, ""
        return out


def _common_start(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
