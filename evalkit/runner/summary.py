"""What ``evalkit run`` prints at the end: the per-task-type table, and the top error kinds when cells failed."""

from __future__ import annotations

from typing import Any

from .._secret import scrub

__all__ = ["SAMPLE_CHARS", "error_summary", "render_errors", "render_summary", "task_summary"]


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


_NUMBER_COLUMNS = ("n", "success", "quality", "p50 ms", "p95 ms", "$ / item", "$ / success")


def render_summary(table: Any, *, title: str) -> Any:
    """A rich renderable of :func:`task_summary` (money in USD, unpriced shown as such).

    Where the console is wide enough it is one boxed table, a row per task
    type × target. Where it is not (an 80-column terminal), the task types
    become group headings above their targets: a target's name is never cut
    (a long one folds onto a second line), so rows never collapse into
    identical ``opena…`` stubs, and no number is cut either.
    """
    rows = [(scrub(row["task_type"]), scrub(row["target"]), _cells(row)) for row in table.iter_rows(named=True)]
    return _TaskTable(rows, title)


def _cells(row: dict[str, Any]) -> list[str]:
    unpriced = row["unpriced"] == row["n"]
    return [str(row["n"]), f"{row['success']:.0%}",
            "—" if row["quality"] is None else f"{row['quality']:.2f}",
            _ms(row["p50_ms"]), _ms(row["p95_ms"]),
            "unpriced" if unpriced else _usd(row["cost_per_item"]),
            "unpriced" if unpriced else _usd(row["cost_per_success"])]


class _TaskTable:
    """:func:`render_summary`'s renderable: it picks its layout from the width it is given."""

    def __init__(self, rows: list[tuple[str, str, list[str]]], title: str) -> None:
        self.rows, self.title = rows, title

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        wide = self.wide()
        natural = Measurement.get(console, options.update_width(10_000), wide).maximum
        yield wide if natural <= options.max_width else self.grouped(options.max_width)

    def wide(self) -> Any:
        """One boxed row per task type × target."""
        from rich.table import Table
        from rich.text import Text

        out = Table(title=Text(self.title, style="table.title"), show_lines=False)
        out.add_column("task type")
        out.add_column("target")
        for name in _NUMBER_COLUMNS:
            out.add_column(name, justify="right")
        for task_type, target, cells in self.rows:
            out.add_row(Text(task_type), Text(target), *cells)
        return out

    def grouped(self, width: int) -> Any:
        """Task types as headings over their targets, no vertical rules: the layout for ``width`` columns.

        Each number column is as wide as its longest value (its heading wraps
        onto two lines instead), and the name column gets the rest: a name
        longer than that folds onto the next line rather than being cut.
        """
        from rich import box
        from rich.table import Table
        from rich.text import Text

        out = Table(title=Text(self.title, style="table.title"), box=box.SIMPLE_HEAD, show_edge=False,
                    pad_edge=False, collapse_padding=True)
        widths = [max([len(word) for word in name.split()] + [len(cells[i]) for _, _, cells in self.rows])
                  for i, name in enumerate(_NUMBER_COLUMNS)]
        longest = max([len(name) for task_type, target, _ in self.rows for name in (task_type, target)],
                      default=len("target"))
        room = width - sum(widths) - _GAP * len(widths)  # what the name column can have
        out.add_column("task type / target", overflow="fold", width=max(min(longest, room), _MIN_NAME_WIDTH))
        for name, column_width in zip(_NUMBER_COLUMNS, widths):
            out.add_column(name, justify="right", width=column_width)
        heading = None
        for task_type, target, cells in self.rows:
            if task_type != heading:
                heading = task_type
                out.add_row(Text(task_type, style="bold"))
            out.add_row(Text(target), *cells)
        return out


_GAP = 2  # columns between two cells of the grouped layout: a blank rule and one space of padding
_MIN_NAME_WIDTH = 12


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _usd(value: float | None) -> str:
    return "—" if value is None else f"{value:.5f}"


SAMPLE_CHARS = 120
"""How much of one error message :func:`error_summary` keeps as the sample of its kind."""


def error_summary(results: Any, attempts: Any = None, *, top: int = 3) -> Any:
    """The ``top`` error kinds of each target's failed cells, with one sample message each.

    ``results`` is a ``results_df`` (one row per cell). One row per target ×
    error kind, targets with the most failed cells first, then their kinds by
    count: ``cells`` failed with that kind, ``share`` of the target's cells,
    ``attempts`` (failed attempts of that kind, retried ones included, from
    ``attempts``, an ``attempts_df``; null without it), ``sample`` (the first
    such cell's message, scrubbed of keys, on one line and clipped to
    :data:`SAMPLE_CHARS`), and the target's ``target_failed`` cells of its
    ``target_cells`` and ``target_failed_attempts`` (every kind, cells that
    were answered in the end included; null without ``attempts``). A failed
    cell with no kind counts as ``unknown``. Empty when no cell failed.
    """
    import polars as pl

    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    failed = pl.col("status") != "ok"
    per_target = results.group_by("target").agg(pl.len().cast(pl.Int64).alias("target_cells"),
                                                failed.sum().cast(pl.Int64).alias("target_failed"))
    failed_attempts = _failed_attempts(attempts)
    per_target = per_target.join(failed_attempts.group_by("target").agg(
        pl.col("attempts").sum().alias("target_failed_attempts")), on="target", how="left")
    if attempts is not None:  # a target none of whose attempts failed: 0, not unknown
        per_target = per_target.with_columns(pl.col("target_failed_attempts").fill_null(0))
    kinds = (results.filter(failed)
             .with_columns(pl.col("error_kind").fill_null("unknown"))
             .group_by("target", "error_kind", maintain_order=True)
             .agg(pl.len().cast(pl.Int64).alias("cells"), pl.col("error").drop_nulls().first().alias("sample")))
    kinds = kinds.join(failed_attempts, on=["target", "error_kind"], how="left")
    table = (kinds.join(per_target, on="target")
             .with_columns((pl.col("cells") / pl.col("target_cells")).alias("share"),
                           pl.coalesce("attempt_sample", "sample").alias("sample"))
             .sort(["target_failed", "target", "cells", "error_kind"], descending=[True, False, True, False])
             .filter(pl.int_range(pl.len()).over("target") < top))
    samples = pl.Series("sample", [_one_line(text) for text in table["sample"]], dtype=pl.String)
    return table.with_columns(samples).select("target", "error_kind", "cells", "share", "attempts", "sample",
                                              "target_failed", "target_cells", "target_failed_attempts")


def _failed_attempts(attempts: Any) -> Any:
    """Per target × error kind: the sent attempts that failed, and the first one's message."""
    import polars as pl

    columns = {"target": pl.String, "error_kind": pl.String, "attempts": pl.Int64, "attempt_sample": pl.String}
    if attempts is None:
        return pl.DataFrame(schema=columns)
    # A cell asked again (--retry-failed) carries its earlier attempts in its new row: count each position once.
    failed = (attempts.filter(pl.col("sent").fill_null(True) & pl.col("error_kind").is_not_null())
              .unique(subset=["item_id", "target", "repeat", "attempt"], keep="first", maintain_order=True))
    return (failed.group_by("target", "error_kind", maintain_order=True)
            .agg(pl.len().cast(pl.Int64).alias("attempts"),
                 # The vendor's own text (a router's cell error only summarises its attempts).
                 pl.col("error").drop_nulls().last().alias("attempt_sample"))
            .cast(columns))


def _one_line(text: str | None) -> str | None:
    """``text`` scrubbed of secret values (before cutting: half a key is still a leak), on one line, clipped."""
    if text is None:
        return None
    flat = " ".join(scrub(text).split())
    return flat if len(flat) <= SAMPLE_CHARS else flat[:SAMPLE_CHARS - 1] + "…"


def render_errors(table: Any) -> Any:
    """A rich Table of :func:`error_summary`: each target's failed cells, then its top kinds with a sample.

    The ``attempts`` column is shown only when the table has attempt counts.
    Messages are plain text: ``[server 500]`` in one is not rich markup.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    with_attempts = table.height > 0 and table["attempts"].null_count() < table.height
    out = Table(title="failed cells: the top error kinds per target", box=box.SIMPLE_HEAD, show_edge=False,
                pad_edge=False, collapse_padding=True)
    out.add_column("target / error kind", overflow="fold", max_width=40)
    out.add_column("cells", justify="right", no_wrap=True)
    out.add_column("share", justify="right", no_wrap=True)
    if with_attempts:
        out.add_column("failed attempts", justify="right", max_width=8)
    out.add_column("sample message", overflow="fold")
    target = None
    for row in table.iter_rows(named=True):
        attempts = [_count(row["attempts"])] if with_attempts else []
        if row["target"] != target:
            target = row["target"]
            share = f"{row['target_failed'] / row['target_cells']:.0%}"
            out.add_row(Text(scrub(target), style="bold"), str(row["target_failed"]), share,
                        *([_count(row["target_failed_attempts"])] if with_attempts else []),
                        Text(f"of its {row['target_cells']} cells failed", style="italic"))
        out.add_row(Text(f"  {row['error_kind']}"), str(row["cells"]), f"{row['share']:.0%}", *attempts,
                    Text(row["sample"] or "—"))
    return out


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
