"""The per-task-type table ``evalkit run`` prints at the end."""

from __future__ import annotations

from typing import Any

from .._secret import scrub

__all__ = ["task_summary", "render_summary"]


def task_summary(results: Any) -> Any:
    """Per task type × target: cells, success rate, mean score, p50/p95 latency, cost per item and per success."""
    import polars as pl

    if results.is_empty():
        return results
    cost = pl.col("cost_usd").cast(pl.Float64)
    return (
        results.group_by("task_type", "target")
        .agg(
            pl.len().alias("n"),
            (pl.col("status") == "ok").mean().alias("success"),
            pl.col("score").mean().alias("quality"),
            pl.col("latency_ms").quantile(0.5).alias("p50_ms"),
            pl.col("latency_ms").quantile(0.95).alias("p95_ms"),
            cost.mean().alias("cost_per_item"),
            pl.when(pl.col("passed").sum() > 0)
            .then(cost.sum() / pl.col("passed").cast(pl.Int64).sum())
            .alias("cost_per_success"),
            cost.null_count().alias("unpriced"),
        )
        .sort("task_type", "target")
    )


def render_summary(table: Any, *, title: str) -> Any:
    """A rich Table of :func:`task_summary` (money in USD, unpriced shown as such)."""
    from rich.table import Table

    out = Table(title=title, show_lines=False)
    for name, justify in (("task type", "left"), ("target", "left"), ("n", "right"), ("success", "right"),
                          ("quality", "right"), ("p50 ms", "right"), ("p95 ms", "right"),
                          ("$ / item", "right"), ("$ / success", "right")):
        out.add_column(name, justify=justify)
    for row in table.iter_rows(named=True):
        unpriced = row["unpriced"] == row["n"]
        out.add_row(
            scrub(row["task_type"]), scrub(row["target"]), str(row["n"]), f"{row['success']:.0%}",
            "—" if row["quality"] is None else f"{row['quality']:.2f}",
            _ms(row["p50_ms"]), _ms(row["p95_ms"]),
            "unpriced" if unpriced else _usd(row["cost_per_item"]),
            "unpriced" if unpriced else _usd(row["cost_per_success"]),
        )
    return out


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _usd(value: float | None) -> str:
    return "—" if value is None else f"{value:.5f}"
