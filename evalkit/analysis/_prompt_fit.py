"""The numerical parts of the per-prompt router: features, one logistic model per target, Platt scaling.

* :func:`featurize_all`: every text's hashed n-grams (a CSR matrix) and size
  features, with :func:`evalkit.router.featurize` and
  :func:`evalkit.router.prompt.dense_features`, exactly what the router computes.
* :func:`fit_pass_models`: per target, logistic regression of the item's mean
  score (a pass rate: soft labels are fine for the log loss) on the features,
  L2 penalty on the weights (not the bias), each item weighted by its repeats,
  each target's loss a weighted mean. The N targets' losses are independent,
  so they are summed and fitted at once by Newton-CG over the slots the training
  texts use (one sparse product serves every target).
* :func:`fit_platt`: Platt scaling of one target's held-out scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..router import FeatureSpec, featurize
from ..router.prompt import dense_features

__all__ = ["DEFAULT_L2", "Features", "PassModels", "featurize_all", "fit_pass_models", "fit_platt"]

DEFAULT_L2 = 1e-3
"""L2 penalty per target (the loss is a mean over items). Chosen by held-out log loss on RouteLLM's GSM8K and
MMLU and the emulator's default suite over 1e-4 … 1e-2 (see benchmarks/prompt_router.py --l2-sweep)."""


@dataclass(frozen=True)
class Features:
    """Hashed n-grams (CSR, ``n × 2**hash_bits``) and raw size features (``n × 2``) of every item."""

    sparse: Any
    dense: np.ndarray
    spec: FeatureSpec


def featurize_all(texts: Sequence[str], spec: FeatureSpec) -> Features:
    """The features of every text, in order."""
    import scipy.sparse as sp

    indptr, indices, values, dense = [0], [], [], []
    for text in texts:
        slots, weights, log_length = featurize(text, spec)
        indices.append(slots)
        values.append(weights)
        indptr.append(indptr[-1] + len(slots))
        dense.append(dense_features(text, log_length))
    matrix = sp.csr_matrix((np.concatenate(values).astype(np.float64) if values else np.empty(0),
                            np.concatenate(indices) if indices else np.empty(0, np.int32), np.asarray(indptr)),
                           shape=(len(texts), 1 << spec.hash_bits))
    return Features(matrix, np.asarray(dense, np.float64).reshape(len(texts), 2), spec)


@dataclass(frozen=True)
class PassModels:
    """Fitted weights in the form :class:`~evalkit.router.prompt.PromptModel` takes (before calibration)."""

    rows: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    dense_weights: np.ndarray
    dense_mean: np.ndarray
    dense_scale: np.ndarray
    converged: bool

    def scores(self, features: Features, index: np.ndarray) -> np.ndarray:
        """Raw scores (``len(index) × N``) of the items ``index``."""
        sparse = features.sparse[index][:, self.rows] @ self.weights
        dense = (features.dense[index] - self.dense_mean) / self.dense_scale
        return np.asarray(sparse) + self.bias + dense @ self.dense_weights


def fit_pass_models(features: Features, index: np.ndarray, scores: np.ndarray, weights: np.ndarray,
                    l2: float = DEFAULT_L2, *, max_iter: int = 100) -> PassModels:
    """One logistic model per target on the items ``index`` (``scores``/``weights`` are all items × N)."""
    import scipy.sparse as sp
    from scipy.optimize import minimize
    from scipy.special import expit

    sub = features.sparse[index]
    used = np.unique(sub.indices)
    dense = features.dense[index]
    mean, scale = dense.mean(axis=0), dense.std(axis=0)
    # A feature constant in training (every prompt one turn) has a rounding-error spread: dividing by it would blow
    # a new value up to ~1e16 at prediction. Its weight stays 0 (no gradient), so any scale works; 1 is safe.
    scale = np.where(scale > 1e-9 * np.maximum(1.0, np.abs(mean)), scale, 1.0)
    data = sp.hstack([sub[:, used], sp.csr_matrix((dense - mean) / scale)], format="csr")
    data_t = data.T.tocsr()
    y = scores[index]
    w = weights[index]
    w = w / np.maximum(w.sum(axis=0, keepdims=True), 1e-300)  # each target's loss is a weighted mean
    n_features, n_targets = data.shape[1], y.shape[1]

    curvature: dict[str, np.ndarray] = {}

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef = theta[:n_features * n_targets].reshape(n_features, n_targets)
        bias = theta[n_features * n_targets:]
        z = data @ coef + bias
        loss = float((w * (np.logaddexp(0.0, z) - y * z)).sum()) + 0.5 * l2 * float((coef * coef).sum())
        p = expit(z)
        residual = w * (p - y)
        curvature["theta"], curvature["d"] = theta.copy(), w * p * (1.0 - p)
        gradient = data_t @ residual + l2 * coef
        return loss, np.concatenate([gradient.ravel(), residual.sum(axis=0)])

    def hessian_times(theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        if "theta" not in curvature or not np.array_equal(theta, curvature["theta"]):
            loss_and_gradient(theta)
        step = v[:n_features * n_targets].reshape(n_features, n_targets)
        u = (data @ step + v[n_features * n_targets:]) * curvature["d"]
        return np.concatenate([(data_t @ u + l2 * step).ravel(), u.sum(axis=0)])

    start = np.zeros(n_features * n_targets + n_targets)
    base = np.clip((w * y).sum(axis=0), 1e-4, 1 - 1e-4)
    start[n_features * n_targets:] = np.log(base / (1 - base))  # start at each target's pass rate
    # Newton-CG with exact Hessian-vector products: ~10 iterations where L-BFGS needs 100+ (measured 5-8x faster).
    result = minimize(loss_and_gradient, start, jac=True, hessp=hessian_times, method="Newton-CG",
                      options={"maxiter": max_iter, "xtol": 1e-8})
    coef = result.x[:n_features * n_targets].reshape(n_features, n_targets)
    n_sparse = len(used)
    return PassModels(rows=used.astype(np.int32), weights=coef[:n_sparse], bias=result.x[n_features * n_targets:],
                      dense_weights=coef[n_sparse:], dense_mean=mean, dense_scale=scale,
                      converged=bool(result.success))


def fit_platt(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """``(scale, shift)`` with ``sigmoid(scale·z + shift)`` minimising the weighted log loss of ``y``.

    A tiny ridge on (scale - 1) and shift keeps it finite when the scores
    separate the labels perfectly.
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    w = w / max(float(w.sum()), 1e-300)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta
        t = a * z + b
        value = float((w * (np.logaddexp(0.0, t) - y * t)).sum()) + 1e-6 * ((a - 1) ** 2 + b ** 2)
        r = w * (expit(t) - y)
        return value, np.array([float((r * z).sum()) + 2e-6 * (a - 1), float(r.sum()) + 2e-6 * b])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])
