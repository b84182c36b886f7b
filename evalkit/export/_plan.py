"""An evalkit routing config reduced to what gateways can express: task routes of chains and mixes.

Every exporter reads the same :class:`Plan`, made from the :class:`~evalkit.router.config.RoutingSpec`
that :func:`~evalkit.router.config.parse_routing_config` returns, so a config is
checked exactly as ``Router.from_config`` checks it (no keys needed). A plan is
per task type a node, a default node, and the leaf targets with how to reach
them. Nodes are :class:`Leaf`, :class:`Chain` (``fallback``) and :class:`Mix`
(``balance``); nested chains are flattened. What a gateway cannot express is
refused with its YAML path rather than dropped: ``cost`` and ``hedge`` nodes,
a ``budget`` (with its ``max_share_of_remaining``), provider options other
than ``api_version``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..router import RetryPolicy
from ..router.config import BalanceSpec, FallbackSpec, NodeSpec, RoutingSpec, StateSpec, TargetSpec, TaskSpec

__all__ = ["Chain", "Leaf", "Mix", "Node", "Plan", "chain_members", "plan_of", "retry_of"]


SELF_HOSTED = ("ollama", "vllm", "llamacpp")
_EXPORTABLE_OPTIONS = {"api_version"}


@dataclass(frozen=True)
class Leaf:
    """One provider:model target and how to reach it (never a key: only env var names)."""

    target: TargetSpec

    @property
    def name(self) -> str:
        """The target's name in the config (``provider:model`` for a target written inline)."""
        return self.target.name

    @property
    def provider(self) -> str:
        return self.target.provider

    @property
    def model(self) -> str:
        """The model id, without the provider prefix."""
        return self.target.model_id

    @property
    def key_env(self) -> str | None:
        """The environment variable holding this target's key: the config's, else the vendor's usual one."""
        from ..providers.vendors import VENDORS

        if self.target.api_key_env:
            return self.target.api_key_env
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
        if self.target.base_url:
            base = self.target.base_url.rstrip("/")
        elif self.target.base_url_env:
            return env_reference(self.target.base_url_env)
        elif self.provider in SELF_HOSTED:
            base = self.default_base_url
        else:
            return None
        return base.removesuffix("/v1") if self.provider == "ollama" else base


@dataclass(frozen=True)
class Chain:
    """Try members in order (a ``fallback`` node) under its retry policy."""

    members: tuple[Node, ...]
    retry: RetryPolicy = field(default_factory=RetryPolicy)


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
    """Task type → node, the default node, every leaf by name, and where replicas share state."""

    routes: Mapping[str, Node]
    default: Node
    leaves: Mapping[str, Leaf]
    state: StateSpec = field(default_factory=StateSpec)


def plan_of(spec: RoutingSpec) -> Plan:
    """The gateway :class:`Plan` of a validated config; what gateways cannot express is refused."""
    if spec.budget is not None:
        raise spec.error("budget", "gateways have no equivalent of evalkit's budget ledger (limit_usd, "
                                   "per_target, max_share_of_remaining); export a config without a budget "
                                   "and cost nodes")
    planner = _Planner(spec)
    for name, target in spec.targets.items():
        planner.leaves[name] = planner.leaf(target)
    root = spec.router
    if isinstance(root, TaskSpec):
        routes = {task: planner.node(node) for task, node in root.routes.items()}
        return Plan(routes, planner.node(root.default), planner.leaves, spec.state)
    return Plan({}, planner.node(root), planner.leaves, spec.state)


def chain_members(node: Node) -> list[Node]:
    """The members of ``node`` as a flat fallback order (a leaf or mix is a chain of one)."""
    if isinstance(node, Chain):
        return [m for member in node.members for m in chain_members(member)]
    return [node]


def retry_of(node: Node) -> RetryPolicy:
    """The retry policy of the chain ``node`` is (the default policy for leaves and mixes)."""
    return node.retry if isinstance(node, Chain) else RetryPolicy()


class _Planner:
    def __init__(self, spec: RoutingSpec) -> None:
        self.spec = spec
        self.leaves: dict[str, Leaf] = {}

    def leaf(self, target: TargetSpec) -> Leaf:
        extra = sorted(set(target.options) - _EXPORTABLE_OPTIONS)
        if extra:
            raise self.spec.error(f"{target.path}.options.{extra[0]}",
                                  "gateway exports cannot carry this provider option; remove it to export")
        return Leaf(target)

    def node(self, spec: NodeSpec) -> Node:
        if isinstance(spec, TargetSpec):  # a named target, or the same provider:model written inline twice
            if spec.name not in self.leaves:
                self.leaves[spec.name] = self.leaf(spec)
            return self.leaves[spec.name]
        if isinstance(spec, FallbackSpec):
            return Chain(tuple(self.node(t) for t in spec.targets), retry=spec.retry)
        if isinstance(spec, BalanceSpec):
            return Mix(tuple(self.node(t) for t in spec.targets), spec.weights, spec.strategy, spec.name)
        raise self.spec.error(spec.path, f"a {spec.kind} node has no gateway equivalent; export supports "
                                         "task routes of fallback and balance nodes")
