"""The report's learned routing: the task classifier's cross-validated scores, the per-prompt router's curve.

Both sections fit models on the run, which the rest of the report never does,
so each has a switch (:func:`evalkit.report.build_report`):

* ``classifier`` (on by default; ``evalkit report --no-classifier``): the
  classifier ``evalkit recommend`` trains, trained here the same way
  (:func:`~evalkit.analysis.classifier_training.train_task_classifier`, 5 folds,
  seed 0) on the run's own prompts: about 3.5 s for 300 items on 2 cores.
* ``prompt_router`` (off by default; ``--prompt-router``): the per-prompt
  router's cross-fitted replay against its baselines
  (:func:`~evalkit.analysis.prompt_routing.evaluate_prompt_router`), with a
  task table refitted per fold as one of them: about 5 s for 300 items and
  six targets on 2 cores, growing with items × targets (nested folds), which
  is why it is asked for.

Either may be impossible for a run (no readable dataset, one task type, one
target) or fail; the section then says why instead of failing the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["NOT_ASKED", "prompt_router", "routing_outcome", "task_classifier"]

DEFAULT_ROUTE = "*"
NOT_ASKED = "not trained for this report (built with classifier=False, `evalkit report --no-classifier`)"


def task_classifier(dataset: Any, dataset_problem: str | None, manifest: dict[str, Any],
                    routes: Sequence[str] | None) -> dict[str, Any]:
    """The classifier section's numbers, or ``absent``: why there are none.

    ``dataset`` is the run's dataset (``None`` when it cannot be read, with
    ``dataset_problem`` saying why); ``routes`` the task types the
    recommended table has a route for (``None``: the table could not be made,
    so every task type is taken to have one).
    """
    absent = _why_not(dataset, dataset_problem, manifest)
    if absent:
        return {"absent": absent}
    from ..analysis.classifier_training import examples_from_dataset, train_task_classifier

    examples = examples_from_dataset(dataset)
    try:
        _, report = train_task_classifier(examples.texts, examples.labels, ids=examples.ids)
    except Exception as exc:  # noqa: BLE001 - shown in the page: a report of a run must not die on it
        return {"absent": f"training failed: {type(exc).__name__}: {exc}"}
    return {"absent": None, "report": report, "scores": _scores(report), "confusion": _confusion(report),
            "outcome": routing_outcome(examples.labels, report.deployed_predictions,
                                       report.labels if routes is None else routes)}


def _why_not(dataset: Any, problem: str | None, manifest: dict[str, Any]) -> str | None:
    if dataset is None:
        return f"the run's prompts cannot be read ({problem})"
    recorded = (manifest.get("dataset") or {}).get("sha256")
    if recorded and recorded != dataset.sha256:
        return (f"{dataset.path} changed since this run (its sha256 is not the one the manifest recorded): its "
                "prompts are not the ones the run asked")
    if len(dataset.task_types) < 2:
        only = ", ".join(dataset.task_types) or "none"
        return f"the run's dataset has one task type ({only}): a task router has nothing to choose between"
    return None


def routing_outcome(truths: Sequence[str], deployed: Sequence[str | None], routes: Sequence[str]) -> dict[str, Any]:
    """Where each prompt would go if it came unlabelled: its own task's route, the default, or another route.

    ``deployed`` is each item's cross-fitted label as the router uses it
    (``None``: the classifier abstains). A label with no route goes to the
    default route; a prompt whose own task type has no route belongs there, so
    landing there counts as its own route. The three shares are disjoint and
    sum to 1: ``own``, ``abstained`` (default route because the classifier
    abstained, when that is not the prompt's own route) and ``other``.
    """
    known = set(routes)

    def route(label: str | None) -> str:
        return label if label in known else DEFAULT_ROUTE

    n = len(truths)
    own = sum(route(p) == route(t) for t, p in zip(truths, deployed))
    abstained = sum(p is None and route(t) != DEFAULT_ROUTE for t, p in zip(truths, deployed))
    return {"n": n, "own": own / n, "abstained": abstained / n, "other": (n - own - abstained) / n,
            "abstained_any": sum(p is None for p in deployed) / n}


def _scores(report: Any) -> list[dict[str, Any]]:
    return [{"label": label, "precision": s.precision, "recall": s.recall, "support": s.support}
            for label, s in report.per_label.items()]


def _confusion(report: Any) -> dict[str, Any]:
    """Rows with each cell's count and share of its row (the table's shading), and the heatmap."""
    from markupsafe import Markup

    from . import charts

    rows = []
    for i, (label, counts) in enumerate(zip(report.labels, report.confusion)):
        total = sum(counts)
        rows.append({"label": label, "total": total,
                     "cells": [{"count": c, "share": c / max(total, 1), "diagonal": j == i}
                               for j, c in enumerate(counts)]})
    # Our own SVG, generated from numbers; task type names are escaped by matplotlib's SVG writer.
    return {"labels": list(report.labels), "rows": rows,
            "svg": Markup(charts.confusion_svg(report.labels, report.confusion))}


def prompt_router(run_dir: Any, results: Any, context_windows: dict[str, int] | None) -> dict[str, Any]:
    """The per-prompt router's cross-fitted replay (rows, metrics, notes) and its curve as SVG, or ``error``."""
    try:
        from ..analysis import recommend
        from ..analysis.prompt_routing import evaluate_prompt_router

        def table(part: Any) -> Any:  # refitted on each fold's training items, like the router
            return recommend(part, context_windows=context_windows or None)

        report = evaluate_prompt_router(run_dir, results, task_table=table)
        from markupsafe import Markup

        from . import charts

        svg = Markup(charts.figure_svg(report.figure(), "prompt-router"))
    except Exception as exc:  # noqa: BLE001 - shown in the page: a report of a run must not die on it
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"error": None, "report": report, "rows": report.rows.to_dicts(), "metrics": dict(report.metrics),
            "notes": list(report.notes), "svg": svg}
