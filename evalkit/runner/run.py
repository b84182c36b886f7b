"""Run a dataset across targets: every (item, target, repeat) cell asked, graded and written to disk.

A cell's failure is a row with a typed error, never a crash of the run. No cell
is ever held in a list: each target has a lazy stream of its pending cells,
walked from the plan's counts (:class:`~evalkit.runner._cells.Plan`; the first
``--limit`` items, the shard's cells); a fixed pool of workers takes cells from
targets in turn, skipping a target whose adaptive in-flight limit is full
(:mod:`._schedule`), and each row is written as soon as it is graded. Memory is
the dataset, the cells in flight and, when resuming, one byte per cell of the
plan marking those already written (:class:`~evalkit.runner._done.DoneCells`:
1 MB per million cells, read one store part at a time), plus the earlier asks
of the cells ``--retry-failed`` asks again; it does not grow as cells are asked.
Measured by ``benchmarks/runner_memory.py``. How each target is asked (retries,
adaptive concurrency, the spend cap) is :mod:`._pacing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from ..errors import ConfigError, ErrorKind, InternalError, ProviderError
from ..types import Attempt, ChatRequest, ChatResponse, StreamRestart
from ._cells import Cell, Plan, Shard, repeat_seed
from ._done import DoneCells
from ._grading import JUDGE_REFUSED, UNGRADED, GraderCache, _GraderCache  # noqa: F401 - regrade's import
from ._pacing import PacedTarget, paced
from ._rows import attempt_record, carry_attempts, cell_row, clipped, earlier_cost, leaf_attempt
from ._schedule import CellQueue
from .store import RunStore

if TYPE_CHECKING:
    from ..datasets import Dataset, Item
    from ..providers import Provider
    from ..router import BudgetLedger

__all__ = ["LIMITS", "UNGRADED", "RunOptions", "RunTotals", "attempt_record", "check_number", "run_cells"]

Key = tuple[str, str, int]
"""A cell's key in the store: (item_id, target, repeat)."""


# The range of every number a run is configured with (CLI flags and RunOptions fields alike).
LIMITS: dict[str, tuple[float, float]] = {
    "repeats": (1, 10_000), "concurrency": (1, 10_000), "seed": (-(2**63), 2**63 - 1),
    "temperature": (0.0, 2.0), "max_tokens": (1, 10_000_000), "time_scale": (0.0, 1_000.0),
    "retries": (0, 100), "limit": (1, 10**9), "max_error_rate": (0.0, 1.0),
}


def check_number(value: Any, name: str, *, whole: bool = False) -> Any:
    """``value`` when it is a finite number within ``LIMITS[name]``; a :class:`~evalkit.ConfigError` otherwise.

    NaN passes every ``<`` test and ``inf`` overflows every sleep: both are refused
    here, before anything is written. ``name`` is a flag (``--max-tokens``) or a field.
    """
    low, high = LIMITS[name.lstrip("-").replace("-", "_")]
    kind = "a whole number" if whole else "a number"
    wrong_type = isinstance(value, bool) or not isinstance(value, int if whole else (int, float))
    if wrong_type:
        raise ConfigError(f"expected {kind}, got {value!r}", field=name)
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"expected {kind} from {low:g} to {high:g}, got {value!r}", field=name)
    return value


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How each cell is asked. ``max_tokens`` applies unless an item's metadata sets its own.

    Every number is checked on construction (finite, in range; a
    :class:`~evalkit.ConfigError` otherwise). ``unsafe_code_exec`` runs model-written
    code of ``code_exec`` items without isolation when no sandbox is available
    (trusted models and machines only); without it those items stay ungraded.
    ``retries``: retries of a plain target's transient failures per cell
    (:func:`~evalkit.runner._pacing.run_retry_policy`); ``concurrency`` is also
    where each target's adaptive in-flight limit starts. ``limit``: only the
    first ``limit`` items of the dataset. ``max_spend``: USD the whole run
    (models and judge) may spend; a cell whose reservation does not fit
    waits for the cells in flight, and the run stops asking when it still does
    not fit with nothing else in flight. ``no_judge``: judge-graded answers stay ungraded.
    """

    repeats: int = 1
    concurrency: int = 16
    seed: int = 0
    temperature: float | None = None
    max_tokens: int | None = 1024
    stream: bool = False
    shard: Shard = field(default_factory=Shard)
    unsafe_code_exec: bool = False
    retries: int = 3
    limit: int | None = None
    max_spend: Decimal | None = None
    no_judge: bool = False

    def __post_init__(self) -> None:
        for name in ("repeats", "concurrency", "seed", "max_tokens", "retries", "limit"):
            if getattr(self, name) is not None:
                check_number(getattr(self, name), name, whole=True)
        if self.temperature is not None:
            check_number(self.temperature, "temperature")
        if self.max_spend is not None:
            from ..router.budget import as_money

            try:
                object.__setattr__(self, "max_spend", as_money(self.max_spend, "max_spend"))
            except (TypeError, ValueError) as exc:
                raise ConfigError(str(exc), field="max_spend") from None

    def as_dict(self) -> dict[str, Any]:
        """The options as a run's manifest records them (money as a string)."""
        return {"repeats": self.repeats, "concurrency": self.concurrency, "seed": self.seed,
                "temperature": self.temperature, "max_tokens": self.max_tokens, "stream": self.stream,
                "shard": str(self.shard), "unsafe_code_exec": self.unsafe_code_exec, "retries": self.retries,
                "limit": self.limit, "max_spend": None if self.max_spend is None else str(self.max_spend),
                "no_judge": self.no_judge}


@dataclass(slots=True)
class RunTotals:
    """Running totals of one invocation, updated as rows are written (what the progress bar shows).

    ``spend`` is what the models cost, ``judge_spend`` what grading by the
    judge cost; ``retried`` counts cells that took more than one attempt;
    ``not_asked`` the cells left for a resume because the spend cap was reached.
    """

    total: int = 0
    done: int = 0
    skipped: int = 0
    errors: int = 0
    passed: int = 0
    ungraded: int = 0
    spend: Decimal = Decimal(0)
    judge_spend: Decimal = Decimal(0)
    unpriced: int = 0
    retried: int = 0
    not_asked: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def total_spend(self) -> Decimal:
        """Models and judge together."""
        return self.spend + self.judge_spend

    @property
    def cells_per_s(self) -> float:
        """Cells asked per second while asking (setup and compaction excluded)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return self.done / (end - self.started) if end > self.started else 0.0

    def add(self, row: Mapping[str, Any], earlier_cost: Decimal = Decimal(0)) -> None:
        """Count one written row; ``earlier_cost``: what its carried earlier asks cost (spent before this one)."""
        self.done += 1
        self.retried += row["n_attempts"] > 1
        self.errors += row["status"] == "error"
        self.passed += bool(row.get("passed"))
        self.ungraded += (row.get("grade_reason") or "").startswith(UNGRADED)
        if row.get("cost_usd") is not None:
            self.spend += Decimal(row["cost_usd"]) - earlier_cost
        elif row["n_attempts"]:
            self.unpriced += 1
        if row.get("judge_cost_usd") is not None:
            self.judge_spend += Decimal(row["judge_cost_usd"])


async def run_cells(dataset: Dataset, targets: Sequence[Provider], store: RunStore, options: RunOptions, *,
                    run_id: str, judge: Provider | None = None,
                    on_row: Callable[[Mapping[str, Any], RunTotals], None] | None = None,
                    again: Mapping[Key, Sequence[Mapping[str, Any]]] | None = None,
                    ledger: BudgetLedger | None = None) -> RunTotals:
    """Ask every cell not yet in ``store``; returns the totals of this invocation.

    ``again``: cells to ask again, with their earlier asks' attempt records (the new row carries
    them). ``ledger``: the run's :class:`~evalkit.router.BudgetLedger`; a cell it refuses before
    sending is put back while other cells hold reservations, else the run stops asking.
    """
    again = again or {}
    plan = Plan(min(len(dataset.items), options.limit or len(dataset.items)), tuple(t.name for t in targets),
                options.repeats, options.shard)
    items = dataset.items  # indexed by cell, never copied: --limit is the plan's n_items
    done = DoneCells.of(store, plan, items, again.keys())
    totals = RunTotals(total=plan.size - len(done), skipped=len(done))
    asked = [paced(t, retries=options.retries, concurrency=options.concurrency, ledger=ledger) for t in targets]
    judge_call = None if judge is None else paced(judge, retries=options.retries,
                                                  concurrency=options.concurrency, ledger=ledger).call
    queue = CellQueue([plan.pending(t, done) for t in range(len(asked))], [a.gate for a in asked])
    graders = GraderCache(judge_call, unsafe_code_exec=options.unsafe_code_exec, no_judge=options.no_judge)

    async def worker() -> None:
        while (cell := await queue.take()) is not None:
            item, target = items[cell.item], asked[cell.target]
            earlier = again.get((item.id, target.name, cell.repeat)) if again else None
            try:
                row = await _ask(item, target, cell, options, run_id, graders, earlier)
            finally:
                queue.finished()
            if row is None:  # the spend cap refused it before sending: it stays unasked
                if queue.in_flight:  # other cells hold reservations: once one settles there may be room
                    queue.put_back(cell)
                    await queue.next_finish()
                else:
                    queue.stop()  # nothing else holds money: the cap is reached
                continue
            if row["grade_reason"] == JUDGE_REFUSED:
                queue.stop()
            written = store.append(row)
            totals.add(written, earlier_cost(earlier) if earlier else Decimal(0))
            if on_row is not None:
                on_row(written, totals)

    totals.started = time.monotonic()
    try:
        # A task group: when one worker fails (a full disk), the others stop instead of writing on.
        with _long_lived_objects_frozen():
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, min(options.concurrency, totals.total or 1))):
                    group.create_task(worker())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # one error, as a single worker would raise it
    finally:
        totals.finished = time.monotonic()
        totals.not_asked = totals.total - totals.done if queue.stopped else 0
        store.close()
    return totals


@contextlib.contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the objects that live all run (dataset, modules, clients) out of the garbage collector's scans.

    A run allocates a few hundred objects per cell, which triggers collections
    all the time; each full one would walk the whole dataset again. Frozen, they
    are skipped (``gc.freeze``); what the run creates is still collected.
    Measured on ``benchmarks/runner_throughput.py``. Objects the caller froze
    itself stay frozen (nothing is done then), and runs at once share one freeze.
    """
    global _runs_freezing
    if not _runs_freezing and gc.get_freeze_count():  # the caller's own freeze: not ours to undo
        yield
        return
    if not _runs_freezing:
        gc.freeze()
    _runs_freezing += 1
    try:
        yield
    finally:
        _runs_freezing -= 1
        if not _runs_freezing:
            gc.unfreeze()


_runs_freezing = 0


def build_request(item: Item, cell: Cell, options: RunOptions) -> ChatRequest:
    """The request one cell sends: the item's messages, the run's sampling settings, a per-repeat seed."""
    max_tokens = item.metadata.get("max_tokens", options.max_tokens) if item.metadata else options.max_tokens
    return ChatRequest(
        messages=item.messages,
        max_tokens=max_tokens,
        temperature=options.temperature,
        seed=repeat_seed(options.seed, item.id, cell.repeat),
        stream=options.stream,
        metadata={"task_type": item.task_type, "item_id": item.id},
    )


async def _ask(item: Item, target: PacedTarget, cell: Cell, options: RunOptions, run_id: str,
               graders: GraderCache, earlier: Sequence[Mapping[str, Any]] | None) -> dict[str, Any] | None:
    """The graded row of one cell; ``None`` when the spend cap refused it before anything was sent."""
    request = build_request(item, cell, options)
    started_at, clock = time.time(), time.perf_counter()
    response: ChatResponse | None = None
    error: ProviderError | None = None
    call = target.call
    try:
        # A streamed cell is read as it arrives, as an application would read it: a router then
        # recovers a broken stream the way it would in production (mid_stream), and records it.
        response = await (call.complete(request, on_delta=_read) if request.stream else call.complete(request))
        attempts = list(response.attempts) or [leaf_attempt(response, call, started_at)]
    except ProviderError as exc:
        error = exc
        # A caller waits for a failure too: a lone failed call is timed here (a router times its own).
        attempts = list(getattr(exc, "attempts", None) or ()) or [Attempt(
            target=target.name, error_kind=exc.kind.value, error=clipped(exc.message, 300),
            started_at=started_at, latency_ms=(time.perf_counter() - clock) * 1000, usage=exc.usage, cost=exc.cost)]
        if exc.kind is ErrorKind.BUDGET_EXCEEDED and not any(a.sent for a in attempts):
            return None
    except Exception as exc:  # noqa: BLE001 - a broken custom target is a failed cell, not a dead run
        error = InternalError(f"{type(exc).__name__}: {exc}")
        attempts = [Attempt(target=target.name, error_kind="internal", error=clipped(error.message, 300),
                            started_at=started_at, latency_ms=(time.perf_counter() - clock) * 1000)]
    row = cell_row(run_id, item, target.name, cell.repeat, request, response, error, attempts, started_at)
    if earlier:
        carry_attempts(row, earlier)
    if response is not None:
        # Graded as written: an upstream that echoed a key into its answer must not hand it to a
        # judge vendor, nor to a grade_reason that quotes (and cuts) the answer.
        row.update(await graders.grade(item, row["output"]))
    row["ended_at"] = time.time()
    return row


def _read(delta: str | StreamRestart) -> None:
    """The reader of a streamed cell: the text is in the response at the end; only its arrival matters."""
