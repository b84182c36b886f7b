"""The recommender: per task type, the cheapest target that meets the bar, with a fallback chain.

``recommend(results, min_quality=0.8, max_p95_latency_ms=5000)`` reads a
``results_df`` (or a run directory) and returns a
:class:`~evalkit.analysis.routing_table.RoutingTable`. Per task type:

* **eligible** targets have a quality *lower confidence bound* ≥ ``min_quality``
  (Wilson on the pass rate for ``metric="passed"``, normal approximation on the
  mean score for ``metric="score"``), a p95 latency ≤ the SLO, a success rate
  ≥ ``min_success``, a cost per 1k requests ≤ the budget, and a context window
  that holds the task's largest prompt;
* the **primary** is the eligible target with the lowest cost per *successful*
  item; unpriced targets (null cost, never $0) rank after priced ones;
* the **fallbacks** follow: targets whose quality meets the bar first, then by
  success rate and cost, preferring a provider not yet in the chain (with two
  or more fallbacks, the last one is from another provider whenever one
  exists), each with a window large enough for the task's prompts;
* every other target gets the reason it was not chosen ("quality LCB 0.71 < 0.80").

When no target is eligible the row says so (``meets_bar=False`` and a warning)
and recommends the best available: the highest quality lower bound.

Definitions (what the numbers mean):

* quality is measured on graded cells; errors count against the success rate,
  not the quality (a fallback chain serves them);
* p95 latency is over answered cells: a fast 4xx must not flatter it;
* cost per successful item = total cost of every cell (errors included) ÷
  passing cells (``metric="score"``: ÷ the sum of scores). Money is summed as
  Float64 (plenty for USD sums of this size) and returned as ``Decimal``;
* a task's prompt size = the largest ``input_tokens / n_attempts`` of its cells;
* cells with no task type count as ``general`` (the task router's default label);
* repeats count as independent samples, as the result schema defines them.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping

from .routing_table import ALL_TASKS, Constraints, RoutingRow, RoutingTable
from .routing_table import _ms as _duration

__all__ = ["default_provider_of", "parse_latency_ms", "recommend"]

_METRICS = ("passed", "score")


def default_provider_of(target: str) -> str:
    """The provider part of ``provider:model``; emulator models and router names are their own provider."""
    head, sep, _ = target.partition(":")
    if not sep or head in ("emulator", "config") or "(" in head:
        return target
    return head


def parse_latency_ms(value: float | str | None) -> float | None:
    """Milliseconds from a number of ms or a duration string (``"5s"``, ``"800ms"``, ``"1m"``)."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    from ..providers import parse_duration

    text = value.strip()
    seconds = parse_duration(text) if not text.replace(".", "", 1).isdigit() else float(text) / 1000.0
    if seconds is None:
        raise ValueError(f"bad latency {value!r}: use milliseconds or a duration like 5s or 800ms")
    return seconds * 1000.0


def recommend(results: Any, *, min_quality: float = 0.8, max_p95_latency_ms: float | str | None = None,
              min_success: float = 0.95, budget_per_1k_requests: float | str | Decimal | None = None,
              metric: str = "passed", confidence: float = 0.95,
              context_windows: Mapping[str, int] | None = None,
              providers_of: Callable[[str], str] | None = None, fallback_length: int = 2,
              classifier: str = "learned", dataset: Any = None, seed: int = 0) -> RoutingTable:
    """The recommended routing table for ``results`` (a ``results_df`` or a run directory).

    ``classifier="learned"`` (the default) trains a task classifier on the
    run's prompts and task types (:func:`~evalkit.analysis.classifier_training.train_task_classifier`,
    cross-validated with ``seed``) for the requests that arrive without a task
    type; it needs the prompts: ``results`` as a run directory, or the
    ``dataset`` it was run on. Without them, or with ``classifier="keywords"``,
    the table keeps the keyword rules and ``classifier_note`` says why.

    ``max_p95_latency_ms`` takes milliseconds or ``"5s"``; ``budget_per_1k_requests``
    is USD per 1,000 requests; ``context_windows`` maps targets to their window
    in tokens (unknown windows are assumed large enough, and the row says so);
    ``providers_of`` names a target's provider (default: the part before ``:``);
    ``fallback_length`` is how many fallbacks follow the primary.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {', '.join(_METRICS)}, got {metric!r}")
    if classifier not in ("learned", "keywords"):
        raise ValueError(f"classifier must be 'learned' or 'keywords', got {classifier!r}")
    if fallback_length < 0:
        raise ValueError("fallback_length must not be negative")
    frame = _as_frame(results)
    if frame.is_empty():
        raise ValueError("no results to recommend from")
    budget = None if budget_per_1k_requests is None else Decimal(str(budget_per_1k_requests))
    constraints = Constraints(min_quality=min_quality, max_p95_latency_ms=parse_latency_ms(max_p95_latency_ms),
                              min_success=min_success, budget_per_1k_requests=budget, metric=metric,
                              confidence=confidence, fallback_length=fallback_length)
    windows = dict(context_windows or {})
    provider_of = providers_of or default_provider_of
    per_task = _evidence(frame, constraints, by_task=True)
    overall = _evidence(frame, constraints, by_task=False)
    rows = tuple(_recommend_task(task, evidence, constraints, windows, provider_of)
                 for task, evidence in _grouped(per_task))
    default = _recommend_task(ALL_TASKS, overall.to_dicts(), constraints, windows, provider_of)
    run_ids = sorted(set(frame["run_id"].drop_nulls().unique().to_list()))
    model, report, note = _task_classifier(classifier, results, dataset, seed, {row.task_type for row in rows})
    return RoutingTable(rows=rows, default=default, constraints=constraints,
                        run_id=",".join(run_ids) or None, context_windows=windows,
                        classifier=model, classifier_report=report, classifier_note=note)


def _task_classifier(kind: str, results: Any, dataset: Any, seed: int,
                     routed: set[str]) -> tuple[Any, Any, str | None]:
    """The learned classifier and its report, or ``(None, None, why the keyword rules stay)``."""
    if kind == "keywords":
        return None, None, "classifier: keywords was asked for"
    from .classifier_training import examples_from_dataset, examples_from_run, train_task_classifier

    if dataset is not None:
        if isinstance(dataset, (str, Path)):
            from ..datasets import load_dataset

            dataset = load_dataset(dataset)
        examples = examples_from_dataset(dataset)
    elif isinstance(results, (str, Path)):
        examples = examples_from_run(results)
    else:
        return None, None, "no prompts to learn from: pass the run directory or dataset="
    keep = [i for i, label in enumerate(examples.labels) if label in routed]  # items the results cover
    try:
        model, report = train_task_classifier([examples.texts[i] for i in keep],
                                              [examples.labels[i] for i in keep],
                                              ids=[examples.ids[i] for i in keep], seed=seed)
    except ValueError as exc:  # one task type, or too few distinct prompts
        return None, None, f"no classifier could be learned: {exc}"
    return model, report, None


def _as_frame(results: Any) -> Any:
    import polars as pl

    if isinstance(results, (str, Path)):
        from ..runner.results import results_df

        results = results_df(results)
    if results["task_type"].null_count():  # the task router's own name for "no particular task"
        results = results.with_columns(pl.col("task_type").fill_null("general"))
    return results


def _evidence(frame: Any, constraints: Constraints, *, by_task: bool) -> Any:
    """One row per (task type ×) target: the numbers every decision is made from."""
    import polars as pl

    keys = ["task_type", "target"] if by_task else ["target"]
    ok = pl.col("status") == "ok"
    cost = pl.col("cost_usd").cast(pl.Float64)  # Float64 sums: exact enough for USD, fast on 1M rows
    passes = pl.col("passed").cast(pl.Float64).sum()
    successes = passes if constraints.metric == "passed" else pl.col("score").sum()
    per_attempt_prompt = pl.col("input_tokens") / pl.col("n_attempts").clip(lower_bound=1)
    grouped = frame.group_by(keys).agg(
        pl.len().alias("n"),
        ok.sum().alias("answered"),
        pl.col(constraints.metric).count().alias("graded"),
        passes.alias("passes"),
        pl.col("score").mean().alias("mean_score"),
        pl.col("score").std().alias("sd_score"),
        pl.col("latency_ms").filter(ok).quantile(0.95).alias("p95_latency_ms"),
        cost.sum().alias("cost_total"),
        cost.null_count().alias("unpriced_cells"),
        successes.alias("successes"),
        per_attempt_prompt.max().alias("prompt_tokens"),
    )
    return _with_quality(grouped, constraints).sort(keys)


def _with_quality(grouped: Any, constraints: Constraints) -> Any:
    import polars as pl

    from .stats import wilson_expr, z_for

    graded = pl.col("graded").cast(pl.Float64)
    if constraints.metric == "passed":
        low, high = wilson_expr(pl.col("passes"), graded, constraints.confidence)
        quality = pl.when(graded > 0).then(pl.col("passes") / graded)
    else:
        half = z_for(constraints.confidence) * pl.col("sd_score") / graded.sqrt()
        quality = pl.col("mean_score")
        low = pl.when(graded > 1).then((quality - half).clip(0.0, 1.0))
        high = pl.when(graded > 1).then((quality + half).clip(0.0, 1.0))
    priced = pl.col("unpriced_cells") == 0
    return grouped.with_columns(
        quality.alias("quality"), low.alias("quality_low"), high.alias("quality_high"),
        (pl.col("answered") / pl.col("n")).alias("success_rate"),
        pl.when(priced & (pl.col("successes") > 0)).then(pl.col("cost_total") / pl.col("successes"))
        .alias("cost_per_success"),
        pl.when(priced).then(pl.col("cost_total") / pl.col("n") * 1000.0).alias("cost_per_1k"),
        priced.alias("priced"),
    )


def _grouped(per_task: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """(task type, evidence rows) pairs: a few rows per task, so plain dicts from here on."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in per_task.to_dicts():
        out.setdefault(row["task_type"], []).append(row)
    return sorted(out.items())


def _recommend_task(task: str, evidence: list[dict[str, Any]], constraints: Constraints,
                    windows: Mapping[str, int], provider_of: Callable[[str], str]) -> RoutingRow:
    need = max((math.ceil(r["prompt_tokens"]) for r in evidence if r["prompt_tokens"] is not None),
               default=None)
    for row in evidence:
        row["window"] = windows.get(row["target"])
        row["provider"] = provider_of(row["target"])
        row["failures"] = _failures(row, constraints, need)
        row["quality_ok"] = row["quality_low"] is not None and row["quality_low"] >= constraints.min_quality
    eligible = sorted((r for r in evidence if not r["failures"]), key=_cost_rank)
    meets_bar = bool(eligible)
    primary = eligible[0] if meets_bar else min(evidence, key=_quality_rank)
    chain, excluded = _fallbacks(evidence, primary, need, constraints.fallback_length)
    notes = _notes(evidence, primary, eligible, excluded, windows)
    warning = None if meets_bar else (
        f"no target meets the bar for {'the default route' if task == ALL_TASKS else task}; "
        f"best available {primary['target']} "
        f"({'; '.join(primary['failures'])})")
    return RoutingRow(
        task_type=task, target=primary["target"], fallbacks=tuple(r["target"] for r in chain),
        meets_bar=meets_bar, n=int(primary["n"]), quality=primary["quality"],
        quality_low=primary["quality_low"], quality_high=primary["quality_high"],
        success_rate=float(primary["success_rate"]), p95_latency_ms=primary["p95_latency_ms"],
        cost_per_success=_money(primary["cost_per_success"]), cost_per_1k_requests=_money(primary["cost_per_1k"]),
        max_input_tokens=need, rejected=_rejections(evidence, primary), warning=warning,
        notes=tuple(notes),
    )


def _failures(row: dict[str, Any], constraints: Constraints, need: int | None) -> list[str]:
    """Every SLO this target misses, in words."""
    out = []
    low = row["quality_low"]
    if low is None:
        out.append(f"quality unknown ({row['graded']} graded cells)")
    elif low < constraints.min_quality:
        out.append(f"quality LCB {low:.2f} < {constraints.min_quality:.2f}")
    limit = constraints.max_p95_latency_ms
    if limit is not None:
        p95 = row["p95_latency_ms"]
        if p95 is None:
            out.append("p95 unknown (no answered cells)")
        elif p95 > limit:
            out.append(f"p95 {_duration(p95)} > {_duration(limit)}")
    if row["success_rate"] < constraints.min_success:
        out.append(f"success {row['success_rate']:.0%} < {constraints.min_success:.0%}")
    budget = constraints.budget_per_1k_requests
    if budget is not None:
        if not row["priced"]:
            out.append("unpriced: the budget cannot be checked")
        elif row["cost_per_1k"] > float(budget):
            out.append(f"{_usd(row['cost_per_1k'])} per 1k requests > ${budget:.2f}")
    if not _fits(row, need):
        out.append(f"context window {row['window']:,} < {need:,} prompt tokens")
    return out


def _fits(row: dict[str, Any], need: int | None) -> bool:
    return row["window"] is None or need is None or row["window"] >= need


def _cost_rank(row: dict[str, Any]) -> tuple:
    """Cheapest per success first; unpriced (or never successful) after priced; then quality, name."""
    cost = row["cost_per_success"]
    return (not row["priced"], cost is None, cost if cost is not None else 0.0,
            -(row["quality_low"] or 0.0), row["target"])


def _quality_rank(row: dict[str, Any]) -> tuple:
    low = row["quality_low"]
    return (low is None, -(low or 0.0), -row["success_rate"], _cost_rank(row))


def _fallbacks(evidence: list[dict[str, Any]], primary: dict[str, Any], need: int | None,
               length: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The chain after ``primary`` and the targets left out because their window is too small."""
    others = [r for r in evidence if r is not primary]
    excluded = [r for r in others if not _fits(r, need)]
    candidates = sorted((r for r in others if _fits(r, need)),
                        key=lambda r: (not r["quality_ok"], -r["success_rate"], _cost_rank(r)))
    chain: list[dict[str, Any]] = []
    providers = {primary["provider"]}
    while candidates and len(chain) < length:
        # Quality first (a wrong answer is no fallback), then a provider the chain lacks. In chains
        # of two or more fallbacks the last slot goes to another provider whatever its quality when
        # the chain has only one provider, so one vendor's outage never takes the whole route down.
        last_slot_alone = length >= 2 and len(chain) == length - 1 and len(providers) == 1
        tier = candidates if last_slot_alone else [
            c for c in candidates if c["quality_ok"] == candidates[0]["quality_ok"]]
        pick = next((c for c in tier if c["provider"] not in providers), candidates[0])
        chain.append(pick)
        providers.add(pick["provider"])
        candidates.remove(pick)
    return chain, excluded


def _rejections(evidence: list[dict[str, Any]], primary: dict[str, Any]) -> dict[str, str]:
    """Why each other target is not the primary."""
    out = {}
    for row in evidence:
        if row is primary:
            continue
        if row["failures"]:
            out[row["target"]] = "; ".join(row["failures"])
        elif not row["priced"]:
            out[row["target"]] = "eligible but unpriced (ranked after priced targets)"
        elif row["cost_per_success"] is None:
            out[row["target"]] = "eligible but no passing answers to price"
        else:
            out[row["target"]] = (f"eligible but {_usd(row['cost_per_success'])}/success vs "
                                  f"{_usd(primary['cost_per_success'])} for {primary['target']}"
                                  if primary["cost_per_success"] is not None else "eligible; priced higher")
    return out


def _notes(evidence: list[dict[str, Any]], primary: dict[str, Any], eligible: list[dict[str, Any]],
           excluded: list[dict[str, Any]], windows: Mapping[str, int]) -> list[str]:
    notes = []
    unpriced = [r["target"] for r in evidence if not r["priced"]]
    if unpriced:
        notes.append(f"unpriced (ranked after priced targets): {', '.join(unpriced)}")
    unknown = [r["target"] for r in evidence if r["target"] not in windows]
    if unknown:
        notes.append(f"context window unknown, assumed large enough: {', '.join(unknown)}")
    for row in excluded:
        notes.append(f"{row['target']} left out of the fallbacks: context window {row['window']:,} too small")
    if not primary["priced"] and eligible:
        notes.append(f"{primary['target']} is unpriced: its cost is unknown, not zero")
    return notes


def _usd(value: float) -> str:
    """``$0.0000224``: three significant digits, never scientific notation."""
    return f"${Decimal(f'{value:.3g}'):f}"


def _money(value: float | None) -> Decimal | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return Decimal(f"{value:.12g}")
