"""Build a whole router tree from a YAML routing config.

The format (documented with an example in the README)::

    version: 1
    targets:                      # named leaf providers
      fast:
        model: openai:gpt-4o-mini
        api_key_env: OPENAI_API_KEY    # keys only ever by environment variable
        context_window: 128000
        prices: {input: 0.15, output: 0.60}          # USD per 1M tokens, optional
        limits: {max_in_flight: 20, rpm: 500, on_saturated: skip}
    router:                       # the tree: a target name, "provider:model", or a node
      type: task
      routes:
        code: {type: fallback, targets: [strong, fast]}
      default: fast
    budget: {limit_usd: 25, period: day}    # used by `cost` nodes
    monitor: {window: 24h}

Node types: ``fallback``, ``balance``, ``task``, ``cost``, ``hedge``. Every
validation error is a :class:`~evalkit.ConfigError` naming the file, the line
and the YAML path of the bad field (``router.routes.code.targets[1]``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from ._retry import Action, RetryPolicy
from .health import BreakerSettings

__all__ = ["load_router_config", "build_router"]

_NODE_TYPES = ("fallback", "balance", "task", "cost", "hedge")


class _Context:
    """Where we are in the file, for error messages, plus what nodes share."""

    def __init__(self, file: str | None, lines: Mapping[str, int], config: Mapping[str, Any]) -> None:
        self.file = file
        self.lines = lines
        self.config = config
        self.targets: dict[str, Any] = {}
        self.ledger: Any = None
        self.monitor: Any = None

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.lines.get(path), field=path)

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a mapping, got {type(value).__name__}")
        return value

    def allowed(self, value: Mapping[str, Any], path: str, keys: set[str]) -> None:
        unknown = sorted(set(value) - keys)
        if unknown:
            raise self.error(f"{path}.{unknown[0]}", f"unknown field; expected one of {', '.join(sorted(keys))}")


def load_router_config(source: str | Path | Mapping[str, Any]):
    """The root router described by a YAML file (path) or an already-parsed mapping."""
    import yaml

    if isinstance(source, Mapping):
        return build_router(source)
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read routing config: {exc.strerror}", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
        lines = _line_index(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                          line=mark.line + 1 if mark else None) from None
    return build_router(data, file=str(path), lines=lines)


def build_router(config: Any, *, file: str | None = None, lines: Mapping[str, int] | None = None):
    """The root router for a parsed config mapping."""
    ctx = _Context(file, lines or {}, config if isinstance(config, Mapping) else {})
    root = ctx.mapping(config, "config")
    ctx.allowed(root, "", {"version", "targets", "router", "budget", "monitor"})
    if root.get("version", 1) != 1:
        raise ctx.error("version", "only version 1 is supported")
    if "monitor" in root:
        ctx.monitor = _monitor(ctx, root["monitor"])
    if "budget" in root:
        ctx.ledger = _ledger(ctx, root["budget"])
    for name, spec in ctx.mapping(root.get("targets") or {}, "targets").items():
        ctx.targets[name] = _leaf(ctx, spec, f"targets.{name}")
    if "router" not in root:
        raise ctx.error("router", "missing: the routing tree")
    node = _node(ctx, root["router"], "router")
    from ._base import Router
    from .fallback import FallbackChain

    if not isinstance(node, Router):
        node = FallbackChain([node], name=node.name)
    node.monitor = ctx.monitor
    return node


def _leaf(ctx: _Context, spec: Any, path: str) -> Any:
    from ..providers import get_provider

    spec = ctx.mapping(spec, path)
    ctx.allowed(spec, path, {"model", "api_key_env", "base_url", "base_url_env", "timeout_s",
                             "context_window", "prices", "limits", "options", "api_key"})
    if "api_key" in spec:
        raise ctx.error(f"{path}.api_key", "keys never go in configs; name an environment variable in api_key_env")
    model = spec.get("model")
    if not isinstance(model, str) or ":" not in model:
        raise ctx.error(f"{path}.model", "expected provider:model, e.g. openai:gpt-4o-mini")
    options = dict(ctx.mapping(spec.get("options") or {}, f"{path}.options"))
    for key, option in (("timeout_s", "timeout"), ("context_window", "context_window")):
        if key in spec:
            options[option] = _number(ctx, spec[key], f"{path}.{key}")
    if "prices" in spec:
        options["prices"] = _prices(ctx, spec["prices"], f"{path}.prices")
    key = _env_key(ctx, spec, path)
    base_url = spec.get("base_url")
    if base_url is None and spec.get("base_url_env"):
        base_url = _env(spec["base_url_env"])
        if not base_url:  # never fall back to the vendor's public address by accident
            raise ctx.error(f"{path}.base_url_env", f"environment variable {spec['base_url_env']} is not set")
    try:
        provider = get_provider(model, api_key=key, base_url=base_url, **options)
    except ConfigError as exc:
        raise ctx.error(f"{path}.model", str(exc)) from None
    if "limits" in spec:
        provider = _limited(ctx, provider, spec["limits"], f"{path}.limits")
    return provider


def _bare(exc: Exception) -> str:
    """An inner error's message without its own location prefix (we add ours)."""
    if isinstance(exc, ConfigError) and exc.field:
        return str(exc).split(f"{exc.field}: ", 1)[-1]
    return str(exc)


def _env_key(ctx: _Context, spec: Mapping[str, Any], path: str) -> str | None:
    import os

    name = spec.get("api_key_env")
    if name is None:
        return None
    value = os.environ.get(str(name))
    if not value:
        raise ctx.error(f"{path}.api_key_env", f"environment variable {name} is not set")
    return value


def _env(name: Any) -> str | None:
    import os

    return os.environ.get(str(name)) if name else None


def _node(ctx: _Context, spec: Any, path: str) -> Any:
    if isinstance(spec, str):
        if spec in ctx.targets:
            return ctx.targets[spec]
        if ":" in spec:
            return _leaf(ctx, {"model": spec}, path)
        raise ctx.error(path, f"unknown target {spec!r}; define it under targets or write provider:model")
    spec = ctx.mapping(spec, path)
    kind = spec.get("type")
    if kind not in _NODE_TYPES:
        raise ctx.error(f"{path}.type", f"expected one of {', '.join(_NODE_TYPES)}, got {kind!r}")
    return _BUILDERS[kind](ctx, spec, path)


def _node_list(ctx: _Context, spec: Mapping[str, Any], path: str, key: str = "targets") -> list[Any]:
    items = spec.get(key)
    if not isinstance(items, list) or not items:
        raise ctx.error(f"{path}.{key}", "expected a non-empty list of targets")
    return [_node(ctx, item, f"{path}.{key}[{i}]") for i, item in enumerate(items)]


def _fallback(ctx: _Context, spec: Mapping[str, Any], path: str) -> Any:
    from .fallback import FallbackChain

    ctx.allowed(spec, path, {"type", "name", "targets", "retry"})
    policy = _retry_policy(ctx, spec.get("retry") or {}, f"{path}.retry")
    return FallbackChain(_node_list(ctx, spec, path), policy=policy, name=spec.get("name"))


def _balance(ctx: _Context, spec: Mapping[str, Any], path: str) -> Any:
    from .balance import WeightedBalancer

    ctx.allowed(spec, path, {"type", "name", "targets", "weights", "strategy", "max_attempts", "breaker"})
    targets = _node_list(ctx, spec, path)
    weights = spec.get("weights")
    if weights is not None and (not isinstance(weights, list) or len(weights) != len(targets)):
        raise ctx.error(f"{path}.weights", f"expected {len(targets)} weights, one per target")
    breaker = _dataclass_from(ctx, BreakerSettings, spec.get("breaker") or {}, f"{path}.breaker")
    try:
        return WeightedBalancer(targets, weights=weights, strategy=spec.get("strategy", "weighted"),
                                max_attempts=spec.get("max_attempts"), breaker=breaker, name=spec.get("name"))
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None


def _task(ctx: _Context, spec: Mapping[str, Any], path: str) -> Any:
    from .tasks import KeywordClassifier, TaskRouter

    ctx.allowed(spec, path, {"type", "name", "routes", "default", "classifier"})
    routes = {task: _node(ctx, node, f"{path}.routes.{task}")
              for task, node in ctx.mapping(spec.get("routes") or {}, f"{path}.routes").items()}
    if "default" not in spec:
        raise ctx.error(f"{path}.default", "missing: where requests with no matching route go")
    classifier_spec = dict(ctx.mapping(spec.get("classifier") or {}, f"{path}.classifier"))
    ctx.allowed(classifier_spec, f"{path}.classifier",
                {"rules", "long_document_tokens", "simple_qa_max_words", "default"})
    if "rules" in classifier_spec:
        rules = ctx.mapping(classifier_spec["rules"], f"{path}.classifier.rules")
        classifier_spec["rules"] = [(task, tuple(words)) for task, words in rules.items()]
    return TaskRouter(routes, default=_node(ctx, spec["default"], f"{path}.default"),
                      classifier=KeywordClassifier(**classifier_spec), name=spec.get("name"))


def _cost(ctx: _Context, spec: Mapping[str, Any], path: str) -> Any:
    from .cost import Candidate, CostAwareRouter, parse_quality

    ctx.allowed(spec, path, {"type", "name", "candidates", "min_quality", "on_over_budget",
                             "default_max_tokens", "allow_downgrade"})
    items = spec.get("candidates")
    if not isinstance(items, list) or not items:
        raise ctx.error(f"{path}.candidates", "expected a non-empty list of {target, quality}")
    candidates = []
    for i, item in enumerate(items):
        item_path = f"{path}.candidates[{i}]"
        item = ctx.mapping(item, item_path)
        ctx.allowed(item, item_path, {"target", "quality", "prices"})
        prices = _prices(ctx, item["prices"], f"{item_path}.prices") if "prices" in item else None
        try:
            quality = parse_quality(item.get("quality", 1.0), "quality")
        except (ConfigError, ValueError) as exc:
            raise ctx.error(f"{item_path}.quality", _bare(exc)) from None
        candidates.append(Candidate(_node(ctx, item.get("target"), f"{item_path}.target"), quality, prices))
    options = {k: spec[k] for k in ("min_quality", "on_over_budget", "default_max_tokens", "allow_downgrade")
               if k in spec}
    try:
        return CostAwareRouter(candidates, ledger=ctx.ledger, name=spec.get("name"), **options)
    except (ConfigError, ValueError, TypeError) as exc:
        raise ctx.error(path, _bare(exc)) from None


def _hedge(ctx: _Context, spec: Mapping[str, Any], path: str) -> Any:
    from .hedge import HedgedRouter

    ctx.allowed(spec, path, {"type", "name", "targets", "delay_s", "max_hedges", "min_delay_s", "cold_delay_s"})
    delay = spec.get("delay_s", "p95")
    if delay != "p95":
        delay = _number(ctx, delay, f"{path}.delay_s")
    options = {k: _number(ctx, spec[k], f"{path}.{k}") for k in ("max_hedges", "min_delay_s", "cold_delay_s")
               if k in spec}
    try:
        return HedgedRouter(_node_list(ctx, spec, path), delay_s=delay, name=spec.get("name"), **options)
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None


_BUILDERS: dict[str, Callable[[_Context, Mapping[str, Any], str], Any]] = {
    "fallback": _fallback, "balance": _balance, "task": _task, "cost": _cost, "hedge": _hedge,
}


def _retry_policy(ctx: _Context, spec: Any, path: str) -> RetryPolicy:
    spec = dict(ctx.mapping(spec, path))
    actions = ctx.mapping(spec.pop("actions", {}) or {}, f"{path}.actions")
    policy = _dataclass_from(ctx, RetryPolicy, spec, path)
    try:
        return policy.with_actions(actions) if actions else policy
    except ValueError as exc:
        valid = ", ".join(a.value for a in Action)
        raise ctx.error(f"{path}.actions", f"{exc}; actions are {valid}") from None


def _dataclass_from(ctx: _Context, cls: type, spec: Any, path: str) -> Any:
    import dataclasses

    spec = ctx.mapping(spec, path)
    fields = {f.name for f in dataclasses.fields(cls) if f.name != "actions"}
    ctx.allowed(spec, path, fields)
    return cls(**{k: _number(ctx, v, f"{path}.{k}") for k, v in spec.items()})


def _number(ctx: _Context, value: Any, path: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.error(path, f"expected a number, got {value!r}")
    if value < 0:
        raise ctx.error(path, f"must not be negative, got {value}")
    return value


def _prices(ctx: _Context, spec: Any, path: str) -> Any:
    from ..pricing import Prices

    spec = ctx.mapping(spec, path)
    ctx.allowed(spec, path, {"input", "output", "cached_input", "cache_write", "reasoning"})
    for key in ("input", "output"):
        if key not in spec:
            raise ctx.error(f"{path}.{key}", "missing: USD per 1M tokens")
    try:
        return Prices.from_mapping(spec, source="config")
    except (InvalidOperation, ValueError) as exc:
        raise ctx.error(path, f"prices must be numbers: {exc}") from None


def _ledger(ctx: _Context, spec: Any, path: str = "budget") -> Any:
    from .budget import BudgetLedger

    spec = ctx.mapping(spec, path)
    ctx.allowed(spec, path, {"limit_usd", "period", "per_target"})
    if "limit_usd" not in spec:
        raise ctx.error(f"{path}.limit_usd", "missing: the spending cap in USD")
    try:
        limit = Decimal(str(_number(ctx, spec["limit_usd"], f"{path}.limit_usd")))
        per_target = {name: Decimal(str(_number(ctx, v, f"{path}.per_target.{name}")))
                      for name, v in ctx.mapping(spec.get("per_target") or {}, f"{path}.per_target").items()}
        return BudgetLedger(limit, period=spec.get("period", "day"), per_target=per_target or None)
    except ValueError as exc:
        raise ctx.error(f"{path}.period", str(exc)) from None


def _monitor(ctx: _Context, spec: Any, path: str = "monitor") -> Any:
    from .monitor import Monitor

    spec = ctx.mapping(spec or {}, path)
    ctx.allowed(spec, path, {"window", "max_events"})
    try:
        return Monitor(**spec)
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None


def _limited(ctx: _Context, provider: Any, spec: Any, path: str) -> Any:
    from .limits import LimitedTarget, Limits

    spec = ctx.mapping(spec, path)
    ctx.allowed(spec, path, {"max_in_flight", "rpm", "tpm", "on_saturated", "max_wait_s"})
    if spec.get("on_saturated", "skip") not in ("skip", "wait"):
        raise ctx.error(f"{path}.on_saturated", "expected skip or wait")
    numbers = {k: _number(ctx, v, f"{path}.{k}") for k, v in spec.items() if k != "on_saturated"}
    try:
        return LimitedTarget(provider, Limits(on_saturated=spec.get("on_saturated", "skip"), **numbers))
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None


def _line_index(node: Any, path: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """YAML path (``router.routes.code.targets[1]``) → 1-based line, from the composed node tree."""
    import yaml

    out = {} if out is None else out
    if path:
        out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            out[child] = key.start_mark.line + 1
            _line_index(value, child, out)
            out[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, f"{path}[{i}]", out)
    return out
