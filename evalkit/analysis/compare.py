"""Paired comparison of two targets on the same items: is the difference real, and how big is it?

Pairs are the (item_id, repeat) cells both targets answered and were graded
on (rows whose metric is null — errors, ungraded — are left out; ``n_pairs``
says how many remain). Pairing removes the item-difficulty variance that
makes two independent intervals overlap when one target is in fact better on
nearly every item.

* ``metric="passed"`` (binary): McNemar's exact test — a two-sided binomial
  test of the discordant pairs (a passed and b failed vs the reverse) against
  1/2 (``scipy.stats.binomtest``); p = 1 when there are no discordant pairs.
* ``metric="score"``: paired bootstrap of the per-pair differences; the
  p-value resamples the differences re-centred on 0 (the null of no mean
  difference) and counts resampled means at least as far from 0 as the
  observed one: ``(1 + #{|m*| ≥ |d̄|}) / (1 + n_boot)``. Groups of
  ``BOOTSTRAP_MAX_N`` pairs or more with many distinct differences use the
  normal approximation (a paired z-test) instead.

Both report the effect ``diff = mean_a - mean_b`` with a percentile-bootstrap
interval over pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .summary import BOOTSTRAP_MAX_N, bootstrap_means, value_counts

__all__ = ["paired_comparison"]

_METRICS = ("passed", "score")


def paired_comparison(results: Any, target_a: str, target_b: str, *, metric: str = "passed",
                      by: str | Sequence[str] | None = "task_type", n_boot: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> Any:
    """Per group of ``by`` (None: one overall row), compare ``target_a`` with ``target_b``.

    Columns: the ``by`` keys, ``metric``, ``test`` ("mcnemar_exact", "paired_bootstrap" or
    "paired_z"), ``n_pairs``, ``mean_a``, ``mean_b``, ``diff`` (a - b), ``diff_low``,
    ``diff_high``, ``a_better`` / ``b_better`` (pairs where one scored higher) and ``p_value``.
    """
    import polars as pl

    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    if "target" in keys:
        raise ValueError("by cannot include 'target': the two targets are what is compared")
    pairs = _pairs(results, target_a, target_b, metric, keys)
    diff = pl.col("a") - pl.col("b")
    aggregations = [
        pl.len().alias("n_pairs"), pl.col("a").mean().alias("mean_a"), pl.col("b").mean().alias("mean_b"),
        diff.mean().alias("diff"), diff.std().alias("_diff_sd"),
        (diff > 0).sum().alias("a_better"), (diff < 0).sum().alias("b_better")]
    summary = pairs.group_by(keys).agg(aggregations) if keys else pairs.select(aggregations)
    summary = summary.filter(pl.col("n_pairs") > 0)
    columns = [*keys, "metric", "test", "n_pairs", "mean_a", "mean_b", "diff", "diff_low", "diff_high",
               "a_better", "b_better", "p_value"]
    if summary.height == 0:  # no item both targets answered: nothing to compare
        empty = summary.with_columns(pl.lit(None, pl.Float64).alias(c) for c in ("diff_low", "diff_high",
                                                                             "p_value"))
        return empty.with_columns(pl.lit(metric).alias("metric"), pl.lit(None, pl.String).alias("test")
                                  ).select(columns)
    tests = _tests(pairs.with_columns(diff.alias("d")), summary, keys, metric, n_boot, seed, confidence)
    out = summary.join(tests, on=keys, how="left", nulls_equal=True) if keys else pl.concat(
        [summary, tests], how="horizontal")
    out = out.with_columns(pl.lit(metric).alias("metric"))
    return (out.sort(keys) if keys else out).select(columns)


def _pairs(results: Any, target_a: str, target_b: str, metric: str, keys: list[str]) -> Any:
    import polars as pl

    def side(target: str, name: str) -> Any:
        return (results.lazy().filter(pl.col("target") == target)
                .select(*keys, "item_id", "repeat", pl.col(metric).cast(pl.Float64).alias(name)))

    joined = side(target_a, "a").join(side(target_b, "b"), on=[*keys, "item_id", "repeat"], how="inner",
                                       nulls_equal=True)
    return joined.drop_nulls(["a", "b"]).collect()


def _tests(pairs: Any, summary: Any, keys: list[str], metric: str, n_boot: int, seed: int,
           confidence: float) -> Any:
    """diff_low, diff_high, p_value, test per group (a loop over groups, numpy inside)."""
    import numpy as np
    import polars as pl
    from scipy.stats import binomtest, norm

    from .stats import z_for

    groups = value_counts(pairs, keys, "d")
    stats = groups.join(summary, on=keys, how="left", nulls_equal=True) if keys else pl.concat(
        [groups, summary], how="horizontal")
    alpha = (1 - confidence) / 2
    rows = []
    for row in stats.iter_rows(named=True):
        values, counts = np.asarray(row["values"], float), np.asarray(row["counts"], np.int64)
        n, observed = int(counts.sum()), float(row["diff"])
        if metric == "score" and n >= BOOTSTRAP_MAX_N and len(values) * 20 > n:
            # Many distinct differences in a large group: resampling costs n_boot × n for an
            # answer the normal approximation already gives to ~1e-3.
            half = z_for(confidence) * (row["_diff_sd"] or 0.0) / np.sqrt(n)
            z = observed / (row["_diff_sd"] / np.sqrt(n)) if row["_diff_sd"] else 0.0
            rows.append((observed - half, observed + half, float(2 * norm.sf(abs(z))), "paired_z"))
            continue
        means = bootstrap_means(values, counts, n_boot, seed)
        low, high = np.quantile(means, [alpha, 1 - alpha])
        if metric == "passed":
            discordant = row["a_better"] + row["b_better"]
            p = binomtest(row["a_better"], discordant, 0.5).pvalue if discordant else 1.0
            rows.append((float(low), float(high), float(p), "mcnemar_exact"))
        else:
            extreme = np.count_nonzero(np.abs(means - observed) >= abs(observed) - 1e-12)
            rows.append((float(low), float(high), (1 + extreme) / (1 + n_boot), "paired_bootstrap"))
    tests = pl.DataFrame(rows, schema={"diff_low": pl.Float64, "diff_high": pl.Float64,
                                       "p_value": pl.Float64, "test": pl.String}, orient="row")
    return pl.concat([stats.select(keys), tests], how="horizontal") if keys else tests
