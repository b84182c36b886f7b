"""Per task type × target summaries of a results table, with intervals; pass@k and pass^k.

Input is ``results_df`` (one row per item × target × repeat, see
:mod:`evalkit.runner.schema`) or anything with the same columns, e.g. the
output of :func:`evalkit.analysis.external.load_results_table`.

Definitions used by :func:`summary_df` (per group):

* **success** — ``status == "ok"``; rate with a Wilson interval.
* **quality** — mean ``score`` over graded rows (errors have no score, so
  quality is conditional on an answer) with a percentile-bootstrap interval,
  or the CLT interval ``mean ± z·sd/√n`` (clipped to the observed range) for
  groups of ``BOOTSTRAP_MAX_N`` or more graded rows, where both agree to
  ~1e-3. Resampling costs ``n_boot × n`` draws (``n_boot × distinct values``
  binomials when scores take few values), so the bootstrap goes to the
  cheapest groups first until ``BOOTSTRAP_BUDGET`` draws are spent; the rest
  get the CLT interval. ``quality_method`` says which one each row got.
* **pass rate** — ``passed`` over graded rows, Wilson interval.
* **latency** — percentiles over every row, errors included: a caller waits
  for a failure too. TTFT percentiles over the rows that have one.
* **tokens** — per category, the total and the mean per item; null when any
  row's count is missing (unknown is not 0).
* **cost** — ``cost_usd`` is summed as a Decimal (``cost_usd_total``) and is
  null when any row is unpriced (``unpriced`` counts them); the per-item and
  per-success ratios are Float64 (arithmetic on a summed Decimal).
  ``cost_per_success`` = total cost / number of passed rows, null when nothing
  passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .stats import wilson_expr, z_for

__all__ = ["BOOTSTRAP_BUDGET", "BOOTSTRAP_MAX_N", "bootstrap_means", "pass_at_k", "pass_hat_k", "summary_df"]

BOOTSTRAP_MAX_N = 5000
"""Groups with at least this many values get the CLT interval instead of a bootstrap."""

BOOTSTRAP_BUDGET = 100_000_000
"""Resampled draws one summary may spend on bootstraps (≈0.5 s); later groups fall back to CLT."""

# A multinomial resample costs about one binomial per distinct value, ~20 index draws each.
_BINOMIAL_COST = 20

TOKEN_COLUMNS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                 "reasoning_tokens")


def summary_df(results: Any, *, by: str | Sequence[str] = ("task_type", "target"),
               confidence: float = 0.95, n_boot: int = 1000, seed: int = 0) -> Any:
    """One row per group of ``by``: counts, rates and intervals, latency, tokens, cost, error kinds.

    The columns are described in this module's docstring; the output is sorted by ``by``.
    """
    import polars as pl

    keys = _keys(by)
    stats = results.lazy().group_by(keys).agg(_aggregations()).collect()
    stats = stats.with_columns(_derived_columns(confidence))
    stats = stats.join(_quality_bounds(results, stats, keys, confidence, n_boot, seed),
                       on=keys, how="left", nulls_equal=True)
    stats = stats.join(_error_kinds(results, keys), on=keys, how="left", nulls_equal=True)
    stats = stats.with_columns(pl.col("error_kinds").fill_null(""))
    return stats.select(keys + _output_columns()).sort(keys)


def _keys(by: str | Sequence[str]) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def _aggregations() -> list[Any]:
    import polars as pl

    latency, ttft = pl.col("latency_ms"), pl.col("ttft_ms")
    cost = pl.col("cost_usd")
    unpriced = cost.null_count()
    tokens = [pl.when(pl.col(c).null_count() == 0).then(pl.col(c).sum()).alias(f"{c}_total")
              for c in TOKEN_COLUMNS]
    return [
        pl.len().alias("n"),
        (pl.col("status") == "ok").sum().alias("successes"),
        pl.col("score").count().alias("graded"),
        pl.col("score").mean().alias("quality"),
        pl.col("score").std().alias("_quality_sd"),
        pl.col("score").drop_nulls().n_unique().alias("_quality_distinct"),
        pl.col("score").min().alias("_quality_min"),
        pl.col("score").max().alias("_quality_max"),
        pl.col("passed").count().alias("_pass_graded"),
        pl.col("passed").sum().alias("passed"),
        latency.quantile(0.5, "linear").alias("latency_p50_ms"),
        latency.quantile(0.95, "linear").alias("latency_p95_ms"),
        latency.quantile(0.99, "linear").alias("latency_p99_ms"),
        ttft.quantile(0.5, "linear").alias("ttft_p50_ms"),
        ttft.quantile(0.95, "linear").alias("ttft_p95_ms"),
        *tokens,
        # Unpriced is never 0: one unpriced row makes the group's total unknown.
        pl.when(unpriced == 0).then(cost.sum()).alias("cost_usd_total"),
        unpriced.alias("unpriced"),
    ]


def _derived_columns(confidence: float) -> list[Any]:
    import polars as pl

    n, successes = pl.col("n"), pl.col("successes")
    graded_pass, passed = pl.col("_pass_graded"), pl.col("passed")
    success_low, success_high = wilson_expr(successes, n, confidence)
    pass_low, pass_high = wilson_expr(passed, graded_pass, confidence)
    has_graded_pass = graded_pass > 0
    total = pl.col("cost_usd_total").cast(pl.Float64)
    per_item = [(pl.col(f"{c}_total") / n).alias(f"{c}_per_item") for c in TOKEN_COLUMNS]
    return [
        (successes / n).alias("success_rate"),
        success_low.alias("success_low"),
        success_high.alias("success_high"),
        pl.when(has_graded_pass).then(passed / graded_pass).alias("pass_rate"),
        pl.when(has_graded_pass).then(pass_low).alias("pass_low"),
        pl.when(has_graded_pass).then(pass_high).alias("pass_high"),
        *per_item,
        (total / n).alias("cost_per_item"),
        pl.when(passed > 0).then(total / passed).alias("cost_per_success"),
    ]


def _output_columns() -> list[str]:
    tokens = [f"{c}_{suffix}" for c in TOKEN_COLUMNS for suffix in ("total", "per_item")]
    return ["n", "successes", "success_rate", "success_low", "success_high",
            "graded", "quality", "quality_low", "quality_high", "quality_method",
            "passed", "pass_rate", "pass_low", "pass_high",
            "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "ttft_p95_ms",
            *tokens, "cost_usd_total", "cost_per_item", "cost_per_success", "unpriced", "error_kinds"]


def _quality_bounds(results: Any, stats: Any, keys: list[str], confidence: float, n_boot: int,
                    seed: int) -> Any:
    """quality_low / quality_high / quality_method per group with graded rows."""
    import polars as pl

    graded = stats.filter(pl.col("graded") > 0).with_columns(
        (pl.min_horizontal("graded", pl.col("_quality_distinct") * _BINOMIAL_COST) * n_boot)
        .alias("_draws"))
    # Cheapest groups first: they are also the smallest, where CLT is least trustworthy.
    candidates = graded.filter(pl.col("graded") < BOOTSTRAP_MAX_N).sort("_draws")
    chosen = candidates.filter(pl.col("_draws").cum_sum() <= BOOTSTRAP_BUDGET).select(keys)
    boot = _bootstrap_bounds(results.join(chosen, on=keys, how="semi", nulls_equal=True), keys,
                             confidence, n_boot, seed)
    half = z_for(confidence) * pl.col("_quality_sd").fill_null(0.0) / pl.col("graded").sqrt()
    low, high = pl.col("_quality_min"), pl.col("_quality_max")
    clt = graded.join(chosen, on=keys, how="anti", nulls_equal=True).select(
        *keys,
        (pl.col("quality") - half).clip(low, high).alias("quality_low"),
        (pl.col("quality") + half).clip(low, high).alias("quality_high"),
        pl.lit("clt").alias("quality_method"))
    return pl.concat([clt, boot.cast(clt.schema)], how="vertical")


def _bootstrap_bounds(rows: Any, keys: list[str], confidence: float, n_boot: int, seed: int) -> Any:
    import numpy as np
    import polars as pl

    groups = value_counts(rows, keys, "score")
    alpha = (1 - confidence) / 2
    lows, highs = [], []
    # One numpy batch per group (groups are few; rows never enter Python one by one).
    for values, counts in zip(groups["values"].to_list(), groups["counts"].to_list()):
        means = bootstrap_means(np.asarray(values, float), np.asarray(counts, np.int64), n_boot, seed)
        low, high = np.quantile(means, [alpha, 1 - alpha])
        lows.append(float(low))
        highs.append(float(high))
    return groups.select(keys).with_columns(pl.Series("quality_low", lows, pl.Float64),
                                            pl.Series("quality_high", highs, pl.Float64),
                                            pl.lit("bootstrap").alias("quality_method"))


def value_counts(rows: Any, keys: list[str], column: str) -> Any:
    """Per group of ``keys``: the distinct non-null values of ``column`` and their counts (lists)."""
    import polars as pl

    # Sorted values: group_by order is arbitrary, and the bootstrap draws depend on the order.
    counted = (rows.lazy().drop_nulls(column).group_by([*keys, column]).agg(pl.len().alias("n"))
               .sort([*keys, column]))
    if not keys:
        return counted.select(pl.col(column).implode().alias("values"),
                              pl.col("n").implode().alias("counts")).collect()
    lists = [pl.col(column).alias("values"), pl.col("n").alias("counts")]
    return counted.group_by(keys, maintain_order=True).agg(lists).collect()


def bootstrap_means(values: Any, counts: Any, n_boot: int, seed: int) -> Any:
    """``n_boot`` bootstrap means of the sample that has ``counts[i]`` copies of ``values[i]``.

    With few distinct values (graded pass/fail, 1–10 judgments) a resample is a
    multinomial draw of the counts — exact and independent of the sample size;
    otherwise indices are resampled. Each call seeds its own generator, so a
    group's interval does not depend on which other groups exist.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(counts.sum())
    if len(values) == 1:
        return np.full(n_boot, float(values[0]))
    if len(values) * 20 <= n:
        return rng.multinomial(n, counts / n, size=n_boot) @ values / n
    sample = np.repeat(values, counts)
    return sample[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)


def _error_kinds(results: Any, keys: list[str]) -> Any:
    """"kind:count, kind:count" per group, most frequent first (errors without a kind: "unknown")."""
    import polars as pl

    kind = pl.col("error_kind").fill_null("unknown")
    counted = (results.lazy().filter(pl.col("status") != "ok").group_by([*keys, kind]).agg(pl.len())
               .sort([*keys, "len", "error_kind"], descending=[*([False] * len(keys)), True, False])
               .group_by(keys, maintain_order=True)
               .agg(pl.format("{}:{}", "error_kind", "len").str.join(", ").alias("error_kinds")))
    return counted.collect()


def pass_at_k(results: Any, k: int, *, by: str | Sequence[str] = ("task_type", "target")) -> Any:
    """pass@k per group: the chance that at least one of k repeats of an item passes.

    Unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
    Trained on Code"), per item with n repeats of which c passed:
    ``1 - C(n-c, k) / C(n, k)``, then averaged over items. Ungraded repeats
    (errors) count as not passed; items with fewer than k repeats are left out
    (``items`` says how many were used).
    """
    return _repeat_estimate(results, k, _keys(by), "pass_at_k")


def pass_hat_k(results: Any, k: int, *, by: str | Sequence[str] = ("task_type", "target")) -> Any:
    """pass^k per group: the chance that all k repeats of an item pass (Yao et al. 2024, τ-bench).

    Unbiased per-item estimator ``C(c, k) / C(n, k)``, averaged over items;
    same conventions as :func:`pass_at_k`.
    """
    return _repeat_estimate(results, k, _keys(by), "pass_hat_k")


def _repeat_estimate(results: Any, k: int, keys: list[str], name: str) -> Any:
    import polars as pl

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    per_item = (results.lazy().group_by([*keys, "item_id"])
                .agg(pl.len().alias("n"), pl.col("passed").fill_null(False).sum().alias("c")))
    n, c = pl.col("n").cast(pl.Float64), pl.col("c").cast(pl.Float64)
    # C(a, k) / C(n, k) = Π_{i<k} (a - i) / (n - i): a factor hits 0 once a < k, so no
    # special case and no overflow, unlike the binomials themselves.
    top = c if name == "pass_hat_k" else n - c
    ratio = pl.lit(1.0)
    for i in range(k):
        ratio = ratio * (top - i) / (n - i)
    estimate = ratio if name == "pass_hat_k" else 1 - ratio
    usable = pl.col("n") >= k
    out = (per_item.group_by(keys).agg(usable.sum().alias("items"),
                                       estimate.filter(usable).mean().alias(name))
           .with_columns(pl.lit(k).alias("k")).collect())
    return out.select(*keys, "k", "items", name).sort(keys)
