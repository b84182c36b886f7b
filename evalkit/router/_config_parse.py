"""The validator behind :func:`evalkit.router.config.parse_routing_config`: raw YAML data → typed specs.

The grammar of the routing config (which keys each block takes, what they
mean, how nodes nest) is here; the settings blocks targets and nodes share
(prices, limits, deadlines, retry, breaker, monitor) are
:class:`~evalkit.router._config_blocks.ConfigBlocks`, and the checks of single
values they are written in (finite numbers in range, money, names, choices,
each failing at its YAML path) :class:`~evalkit.router._config_fields.ConfigFields`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from .._yaml import YamlDocument
from ._call import MID_STREAM_MODES
from ._config_blocks import DEADLINE_KEYS, ConfigBlocks
from .balance import STRATEGIES
from .config import (BalanceSpec, BudgetSpec, CandidateSpec, CostSpec, FallbackSpec, HedgeSpec, NodeSpec,
                     PromptSpec, RouterSpec, RoutingSpec, TargetSpec, TaskSpec)

__all__ = ["Parser"]

NODE_TYPES = ("fallback", "balance", "task", "cost", "hedge", "prompt")
OPTION_KEYS = {"headers", "api_version", "api", "stream_format"}
"""Provider options a config may set (the rest have their own fields or make no sense in a file)."""
_TARGET_KEYS = {"model", "api_key_env", "base_url", "base_url_env", "timeout_s", "context_window", "prices",
                "limits", "options", "api_key", "prefill", *DEADLINE_KEYS}
_NODE_KEYS = {"type", "name", "mid_stream"}
"""Keys every node type takes."""


class Parser(ConfigBlocks):
    """Raw YAML data → specs; each check raises a ConfigError located at its YAML path."""

    def __init__(self, doc: YamlDocument, known_providers: bool = True) -> None:
        super().__init__(doc)
        self.known_providers = known_providers
        self.targets: dict[str, TargetSpec] = {}
        self.cost_nodes: list[CostSpec] = []  # the budget block is checked against their candidates

    # -- the document --------------------------------------------------------------------------

    def config(self) -> RoutingSpec:
        keys = {"version", "targets", "router", "budget", "monitor", "state"}
        root = self.mapping(self.doc.data, "", keys, {"router"})
        if "version" in root and (isinstance(root["version"], bool) or root["version"] != 1):
            raise self.fail("version", f"only version 1 is supported, got {root['version']!r}")
        monitor = self.monitor(root["monitor"]) if "monitor" in root else None
        for name, spec in self.mapping(root.get("targets") or {}, "targets", None).items():
            self.targets[self.key(name, "targets")] = self.target(spec, f"targets.{name}", str(name))
        router = self.node(root["router"], "router")
        budget = self.budget(root["budget"]) if "budget" in root else None
        spec = RoutingSpec(dict(self.targets), router, budget, monitor, self.doc)
        if "state" in root:
            spec = replace(spec, state=self.state(root["state"]))
            self.check_state_is_used(spec)
        return spec

    def check_state_is_used(self, spec: RoutingSpec) -> None:
        """A Redis ``state`` that nothing shares, or ``fail_open`` with no budget, would change nothing: refused."""
        state = spec.state
        if state.fail_open and spec.budget is None:
            raise self.fail("state.fail_open", "decides what a budget does while Redis is down, and this config "
                                               "has no budget; remove it (breakers and limits fall back to this "
                                               "process's state either way)")
        if state.shared and spec.budget is None and spec.monitor is None and not _shares_state(spec.router):
            raise self.fail("state", "nothing in this config uses shared state (no budget, monitor, rpm/tpm "
                                     "limits, balance node or fallback node with breakers); remove the block")

    def node(self, spec: Any, path: str) -> NodeSpec:
        if isinstance(spec, str):
            if spec in self.targets:
                return self.targets[spec]
            if ":" in spec:
                return self.target({"model": spec}, path, spec)
            raise self.fail(path, f"unknown target {spec!r}; define it under targets or write provider:model")
        spec = self.mapping(spec, path, None)
        kind = spec.get("type")
        if kind not in NODE_TYPES:
            raise self.fail(f"{path}.type", f"expected one of {', '.join(NODE_TYPES)}, got {kind!r}")
        name = self.text(spec["name"], f"{path}.name") if "name" in spec else None
        kinds: dict[str, Callable[[Mapping[str, Any], str, str | None], RouterSpec]] = {
            "fallback": self.fallback, "balance": self.balance, "task": self.task, "cost": self.cost,
            "hedge": self.hedge, "prompt": self.prompt}
        node = kinds[kind](spec, path, name)
        if "mid_stream" in spec:  # every kind takes it: read here, once, for the spec its method built
            node = replace(node, mid_stream=self.choice(spec["mid_stream"], f"{path}.mid_stream", MID_STREAM_MODES))
        return node

    def members(self, spec: Mapping[str, Any], path: str) -> tuple[NodeSpec, ...]:
        items = spec.get("targets")
        if not isinstance(items, list) or not items:
            raise self.fail(f"{path}.targets", "expected a non-empty list of targets")
        return tuple(self.node(item, f"{path}.targets[{i}]") for i, item in enumerate(items))

    # -- leaves ----------------------------------------------------------------------------------

    def target(self, spec: Any, path: str, name: str) -> TargetSpec:
        spec = self.mapping(spec, path, _TARGET_KEYS, {"model"})
        if "api_key" in spec:
            raise self.fail(f"{path}.api_key",
                            "keys never go in configs; name an environment variable in api_key_env")
        model = spec["model"]
        provider, sep, model_id = model.partition(":") if isinstance(model, str) else ("", "", "")
        if not sep or not model_id:
            raise self.fail(f"{path}.model", "expected provider:model, e.g. openai:gpt-4o-mini")
        if self.known_providers and provider not in _vendors():
            raise self.fail(f"{path}.model", f"unknown provider {provider!r}; known: {', '.join(_vendors())}")
        values: dict[str, Any] = {k: self.text(spec[k], f"{path}.{k}")
                                  for k in ("api_key_env", "base_url", "base_url_env") if k in spec}
        if "timeout_s" in spec:
            values["timeout_s"] = self.number(spec["timeout_s"], f"{path}.timeout_s", positive=True)
        if "context_window" in spec:
            values["context_window"] = self.integer(spec["context_window"], f"{path}.context_window", low=1)
        if "prices" in spec:
            values["prices"] = self.prices(spec["prices"], f"{path}.prices")
        if "limits" in spec:
            values["limits"] = self.limits(spec["limits"], f"{path}.limits")
        if "prefill" in spec:
            values["prefill"] = self.flag(spec["prefill"], f"{path}.prefill")
        if any(key in spec for key in DEADLINE_KEYS):
            values["deadlines"] = self.deadlines(spec, path)
        options = self.options(spec.get("options") or {}, f"{path}.options")
        return TargetSpec(name=name, model=model, path=path, options=options, **values)

    def options(self, spec: Any, path: str) -> dict[str, Any]:
        spec = self.mapping(spec, path, OPTION_KEYS)
        out: dict[str, Any] = {}
        if "headers" in spec:
            headers = self.mapping(spec["headers"], f"{path}.headers", None)
            out["headers"] = {self.key(k, f"{path}.headers"): self.text(v, f"{path}.headers.{k}")
                              for k, v in headers.items()}
        if "api_version" in spec:
            out["api_version"] = self.text(spec["api_version"], f"{path}.api_version")
        if "api" in spec:
            out["api"] = self.choice(spec["api"], f"{path}.api", ("chat", "responses"))
        if "stream_format" in spec:
            out["stream_format"] = self.choice(spec["stream_format"], f"{path}.stream_format",
                                               ("sse", "json-array"))
        return out

    # -- nodes -----------------------------------------------------------------------------------

    def fallback(self, spec: Mapping[str, Any], path: str, name: str | None) -> FallbackSpec:
        self.mapping(spec, path, {*_NODE_KEYS, "targets", "retry", "breaker"})
        retry = self.retry(spec.get("retry") or {}, f"{path}.retry")
        breaker, off = None, False
        if "breaker" in spec:
            breaker = self.breaker(spec["breaker"], f"{path}.breaker", may_be_off=True)
            off = breaker is None
        return FallbackSpec(self.members(spec, path), path, retry, name, breaker=breaker, breaker_off=off)

    def balance(self, spec: Mapping[str, Any], path: str, name: str | None) -> BalanceSpec:
        self.mapping(spec, path, {*_NODE_KEYS, "targets", "weights", "strategy", "max_attempts", "breaker", "retry"})
        targets = self.members(spec, path)
        weights = None
        if "weights" in spec:
            raw = spec["weights"]
            if not isinstance(raw, list) or len(raw) != len(targets):
                raise self.fail(f"{path}.weights", f"expected {len(targets)} weights, one per target")
            weights = tuple(float(self.number(w, f"{path}.weights[{i}]", positive=True))
                            for i, w in enumerate(raw))
        strategy = self.choice(spec.get("strategy", "weighted"), f"{path}.strategy", STRATEGIES)
        max_attempts = self.integer(spec["max_attempts"], f"{path}.max_attempts", low=1) \
            if "max_attempts" in spec else None
        breaker = self.breaker(spec["breaker"], f"{path}.breaker") if "breaker" in spec else None
        retry = self.retry(spec["retry"], f"{path}.retry", node="balance") if "retry" in spec else None
        return BalanceSpec(targets, path, weights, strategy, max_attempts, breaker, name, retry=retry)

    def task(self, spec: Mapping[str, Any], path: str, name: str | None) -> TaskSpec:
        self.mapping(spec, path, {*_NODE_KEYS, "routes", "default", "classifier"}, {"default"})
        routes = {self.key(task, f"{path}.routes"): self.node(node, f"{path}.routes.{task}")
                  for task, node in self.mapping(spec.get("routes") or {}, f"{path}.routes", None).items()}
        default = self.node(spec["default"], f"{path}.default")
        classifier = self.classifier(spec.get("classifier", "keywords"), f"{path}.classifier")
        return TaskSpec(routes, default, path, classifier, name)

    def classifier(self, spec: Any, path: str) -> dict[str, Any]:
        """``keywords`` (the seed's rules), a mapping of their settings, or ``{file: ..., min_confidence: ...}``.

        ``file`` is a learned classifier's JSON (``evalkit recommend`` writes it
        beside the YAML), relative to the YAML's folder; it is loaded, every
        field checked, when the router is built.
        """
        if spec == "keywords":
            return {"keywords": {}}
        if isinstance(spec, Mapping) and "file" in spec:
            spec = self.mapping(spec, path, {"file", "min_confidence"}, {"file"})
            out: dict[str, Any] = {"file": self.path(spec["file"], f"{path}.file")}
            if "min_confidence" in spec:
                out["min_confidence"] = float(self.number(spec["min_confidence"], f"{path}.min_confidence",
                                                          high=1))
            return out
        if not isinstance(spec, Mapping):
            raise self.fail(path, "expected keywords, a mapping of keyword settings, or {file: CLASSIFIER.json}")
        return {"keywords": self.keyword_settings(spec, path)}

    def prompt(self, spec: Mapping[str, Any], path: str, name: str | None) -> PromptSpec:
        """A per-prompt router: its model file (checked when built) and a node for each target it names."""
        self.mapping(spec, path, {*_NODE_KEYS, "model", "targets", "min_quality", "lambda", "max_attempts",
                                  "fallback_on_error"}, {"model", "targets"})
        if "min_quality" in spec and "lambda" in spec:
            raise self.fail(f"{path}.lambda", "give min_quality or lambda, not both")
        targets = {self.key(k, f"{path}.targets"): self.node(v, f"{path}.targets.{k}")
                   for k, v in self.mapping(spec["targets"], f"{path}.targets", None).items()}
        if not targets:
            raise self.fail(f"{path}.targets", "expected a node for each target the model routes over")
        options: dict[str, Any] = {}
        if "min_quality" in spec:
            options["min_quality"] = float(self.number(spec["min_quality"], f"{path}.min_quality", high=1))
        if "lambda" in spec:
            options["lambda_"] = float(self.number(spec["lambda"], f"{path}.lambda"))
        if "max_attempts" in spec:
            options["max_attempts"] = self.integer(spec["max_attempts"], f"{path}.max_attempts", low=1)
        if "fallback_on_error" in spec:
            options["fallback_on_error"] = self.flag(spec["fallback_on_error"], f"{path}.fallback_on_error")
        return PromptSpec(self.path(spec["model"], f"{path}.model"), targets, path, options, name)

    def path(self, value: Any, path: str) -> Path:
        """A file named in the config: relative to the config's folder (the working directory without one)."""
        name = Path(self.text(value, path))
        if not name.is_absolute() and self.doc.file:
            name = Path(self.doc.file).parent / name
        if not name.is_file():
            raise self.fail(path, f"no such file: {name}")
        return name

    def keyword_settings(self, spec: Any, path: str) -> dict[str, Any]:
        spec = self.mapping(spec, path, {"rules", "long_document_tokens", "simple_qa_max_words", "default"})
        out: dict[str, Any] = {}
        if "rules" in spec:
            rules = []
            for task, words in self.mapping(spec["rules"], f"{path}.rules", None).items():
                where = f"{path}.rules.{task}"
                if not isinstance(words, list) or not words:
                    raise self.fail(where, "expected a non-empty list of keywords")
                rules.append((self.key(task, f"{path}.rules"),
                              tuple(self.text(w, f"{where}[{i}]") for i, w in enumerate(words))))
            out["rules"] = rules
        for key, low in (("long_document_tokens", 1), ("simple_qa_max_words", 0)):
            if key in spec:
                out[key] = self.integer(spec[key], f"{path}.{key}", low=low)
        if "default" in spec:
            out["default"] = self.text(spec["default"], f"{path}.default")
        return out

    def cost(self, spec: Mapping[str, Any], path: str, name: str | None) -> CostSpec:
        self.mapping(spec, path, {*_NODE_KEYS, "candidates", "min_quality", "on_over_budget",
                                  "default_max_tokens", "allow_downgrade", "retry"})
        items = spec.get("candidates")
        if not isinstance(items, list) or not items:
            raise self.fail(f"{path}.candidates", "expected a non-empty list of {target, quality}")
        candidates = []
        for i, item in enumerate(items):
            where = f"{path}.candidates[{i}]"
            item = self.mapping(item, where, {"target", "quality", "prices"}, {"target"})
            quality = self.quality(item.get("quality", 1.0), f"{where}.quality")
            prices = self.prices(item["prices"], f"{where}.prices") if "prices" in item else None
            candidates.append(CandidateSpec(self.node(item["target"], f"{where}.target"), quality, prices))
        options: dict[str, Any] = {}
        if "min_quality" in spec:
            options["min_quality"] = self.quality(spec["min_quality"], f"{path}.min_quality")
        if "on_over_budget" in spec:
            options["on_over_budget"] = self.choice(spec["on_over_budget"], f"{path}.on_over_budget",
                                                    ("reroute", "refuse"))
        if "default_max_tokens" in spec:
            options["default_max_tokens"] = self.integer(spec["default_max_tokens"],
                                                         f"{path}.default_max_tokens", low=1)
        if "allow_downgrade" in spec:
            options["allow_downgrade"] = self.flag(spec["allow_downgrade"], f"{path}.allow_downgrade")
        retry = self.retry(spec["retry"], f"{path}.retry", node="cost") if "retry" in spec else None
        node = CostSpec(tuple(candidates), path, options, name, retry=retry)
        self.cost_nodes.append(node)
        return node

    def quality(self, value: Any, path: str) -> float:
        from .cost import QUALITY_TIERS

        if isinstance(value, str) and value in QUALITY_TIERS:
            return QUALITY_TIERS[value]
        if isinstance(value, str):
            tiers = ", ".join(QUALITY_TIERS)
            raise self.fail(path, f"expected a number in [0, 1] or one of {tiers}, got {value!r}")
        return float(self.number(value, path, high=1.0))

    def hedge(self, spec: Mapping[str, Any], path: str, name: str | None) -> HedgeSpec:
        self.mapping(spec, path, {*_NODE_KEYS, "targets", "delay_s", "max_hedges", "min_delay_s",
                                  "cold_delay_s"})
        raw_delay = spec.get("delay_s", "p95")
        delay: float | Literal["p95"] = "p95" if raw_delay == "p95" else self.number(raw_delay, f"{path}.delay_s")
        options: dict[str, Any] = {}
        if "max_hedges" in spec:
            options["max_hedges"] = self.integer(spec["max_hedges"], f"{path}.max_hedges")
        for key in ("min_delay_s", "cold_delay_s"):
            if key in spec:
                options[key] = self.number(spec[key], f"{path}.{key}")
        return HedgeSpec(self.members(spec, path), path, delay, options, name)

    # -- the budget ------------------------------------------------------------------------------

    def budget(self, spec: Any, path: str = "budget") -> BudgetSpec:
        spec = self.mapping(spec, path, {"limit_usd", "period", "per_target", "max_share_of_remaining"},
                            {"limit_usd"})
        if not self.cost_nodes:
            raise self.fail(path, "no cost node uses this budget; add a node of type cost or remove the "
                                  "budget")
        period = self.choice(spec.get("period", "day"), f"{path}.period", ("day", "hour", "month", "total"))
        share = None
        if "max_share_of_remaining" in spec:
            share = self.money(spec["max_share_of_remaining"], f"{path}.max_share_of_remaining", "a fraction")
            if not 0 < share <= 1:
                raise self.fail(f"{path}.max_share_of_remaining", "must be in (0, 1] (0.1 = one call may use "
                                f"at most 10% of what is left), got {share}")
        caps = self.mapping(spec.get("per_target") or {}, f"{path}.per_target", None)
        per_target = {self.served_name(name, f"{path}.per_target.{name}"):
                      self.money(cap, f"{path}.per_target.{name}", "USD") for name, cap in caps.items()}
        limit = self.money(spec["limit_usd"], f"{path}.limit_usd", "USD")
        return BudgetSpec(limit, period, per_target, share)

    def served_name(self, key: Any, path: str) -> str:
        """The name the ledger sees for a ``per_target`` key: a config target name means its model."""
        name = str(key)
        if name in self.targets:
            name = self.targets[name].model
        candidates = {c.target.model if isinstance(c.target, TargetSpec) else c.target.name
                      for node in self.cost_nodes for c in node.candidates}
        if name not in candidates:
            known = ", ".join(sorted(n for n in candidates if n)) or "none"
            raise self.fail(path, f"no cost candidate is {name!r}, so this cap would never apply "
                                  f"(candidates: {known})")
        return name


def _shares_state(node: NodeSpec, root: bool = True) -> bool:
    """True when the router built from ``node`` keeps anything in shared state (breakers, rpm/tpm windows)."""
    if isinstance(node, TargetSpec):  # a lone target at the root becomes a chain with a breaker
        limits = node.limits
        return root or (limits is not None and (limits.rpm is not None or limits.tpm is not None))
    if isinstance(node, BalanceSpec) or (isinstance(node, FallbackSpec) and not node.breaker_off):
        return True
    if isinstance(node, TaskSpec):
        children: list[NodeSpec] = [*node.routes.values(), node.default]
    elif isinstance(node, CostSpec):
        children = [c.target for c in node.candidates]
    elif isinstance(node, PromptSpec):
        children = list(node.targets.values())
    else:  # fallback without breakers, hedge
        children = list(node.targets)
    return any(_shares_state(child, root=False) for child in children)


def _vendors() -> Mapping[str, Any]:
    from ..providers.vendors import VENDORS

    return VENDORS
