"""Does a prompt fit a target's context window? Counted once per routed call."""

from __future__ import annotations

from ..types import ChatRequest, Message

__all__ = ["PromptSize", "window_of"]

# More than any chat format adds per message (OpenAI's is 3-4 tokens, a name 1 more).
_FRAMING_TOKENS = 8


class PromptSize:
    """The prompt's token count (estimated lazily, only if some target has a window) and what it needs."""

    __slots__ = ("request", "_tokens", "_ceiling", "_bound")

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self._tokens: int | None = None
        self._ceiling: int | None = None  # windows at or below this proved too small
        self._bound: int | None = None

    @property
    def bound(self) -> int | None:
        """An upper bound of :attr:`needed` found without a tokenizer; ``None`` when the prompt is not plain text.

        A BPE token covers at least one UTF-8 byte and a character is at most 4
        bytes, so a text has at most 4 tokens per character; each message adds
        its framing (a few tokens). A prompt far below a window fits without
        being counted, which is nearly always (a count costs tens of µs).
        """
        if self._bound is None:
            request = self.request
            chars = len(request.system or "")
            for message in request.messages:
                if type(message.content) is not str or message.tool_calls:
                    return None
                chars += len(message.content)
            self._bound = 4 * chars + _FRAMING_TOKENS * (len(request.messages) + 2) + (request.max_tokens or 0)
        return self._bound

    @property
    def needed(self) -> int:
        """Prompt tokens plus the output the request may produce."""
        if self._tokens is None:
            from ..tokens import count_tokens

            messages = list(self.request.messages)
            if self.request.system:
                messages.insert(0, Message("system", self.request.system))
            self._tokens = count_tokens(messages, "").count
        return self._tokens + (self.request.max_tokens or 0)

    def fits(self, target: object) -> bool:
        window = window_of(target)
        if window is None:
            return True
        if self._ceiling is not None and window <= self._ceiling:
            return False
        bound = self.bound
        return (bound is not None and bound <= window) or self.needed <= window

    def why_not(self, target: object) -> str:
        window = window_of(target)
        return f"needs ~{self.needed} tokens, window is {window}"

    def too_big_for(self, target: object) -> None:
        """The target said the prompt is too long: windows no larger than its own are too small."""
        window = window_of(target)
        if window is not None:
            self._ceiling = max(window, self._ceiling or 0)


def window_of(target: object) -> int | None:
    """``target``'s context window in tokens (:class:`~evalkit.providers.Windowed`); ``None`` when unknown.

    Read with ``getattr`` rather than ``isinstance(target, Windowed)``: this runs
    for every target of every routed call, and a runtime protocol check costs ~6 µs.
    """
    window = getattr(target, "context_window", None)
    return window if isinstance(window, int) else None
