"""The result schema, in one place: what each column of ``results_df`` and ``attempts_df`` means.

Column names are stable; new columns may be added at the end. Token columns
come with ``tokens_exact`` (false = estimated locally).

A run stores money exactly (``Decimal``; null = unpriced, never 0) and times as
epoch seconds: :func:`result_schema` and :func:`attempt_schema` are the stored
types. ``results_df``/``attempts_df`` give money as Float64 (``.to_pandas()``
then has float64 columns; ``exact_money=True`` keeps the ``Decimal``) and times
as UTC datetimes (null when unknown): :func:`frame_schema`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from polars import DataType
    from polars.datatypes import DataTypeClass

PolarsType: TypeAlias = "DataType | DataTypeClass"
"""A polars column type, as polars' own ``cast``/``DataFrame(schema=...)`` take it."""

__all__ = ["ATTEMPT_COLUMNS", "CELL", "KEY", "RESULT_COLUMNS", "attempt_schema", "frame_schema", "result_schema"]

KEY = ("item_id", "target", "repeat")
"""One row per cell in ``results_df``: item × target × repeat."""

CELL = ("run_id", "item_id", "task_type", "target", "repeat")
"""The columns an attempt row repeats from its cell's row."""

# name -> (kind, meaning); kinds: str, int, float, bool, money (exact USD), time (a moment, UTC)
RESULT_COLUMNS: dict[str, tuple[str, str]] = {
    "run_id": ("str", "the run this row belongs to"),
    "item_id": ("str", "dataset item id"),
    "task_type": ("str", "the item's task type"),
    "target": ("str", "the target asked: provider:model, or a router's name"),
    "repeat": ("int", "0-based repeat index; repeats are independent samples"),
    "status": ("str", "ok or error"),
    "error_kind": ("str", "evalkit error kind when status is error (rate_limit, timeout, ...)"),
    "error": ("str", "the final error message (credentials redacted)"),
    "served_by": ("str", "the provider:model that produced the answer"),
    "model": ("str", "the model name the vendor reported"),
    "finish_reason": ("str", "stop, length, content_filter, tool_calls, error"),
    "latency_ms": ("float", "wall time of the whole cell's call, fallbacks included"),
    "ttft_ms": ("float", "time to first token of the serving attempt (streamed calls)"),
    "input_tokens": ("int", "prompt tokens over every attempt, cached and cache-write included"),
    "cached_input_tokens": ("int", "part of input_tokens read from a prompt cache"),
    "cache_write_tokens": ("int", "part of input_tokens written to a prompt cache"),
    "output_tokens": ("int", "generated tokens over every attempt, reasoning included"),
    "reasoning_tokens": ("int", "part of output_tokens spent on hidden reasoning"),
    "tokens_exact": ("bool", "true when every count was provider-reported"),
    "cost_usd": ("money", "USD over every attempt; null when any attempt was unpriced"),
    "score": ("float", "grade in [0, 1]; null when not graded (errors)"),
    "passed": ("bool", "the grader's pass/fail; null when not graded"),
    "grade_reason": ("str", "the grader's short reason"),
    "n_attempts": ("int", "attempts sent for this cell (retries and fallbacks included)"),
    "output": ("str", "the answer text"),
    "seed": ("int", "sampling seed sent with the request"),
    "temperature": ("float", "sampling temperature sent (null = vendor default)"),
    "started_at": ("time", "when the cell started"),
    "ended_at": ("time", "when the cell's grade was recorded"),
    "judge_cost_usd": ("money", "what the LLM judge cost to grade this cell (null: no judge, or unpriced)"),
}

ATTEMPT_COLUMNS: dict[str, tuple[str, str]] = {
    "run_id": ("str", "the run"),
    "item_id": ("str", "dataset item id"),
    "task_type": ("str", "the item's task type"),
    "target": ("str", "the cell's target (a provider or a router)"),
    "repeat": ("int", "repeat index of the cell"),
    "attempt": ("int", "0-based position of this attempt within the cell"),
    "attempt_target": ("str", "the provider:model this attempt went to"),
    "error_kind": ("str", "null for the serving attempt; an error kind or a skip reason"),
    "error": ("str", "error message (credentials redacted)"),
    "sent": ("bool", "false when a policy skipped the target without calling it"),
    "depth": ("int", "fallback depth: 0 for the first target tried"),
    "retry": ("int", "retries of the same target before this attempt"),
    "recovery": ("str", "continue / restart: this attempt took over a stream its caller was already reading"),
    "join_at": ("int", "for recovery=continue: characters of the answer this attempt continued from"),
    "latency_ms": ("float", "this attempt's latency"),
    "ttft_ms": ("float", "this attempt's time to first token"),
    "input_tokens": ("int", "as in results"),
    "cached_input_tokens": ("int", "as in results"),
    "cache_write_tokens": ("int", "as in results"),
    "output_tokens": ("int", "as in results"),
    "reasoning_tokens": ("int", "as in results"),
    "tokens_exact": ("bool", "as in results"),
    "cost_usd": ("money", "this attempt's cost; null when unknown or unpriced"),
    "started_at": ("time", "when the attempt started (null: not recorded)"),
}


def _dtype(kind: str, *, stored: bool = True, exact_money: bool = True) -> PolarsType:
    import polars as pl

    if kind == "money":
        return pl.Decimal(38, 12) if stored or exact_money else pl.Float64
    if kind == "time":
        return pl.Float64 if stored else pl.Datetime("us", "UTC")
    plain: dict[str, PolarsType] = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean}
    return plain[kind]


def result_schema() -> dict[str, PolarsType]:
    """Polars schema of the results as a run stores them (money ``Decimal``, times epoch seconds)."""
    return {name: _dtype(kind) for name, (kind, _) in RESULT_COLUMNS.items()}


def attempt_schema() -> dict[str, PolarsType]:
    """Polars schema of the attempts as a run stores them (money ``Decimal``, times epoch seconds)."""
    return {name: _dtype(kind) for name, (kind, _) in ATTEMPT_COLUMNS.items()}


def frame_schema(table: str, *, exact_money: bool = False) -> dict[str, PolarsType]:
    """Polars schema of ``results_df`` (``table="results"``) or ``attempts_df`` (``"attempts"``).

    Money is Float64 (``Decimal(38, 12)`` with ``exact_money``), times ``Datetime("us", "UTC")``.
    """
    columns = RESULT_COLUMNS if table == "results" else ATTEMPT_COLUMNS
    return {name: _dtype(kind, stored=False, exact_money=exact_money) for name, (kind, _) in columns.items()}
