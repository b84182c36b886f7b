"""How many output tokens a vendor can bill for one request: the worst case a budget must hold.

A request's output cap does not mean the same thing on every wire:

* **OpenAI** Chat Completions ``max_completion_tokens`` (and the older
  ``max_tokens``) and Responses ``max_output_tokens`` bound *visible and
  reasoning tokens together*: reasoning eats the cap, and a reasoning model
  that spends all of it returns empty text with ``finish_reason: length``.
  Azure OpenAI is the same API. So the most billable output is the cap.
* **Anthropic** Messages ``max_tokens`` includes extended-thinking tokens:
  ``thinking.budget_tokens`` must be at least 1,024 and below ``max_tokens``
  (a 400 otherwise), so the cap bounds the bill.
* **Most OpenAI-compatible servers** (Groq, Mistral, Together, Fireworks,
  Cerebras, vLLM, llama.cpp, Ollama) count ``<think>`` text as completion
  tokens under ``max_tokens``. Exception: DeepSeek's ``deepseek-reasoner``
  documents ``max_tokens`` as the final answer *after* a chain of thought that
  "can reach up to 32K tokens".
* **Gemini** ``maxOutputTokens`` caps the visible candidates, while thinking is
  bounded separately by ``generationConfig.thinkingConfig.thinkingBudget``:
  ``-1`` is dynamic (the model decides, up to its maximum), ``0`` turns
  thinking off where the model allows it, and without a budget each model has
  its own default (2.5 Pro and Flash think dynamically, Flash-Lite does not
  think). Ranges: 2.5 Pro 128-32,768 (cannot be turned off), 2.5 Flash
  0-24,576, 2.5 Flash-Lite 512-24,576. Google adds that "depending on the
  prompt, the model might overflow or underflow the token budget", and users
  report Gemini 2.5/3 counting thoughts *inside* ``maxOutputTokens``; the
  bound here (cap + budget) covers both readings, and a real overflow of the
  budget shows as ``overrun`` in the ledger's snapshot.

So the billable output of one request is its cap plus, where thinking is billed
on top of the cap, what the model's caps allow for the thinking budget the
request sends (on the Gemini wire), else for the model's default.
:func:`output_bound` resolves that once per target (a provider, or a router
tree, whose bound is its dearest leaf's); :class:`ThinkingCaps` entries
are capability data per model family, and :func:`set_thinking_caps` overrides
or adds one (a self-hosted model, a fleet of emulated models). A Gemini model
this table does not know is assumed to think up to :data:`UNKNOWN_GEMINI`'s
maximum: an unknown cost is never counted as free.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from ..types import ChatRequest

__all__ = [
    "DYNAMIC",
    "NO_THINKING",
    "UNKNOWN_GEMINI",
    "OutputBound",
    "ThinkingCaps",
    "ThinkingWire",
    "max_billed_output_tokens",
    "output_bound",
    "set_thinking_caps",
    "thinking_caps",
]

DYNAMIC = -1
"""A thinking budget of ``-1``: the model decides how much to think, up to its maximum."""


@dataclass(frozen=True, slots=True)
class ThinkingCaps:
    """Thinking a model family can bill *on top of* the request's output cap.

    ``maximum`` is the largest budget the model accepts (what dynamic thinking
    may reach), ``minimum`` the smallest positive one, ``default`` what applies
    when the request sets none (:data:`DYNAMIC`, 0 for off, or a token count),
    and ``can_disable`` whether a budget of 0 turns thinking off.
    """

    maximum: int
    minimum: int = 0
    default: int = DYNAMIC
    can_disable: bool = True

    # Not shared with evalkit.emulator._specs.Thinking.bound, which looks alike: this is what evalkit reserves
    # before the vendor answers, that is what the emulated vendor does; tests/router/test_budget_billing.py
    # would prove nothing if both were one piece of code. They differ at 0 on purpose: here a model that
    # cannot turn thinking off still holds its floor.
    def budget(self, requested: int | None) -> int:
        """The most thinking tokens a request asking for ``requested`` (``None``: not set) can bill."""
        value = self.default if requested is None else requested
        if value < 0:
            return self.maximum
        if value == 0:
            # The vendor refuses 0 where thinking cannot be turned off; nothing less than the floor is billed.
            return 0 if self.can_disable else self.minimum
        return min(max(value, self.minimum), self.maximum)


NO_THINKING = ThinkingCaps(0, default=0)
"""A family that never thinks beyond its output cap (its reasoning, if any, is inside the cap)."""

UNKNOWN_GEMINI = ThinkingCaps(32_768)
"""A Gemini model not in the table: dynamic thinking up to the largest documented maximum (2.5 Pro's)."""

# (vendor or wire name, model-name prefix) -> caps; the longest matching prefix wins, a vendor's
# entry before its wire's. Sources: Gemini API "thinking" guide (ranges above); DeepSeek API
# "Reasoning Model (deepseek-reasoner)": CoT "can reach up to 32K tokens" besides max_tokens.
_FAMILIES: dict[tuple[str, str], ThinkingCaps] = {
    ("gemini", "gemini-2.5-pro"): ThinkingCaps(32_768, minimum=128, can_disable=False),
    ("gemini", "gemini-2.5-flash"): ThinkingCaps(24_576, minimum=1),
    ("gemini", "gemini-2.5-flash-lite"): ThinkingCaps(24_576, minimum=512, default=0),
    ("gemini", "gemini-2.0-flash-thinking"): UNKNOWN_GEMINI,
    ("gemini", "gemini-2.0"): NO_THINKING,
    ("gemini", "gemini-1."): NO_THINKING,
    ("gemini", "gemini-pro"): NO_THINKING,
    ("gemini", "gemma"): NO_THINKING,
    ("deepseek", "deepseek-reasoner"): ThinkingCaps(32_768, can_disable=False),
}
# Wires whose thinking is billed beyond the cap even for models the table does not name.
_WIRE_DEFAULTS: dict[str, ThinkingCaps] = {"gemini": UNKNOWN_GEMINI}
_lock = threading.Lock()


def set_thinking_caps(scope: str, model_prefix: str, caps: ThinkingCaps | None) -> None:
    """Add or replace the caps of models named ``model_prefix…`` on ``scope`` (a vendor or wire name).

    ``caps=None`` removes the entry. Routers resolve their bounds when they are
    built, so set caps before building them::

        set_thinking_caps("gemini", "sim-", NO_THINKING)   # an emulated fleet that never thinks
    """
    if caps is not None and not isinstance(caps, ThinkingCaps):
        raise TypeError(f"caps must be a ThinkingCaps or None, not {type(caps).__name__}")
    with _lock:
        if caps is None:
            _FAMILIES.pop((scope, model_prefix), None)
        else:
            _FAMILIES[(scope, model_prefix)] = caps


def thinking_caps(model: str, *, vendor: str | None = None, wire: str | None = None) -> ThinkingCaps | None:
    """The caps of ``model`` served by ``vendor`` over ``wire``; None when thinking stays inside the cap."""
    name = model.rsplit("/", 1)[-1]  # "models/gemini-2.5-pro" and tuned-model paths
    with _lock:
        for scope in (vendor, wire):
            if scope is None:
                continue
            matches = [prefix for (owner, prefix) in _FAMILIES if owner == scope and name.startswith(prefix)]
            if matches:
                return _FAMILIES[(scope, max(matches, key=len))]
        return _WIRE_DEFAULTS.get(wire or "") or _WIRE_DEFAULTS.get(vendor or "")


class ThinkingWire(Protocol):
    """A wire whose requests carry a thinking budget (Gemini's)."""

    def thinking_budget(self, request: ChatRequest) -> int | None: ...


@dataclass(frozen=True, slots=True)
class OutputBound:
    """The most output tokens one request to a target can bill; build it with :func:`output_bound`.

    That is the request's ``max_tokens`` plus the thinking billed beyond it:
    ``beyond`` tokens whatever the request says (DeepSeek's reasoner, and
    leaves of a router), or for a Gemini-wire leaf in ``gemini_leaves`` what
    its caps allow for the thinking budget the request sends.
    """

    beyond: int = 0
    gemini_leaves: tuple[tuple[ThinkingCaps, ThinkingWire], ...] = ()
    """(caps, wire) of each Gemini-wire leaf, whose thinking depends on the request's budget."""

    @property
    def beyond_cap(self) -> bool:
        """Whether the bill can pass the request's ``max_tokens`` (thinking billed on top of it)."""
        return bool(self.beyond or self.gemini_leaves)

    def tokens(self, request: ChatRequest) -> int:
        """Visible plus reasoning/thinking tokens billable for ``request`` (``max_tokens`` must be set)."""
        if request.max_tokens is None:
            raise ValueError("the billable output of a request without max_tokens is unbounded; "
                             "set max_tokens")
        extra = self.beyond
        for caps, wire in self.gemini_leaves:
            extra = max(extra, caps.budget(wire.thinking_budget(request)))
        return request.max_tokens + extra


_CAP_ONLY = OutputBound()


def output_bound(target: object) -> OutputBound:
    """How ``target`` bills output, resolved once.

    A provider by its vendor, wire and model; a wrapper by its inner target; a
    router by its leaves (any of them may serve).
    """
    inner = getattr(target, "targets", None)
    if inner:  # a router: any leaf may serve, so its bound is its dearest leaf's
        leaves = [output_bound(t) for t in inner]
        return OutputBound(max(b.beyond for b in leaves), tuple(g for b in leaves for g in b.gemini_leaves))
    wrapped = getattr(target, "target", None)
    if wrapped is not None and not hasattr(target, "model"):  # a wrapper such as LimitedTarget
        return output_bound(wrapped)
    model = getattr(target, "model", None)
    if not isinstance(model, str):
        return _CAP_ONLY
    wire = getattr(target, "wire", None)
    wire_name = getattr(wire, "name", None)
    wire_name = wire_name if isinstance(wire_name, str) else None
    caps = thinking_caps(model, vendor=getattr(target, "vendor", None), wire=wire_name)
    if caps is None or caps.maximum <= 0:
        return _CAP_ONLY
    if wire_name == "gemini" and wire is not None:  # the one wire whose requests carry a thinking budget
        return OutputBound(gemini_leaves=((caps, wire),))
    return OutputBound(caps.budget(None))


def max_billed_output_tokens(target: object, request: ChatRequest) -> int:
    """The most output tokens ``target`` can bill for ``request`` (see the module docstring)."""
    return output_bound(target).tokens(request)
