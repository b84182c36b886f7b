"""Analysis of recorded runs: summaries with intervals, frontiers, recommendations, policy replay."""

from __future__ import annotations

from .stats import bootstrap_mean_interval, wilson_interval

__all__ = ["bootstrap_mean_interval", "wilson_interval"]
