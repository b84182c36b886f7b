"""The replay's input: recorded results as one row per request with each target's outcome side by side.

A *request* is an ``(item_id, repeat)`` pair: repeats are independent samples,
so each is replayed as its own request. Per target the replay needs four
things, stored in the wide frame as ``ok{i}``, ``score{i}``, ``cost{i}`` and
``lat{i}`` for the ``i``-th target:

* ``ok``: ``status == "ok"`` (no ``status`` column: a row with a score answered);
* ``score``: the quality metric (``score`` or ``passed``); 0 when the call
  failed, and 0 for an answer that was not graded (nothing gradable came back);
* ``cost``: ``cost_usd`` as Float64 (Decimal is cast: aggregates are floats),
  null when unpriced, never 0 for unknown;
* ``lat``: ``latency_ms`` (null when not recorded).

Only requests that every needed target answered or failed on are replayed;
the rest are counted as dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["REQUEST_KEY", "normalise", "wide_frame"]

REQUEST_KEY = ("item_id", "repeat")


def normalise(results: Any, attempts: Any = None, *, metric: str = "score",
              extra_columns: Sequence[str] = ()) -> Any:
    """``results`` (a frame or a run directory) as item_id, repeat, task_type, target, ok, score, cost, lat.

    With ``attempts`` (``attempts_df`` of the same run), each target's outcome
    is its *first* attempt only, as if no target were retried: ok when that
    attempt served, its cost and latency (a failed attempt costs 0 when its cost
    is unknown, as the runner records failed cells: failed calls are not billed).
    Cells of router targets (whose attempts went to other targets) keep their row.
    """
    import polars as pl

    if isinstance(results, (str, Path)):
        from ..runner import results_df

        results = results_df(results)
    frame = results.lazy() if isinstance(results, pl.DataFrame) else results
    names = frame.collect_schema().names()
    for needed in ("item_id", "target", metric):
        if needed not in names:
            raise ValueError(f"results need a {needed!r} column")
    missing = [c for c in extra_columns if c not in names]
    if missing:
        raise ValueError(f"results have no column {missing[0]!r} (named by a Threshold policy)")
    ok = pl.col("status") == "ok" if "status" in names else pl.col(metric).is_not_null()
    frame = frame.select(
        pl.col("item_id").cast(pl.String),
        (pl.col("repeat").cast(pl.Int64) if "repeat" in names else pl.lit(0, pl.Int64)).alias("repeat"),
        (pl.col("task_type").cast(pl.String) if "task_type" in names else pl.lit("default")).alias("task_type"),
        pl.col("target").cast(pl.String),
        ok.fill_null(False).alias("ok"),
        pl.col(metric).cast(pl.Float64).alias("_metric"),
        (pl.col("cost_usd").cast(pl.Float64) if "cost_usd" in names else pl.lit(None, pl.Float64)).alias("cost"),
        (pl.col("latency_ms").cast(pl.Float64) if "latency_ms" in names else pl.lit(None, pl.Float64)).alias("lat"),
        *[pl.col(c) for c in extra_columns],
    ).unique(subset=[*REQUEST_KEY, "target"], keep="first", maintain_order=True)
    if attempts is not None:
        frame = _first_attempts(frame, attempts)
    return frame.with_columns(
        pl.when(pl.col("ok")).then(pl.col("_metric").fill_null(0.0)).otherwise(0.0).alias("score"),
    ).drop("_metric").collect()


def _first_attempts(frame: Any, attempts: Any) -> Any:
    import polars as pl

    if isinstance(attempts, (str, Path)):
        from ..runner import attempts_df

        attempts = attempts_df(attempts)
    first = attempts.lazy().filter((pl.col("attempt") == 0) & (pl.col("target") == pl.col("attempt_target")))
    first = first.select(
        pl.col("item_id").cast(pl.String), pl.col("repeat").cast(pl.Int64), pl.col("target"),
        (pl.col("error_kind").is_null() & pl.col("sent").fill_null(True)).alias("_first_ok"),
        pl.col("cost_usd").cast(pl.Float64).alias("_first_cost"),
        pl.col("latency_ms").cast(pl.Float64).alias("_first_lat"),
    ).unique(subset=[*REQUEST_KEY, "target"], keep="first")
    joined = frame.join(first, on=[*REQUEST_KEY, "target"], how="left", maintain_order="left")
    has_first = pl.col("_first_ok").is_not_null()
    first_failed = has_first & ~pl.col("_first_ok")
    return joined.with_columns(
        pl.when(has_first).then(pl.col("_first_ok")).otherwise(pl.col("ok")).alias("ok"),
        pl.when(first_failed).then(pl.col("_first_cost").fill_null(0.0))
        .when(has_first).then(pl.col("_first_cost")).otherwise(pl.col("cost")).alias("cost"),
        pl.when(has_first).then(pl.col("_first_lat")).otherwise(pl.col("lat")).alias("lat"),
    ).drop("_first_ok", "_first_cost", "_first_lat")


def wide_frame(frame: Any, targets: Sequence[str], extra_columns: Sequence[str] = ()) -> tuple[Any, int]:
    """One row per request (in first-seen order) with every target's outcome; and how many were dropped.

    Columns: ``_req`` (0..n-1), item_id, repeat, task_type, the extra columns,
    then ``ok{i}``, ``score{i}``, ``cost{i}``, ``lat{i}`` for ``targets[i]``.
    """
    import polars as pl

    known = set(frame.get_column("target").unique().to_list())
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise ValueError(f"no results for target {unknown[0]!r}; the results have {', '.join(sorted(known))}")
    requests = frame.lazy().select(*REQUEST_KEY, "task_type", *extra_columns) \
        .unique(subset=list(REQUEST_KEY), keep="first", maintain_order=True)
    total = requests.select(pl.len()).collect().item()
    lazy = frame.lazy()
    wide = requests
    for i, target in enumerate(targets):
        part = lazy.filter(pl.col("target") == target).select(
            *REQUEST_KEY, pl.col("ok").alias(f"ok{i}"), pl.col("score").alias(f"score{i}"),
            pl.col("cost").alias(f"cost{i}"), pl.col("lat").alias(f"lat{i}"))
        wide = wide.join(part, on=list(REQUEST_KEY), how="inner", maintain_order="left")
    wide = wide.with_row_index("_req").collect()
    return wide, total - wide.height
