"""Monitor: one event per routed attempt, rolling summaries and Prometheus counters.

Routers call :meth:`Monitor.record` once per routed call with every attempt
(served, failed and skipped): the outermost router with the monitor does, since
a router's attempts include its nested routers' (give a monitor to the root of
a tree, not to its inner nodes too, or their attempts count twice). The circuit
breakers of fallback chains and balancers call :meth:`Monitor.breaker_opened`:
a router's own breakers report to its ``monitor``, or to the
``on_breaker_open`` it was given, which is how an inner node of a tree reports
to the root's monitor; ``Router.from_config`` wires every node of a config
that way. The monitor keeps two things:

* a rolling window of events (a bounded ``deque``; events older than the
  window are dropped lazily as new ones arrive), for :meth:`Monitor.events_df`
  and :meth:`Monitor.summary_df`;
* running counters per target that only ever grow over the process's uptime,
  for :meth:`Monitor.to_prometheus` (Prometheus computes rates from them, so
  they must not shrink when events leave the window).

**Replicas.** ``Monitor(..., state=RedisState(...))`` also adds each
replica's counters into Redis (:mod:`evalkit.router._shared_monitor`: why
Redis, rather than Prometheus's multiprocess mode or a ``sum()`` over
replicas, and how each count is added exactly once), in background batches
at most every ``flush_interval_s``: recording stays as cheap as without.
``to_prometheus(scope="fleet")`` renders the counters summed over every
replica and :meth:`Monitor.fleet_counters` returns them. **Scrape one or the
other, never both:** either one endpoint serving ``scope="fleet"`` (every
replica renders the same totals, so scrape it once, e.g. through the
service's address), or every replica's own ``scope="replica"`` summed with
``sum()`` in PromQL; scraping both counts everything twice. The rolling
window (``events_df``, ``summary_df``) stays per replica. While Redis is
down the local counters go on as usual and what the fleet has not been sent
is added when it is back.

Thread-safety: :meth:`~Monitor.record` and :meth:`~Monitor.breaker_opened`
take no lock (they are on the routing hot path); call them from one thread,
which is what routers sharing one event loop do. Readers (``events_df``,
``summary_df``, ``to_prometheus``) may run in another thread, e.g. a scrape
endpoint: they copy containers in single C-level calls and never mutate, so
at worst they see one attempt half-counted.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, TypeAlias

from ..types import Attempt, ChatRequest, Usage
from ._durations import parse_window
from ._prometheus import TOKEN_CATEGORIES, render_counters
from ._target_counters import TargetCounters, split_target

if TYPE_CHECKING:
    import polars as pl

    from ._shared_monitor import FleetTotals, SharedCounters
    from .state import RedisState

__all__ = ["EVENT_COLUMNS", "LATENCY_BUCKETS_S", "TTFT_BUCKETS_S", "Monitor", "parse_window", "split_target"]

LATENCY_BUCKETS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds (seconds) of the attempt-latency histogram; ``+Inf`` is implied."""

TTFT_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the time-to-first-token histogram; ``+Inf`` is implied."""

EVENT_COLUMNS: tuple[str, ...] = (
    "ts", "target", "provider", "model", "task_type", "latency_ms", "ttft_ms",
    "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
    "tokens_exact", "cost_usd", "success", "error_kind", "depth", "sent", "retry", "started_at",
)
"""Columns of :meth:`Monitor.events_df`, in order; each event tuple has the same layout."""

Tokens: TypeAlias = tuple[int | None, int | None, int | None, int | None, int | None, bool | None]
"""An event's token columns: input, cached input, cache write, output, reasoning, exact (all None: no usage)."""
Event: TypeAlias = tuple[float, str, str, str, str | None, float, float | None,
                         int | None, int | None, int | None, int | None, int | None, bool | None,
                         Decimal | None, bool, str | None, int, bool, int, float]
"""One event: the values of :data:`EVENT_COLUMNS`, in order (a plain tuple: one is built per attempt)."""

_NO_USAGE: Tokens = (None, None, None, None, None, None)

class Monitor:
    """Per-attempt events over a rolling window, plus monotonic Prometheus counters.

    ``window`` is how long events are kept for the data frames (``"24h"``,
    ``"15m"``, seconds…); ``max_events`` caps how many are kept whatever the
    window, so memory stays bounded (a few hundred bytes per event). ``clock``
    gives epoch seconds: it stamps events (``ts``) and ages them out. ``state``
    (a :class:`~evalkit.router.state.RedisState`) sums the counters over every
    replica given the same state (see the module docstring), flushing at most
    every ``flush_interval_s``.
    """

    def __init__(self, window: str | float = "24h", max_events: int = 100_000,
                 clock: Callable[[], float] = time.time, state: RedisState | None = None, *,
                 latency_buckets_s: Sequence[float] = LATENCY_BUCKETS_S,
                 ttft_buckets_s: Sequence[float] = TTFT_BUCKETS_S, flush_interval_s: float = 0.5) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.window_s = parse_window(window)
        self.max_events = max_events
        self._clock = clock
        self._latency_bounds = tuple(sorted(float(b) for b in latency_buckets_s))
        self._ttft_bounds = tuple(sorted(float(b) for b in ttft_buckets_s))
        self._shared: SharedCounters | None = None
        self.reset()
        self.state = state
        """Where the counters are summed over replicas (``None``: this process only)."""
        if state is not None:
            from ._shared_monitor import SharedCounters

            self._shared = SharedCounters(state, self._integer_counters, flush_interval_s)

    def reset(self) -> None:
        """Forget every event and counter (Prometheus sees this as a process restart).

        With a ``state``, what this replica already added to the fleet's
        totals stays there; counting goes on from zero.
        """
        # Rebinding (rather than clearing) lets a concurrent reader finish on the old containers.
        self._events: deque[Event] = deque(maxlen=self.max_events)
        self._breaker_events: deque[tuple[float, str]] = deque(maxlen=self.max_events)
        self._counters: dict[str, TargetCounters] = {}
        self._breaker_opens: dict[str, int] = {}
        if self._shared is not None:
            self._shared.forget()

    def __len__(self) -> int:
        """Events currently held (at most ``max_events``; some may be older than the window)."""
        return len(self._events)

    def __repr__(self) -> str:
        return f"Monitor(window_s={self.window_s:g}, events={len(self._events)}, targets={len(self._counters)})"

    # -- hot path --------------------------------------------------------------------------

    def record(self, attempts: Sequence[Attempt], request: ChatRequest | None) -> None:
        """Record every attempt of one routed call (in order); called by routers."""
        if not attempts:
            return
        now = self._clock()
        task_type = request.task_type if request is not None else None
        events = self._events
        for attempt in attempts:
            counters = self._counters.get(attempt.target) or self._new_counters(attempt.target)
            usage = attempt.usage
            cost = attempt.cost.total if attempt.cost is not None else None
            ok = attempt.error_kind is None
            tokens: Tokens = _NO_USAGE if usage is None else (
                usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens,
                usage.output_tokens, usage.reasoning_tokens, usage.exact)
            events.append((now, attempt.target, counters.provider, counters.model, task_type,
                           attempt.latency_ms, attempt.ttft_ms, *tokens, cost, ok, attempt.error_kind,
                           attempt.depth, attempt.sent, attempt.retry, attempt.started_at))
            self._count(counters, attempt, usage, cost, ok)
        cutoff = now - self.window_s
        while events[0][0] < cutoff:  # oldest first: usually zero or one pop
            events.popleft()
        if self._shared is not None:
            self._shared.poke()

    def breaker_opened(self, target: str, at: float | None = None) -> None:
        """Count a circuit-breaker opening for ``target`` (``at``: epoch seconds, default now)."""
        now = self._clock() if at is None else at
        self._breaker_opens[target] = self._breaker_opens.get(target, 0) + 1
        breaker_events = self._breaker_events
        breaker_events.append((now, target))
        cutoff = now - self.window_s
        while breaker_events[0][0] < cutoff:
            breaker_events.popleft()
        if self._shared is not None:
            self._shared.poke()

    def _new_counters(self, target: str) -> TargetCounters:
        counters = self._counters[target] = self._blank_counters(target)
        return counters

    def _count(self, c: TargetCounters, attempt: Attempt, usage: Usage | None, cost: Decimal | None,
               ok: bool) -> None:
        kind = attempt.error_kind
        c.attempts[kind] = c.attempts.get(kind, 0) + 1
        if not attempt.sent:
            return
        if ok:
            c.served += 1
            if attempt.depth:
                c.fallbacks += 1
        else:
            c.failed += 1
        seconds = attempt.latency_ms / 1000.0
        c.latency_buckets[bisect_left(self._latency_bounds, seconds)] += 1
        c.latency_sum += seconds
        if attempt.ttft_ms is not None:
            seconds = attempt.ttft_ms / 1000.0
            c.ttft_buckets[bisect_left(self._ttft_bounds, seconds)] += 1
            c.ttft_sum += seconds
        if usage is not None:
            totals = c.tokens
            totals[0] += usage.input_tokens
            totals[1] += usage.cached_input_tokens
            totals[2] += usage.cache_write_tokens
            totals[3] += usage.output_tokens
            totals[4] += usage.reasoning_tokens
        if cost is not None:
            c.cost += cost
            c.priced += 1

    # -- data frames ---------------------------------------------------------------------------

    def events_df(self, window: str | float | None = None) -> pl.DataFrame:
        """Every event of the last ``window`` (default: the monitor's window), oldest first.

        Columns are :data:`EVENT_COLUMNS`: ``ts`` (Float64 epoch seconds when the
        call was recorded), ``target``/``provider``/``model``/``task_type``/
        ``error_kind`` (String; ``error_kind`` null when served), ``latency_ms``/
        ``ttft_ms``/``started_at`` (Float64), token counts (Int64, null when the
        attempt reported no usage), ``tokens_exact``/``success``/``sent``
        (Boolean), ``cost_usd`` (``Decimal(38, 10)``, rounded to 1e-10 USD; null
        when unpriced), ``depth``/``retry`` (Int64).
        """
        import polars as pl

        events = list(self._events)  # one C-level copy: safe against a concurrent record()
        cutoff = self._cutoff(window)
        events = events[bisect_left(events, cutoff, key=_event_ts):]
        columns: list[Sequence[object]] = list(zip(*events)) if events else [()] * len(EVENT_COLUMNS)
        # Polars parses decimal text about twice as fast as it converts Decimal objects.
        cost_index = EVENT_COLUMNS.index("cost_usd")
        columns[cost_index] = [None if cost is None else str(cost) for cost in columns[cost_index]]
        frame = pl.DataFrame([pl.Series(name, values, dtype=pl.String if name == "cost_usd" else dtype)
                              for (name, dtype), values in zip(_event_schema().items(), columns)])
        frame = frame.with_columns(pl.col("cost_usd").cast(_event_schema()["cost_usd"]))
        # Events are in recording order; if the wall clock stepped back the cut may be off by
        # that step, and the filter still keeps the result inside the window.
        return frame.filter(pl.col("ts") >= cutoff)

    def summary_df(self, window: str | float | None = "24h") -> pl.DataFrame:
        """One row per provider/model over the last ``window`` (capped by the monitor's window).

        ``calls`` counts sent attempts and ``successes`` the served ones;
        ``success_rate`` is null when nothing was sent (only skips).
        Latency percentiles are over sent attempts; token columns sum reported
        usage; ``cost_usd`` is null when no attempt was priced; ``fallbacks``
        counts attempts served at fallback depth > 0; ``breaker_opens`` counts
        circuit-breaker openings in the window. Sorted by provider, model.
        """
        import polars as pl

        sent, ok = pl.col("sent"), pl.col("success")
        latency = pl.col("latency_ms").filter(sent)
        per_model = self.events_df(window).group_by("provider", "model").agg(
            calls=sent.sum(),
            successes=(sent & ok).sum(),
            p50_latency_ms=latency.quantile(0.5, interpolation="linear"),
            p95_latency_ms=latency.quantile(0.95, interpolation="linear"),
            p50_ttft_ms=pl.col("ttft_ms").filter(sent).median(),
            **{f"{name}_tokens": pl.col(f"{name}_tokens").sum() for name in TOKEN_CATEGORIES},
            cost_usd=pl.when(pl.col("cost_usd").count() > 0).then(pl.col("cost_usd").sum()),
            fallbacks=(sent & ok & (pl.col("depth") > 0)).sum(),
        )
        opens = self._breaker_df(window).group_by("provider", "model").agg(breaker_opens=pl.len())
        summary = per_model.join(opens, on=["provider", "model"], how="full", coalesce=True)
        summary = summary.with_columns(
            pl.col("calls", "successes", "fallbacks", "breaker_opens",
                   *(f"{name}_tokens" for name in TOKEN_CATEGORIES)).fill_null(0),
        ).with_columns(
            success_rate=pl.when(pl.col("calls") > 0).then(pl.col("successes") / pl.col("calls")),
        )
        return summary.select(pl.col(name).cast(dtype) for name, dtype in _summary_schema().items()) \
            .sort("provider", "model")

    def _breaker_df(self, window: str | float | None) -> pl.DataFrame:
        import polars as pl

        cutoff = self._cutoff(window)
        opens = [(target, *split_target(target)) for ts, target in list(self._breaker_events) if ts >= cutoff]
        return pl.DataFrame(opens, schema={"target": pl.String, "provider": pl.String, "model": pl.String},
                            orient="row")

    def _cutoff(self, window: str | float | None) -> float:
        seconds = self.window_s if window is None else min(parse_window(window), self.window_s)
        return self._clock() - seconds

    # -- Prometheus ----------------------------------------------------------------------------

    def to_prometheus(self, scope: Literal["replica", "fleet"] = "replica") -> str:
        """The counters in the Prometheus text exposition format (version 0.0.4).

        Counters cover the whole uptime (since construction or :meth:`reset`),
        not the rolling window. Tokens, cost and histograms count sent attempts;
        ``evalkit_attempts_total`` also counts skipped ones, with the skip reason
        as ``error_kind`` (``"none"`` for the attempt that served).

        ``scope="fleet"`` (a monitor with a ``state``) renders the same series
        summed over every replica, read from Redis (blocking: call it from the
        scrape handler, not the routing loop; Redis down raises
        :class:`~evalkit.errors.StateUnavailableError`, i.e. a failed scrape,
        never partial totals). Cost there is exact to the nano-dollar. Serve
        one scope or the other to Prometheus, never both (module docstring).
        """
        if scope == "fleet":
            counters, opens = self._fleet()
        elif scope == "replica":
            counters, opens = dict(self._counters), dict(self._breaker_opens)
        else:
            raise ValueError(f"scope must be 'replica' or 'fleet', not {scope!r}")
        return render_counters(sorted(counters.values(), key=lambda c: c.target), opens, self._latency_bounds,
                               self._ttft_bounds)

    # -- the fleet (a monitor with a state) -------------------------------------------------------

    def fleet_counters(self) -> dict[str, FleetTotals]:
        """Every target's counters summed over all replicas sharing this monitor's state, from Redis.

        What the replicas have flushed so far (each flushes within
        ``flush_interval_s``; :meth:`flush` sends this one's now). Blocking,
        like ``to_prometheus(scope="fleet")``.
        """
        from ._shared_monitor import fleet_totals

        counters, opens = self._fleet()
        return {target: fleet_totals(c, opens.get(target, 0)) for target, c in sorted(counters.items())}

    async def flush(self) -> None:
        """Send this replica's counts not yet in Redis (no-op without a state).

        Raises :class:`~evalkit.errors.StateUnavailableError` while Redis is
        down; the counts are kept and sent once it is back.
        """
        if self._shared is not None:
            await self._shared.flush()

    def _fleet(self) -> tuple[dict[str, TargetCounters], dict[str, int]]:
        if self._shared is None:
            raise ValueError("this monitor has no state: fleet totals need Monitor(..., state=RedisState(...))")
        from ._shared_monitor import fill_counters

        fields, opens = self._shared.read()
        counters = {target: fill_counters(self._blank_counters(target), values, self._latency_bounds,
                                          self._ttft_bounds) for target, values in fields.items()}
        return counters, opens

    def _blank_counters(self, target: str) -> TargetCounters:
        return TargetCounters(target, len(self._latency_bounds), len(self._ttft_bounds))

    def _integer_counters(self) -> dict[str | None, dict[str, int]]:
        """This replica's cumulative counters as whole numbers (what SharedCounters sends the differences of)."""
        from ._shared_monitor import counter_fields

        out: dict[str | None, dict[str, int]] = {
            target: counter_fields(c, self._latency_bounds, self._ttft_bounds)
            for target, c in list(self._counters.items())}
        out[None] = dict(self._breaker_opens)
        return out


def _event_ts(event: Event) -> float:
    return event[0]


def _event_schema() -> dict[str, pl.DataType | type[pl.DataType]]:
    import polars as pl

    text, real, count, flag = pl.String, pl.Float64, pl.Int64, pl.Boolean
    dtypes: tuple[pl.DataType | type[pl.DataType], ...] = (
        real, text, text, text, text, real, real, count, count, count, count, count,
        flag, pl.Decimal(38, 10), flag, text, count, flag, count, real)
    return dict(zip(EVENT_COLUMNS, dtypes))


def _summary_schema() -> dict[str, pl.DataType | type[pl.DataType]]:
    import polars as pl

    schema: dict[str, pl.DataType | type[pl.DataType]] = {"provider": pl.String, "model": pl.String, "calls": pl.Int64, "successes": pl.Int64,
              "success_rate": pl.Float64, "p50_latency_ms": pl.Float64, "p95_latency_ms": pl.Float64,
              "p50_ttft_ms": pl.Float64}
    schema.update({f"{name}_tokens": pl.Int64 for name in TOKEN_CATEGORIES})
    schema.update({"cost_usd": pl.Decimal(38, 10), "fallbacks": pl.Int64, "breaker_opens": pl.Int64})
    return schema
