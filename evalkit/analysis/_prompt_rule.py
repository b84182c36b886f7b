"""Choosing the per-prompt router's bar (or λ) on held-out predictions, and what a choice scores.

Every choice goes through :func:`evalkit.router.prompt.rank_targets`, the
function the router itself calls, so the replay and the router agree.

* :func:`first_choices`: the target each item goes to under one rule value.
* :func:`sweep`: quality, cost and share of the best single target over a grid
  of rule values (:func:`rule_grid`).
* :func:`calibrate`: the rule value that reaches a requested quality at the
  least cost (or the best quality within a requested cost), on held-out
  predictions and the items' recorded outcomes.

Quality is the mean recorded score of the chosen target; cost the mean
recorded USD of the chosen target (NaN when any chosen cell is unpriced).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..router.prompt import rank_targets

__all__ = ["Goal", "Sweep", "calibrate", "first_choices", "rule_grid", "sweep"]

GRID_POINTS = 101


@dataclass(frozen=True)
class Goal:
    """What a rule value is chosen to hit: ``quality`` (at least ``value``) or ``cost`` (USD per request, at most)."""

    kind: str
    value: float
    label: str

    def describe(self) -> str:
        if self.kind == "quality":
            return f"quality >= {self.value:.4f} ({self.label}) at the least cost"
        return f"cost <= ${self.value:.6g} per request ({self.label}) at the best quality"


@dataclass(frozen=True)
class Sweep:
    """Per rule value: quality, cost (NaN: unpriced) and share of items sent to ``best`` (a column index)."""

    values: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    share_best: np.ndarray
    choices: np.ndarray
    """``(len(values), n)``: the target index each item goes to."""


def first_choices(probs: np.ndarray, costs: np.ndarray, kind: str, value: float) -> np.ndarray:
    """The first target (column index) of each row of ``probs`` under the rule."""
    return rank_targets(probs, costs, kind, value)[:, 0]


def rule_grid(kind: str, probs: np.ndarray, costs: np.ndarray, points: int = GRID_POINTS) -> np.ndarray:
    """Rule values to try: bars at quantiles of the predictions (where choices change) and an even grid;
    λ from 0 over six decades around 1 / (the spread of the priced costs)."""
    if kind == "min_quality":
        levels = np.quantile(probs, np.linspace(0, 1, points)) if probs.size else np.empty(0)
        return np.unique(np.clip(np.concatenate([levels, np.linspace(0, 1, 21)]), 0.0, 1.0))
    priced = costs[~np.isnan(costs)]
    spread = float(priced.max() - priced.min()) if priced.size > 1 else 0.0
    if spread <= 0:
        return np.array([0.0])
    return np.concatenate([[0.0], np.logspace(-3, 3, points - 1) / spread])


def sweep(probs: np.ndarray, scores: np.ndarray, item_costs: np.ndarray, costs: np.ndarray, kind: str,
          values: np.ndarray, best: int) -> Sweep:
    """Outcomes of every rule value in ``values`` on these items (``scores``/``item_costs``: items × targets)."""
    rows = np.arange(len(probs))
    choices = np.stack([first_choices(probs, costs, kind, float(v)) for v in values]) if len(values) else \
        np.empty((0, len(probs)), np.int64)
    quality = scores[rows, choices].mean(axis=1) if len(rows) else np.full(len(values), np.nan)
    cost = item_costs[rows, choices].mean(axis=1) if len(rows) else np.full(len(values), np.nan)
    share = (choices == best).mean(axis=1) if len(rows) else np.full(len(values), np.nan)
    return Sweep(np.asarray(values, float), quality, cost, share, choices)


def calibrate(probs: np.ndarray, scores: np.ndarray, item_costs: np.ndarray, costs: np.ndarray, kind: str,
              goal: Goal, best: int) -> tuple[float, dict[str, Any]]:
    """The rule value meeting ``goal`` on these items, and a record of what it reached.

    The sweep's recorded quality is noisy from one rule value to the next, and
    taking the cheapest value whose *raw* quality crosses the goal would pick
    a lucky spike (a winner's curse that shows up as a shortfall on new
    items). So quality is first smoothed by isotonic regression on the cost
    order (a dearer choice of targets is assumed no worse: pooled adjacent
    violators). Quality goal: the cheapest value whose smoothed quality
    reaches the goal (ties: the lower value); with unknown costs, values are
    ordered by the rule value instead. Cost goal: the best smoothed quality
    within the cost (ties: the better raw quality, then the cheaper). When
    nothing meets the goal: the best quality (quality goal) or the cheapest
    (cost goal), and the record says so.
    """
    from scipy.optimize import isotonic_regression

    result = sweep(probs, scores, item_costs, costs, kind, rule_grid(kind, probs, costs), best)
    quality, cost = result.quality, result.cost
    known = not np.isnan(cost).any()
    order = np.lexsort((result.values, cost)) if known else np.argsort(result.values, kind="stable")
    smooth = np.empty_like(quality)
    smooth[order] = isotonic_regression(quality[order]).x
    tolerance = 1e-12
    if goal.kind == "quality":
        meets = smooth >= goal.value - tolerance
        ranked = order[meets[order]] if meets.any() else np.lexsort((cost if known else result.values, -smooth))
    else:
        meets = (cost <= goal.value + tolerance) if known else np.zeros(len(cost), bool)
        by_quality = np.lexsort((cost, -quality, -smooth))
        ranked = by_quality[meets[by_quality]] if meets.any() else order
    pick = int(ranked[0])
    record = {
        "goal": goal.describe(), "goal_kind": goal.kind, "goal_value": goal.value, "met": bool(meets.any()),
        "quality": float(quality[pick]), "quality_smoothed": float(smooth[pick]),
        "cost_per_request_usd": None if np.isnan(cost[pick]) else float(cost[pick]),
        "share_best": float(result.share_best[pick]), "items": len(probs),
    }
    return float(result.values[pick]), record
