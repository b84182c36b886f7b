"""A monitor's counters summed over every replica, in Redis: what ``Monitor(..., state=state)`` adds.

**Why Redis counters.** The alternatives each fail a fleet of app replicas:
Prometheus's multiprocess mode sums processes that share one directory on one
host, so replicas on two machines (or two containers) are never added up; and
scraping every replica then ``sum()`` in PromQL needs the scraper to find each
replica (service discovery per pod) and loses a replica's counts when it
restarts (its counters start again at zero and the series of the old
instance ends). Redis is already what the replicas share, so each replica adds
its counts to one hash per target and any replica can render the totals.

**What a replica does.** :meth:`~evalkit.router.monitor.Monitor.record` only
updates the replica's own counters (no Redis on the routing path); the first
record after a quiet spell schedules a background flush
(:meth:`RedisState.background <evalkit.router.state.RedisState.background>`)
that waits ``flush_interval_s``, so one round trip carries everything counted
meanwhile. A flush sends the difference between the local counters and what
Redis has acknowledged: integers only (latency sums in microseconds, money in
nano-dollars), added with ``HINCRBY`` by one Lua script.

**Exactly once.** Each batch has a number; the script adds a batch only if
its number is above the last one it added for this monitor, and records it,
in the same atomic step. A batch whose answer was lost (a timeout while
Redis was slow but still working) is sent again with the same number and is
not added twice; a batch is kept until acknowledged, so a flush that failed
while Redis was down is added when it is back (the next record after
``retry_interval_s``, any other component seeing Redis recover, or
:meth:`SharedCounters.flush`). Nothing is lost and nothing counted twice,
except what Redis itself loses in a crash without persistence.
"""

from __future__ import annotations

import asyncio
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from ..errors import StateUnavailableError
from ._nanos import as_text, dollars, nanos
from ._prometheus import TOKEN_CATEGORIES, float_text
from .state import SharedScript

if TYPE_CHECKING:
    from ._target_counters import TargetCounters
    from .state import RedisState

__all__ = ["FleetTotals", "SharedCounters"]

SEQUENCE_TTL_S = 7 * 86_400
"""How long Redis remembers a monitor's last batch number (refreshed by every batch)."""

_ADD_BATCH = SharedScript("monitor_add_batch", """
-- KEYS: 1 this monitor's last batch number, 2 the set of target names, 3 breaker openings by target,
--       4.. one hash of counters per target
-- ARGV: batch number, its ttl, n breaker pairs, (target, n)*, then per target hash: name, n fields, (field, n)*
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= last then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for k = 4, #KEYS do
  redis.call('SADD', KEYS[2], ARGV[i])
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
end
return 1
""")


@dataclass(frozen=True)
class FleetTotals:
    """One target's counters summed over every replica (what Redis has been sent so far)."""

    target: str
    served: int
    failed: int
    fallbacks: int
    attempts: Mapping[str | None, int]
    """Attempts sent or skipped, by error kind (``None``: the attempt that served)."""
    tokens: Mapping[str, int]
    cost_usd: Decimal | None
    """Money spent on priced attempts, exact to the nano-dollar; ``None`` when no attempt was priced."""
    breaker_opens: int


class _Batch:
    """Counts sent to Redis and not yet acknowledged: their number, the script's arguments, the totals they reach."""

    __slots__ = ("args", "generation", "keys", "number", "totals")

    def __init__(self, number: int, keys: list[str], args: list[Any], totals: dict[str | None, dict[str, int]],
                 generation: int) -> None:
        self.number, self.keys, self.args, self.totals, self.generation = number, keys, args, totals, generation


class SharedCounters:
    """The Redis side of one :class:`~evalkit.router.monitor.Monitor` (see the module docstring).

    ``snapshot()`` returns the monitor's cumulative counters as integers,
    ``{target: {field: n}}`` and, under ``None``, ``{target: breaker
    openings}``; this class only ever sends differences of two snapshots, so
    the monitor's hot path is unchanged.
    """

    def __init__(self, state: RedisState, snapshot: Callable[[], dict[str | None, dict[str, int]]],
                 flush_interval_s: float) -> None:
        if not flush_interval_s > 0:
            raise ValueError("flush_interval_s must be positive")
        self.state = state
        self.flush_interval_s = float(flush_interval_s)
        self._snapshot = snapshot
        self._id = uuid.uuid4().hex[:12]  # this monitor's batch numbers are its own, even beside another one
        self._acked: dict[str | None, dict[str, int]] = {}
        self._pending: _Batch | None = None
        self._number = 0
        self._generation = 0
        self._scheduled = False
        self._dirty = False
        state.on_recover(self.poke)

    # -- from the monitor's hot path --------------------------------------------------------------

    def poke(self) -> None:
        """Something was counted (or Redis came back): flush within ``flush_interval_s`` unless one is due."""
        self._dirty = True
        if self._scheduled or not self.state.up:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # recorded outside a loop: the next record in one, or flush(), sends it
            return
        self._scheduled = True
        self.state.background(self._flush_later)

    def forget(self) -> None:
        """The monitor's counters were reset: later counts are measured from zero (Redis keeps its totals)."""
        self._generation += 1
        self._acked = {}

    # -- flushing ---------------------------------------------------------------------------------

    async def _flush_later(self) -> None:
        # One wait and one batch per background operation, so RedisState.flush() is never kept waiting for more.
        try:
            await asyncio.sleep(self.flush_interval_s)
            self._dirty = False
            await self.flush()
        except StateUnavailableError:
            return  # kept: the next poke after retry_interval_s (or Redis's recovery) sends it
        finally:
            self._scheduled = False
        if self._dirty:  # counted while the batch was on its way
            self.poke()

    async def flush(self) -> None:
        """Send every count not yet in Redis now; :class:`~evalkit.errors.StateUnavailableError` if Redis is down.

        Safe to run beside the background flush: a batch sent twice is added
        once, and a new batch is only cut when none is waiting for its answer.
        """
        pending = self._pending
        if pending is not None:
            await self._send(pending)
        if self._pending is None:
            batch = self._cut()
            if batch is not None:
                await self._send(batch)

    def _cut(self) -> _Batch | None:
        """The counts since the last acknowledged batch as the next batch (None when there are none)."""
        totals = self._snapshot()
        deltas: dict[str | None, list[Any]] = {}
        for name, fields in totals.items():
            acked = self._acked.get(name, {})
            changed: list[Any] = []
            for field, n in fields.items():
                delta = n - acked.get(field, 0)
                if delta:
                    changed.extend((field, delta))
            if changed:
                deltas[name] = changed
        if not deltas:
            return None
        self._number += 1
        opens = deltas.pop(None, [])
        keys = [self.state.key("monitor", "batch", self._id), self.state.key("monitor", "targets"),
                self.state.key("monitor", "breaker_opens")]
        args: list[Any] = [self._number, SEQUENCE_TTL_S, len(opens) // 2, *opens]
        for target, changed in deltas.items():
            assert target is not None  # None (breaker openings) was popped above
            keys.append(target_key(self.state, target))
            args.extend((target, len(changed) // 2, *changed))
        self._pending = _Batch(self._number, keys, args, totals, self._generation)
        return self._pending

    async def _send(self, batch: _Batch) -> None:
        await self.state.run(_ADD_BATCH, batch.keys, batch.args)
        if self._pending is batch:  # not already settled by a concurrent flush of the same batch
            self._pending = None
            if batch.generation == self._generation:
                self._acked = batch.totals

    # -- the fleet's totals -----------------------------------------------------------------------

    def read(self) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
        """Every target's summed counters (``{target: {field: n}}``) and breaker openings, from Redis.

        Blocking (the state's sync client): for a scrape endpoint or a
        notebook, never the routing path. Redis down:
        :class:`~evalkit.errors.StateUnavailableError`.
        """
        state = self.state

        def fetch(client: Any) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
            targets = sorted(as_text(t) for t in client.smembers(state.key("monitor", "targets")))
            pipe = client.pipeline(transaction=False)
            for target in targets:
                pipe.hgetall(target_key(state, target))
            pipe.hgetall(state.key("monitor", "breaker_opens"))
            *hashes, opens = pipe.execute()
            counters = {t: {as_text(f): int(n) for f, n in h.items()} for t, h in zip(targets, hashes)}
            return counters, {as_text(t): int(n) for t, n in opens.items()}

        return state.read(fetch)


def target_key(state: RedisState, target: str) -> str:
    return state.key("monitor", "target", target)


# -- monitor counters <-> integer fields ------------------------------------------------------------


def counter_fields(c: TargetCounters, latency_bounds: Iterable[float], ttft_bounds: Iterable[float]) -> dict[str, int]:
    """One target's cumulative counters as whole numbers: what its Redis hash holds, summed over replicas."""
    fields = {"served": c.served, "failed": c.failed, "fallbacks": c.fallbacks, "priced": c.priced,
              "cost_nano": nanos(c.cost, ROUND_HALF_EVEN)}
    for kind, n in c.attempts.items():
        fields[f"attempts:{kind or 'none'}"] = n
    for category, n in zip(TOKEN_CATEGORIES, c.tokens):
        fields[f"tokens:{category}"] = n
    for name, bounds, buckets, total in (("latency", latency_bounds, c.latency_buckets, c.latency_sum),
                                         ("ttft", ttft_bounds, c.ttft_buckets, c.ttft_sum)):
        for bound, n in zip((*bounds, float("inf")), buckets):
            fields[f"{name}:{float_text(bound)}"] = n
        fields[f"{name}_sum_us"] = round(total * 1_000_000)
    return fields


def fill_counters(c: TargetCounters, fields: Mapping[str, int], latency_bounds: tuple[float, ...],
                  ttft_bounds: tuple[float, ...]) -> TargetCounters:
    """Fresh counters ``c`` set from summed fields (the inverse of :func:`counter_fields`); returns ``c``.

    A bucket another replica counted with other bounds goes to the first of
    ours at or above its bound: still a count of observations at most that
    high, so the histogram stays valid (give every replica the same buckets).
    """
    c.served, c.failed, c.fallbacks = fields.get("served", 0), fields.get("failed", 0), fields.get("fallbacks", 0)
    c.priced = fields.get("priced", 0)
    c.cost = dollars(fields.get("cost_nano", 0))
    c.tokens = [fields.get(f"tokens:{category}", 0) for category in TOKEN_CATEGORIES]
    for field, n in fields.items():
        name, _, rest = field.partition(":")
        if name == "attempts":
            c.attempts[None if rest == "none" else rest] = n
        elif name in ("latency", "ttft") and rest:
            bounds, buckets = (latency_bounds, c.latency_buckets) if name == "latency" else (ttft_bounds,
                                                                                             c.ttft_buckets)
            buckets[bisect_left(bounds, float(rest))] += n
    c.latency_sum = fields.get("latency_sum_us", 0) / 1_000_000
    c.ttft_sum = fields.get("ttft_sum_us", 0) / 1_000_000
    return c


def fleet_totals(c: TargetCounters, opens: int) -> FleetTotals:
    """The public view of one target's summed counters."""
    return FleetTotals(c.target, c.served, c.failed, c.fallbacks, dict(c.attempts),
                       dict(zip(TOKEN_CATEGORIES, c.tokens)), c.cost if c.priced else None, opens)
