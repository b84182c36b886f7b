"""Interval estimates shared by the summaries, the recommender and the replay.

Wilson score intervals for rates, as plain numbers or polars expressions.
Bootstrap intervals of means live with the summaries (``summary.bootstrap_means``),
which resample every group in one vectorised batch.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["wilson_expr", "wilson_interval", "z_for"]


def z_for(confidence: float) -> float:
    """Two-sided standard normal quantile for a confidence level (0.95 → 1.96)."""
    from statistics import NormalDist

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate; ``(nan, nan)`` when ``n`` is 0 (never divides by zero)."""
    if n <= 0:
        return math.nan, math.nan
    z = z_for(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_expr(successes: Any, n: Any, confidence: float = 0.95) -> tuple[Any, Any]:
    """The Wilson interval as polars expressions (lower, upper) over columns of counts."""
    import polars as pl

    z = z_for(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)).sqrt()) / denom
    safe = pl.when(n > 0)
    return (safe.then((centre - half).clip(0.0, 1.0)).otherwise(None),
            safe.then((centre + half).clip(0.0, 1.0)).otherwise(None))

