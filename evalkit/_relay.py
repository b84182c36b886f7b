"""Text deltas as an async iterator, from a call that pushes them to a callback.

Providers and routers stream by pushing each delta to a callback while one
coroutine runs the call (``complete(request, on_delta=...)``): deadlines and
failover then live in that coroutine, whatever the reader does between two
deltas. :func:`relay` turns that into the iterator ``stream()`` returns.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable

__all__ = ["relay"]


_DONE = object()


async def relay(run: Callable[[Callable[[Any], None]], Awaitable[Any]], holder: Any) -> AsyncIterator[Any]:
    """Yield what ``run(push)`` pushes, as it is pushed; then set ``holder.response`` to its result.

    ``run`` executes in its own task, so a slow reader never stalls the call
    (nor trips its stall deadline); leaving the loop early cancels the call.
    The task's end is one more item on the queue, so each delta costs one
    ``queue.get`` (waiting on the task and the queue together cost ~11 µs a delta).
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.ensure_future(run(queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(_DONE))
    try:
        while (item := await queue.get()) is not _DONE:
            yield item
        holder.response = task.result()
    finally:
        if not task.done():
            task.cancel()
