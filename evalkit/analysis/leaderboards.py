"""Publishers' own leaderboard metrics, computed from per-item results, and their printed leaderboards.

A results table of per-item grades (:mod:`evalkit.analysis.external` loads the
published ones) is summarised by :func:`evalkit.analysis.summary_df` as a mean
with intervals. Leaderboards print other aggregates; these functions compute
them the publisher's way, so a leaderboard row can be checked digit for digit:

* :func:`alpaca_eval_win_rates` — AlpacaEval 2.0's ``win_rate``,
  ``standard_error``, ``n_wins``, ``n_wins_base``, ``n_draws``, ``n_total``
  and ``discrete_win_rate``;
* :func:`wildbench_scores` — WildBench's ``WB_score``;
* :func:`mt_bench_scores` — MT-Bench's score (mean 1–10 judgment).

:func:`read_alpaca_eval_leaderboard` and :func:`read_wildbench_stats` read the
publishers' files with every number kept as the text they printed, so a
comparison can use the printed precision (:func:`evalkit.analysis.reproduction.printed_tolerance`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["alpaca_eval_win_rates", "mt_bench_scores", "read_alpaca_eval_leaderboard", "read_wildbench_stats",
           "wildbench_scores"]

ALPACA_EVAL_LEADERBOARD = Path("alpaca_eval") / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
WILDBENCH_STATS = Path("wildbench") / "all_stat_wildbench.-1.json"


def _keys(by: str | Sequence[str] | None) -> list[str]:
    return [] if by is None else [by] if isinstance(by, str) else list(by)


def _graded(results: Any) -> Any:
    import polars as pl

    return results.filter(pl.col("score").is_not_null())


def alpaca_eval_win_rates(results: Any, by: str | Sequence[str] | None = "target") -> Any:
    """AlpacaEval 2.0's leaderboard columns from per-instruction scores (``score = preference - 1``).

    ``score`` is the judge's probability that the model beats the baseline
    (:func:`~evalkit.analysis.external.load_alpaca_eval`). Per group of ``by``:
    ``n_total`` graded instructions; ``n_wins`` (score > 0.5), ``n_wins_base``
    (score < 0.5) and ``n_draws`` (exactly 0.5); ``win_rate`` = 100 × mean
    score; ``standard_error`` = 100 × the standard error of that mean (sample
    standard deviation, n − 1, over √n); ``discrete_win_rate`` = 100 ×
    (wins + draws / 2) / n_total. The length-controlled win rate needs
    AlpacaEval's fitted GLM, which per-instruction scores do not carry.
    """
    import polars as pl

    keys = _keys(by)
    score = pl.col("score").cast(pl.Float64)
    aggs = [pl.len().alias("n_total"), (score > 0.5).sum().alias("n_wins"),
            (score < 0.5).sum().alias("n_wins_base"), (score == 0.5).sum().alias("n_draws"),
            (100 * score.mean()).alias("win_rate"),
            (100 * score.std(ddof=1) / pl.len().cast(pl.Float64).sqrt()).alias("standard_error")]
    graded = _graded(results)
    frame = graded.group_by(keys).agg(aggs) if keys else graded.select(aggs)
    discrete = (pl.col("n_wins") + pl.col("n_draws") / 2) / pl.col("n_total") * 100
    return frame.with_columns(discrete.alias("discrete_win_rate")).sort(keys or "n_total")


def _mean_judgment(results: Any, by: str | Sequence[str] | None, scale: float) -> Any:
    import polars as pl

    keys = _keys(by)
    aggs = [pl.len().alias("n"), (pl.col("score").cast(pl.Float64) * scale).mean().alias("mean_judgment")]
    graded = _graded(results)
    frame = graded.group_by(keys).agg(aggs) if keys else graded.select(aggs)
    return frame.sort(keys or "n")


def wildbench_scores(results: Any, by: str | Sequence[str] | None = "target") -> Any:
    """WildBench's ``WB_score`` per group: ``(mean judgment - 5) × 2 × 10``, judgment = ``score`` × 10.

    The judge scores 1–10; WildBench maps 5 to 0 and 10 to 100 (1 → -80), in
    that order of operations (mean first), which is what makes the result
    equal the leaderboard's printed float. Columns: ``by``, ``n``,
    ``mean_judgment``, ``WB_score``.
    """
    import polars as pl

    frame = _mean_judgment(results, by, 10.0)
    return frame.with_columns(((pl.col("mean_judgment") - 5) * 2 * 10).alias("WB_score"))


def mt_bench_scores(results: Any, by: str | Sequence[str] | None = "target") -> Any:
    """MT-Bench's score per group: the mean 1–10 judgment over the graded turns (judgment = ``score`` × 10).

    Columns: ``by``, ``n`` (turns), ``mean_judgment`` (the MT-Bench score).
    """
    return _mean_judgment(results, by, 10.0)


def read_alpaca_eval_leaderboard(shared_data_dir: str | Path) -> Any:
    """AlpacaEval 2.0's leaderboard CSV, every column as the text it prints; the model is ``target``."""
    import polars as pl

    board = pl.read_csv(Path(shared_data_dir) / ALPACA_EVAL_LEADERBOARD, infer_schema=False)
    return board.rename({board.columns[0]: "target"})


def read_wildbench_stats(shared_data_dir: str | Path) -> dict[str, dict[str, str]]:
    """WildBench's ``all_stat`` leaderboard: model → metric → the number as printed (text)."""
    text = (Path(shared_data_dir) / WILDBENCH_STATS).read_text()
    stats: dict[str, dict[str, Any]] = json.loads(text, parse_float=str, parse_int=str)
    return {model: {k: str(v) for k, v in row.items()} for model, row in stats.items()}
