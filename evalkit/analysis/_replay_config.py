"""Turn an evalkit routing config (the YAML ``Router.from_config`` loads) into replayable policies.

Node mapping (see :mod:`evalkit.router.config` for the format):

* a leaf (a name under ``targets:`` or ``provider:model``) → that target,
  named by its ``model`` (``openai:gpt-4o-mini``), which is how results name it;
* ``fallback`` → :class:`Fallback` (its ``retry`` settings are not replayed:
  each target's recorded cell outcome already includes the retries it got);
* ``balance`` → :class:`Weighted` with ``mode="sample"`` and ``failover=True``
  (the balancer tries another target after a failure), its weights and
  ``max_attempts``; health-based strategies are replayed as ``weighted``;
* ``task`` → :class:`TaskTable` (routes and default; the classifier is not
  needed: results carry each item's task type);
* ``cost`` → :class:`CostAware` with the root ``budget.limit_usd`` as budget;
* ``hedge`` → not replayable (its outcome depends on when concurrent calls
  finish, which single-target results do not record): a :class:`NotReplayableError`
  (a ``ConfigError`` located at the node, and a ``ValueError``);
* ``prompt`` → not replayable here either: its honest numbers come from
  cross-fitting (:func:`evalkit.analysis.prompt_routing.evaluate_prompt_router`).

The config is validated exactly as ``Router.from_config`` validates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._replay_policies import CostAware, Fallback, PolicyLike, TaskTable, Weighted

if TYPE_CHECKING:  # the router package is imported only when a config is replayed
    from ..router.config import (BalanceSpec, CostSpec, FallbackSpec, HedgeSpec, NodeSpec, PromptSpec,
                                 RoutingSpec, TargetSpec, TaskSpec)

__all__ = ["NotReplayableError", "policy_from_config"]


class NotReplayableError(ConfigError, ValueError):
    """A valid routing config whose policy cannot be replayed from recorded results (a hedge node)."""


def policy_from_config(config: Mapping[str, Any] | str | Path, *, seed: int = 0) -> PolicyLike:
    """The policy a routing config describes; ``config`` is a parsed mapping or a YAML file path.

    The config is checked by the same validator as ``Router.from_config``
    (:func:`evalkit.router.config.parse_routing_config`), except that targets
    may be any ``name:model`` (results name their targets however they like).
    ``seed`` seeds the draws of ``balance`` nodes (each node gets its own stream).
    """
    from ..router.config import parse_routing_config

    spec = parse_routing_config(config, known_providers=False)
    budget = None if spec.budget is None else float(spec.budget.limit)
    return _Builder(spec, budget, seed).node(spec.router)


class _Builder:
    """Policies from specs: one method per node kind, as the router builder has."""

    def __init__(self, spec: RoutingSpec, budget: float | None, seed: int) -> None:
        self.spec, self.budget, self.seed, self.balances = spec, budget, seed, 0

    def node(self, spec: NodeSpec) -> PolicyLike:
        return getattr(self, spec.kind)(spec)

    def target(self, spec: TargetSpec) -> PolicyLike:
        return spec.model  # results name a target by its provider:model

    def fallback(self, spec: FallbackSpec) -> PolicyLike:
        return Fallback(tuple(self.node(t) for t in spec.targets))

    def task(self, spec: TaskSpec) -> PolicyLike:
        return TaskTable(tuple((task, self.node(node)) for task, node in spec.routes.items()),
                         self.node(spec.default))

    def hedge(self, spec: HedgeSpec) -> PolicyLike:
        raise NotReplayableError("hedge nodes cannot be replayed (their outcome depends on the timing of "
                                 "concurrent calls); replace it with a fallback to approximate it",
                                 file=self.spec.doc.file, line=self.spec.doc.line(spec.path), field=spec.path)

    def prompt(self, spec: PromptSpec) -> PolicyLike:
        raise NotReplayableError("prompt nodes are not replayed here: scored on the run it was trained on, a "
                                 "per-prompt router would grade itself on answers it learned; use "
                                 "evalkit.analysis.prompt_routing.evaluate_prompt_router (cross-fitted)",
                                 file=self.spec.doc.file, line=self.spec.doc.line(spec.path), field=spec.path)

    def balance(self, spec: BalanceSpec) -> PolicyLike:
        children = [self.node(t) for t in spec.targets]
        weights = spec.weights or (1.0,) * len(children)
        if len(set(map(repr, children))) != len(children):
            raise self.spec.error(f"{spec.path}.targets", "a target is listed twice")
        self.balances += 1  # one seed stream per balance node, so two nodes do not draw alike
        return Weighted(tuple(zip(children, weights)), mode="sample", failover=True,
                        max_attempts=spec.max_attempts, seed=self.seed * 1000 + self.balances)

    def cost(self, spec: CostSpec) -> PolicyLike:
        candidates = []
        for i, candidate in enumerate(spec.candidates):
            if candidate.target.kind != "target":
                raise self.spec.error(f"{spec.path}.candidates[{i}].target",
                                      "replay needs a target name here")
            candidates.append((candidate.target.model, candidate.quality))
        options = spec.options
        return CostAware(tuple(candidates), min_quality=options.get("min_quality", 0.0),
                         budget_usd=self.budget,
                         on_over_budget=options.get("on_over_budget", "reroute"),
                         allow_downgrade=bool(options.get("allow_downgrade", False)))
