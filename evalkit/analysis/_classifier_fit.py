"""The numerical parts of training a task classifier: folds, template copies, the fit, calibration.

* :func:`stratified_folds`: identical texts share a fold (a duplicate in the
  training folds would be the item itself); groups are dealt to folds label by
  label from a seeded shuffle, so every fold gets its share of every label.
* :func:`template_free_copies`: a benchmark's prompts wrap each case in a fixed
  instruction ("Solve this math word problem…"), so a model fitted on them learns
  the wrapper, and a real request without it looks like nothing it knows. A
  sentence (or a line) whose first five words open the same sentence in at least
  ``min_items`` prompts is wrapper; each prompt that has some gets a copy
  without it, trained at a lower weight, so the model also learns the case itself.
* :func:`fit_logistic`: multinomial logistic regression, L2 penalty on the
  weights (not the bias), classes weighted to equal total weight (the target is
  macro accuracy), fitted by L-BFGS over the slots the training texts use.
* :func:`fit_temperature` and :func:`choose_threshold`: calibration and the
  abstain rule, from out-of-fold scores.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..router import ROLE_MARK, TURN_SEPARATOR

__all__ = ["Fitted", "choose_threshold", "fit_logistic", "fit_temperature", "lbfgs", "softmax", "stratified_folds",
           "template_free_copies"]

_ROLE_BLOCK = re.compile(f"{ROLE_MARK}(system|user|assistant|tool)\n")
_SENTENCE_END = re.compile(r"((?<=[.!?:])[ \t]+|\n+)")
KEY_WORDS = 5


def stratified_folds(texts: Sequence[str], labels: Sequence[int], folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of every item: identical texts together, labels spread evenly."""
    group_of: dict[str, int] = {}
    groups = np.array([group_of.setdefault(text, len(group_of)) for text in texts])
    if folds < 2 or folds > len(group_of):
        raise ValueError(f"folds must be from 2 to the number of distinct texts ({len(group_of)}), got {folds}")
    _, first_item = np.unique(groups, return_index=True)
    group_label = np.asarray(labels)[first_item]  # each group takes its first item's label
    rng = np.random.default_rng(seed)
    group_fold = np.empty(len(group_of), np.int64)
    dealt = 0
    for label in np.unique(group_label):
        members = np.flatnonzero(group_label == label)
        rng.shuffle(members)
        group_fold[members] = (dealt + np.arange(members.size)) % folds
        dealt += members.size  # the next label starts where this one stopped: folds stay the same size
    return group_fold[groups]


def template_free_copies(texts: Sequence[str], *, min_items: int = 3) -> list[str | None]:
    """Per text, a copy without the sentences it shares with ``min_items`` or more texts (None: nothing to drop)."""
    parsed = [_blocks(text) for text in texts]
    seen = Counter(key for blocks in parsed for key in {_key(s) for _, content in blocks
                                                        for s, _ in _sentences(content)})
    out: list[str | None] = []
    for text, blocks in zip(texts, parsed):
        kept_blocks = []
        for role, content in blocks:
            kept = "".join(s + sep for s, sep in _sentences(content) if seen[_key(s)] < min_items).strip()
            if kept:
                kept_blocks.append(kept if role is None else f"{ROLE_MARK}{role}\n{kept}")
        copy = TURN_SEPARATOR.join(kept_blocks)
        out.append(copy if copy and copy != text else None)
    return out


def _blocks(text: str) -> list[tuple[str | None, str]]:
    parts = _ROLE_BLOCK.split(text)
    if len(parts) == 1:
        return [(None, text)]
    blocks = [(None, parts[0])] if parts[0].strip() else []
    blocks += [(parts[i], parts[i + 1].removesuffix(TURN_SEPARATOR)) for i in range(1, len(parts), 2)]
    return blocks


def _sentences(content: str) -> list[tuple[str, str]]:
    """(sentence, the separator after it) pairs, blank sentences left out."""
    parts = _SENTENCE_END.split(content) + [""]
    return [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i].strip()]


def _key(sentence: str) -> str:
    words = sentence.split()
    return " ".join(words[:KEY_WORDS])


@dataclass(frozen=True)
class Fitted:
    """A fitted model in the form ``LearnedClassifier`` takes."""

    rows: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    dense_weights: np.ndarray
    dense_mean: float
    dense_scale: float
    dense_range: tuple[float, float]
    iterations: int
    converged: bool


def fit_logistic(design: Any, lengths: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, n_labels: int,
                 l2: float, *, max_iter: int = 1000) -> Fitted:
    """Multinomial logistic regression on a CSR ``design`` (hashed slots) plus the standardised ``lengths``."""
    import scipy.sparse as sp
    used = np.unique(design.indices)
    mean, scale = float(lengths.mean()), float(lengths.std()) or 1.0
    data = sp.hstack([design[:, used], sp.csr_matrix(((lengths - mean) / scale)[:, None])], format="csr")
    data_t = data.T.tocsr()
    m = data.shape[1]
    onehot = np.eye(n_labels)[y]
    per_label = np.bincount(y, weights=sample_weight, minlength=n_labels)
    balance = np.divide(1.0, per_label * np.count_nonzero(per_label), out=np.zeros(n_labels), where=per_label > 0)
    weight = (sample_weight * balance[y])[:, None]  # sums to 1: each label present carries the same total weight

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, bias = theta[:m * n_labels].reshape(m, n_labels), theta[m * n_labels:]
        scores = data @ coef + bias
        scores -= scores.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scores).sum(axis=1, keepdims=True))
        log_p = scores - log_norm
        loss = -float((weight * onehot * log_p).sum()) + 0.5 * l2 * float((coef * coef).sum())
        residual = (np.exp(log_p) - onehot) * weight
        return loss, np.concatenate([(data_t @ residual + l2 * coef).ravel(), residual.sum(axis=0)])

    theta, iterations, converged = lbfgs(loss_and_gradient, np.zeros(m * n_labels + n_labels), max_iter=max_iter)
    coef = theta[:m * n_labels].reshape(m, n_labels)
    return Fitted(rows=used.astype(np.int32), weights=coef[:-1].astype(np.float32),
                  bias=theta[m * n_labels:].astype(np.float32), dense_weights=coef[-1:].astype(np.float32),
                  dense_mean=mean, dense_scale=scale, dense_range=(float(lengths.min()), float(lengths.max())),
                  iterations=iterations, converged=converged)


def lbfgs(loss_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]], start: np.ndarray, *,
          max_iter: int = 1000, memory: int = 5, gtol: float = 1e-6,
          ftol: float = 1e-10) -> tuple[np.ndarray, int, bool]:
    """Minimise a smooth function by L-BFGS (two-loop recursion, backtracking Armijo line search).

    (point, iterations, converged). Written here because scipy's L-BFGS-B spends
    ~75 ms of bookkeeping per iteration at the ~250k weights of a hashed model
    (measured), 50x the cost of the loss itself; this one costs a few vector
    operations. ``memory`` 5 fits the default suite to the same predictions as 10, 1.5x faster.
    """
    x = start
    loss, grad = loss_and_gradient(x)
    pairs: list[tuple[np.ndarray, np.ndarray, float]] = []
    for iteration in range(1, max_iter + 1):
        if float(np.abs(grad).max()) <= gtol:
            return x, iteration - 1, True
        direction = -_inverse_hessian_times(grad, pairs)
        slope = _dot(grad, direction)
        if slope >= 0:  # not a descent direction (curvature pairs went stale): start over from the gradient
            pairs.clear()
            direction = -grad / max(1.0, math.sqrt(_dot(grad, grad)))
            slope = _dot(grad, direction)
        step = 1.0
        while True:
            candidate = x + step * direction
            new_loss, new_grad = loss_and_gradient(candidate)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-12:
                return x, iteration, False
        s, y = candidate - x, new_grad - grad
        curvature = _dot(s, y)
        if curvature > 1e-12:
            pairs.append((s, y, 1.0 / curvature))
            del pairs[:-memory]
        done = loss - new_loss <= ftol * max(1.0, abs(loss))
        x, loss, grad = candidate, new_loss, new_grad
        if done:
            return x, iteration, True
    return x, max_iter, False


def _inverse_hessian_times(grad: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """The L-BFGS two-loop recursion: the inverse-Hessian estimate applied to ``grad``."""
    if not pairs:
        return grad / max(1.0, math.sqrt(_dot(grad, grad)))
    q = grad.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * _dot(s, q)
        q -= alpha * y
        alphas.append(alpha)
    s, y, _ = pairs[-1]
    q *= _dot(s, y) / _dot(y, y)
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        q += (alpha - rho * _dot(y, q)) * s
    return q


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # einsum, not BLAS: a multi-threaded BLAS dot of 250k numbers took 3-8 ms on a busy 2-core machine, einsum 0.1-0.3
    return float(np.einsum("i,i->", a, b))


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature``."""
    scaled = np.asarray(scores, np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``y`` (out-of-fold scores)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        probs = softmax(scores, float(np.exp(log_t)))
        return -float(np.log(np.clip(probs[np.arange(len(y)), y], 1e-300, None)).mean())

    result = minimize_scalar(nll, bounds=(np.log(0.01), np.log(100.0)), method="bounded")
    return float(np.exp(result.x))


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, *, target_accuracy: float,
                     min_confidence: float) -> tuple[float, str]:
    """The abstain threshold and the rule that chose it, in words.

    The lowest confidence ``t`` at which the out-of-fold predictions with
    confidence ≥ ``t`` are right at least ``target_accuracy`` of the time, raised
    to ``min_confidence``; 1.0 (always abstain) when no ``t`` reaches the target.
    """
    order = np.argsort(-confidence, kind="stable")
    right = np.cumsum(correct[order])
    accuracy = right / np.arange(1, len(order) + 1)
    # Only cut between distinct confidences: ties are accepted or refused together.
    last_of_tie = np.r_[confidence[order][1:] != confidence[order][:-1], True]
    reaching = np.flatnonzero((accuracy >= target_accuracy) & last_of_tie)
    if reaching.size == 0:
        return 1.0, (f"no confidence level reaches {target_accuracy:.0%} out-of-fold accuracy: "
                     "the classifier abstains on every request")
    lowest = float(confidence[order][reaching[-1]])
    threshold = max(lowest, min_confidence)
    return threshold, (f"lowest confidence at which out-of-fold accuracy of accepted predictions is "
                       f">= {target_accuracy:.0%} ({lowest:.3f}), at least {min_confidence:.2f}")
