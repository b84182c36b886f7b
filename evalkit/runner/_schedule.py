"""Which cell is asked next: targets in turn, each only while it has room.

Each target has its own lazy stream of pending cells. Workers take cells from
targets in turn; a target whose in-flight gate is saturated (its adaptive
limit was cut after 429s) is passed over, so one throttled provider never
holds workers that the other providers could use. When every target with
cells left is saturated, a worker waits until a cell finishes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._cells import Cell

__all__ = ["CellQueue", "Gate"]

# A throttled target frees a slot when one of its attempts ends, which is not always the end of a
# cell (a retry sleeping out its backoff holds no slot): waiters look again at least this often.
_RECHECK_S = 0.05


class Gate(Protocol):
    """What the queue asks of a target's in-flight limit (a :class:`~evalkit.router.limits.LimitedTarget`)."""

    def saturated(self) -> bool:
        """Whether a call started now would have to wait."""


@dataclass(slots=True)
class _Stream:
    """One target's cells still to hand out: those put back first, then its lazy stream."""

    target: int
    cells: Iterator[Cell]
    gate: Gate | None
    put_back: deque[Cell] = field(default_factory=deque)

    def next(self) -> Cell | None:
        return self.put_back.popleft() if self.put_back else next(self.cells, None)


class CellQueue:
    """The cells still to ask, one stream per target, handed out round-robin to targets with room.

    Holds no cell but those put back (at most the cells in flight): each stream is pulled one
    cell at a time, when a worker is free to ask it.
    """

    def __init__(self, streams: Sequence[Iterator[Cell]], gates: Sequence[Gate | None]) -> None:
        # A target leaves the list when its cells run out (and comes back if one is put back).
        self._streams = [_Stream(t, stream, gate) for t, (stream, gate) in enumerate(zip(streams, gates))]
        self._gates = list(gates)
        self._turn = 0
        self._changed = asyncio.Event()
        self.stopped = False
        self.in_flight = 0

    async def take(self) -> Cell | None:
        """The next cell to ask; ``None`` when none is left or the queue was stopped."""
        while not self.stopped and self._streams:
            cell = self._pick()
            if cell is not None:
                self.in_flight += 1
                return cell
            if not self._streams:
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), _RECHECK_S)
            except TimeoutError:
                pass
        return None

    def finished(self) -> None:
        """A cell taken from this queue ended: a waiting worker looks for room again."""
        self.in_flight -= 1
        if not self._changed.is_set():
            self._changed.set()

    def put_back(self, cell: Cell) -> None:
        """Hand ``cell`` out again, first of its target's (the spend cap had no room for it just now)."""
        stream = next((s for s in self._streams if s.target == cell.target), None)
        if stream is None:
            stream = _Stream(cell.target, iter(()), self._gates[cell.target])
            self._streams.append(stream)
        stream.put_back.appendleft(cell)

    async def next_finish(self) -> None:
        """Wait until some cell ends, or the queue stops."""
        if self.in_flight and not self.stopped:
            self._changed.clear()
            await self._changed.wait()

    def stop(self) -> None:
        """Hand out no more cells (the spend cap was reached); cells already taken finish."""
        self.stopped = True
        self._changed.set()

    def _pick(self) -> Cell | None:
        streams = self._streams
        tried = 0
        while tried < len(streams):
            index = (self._turn + tried) % len(streams)
            stream = streams[index]
            if stream.gate is not None and stream.gate.saturated():
                tried += 1
                continue
            cell = stream.next()
            if cell is None:  # this target has nothing left: drop it, look at the same position again
                del streams[index]
                continue
            self._turn = index + 1
            return cell
        return None
