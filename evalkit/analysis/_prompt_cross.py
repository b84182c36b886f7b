"""Cross-fitting for the per-prompt router: which model scores which item, so none scores an item it saw.

Items are dealt to ``K`` folds (identical texts together, task types spread
evenly: :func:`evalkit.analysis._classifier_fit.stratified_folds`).

* **Outer scores** (:func:`outer_scores`): item ``i`` in fold ``k`` is scored by
  a model trained on every fold but ``k``. Training calibrates Platt scaling
  and the rule on these; evaluation routes fold ``k`` with them.
* **Inner scores** (:func:`inner_scores`): for evaluation, fold ``k``'s router
  must be calibrated without fold ``k``, on held-out scores of the *other*
  folds: item ``i`` in fold ``j`` (``j != k``) is scored by a model trained on
  every fold but ``j`` and ``k``. One model per pair ``{j, k}`` serves both
  ``(outer k, inner j)`` and ``(outer j, inner k)``: ``K(K-1)/2`` fits.

Every fit and every scoring is recorded in :attr:`Prepared.log` (the folds a
model was trained on, the folds it scored), so a test can check the rule by
construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..router import FeatureSpec
from ._prompt_data import PromptData, prompt_data, run_prompts
from ._prompt_fit import DEFAULT_L2, Features, PassModels, featurize_all, fit_pass_models, fit_platt
from ._prompt_rule import Goal

__all__ = ["Prepared", "best_single", "goal_for", "inner_scores", "mean_costs", "outer_scores", "platt",
           "prepare", "probabilities"]


@dataclass
class Prepared:
    """The items, their features and folds, and the log of every fit and scoring."""

    data: PromptData
    features: Features
    fold: np.ndarray
    folds: int
    seed: int
    l2: float
    log: list[dict[str, Any]] = field(default_factory=list)
    converged: bool = True
    _entries: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def fit(self, trained_on: Sequence[int]) -> PassModels:
        """A model trained on the items of the folds ``trained_on``."""
        index = np.flatnonzero(np.isin(self.fold, list(trained_on)))
        model = fit_pass_models(self.features, index, self.data.scores, self.data.weights, self.l2)
        self.converged &= model.converged
        self.log.append({"model": len(self.log), "trained_on": sorted(trained_on), "scored": []})
        self._entries[id(model)] = self.log[-1]
        return model

    def score(self, model: PassModels, fold: int, out: np.ndarray) -> None:
        """Write ``model``'s scores of fold ``fold``'s items into ``out`` (items × targets)."""
        index = np.flatnonzero(self.fold == fold)
        self._entries[id(model)]["scored"].append(fold)
        out[index] = model.scores(self.features, index)


def prepare(prompts: Mapping[str, Any] | str | Path, results: Any, *, targets: Sequence[str] | None,
            metric: str, folds: int, seed: int, spec: FeatureSpec | None, l2: float | None,
            groups: Mapping[str, str] | Callable[[str], str] | None = None) -> Prepared:
    """Load items, featurise them and deal them to folds.

    Items with the same text always share a fold; so do items with the same
    ``groups`` key (a mapping or a function of the item id), e.g. the turns of
    one conversation, whose outcomes are related: a model trained on one turn
    must not score another.
    """
    from ._classifier_fit import stratified_folds

    if isinstance(prompts, (str, Path)):
        prompts = run_prompts(prompts)
    data = prompt_data(prompts, results, targets=targets, metric=metric)
    features = featurize_all(data.texts, spec or FeatureSpec())
    labels = {task: i for i, task in enumerate(sorted(set(data.task_types)))}
    keys = list(data.texts)
    if groups is not None:
        group_of = groups if callable(groups) else groups.get
        keys = [f"\x00group:{group_of(item)}" if group_of(item) is not None else text
                for item, text in zip(data.item_ids, data.texts)]
    fold = stratified_folds(keys, [labels[t] for t in data.task_types], folds, seed)
    return Prepared(data, features, np.asarray(fold), folds, seed, DEFAULT_L2 if l2 is None else float(l2))


def outer_scores(prep: Prepared) -> np.ndarray:
    """Items × targets raw scores, each item's from the model trained without its fold."""
    out = np.full(prep.data.scores.shape, np.nan)
    for k in range(prep.folds):
        model = prep.fit([f for f in range(prep.folds) if f != k])
        prep.score(model, k, out)
    return out


def inner_scores(prep: Prepared) -> dict[int, np.ndarray]:
    """Per outer fold ``k``: raw scores of the other folds' items, each from a model trained without ``k`` and
    without its own fold (NaN on fold ``k``'s rows)."""
    out = {k: np.full(prep.data.scores.shape, np.nan) for k in range(prep.folds)}
    for k in range(prep.folds):
        for j in range(k):
            model = prep.fit([f for f in range(prep.folds) if f not in (j, k)])
            prep.score(model, j, out[k])
            prep.score(model, k, out[j])
    return out


def platt(scores: np.ndarray, data: PromptData, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per target Platt ``(scale, shift)`` fitted on the held-out ``scores`` of the items ``index``."""
    pairs = [fit_platt(scores[index, j], data.scores[index, j], data.weights[index, j])
             for j in range(len(data.targets))]
    return np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])


def probabilities(scores: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Calibrated pass probabilities, as :meth:`evalkit.router.prompt.PromptModel.probabilities` computes them."""
    from ..router.prompt import sigmoid

    return sigmoid(scale * scores + shift)


def mean_costs(data: PromptData, index: np.ndarray) -> np.ndarray:
    """Per target mean USD per request over ``index`` (NaN when any of its cells there is unpriced)."""
    return data.costs[index].mean(axis=0) if len(index) else np.full(len(data.targets), np.nan)


def best_single(data: PromptData, index: np.ndarray) -> int:
    """The target with the highest mean score over ``index`` (ties: the cheaper, then the first)."""
    quality = data.scores[index].mean(axis=0)
    cost = np.nan_to_num(mean_costs(data, index), nan=np.inf)
    return int(np.lexsort((np.arange(len(quality)), cost, -quality))[0])


def cheapest_single(data: PromptData, index: np.ndarray) -> int | None:
    """The priced target with the lowest mean cost over ``index`` (ties: the better); None when none is priced."""
    cost = mean_costs(data, index)
    if np.isnan(cost).all():
        return None
    quality = data.scores[index].mean(axis=0)
    return int(np.lexsort((np.arange(len(cost)), -quality, np.nan_to_num(cost, nan=np.inf)))[0])


def goal_for(target_quality: Any, target_cost: Any, data: PromptData, index: np.ndarray,
             table: np.ndarray | None) -> Goal:
    """The calibration goal on the items ``index``.

    ``target_quality``: a number, ``"best"`` (the best single target's quality
    on these items; also the default when neither goal is given) or
    ``"task_table"``; ``target_cost``: USD per request (number, Decimal or
    string) or ``"task_table"``. The task table's numbers need its per-item
    choices (``table``).
    """
    rows = np.asarray(index)
    if target_quality is not None and target_cost is not None:
        raise ValueError("give target_quality or target_cost, not both")
    if target_cost is None and target_quality in (None, "best"):
        best = best_single(data, rows)
        return Goal("quality", float(data.scores[rows, best].mean()), f"the best single target, {data.targets[best]}")
    spec = target_quality if target_cost is None else target_cost
    kind = "quality" if target_cost is None else "cost"
    if spec == "task_table":
        if table is None:
            raise ValueError(f"target_{kind}='task_table' needs task_table=")
        values = data.scores if kind == "quality" else data.costs
        return Goal(kind, float(values[rows, table[rows]].mean()), "the task table's")
    try:
        value = float(str(spec)) if kind == "cost" else float(spec)
    except (TypeError, ValueError):
        raise ValueError(f"target_{kind} must be a number or 'task_table', got {spec!r}") from None
    if not np.isfinite(value) or value < 0 or (kind == "quality" and value > 1):
        raise ValueError(f"target_{kind} out of range: {spec!r}")
    return Goal(kind, value, "requested")
