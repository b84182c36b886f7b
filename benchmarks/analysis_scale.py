"""Analysis at scale: summary + recommend, and a fallback-chain replay, on 1,000,000 synthetic attempt rows.

Run: ``python benchmarks/analysis_scale.py [--rows 1000000] [--targets 3] [--runs 3]``.

Targets (issue #6, on the 2-core machine): ``summary_df`` + ``recommend`` ≤ 2 s;
``replay_policy`` of a 3-target fallback chain with 1,000 bootstrap resamples
≤ 5 s. Each is the median of ``--runs`` runs; the same-run baseline is a plain
polars ``group_by(task_type, target)`` mean/quantile over the same frame, and
ratios against it are printed. Summary and recommend are imported lazily and
shown as n/a when not available.

The synthetic run is a ``results_df`` frame: 6 task types; targets in price
tiers (cost per 1M tokens spans ~100x); a few % errors per target; log-normal
latency, TTFT and token counts; scores Bernoulli (exact-match tasks) or Beta
(judged tasks) around a per task × target skill.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

TASKS = ("code", "math", "factual_qa", "classification", "creative", "long_document")
JUDGED = ("creative", "long_document")
# tier: (input $/1M, output $/1M, median latency ms, base skill, error rate)
TIERS = ((0.15, 0.60, 700.0, 0.62, 0.04), (1.10, 4.40, 1400.0, 0.74, 0.02), (10.0, 30.0, 2600.0, 0.85, 0.01),
         (0.07, 0.30, 500.0, 0.55, 0.05), (3.0, 15.0, 1900.0, 0.80, 0.015), (0.70, 0.70, 1100.0, 0.68, 0.03))


def synthetic_results(rows: int, n_targets: int, seed: int = 0) -> Any:
    """A ``results_df``-shaped frame with ``rows`` rows: items × ``n_targets`` targets, one repeat."""
    import numpy as np
    import polars as pl

    from evalkit.runner.schema import result_schema

    rng = np.random.default_rng(seed)
    n_items = -(-rows // n_targets)
    item = np.repeat(np.arange(n_items), n_targets)[:rows]
    target = np.tile(np.arange(n_targets), n_items)[:rows]
    task = rng.integers(0, len(TASKS), n_items)[item]
    tier = np.array([TIERS[t % len(TIERS)] for t in range(n_targets)])
    price_in, price_out, median_ms, skill, error_rate = (tier[:, k][target] for k in range(5))
    # Skill varies by task: each (task, target) pair gets its own offset, so no target wins everything.
    skill = np.clip(skill + rng.normal(0, 0.08, (len(TASKS), n_targets))[task, target], 0.05, 0.98)
    failed = rng.random(rows) < error_rate
    judged = np.isin(task, [TASKS.index(t) for t in JUDGED])
    beta = rng.beta(skill * 8, (1 - skill) * 8)
    score = np.where(judged, np.round(beta * 10) / 10, (rng.random(rows) < skill).astype(float))
    input_tokens = np.round(rng.lognormal(np.log(600), 0.8, rows)).astype(np.int64)
    output_tokens = np.where(failed, 0, np.round(rng.lognormal(np.log(250), 0.6, rows))).astype(np.int64)
    cost = (input_tokens * price_in + output_tokens * price_out) / 1e6 * ~failed
    latency = median_ms * rng.lognormal(0, 0.45, rows) * np.where(failed, 0.3, 1.0)
    kinds = np.array(["rate_limit", "server", "timeout", "overloaded"])[rng.integers(0, 4, rows)]
    names = np.array([f"vendor{t % 3}:model-{t}" for t in range(n_targets)])
    frame = pl.DataFrame({
        "run_id": pl.repeat("bench", rows, eager=True),
        "item_id": pl.Series(item).cast(pl.String),
        "task_type": np.array(TASKS)[task],
        "target": names[target],
        "repeat": np.zeros(rows, dtype=np.int64),
        "status": np.where(failed, "error", "ok"),
        "error_kind": pl.Series(np.where(failed, kinds, "")).replace("", None),
        "latency_ms": latency,
        "ttft_ms": latency * rng.uniform(0.1, 0.4, rows),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": np.zeros(rows, dtype=np.int64),
        "cache_write_tokens": np.zeros(rows, dtype=np.int64),
        "reasoning_tokens": np.zeros(rows, dtype=np.int64),
        "tokens_exact": np.ones(rows, dtype=bool),
        "cost_usd": pl.Series(np.round(cost, 9)).cast(pl.Decimal(38, 12)),
        "score": np.where(failed, np.nan, score),  # errors are not graded: NaN, then null
        "n_attempts": np.ones(rows, dtype=np.int64),
    }).with_columns(pl.col("score").fill_nan(None))
    frame = frame.with_columns((pl.col("score") >= 0.5).alias("passed"))
    schema = result_schema()
    missing = [pl.lit(None, dtype).alias(name) for name, dtype in schema.items() if name not in frame.columns]
    return frame.with_columns(missing).select(list(schema)).cast(schema)


def timed(fn: Callable[[], Any], runs: int) -> float:
    """Median wall seconds of ``runs`` calls."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--targets", type=int, default=3, help="3 to 6; the chain uses the first three")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    import polars as pl

    from evalkit.analysis.replay import Fallback, replay_policy

    start = time.perf_counter()
    frame = synthetic_results(args.rows, max(3, min(6, args.targets)))
    print(f"{frame.height:,} rows, {frame['item_id'].n_unique():,} items, {frame['target'].n_unique()} targets, "
          f"error rate {(frame['status'] == 'error').mean():.1%} (generated in {time.perf_counter() - start:.1f} s)")
    chain = Fallback(tuple(sorted(frame["target"].unique().to_list())[:3]))

    def baseline() -> Any:
        return frame.group_by("task_type", "target").agg(pl.col("score").mean(), pl.col("latency_ms").quantile(0.95))

    summary_df = _optional("evalkit.analysis.summary", "summary_df")
    recommend = _optional("evalkit.analysis.recommend", "recommend")
    base = timed(baseline, args.runs)
    rows = [("baseline: polars group_by mean+p95", base, None)]
    if summary_df is not None and recommend is not None:
        rows.append(("summary_df + recommend", timed(lambda: (summary_df(frame), recommend(frame)), args.runs), 2.0))
    else:
        rows.append(("summary_df + recommend", None, 2.0))
    reports: list[Any] = []
    rows.append((f"replay fallback(3) + {args.boot} resamples",
                 timed(lambda: reports.append(replay_policy(frame, chain, n_boot=args.boot)), args.runs), 5.0))
    print(f"{'measure':<42}{'median s':>10}{'ratio':>9}{'target':>9}  verdict")
    for name, seconds, target in rows:
        if seconds is None:
            print(f"{name:<42}{'n/a':>10}{'':>9}{target:>8.1f}s  n/a (module missing)")
            continue
        verdict = "" if target is None else ("PASS" if seconds <= target else "FAIL")
        target_text = "" if target is None else f"{target:.1f}s"
        print(f"{name:<42}{seconds:>10.3f}{seconds / base:>8.1f}x{target_text:>9}  {verdict}")
    report = reports[-1]
    print(f"replay: {report.n_requests:,} requests, {report.bootstrap} bootstrap; policy quality "
          f"{report.policy.quality:.4f} [{report.policy.quality_low:.4f}, {report.policy.quality_high:.4f}], "
          f"success {report.policy.success_rate:.2%}")


if __name__ == "__main__":
    main()
