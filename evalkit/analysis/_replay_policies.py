"""The routing policies :func:`~evalkit.analysis.replay_policy` evaluates on recorded results.

A policy names targets by the ``target`` values of the results table
(``openai:gpt-4o-mini``, ``config:chain`` ...). Each policy is a small frozen
dataclass; wherever a target may go, a nested policy may go too (a task table
of fallback chains, a chain whose first step is a balanced pair), except in
:class:`CostAware`, :class:`Random` and :class:`Oracle`, whose choices rest on
per-target numbers and so take target names only.

Mappings given to a constructor are stored as tuples of pairs, so policies are
hashable and their repr shows the order used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CostAware", "Fallback", "Oracle", "Policy", "PolicyLike", "Random", "TaskTable", "Threshold",
           "Weighted", "describe", "policy_targets"]


class Policy:
    """Base class of the replayable routing policies."""

    __slots__ = ()


PolicyLike = str | Policy
"""A target name (one call to that target) or a :class:`Policy`."""


def _pairs(value: Mapping[Any, Any] | Sequence[tuple[Any, Any]], what: str) -> tuple[tuple[Any, Any], ...]:
    pairs = tuple(value.items()) if isinstance(value, Mapping) else tuple((k, v) for k, v in value)
    if not pairs:
        raise ValueError(f"{what}: expected at least one entry")
    return pairs


def _check_policy(value: Any, what: str) -> None:
    if not isinstance(value, (str, Policy)):
        raise TypeError(f"{what}: expected a target name or a policy, got {type(value).__name__}")


def _weights(pairs: tuple[tuple[Any, Any], ...], what: str) -> tuple[tuple[Any, float], ...]:
    weights = tuple((key, float(w)) for key, w in pairs)
    if any(w < 0 for _, w in weights) or not any(w > 0 for _, w in weights):
        raise ValueError(f"{what}: weights must be non-negative and not all zero")
    return weights


@dataclass(frozen=True)
class Fallback(Policy):
    """Try each step in order until one succeeds, using each target's recorded outcome on the item.

    Costs and latencies of the failed steps add up; the quality is the first
    success's score; the request fails when every step failed. Each request is
    replayed on its own: a live chain's circuit breakers, which skip a target
    for a cooldown after a run of failures, are not modelled (configure
    ``breaker: off`` to compare a live chain with its replay).
    """

    chain: tuple[PolicyLike, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", tuple(self.chain) if not isinstance(self.chain, str) else (self.chain,))
        if not self.chain:
            raise ValueError("Fallback: expected at least one target")
        for i, step in enumerate(self.chain):
            _check_policy(step, f"Fallback.chain[{i}]")


@dataclass(frozen=True)
class TaskTable(Policy):
    """Dispatch each request on its ``task_type``: ``routes[task_type]``, else ``default``."""

    routes: tuple[tuple[str, PolicyLike], ...]
    default: PolicyLike

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", _pairs(self.routes, "TaskTable.routes") if self.routes else ())
        for task, route in self.routes:
            _check_policy(route, f"TaskTable.routes[{task!r}]")
        _check_policy(self.default, "TaskTable.default")


@dataclass(frozen=True)
class Weighted(Policy):
    """A weighted mix of policies.

    ``mode="expected"`` (default) is deterministic: every request counts once
    per component with the normalised weight, so quality, success and cost are
    the exact weighted averages and latency percentiles are those of the
    mixture. It is exact where a mix is a final choice, so it may sit at the top
    or under a :class:`TaskTable`/another expected ``Weighted``, not inside a
    chain (use ``mode="sample"`` there).

    ``mode="sample"`` draws one component per request with a seeded generator,
    like a load balancer. With ``failover=True`` a failed request moves on to
    another component, drawn by weight among those not yet tried, at most
    ``max_attempts`` in all: what the ``balance`` node of a routing config does.
    """

    weights: tuple[tuple[PolicyLike, float], ...]
    mode: Literal["expected", "sample"] = "expected"
    seed: int = 0
    failover: bool = False
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", _weights(_pairs(self.weights, "Weighted.weights"), "Weighted"))
        for target, _ in self.weights:
            _check_policy(target, "Weighted.weights")
        if self.mode not in ("expected", "sample"):
            raise ValueError(f"Weighted.mode must be 'expected' or 'sample', got {self.mode!r}")
        if self.mode == "expected" and self.failover:
            raise ValueError("Weighted: failover needs mode='sample' (a draw decides what is tried next)")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("Weighted.max_attempts must be at least 1")


@dataclass(frozen=True)
class Random(Policy):
    """One seeded draw per request: target ``t`` with probability ``p[t]`` (normalised), no failover.

    The random-router baseline of RouteLLM; ``Random({"a": 1.0})`` is target ``a``.
    """

    probabilities: tuple[tuple[str, float], ...]
    seed: int = 0

    def __post_init__(self) -> None:
        pairs = _weights(_pairs(self.probabilities, "Random.probabilities"), "Random")
        object.__setattr__(self, "probabilities", pairs)
        for target, _ in pairs:
            if not isinstance(target, str):
                raise TypeError("Random: targets must be target names")


@dataclass(frozen=True)
class CostAware(Policy):
    """The cheapest candidate whose declared quality meets ``min_quality``, under a running budget.

    ``candidates`` maps target names to a quality in [0, 1] or a tier name
    (``basic``, ``standard``, ``premium``, ``frontier``). Candidates are ranked
    by their mean recorded cost per request (ties: higher quality, then the
    order given); the adequate ones form a fallback chain when
    ``fallback_on_error``, else only the cheapest is tried. With
    ``allow_downgrade`` the inadequate ones follow, best quality first.

    ``budget_usd``: requests are taken in order and their recorded costs
    accumulate; once the next request would take the spend past the budget,
    every later request is refused (``on_over_budget="refuse"``: counted as
    failed, nothing spent) or rerouted to the cheapest candidate of any quality
    (``"reroute"``) until that too would overspend, then refused. Replay needs
    priced costs for this. The live router reserves a worst-case estimate per
    call instead of the recorded cost, so it refuses somewhat earlier.
    """

    candidates: tuple[tuple[str, float | str], ...]
    min_quality: float | str = 0.0
    budget_usd: float | None = None
    on_over_budget: Literal["refuse", "reroute"] = "reroute"
    allow_downgrade: bool = False
    fallback_on_error: bool = True

    def __post_init__(self) -> None:
        pairs = _pairs(self.candidates, "CostAware.candidates")
        object.__setattr__(self, "candidates", tuple((t, _quality(q)) for t, q in pairs))
        object.__setattr__(self, "min_quality", _quality(self.min_quality))
        for target, _ in self.candidates:
            if not isinstance(target, str):
                raise TypeError("CostAware: candidates must be target names")
        if self.on_over_budget not in ("refuse", "reroute"):
            raise ValueError(f"CostAware.on_over_budget must be 'refuse' or 'reroute', got {self.on_over_budget!r}")
        if self.budget_usd is not None and self.budget_usd < 0:
            raise ValueError("CostAware.budget_usd must not be negative")


def _quality(value: float | str) -> float:
    tiers = {"basic": 0.25, "standard": 0.5, "premium": 0.75, "frontier": 1.0}  # = router.cost.QUALITY_TIERS
    quality = tiers[value] if isinstance(value, str) and value in tiers else float(value)
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"quality must be in [0, 1] or a tier name, got {value!r}")
    return quality


@dataclass(frozen=True)
class Threshold(Policy):
    """RouteLLM-style binary router: requests whose router score is ``>= threshold`` go to ``strong``.

    ``score`` is a column of the results table (its first value per request is
    used) or a callable that takes the request frame (``item_id``, ``repeat``,
    ``task_type``, one row per request, in replay order) and returns one score
    per row. A request with no score goes to ``weak``.
    """

    score: str | Callable[[Any], Any]
    strong: PolicyLike
    weak: PolicyLike
    threshold: float

    def __post_init__(self) -> None:
        _check_policy(self.strong, "Threshold.strong")
        _check_policy(self.weak, "Threshold.weak")
        if not (isinstance(self.score, str) or callable(self.score)):
            raise TypeError("Threshold.score: expected a column name or a callable")


@dataclass(frozen=True)
class Oracle(Policy):
    """Per request, the best-scoring target that answered, the cheapest among ties.

    With binary scores: the cheapest target that got the item right. When every
    target failed the request fails (charged as the cheapest failed call).
    """

    targets: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", (self.targets,) if isinstance(self.targets, str) else tuple(self.targets))
        if not self.targets or not all(isinstance(t, str) for t in self.targets):
            raise ValueError("Oracle: expected one or more target names")


def policy_targets(policy: PolicyLike) -> tuple[str, ...]:
    """Every target name ``policy`` may use, in first-mention order."""
    found: dict[str, None] = {}
    for child in _children(policy):
        if isinstance(child, str):
            found[child] = None
        else:
            found.update(dict.fromkeys(policy_targets(child)))
    return tuple(found)


def _children(policy: PolicyLike) -> tuple[PolicyLike, ...]:
    if isinstance(policy, str):
        return (policy,)
    if isinstance(policy, Fallback):
        return policy.chain
    if isinstance(policy, TaskTable):
        return (*(route for _, route in policy.routes), policy.default)
    if isinstance(policy, Weighted):
        return tuple(target for target, _ in policy.weights)
    if isinstance(policy, Random):
        return tuple(target for target, _ in policy.probabilities)
    if isinstance(policy, CostAware):
        return tuple(target for target, _ in policy.candidates)
    if isinstance(policy, Threshold):
        return (policy.strong, policy.weak)
    if isinstance(policy, Oracle):
        return policy.targets
    raise TypeError(f"not a replayable policy: {policy!r}")


def describe(policy: PolicyLike) -> str:
    """A short one-line description (``fallback(a → b)``), as shown in reports."""
    if isinstance(policy, str):
        return policy
    if isinstance(policy, Fallback):
        return f"fallback({' → '.join(describe(p) for p in policy.chain)})"
    if isinstance(policy, TaskTable):
        routes = ", ".join(f"{task}: {describe(p)}" for task, p in policy.routes)
        return f"task({routes}{', ' if routes else ''}default: {describe(policy.default)})"
    if isinstance(policy, Weighted):
        mix = ", ".join(f"{describe(p)}×{w:g}" for p, w in policy.weights)
        how = "expected" if policy.mode == "expected" else ("balance" if policy.failover else "sampled")
        return f"weighted[{how}]({mix})"
    if isinstance(policy, Random):
        return f"random({', '.join(f'{t}×{p:g}' for t, p in policy.probabilities)})"
    if isinstance(policy, CostAware):
        budget = "" if policy.budget_usd is None else f", budget ${policy.budget_usd:g} {policy.on_over_budget}"
        return f"cost(≥{policy.min_quality:g}: {', '.join(t for t, _ in policy.candidates)}{budget})"
    if isinstance(policy, Threshold):
        name = policy.score if isinstance(policy.score, str) else getattr(policy.score, "__name__", "score")
        return f"threshold({name} ≥ {policy.threshold:g} → {describe(policy.strong)}, else {describe(policy.weak)})"
    if isinstance(policy, Oracle):
        return f"oracle({', '.join(policy.targets)})"
    raise TypeError(f"not a replayable policy: {policy!r}")
