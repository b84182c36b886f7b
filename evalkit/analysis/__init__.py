"""Analysis of recorded runs: summaries with intervals, frontiers, recommendations, policy replay.

Everything takes a results table (``evalkit.runner.results_df(run_dir)``, or a
published table loaded with :func:`load_results_table`) and returns polars
DataFrames or small value objects. Importing this package is cheap: polars,
numpy and scipy load inside the functions that use them.
"""

from __future__ import annotations

from .compare import paired_comparison
from .external import load_alpaca_eval, load_results_table, load_routellm
from .frontier import aiq, apgr, baseline_sweep, cpt, pareto_frontier
from .recommend import default_provider_of, parse_latency_ms, recommend
from .replay import (
    CostAware,
    Fallback,
    Oracle,
    Random,
    ReplayReport,
    ReplayRow,
    TaskTable,
    Threshold,
    Weighted,
    policy_from_config,
    replay_policy,
)
from .routing_table import Constraints, RoutingRow, RoutingTable
from .stats import wilson_interval
from .summary import pass_at_k, pass_hat_k, summary_df

__all__ = [
    "Constraints",
    "CostAware",
    "Fallback",
    "Oracle",
    "Random",
    "ReplayReport",
    "ReplayRow",
    "RoutingRow",
    "RoutingTable",
    "TaskTable",
    "Threshold",
    "Weighted",
    "aiq",
    "apgr",
    "baseline_sweep",
    "cpt",
    "default_provider_of",
    "load_alpaca_eval",
    "load_results_table",
    "load_routellm",
    "paired_comparison",
    "pareto_frontier",
    "parse_latency_ms",
    "pass_at_k",
    "pass_hat_k",
    "policy_from_config",
    "recommend",
    "replay_policy",
    "summary_df",
    "wilson_interval",
]
