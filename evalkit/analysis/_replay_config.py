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
  finish, which single-target results do not record): a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._replay_policies import CostAware, Fallback, PolicyLike, TaskTable, Weighted

__all__ = ["policy_from_config"]


def policy_from_config(config: Mapping[str, Any] | str | Path, *, seed: int = 0) -> PolicyLike:
    """The policy a routing config describes; ``config`` is a parsed mapping or a YAML file path.

    ``seed`` seeds the draws of ``balance`` nodes (each node gets its own stream).
    """
    if not isinstance(config, Mapping):
        import yaml

        config = yaml.safe_load(Path(config).read_text())
        if not isinstance(config, Mapping):
            raise TypeError("routing config: expected a mapping at the top")
    if "router" not in config:
        raise ValueError("routing config: missing 'router' (the routing tree)")
    names = {name: spec["model"] for name, spec in (config.get("targets") or {}).items()
             if isinstance(spec, Mapping) and isinstance(spec.get("model"), str)}
    budget = (config.get("budget") or {}).get("limit_usd")
    builder = _Builder(names, None if budget is None else float(budget), seed)
    return builder.node(config["router"], "router")


class _Builder:
    def __init__(self, names: Mapping[str, str], budget: float | None, seed: int) -> None:
        self.names, self.budget, self.seed, self.balances = names, budget, seed, 0

    def node(self, spec: Any, path: str) -> PolicyLike:
        if isinstance(spec, str):
            return self.leaf(spec, path)
        if not isinstance(spec, Mapping):
            raise TypeError(f"{path}: expected a target name or a node mapping")
        kind = spec.get("type")
        build = {"fallback": self.fallback, "balance": self.balance, "task": self.task, "cost": self.cost}.get(kind)
        if kind == "hedge":
            raise ValueError(f"{path}: hedge nodes cannot be replayed (their outcome depends on the timing "
                             "of concurrent calls); replace it with a fallback to approximate it")
        if build is None:
            raise ValueError(f"{path}.type: expected fallback, balance, task or cost, got {kind!r}")
        return build(spec, path)

    def leaf(self, name: str, path: str) -> str:
        if name in self.names:
            return self.names[name]
        if ":" in name:
            return name
        raise ValueError(f"{path}: unknown target {name!r}; define it under targets or write provider:model")

    def children(self, spec: Mapping[str, Any], path: str) -> list[PolicyLike]:
        items = spec.get("targets")
        if not isinstance(items, list) or not items:
            raise ValueError(f"{path}.targets: expected a non-empty list")
        return [self.node(item, f"{path}.targets[{i}]") for i, item in enumerate(items)]

    def fallback(self, spec: Mapping[str, Any], path: str) -> PolicyLike:
        return Fallback(tuple(self.children(spec, path)))

    def balance(self, spec: Mapping[str, Any], path: str) -> PolicyLike:
        children = self.children(spec, path)
        weights = spec.get("weights") or [1.0] * len(children)
        if len(weights) != len(children):
            raise ValueError(f"{path}.weights: expected {len(children)} weights, one per target")
        if len(set(children)) != len(children):
            raise ValueError(f"{path}.targets: a target is listed twice")
        self.balances += 1  # one seed stream per balance node, so two nodes do not draw alike
        return Weighted(tuple(zip(children, weights)), mode="sample", failover=True,
                        max_attempts=spec.get("max_attempts"), seed=self.seed * 1000 + self.balances)

    def task(self, spec: Mapping[str, Any], path: str) -> PolicyLike:
        routes = spec.get("routes") or {}
        if "default" not in spec:
            raise ValueError(f"{path}.default: missing")
        return TaskTable(tuple((task, self.node(node, f"{path}.routes.{task}")) for task, node in routes.items()),
                         self.node(spec["default"], f"{path}.default"))

    def cost(self, spec: Mapping[str, Any], path: str) -> PolicyLike:
        candidates = []
        for i, item in enumerate(spec.get("candidates") or []):
            target = self.node(item.get("target"), f"{path}.candidates[{i}].target")
            if not isinstance(target, str):
                raise TypeError(f"{path}.candidates[{i}].target: replay needs a target name here")
            candidates.append((target, item.get("quality", 1.0)))
        return CostAware(tuple(candidates), min_quality=spec.get("min_quality", 0.0), budget_usd=self.budget,
                         on_over_budget=spec.get("on_over_budget", "reroute"),
                         allow_downgrade=bool(spec.get("allow_downgrade", False)))
