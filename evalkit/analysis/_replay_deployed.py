"""Replay "as deployed": a task table fed the task types its classifier would predict, not the true ones.

Replaying a task table with the results' own ``task_type`` assumes every
request arrives labelled. In production none does: the task node's classifier
names the type (or abstains, and the request takes the default route). This
module gives each item of a run the type the deployed classifier would give it:

* the **keyword rules** (``classifier: keywords`` or their settings) need no
  training: each item's request, as the runner built it, is classified;
* a **learned classifier** (``classifier: {file: ...}``) is *cross-fitted*:
  retrained on the run's items with the file's own settings (folds, seed,
  features, penalties, threshold rule), each item predicted by the fold model
  that did not see it. Scoring the file itself on items it was trained on
  would flatter it. A ``min_confidence`` in the config replaces the threshold.

The predicted type replaces ``task_type`` in the results; an abstention becomes
:data:`ABSTAINED`, a type no route has, so the table sends it to its default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ABSTAINED", "DeployedTaskTypes", "deployed_task_types", "with_task_types"]

ABSTAINED = "(abstained)"
"""The task type of a request the classifier abstained on: no route has it, so it takes the default."""


@dataclass(frozen=True)
class DeployedTaskTypes:
    """Per item id, the task type the deployed classifier gives (``None``: abstained), and how it was got."""

    by_item: Mapping[str, str | None]
    method: str

    def agreement(self, true_types: Mapping[str, str]) -> float:
        """Share of items whose predicted type is the true one (an abstention is a miss)."""
        hits = [self.by_item.get(item) == task for item, task in true_types.items()]
        return sum(hits) / len(hits) if hits else 0.0


def deployed_task_types(run_dir: str | Path, config: str | Path) -> DeployedTaskTypes | None:
    """What the root task node of ``config`` would call each item of ``run_dir``; ``None`` if the root is not a task node."""
    from ..router.config import TaskSpec, parse_routing_config

    spec = parse_routing_config(config, known_providers=False)
    if not isinstance(spec.router, TaskSpec):
        return None
    settings = spec.router.classifier
    if "file" in settings:
        return _cross_fitted(run_dir, settings["file"], settings.get("min_confidence"))
    return _keywords(run_dir, settings["keywords"])


def with_task_types(results: Any, deployed: DeployedTaskTypes) -> Any:
    """``results`` (a results frame) with ``task_type`` replaced by the deployed prediction per item."""
    import polars as pl

    mapping = {item: task if task is not None else ABSTAINED for item, task in deployed.by_item.items()}
    return results.with_columns(pl.col("item_id").replace_strict(mapping, default=ABSTAINED,
                                                                  return_dtype=pl.String).alias("task_type"))


def _keywords(run_dir: str | Path, options: Mapping[str, Any]) -> DeployedTaskTypes:
    from ..router.tasks import KeywordClassifier
    from ..types import ChatRequest
    from .classifier_training import run_dataset

    classifier = KeywordClassifier(**options)
    items = run_dataset(run_dir)
    return DeployedTaskTypes({item.id: classifier(ChatRequest(messages=item.messages)) for item in items},
                             "the keyword rules, on each item's request")


def _cross_fitted(run_dir: str | Path, file: Path, min_confidence: float | None) -> DeployedTaskTypes:
    from ..router.classifier import LearnedClassifier
    from .classifier_training import examples_from_run, train_task_classifier

    shipped = LearnedClassifier.load(file)  # its file checked field by field; its settings are reused
    options = shipped.metrics.get("settings", {})
    folds, seed = int(shipped.metrics.get("folds", 5)), int(shipped.metrics.get("seed", 0))
    texts, labels, ids = examples_from_run(run_dir)
    _, report = train_task_classifier(
        texts, labels, ids=ids, folds=folds, seed=seed, features=shipped.spec,
        **{k: options[k] for k in ("l2", "template_weight", "target_accuracy", "min_confidence") if k in options},
        abstain_below=min_confidence)
    method = (f"{file.name} retrained on this run's items ({folds}-fold cross-fitting, seed {seed}): each item "
              f"predicted by a model that did not see it, abstaining below confidence {report.abstain_below:.2f}")
    return DeployedTaskTypes(dict(zip(ids, report.deployed_predictions)), method)
