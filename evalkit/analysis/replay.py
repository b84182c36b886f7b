"""Counterfactual replay: what a routing policy would have scored, cost and taken on recorded results.

Nothing is called. Each request (item × repeat) of a run where several targets
were asked the same items is routed by the policy using the *recorded* outcome
of each target on that item: a fallback chain pays for and waits on the failed
calls before the one that served, an oracle picks the cheapest right answer.

Definitions (per policy and per baseline, over the same requests):

* **success rate** — share of requests served, with a Wilson interval;
* **quality** — mean score per request, a failed request scoring 0 (the user
  got nothing); ``quality_answered`` is the mean over served requests only,
  comparable to ``summary_df``'s quality;
* **cost** — USD, total and per request, Float64 (``cost_usd`` Decimals are
  cast for the arithmetic); null when any needed cost is unpriced;
* **latency** — p50/p95/p99 over requests in ms, failures included, chains
  summing their steps;
* **intervals** — percentile bootstrap over requests, ``n_boot`` resamples
  shared by every row, so ``*_delta`` (policy − baseline) intervals are paired;
  the repeats of an item are resampled together (they are correlated); index
  resampling, or the Poisson bootstrap above 50M draws, for speed.

Baselines: ``best`` (the single target with the highest mean quality),
``cheapest`` (the lowest mean cost per request among priced targets) and
``oracle`` (:class:`Oracle` over every target).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ._replay_config import policy_from_config
from ._replay_policies import (
    CostAware,
    Fallback,
    Oracle,
    PolicyLike,
    Random,
    TaskTable,
    Threshold,
    Weighted,
    describe,
    policy_targets,
)

__all__ = ["CostAware", "DeployedReplay", "Fallback", "Oracle", "Random", "ReplayReport", "ReplayRow", "TaskTable",
           "Threshold", "Weighted", "policy_from_config", "replay_as_deployed", "replay_policy"]

BASELINES = ("best", "cheapest", "oracle")


@dataclass(frozen=True)
class ReplayRow:
    """One policy's replayed numbers; the ``*_delta`` fields are policy − this row (None on the policy row)."""

    role: str
    policy: str
    n: int
    success_rate: float
    success_low: float
    success_high: float
    quality: float
    quality_low: float | None
    quality_high: float | None
    quality_answered: float | None
    cost_total_usd: float | None
    cost_per_request_usd: float | None
    cost_low_usd: float | None
    cost_high_usd: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    quality_delta: float | None = None
    quality_delta_low: float | None = None
    quality_delta_high: float | None = None
    cost_delta_usd: float | None = None
    cost_delta_low_usd: float | None = None
    cost_delta_high_usd: float | None = None


@dataclass(frozen=True)
class ReplayReport:
    """The replayed policy and its baselines over the same requests, with paired bootstrap intervals."""

    rows: tuple[ReplayRow, ...]
    n_requests: int
    n_dropped: int
    confidence: float
    n_boot: int
    bootstrap: str
    """``multinomial`` (index resampling) or ``poisson`` (large runs), see ``_replay_stats``."""
    notes: tuple[str, ...] = ()

    @property
    def policy(self) -> ReplayRow:
        """The replayed policy's row."""
        return self.rows[0]

    def baseline(self, role: str) -> ReplayRow:
        """A baseline's row by role (``best``, ``cheapest``, ``oracle``); KeyError when not computed."""
        for row in self.rows[1:]:
            if row.role == role:
                return row
        raise KeyError(f"no {role!r} baseline in this report (see .notes)")

    def to_frame(self) -> Any:
        """One row per policy/baseline, the :class:`ReplayRow` fields as columns."""
        import polars as pl

        schema = {f.name: (pl.String if f.name in ("role", "policy") else pl.Int64 if f.name == "n" else pl.Float64)
                  for f in fields(ReplayRow)}
        return pl.DataFrame([asdict(row) for row in self.rows], schema=schema)

    def render(self) -> Any:
        """A rich table: quality, success, cost and latency per row, with the policy − baseline deltas."""
        from rich.table import Table

        pct = round(self.confidence * 100)
        table = Table(title=f"Replay over {self.n_requests} requests ({self.n_dropped} dropped), "
                            f"{pct}% intervals, {self.n_boot} paired {self.bootstrap} resamples",
                      caption="\n".join([f"policy: {self.policy.policy}", "Δ: policy − row", *self.notes]),
                      caption_justify="left")
        for header in ("role", "policy", "quality", "Δ quality", "success", "$/1k req",
                       "Δ $/1k req", "p50 ms", "p95 ms", "p99 ms"):
            # The policy row's description can be long (it is in the caption): cut it, never a number.
            table.add_column(header, justify="left" if header in ("role", "policy") else "right",
                             no_wrap=header == "policy", max_width=28 if header == "policy" else None,
                             overflow="ellipsis" if header == "policy" else "fold")
        for row in self.rows:
            table.add_row(row.role, row.policy, _span(row.quality, row.quality_low, row.quality_high, "{:.3f}"),
                          _span(row.quality_delta, row.quality_delta_low, row.quality_delta_high, "{:+.3f}"),
                          f"{row.success_rate:.1%}", _per_1k(row.cost_per_request_usd, row.cost_low_usd,
                                                             row.cost_high_usd, "{:.3g}"),
                          _per_1k(row.cost_delta_usd, row.cost_delta_low_usd, row.cost_delta_high_usd, "{:+.3g}"),
                          *(_ms(v) for v in (row.latency_p50_ms, row.latency_p95_ms, row.latency_p99_ms)))
        return table


def _span(value: float | None, low: float | None, high: float | None, fmt: str) -> str:
    if value is None:
        return "—"
    text = fmt.format(value)
    return text if low is None or high is None else f"{text} [{fmt.format(low)}, {fmt.format(high)}]"


def _per_1k(value: float | None, low: float | None, high: float | None, fmt: str) -> str:
    if value is None:
        return "unpriced" if fmt == "{:.3g}" else "—"
    scale = [None if v is None else v * 1000 for v in (value, low, high)]
    return _span(scale[0], scale[1], scale[2], fmt)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def replay_policy(results: Any, policy: PolicyLike | str | Path, *, attempts: Any = None,
                  baselines: Sequence[str] = BASELINES, targets: Sequence[str] | None = None,
                  metric: str = "score", n_boot: int = 1000, confidence: float = 0.95,
                  seed: int = 0) -> ReplayReport:
    """Evaluate ``policy`` on recorded ``results`` without calling anything.

    ``results``: a ``results_df`` frame (or anything with item_id, target and
    the ``metric`` column; repeat, task_type, status, cost_usd, latency_ms
    optional) or a run directory. ``policy``: a policy, a target name, or a
    routing config (``.yaml`` path, see :func:`policy_from_config`).
    ``attempts``: the run's ``attempts_df``; when given, each target counts
    with its first attempt only (see :func:`._replay_frame.normalise`).
    ``targets``: the targets baselines choose from (default: every target in
    ``results``). ``metric``: ``score`` or ``passed``. Only requests that every
    used target has a row for are replayed (``n_dropped`` counts the others).
    """
    from ._replay_eval import Context, compile_policy, evaluate
    from ._replay_frame import normalise, wide_frame

    if isinstance(policy, Path) or (isinstance(policy, str) and policy.endswith((".yaml", ".yml"))):
        policy = policy_from_config(policy, seed=seed)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; expected some of {', '.join(BASELINES)}")
    score_columns = _score_columns(policy)
    frame = normalise(results, attempts, metric=metric, extra_columns=score_columns)
    candidates = list(targets) if targets is not None else sorted(frame.get_column("target").unique().to_list())
    used = list(dict.fromkeys([*policy_targets(policy), *(candidates if baselines else [])]))
    wide, dropped = wide_frame(frame, used, score_columns)
    if wide.is_empty():
        raise ValueError("no request has results for every target the replay needs")
    ctx = Context(wide, used, seed_salt=seed)
    named = [("policy", describe(policy), policy)]
    notes = list(_notes(policy))
    for role in baselines:
        chosen = _baseline(role, candidates, ctx)
        if chosen is None:
            notes.append(f"no {role} baseline: no candidate target is fully priced")
        else:
            named.append((role, describe(chosen), chosen))
    numbers = [_numbers(evaluate(compile_policy(p, ctx), ctx), wide.height) for _, _, p in named]
    clusters = _item_codes(wide)
    rows, method = _rows([(role, name) for role, name, _ in named], numbers, n_boot, confidence, seed, clusters)
    return ReplayReport(tuple(rows), wide.height, dropped, confidence, n_boot, method, tuple(notes))


def _numbers(rows: Any, n: int) -> Any:
    from ._replay_stats import policy_numbers

    return policy_numbers(rows, n)


def _score_columns(policy: PolicyLike) -> list[str]:
    """Result columns named by Threshold policies anywhere in the tree."""
    found: list[str] = []
    stack = [policy]
    while stack:
        node = stack.pop()
        if isinstance(node, Threshold):
            if isinstance(node.score, str) and node.score not in found:
                found.append(node.score)
            stack += [node.strong, node.weak]
        elif isinstance(node, Fallback):
            stack += list(node.chain)
        elif isinstance(node, TaskTable):
            stack += [route for _, route in node.routes] + [node.default]
        elif isinstance(node, Weighted):
            stack += [target for target, _ in node.weights]
    return found


def _notes(policy: PolicyLike) -> list[str]:
    if isinstance(policy, Weighted) and policy.mode == "expected":
        return ["weighted mix: expected values over its components (mode='expected')"]
    return []


def _baseline(role: str, candidates: Sequence[str], ctx: Any) -> PolicyLike | None:
    if role == "oracle":
        return Oracle(tuple(candidates))
    if role == "best":
        return max(candidates, key=lambda t: (ctx.quality[t], -(ctx.cost[t] if ctx.cost[t] is not None else 1e300)))
    priced = [t for t in candidates if ctx.cost[t] is not None]
    return min(priced, key=lambda t: (ctx.cost[t], -ctx.quality[t])) if priced else None


def _item_codes(wide: Any) -> Any:
    """An int per request naming its item (0..k-1), or None when no item has repeats."""
    import polars as pl

    if wide.get_column("item_id").n_unique() == wide.height:
        return None
    return wide.select(pl.col("item_id").rank("dense") - 1).to_series().to_numpy().astype("int64")


def _rows(named: list[tuple[str, str]], numbers: list[Any], n_boot: int, confidence: float,
          seed: int, clusters: Any) -> tuple[list[ReplayRow], str]:
    import numpy as np

    from ._replay_stats import interval, mean_or_none, paired_bootstrap_means
    from .stats import wilson_interval

    n = len(numbers[0].score)
    columns = np.column_stack([v for nums in numbers for v in (nums.score, nums.cost)])
    means, method = paired_bootstrap_means(columns, n_boot, seed, clusters)
    policy_quality, policy_cost = means[:, 0], means[:, 1]
    rows = []
    for i, ((role, name), nums) in enumerate(zip(named, numbers)):
        quality_samples, cost_samples = means[:, 2 * i], means[:, 2 * i + 1]
        served = float(nums.ok.sum())
        success_low, success_high = wilson_interval(served, n, confidence)
        cost_mean = mean_or_none(nums.cost)
        row: dict[str, Any] = {
            "role": role, "policy": name, "n": n, "success_rate": served / n, "success_low": success_low,
            "success_high": success_high, "quality": float(nums.score.mean()),
            "quality_answered": nums.quality_answered,
            "cost_total_usd": None if cost_mean is None else float(nums.cost.sum()),
            "cost_per_request_usd": cost_mean, "latency_p50_ms": nums.latency_ms[0],
            "latency_p95_ms": nums.latency_ms[1], "latency_p99_ms": nums.latency_ms[2]}
        row["quality_low"], row["quality_high"] = interval(quality_samples, confidence)
        row["cost_low_usd"], row["cost_high_usd"] = interval(cost_samples, confidence)
        if i > 0:
            policy_cost_mean = mean_or_none(numbers[0].cost)
            row["quality_delta"] = float(numbers[0].score.mean() - nums.score.mean())
            row["quality_delta_low"], row["quality_delta_high"] = interval(policy_quality - quality_samples,
                                                                           confidence)
            row["cost_delta_usd"] = None if policy_cost_mean is None or cost_mean is None \
                else policy_cost_mean - cost_mean
            row["cost_delta_low_usd"], row["cost_delta_high_usd"] = interval(policy_cost - cost_samples, confidence)
        rows.append(ReplayRow(**row))
    return rows, method


@dataclass(frozen=True)
class DeployedReplay:
    """A task table replayed twice: with the results' true task types, and with its classifier's predictions.

    ``agreement`` is the share of items the classifier gives their true type
    (an abstention is a miss); ``task_types.method`` says how the predictions
    were made (cross-fitted for a learned classifier).
    """

    true_labels: ReplayReport
    deployed: ReplayReport
    task_types: Any
    agreement: float


def replay_as_deployed(run_dir: str | Path, config: str | Path, **options: Any) -> DeployedReplay | None:
    """:func:`replay_policy` of a routing config on a run, with true and with predicted task types.

    ``None`` when the config's root is not a task node (there is nothing to
    classify). ``options`` go to both replays (``n_boot``, ``seed``, ...); the
    same seed resamples the same requests, so the two reports' intervals are
    over the same bootstrap draws.
    """
    from ..runner.results import results_df
    from ._replay_deployed import deployed_task_types, with_task_types

    predicted = deployed_task_types(run_dir, config)
    if predicted is None:
        return None
    results = results_df(run_dir)
    policy = policy_from_config(config, seed=options.get("seed", 0))
    truth = dict(zip(results["item_id"].to_list(), results["task_type"].to_list()))
    return DeployedReplay(replay_policy(results, policy, **options),
                          replay_policy(with_task_types(results, predicted), policy, **options),
                          predicted, predicted.agreement(truth))
