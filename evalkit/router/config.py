"""Routing configs: the YAML format, its one validator, and the router tree it builds.

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
      classifier: {file: routing.classifier.json}   # or keywords (the default): see TaskSpec
    budget: {limit_usd: 25, period: day, max_share_of_remaining: "0.1"}   # used by `cost` nodes
    monitor: {window: 24h}
    state: {backend: redis, url_env: REDIS_URL, prefix: myapp}   # shared by replicas: see below

Node types: ``fallback``, ``balance``, ``task``, ``cost``, ``hedge``, ``prompt`` (a per-prompt
router: ``{type: prompt, model: router.json, targets: {name in the model: node}, min_quality | lambda,
max_attempts, fallback_on_error}``). Files a config names are relative to its folder.

Streams, deadlines and failover (see the README's Routing section)::

    targets:
      primary:
        model: openai:gpt-4o-mini
        ttft_timeout_s: 2         # no first token within 2 s: a timeout, and the next target
        stall_timeout_s: 5        # 5 s of silence between two chunks: the same
        total_timeout_s: 60       # the whole call to this target
        prefill: false            # never hand it another model's partial answer (restart instead)
    router:
      type: fallback
      targets: [primary, backup]
      mid_stream: continue        # continue | restart | fail
      breaker: {consecutive_failures: 3, cooldown_s: 30}   # or off
      retry: {actions: {content_filter: next}}             # opt in to routing around content filters

* A target's deadlines, each positive finite seconds and each optional:
  ``connect_timeout_s`` (opening the connection), ``headers_timeout_s`` (until
  the response's headers), ``ttft_timeout_s`` (until the first token of a
  streamed answer), ``stall_timeout_s`` (the longest silence between two
  chunks) and ``total_timeout_s`` (the whole call). They become the target's
  :class:`~evalkit.Deadlines` (only the fields given are set; a call's own
  ``ChatRequest.deadlines`` win field by field). A deadline longer than the
  target's ``total_timeout_s`` could never fire and is refused. ``timeout_s``
  stays what it was: the HTTP client's timeout for each network operation.
* A target's ``prefill: true | false`` says whether it accepts an assistant
  prefill, i.e. whether it can continue another target's partial answer;
  omitted, the vendor's capability data decides.
* A target's ``limits:`` (a :class:`~evalkit.router.limits.Limits`) caps it
  locally: ``max_in_flight`` calls at once, ``rpm`` / ``tpm`` per minute;
  ``on_saturated: skip`` (the default) refuses at once, ``wait`` queues for at
  most ``max_wait_s``. ``adaptive: true`` (needs ``max_in_flight``) makes
  ``max_in_flight`` a ceiling: the calls allowed in flight are halved when the
  vendor throttles (a 429 or overload, or rate-limit headers saying under 5 %
  is left; once per burst) and grow back by one per window of successes, never
  below ``min_in_flight`` (default 1; only with ``adaptive``)::

      limits: {max_in_flight: 32, adaptive: true, on_saturated: wait}

* Every node takes ``mid_stream: continue | restart | fail``: what the node
  does when a streamed answer breaks after its caller has seen text.
  ``continue`` (the default) sends the text so far to the next target as a
  prefill and streams only the rest; a target without prefill gets
  ``restart``: the caller is sent a :class:`~evalkit.StreamRestart` and then a
  whole new answer; ``fail`` ends the call with the original error.
* A ``fallback`` node keeps a circuit breaker per target (on by default), so a
  target known to be down gets one probe per cooldown instead of every call.
  ``breaker:`` takes the settings a ``balance`` node's does
  (``consecutive_failures``, ``failure_rate``, ``window_s``, ``min_volume``,
  ``cooldown_s``, ``max_retry_after_s``), or ``off`` for none (YAML reads
  ``off`` as false, so ``false`` works too; an empty ``breaker:`` is refused
  as ambiguous, and ``on`` as a no-op: breakers are on already).
* A ``fallback`` node's ``retry.actions`` maps error kinds to ``retry``,
  ``next`` or ``stop``. A content-filter rejection stops the call by default
  (routing around it can bypass a safety filter); ``content_filter: next``
  opts in to trying the next target. ``balance`` and ``cost`` nodes take
  ``retry: {actions: ...}`` too, with ``next`` or ``stop`` only (they never
  retry the same target, so ``retry`` and the retry counts, backoff and
  deadline of a chain would change nothing there and are refused).
* Every node of the tree reports to the config's one ``monitor``: the root
  records each call's attempts (nested nodes' included, once), and every
  ``fallback`` and ``balance`` node, however deep, reports its breakers'
  openings (``Monitor.breaker_opened``, the ``evalkit_breaker_opens_total``
  counter).

Replicas that share one budget, one health view and one rate limit (the ``state`` block)::

    state:
      backend: redis              # memory (the default): everything stays in this process
      url_env: REDIS_URL          # the variable holding redis://[:password@]host:6379/0 (rediss:// for TLS)
      prefix: myapp               # the start of every key, so services can share one Redis
      timeout_ms: 50              # slower than this counts as down
      retry_interval_s: 1         # how long a down Redis is left alone before the next try
      fail_open: false            # budgets while Redis is down: refuse (false) or spend per replica (true)

* Instead of ``url_env``, ``host_env`` with ``port_env`` and ``password_env``
  (optional; port 6379, no password) name the variables LiteLLM's proxy
  reads. Secrets only ever by variable name: an inline ``url`` or
  ``password`` is refused, and a variable is read when the router is built,
  never by the validator (an unset one is an error at ``state.url_env``).
* ``backend: redis`` gives the one :class:`~evalkit.router.state.RedisState`
  to the ``budget`` (reserve, settle and release atomic across replicas), to
  every ``fallback`` and ``balance`` node (their circuit breakers, shared per
  target name), to every target's ``limits`` (``rpm``/``tpm`` global,
  ``max_in_flight`` per process) and to the ``monitor`` (Prometheus counters
  summed over replicas: :meth:`~evalkit.router.monitor.Monitor.to_prometheus`
  with ``scope="fleet"``). The built root router's ``state`` is that object
  (``None`` for memory): ``await router.state.flush()`` waits for its
  background writes (settles, counters), and ``router.aclose()`` (or leaving
  ``async with router``) closes the providers, then sends those writes and
  closes the state's connections.
* With ``backend: memory`` (or no ``state`` block) every other key would
  change nothing and is refused; so is a Redis block that nothing in the
  config uses, and ``fail_open: true`` without a ``budget`` (it only decides
  what budgets do while Redis is down: breakers and limits fall back to this
  process's state either way).

:func:`parse_routing_config` is the single validator: every consumer (the
router builder, ``evalkit export``, ``evalkit replay``) reads the typed
:class:`RoutingSpec` it returns, so none can accept what another refuses. It
builds no provider and reads no environment variable, so a config can be
checked and exported without keys. Every problem is a
:class:`~evalkit.ConfigError` naming the file, the line and the YAML path of
the bad field (``router.routes.code.targets[1]``). Numbers must be finite
numbers (never strings, NaN or infinity) within their field's range; a
setting that would change nothing (a budget no ``cost`` node uses, a
``max_wait_s`` without ``on_saturated: wait``, a zero weight) is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Union

from .._yaml import YamlDocument, load_yaml_file
from ..errors import ConfigError
from ..types import Deadlines
from ._retry import RetryPolicy
from .health import BreakerSettings
from .limits import Limits

if TYPE_CHECKING:
    from ._base import Router
    from ._call import MidStream
    from .balance import Strategy

__all__ = ["BalanceSpec", "BudgetSpec", "CandidateSpec", "CostSpec", "FallbackSpec", "HedgeSpec",
           "MonitorSpec", "NodeSpec", "PromptSpec", "RouterSpec", "RoutingSpec", "StateSpec", "TargetSpec", "TaskSpec",
           "build_router", "load_router_config", "parse_routing_config"]

# Each node spec's ``kind`` (a class constant, not a field) is its ``type:`` in YAML, ``target`` for a leaf.
# Each node spec's ``mid_stream`` is the node's ``mid_stream:`` (``None`` when omitted: the router class's default).


@dataclass(frozen=True, eq=False)
class TargetSpec:
    """A leaf: one ``provider:model`` and how to reach it (a key only by environment variable name)."""

    kind = "target"
    name: str
    model: str
    path: str
    api_key_env: str | None = None
    base_url: str | None = None
    base_url_env: str | None = None
    timeout_s: float | None = None
    context_window: int | None = None
    prices: Any = None  # evalkit.pricing.Prices
    limits: Limits | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    deadlines: Deadlines | None = None
    """The per-call deadlines the config gives this target (``None``: none; unset fields stay unset)."""
    prefill: bool | None = None
    """Whether the target accepts an assistant prefill (``None``: the vendor's capability data)."""

    @property
    def provider(self) -> str:
        return self.model.partition(":")[0]

    @property
    def model_id(self) -> str:
        return self.model.partition(":")[2]


@dataclass(frozen=True, eq=False)
class FallbackSpec:
    """A ``fallback`` node: targets tried in order under one retry policy."""

    kind = "fallback"
    targets: tuple[NodeSpec, ...]
    path: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str | None = None
    mid_stream: MidStream | None = None
    breaker: BreakerSettings | None = None
    """The chain's per-target circuit breakers (``None``: ``FallbackChain``'s defaults)."""
    breaker_off: bool = False
    """``breaker: off``: no circuit breakers; every call tries every target in order."""


@dataclass(frozen=True, eq=False)
class BalanceSpec:
    """A ``balance`` node: load spread over targets by weight or health."""

    kind = "balance"
    targets: tuple[NodeSpec, ...]
    path: str
    weights: tuple[float, ...] | None = None
    strategy: Strategy = "weighted"
    max_attempts: int | None = None
    breaker: BreakerSettings | None = None
    name: str | None = None
    mid_stream: MidStream | None = None
    retry: RetryPolicy | None = None
    """The node's ``retry.actions`` (``None``: the defaults): which errors end the call (``stop``) or move on."""


@dataclass(frozen=True, eq=False)
class TaskSpec:
    """A ``task`` node: a route per task type and a default."""

    kind = "task"
    routes: Mapping[str, NodeSpec]
    default: NodeSpec
    path: str
    classifier: Mapping[str, Any] = field(default_factory=lambda: {"keywords": {}})
    """``{"keywords": KeywordClassifier kwargs}`` or ``{"file": Path, "min_confidence"?: float}``."""
    name: str | None = None
    mid_stream: MidStream | None = None


@dataclass(frozen=True, eq=False)
class CandidateSpec:
    """One candidate of a ``cost`` node: its target, quality and optional prices."""

    target: NodeSpec
    quality: float
    prices: Any = None


@dataclass(frozen=True, eq=False)
class CostSpec:
    """A ``cost`` node: the cheapest adequate candidate within the config's budget."""

    kind = "cost"
    candidates: tuple[CandidateSpec, ...]
    path: str
    options: Mapping[str, Any] = field(default_factory=dict)  # min_quality, on_over_budget, ...
    name: str | None = None
    mid_stream: MidStream | None = None
    retry: RetryPolicy | None = None
    """The node's ``retry.actions`` (``None``: the defaults): which errors end the call (``stop``) or move on."""


@dataclass(frozen=True, eq=False)
class HedgeSpec:
    """A ``hedge`` node: the same request to a second target when the first is slow."""

    kind = "hedge"
    targets: tuple[NodeSpec, ...]
    path: str
    delay_s: float | Literal["p95"] = "p95"
    options: Mapping[str, Any] = field(default_factory=dict)  # max_hedges, min_delay_s, cold_delay_s
    name: str | None = None
    mid_stream: MidStream | None = None


@dataclass(frozen=True, eq=False)
class PromptSpec:
    """A ``prompt`` node: a per-prompt router's model file and what each of its target names is here."""

    kind = "prompt"
    model: Path
    targets: Mapping[str, NodeSpec]
    path: str
    options: Mapping[str, Any] = field(default_factory=dict)  # min_quality | lambda_, max_attempts, fallback_on_error
    name: str | None = None
    mid_stream: MidStream | None = None


RouterSpec = Union[FallbackSpec, BalanceSpec, TaskSpec, CostSpec, HedgeSpec, PromptSpec]
"""A node that is a router (every node type but a leaf target)."""
NodeSpec = Union[TargetSpec, RouterSpec]


@dataclass(frozen=True)
class BudgetSpec:
    """The ``budget`` block: BudgetLedger arguments, money as Decimal, ``per_target`` by served name."""

    limit: Decimal
    period: str = "day"
    per_target: Mapping[str, Decimal] = field(default_factory=dict)
    max_share_of_remaining: Decimal | None = None


@dataclass(frozen=True)
class MonitorSpec:
    window_s: float = 86_400.0
    max_events: int = 100_000


@dataclass(frozen=True)
class StateSpec:
    """The ``state`` block: where replicas share state (``memory``: nowhere) and how to reach Redis.

    Only names of environment variables, never their values: the builder
    reads them (:meth:`RedisState.__init__ <evalkit.router.state.RedisState>`).
    """

    backend: str = "memory"
    url_env: str | None = None
    host_env: str | None = None
    port_env: str | None = None
    password_env: str | None = None
    prefix: str = "evalkit"
    timeout_ms: float = 50.0
    retry_interval_s: float = 1.0
    fail_open: bool = False

    @property
    def shared(self) -> bool:
        """True when replicas share state through Redis."""
        return self.backend == "redis"


@dataclass(frozen=True)
class RoutingSpec:
    """A validated routing config: named targets, the tree, budget, monitor and state, and where it came from."""

    targets: Mapping[str, TargetSpec]
    router: NodeSpec
    budget: BudgetSpec | None = None
    monitor: MonitorSpec | None = None
    doc: YamlDocument = field(default_factory=lambda: YamlDocument(None))
    state: StateSpec = field(default_factory=StateSpec)
    """Where replicas share budget, breakers, limits and counters (``backend: memory``: nowhere)."""

    def error(self, path: str, message: str) -> ConfigError:
        """A located error about ``path`` (for problems found when building, e.g. an unset variable)."""
        return self.doc.error(path, message)


def parse_routing_config(source: str | Path | Mapping[str, Any] | YamlDocument, *,
                         known_providers: bool = True) -> RoutingSpec:
    """The validated :class:`RoutingSpec` of a YAML file (path) or an already-parsed mapping.

    ``known_providers=False`` accepts any ``name:model`` target (replaying
    published results, whose targets are only names); everything else is
    checked the same.
    """
    if isinstance(source, YamlDocument):
        doc = source
    elif isinstance(source, Mapping):
        doc = YamlDocument(source)
    else:
        doc = load_yaml_file(source, what="routing config")
    from ._config_parse import Parser

    return Parser(doc, known_providers).config()


def load_router_config(source: str | Path | Mapping[str, Any], *,
                       provider_options: Mapping[str, Any] | None = None) -> Router:
    """The root router described by a YAML file (path) or an already-parsed mapping.

    ``provider_options`` are extra keyword options given to every
    :func:`~evalkit.providers.get_provider` call the config makes (e.g.
    ``{"transport": t}``: one HTTP transport for every target). An option a
    target also sets in the config (``timeout`` from ``timeout_s``,
    ``deadlines``, ``headers``, ...) is a :class:`~evalkit.ConfigError` naming
    that target: it is set in one place or the other, never silently both.
    """
    return build_router(parse_routing_config(source), provider_options=provider_options)


def build_router(config: RoutingSpec | Mapping[str, Any], *,
                 provider_options: Mapping[str, Any] | None = None) -> Router:
    """The root router of a :class:`RoutingSpec` (or of a mapping, validated first); see :func:`load_router_config`."""
    from ._config_build import build

    spec = config if isinstance(config, RoutingSpec) else parse_routing_config(config)
    return build(spec, provider_options=provider_options)
