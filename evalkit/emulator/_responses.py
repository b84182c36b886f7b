"""ASGI responses that take their time: delays, stalls, cuts and resets, all interruptible.

A :class:`PlannedResponse` sends a :class:`ReplyPlan`: wait, send the status
and headers, send body parts each after its own delay, then end the body,
close the connection early (``cut``) or reset it. Every wait ends early when
the client disconnects or the server stops, so a 30-second stall never holds
up shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._transport import ConnectionRegistry

__all__ = ["Interrupts", "PlannedResponse", "ReplyPlan"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_DISCONNECT_GRACE_S = 5.0


class Interrupts:
    """Wakes every waiting response when the server stops (used from the server loop only)."""

    def __init__(self) -> None:
        self._events: set[asyncio.Event] = set()
        self.stopping = False

    def register(self, event: asyncio.Event) -> None:
        """Wake ``event`` on stop (at once if the server is already stopping)."""
        self._events.add(event)
        if self.stopping:
            event.set()

    def unregister(self, event: asyncio.Event) -> None:
        """Forget ``event`` (its response is done)."""
        self._events.discard(event)

    def stop_all(self) -> None:
        """Wake every waiter, and every future one at once."""
        self.stopping = True
        for event in list(self._events):
            event.set()


@dataclass(slots=True)
class ReplyPlan:
    """What to send and when. ``parts`` are ``(delay_s, bytes)``; ``ending`` says how the body ends."""

    status: int
    headers: list[tuple[str, str]]
    parts: list[tuple[float, bytes]] = field(default_factory=list)
    pre_delay_s: float = 0.0
    ending: Literal["complete", "cut", "reset"] = "complete"

    def coalesced(self) -> list[tuple[float, bytes]]:
        """Parts with every zero-delay part merged into the one before: fewer writes, same timing."""
        merged: list[tuple[float, bytes]] = []
        for delay, data in self.parts:
            if merged and delay <= 0:
                merged[-1] = (merged[-1][0], merged[-1][1] + data)
            else:
                merged.append((delay, data))
        return merged


class _Watcher:
    """Watches for the client's disconnect while a response waits; ``sleep`` returns early on it."""

    def __init__(self, receive: Receive, interrupts: Interrupts) -> None:
        self.wake = asyncio.Event()
        self.disconnected = asyncio.Event()
        self._interrupts = interrupts
        interrupts.register(self.wake)
        self._task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()
        self.wake.set()

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; False if woken early (disconnect or shutdown)."""
        if self.wake.is_set():
            return False
        try:
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def wait_disconnect(self) -> None:
        try:
            await asyncio.wait_for(self.disconnected.wait(), timeout=_DISCONNECT_GRACE_S)
        except TimeoutError:
            pass

    def close(self) -> None:
        self._task.cancel()
        self._interrupts.unregister(self.wake)


class PlannedResponse:
    """An ASGI app that plays a :class:`ReplyPlan` on the request's connection."""

    def __init__(self, plan: ReplyPlan, registry: ConnectionRegistry, interrupts: Interrupts) -> None:
        self.plan, self.registry, self.interrupts = plan, registry, interrupts

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        plan = self.plan
        if plan.ending == "complete" and plan.pre_delay_s <= 0 and all(d <= 0 for d, _ in plan.parts):
            # Nothing to wait for: skip the disconnect watcher (a task per request adds up at zero delay).
            await send(self._start())
            await send(
                {"type": "http.response.body", "body": b"".join(d for _, d in plan.parts), "more_body": False}
            )
            return
        watcher = _Watcher(receive, self.interrupts)
        try:
            await self._play(scope, send, watcher)
        finally:
            watcher.close()

    def _start(self) -> dict[str, Any]:
        return {
            "type": "http.response.start",
            "status": self.plan.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.plan.headers],
        }

    async def _play(self, scope: dict[str, Any], send: Send, watcher: _Watcher) -> None:
        plan = self.plan
        if plan.pre_delay_s > 0 and not await watcher.sleep(plan.pre_delay_s):
            return await self._interrupted(scope, watcher)
        if plan.ending == "reset":
            self.registry.reset(scope)
            return await watcher.wait_disconnect()
        await send(self._start())
        for delay, data in plan.coalesced():
            if delay > 0 and not await watcher.sleep(delay):
                return await self._interrupted(scope, watcher)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        if plan.ending == "cut":
            self.registry.close(scope)
            return await watcher.wait_disconnect()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _interrupted(self, scope: dict[str, Any], watcher: _Watcher) -> None:
        if not watcher.disconnected.is_set():
            # The server is stopping: drop the connection so shutdown does not wait for us.
            self.registry.reset(scope)
            await watcher.wait_disconnect()
