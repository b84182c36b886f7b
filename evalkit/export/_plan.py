"""An evalkit routing config reduced to what gateways can express: task routes of chains and mixes.

Every exporter reads the same :class:`Plan`: per task type a node, a default
node, and the leaf targets with how to reach them. Nodes are :class:`Leaf`,
:class:`Chain` (``fallback``) and :class:`Mix` (``balance``); nested chains
are flattened. ``cost`` and ``hedge`` nodes have no gateway equivalent and
are refused with the YAML path of the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ConfigError

__all__ = ["Chain", "Leaf", "Mix", "Node", "Plan", "chain_members", "load_config", "parse_plan", "retry_of"]


SELF_HOSTED = ("ollama", "vllm", "llamacpp")


@dataclass(frozen=True)
class Leaf:
    """One provider:model target and how to reach it (never a key: only env var names)."""

    name: str
    provider: str
    model: str
    spec: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key_env(self) -> str | None:
        """The environment variable holding this target's key: the config's, else the vendor's usual one."""
        from ..providers.vendors import VENDORS

        if self.spec.get("api_key_env"):
            return str(self.spec["api_key_env"])
        vendor = VENDORS[self.provider]
        return vendor.key_env[0] if vendor.key_required and vendor.key_env else None

    @property
    def default_base_url(self) -> str:
        from ..providers.vendors import VENDORS

        return VENDORS[self.provider].base_url

    def gateway_base_url(self, env_reference: Callable[[str], str]) -> str | None:
        """Where a gateway should send this target; ``None`` when the gateway knows the vendor's endpoint.

        An explicit ``base_url`` is used as is, ``base_url_env`` becomes the
        gateway's own way of naming a variable (``env_reference``), and
        self-hosted servers get their default address. Gateways talk to Ollama
        at the server origin, as Ollama's own clients do, not at ``/v1``.
        """
        if self.spec.get("base_url"):
            base = str(self.spec["base_url"]).rstrip("/")
        elif self.spec.get("base_url_env"):
            return env_reference(str(self.spec["base_url_env"]))
        elif self.provider in SELF_HOSTED:
            base = self.default_base_url
        else:
            return None
        return base.removesuffix("/v1") if self.provider == "ollama" else base


@dataclass(frozen=True)
class Chain:
    """Try members in order (a ``fallback`` node); ``retry`` is its retry policy mapping."""

    members: tuple[Node, ...]
    retry: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mix:
    """Spread requests over members (a ``balance`` node)."""

    members: tuple[Node, ...]
    weights: tuple[float, ...] | None = None
    strategy: str = "weighted"
    name: str | None = None


Node = Leaf | Chain | Mix


@dataclass(frozen=True)
class Plan:
    """Task type → node, the default node, every leaf by name."""

    routes: Mapping[str, Node]
    default: Node
    leaves: Mapping[str, Leaf]


def load_config(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A parsed routing config from a path or a mapping (copied)."""
    if isinstance(source, Mapping):
        return dict(source)
    import yaml

    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read routing config: {exc.strerror}", file=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    if not isinstance(data, Mapping):
        raise ConfigError("expected a routing config mapping", file=str(path))
    return dict(data)


def parse_plan(config: Mapping[str, Any]) -> Plan:
    """The :class:`Plan` of a routing config (the format of :mod:`evalkit.router.config`)."""
    leaves = {name: _leaf(name, spec, f"targets.{name}")
              for name, spec in _mapping(config.get("targets") or {}, "targets").items()}
    if "router" not in config:
        raise ConfigError("missing: the routing tree", field="router")
    root = config["router"]
    parse = _Parser(leaves)
    if isinstance(root, Mapping) and root.get("type") == "task":
        routes = {str(task): parse.node(node, f"router.routes.{task}")
                  for task, node in _mapping(root.get("routes") or {}, "router.routes").items()}
        if "default" not in root:
            raise ConfigError("missing: where requests with no matching route go", field="router.default")
        return Plan(routes, parse.node(root["default"], "router.default"), parse.leaves)
    return Plan({}, parse.node(root, "router"), parse.leaves)


def chain_members(node: Node) -> list[Node]:
    """The members of ``node`` as a flat fallback order (a leaf or mix is a chain of one)."""
    if isinstance(node, Chain):
        return [m for member in node.members for m in chain_members(member)]
    return [node]


def retry_of(node: Node) -> Mapping[str, Any]:
    """The retry policy of the chain ``node`` is (empty for leaves and mixes)."""
    return node.retry if isinstance(node, Chain) else {}


class _Parser:
    def __init__(self, leaves: dict[str, Leaf]) -> None:
        self.leaves = leaves

    def node(self, spec: Any, path: str) -> Node:
        if isinstance(spec, str):
            if spec in self.leaves:
                return self.leaves[spec]
            if ":" in spec:
                return self.leaves.setdefault(spec, _leaf(spec, {"model": spec}, path))
            raise ConfigError(f"unknown target {spec!r}; define it under targets or write provider:model",
                              field=path)
        spec = _mapping(spec, path)
        kind = spec.get("type")
        if kind == "fallback":
            return Chain(self._members(spec, path), retry=dict(spec.get("retry") or {}))
        if kind == "balance":
            weights = spec.get("weights")
            return Mix(self._members(spec, path), tuple(float(w) for w in weights) if weights else None,
                       str(spec.get("strategy", "weighted")), spec.get("name"))
        if kind in ("cost", "hedge", "task"):
            raise ConfigError(f"a {kind} node has no gateway equivalent; export supports task routes of "
                              "fallback and balance nodes", field=path)
        raise ConfigError(f"expected a node type, got {kind!r}", field=f"{path}.type")

    def _members(self, spec: Mapping[str, Any], path: str) -> tuple[Node, ...]:
        items = spec.get("targets")
        if not isinstance(items, list) or not items:
            raise ConfigError("expected a non-empty list of targets", field=f"{path}.targets")
        return tuple(self.node(item, f"{path}.targets[{i}]") for i, item in enumerate(items))


def _leaf(name: str, spec: Any, path: str) -> Leaf:
    from ..providers.vendors import VENDORS

    spec = _mapping(spec, path)
    if "api_key" in spec:
        raise ConfigError("keys never go in configs; name an environment variable in api_key_env",
                          field=f"{path}.api_key")
    provider, sep, model = str(spec.get("model", "")).partition(":")
    if not sep or provider not in VENDORS:
        raise ConfigError(f"expected provider:model with a known provider ({', '.join(VENDORS)})",
                          field=f"{path}.model")
    return Leaf(name, provider, model, dict(spec))


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping, got {type(value).__name__}", field=path)
    return value
