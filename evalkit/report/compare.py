"""The baseline comparison: per task type and target, this run minus the baseline run.

Deltas come from the two runs' summaries; significance from
:func:`evalkit.analysis.paired_comparison` on the items both runs answered
(the same item id and repeat), on the ``score`` metric (paired bootstrap).
When the runs share no items the p-value is left empty: unpaired intervals
are in the leaderboards of each run.

A row whose numbers are the same in both runs says nothing a reader can act
on and, repeated for every target, hides the rows that changed:
:func:`collapse_identical` takes them out of the table and names them in one
line (one sentence for the whole section when the baseline is identical).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["collapse_identical", "comparison", "identical"]

_A, _B = "\x00current", "\x00baseline"
_METRICS = ("quality", "success_rate", "cost_per_item", "latency_p50_ms")


def comparison(results: Any, baseline: Any, summary: Any, baseline_summary: Any) -> list[dict[str, Any]]:
    """One dict per (task type, target) present in either run: both values, delta, p-value, pairs."""
    import polars as pl

    keys = ["task_type", "target"]
    # Presence is its own column: a target whose every call failed has no quality but was still run.
    cur = summary.select(*keys, *_METRICS, pl.lit(True).alias("in_current"))
    base = baseline_summary.select(*keys, *(pl.col(m).alias(f"{m}_base") for m in _METRICS),
                                   pl.lit(True).alias("in_baseline"))
    joined = cur.join(base, on=keys, how="full", coalesce=True).sort(keys)
    joined = joined.with_columns(pl.col("in_current", "in_baseline").fill_null(False))
    joined = joined.with_columns((pl.col(m) - pl.col(f"{m}_base")).alias(f"{m}_delta") for m in _METRICS)
    tests = _paired(results, baseline)
    if tests is not None:
        joined = joined.join(tests, on=keys, how="left")
    else:
        joined = joined.with_columns(pl.lit(None, pl.Float64).alias("p_value"),
                                     pl.lit(None, pl.Int64).alias("n_pairs"))
    return joined.to_dicts()


def _paired(results: Any, baseline: Any) -> Any:
    """p-value and pair count per (task type, target) shared by both runs; None when nothing is shared."""
    import polars as pl

    from ..analysis import paired_comparison

    shared = sorted(set(results.get_column("target").unique().to_list())
                    & set(baseline.get_column("target").unique().to_list()))
    frames = []
    for target in shared:
        # The same target in two runs: relabel each side so paired_comparison sees two targets.
        both = pl.concat([
            results.filter(pl.col("target") == target).with_columns(pl.lit(_A).alias("target")),
            baseline.filter(pl.col("target") == target).with_columns(pl.lit(_B).alias("target")),
        ], how="vertical_relaxed")
        tests = paired_comparison(both, _A, _B, metric="score", by="task_type", n_boot=1000)
        if tests.height:
            frames.append(tests.select("task_type", pl.lit(target).alias("target"),
                                       pl.col("n_pairs").cast(pl.Int64), "p_value"))
    return pl.concat(frames) if frames else None


def identical(row: dict[str, Any]) -> bool:
    """Whether a comparison row is in both runs with the same quality, success, cost per item and p50 latency.

    Equal up to float noise (a mean over the same rows in another order may
    differ in its last bits); a value missing in both runs counts as the same.
    """
    if not (row.get("in_current") and row.get("in_baseline")):
        return False
    for metric in _METRICS:
        a, b = row.get(metric), row.get(f"{metric}_base")
        if (a is None) != (b is None):
            return False
        if a is not None and not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12):
            return False
    return True


def collapse_identical(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The comparison as the page shows it: rows that changed, and the identical ones grouped per target.

    ``all_identical`` is true when every row of both runs is identical (same
    task types, targets and numbers): the page then says so in one line.
    ``same`` maps each target with identical rows to their task types, or to
    ``None`` when all of that target's task types are identical.
    """
    same = [r for r in rows if identical(r)]
    changed = [r for r in rows if not identical(r)]
    tasks_of: dict[str, list[str]] = {}
    same_tasks: dict[str, list[str]] = {}
    for r in rows:
        tasks_of.setdefault(r["target"], []).append(r["task_type"])
    for r in same:
        same_tasks.setdefault(r["target"], []).append(r["task_type"])
    # None stands for "every task type of this target", the common case when a target did not change.
    grouped = {t: None if len(tasks) == len(tasks_of[t]) else tasks for t, tasks in sorted(same_tasks.items())}
    return {"rows": changed, "same": grouped, "n_same": len(same), "all_identical": bool(rows) and not changed}
