"""Per-prompt routing over N targets: train it on a run's results, evaluate it only by cross-fitted replay.

:func:`train_prompt_router` fits, per target, a logistic model of "this target
passes this prompt" on the prompt's hashed n-grams and size
(:mod:`evalkit.analysis._prompt_fit`), calibrates it (Platt scaling) and the
routing rule on out-of-fold predictions, and returns the
:class:`~evalkit.router.prompt.PromptModel` a
:class:`~evalkit.router.prompt.PromptRouter` runs (``model.save("router.json")``).

:func:`evaluate_prompt_router` says what that procedure is worth on the same
data without letting any model score an item it was trained on
(:mod:`evalkit.analysis._prompt_cross`): fold ``k`` is routed by a model and a
rule fitted and calibrated on the other folds only. It compares the router
with the best single target, the cheapest, RouteLLM's random router at the
same share, the oracle and (when given) a task table, with paired-bootstrap
intervals, and reports APGR, CPT(50 %) and AIQ over the router's cost–quality
curve (:mod:`evalkit.analysis._prompt_eval`).

Definitions: an item's quality is the mean of the chosen target's recorded
``metric`` over its repeats (a failed call scores 0); its cost the chosen
target's mean recorded ``cost_usd`` (unpriced: null, never 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._prompt_data import routellm_priced, routellm_prompts, run_prompts

__all__ = ["PromptRoutingReport", "evaluate_prompt_router", "routellm_priced", "routellm_prompts", "run_prompts",
           "train_prompt_router"]

TaskTableLike = Any
"""A mapping ``{task_type: target}`` (key ``"*"``: the default), a ``RoutingTable``, or a callable that takes the
training items' results and returns one (then the table is cross-fitted too)."""


def train_prompt_router(prompts: Mapping[str, Any] | str | Path, results: Any, *, folds: int = 5, seed: int = 0,
                        target_quality: float | str | None = None, target_cost: float | str | Decimal | None = None,
                        rule: str = "min_quality", targets: Sequence[str] | None = None, metric: str = "score",
                        l2: float | None = None, spec: Any = None, groups: Any = None) -> Any:
    """A :class:`~evalkit.router.prompt.PromptModel` trained on every item, its rule calibrated on held-out folds.

    ``prompts``: ``{item_id: ChatRequest or text}`` or a run directory (the
    dataset its manifest names). ``results``: a ``results_df`` frame or a run
    directory. ``rule``: ``"min_quality"`` (a bar on the predicted pass
    chance; the cheapest target clearing it) or ``"lambda"`` (maximise
    ``p − λ·cost``). The bar or λ is chosen on out-of-fold predictions to reach
    ``target_quality`` (a mean score, or ``"best"``: the best single target's;
    the default) at the least cost, or the best quality within
    ``target_cost`` (USD per request). The model's ``metrics`` hold how well
    each target's pass chance was predicted out of fold (AUC, Brier score
    against the base rate). ``groups`` (``{item_id: key}`` or a function of the
    item id) keeps related items in one fold, e.g. the turns of a conversation;
    identical prompts always share one. ``l2``: the logistic models' penalty
    (default :data:`~evalkit.analysis._prompt_fit.DEFAULT_L2`); ``spec``: a
    :class:`~evalkit.router.FeatureSpec`.
    """
    import numpy as np

    from ..router.prompt import PromptModel, RoutingRule
    from ._prompt_cross import goal_for, mean_costs, outer_scores, platt, prepare, probabilities
    from ._prompt_rule import calibrate

    _check_rule(rule)
    prep = prepare(prompts, results, targets=targets, metric=metric, folds=folds, seed=seed, spec=spec, l2=l2,
                   groups=groups)
    data, everything = prep.data, np.arange(len(prep.data))
    scores = outer_scores(prep)
    scale, shift = platt(scores, data, everything)
    probs = probabilities(scores, scale, shift)
    goal = goal_for(target_quality, target_cost, data, everything, None)
    costs = mean_costs(data, everything)
    best = _best(data)
    value, record = calibrate(probs, data.scores, data.costs, costs, rule, goal, best)
    record.update(held_out=f"out-of-fold predictions ({folds} folds, seed {seed}): no item was predicted by a "
                           "model trained on it")
    final = prep.fit(list(range(folds)))
    metrics = {"items": len(data), "items_dropped": data.n_dropped, "folds": folds, "seed": seed, "metric": metric,
               "l2": prep.l2, "converged": prep.converged, "targets": _predictability(data, scores, probs)}
    return PromptModel(data.targets, data.target_costs, prep.features.spec, final.rows, final.weights, final.bias,
                       final.dense_weights, final.dense_mean, final.dense_scale, scale, shift,
                       RoutingRule(rule, value, record), metrics)


@dataclass(frozen=True)
class PromptRoutingReport:
    """The cross-fitted replay of a per-prompt router against its baselines (see :func:`evaluate_prompt_router`).

    ``rows``: one row per policy (role ``router`` first, then ``best``,
    ``cheapest``, ``random``, ``oracle``, ``task_table``) with quality and cost
    per request, their intervals, and ``*_delta`` = router − row with paired
    intervals. ``curve``: the router's cost–quality curve over its rule values.
    ``metrics``: APGR, CPT(50 %), AIQ with intervals, the random router's, and
    ``beats_random`` (APGR's lower bound above 0.5). ``calibration``: per fold,
    the rule value and what it reached on the training folds. ``fits``: every
    model fitted, the folds it was trained on and the folds it scored.
    """

    rows: Any
    curve: Any
    metrics: Mapping[str, Any]
    predictability: Any
    calibration: tuple[Mapping[str, Any], ...]
    fits: tuple[Mapping[str, Any], ...]
    rule: str
    n_items: int
    n_dropped: int
    folds: int
    seed: int
    n_boot: int
    confidence: float
    notes: tuple[str, ...] = ()
    item_ids: tuple[str, ...] = field(default=(), repr=False)
    routed: tuple[str, ...] = field(default=(), repr=False)
    """Each item's cross-fitted first choice (``item_ids`` order)."""

    def row(self, role: str) -> Mapping[str, Any]:
        """One policy's row as a dict; KeyError when the report has no such role."""
        import polars as pl

        found = self.rows.filter(pl.col("role") == role)
        if found.is_empty():
            raise KeyError(f"no {role!r} row in this report")
        return found.row(0, named=True)

    def summary(self) -> str:
        """A few lines of text: the rows, then APGR / CPT(50 %) / AIQ against random."""
        head = (f"cross-fitted replay, {self.n_items} items, {self.folds} folds, {self.n_boot} paired resamples, "
                f"{self.confidence:.0%} intervals; rule {self.rule}")
        lines = [head]
        for r in self.rows.iter_rows(named=True):
            cost = "unpriced" if r["cost_per_request_usd"] is None else f"${r['cost_per_request_usd'] * 1000:.4g}/1k"
            delta = "" if r["quality_delta"] is None else (
                f"  router-this: {r['quality_delta']:+.4f} [{_fmt(r['quality_delta_low'])}, "
                f"{_fmt(r['quality_delta_high'])}]")
            lines.append(f"  {r['role']:<10} {r['policy'][:44]:<44} quality {r['quality']:.4f} "
                         f"[{_fmt(r['quality_low'])}, {_fmt(r['quality_high'])}]  {cost}  "
                         f"share→best {r['share_best']:.1%}{delta}")
        m = self.metrics
        lines.append(f"  APGR {_fmt(m['apgr'])} [{_fmt(m['apgr_low'])}, {_fmt(m['apgr_high'])}] (random 0.5); "
                     f"CPT(50%) {_fmt(m['cpt50'])} [{_fmt(m['cpt50_low'])}, {_fmt(m['cpt50_high'])}] (random 0.5); "
                     f"AIQ {_fmt(m['aiq'])} [{_fmt(m['aiq_low'])}, {_fmt(m['aiq_high'])}] "
                     f"(random {_fmt(m['aiq_random'])}); axis: {m['axis']}")
        verdict = {True: "beats random (APGR interval above 0.5)",
                   False: "does NOT beat random (APGR interval reaches 0.5)", None: "no APGR (no quality gap)"}
        lines.append(f"  verdict: {verdict[m['beats_random']]}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def figure(self, *, title: str | None = None) -> Any:
        """A matplotlib ``Figure`` (no pyplot state): the router's curve and every baseline, cost against quality."""
        from ._prompt_plot import curve_figure

        return curve_figure(self, title=title)


def evaluate_prompt_router(prompts: Mapping[str, Any] | str | Path, results: Any, *, folds: int = 5, seed: int = 0,
                           target_quality: float | str | None = None,
                           target_cost: float | str | Decimal | None = None, rule: str = "min_quality",
                           targets: Sequence[str] | None = None, metric: str = "score", l2: float | None = None,
                           spec: Any = None, groups: Any = None, task_table: TaskTableLike | None = None,
                           axis: str = "cost", n_boot: int = 1000, confidence: float = 0.95) -> PromptRoutingReport:
    """Cross-fitted replay of :func:`train_prompt_router`'s procedure (same arguments) on ``results``.

    Fold ``k``'s items are routed by models trained, Platt-calibrated and
    rule-calibrated on the other folds only (the rule's goal is also resolved
    on them: ``"best"``, ``"task_table"``). ``task_table``: a mapping
    ``{task_type: target}`` (``"*"``: the default), a ``RoutingTable``, or a
    function of the training items' results returning one (``lambda r:
    recommend(r)``: then the table is cross-fitted too). ``axis``: ``"cost"`` (normalised
    cost, the default) or ``"share"`` (share of requests to the best single
    target: RouteLLM's x axis for two models).
    """

    from ._prompt_cross import inner_scores, outer_scores, prepare

    _check_rule(rule)
    if axis not in ("cost", "share"):
        raise ValueError(f"axis must be 'cost' or 'share', got {axis!r}")
    prep = prepare(prompts, results, targets=targets, metric=metric, folds=folds, seed=seed, spec=spec, l2=l2,
                   groups=groups)
    table, table_name = _table_choices(task_table, prep, results)
    outer, inner = outer_scores(prep), inner_scores(prep)
    routed, choices, values, calibration, probs = _cross_fitted_routes(
        prep, outer, inner, table, rule, target_quality, target_cost)
    lines, weak, strong, notes = _lines(prep, routed, table, table_name, rule)
    from ._prompt_eval import tabulate

    best = _best(prep.data)
    frame, curve, metrics = tabulate(lines, choices, values, prep.data.scores, prep.data.costs, best, weak, strong,
                                     axis, n_boot, confidence, seed)
    if not prep.converged:
        notes.append("a logistic fit stopped before converging (max_iter); the numbers are still cross-fitted")
    return PromptRoutingReport(frame, curve, metrics, _predictability_frame(prep.data, outer, probs),
                               tuple(calibration), tuple(prep.log), rule, len(prep.data), prep.data.n_dropped, folds,
                               seed, n_boot, confidence, tuple(notes), prep.data.item_ids,
                               tuple(prep.data.targets[i] for i in routed))


def _cross_fitted_routes(prep: Any, outer: Any, inner: Any, table: Any, rule: str, target_quality: Any,
                         target_cost: Any) -> tuple[Any, Any, Any, list[dict[str, Any]], Any]:
    """Per fold: calibrate on the other folds' inner scores, route this fold; and the curve over a shared grid."""
    import numpy as np

    from ._prompt_cross import goal_for, mean_costs, platt, probabilities
    from ._prompt_rule import calibrate, first_choices, rule_grid

    data = prep.data
    n = len(data)
    routed = np.zeros(n, np.int64)
    probs = np.full(outer.shape, np.nan)
    fold_costs, calibration = {}, []
    for k in range(prep.folds):
        train, test = np.flatnonzero(prep.fold != k), np.flatnonzero(prep.fold == k)
        scale, shift = platt(inner[k], data, train)
        held_out = probabilities(inner[k][train], scale, shift)
        costs = fold_costs[k] = mean_costs(data, train)
        goal = goal_for(target_quality, target_cost, data, train, table)
        value, record = calibrate(held_out, data.scores[train], data.costs[train], costs, rule, goal,
                                  _best(data, train))
        probs[test] = probabilities(outer[test], scale, shift)
        routed[test] = first_choices(probs[test], costs, rule, value)
        calibration.append({"fold": k, "value": value, **record})
    values = rule_grid(rule, probs, mean_costs(data, np.arange(n)))
    choices = np.zeros((len(values), n), np.int64)
    for k in range(prep.folds):  # each fold ranked with the costs its own training folds knew
        test = np.flatnonzero(prep.fold == k)
        for g, v in enumerate(values):
            choices[g, test] = first_choices(probs[test], fold_costs[k], rule, float(v))
    return routed, choices, values, calibration, probs


def _lines(prep: Any, routed: Any, table: Any, table_name: str | None, rule: str) -> tuple[list[Any], Any, str,
                                                                                          list[str]]:
    """The router's and every baseline's per-item vectors."""
    import numpy as np

    from ._prompt_cross import cheapest_single
    from ._prompt_eval import Line

    data = prep.data
    n, rows = len(data), np.arange(len(data))
    best = _best(data)
    cheapest = cheapest_single(data, rows)
    notes: list[str] = []

    def line(role: str, name: str, pick: Any) -> Line:
        return Line(role, name, data.scores[rows, pick], data.costs[rows, pick], float((pick == best).mean()))

    router = line("router", f"per-prompt router ({rule}, cross-fitted)", routed)
    lines = [router, line("best", data.targets[best], np.full(n, best))]
    if cheapest is None:
        notes.append("no cheapest baseline and no APGR on the cost axis: no target is priced")
    else:
        lines.append(line("cheapest", data.targets[cheapest], np.full(n, cheapest)))
        share = router.share_best
        if not np.isnan(router.cost).any() and cheapest != best:
            c_weak, c_strong = data.costs[:, cheapest].mean(), data.costs[:, best].mean()
            share = float(np.clip((router.cost.mean() - c_weak) / (c_strong - c_weak), 0, 1)) \
                if c_strong != c_weak else share
        mix = (1 - share) * data.scores[:, cheapest] + share * data.scores[:, best]
        mix_cost = (1 - share) * data.costs[:, cheapest] + share * data.costs[:, best]
        lines.append(Line("random", f"random: {share:.1%} to {data.targets[best]}, else the cheapest", mix,
                          mix_cost, share))
    lines.append(line("oracle", "oracle (per item the best score, then the cheapest)", _oracle(data)))
    if table is not None:
        lines.append(line("task_table", table_name or "task table", table))
    if cheapest == best:
        notes.append(f"{data.targets[best]} is both the best and the cheapest target: there is no gap to recover")
    return lines, None if cheapest is None else data.targets[cheapest], data.targets[best], notes


def _oracle(data: Any) -> Any:
    import numpy as np

    cost = np.nan_to_num(data.costs, nan=np.inf)
    index = np.broadcast_to(np.arange(len(data.targets)), data.scores.shape)
    return np.lexsort((index, cost, -data.scores), axis=-1)[:, 0]


def _table_choices(task_table: TaskTableLike | None, prep: Any, results: Any) -> tuple[Any, str | None]:
    """Each item's target under the task table; a callable table is refitted per fold on the training items."""
    import numpy as np
    import polars as pl

    if task_table is None:
        return None, None
    data = prep.data
    tasks = np.array(data.task_types)
    if not callable(task_table):
        return _apply_table(task_table, tasks, data.targets), "task table (given)"
    if isinstance(results, (str, Path)):
        from ..runner import results_df

        results = results_df(results)
    choice = np.zeros(len(data), np.int64)
    ids = np.array(data.item_ids)
    for k in range(prep.folds):
        train_ids = ids[prep.fold != k].tolist()
        table = task_table(results.filter(pl.col("item_id").cast(pl.String).is_in(train_ids)))
        test = np.flatnonzero(prep.fold == k)
        choice[test] = _apply_table(table, tasks[test], data.targets)
    return choice, "task table (cross-fitted)"


def _apply_table(table: Any, tasks: Any, targets: Sequence[str]) -> Any:
    import numpy as np

    if hasattr(table, "rows") and hasattr(table, "default"):  # a RoutingTable
        mapping = {row.task_type: row.target for row in table.rows}
        default = table.default.target
    else:
        mapping = dict(table)
        default = mapping.pop("*", None)
    index = {t: i for i, t in enumerate(targets)}
    out = np.zeros(len(tasks), np.int64)
    for i, task in enumerate(tasks):
        chosen = mapping.get(task, default)
        if chosen not in index:
            raise ValueError(f"the task table sends {task!r} to {chosen!r}, which is not one of the targets "
                             f"({', '.join(targets)})")
        out[i] = index[chosen]
    return out


def _best(data: Any, index: Any = None) -> int:
    import numpy as np

    from ._prompt_cross import best_single

    return best_single(data, np.arange(len(data)) if index is None else index)


def _check_rule(rule: str) -> None:
    from ..router.prompt import RULES

    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")


def _predictability(data: Any, scores: Any, probs: Any) -> dict[str, dict[str, float | None]]:
    """Per target, how well held-out predictions rank and fit its outcomes.

    ``auc``: the chance a passing item (score >= 0.5) is scored above a failing
    one (0.5 = no information); ``brier`` against ``brier_base_rate``, the
    Brier score of predicting the pass rate for every item (no better = no
    per-prompt signal).
    """
    frame = _predictability_frame(data, scores, probs)
    return {row.pop("target"): row for row in frame.to_dicts()}


def _predictability_frame(data: Any, scores: Any, probs: Any) -> Any:
    import polars as pl
    from scipy.stats import rankdata

    rows = []
    for j, name in enumerate(data.targets):
        y, p, z = data.scores[:, j], probs[:, j], scores[:, j]
        base = float(y.mean())
        passed = y >= 0.5  # a graded score counts as a pass from 0.5 up (exact for 0/1 scores)
        k = int(passed.sum())
        auc = None
        if 0 < k < len(y):
            ranks = rankdata(z)
            auc = float((ranks[passed].sum() - k * (k + 1) / 2) / (k * (len(y) - k)))
        rows.append({"target": name, "pass_rate": base, "auc": auc, "brier": float(((p - y) ** 2).mean()),
                     "brier_base_rate": float(((base - y) ** 2).mean())})
    return pl.DataFrame(rows, schema={"target": pl.String, "pass_rate": pl.Float64, "auc": pl.Float64,
                                      "brier": pl.Float64, "brier_base_rate": pl.Float64})


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"

