"""The typed seam between routers and what they route to.

:class:`Provider` is what a router needs from every target, and what every
adapter (:class:`~evalkit.providers.HTTPProvider`), every router and every
wrapper (:class:`~evalkit.router.LimitedTarget`) offers, so they nest: a
``name``, ``complete`` and ``stream``. Nothing else is required of a target.

The other protocols are capabilities a target may have; a router asks for them
where it needs one and does without otherwise: :class:`Closeable` (``aclose``;
``Router.aclose`` closes the targets that have it), :class:`Priced`
(``prices()``; a ``CostAwareRouter`` candidate without it needs explicit
prices), :class:`Windowed` (``context_window``; unknown means "may fit") and
:class:`Prefillable` (``accepts_prefill``; absent means a broken stream is
restarted, not continued). Hot paths read these with ``getattr`` and check the
value's type, because ``isinstance`` against a runtime protocol costs ~6 µs.
"""

from __future__ import annotations

from typing import AsyncIterator, Callable, Protocol, TypeAlias, runtime_checkable

from ..pricing import Prices
from ..types import ChatRequest, ChatResponse, StreamRestart

__all__ = ["Closeable", "OnDelta", "Prefillable", "Priced", "Provider", "ResponseStream", "Windowed"]

OnDelta: TypeAlias = Callable[[str | StreamRestart], None]
"""What ``complete`` pushes a streamed answer to as it arrives: each text delta, and a
:class:`~evalkit.types.StreamRestart` when a router had to start the answer again (a provider never sends one)."""


class ResponseStream(Protocol):
    """What ``stream(request)`` returns: the text deltas (and any restart), then ``response`` holds the answer."""

    def __aiter__(self) -> AsyncIterator[str | StreamRestart]: ...

    @property
    def response(self) -> ChatResponse | None:
        """The whole answer once the iteration ended normally; ``None`` before."""


@runtime_checkable
class Provider(Protocol):
    """The provider interface every adapter, every router and every wrapper offers."""

    @property
    def name(self) -> str:
        """``provider:model`` for a provider; the policy and its targets for a router."""

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        """The whole answer; a streamed request (``request.stream``) passes each delta to ``on_delta`` first."""

    def stream(self, request: ChatRequest) -> ResponseStream:
        """The answer as it arrives: iterate it, then read ``.response``."""


@runtime_checkable
class Closeable(Protocol):
    """A target holding resources (an HTTP client) that ``aclose`` releases."""

    async def aclose(self) -> None: ...


@runtime_checkable
class Priced(Protocol):
    """A target that knows its prices: USD per 1M tokens, ``None`` while unpriced."""

    def prices(self) -> Prices | None: ...


@runtime_checkable
class Windowed(Protocol):
    """A target that may know its context window in tokens (``None``: unknown)."""

    @property
    def context_window(self) -> int | None: ...


@runtime_checkable
class Prefillable(Protocol):
    """A target that says whether its model continues a trailing assistant turn (a prefill)."""

    @property
    def accepts_prefill(self) -> bool: ...
