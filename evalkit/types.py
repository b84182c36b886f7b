"""Provider-neutral request and response types.

Every adapter turns a :class:`ChatRequest` into its vendor's wire format and the
vendor's answer back into a :class:`ChatResponse`, so the router, the runner and
the analysis never see a vendor shape.

Usage has one meaning across vendors (OpenAI's):

* ``input_tokens`` counts every prompt token; ``cached_input_tokens`` (cache reads)
  and ``cache_write_tokens`` (cache creation) are *parts* of it.
* ``output_tokens`` counts every generated token; ``reasoning_tokens`` is a *part*
  of it.

So Anthropic's input is ``input_tokens + cache_read_input_tokens +
cache_creation_input_tokens`` and Gemini's output is ``candidatesTokenCount +
thoughtsTokenCount``; the conversion happens once, in each vendor's wire module.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Mapping, TypeVar

__all__ = [
    "Attempt",
    "ChatRequest",
    "ChatResponse",
    "Cost",
    "Deadlines",
    "FinishReason",
    "Message",
    "ROLES",
    "StreamRestart",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
"""The roles a :class:`Message` may have."""


class FinishReason(str, enum.Enum):
    """Why generation stopped, normalised across vendors."""

    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    TOOL_CALLS = "tool_calls"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call, described by a JSON schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation turn.

    ``tool_calls`` is set on assistant turns that called tools; ``tool_call_id``
    on ``tool`` turns that carry a tool's result.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """An OpenAI-style message dict as a Message, checked (see :mod:`evalkit._messages`).

        ``{"role": "user", "content": "hi"}``, plus ``tool_calls`` (OpenAI's
        ``{"id", "type": "function", "function": {"name", "arguments"}}`` entries),
        ``tool_call_id`` and ``name``. A bad field raises ``TypeError`` or
        ``ValueError`` naming it, e.g. ``message.role: expected one of ...``.
        """
        return _to_message(data, "message")


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long one call may take, phase by phase; every field is unset (``None``) by default.

    * ``connect_timeout_s``: to open the connection;
    * ``headers_timeout_s``: from sending to the response's status and headers;
    * ``ttft_timeout_s``: from sending to the first token of a streamed answer;
    * ``stall_timeout_s``: the longest silence between two chunks of a streamed answer;
    * ``total_timeout_s``: the whole call (a router's whole routed call, every attempt included).

    A target's deadlines (``get_provider(..., deadlines=)``) apply to every
    call; a call's own (``ChatRequest.deadlines``) win field by field
    (:meth:`merged`). A deadline that passes is a
    :class:`~evalkit.errors.ProviderTimeoutError` naming it; routers move on to the
    next target rather than retry the same silence.
    """

    connect_timeout_s: float | None = None
    headers_timeout_s: float | None = None
    ttft_timeout_s: float | None = None
    stall_timeout_s: float | None = None
    total_timeout_s: float | None = None

    def __post_init__(self) -> None:
        for name in _DEADLINE_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 < value < float("inf")):
                raise ValueError(f"{name}: expected a positive number of seconds, got {value!r}")

    def merged(self, other: Deadlines | None) -> Deadlines:
        """These deadlines with ``other``'s set fields taking precedence."""
        if other is None or other is self:
            return self
        return Deadlines(*(b if b is not None else a for a, b in
                           ((getattr(self, n), getattr(other, n)) for n in _DEADLINE_FIELDS)))

    @property
    def armed(self) -> bool:
        """Whether any deadline is set (an unarmed call pays nothing for deadlines)."""
        return any(getattr(self, n) is not None for n in _DEADLINE_FIELDS)


_DEADLINE_FIELDS = ("connect_timeout_s", "headers_timeout_s", "ttft_timeout_s", "stall_timeout_s", "total_timeout_s")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A provider-neutral chat request.

    ``messages`` may be :class:`Message` objects, OpenAI-style dicts
    (``{"role": "user", "content": "hi"}``, see :meth:`Message.from_dict`) or a
    mix; they are checked and stored as a tuple of Messages, and a bad one raises
    ``TypeError``/``ValueError`` naming it (``messages[2].role: ...``). A
    ``system`` message stays in place; each wire sends it as that vendor takes
    system text (``system`` comes first). Fields left ``None`` are not sent,
    so each vendor applies its own default.
    ``response_format`` is ``"json"`` for JSON mode or a JSON schema mapping for
    structured output. ``metadata`` is never sent to a provider; the router reads
    ``metadata["task_type"]`` and the runner records it.
    """

    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: Literal["json"] | Mapping[str, Any] | None = None
    tools: tuple[ToolSpec, ...] = ()
    stream: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    deadlines: Deadlines | None = None

    def __post_init__(self) -> None:
        # Accept lists and dicts for convenience; store checked Message tuples so requests stay immutable.
        object.__setattr__(self, "messages", _to_messages(self.messages))
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if not isinstance(self.tools, tuple):
            object.__setattr__(self, "tools", tuple(self.tools))

    @classmethod
    def from_prompt(cls, prompt: str, **fields: Any) -> ChatRequest:
        """A single user turn: ``ChatRequest.from_prompt("hi", max_tokens=50)``."""
        return cls(messages=(Message("user", prompt),), **fields)

    def replace(self, **changes: Any) -> ChatRequest:
        """A copy with some fields changed (e.g. ``stream=True``)."""
        if not changes.keys() <= _UNCHECKED_REQUEST_FIELDS:
            return dataclasses.replace(self, **changes)  # messages, stop or tools: checked again
        return _copy_with(self, _REQUEST_FIELDS, changes)

    @property
    def task_type(self) -> str | None:
        """The caller's explicit task type, if any."""
        value = self.metadata.get("task_type")
        return str(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in OpenAI's meaning (see the module docstring).

    ``exact`` is true when the provider reported the counts, false when they were
    estimated locally with a tokenizer.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    exact: bool = True

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            exact=self.exact and other.exact,
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """Money spent on one attempt, in USD, per usage category.

    ``input`` is the uncached, non-cache-write part of the prompt and ``output``
    the non-reasoning part of the completion, so the five parts add up to
    ``total``. ``source`` names where the prices came from (``genai-prices
    0.2.3``, ``override``, ``provider-reported``). ``unsplit`` holds money a
    provider billed without saying per category (OpenRouter's ``usage.cost``).
    """

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    source: str
    unsplit: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.input + self.cached_input + self.cache_write + self.output + self.reasoning + self.unsplit

    @classmethod
    def reported(cls, total: Decimal) -> Cost:
        """A cost the provider billed in its response, without a per-category split."""
        zero = Decimal(0)
        return cls(zero, zero, zero, zero, zero, source="provider-reported", unsplit=total)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one target inside a routed call.

    ``error_kind`` is ``None`` for the attempt that served. ``sent`` is false
    when a policy decided not to send it (open circuit, context window too
    small, target saturated, over budget): it is recorded so the evidence shows
    why a target was passed over. ``depth`` is the fallback depth: 0 for the
    first target tried.
    """

    target: str
    error_kind: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    started_at: float = 0.0
    depth: int = 0
    sent: bool = True
    retry: int = 0
    """Retries of this same target before this attempt (0 on the first try)."""
    recovery: Literal["continue", "restart"] | None = None
    """How this attempt took over a stream whose caller had already seen text: ``continue`` (the
    text so far was sent as a prefill and only the rest streamed on) or ``restart`` (the caller was
    told to discard it, :class:`StreamRestart`); ``None`` for an ordinary attempt."""
    join_at: int | None = None
    """For ``recovery="continue"``: how many characters of the answer this attempt continued from."""

    @property
    def ok(self) -> bool:
        return self.error_kind is None


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """What a provider answered, normalised.

    ``cost`` is ``None`` when the model is unpriced: an unknown price is never 0.
    ``model`` is the model that actually served (vendors may resolve aliases).
    ``ttft_ms`` is set for streamed calls only. ``rate_limits`` holds the
    vendor's rate-limit headers (lower-cased names) as received. A router's
    response says which target served in ``provider`` and lists every attempt
    (failed, skipped and the serving one) in ``attempts``, in order.
    """

    text: str
    finish_reason: FinishReason
    model: str
    usage: Usage
    provider: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    request_id: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    rate_limits: Mapping[str, str] = field(default_factory=dict)
    cost: Cost | None = None
    attempts: tuple[Attempt, ...] = ()
    raw: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def replace(self, **changes: Any) -> ChatResponse:
        """A copy with some fields changed."""
        if not changes.keys() <= _RESPONSE_FIELDS_SET:
            return dataclasses.replace(self, **changes)  # raises the TypeError naming the unknown field
        return _copy_with(self, _RESPONSE_FIELDS, changes)


@dataclass(frozen=True, slots=True)
class StreamRestart:
    """An event on a routed stream: discard the text shown so far, the answer starts again.

    Sent when a stream broke after the caller had seen ``discarded``
    characters and the target taking over could not continue them (it accepts
    no prefill, or refused one), or the router's ``mid_stream`` is
    ``restart``. The text deltas after it are a new answer from its start.
    """

    discarded: int
    reason: str


_Frozen = TypeVar("_Frozen")


def _copy_with(value: _Frozen, fields: tuple[str, ...], changes: dict[str, Any]) -> _Frozen:
    """A copy of a frozen dataclass with ``changes``, skipping ``__init__``: for fields that need no check.

    Routers copy every request and response they pass on (a task type recorded, attempts attached);
    ``dataclasses.replace`` costs ~3 µs there, most of it re-running ``__init__``.
    """
    new = object.__new__(type(value))
    for name in fields:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(value, name))
    return new


_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(ChatRequest))
_UNCHECKED_REQUEST_FIELDS = frozenset(_REQUEST_FIELDS) - {"messages", "stop", "tools"}
_RESPONSE_FIELDS = tuple(f.name for f in dataclasses.fields(ChatResponse))
_RESPONSE_FIELDS_SET = frozenset(_RESPONSE_FIELDS)

# Last: the message checks need the classes above, and every ChatRequest runs them.
from ._messages import to_message as _to_message, to_messages as _to_messages  # noqa: E402
