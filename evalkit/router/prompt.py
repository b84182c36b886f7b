"""PromptRouter: per request, each target's chance of passing, then the cheapest target that clears the bar.

A :class:`PromptModel` holds, per target, a calibrated logistic model of "this
target passes this prompt" over the prompt's features: the hashed word and
character n-grams of :mod:`evalkit.router._task_features` (the same ones the
learned task classifier reads) plus two size features, ``ln(1 + characters)``
and ``ln(1 + turns)``. The raw score is ``values · W[slots] + b + dense · V``;
Platt scaling (``sigmoid(scale · score + shift)``, fitted on held-out folds)
turns it into a probability. It is trained by
:func:`evalkit.analysis.prompt_routing.train_prompt_router`.

:class:`PromptRouter` turns those probabilities into an order of targets with
one of two rules (:func:`order_one` per request; :func:`rank_targets`, the
same keys over many items, in the offline replay), tries the first and falls
back along the order:

* ``min_quality`` (a bar ``t``): targets with ``p >= t`` that are priced,
  cheapest first (ties: the likelier to pass, then the order of the model);
  then those that clear the bar but are unpriced, likeliest first; then the
  rest, likeliest first. **When no target clears the bar** the request goes
  to the target most likely to pass (then the next likeliest): the router
  never refuses a request for want of a good enough target.
* ``lambda`` (a trade-off ``λ`` in quality per USD): priced targets by
  ``p − λ·cost`` (highest first), then unpriced targets, likeliest first.

**Unpriced targets** (cost ``None``, never taken as $0) rank after every
priced one that the rule puts in the same place, so the router never prefers
a target because its price is unknown.

The artifact is two files (:meth:`PromptModel.save` / :meth:`PromptModel.load`):
``NAME.json`` (format, version, targets with their cost per request as a
Decimal string or null and their calibration, the feature spec, the rule and
what it was calibrated to hit, the cross-fitted metrics, and the name and
sha256 of the weights) and ``NAME.npz`` (the weights). No pickle, no code;
a bad file is a :class:`~evalkit.errors.ConfigError` naming the file and the
field (:mod:`evalkit.router._prompt_file`). Prediction uses numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ErrorKind, ProviderError
from ..types import Attempt, ChatRequest, ChatResponse
from ._base import Router, RouterOptions, Target, as_target
from ._call import RoutedCall
from ._retry import DEFAULT_POLICY, RetryPolicy
from ._task_features import ROLE_MARK, FeatureSpec, featurize, request_text
from ._window import PromptSize

if TYPE_CHECKING:
    from typing import Unpack

    import numpy as np

__all__ = ["DENSE_FEATURES", "FORMAT", "FORMAT_VERSION", "RULES", "PromptDecision", "PromptModel", "PromptRouter",
           "RoutingRule", "dense_features", "order_one", "rank_targets", "sigmoid"]

FORMAT = "evalkit.prompt_router"
FORMAT_VERSION = 1
RULES = ("min_quality", "lambda")
DENSE_FEATURES = ("log1p_chars", "log1p_turns")
"""The size features, in this order: ``ln(1 + characters of the text)``, ``ln(1 + role marks in it)``."""


@dataclass(frozen=True)
class RoutingRule:
    """How probabilities become a choice: ``kind`` is ``min_quality`` (a bar) or ``lambda`` (quality per USD).

    ``calibrated_to`` records what the value was chosen to hit on held-out
    folds (the requested quality or cost, and what was reached); empty when
    the value was set by hand.
    """

    kind: str
    value: float
    calibrated_to: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ConfigError(f"expected one of {', '.join(RULES)}, got {self.kind!r}", field="rule.kind")
        value = self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"expected a finite number >= 0, got {value!r}", field="rule.value")
        if self.kind == "min_quality" and value > 1:
            raise ConfigError(f"a quality bar is from 0 to 1, got {value!r}", field="rule.value")
        object.__setattr__(self, "value", float(value))

    def describe(self) -> str:
        what = f"quality bar {self.value:.3f}" if self.kind == "min_quality" else f"lambda {self.value:.4g}/USD"
        goal = self.calibrated_to.get("goal")
        return f"{what} (calibrated: {goal})" if goal else what


def dense_features(text: str, log_length: float) -> tuple[float, float]:
    """The size features of a text made by :func:`request_text` (see :data:`DENSE_FEATURES`)."""
    return log_length, math.log1p(text.count(ROLE_MARK))


def rank_targets(probs: np.ndarray, costs: np.ndarray, kind: str, value: float) -> np.ndarray:
    """The order to try targets in, per row of ``probs`` (``(n, N)``): indices, first choice first.

    ``costs`` is ``(N,)`` USD per request, NaN for unpriced. See the module
    docstring for the two rules. The offline evaluation calls this for every
    item at once; the router calls :func:`order_one`, which sorts by the same
    keys (a test checks they agree, ties included).
    """
    import numpy as np

    probs = np.asarray(probs, np.float64)
    n_targets = probs.shape[-1]
    priced = ~np.isnan(costs)
    known = np.where(priced, costs, 0.0)
    index = np.broadcast_to(np.arange(n_targets), probs.shape)
    if kind == "min_quality":
        group = np.where(probs >= value, np.where(priced, 0, 1), 2)
        primary = np.where(group == 0, known, -probs)
    else:
        group = np.broadcast_to(np.where(priced, 0, 1), probs.shape)
        primary = np.where(group == 0, -(probs - value * known), -probs)
    return np.lexsort((index, -probs, primary, group), axis=-1)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` as ``(1 + tanh(z / 2)) / 2``: one ufunc, and no overflow for any finite ``z``."""
    import numpy as np

    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))


def order_one(probs: Sequence[float], costs: Sequence[float | None], kind: str, value: float) -> list[int]:
    """:func:`rank_targets` for one request, in plain Python (a few targets: faster than numpy's fixed costs).

    The sort keys are the same tuples (group, primary, -p, index), so both give the same order.
    """
    keys = []
    for i, (p, cost) in enumerate(zip(probs, costs)):
        if kind == "min_quality":
            group = (0 if cost is not None else 1) if p >= value else 2
            primary = cost if group == 0 else -p
        elif cost is not None:
            group, primary = 0, -(p - value * cost)
        else:
            group, primary = 1, -p
        keys.append((group, primary, -p, i))
    keys.sort()
    return [k[3] for k in keys]


@dataclass(frozen=True)
class PromptDecision:
    """What the router decided for one request: targets in the order tried, and each one's pass probability."""

    order: tuple[str, ...]
    probabilities: Mapping[str, float]
    rule: RoutingRule

    @property
    def choice(self) -> str:
        """The first target tried."""
        return self.order[0]


@dataclass(frozen=True, eq=False)
class PromptModel:
    """Per-target pass probabilities of a prompt (see the module docstring). Build with training or :meth:`load`.

    ``weights`` is ``(len(rows), N)`` for the hashed slots ``rows``;
    ``dense_weights`` is ``(2, N)`` for the standardised size features
    (``(x - dense_mean) / dense_scale``); ``platt_scale``/``platt_shift`` map a
    target's raw score to its calibrated probability. ``costs`` are USD per
    request per target (``None``: unpriced).
    """

    targets: tuple[str, ...]
    costs: tuple[Decimal | None, ...]
    spec: FeatureSpec
    rows: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    dense_weights: np.ndarray
    dense_mean: np.ndarray
    dense_scale: np.ndarray
    platt_scale: np.ndarray
    platt_shift: np.ndarray
    rule: RoutingRule
    metrics: Mapping[str, Any] = field(default_factory=dict)
    _table: np.ndarray = field(init=False, repr=False)
    _affine: np.ndarray = field(init=False, repr=False)
    _cost_array: np.ndarray = field(init=False, repr=False)
    _cost_list: list[float | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import numpy as np

        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "costs", tuple(None if c is None else Decimal(c) for c in self.costs))
        n = len(self.targets)
        if n < 1 or len(set(self.targets)) != n or len(self.costs) != n:
            raise ValueError("a prompt model needs distinct target names, one cost (or None) each")
        for name in ("bias", "platt_scale", "platt_shift", "dense_mean", "dense_scale"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), np.float64).reshape(-1))
        object.__setattr__(self, "dense_weights", np.asarray(self.dense_weights, np.float64).reshape(-1, n))
        # Stored as the file stores them, so a saved and loaded model computes exactly what this one does.
        object.__setattr__(self, "rows", np.asarray(self.rows, np.int32))
        object.__setattr__(self, "weights", np.asarray(self.weights, np.float32).reshape(-1, n))
        # Platt scaling and the size features' standardisation are affine: folded into the weights once here,
        # so a request costs one take, one product and one sigmoid.
        scale = self.platt_scale
        table = np.zeros((1 << self.spec.hash_bits, n), np.float32)
        table[self.rows] = self.weights.astype(np.float64) * scale
        dense = self.dense_weights / self.dense_scale[:, None]
        object.__setattr__(self, "_table", table)  # one row per slot: a take per request, no lookup
        offset = scale * (self.bias - self.dense_mean @ dense) + self.platt_shift
        object.__setattr__(self, "_affine", np.vstack([dense * scale, offset]))  # rows: chars, turns, 1
        object.__setattr__(self, "_cost_array",
                           np.array([np.nan if c is None else float(c) for c in self.costs], np.float64))
        object.__setattr__(self, "_cost_list", [None if c is None else float(c) for c in self.costs])

    def with_rule(self, rule: RoutingRule) -> PromptModel:
        """The same model deciding with another rule."""
        return replace(self, rule=rule)

    @property
    def cost_array(self) -> np.ndarray:
        """Costs per request as floats, NaN where unpriced (what :func:`rank_targets` takes)."""
        return self._cost_array

    # -- prediction (the hot path) ---------------------------------------------------------------

    def logits(self, text: str) -> np.ndarray:
        """Calibrated log-odds of passing, per target, for a text made by :func:`request_text`."""
        import numpy as np

        slots, values, log_length = featurize(text, self.spec)
        turns = math.log1p(text.count(ROLE_MARK))  # = dense_features(text, log_length)[1], inlined: the hot path
        out: np.ndarray = np.array((log_length, turns, 1.0)) @ self._affine
        if slots.size:
            out += values @ np.take(self._table, slots, axis=0)
        return out

    def probabilities(self, request: ChatRequest | str) -> np.ndarray:
        """Calibrated chance that each target passes ``request`` (or a :func:`request_text` text), float64."""
        import numpy as np

        return np.array(self._probabilities(request if isinstance(request, str) else request_text(request)))

    def _probabilities(self, text: str) -> list[float]:
        # sigmoid() in plain floats: for a handful of targets cheaper than numpy's per-call costs
        return [0.5 * (1.0 + math.tanh(0.5 * z)) for z in self.logits(text).tolist()]

    def order(self, request: ChatRequest | str, rule: RoutingRule | None = None) -> tuple[list[int], list[float]]:
        """Target indices in the order to try them, and each target's probability (plain lists: the hot path)."""
        rule = rule or self.rule
        probs = self._probabilities(request if isinstance(request, str) else request_text(request))
        return order_one(probs, self._cost_list, rule.kind, rule.value), probs

    def decide(self, request: ChatRequest | str, rule: RoutingRule | None = None) -> PromptDecision:
        """The order of targets for ``request`` and the probabilities behind it."""
        rule = rule or self.rule
        order, probs = self.order(request, rule)
        return PromptDecision(tuple(self.targets[i] for i in order), dict(zip(self.targets, probs)), rule)

    # -- the artifact ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (JSON) and its weights beside it (same name, ``.npz``); returns the JSON path.

        Each file is written whole or not at all (temporary file, then rename).
        """
        from ._model_files import write_model

        arrays = {"rows": self.rows, "weights": self.weights, "bias": self.bias, "dense_weights": self.dense_weights}
        return write_model(path, arrays, {
            "format": FORMAT, "version": FORMAT_VERSION,
            "targets": [{"name": name, "cost_per_request_usd": None if cost is None else str(cost),
                         "calibration": {"method": "platt", "scale": float(a), "shift": float(b)}}
                        for name, cost, a, b in zip(self.targets, self.costs, self.platt_scale, self.platt_shift)],
            "unpriced": "a target with no cost ranks after every priced target the rule puts in the same place",
            "features": self.spec.to_dict(),
            "dense": {"names": list(DENSE_FEATURES), "mean": self.dense_mean.tolist(),
                      "scale": self.dense_scale.tolist()},
            "rule": {"kind": self.rule.kind, "value": self.rule.value,
                     "calibrated_to": dict(self.rule.calibrated_to)},
            "metrics": dict(self.metrics),
        })

    @classmethod
    def load(cls, path: str | Path) -> PromptModel:
        """Read a model written by :meth:`save`; a malformed or foreign file is a ConfigError naming the field."""
        from ._prompt_file import read_prompt_model

        return cls(**read_prompt_model(Path(path), FORMAT, FORMAT_VERSION))

    def describe(self) -> str:
        """One line: targets, rule, and what the rule was calibrated to."""
        return f"per-prompt router over {len(self.targets)} targets ({', '.join(self.targets)}); {self.rule.describe()}"


class PromptRouter(Router):
    """Send each request to the cheapest target predicted to pass it (see the module docstring).

    ``model``: a :class:`PromptModel` or the path of its JSON file.
    ``targets``: what to call for each of the model's targets — a mapping from
    the model's target names, a sequence in the model's order, or ``None`` to
    build each name as ``provider:model``. ``min_quality`` or ``lambda_``
    replace the model's calibrated rule (not both). On a
    :class:`~evalkit.ProviderError` the next target in the order is tried
    (``fallback_on_error``), at most ``max_attempts`` sends in all (default:
    every target once), unless ``policy`` (a :class:`~evalkit.router.RetryPolicy`;
    default: the default policy) says the error ends the call; a target whose
    context window cannot hold the prompt is skipped without a call; once a
    stream has shown text the router stops.
    """

    kind = "prompt"

    def __init__(self, model: PromptModel | str | Path,
                 targets: Mapping[str, Target | str] | Sequence[Target | str] | None = None, *,
                 min_quality: float | None = None, lambda_: float | None = None, fallback_on_error: bool = True,
                 max_attempts: int | None = None, policy: RetryPolicy | None = None,
                 **router_options: Unpack[RouterOptions]) -> None:
        self.model = model if isinstance(model, PromptModel) else PromptModel.load(model)
        resolved = _resolve_targets(self.model.targets, targets)
        super().__init__(resolved, **router_options)
        if min_quality is not None and lambda_ is not None:
            raise ConfigError("give min_quality or lambda_, not both", field="min_quality")
        if min_quality is not None:
            self.rule = RoutingRule("min_quality", min_quality)
        elif lambda_ is not None:
            self.rule = RoutingRule("lambda", lambda_)
        else:
            self.rule = self.model.rule
        if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int)
                                         or max_attempts < 1):
            raise ConfigError(f"expected a whole number >= 1, got {max_attempts!r}", field="max_attempts")
        self.fallback_on_error = fallback_on_error
        self.max_attempts = max_attempts or len(self.targets)
        self.policy = policy or DEFAULT_POLICY

    def route_for(self, request: ChatRequest) -> PromptDecision:
        """The targets ``request`` would be tried on, in order, with each one's pass probability."""
        return self.model.decide(request, self.rule)

    async def _route(self, request: ChatRequest, attempts: list[Attempt], call: RoutedCall) -> ChatResponse:
        order, _ = self.model.order(request, self.rule)
        size = PromptSize(request)
        errors: list[ProviderError] = []
        sent = 0
        for i in order:
            target = self.targets[i]
            if not size.fits(target):
                self._skip(target, "context_window", attempts, size.why_not(target))
                continue
            if sent >= self.max_attempts:
                break
            sent += 1
            try:
                return await self._attempt(target, request, attempts, call)
            except ProviderError as exc:
                errors.append(exc)
                if exc.kind is ErrorKind.CONTEXT_LENGTH:
                    size.too_big_for(target)
                if not self.fallback_on_error or self._stream_lost(call) or self.policy.stops(exc):
                    break
        raise self._exhausted(errors, attempts)


def _resolve_targets(names: tuple[str, ...],
                     targets: Mapping[str, Target | str] | Sequence[Target | str] | None) -> list[Target]:
    """The model's targets in its order; a mismatch is a ConfigError on ``targets``."""
    if targets is None:
        return [as_target(name) for name in names]
    if isinstance(targets, Mapping):
        missing = [n for n in names if n not in targets]
        extra = [n for n in targets if n not in names]
        if missing or extra:
            problem = f"no target given for {missing[0]!r}" if missing else f"{extra[0]!r} is not a target of the model"
            raise ConfigError(f"{problem}; the model routes over {', '.join(names)}", field="targets")
        return [as_target(targets[n]) for n in names]
    given = list(targets)
    if len(given) != len(names):
        raise ConfigError(f"expected {len(names)} targets in the model's order ({', '.join(names)}), "
                          f"got {len(given)}", field="targets")
    return [as_target(t) for t in given]
