"""A call's deadlines, enforced with one timer that moves lazily.

A streamed answer of a few hundred chunks must not pay for a timer per chunk
(rescheduling a loop timer costs microseconds; ``benchmarks/stream_failover.py``
holds the armed overhead to tens of microseconds per call). So each chunk only
stores the loop time (:meth:`Watchdog.tick`), and the single timer, when it
fires, works out the earliest deadline still possible from what happened
since: if that is still ahead, it re-arms for then; if not, it expires the
call through ``asyncio.timeout``, which cancels the task cleanly wherever it
is waiting (connecting, reading headers, between two chunks).

The connect deadline is the transport's own (the per-request ``timeout``
extension, which aiohttp and httpx both honour); the others are here:

* ``headers_timeout_s``: from sending until the status and headers arrive;
* ``ttft_timeout_s``: from sending until the first token (streamed calls);
* ``stall_timeout_s``: the longest silence after the first token (streamed
  calls; a reasoning model's silent thinking before it is ``ttft``'s business);
* ``total_timeout_s``: the whole call.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from ..errors import ProviderTimeoutError
from ..types import Deadlines

__all__ = ["Unwatched", "Watchdog", "watchdog"]

_NEVER = float("inf")


class Watchdog:
    """``async with Watchdog(deadlines, streamed=...)`` around one call; a passed deadline raises ProviderTimeoutError.

    The owner reports progress: :meth:`headers` when the response began,
    :meth:`first_token` when the first token arrived, :meth:`tick` on every
    later chunk. The :class:`~evalkit.errors.ProviderTimeoutError` raised names the
    deadline that passed and the field that sets it.
    """

    __slots__ = ("_deadlines", "_streamed", "_loop", "_started", "_headers_at", "_first_at", "last",
                 "_scope", "_handle", "_when", "expired")

    def __init__(self, deadlines: Deadlines, *, streamed: bool) -> None:
        self._deadlines = deadlines
        self._streamed = streamed
        self._headers_at: float | None = None
        self._first_at: float | None = None
        self.last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._when = _NEVER
        self.expired: str | None = None

    async def __aenter__(self) -> Watchdog:
        self._loop = asyncio.get_running_loop()
        self._started = self.last = self._loop.time()
        self._scope = asyncio.timeout(None)
        await self._scope.__aenter__()
        self._arm()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
        try:
            await self._scope.__aexit__(exc_type, exc, tb)  # asyncio.Timeout never suppresses an exception
        except TimeoutError:
            raise ProviderTimeoutError(self._message()) from None

    def headers(self) -> None:
        """The response's status and headers arrived."""
        self._headers_at = self._loop.time()

    def first_token(self) -> None:
        """The first token arrived; from now on silences are measured (:meth:`tick`)."""
        self._first_at = self.last = self._loop.time()
        if self._deadlines.stall_timeout_s is not None and self._next()[0] < self._when:
            # The stall deadline can come before the timer armed for the earlier phases: move it once.
            if self._handle is not None:
                self._handle.cancel()
            self._arm()

    def tick(self) -> None:
        """A chunk arrived after the first token."""
        self.last = self._loop.time()

    # -- the timer ------------------------------------------------------------------------

    def _arm(self) -> None:
        self._when, _ = self._next()
        self._handle = None if self._when == _NEVER else self._loop.call_at(self._when, self._check)

    def _check(self) -> None:
        when, which = self._next()
        if when != _NEVER and self._loop.time() >= when:
            self._handle, self._when = None, _NEVER
            self.expired = which
            self._scope.reschedule(self._loop.time())  # expires now: cancels the call where it waits
        else:
            self._arm()

    def _next(self) -> tuple[float, str]:
        """The earliest deadline still possible, and its field's name."""
        d, start = self._deadlines, self._started
        candidates: list[tuple[float, str]] = []
        if d.total_timeout_s is not None:
            candidates.append((start + d.total_timeout_s, "total_timeout_s"))
        if d.headers_timeout_s is not None and self._headers_at is None:
            candidates.append((start + d.headers_timeout_s, "headers_timeout_s"))
        if self._streamed and self._first_at is None and d.ttft_timeout_s is not None:
            candidates.append((start + d.ttft_timeout_s, "ttft_timeout_s"))
        if self._streamed and self._first_at is not None and d.stall_timeout_s is not None:
            candidates.append((self.last + d.stall_timeout_s, "stall_timeout_s"))
        return min(candidates) if candidates else (_NEVER, "")

    def _message(self) -> str:
        which = self.expired or ""
        seconds = getattr(self._deadlines, which, None) if which else None
        if seconds is None:
            return "deadline passed"
        what = {
            "total_timeout_s": "call not finished within {:g}s",
            "headers_timeout_s": "no response headers within {:g}s",
            "ttft_timeout_s": "no first token within {:g}s",
            "stall_timeout_s": "stream silent for {:g}s after its last chunk",
        }[which].format(seconds)
        return f"{what} ({which})"


class Unwatched:
    """The watchdog of a call without deadlines: nothing armed, nothing paid per chunk but a no-op call."""

    __slots__ = ()

    async def __aenter__(self) -> Unwatched:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def headers(self) -> None:
        return None

    def first_token(self) -> None:
        return None

    def tick(self) -> None:
        return None


_UNWATCHED = Unwatched()


def watchdog(deadlines: Deadlines, *, streamed: bool) -> Watchdog | Unwatched:
    """A :class:`Watchdog` for the deadlines this transport does not enforce itself, or a no-op."""
    armed = (deadlines.total_timeout_s is not None or deadlines.headers_timeout_s is not None
             or (streamed and (deadlines.ttft_timeout_s is not None or deadlines.stall_timeout_s is not None)))
    return Watchdog(deadlines, streamed=streamed) if armed else _UNWATCHED
