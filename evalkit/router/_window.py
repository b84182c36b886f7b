"""Does a prompt fit a target's context window? Counted once per routed call."""

from __future__ import annotations

from ..types import ChatRequest, Message

__all__ = ["PromptSize"]


class PromptSize:
    """The prompt's token count (estimated lazily, only if some target has a window) and what it needs."""

    __slots__ = ("request", "_tokens", "_ceiling")

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self._tokens: int | None = None
        self._ceiling: int | None = None  # windows at or below this proved too small

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
        window = getattr(target, "context_window", None)
        if window is None:
            return True
        if self._ceiling is not None and window <= self._ceiling:
            return False
        return self.needed <= window

    def why_not(self, target: object) -> str:
        window = getattr(target, "context_window", None)
        return f"needs ~{self.needed} tokens, window is {window}"

    def too_big_for(self, target: object) -> None:
        """The target said the prompt is too long: windows no larger than its own are too small."""
        window = getattr(target, "context_window", None)
        if window is not None:
            self._ceiling = max(window, self._ceiling or 0)
