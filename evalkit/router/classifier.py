"""A learned task classifier: names a request's task type from its text, or abstains.

:class:`LearnedClassifier` is a multinomial logistic regression over hashed word
and character n-grams of a bounded window of the request text plus its length
(:mod:`evalkit.router._task_features`), with a calibrated confidence:

* ``classifier(request)`` → the task type, or ``None`` when the calibrated
  confidence is below :attr:`~LearnedClassifier.abstain_below` (the request then
  takes the task router's default route);
* :meth:`~LearnedClassifier.predict` → a :class:`TaskPrediction` (the best label,
  its confidence, and whether it was accepted), for monitoring;
* :meth:`~LearnedClassifier.predict_proba` → ``{label: probability}``.

It is trained by :func:`evalkit.analysis.classifier_training.train_task_classifier`
and travels as two files (:meth:`~LearnedClassifier.save`, :meth:`~LearnedClassifier.load`):
``NAME.json`` (format, version, labels, feature spec, calibration, abstain threshold,
cross-validated metrics, and the name and sha256 of the weights) and ``NAME.npz``
(the weight rows that are not zero). No pickle, no code: arrays are read with
``allow_pickle=False`` and every field is checked; a bad file is a
:class:`~evalkit.errors.ConfigError` naming the file and the field.

Only numpy and the standard library are used here, and numpy is imported on first
use, so ``import evalkit`` stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ._task_features import FeatureSpec, featurize, request_text

if TYPE_CHECKING:
    import numpy as np

    from ..types import ChatRequest

__all__ = ["FORMAT", "FORMAT_VERSION", "FeatureSpec", "LearnedClassifier", "TaskPrediction", "request_text"]

FORMAT = "evalkit.task_classifier"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class TaskPrediction:
    """What the classifier decided about one request.

    ``best`` is the most likely task type and ``confidence`` its calibrated
    probability; ``label`` is ``best`` when the confidence reaches the abstain
    threshold and ``None`` when the classifier abstains.
    """

    label: str | None
    best: str
    confidence: float

    @property
    def abstained(self) -> bool:
        return self.label is None


@dataclass(frozen=True, eq=False)
class LearnedClassifier:
    """A trained task classifier (see the module docstring); build one with ``train_task_classifier`` or :meth:`load`.

    ``rows`` are the hashed slots with a weight, ``weights`` their
    ``(len(rows), len(labels))`` weights; ``dense_weights`` (one per label)
    weigh the length feature ``x = ln(1 + characters)``, clipped to the range
    seen in training (``dense_range``: no extrapolation to lengths never seen)
    and standardised (``(x - dense_mean) / dense_scale``); ``bias`` is per
    label. Probabilities are ``softmax(logits / temperature)``.
    """

    labels: tuple[str, ...]
    spec: FeatureSpec
    rows: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    dense_weights: np.ndarray
    dense_mean: float
    dense_scale: float
    dense_range: tuple[float, float]
    temperature: float
    abstain_below: float
    metrics: Mapping[str, Any] = field(default_factory=dict)
    """The cross-validated report this model was trained with (``ClassifierReport.to_dict()``)."""
    _table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import numpy as np

        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "dense_range", tuple(map(float, self.dense_range)))
        table = np.zeros((1 << self.spec.hash_bits, len(self.labels)), np.float32)
        table[np.asarray(self.rows, np.int64)] = np.asarray(self.weights, np.float32)
        object.__setattr__(self, "_table", table)  # one row per slot: a take per request, no lookup
        object.__setattr__(self, "bias", np.asarray(self.bias, np.float32))
        object.__setattr__(self, "dense_weights", np.asarray(self.dense_weights, np.float32).reshape(-1))

    # -- prediction (the hot path) ---------------------------------------------------------------

    def __call__(self, request: ChatRequest) -> str | None:
        """The task type of ``request``, or ``None`` to abstain (route it to the default)."""
        return self.predict(request).label

    def predict(self, request: ChatRequest | str) -> TaskPrediction:
        """The decision for a request (or a text made by :func:`request_text`)."""
        import numpy as np

        # The winner's calibrated probability without the whole softmax: exp(0) / sum(exp(z - z_max)),
        # the same float32 steps as calibrated() (the hot path; each numpy call costs about a µs).
        scores = self.logits(request if isinstance(request, str) else request_text(request))
        scores /= np.float32(self.temperature)
        best = int(scores.argmax())
        scores -= scores[best]
        confidence = float(np.float32(1.0) / np.exp(scores).sum())
        label = self.labels[best]
        return TaskPrediction(label if confidence >= self.abstain_below else None, label, confidence)

    def predict_proba(self, text: ChatRequest | str) -> dict[str, float]:
        """Calibrated probability of every label for a text (or a request); they sum to 1."""
        probs = self._probabilities(text if isinstance(text, str) else request_text(text))
        return {label: float(p) for label, p in zip(self.labels, probs)}

    def logits(self, text: str) -> np.ndarray:
        """Uncalibrated scores per label (temperature not applied), as float32."""
        import numpy as np

        slots, values, length = featurize(text, self.spec)
        scores: np.ndarray = values @ self._table[slots] if slots.size else np.zeros(len(self.labels), np.float32)
        length = min(max(length, self.dense_range[0]), self.dense_range[1])
        scores += self.bias  # in place: on ten labels the allocations cost more than the arithmetic
        scores += self.dense_weights * np.float32((length - self.dense_mean) / self.dense_scale)
        return scores

    def _probabilities(self, text: str) -> np.ndarray:
        return calibrated(self.logits(text), self.temperature)

    # -- the artifact ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (JSON) and its weights beside it (same name, ``.npz``); returns the JSON path.

        Both files are written whole or not at all (temporary file, then rename).
        """
        import numpy as np

        from ._model_files import write_model

        arrays = {"rows": np.asarray(self.rows, np.int32), "weights": np.asarray(self.weights, np.float32),
                  "bias": self.bias, "dense_weights": self.dense_weights}
        return write_model(path, arrays, {
            "format": FORMAT, "version": FORMAT_VERSION, "labels": list(self.labels),
            "features": self.spec.to_dict(),
            "dense": {"feature": "log1p_chars", "mean": self.dense_mean, "scale": self.dense_scale,
                      "min": self.dense_range[0], "max": self.dense_range[1]},
            "calibration": {"method": "temperature", "temperature": self.temperature},
            "abstain_below": self.abstain_below,
            "metrics": dict(self.metrics),
        })

    @classmethod
    def load(cls, path: str | Path) -> LearnedClassifier:
        """Read a model written by :meth:`save`; a malformed or foreign file is a ConfigError naming the field."""
        from ._classifier_file import read_model

        return cls(**read_model(Path(path), FORMAT, FORMAT_VERSION))

    def describe(self) -> str:
        """One line: labels, threshold, and the cross-validated macro accuracy when known."""
        macro = self.metrics.get("macro_accuracy")
        score = f", cross-validated macro accuracy {macro:.1%}" if isinstance(macro, float) else ""
        return (f"learned task classifier: {len(self.labels)} task types ({', '.join(self.labels)}); "
                f"abstains below confidence {self.abstain_below:.2f}{score}")


def calibrated(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` in float32, as every prediction computes it (rows of a 2-D array too)."""
    import numpy as np

    scores = np.asarray(logits, np.float32) / np.float32(temperature)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probabilities: np.ndarray = scores / scores.sum(axis=-1, keepdims=True)
    return probabilities
