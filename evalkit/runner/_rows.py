"""A cell's row and its attempts' records, as the run store writes them (columns in :mod:`.schema`)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .._secret import scrub
from ..errors import ProviderError
from ..types import Attempt, ChatRequest, ChatResponse, Usage

if TYPE_CHECKING:
    from ..datasets import Item
    from ..providers import Provider

__all__ = ["attempt_record", "carry_attempts", "cell_row", "clipped", "earlier_cost", "leaf_attempt"]

_TOKEN_FIELDS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


def leaf_attempt(response: ChatResponse, target: Provider, started_at: float) -> Attempt:
    """The one attempt of a target that answered without listing its attempts (a custom target)."""
    return Attempt(target=response.provider or target.name, latency_ms=response.latency_ms,
                   ttft_ms=response.ttft_ms, usage=response.usage, cost=response.cost, started_at=started_at)


def cell_row(run_id: str, item: Item, target: str, repeat: int, request: ChatRequest,
             response: ChatResponse | None, error: ProviderError | None, attempts: list[Attempt],
             started_at: float) -> dict[str, Any]:
    """The row of one asked cell (not yet graded: the grade columns are empty)."""
    sent = [a for a in attempts if a.sent]
    usages = [a.usage for a in sent if a.usage is not None]
    # One unpriced attempt that used tokens makes the cell's cost unknown, never a partial sum.
    unpriced = not sent or any(a.cost is None and a.usage is not None for a in sent)
    cost = None if unpriced else sum((a.cost.total for a in sent if a.cost is not None), Decimal(0))
    return {
        "run_id": run_id, "item_id": item.id, "task_type": item.task_type, "target": target, "repeat": repeat,
        "status": "ok" if response is not None else "error",
        "error_kind": None if error is None else error.kind.value,
        "error": None if error is None else clipped(str(error), 500),
        "served_by": response.provider if response is not None else None,
        "model": response.model if response is not None else None,
        "finish_reason": response.finish_reason.value if response is not None else None,
        "latency_ms": sum(a.latency_ms for a in sent),
        "ttft_ms": response.ttft_ms if response is not None else None,
        **{name: _total(usages, name) for name in _TOKEN_FIELDS},
        "tokens_exact": all(u.exact for u in usages) if usages else None,
        "cost_usd": None if cost is None else str(cost),
        "score": None, "passed": None, "grade_reason": None, "judge_cost_usd": None,
        "n_attempts": len(sent),
        "output": scrub(response.text) if response is not None else None,
        "seed": request.seed, "temperature": request.temperature,
        "started_at": started_at, "ended_at": None,
        "attempts": [attempt_record(a) for a in attempts],
    }


def _total(usages: Sequence[Usage], field: str) -> int:
    """One token count over every usage (``field`` is one of ``_TOKEN_FIELDS``)."""
    return sum(int(getattr(u, field)) for u in usages)


def attempt_record(a: Attempt) -> dict[str, Any]:
    """One attempt as the store writes it (a row of ``attempts_df``)."""
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


def clipped(text: str, limit: int) -> str:
    """``text`` scrubbed of secret values, then cut to ``limit``: cutting first could leave half a key."""
    return scrub(text)[:limit]


def earlier_cost(earlier: Sequence[Mapping[str, Any]]) -> Decimal:
    """What the carried attempts of earlier asks cost (their priced part)."""
    return sum((Decimal(a["cost_usd"]) for a in earlier if a["sent"] and a["cost_usd"] is not None), Decimal(0))


def carry_attempts(row: dict[str, Any], earlier: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``row`` of a cell asked again (``--retry-failed``) with the attempts of its earlier asks in front.

    The cell's attempts, tokens, latency and cost then cover every ask, so
    what the failed asks cost stays in the run's spend.
    """
    if not earlier:
        return row
    sent = [a for a in earlier if a["sent"]]
    row["attempts"] = [*earlier, *row["attempts"]]
    row["n_attempts"] += len(sent)
    row["latency_ms"] += sum(a["latency_ms"] or 0.0 for a in sent)
    for name in _TOKEN_FIELDS:
        row[name] += sum(a[name] or 0 for a in sent)
    used = [a["tokens_exact"] for a in sent if a["input_tokens"] is not None]
    if used:
        row["tokens_exact"] = all(used) and row["tokens_exact"] is not False
    unpriced = any(a["cost_usd"] is None and a["input_tokens"] is not None for a in sent)
    if row["cost_usd"] is not None and not unpriced:
        row["cost_usd"] = str(Decimal(row["cost_usd"]) + earlier_cost(sent))
    elif unpriced:
        row["cost_usd"] = None
    return row
