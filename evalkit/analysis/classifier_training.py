"""Train the learned task classifier on a run's prompts and measure it by stratified k-fold cross-validation.

    texts, labels, ids = examples_from_run("runs/2026-01-01")        # or examples_from_dataset(load_dataset(...))
    model, report = train_task_classifier(texts, labels, ids=ids)    # folds=5, seed=0
    print(report.to_text())
    model.save("routing.classifier.json")                            # + routing.classifier.npz

What happens (numbers in :mod:`evalkit.analysis._classifier_fit`):

1. Items are dealt to ``folds`` folds, stratified by label, identical texts in
   the same fold, from a generator seeded with ``seed``.
2. Per fold, a model is fitted on the other folds (each training text plus a
   template-free copy of it at ``template_weight``) and scores the fold's items:
   every item gets a *cross-fitted* prediction from a model that never saw it
   (:attr:`ClassifierReport.cross_fit_predictions`, for replay "as deployed").
3. Calibration: one temperature for the whole model, fitted to those
   out-of-fold scores (negative log-likelihood).
4. The abstain threshold (unless ``abstain_below`` is given): the lowest
   calibrated confidence at which the out-of-fold predictions accepted are right
   ≥ ``target_accuracy`` of the time, and at least ``min_confidence``.
5. The model that ships is fitted on every item the same way.

The texts must be what requests carry at routing time: :func:`examples_from_dataset`
builds each item's request as the runner does (``evalkit.runner.run.build_request``)
and reads it with :func:`evalkit.router.classifier.request_text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

from ..router import FeatureSpec, featurize, request_text
from ..router.classifier import LearnedClassifier, calibrated

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ClassifierReport", "LabelScore", "TrainingExamples", "examples_from_dataset", "examples_from_run",
           "run_dataset", "train_task_classifier"]


class TrainingExamples(NamedTuple):
    """The request text, task type and item id of every item, in dataset order."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    ids: tuple[str, ...]


def examples_from_dataset(dataset: Any) -> TrainingExamples:
    """Each item's routing-time text (its request as the runner builds it), task type and id."""
    from ..runner import Cell
    from ..runner.run import RunOptions, build_request

    options = RunOptions()
    texts = [request_text(build_request(item, Cell(0, 0, 0), options)) for item in dataset]
    return TrainingExamples(tuple(texts), tuple(item.task_type for item in dataset), tuple(item.id for item in dataset))


def examples_from_run(run_dir: str | Path) -> TrainingExamples:
    """:func:`examples_from_dataset` of the suite a run directory was run on (checked by its sha256)."""
    return examples_from_dataset(run_dataset(run_dir))


def run_dataset(run_dir: str | Path) -> Any:
    """The dataset a run directory was run on, refused when it changed since (its sha256 differs)."""
    from ..datasets import load_dataset
    from ..errors import ConfigError
    from ..runner.store import RunStore

    store = RunStore(run_dir)
    if not store.manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=str(run_dir))
    manifest = store.read_manifest()
    dataset = load_dataset(manifest["config"]["suite"])
    if dataset.sha256 != manifest["dataset"]["sha256"]:
        raise ConfigError("the dataset changed since this run; its prompts are not the ones the run asked",
                          file=str(dataset.path), field="sha256")
    return dataset


@dataclass(frozen=True)
class LabelScore:
    """One task type's cross-validated scores; ``precision`` is None when nothing was predicted as it."""

    precision: float | None
    recall: float
    support: int


@dataclass(frozen=True)
class ClassifierReport:
    """How well the classifier does, measured on items it was not trained on (see the module docstring).

    ``confusion[i][j]`` counts items of ``labels[i]`` predicted as ``labels[j]``.
    Per item (input order): ``cross_fit_predictions`` (best label),
    ``cross_fit_confidence`` (calibrated), ``fold_of``; :attr:`deployed_predictions`
    applies the abstain threshold (``None`` = default route).
    """

    labels: tuple[str, ...]
    n: int
    folds: int
    seed: int
    accuracy: float
    macro_accuracy: float
    per_label: Mapping[str, LabelScore]
    confusion: tuple[tuple[int, ...], ...]
    cross_fit_predictions: tuple[str, ...]
    cross_fit_confidence: tuple[float, ...]
    fold_of: tuple[int, ...]
    temperature: float
    abstain_below: float
    threshold_rule: str
    coverage: float
    """Share of items whose cross-fitted confidence reaches the threshold."""
    accepted_accuracy: float | None
    """Accuracy of the cross-fitted predictions that reach the threshold."""
    ids: tuple[str, ...] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def deployed_predictions(self) -> tuple[str | None, ...]:
        """Each item's label as the deployed router would use it: ``None`` where it abstains."""
        return tuple(p if c >= self.abstain_below else None
                     for p, c in zip(self.cross_fit_predictions, self.cross_fit_confidence))

    def to_dict(self, *, items: bool = False) -> dict[str, Any]:
        """JSON-safe summary (for the YAML header, the report and the model file); ``items`` adds per-item lists."""
        out: dict[str, Any] = {
            "method": f"stratified {self.folds}-fold cross-validation, seed {self.seed}",
            "folds": self.folds, "seed": self.seed, "n": self.n, "labels": list(self.labels), "accuracy": self.accuracy,
            "macro_accuracy": self.macro_accuracy,
            "per_label": {k: {"precision": v.precision, "recall": v.recall, "support": v.support}
                          for k, v in self.per_label.items()},
            "confusion": [list(row) for row in self.confusion],
            "temperature": self.temperature, "abstain_below": self.abstain_below,
            "threshold_rule": self.threshold_rule, "coverage": self.coverage,
            "accepted_accuracy": self.accepted_accuracy, "settings": dict(self.settings),
        }
        if items:
            out["items"] = {"ids": list(self.ids) if self.ids else None, "fold": list(self.fold_of),
                            "prediction": list(self.cross_fit_predictions),
                            "confidence": list(self.cross_fit_confidence)}
        return out

    def to_text(self) -> str:
        """What ``recommend`` prints: headline numbers, per task type scores, the confusion matrix."""
        accepted = "—" if self.accepted_accuracy is None else f"{self.accepted_accuracy:.1%}"
        lines = [f"task classifier: {self.folds}-fold cross-validation on {self.n} items (seed {self.seed})",
                 f"  accuracy {self.accuracy:.1%}, macro accuracy (mean recall) {self.macro_accuracy:.1%}",
                 (f"  abstains below confidence {self.abstain_below:.2f} (temperature {self.temperature:.2f}): "
                  f"{self.coverage:.1%} of items routed by task, {accepted} of those right"),
                 f"  {'task type':<{self._width}}  precision  recall  support"]
        for label in self.labels:
            score = self.per_label[label]
            precision = "—" if score.precision is None else f"{score.precision:.1%}"
            lines.append(f"  {label:<{self._width}}  {precision:>9}  {score.recall:>6.1%}  {score.support:>7}")
        short = [label[:6] for label in self.labels]
        lines.append("  confusion (rows: true, columns: predicted)")
        lines.append(f"  {'':<{self._width}}  " + " ".join(f"{s:>6}" for s in short))
        for label, row in zip(self.labels, self.confusion):
            lines.append(f"  {label:<{self._width}}  " + " ".join(f"{v:>6}" for v in row))
        return "\n".join(lines)

    @property
    def _width(self) -> int:
        return max(9, *(len(label) for label in self.labels))


def train_task_classifier(texts: Sequence[str], labels: Sequence[str], *, folds: int = 5, seed: int = 0,
                          ids: Sequence[str] | None = None, features: FeatureSpec | None = None,
                          l2: float = 1e-3, template_weight: float = 0.3, target_accuracy: float = 0.97,
                          min_confidence: float = 0.5,
                          abstain_below: float | None = None) -> tuple[LearnedClassifier, ClassifierReport]:
    """Cross-validate, calibrate and fit a task classifier on ``texts`` (request texts) and their ``labels``.

    ``l2`` is the weight penalty, ``template_weight`` the weight of template-free
    copies (0: none); ``abstain_below`` fixes the threshold instead of the rule
    (``target_accuracy``, ``min_confidence``). Deterministic for a given ``seed``.
    """
    import numpy as np

    from ._classifier_fit import choose_threshold, fit_temperature, stratified_folds

    texts, label_names, y = _checked(texts, labels, ids, l2, template_weight, target_accuracy, min_confidence,
                                     abstain_below)
    spec = features or FeatureSpec()
    trainer = _Trainer(texts, y, len(label_names), spec, l2, template_weight)
    fold_of = stratified_folds(texts, y, folds, seed)
    scores = np.zeros((len(texts), len(label_names)), np.float32)
    for fold in range(folds):
        held_out = np.flatnonzero(fold_of == fold)
        model = trainer.fit(np.flatnonzero(fold_of != fold), label_names)
        scores[held_out] = [model.logits(texts[i]) for i in held_out]
    temperature = fit_temperature(scores, y)
    probs = calibrated(scores, temperature)
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    if abstain_below is None:
        abstain_below, rule = choose_threshold(confidence, predicted == y, target_accuracy=target_accuracy,
                                               min_confidence=min_confidence)
    else:
        rule = "given by the caller"
    settings = {"features": spec.to_dict(), "l2": l2, "template_weight": template_weight,
                "target_accuracy": target_accuracy, "min_confidence": min_confidence}
    report = _report(label_names, y, predicted, confidence, fold_of, folds, seed, temperature, abstain_below, rule,
                     ids, settings)
    final = trainer.fit(np.arange(len(texts)), label_names)
    model = LearnedClassifier(labels=label_names, spec=spec, rows=final.rows, weights=final.weights, bias=final.bias,
                              dense_weights=final.dense_weights, dense_mean=final.dense_mean,
                              dense_scale=final.dense_scale, dense_range=final.dense_range,
                              temperature=temperature, abstain_below=abstain_below,
                              metrics=report.to_dict())
    return model, report


def _checked(texts: Sequence[str], labels: Sequence[str], ids: Sequence[str] | None, l2: float,
             template_weight: float, target_accuracy: float, min_confidence: float,
             abstain_below: float | None) -> tuple[list[str], tuple[str, ...], np.ndarray]:
    import numpy as np

    texts, labels = list(texts), list(labels)
    if len(texts) != len(labels) or (ids is not None and len(ids) != len(texts)):
        raise ValueError(f"texts, labels and ids differ in length ({len(texts)}, {len(labels)}, "
                         f"{'—' if ids is None else len(ids)})")
    bad = next((i for i, (t, l) in enumerate(zip(texts, labels)) if not isinstance(t, str)
                or not isinstance(l, str) or not l), None)
    if bad is not None:
        raise ValueError(f"item {bad}: texts must be strings and labels non-empty strings")
    names = tuple(sorted(set(labels)))
    if len(names) < 2:
        raise ValueError(f"a task classifier needs two or more task types, got {list(names)}")
    for name, value, low, high in (("l2", l2, 0.0, 1e6), ("template_weight", template_weight, 0.0, 1.0),
                                   ("target_accuracy", target_accuracy, 0.0, 1.0),
                                   ("min_confidence", min_confidence, 0.0, 1.0),
                                   ("abstain_below", 0.0 if abstain_below is None else abstain_below, 0.0, 1.0)):
        if not low <= value <= high:
            raise ValueError(f"{name} must be from {low:g} to {high:g}, got {value!r}")
    index = {name: i for i, name in enumerate(names)}
    return texts, names, np.array([index[label] for label in labels], np.int64)


class _Trainer:
    """Fits one model on a subset of the items; features of each text are computed once."""

    def __init__(self, texts: list[str], y: np.ndarray, n_labels: int, spec: FeatureSpec, l2: float,
                 template_weight: float) -> None:
        self.texts, self.y, self.n_labels, self.spec = texts, y, n_labels, spec
        self.l2, self.template_weight = l2, template_weight
        self._features: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}

    def fit(self, subset: np.ndarray, label_names: tuple[str, ...]) -> LearnedClassifier:
        import numpy as np
        import scipy.sparse as sp

        from ._classifier_fit import fit_logistic, template_free_copies

        texts = [self.texts[i] for i in subset]
        y, weight = list(self.y[subset]), [1.0] * len(texts)
        if self.template_weight > 0:
            # Copies come from the training texts only: which sentences are wrapper is part of what is learned.
            for label, copy in zip(self.y[subset], template_free_copies(texts)):
                if copy is not None:
                    texts.append(copy)
                    y.append(label)
                    weight.append(self.template_weight)
        feats = [self._featurize(t) for t in texts]
        indptr = np.cumsum([0] + [f[0].size for f in feats])
        design = sp.csr_matrix((np.concatenate([f[1] for f in feats]).astype(np.float64),
                                np.concatenate([f[0] for f in feats]), indptr),
                               shape=(len(feats), 1 << self.spec.hash_bits))
        fitted = fit_logistic(design, np.array([f[2] for f in feats]), np.array(y), np.array(weight),
                              self.n_labels, self.l2)
        return LearnedClassifier(labels=label_names, spec=self.spec, rows=fitted.rows, weights=fitted.weights,
                                 bias=fitted.bias, dense_weights=fitted.dense_weights, dense_mean=fitted.dense_mean,
                                 dense_scale=fitted.dense_scale, dense_range=fitted.dense_range,
                                 temperature=1.0, abstain_below=0.0,
                                 metrics={"iterations": fitted.iterations, "converged": fitted.converged})

    def _featurize(self, text: str) -> tuple[np.ndarray, np.ndarray, float]:
        if text not in self._features:
            self._features[text] = featurize(text, self.spec)
        return self._features[text]


def _report(labels: tuple[str, ...], y: np.ndarray, predicted: np.ndarray, confidence: np.ndarray,
            fold_of: np.ndarray, folds: int, seed: int, temperature: float, threshold: float, rule: str,
            ids: Sequence[str] | None, settings: dict[str, Any]) -> ClassifierReport:
    import numpy as np

    k = len(labels)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y, predicted), 1)
    support, predicted_as = confusion.sum(axis=1), confusion.sum(axis=0)
    per_label = {label: LabelScore(precision=float(confusion[i, i] / predicted_as[i]) if predicted_as[i] else None,
                                   recall=float(confusion[i, i] / support[i]), support=int(support[i]))
                 for i, label in enumerate(labels)}
    accepted = confidence >= threshold
    return ClassifierReport(
        labels=labels, n=len(y), folds=folds, seed=seed, accuracy=float(np.mean(predicted == y)),
        macro_accuracy=float(np.mean([s.recall for s in per_label.values()])), per_label=per_label,
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        cross_fit_predictions=tuple(labels[i] for i in predicted),
        cross_fit_confidence=tuple(float(c) for c in confidence), fold_of=tuple(int(f) for f in fold_of),
        temperature=temperature, abstain_below=threshold, threshold_rule=rule, coverage=float(accepted.mean()),
        accepted_accuracy=float(np.mean(predicted[accepted] == y[accepted])) if accepted.any() else None,
        ids=tuple(ids) if ids is not None else None, settings=settings)
