"""Run a dataset across targets: every (item, target, repeat) cell asked, graded and written to disk.

A cell's failure is a row with a typed error, never a crash of the run. Cells
are pulled by a fixed pool of workers from one lazy iterator, and each row is
written as soon as it is graded, so memory stays flat however many cells a run
has. Finished cells are skipped on resume.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from .._secret import scrub
from ..errors import ConfigError, InternalError, ProviderError
from ..types import Attempt, ChatRequest, ChatResponse
from ._cells import Cell, Shard, iter_cells, repeat_seed
from .store import RunStore

__all__ = ["LIMITS", "UNGRADED", "RunOptions", "RunTotals", "check_number", "run_cells"]


# The range of every number a run is configured with (CLI flags and RunOptions fields alike).
LIMITS: dict[str, tuple[float, float]] = {
    "repeats": (1, 10_000), "concurrency": (1, 10_000), "seed": (-(2**63), 2**63 - 1),
    "temperature": (0.0, 2.0), "max_tokens": (1, 10_000_000), "time_scale": (0.0, 1_000.0),
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
    """

    repeats: int = 1
    concurrency: int = 16
    seed: int = 0
    temperature: float | None = None
    max_tokens: int | None = 1024
    stream: bool = False
    shard: Shard = field(default_factory=Shard)
    unsafe_code_exec: bool = False

    def __post_init__(self) -> None:
        for name in ("repeats", "concurrency", "seed", "max_tokens"):
            if name != "max_tokens" or self.max_tokens is not None:
                check_number(getattr(self, name), name, whole=True)
        if self.temperature is not None:
            check_number(self.temperature, "temperature")

    def as_dict(self) -> dict[str, Any]:
        return {"repeats": self.repeats, "concurrency": self.concurrency, "seed": self.seed,
                "temperature": self.temperature, "max_tokens": self.max_tokens, "stream": self.stream,
                "shard": str(self.shard), "unsafe_code_exec": self.unsafe_code_exec}


@dataclass(slots=True)
class RunTotals:
    """Running totals, updated as rows are written (what the progress bar shows)."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    errors: int = 0
    passed: int = 0
    ungraded: int = 0
    spend: Decimal = Decimal(0)
    unpriced: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def cells_per_s(self) -> float:
        """Cells asked per second while asking (setup and compaction excluded)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return self.done / (end - self.started) if end > self.started else 0.0

    def add(self, row: Mapping[str, Any]) -> None:
        self.done += 1
        self.errors += row["status"] == "error"
        self.passed += bool(row.get("passed"))
        self.ungraded += (row.get("grade_reason") or "").startswith(UNGRADED)
        if row.get("cost_usd") is not None:
            self.spend += Decimal(row["cost_usd"])
        elif row["n_attempts"]:
            self.unpriced += 1


async def run_cells(dataset: Any, targets: Sequence[Any], store: RunStore, options: RunOptions, *,
                    run_id: str, judge: Any = None,
                    on_row: Callable[[Mapping[str, Any], RunTotals], None] | None = None) -> RunTotals:
    """Ask every cell not yet in ``store``; returns the totals of this invocation."""
    names = [t.name for t in targets]
    done = store.done_keys()
    items = dataset.items
    totals = RunTotals()
    pending = []
    for cell in iter_cells(len(items), len(targets), options.repeats, options.shard):
        if (items[cell.item].id, names[cell.target], cell.repeat) in done:
            totals.skipped += 1
        else:
            pending.append(cell)
    totals.total = len(pending)
    cells = iter(pending)
    graders = _GraderCache(judge, unsafe_code_exec=options.unsafe_code_exec)

    async def worker() -> None:
        for cell in cells:  # one shared iterator: each cell goes to exactly one worker
            item, target = items[cell.item], targets[cell.target]
            row = store.append(await _ask(item, target, cell, options, run_id, graders))
            totals.add(row)
            if on_row is not None:
                on_row(row, totals)

    totals.started = time.monotonic()
    try:
        # A task group: when one worker fails (a full disk), the others stop instead of writing on.
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(options.concurrency, len(pending) or 1))):
                group.create_task(worker())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # one error, as a single worker would raise it
    finally:
        totals.finished = time.monotonic()
        store.close()
    return totals


def build_request(item: Any, cell: Cell, options: RunOptions) -> ChatRequest:
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


async def _ask(item: Any, target: Any, cell: Cell, options: RunOptions, run_id: str,
               graders: _GraderCache) -> dict[str, Any]:
    request = build_request(item, cell, options)
    started_at, clock = time.time(), time.perf_counter()
    response: ChatResponse | None = None
    error: ProviderError | None = None
    try:
        # A streamed cell is read as it arrives, as an application would read it: a router then
        # recovers a broken stream the way it would in production (mid_stream), and records it.
        response = await (target.complete(request, on_delta=_read) if request.stream else target.complete(request))
        attempts = list(response.attempts) or [_leaf_attempt(response, target, started_at)]
    except ProviderError as exc:
        error = exc
        # A caller waits for a failure too: a lone failed call is timed here (a router times its own).
        attempts = list(getattr(exc, "attempts", None) or ()) or [Attempt(
            target=target.name, error_kind=exc.kind.value, error=_clipped(exc.message, 300),
            started_at=started_at, latency_ms=(time.perf_counter() - clock) * 1000, usage=exc.usage, cost=exc.cost)]
    except Exception as exc:  # noqa: BLE001 - a broken custom target is a failed cell, not a dead run
        error = InternalError(f"{type(exc).__name__}: {exc}")
        attempts = [Attempt(target=target.name, error_kind="internal", error=_clipped(error.message, 300),
                            started_at=started_at, latency_ms=(time.perf_counter() - clock) * 1000)]
    row = _row(run_id, item, target.name, cell.repeat, request, response, error, attempts, started_at)
    if response is not None:
        # Graded as written: an upstream that echoed a key into its answer must not hand it to a
        # judge vendor, nor to a grade_reason that quotes (and cuts) the answer.
        row.update(await graders.grade(item, row["output"]))
    row["ended_at"] = time.time()
    return row


def _read(delta: Any) -> None:
    """The reader of a streamed cell: the text is in the response at the end; only its arrival matters."""


def _leaf_attempt(response: ChatResponse, target: Any, started_at: float) -> Attempt:
    return Attempt(target=response.provider or target.name, latency_ms=response.latency_ms,
                   ttft_ms=response.ttft_ms, usage=response.usage, cost=response.cost, started_at=started_at)


def _row(run_id: str, item: Any, target: str, repeat: int, request: ChatRequest, response: ChatResponse | None,
         error: ProviderError | None, attempts: list[Attempt], started_at: float) -> dict[str, Any]:
    sent = [a for a in attempts if a.sent]
    usages = [a.usage for a in sent if a.usage is not None]
    # One unpriced attempt that used tokens makes the cell's cost unknown, never a partial sum.
    unpriced = not sent or any(a.cost is None and a.usage is not None for a in sent)
    cost = None if unpriced else sum((a.cost.total for a in sent if a.cost is not None), Decimal(0))
    total = lambda field: sum(getattr(u, field) for u in usages)  # noqa: E731
    return {
        "run_id": run_id, "item_id": item.id, "task_type": item.task_type, "target": target, "repeat": repeat,
        "status": "ok" if response is not None else "error",
        "error_kind": None if error is None else error.kind.value,
        "error": None if error is None else _clipped(str(error), 500),
        "served_by": response.provider if response is not None else None,
        "model": response.model if response is not None else None,
        "finish_reason": response.finish_reason.value if response is not None else None,
        "latency_ms": sum(a.latency_ms for a in sent),
        "ttft_ms": response.ttft_ms if response is not None else None,
        "input_tokens": total("input_tokens"), "cached_input_tokens": total("cached_input_tokens"),
        "cache_write_tokens": total("cache_write_tokens"), "output_tokens": total("output_tokens"),
        "reasoning_tokens": total("reasoning_tokens"),
        "tokens_exact": all(u.exact for u in usages) if usages else None,
        "cost_usd": None if cost is None else str(cost),
        "score": None, "passed": None, "grade_reason": None, "judge_cost_usd": None,
        "n_attempts": len(sent),
        "output": scrub(response.text) if response is not None else None,
        "seed": request.seed, "temperature": request.temperature,
        "started_at": started_at, "ended_at": None,
        "attempts": [_attempt_record(a) for a in attempts],
    }


def _attempt_record(a: Attempt) -> dict[str, Any]:
    u = a.usage
    return {
        "attempt_target": a.target, "error_kind": a.error_kind, "error": a.error, "sent": a.sent,
        "depth": a.depth, "retry": a.retry, "recovery": a.recovery, "join_at": a.join_at,
        "latency_ms": a.latency_ms, "ttft_ms": a.ttft_ms,
        "input_tokens": u.input_tokens if u else None, "cached_input_tokens": u.cached_input_tokens if u else None,
        "cache_write_tokens": u.cache_write_tokens if u else None, "output_tokens": u.output_tokens if u else None,
        "reasoning_tokens": u.reasoning_tokens if u else None, "tokens_exact": u.exact if u else None,
        "cost_usd": str(a.cost.total) if a.cost is not None else None, "started_at": a.started_at,
    }


def _clipped(text: str, limit: int) -> str:
    """``text`` scrubbed of secret values, then cut to ``limit``: cutting first could leave half a key."""
    return scrub(text)[:limit]


def _spec_key(spec: Mapping[str, Any]) -> Any:
    """A hashable key for a grader spec; cheap for flat specs, JSON for nested ones (labels, schemas)."""
    try:
        key = tuple(sorted(spec.items()))
        hash(key)  # a list or dict value (labels, a schema) makes it unhashable
        return key
    except TypeError:
        return json.dumps(spec, sort_keys=True, default=str)


UNGRADED = "ungraded: "
"""How ``grade_reason`` starts when an answer could not be graded here (no sandbox for code_exec)."""


class _GraderCache:
    """One grader per distinct spec; grading failures become a reason, not a crash."""

    def __init__(self, judge: Any, *, unsafe_code_exec: bool = False) -> None:
        self.judge = judge
        self.unsafe_code_exec = unsafe_code_exec
        self._graders: dict[Any, Any] = {}

    async def grade(self, item: Any, output: str) -> dict[str, Any]:
        from ..graders import SandboxUnavailable, grader_for

        ungraded = {"score": None, "passed": None, "judge_cost_usd": None}
        try:
            key = _spec_key(item.grader)
            grader = self._graders.get(key)
            if grader is None:
                grader = self._graders[key] = grader_for(item.grader, judge=self.judge,
                                                         unsafe_code_exec=self.unsafe_code_exec)
            grade = await grader.grade(item, output)
        except ProviderError as exc:
            return {**ungraded, "grade_reason": f"judge failed: {exc.kind.value}"}
        except SandboxUnavailable as exc:  # no isolation here and no permission to run without: not a verdict
            return {**ungraded, "grade_reason": _clipped(f"{UNGRADED}{exc}", 300)}
        except Exception as exc:  # noqa: BLE001 - a grader bug must not lose the answer
            return {**ungraded, "grade_reason": _clipped(f"grader error: {type(exc).__name__}: {exc}", 300)}
        details = grade.details or {}
        return {"score": float(grade.score), "passed": bool(grade.passed),
                "grade_reason": _clipped(grade.reason, 300), "judge_cost_usd": details.get("judge_cost_usd")}
