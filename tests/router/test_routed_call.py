"""A routed call's sink takes what routers push: text deltas and StreamRestart events.

A target of your own that wraps a router and forwards its deltas through a
callback of its own (a logging or metering wrapper) hands the router's
``StreamRestart`` on to the outer router's call like any delta. The call used
to count it as text (``len()`` of an event: a ``TypeError`` that killed the
stream); it now restarts the answer for the caller, as the inner router meant.
"""

from __future__ import annotations

from decimal import Decimal

from evalkit import ChatRequest, ChatResponse, Cost, FinishReason, Usage
from evalkit.errors import StreamInterruptedError
from evalkit.providers import OnDelta, Provider, ResponseStream
from evalkit.router import FallbackChain
from evalkit.types import StreamRestart


class StreamingFake:
    """Streams ``text`` word by word through ``on_delta``; with ``cut_after`` it breaks after that many words."""

    def __init__(self, name: str, text: str, cut_after: int | None = None) -> None:
        self.name = name
        self.text = text
        self.cut_after = cut_after

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        words = self.text.split(" ")
        for i, word in enumerate(words):
            if self.cut_after is not None and i == self.cut_after:
                raise StreamInterruptedError("cut", provider=self.name)
            if on_delta is not None:
                on_delta(word if i == 0 else " " + word)
        zero = Decimal(0)
        return ChatResponse(text=self.text, finish_reason=FinishReason.STOP, model=self.name, provider=self.name,
                            usage=Usage(input_tokens=3, output_tokens=len(words)),
                            cost=Cost(Decimal("0.001"), zero, zero, zero, zero, source="test"))

    def stream(self, request: ChatRequest) -> ResponseStream:
        raise NotImplementedError("routers call complete()")


class ForwardingTarget:
    """A target of one's own around another: counts the deltas it forwards (not a Router, not a LimitedTarget)."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = f"counted({inner.name})"
        self.forwarded = 0

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        if on_delta is None:
            return await self.inner.complete(request)
        sink = on_delta

        def forward(delta: str | StreamRestart) -> None:
            self.forwarded += 1
            sink(delta)

        return await self.inner.complete(request, on_delta=forward)

    def stream(self, request: ChatRequest) -> ResponseStream:
        return self.inner.stream(request)


async def test_a_restart_forwarded_by_a_wrapper_target_restarts_the_outer_stream() -> None:
    # The inner chain's first target breaks after "partial answer"; its backup takes no prefill, so the
    # inner router restarts the answer: the StreamRestart passes through the wrapper's own callback.
    inner = FallbackChain([StreamingFake("breaks", "partial answer then more", cut_after=2),
                           StreamingFake("backup", "the whole answer")])
    wrapper = ForwardingTarget(inner)
    outer = FallbackChain([wrapper])
    stream = outer.stream(ChatRequest.from_prompt("hi"))
    seen: list[str | StreamRestart] = [item async for item in stream]
    assert seen[:2] == ["partial", " answer"]
    restart = seen[2]
    assert isinstance(restart, StreamRestart) and restart.discarded == len("partial answer")
    assert "".join(d for d in seen[3:] if isinstance(d, str)) == "the whole answer"
    assert stream.response is not None and stream.response.text == "the whole answer"
    assert wrapper.forwarded == len(seen)
    assert [a.target for a in stream.response.attempts] == ["breaks", "backup"]
