"""One routed call as it travels down a router tree: where its text goes, what its caller has seen, when it ends.

A :class:`RoutedCall` is created by the router the caller called (the root)
and handed, explicitly, to every policy (``_route(request, attempts, call)``)
and every nested router, so a policy sees in its signature whether text was
already delivered (``call.text``) instead of asking a context variable. Leaf
providers only see it as the ``on_delta`` callable they push text deltas to.

Why the caller's view matters: once text has reached the caller, sending the
request afresh to another target would splice two answers together. The
router then either continues the answer (the text so far goes to the next
target as an assistant prefill, and only the rest streams on), restarts it
(the caller first gets a :class:`~evalkit.types.StreamRestart` event), or
fails (``mid_stream``, see :mod:`evalkit.router`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from ..types import ChatRequest, StreamRestart

if TYPE_CHECKING:
    from ..providers import OnDelta

__all__ = ["MID_STREAM_MODES", "MidStream", "RoutedCall", "check_mid_stream"]

MidStream = Literal["continue", "restart", "fail"]
MID_STREAM_MODES: tuple[MidStream, ...] = ("continue", "restart", "fail")


def check_mid_stream(value: object) -> MidStream:
    """``value`` if it is a mid-stream mode; ``ValueError`` naming the modes otherwise."""
    for mode in MID_STREAM_MODES:
        if value == mode:
            return mode
    raise ValueError(f"mid_stream must be one of {', '.join(MID_STREAM_MODES)}, got {value!r}")


class RoutedCall:
    """The caller's side of one routed call.

    ``sink`` receives each text delta (``str``) and each
    :class:`~evalkit.types.StreamRestart`; ``None`` when nobody is reading
    the text as it comes (``complete`` without ``on_delta``): then nothing is
    ever shown, and a broken stream is simply sent again elsewhere.
    ``deadline`` is the ``time.monotonic()`` by which the whole call must end.
    """

    __slots__ = ("_sink", "_parts", "shown", "deadline")

    def __init__(self, sink: OnDelta | None = None, deadline: float | None = None) -> None:
        self._sink = sink
        self._parts: list[str] = []
        self.shown = 0
        """Characters the caller has been shown (what a restart discards); 0 before the first delta."""
        self.deadline = deadline

    @classmethod
    def for_request(cls, request: ChatRequest, sink: OnDelta | None = None) -> RoutedCall:
        """A call whose deadline is ``request.deadlines.total_timeout_s`` from now, if set."""
        total = request.deadlines.total_timeout_s if request.deadlines is not None else None
        return cls(sink, None if total is None else time.monotonic() + total)

    @property
    def listening(self) -> bool:
        """Whether someone reads the text as it arrives (so targets should push their deltas)."""
        return self._sink is not None

    @property
    def text(self) -> str:
        """The answer the caller has been shown so far ("" before the first delta and after a restart)."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def remaining(self) -> float | None:
        """Seconds left before the call's deadline (``None``: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def __call__(self, delta: str | StreamRestart) -> None:
        """Deliver one text delta to the caller (the leaf that answers calls this).

        A :class:`~evalkit.types.StreamRestart` restarts the answer instead: one
        reaches a call through a target that wraps a router and forwards its
        events with a callback of its own (``on_delta`` carries both).
        """
        if isinstance(delta, StreamRestart):
            self.restart(delta.reason)
            return
        self._parts.append(delta)
        self.shown += len(delta)
        if self._sink is not None:
            self._sink(delta)

    def restart(self, reason: str) -> None:
        """Tell the caller to discard what it was shown: the answer starts again."""
        if self._sink is not None:
            self._sink(StreamRestart(discarded=self.shown, reason=reason))
        self._parts.clear()
        self.shown = 0

    def branch(self) -> RoutedCall:
        """A muted copy for one branch of a hedge: it knows the text so far, buffers what it receives.

        Only the winning branch's buffer reaches the caller, replayed by
        :meth:`adopt`, because streaming two racing branches would splice them.
        """
        child = RoutedCall(_Buffer() if self._sink is not None else None, self.deadline)
        child._parts = [self.text] if self._parts else []
        child.shown = self.shown
        return child

    def adopt(self, child: RoutedCall) -> None:
        """Replay what the winning ``child`` (from :meth:`branch`) received to the caller."""
        buffer = child._sink
        if not isinstance(buffer, _Buffer):
            return
        for item in buffer.items:
            if isinstance(item, StreamRestart):
                self.restart(item.reason)
            else:
                self._parts.append(item)
                self.shown += len(item)
                if self._sink is not None:
                    self._sink(item)


class _Buffer:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[str | StreamRestart] = []

    def __call__(self, item: str | StreamRestart) -> None:
        self.items.append(item)
