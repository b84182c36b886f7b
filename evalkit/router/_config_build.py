"""Build the router tree of a validated :class:`~evalkit.router.config.RoutingSpec`.

Everything about the config's values was checked by the parser; what is left
for here is what needs the environment (keys, endpoints and Redis named by
variable) and the providers themselves. A named target is built once and
shared by every node naming it; a ``state: {backend: redis}`` block is one
:class:`~evalkit.router.state.RedisState`, given to the budget, every
breaker-keeping node, every limited target and the monitor.

The ``monitor`` block is one :class:`~evalkit.router.monitor.Monitor` that
every node reports to, each what only it sees: the root records every call's
attempts (the base router flattens nested nodes' attempts into the root's,
so a nested node recording too would count each attempt twice), and every
breaker-keeping node, at any depth, reports its breakers' openings through
``on_breaker_open`` (a nested node has no ``monitor`` of its own).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import ConfigError
from .config import (BalanceSpec, CostSpec, FallbackSpec, HedgeSpec, NodeSpec, PromptSpec, RouterSpec,
                     RoutingSpec, TargetSpec, TaskSpec)

if TYPE_CHECKING:
    from ._base import Router, RouterOptions, Target
    from ._shared_breaker import BreakerOpened
    from .balance import WeightedBalancer
    from .classifier import LearnedClassifier
    from .cost import CostAwareRouter
    from .fallback import FallbackChain
    from .hedge import HedgedRouter
    from .prompt import PromptRouter
    from .state import RedisState
    from .tasks import TaskRouter

__all__ = ["build"]


def build(spec: RoutingSpec, provider_options: Mapping[str, Any] | None = None) -> Router:
    """The root router of ``spec`` (a single target at the root becomes a one-target fallback chain).

    ``provider_options`` go to every :func:`~evalkit.providers.get_provider`
    call, on top of what the config sets for the target (never instead of it).
    """
    from ._base import Router
    from .fallback import FallbackChain

    builder = _Builder(spec, dict(provider_options or {}))
    node = builder.node(spec.router)
    root = node if isinstance(node, Router) else FallbackChain(
        [node], name=node.name, on_breaker_open=builder.breaker_opened, **builder.shared)
    root.monitor = builder.monitor  # the root records every attempt of the tree, once
    root.state = builder.state  # one object for the whole tree
    root.owns_state = builder.state is not None  # closing the root flushes and closes it
    return root


class _Builder:
    def __init__(self, spec: RoutingSpec, provider_options: dict[str, Any]) -> None:
        from .budget import BudgetLedger
        from .monitor import Monitor

        self.spec = spec
        self.provider_options = provider_options
        self.built: dict[int, Target] = {}
        self.state = self.shared_state()
        # ``state=`` only when there is one: a memory config builds exactly what it built before.
        self.shared: dict[str, Any] = {} if self.state is None else {"state": self.state}
        monitor = spec.monitor
        self.monitor = None if monitor is None else Monitor(monitor.window_s, monitor.max_events, **self.shared)
        # Every breaker-keeping node reports its openings here, nested ones included (they have no monitor).
        self.breaker_opened: BreakerOpened | None = None if self.monitor is None else self.monitor.breaker_opened
        budget = spec.budget
        self.ledger = None if budget is None else BudgetLedger(
            budget.limit, period=budget.period, per_target=budget.per_target,  # type: ignore[arg-type]
            max_share_of_remaining=budget.max_share_of_remaining, **self.shared)

    def shared_state(self) -> RedisState | None:
        """The one :class:`~evalkit.router.state.RedisState` of a ``state: {backend: redis}`` config, else None.

        The environment is read here, when the router is built (the validator
        reads none); an unset variable is a ConfigError at its YAML path.
        """
        state = self.spec.state
        if not state.shared:
            return None
        try:
            from .state import RedisState

            return RedisState(url_env=state.url_env, host_env=state.host_env, port_env=state.port_env,
                              password_env=state.password_env, prefix=state.prefix, timeout_ms=state.timeout_ms,
                              retry_interval_s=state.retry_interval_s, fail_open=state.fail_open)
        except ConfigError as exc:  # an unset variable: RedisState names its field, we add the file and line
            raise self.spec.error(exc.field or "state", _bare(exc)) from None
        except ImportError:
            raise self.spec.error("state.backend", "backend: redis needs the redis package: pip install "
                                                   "'evalkit[redis]'") from None

    def node(self, spec: NodeSpec) -> Target:
        """The target or router ``spec`` describes, built once however many nodes name it."""
        built = self.built.get(id(spec))
        if built is None:
            built = self.built[id(spec)] = self._make(spec)
        return built

    def _make(self, spec: NodeSpec) -> Target:
        if isinstance(spec, TargetSpec):
            return self.target(spec)
        if isinstance(spec, FallbackSpec):
            return self.fallback(spec)
        if isinstance(spec, BalanceSpec):
            return self.balance(spec)
        if isinstance(spec, TaskSpec):
            return self.task(spec)
        if isinstance(spec, CostSpec):
            return self.cost(spec)
        if isinstance(spec, HedgeSpec):
            return self.hedge(spec)
        return self.prompt(spec)

    def target(self, spec: TargetSpec) -> Target:
        from ..providers import get_provider
        from .limits import LimitedTarget

        options: dict[str, Any] = dict(spec.options)
        if spec.timeout_s is not None:
            options["timeout"] = spec.timeout_s
        if spec.context_window is not None:
            options["context_window"] = spec.context_window
        if spec.prices is not None:
            options["prices"] = spec.prices
        if spec.deadlines is not None:
            options["deadlines"] = spec.deadlines
        if spec.prefill is not None:
            options["prefill"] = spec.prefill
        options.update(self.extra_options(spec, options))
        base_url = spec.base_url
        if base_url is None and spec.base_url_env:
            base_url = os.environ.get(spec.base_url_env)
            if not base_url:  # never fall back to the vendor's public address by accident
                raise self.spec.error(f"{spec.path}.base_url_env",
                                      f"environment variable {spec.base_url_env} is not set")
        key = self._key(spec)
        try:
            provider = get_provider(spec.model, api_key=key, base_url=base_url, **options)
        except ConfigError as exc:
            raise self.spec.error(f"{spec.path}.model", _bare(exc)) from None
        return provider if spec.limits is None else LimitedTarget(provider, spec.limits, **self.shared)

    def extra_options(self, spec: TargetSpec, options: Mapping[str, Any]) -> dict[str, Any]:
        """``provider_options`` for this target; one the config sets for it too is an error, not a silent winner."""
        extra = self.provider_options
        if not extra:
            return {}
        if "api_key" in extra or "base_url" in extra:
            raise ConfigError("provider_options cannot set api_key or base_url: a config names them per target "
                              "(api_key_env, base_url, base_url_env)", field="provider_options")
        clash = sorted(set(extra) & set(options))
        if clash:
            raise self.spec.error(spec.path, f"provider_options sets {clash[0]!r}, which the config sets for this "
                                             "target too; set it in one place")
        return extra

    def _key(self, spec: TargetSpec) -> str | None:
        if spec.api_key_env is None:
            return None
        value = os.environ.get(spec.api_key_env)
        if not value:
            raise self.spec.error(f"{spec.path}.api_key_env",
                                  f"environment variable {spec.api_key_env} is not set")
        return value

    def fallback(self, spec: FallbackSpec) -> FallbackChain:
        from .fallback import FallbackChain

        from .health import BreakerSettings

        breaker = None if spec.breaker_off else spec.breaker or BreakerSettings()  # none given: the defaults
        return FallbackChain([self.node(t) for t in spec.targets], policy=spec.retry, breaker=breaker,
                             on_breaker_open=self.breaker_opened, **_router_options(spec), **self.shared)

    def balance(self, spec: BalanceSpec) -> WeightedBalancer:
        from .balance import WeightedBalancer

        return WeightedBalancer([self.node(t) for t in spec.targets], weights=spec.weights,
                                strategy=spec.strategy, max_attempts=spec.max_attempts, breaker=spec.breaker,
                                policy=spec.retry, on_breaker_open=self.breaker_opened, **_router_options(spec),
                                **self.shared)

    def task(self, spec: TaskSpec) -> TaskRouter:
        from .tasks import KeywordClassifier, TaskRouter

        routes = {task: self.node(node) for task, node in spec.routes.items()}
        if "file" in spec.classifier:
            classifier: Any = self.learned_classifier(spec)
        else:
            classifier = KeywordClassifier(**spec.classifier["keywords"])
        return TaskRouter(routes, default=self.node(spec.default), classifier=classifier, **_router_options(spec))

    def prompt(self, spec: PromptSpec) -> PromptRouter:
        from .prompt import PromptModel, PromptRouter

        model = PromptModel.load(spec.model)  # a bad file: a ConfigError naming the file and its field
        targets = {name: self.node(node) for name, node in spec.targets.items()}
        try:
            return PromptRouter(model, targets, **_router_options(spec), **spec.options)
        except ConfigError as exc:  # its target names are not the model's
            raise self.spec.error(f"{spec.path}.{exc.field or 'targets'}", _bare(exc)) from None

    def learned_classifier(self, spec: TaskSpec) -> LearnedClassifier:
        """The classifier file a task node names, with the config's ``min_confidence`` if it sets one."""
        import dataclasses

        from .classifier import LearnedClassifier

        settings = spec.classifier
        classifier = LearnedClassifier.load(settings["file"])  # a bad file: ConfigError naming it and its field
        if "min_confidence" in settings:
            classifier = dataclasses.replace(classifier, abstain_below=settings["min_confidence"])
        unknown = sorted(set(classifier.labels) - set(spec.routes))
        if unknown:  # a type it can name but no route serves: such requests take the default, say so at load
            import warnings

            warnings.warn(f"{spec.path}.classifier: {settings['file']} names task types with no route "
                          f"({', '.join(unknown)}); they take the default route", stacklevel=2)
        return classifier

    def cost(self, spec: CostSpec) -> CostAwareRouter:
        from .cost import Candidate, CostAwareRouter

        candidates = [Candidate(self.node(c.target), c.quality, c.prices) for c in spec.candidates]
        try:
            return CostAwareRouter(candidates, ledger=self.ledger, policy=spec.retry, **_router_options(spec),
                                   **spec.options)
        except (ConfigError, ValueError) as exc:  # e.g. a nested router candidate with no prices
            raise self.spec.error(spec.path, _bare(exc)) from None

    def hedge(self, spec: HedgeSpec) -> HedgedRouter:
        from .hedge import HedgedRouter

        return HedgedRouter([self.node(t) for t in spec.targets], delay_s=spec.delay_s, **_router_options(spec),
                            **spec.options)


def _router_options(spec: RouterSpec) -> RouterOptions:
    """The keywords every router class takes: its name, and ``mid_stream`` only when the config sets it."""
    options: RouterOptions = {"name": spec.name}
    if spec.mid_stream is not None:
        options["mid_stream"] = spec.mid_stream
    return options


def _bare(exc: Exception) -> str:
    """An inner error's message without its own location prefix (we add ours)."""
    if isinstance(exc, ConfigError) and exc.field:
        return str(exc).split(f"{exc.field}: ", 1)[-1]
    return str(exc)
