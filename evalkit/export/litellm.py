"""An evalkit routing config as a LiteLLM proxy ``config.yaml``.

What the file holds:

* ``model_list``: one model group per target, named by the evalkit target
  (``litellm_params.model`` is ``<litellm provider>/<model>``; keys are
  ``os.environ/NAME`` references, resolved by LiteLLM, never inlined); a
  ``balance`` node is a group of several deployments with ``weight``s; and one
  group per task route, ``task-<type>`` (``default`` for the rest), whose
  deployment is the route's first target, tagged with the task type;
* per deployment, ``timeout`` (the whole response: the target's
  ``total_timeout_s``, else its ``timeout_s``) and ``stream_timeout`` (the
  wait for a stream's first chunk: ``ttft_timeout_s``); the other deadlines,
  ``prefill``, ``mid_stream`` and ``breaker`` have no LiteLLM setting and are
  named in the export's notes;
* ``router_settings``: ``routing_strategy``, ``num_retries`` (the evalkit
  retry policy's ``retries_per_target``), ``timeout`` (its ``deadline_s``) and
  ``fallbacks: [{task-code: [second, third]}]`` (the rest of each chain);
  with ``state: {backend: redis}``, the Redis LiteLLM's instances share
  (``redis_url`` or ``redis_host``/``redis_port``/``redis_password``, as
  ``os.environ/NAME`` references, and ``cache_kwargs.namespace``: see
  :mod:`evalkit.export._state`).

**How a client picks a task route**: ask for the route's group by name,
``model="task-code"`` (OpenAI SDK against the proxy); the deployment tags
(``tags: ["code"]``) carry the task type into LiteLLM's spend tracking and tag
filtering. Requests for ``model="default"`` get the default chain. LiteLLM has
no classifier, so the caller names the task; evalkit's ``task`` router
classified it for you, and the file's header comment names the classifier left
behind (a learned file with its cross-validated accuracy, or the keyword rules).

Provider mapping: openai→openai, anthropic→anthropic, gemini→gemini,
azure→azure (``api_version``; ``api_base`` from ``AZURE_OPENAI_ENDPOINT``),
groq, mistral, deepseek, openrouter, together→together_ai,
fireworks→fireworks_ai, cerebras, ollama→ollama_chat (``api_base`` is the
server origin, ``/v1`` dropped), vllm→hosted_vllm, llamacpp→openai with its
``api_base`` (OpenAI-compatible; give it an ``api_key_env``: LiteLLM's OpenAI
client wants some key).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError
from ._plan import Leaf, Mix, Node, Plan, chain_members, retry_of
from ._state import litellm_redis_settings

__all__ = ["LITELLM_PROVIDERS", "to_litellm"]

LITELLM_PROVIDERS: Mapping[str, str] = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "azure": "azure", "groq": "groq",
    "mistral": "mistral", "deepseek": "deepseek", "openrouter": "openrouter", "together": "together_ai",
    "fireworks": "fireworks_ai", "cerebras": "cerebras", "ollama": "ollama_chat", "vllm": "hosted_vllm",
    "llamacpp": "openai",
}
"""evalkit provider → LiteLLM model prefix."""

_STRATEGIES = {"weighted": "simple-shuffle", "least_inflight": "least-busy", "latency": "latency-based-routing"}
DEFAULT_GROUP = "default"


def to_litellm(plan: Plan) -> dict[str, Any]:
    """The LiteLLM proxy config (``model_list``, ``router_settings``) for ``plan``."""
    groups = _Groups()
    for leaf in plan.leaves.values():  # every target callable by its own name, too
        groups.group_of(leaf)
    fallbacks: list[dict[str, list[str]]] = []
    routes = {**{f"task-{task}": (task, node) for task, node in plan.routes.items()},
              DEFAULT_GROUP: (DEFAULT_GROUP, plan.default)}
    for group_name, (task, node) in routes.items():
        if group_name in groups.names:
            raise ConfigError(f"target name {group_name!r} collides with a task route group; rename the target",
                              field="targets")
        members = chain_members(node)
        groups.add_route(group_name, members[0], task)
        if len(members) > 1:
            fallbacks.append({group_name: [groups.group_of(m) for m in members[1:]]})
    retries = [retry_of(node) for _, node in routes.values()]
    settings: dict[str, Any] = {
        "routing_strategy": groups.strategy(),
        "num_retries": int(max(r.retries_per_target for r in retries)),
        "timeout": float(max(r.deadline_s for r in retries)),
        "fallbacks": fallbacks,
        **litellm_redis_settings(plan.state),
    }
    return {"model_list": groups.model_list, "router_settings": settings}


class _Groups:
    """LiteLLM model groups, built once per evalkit node."""

    def __init__(self) -> None:
        self.model_list: list[dict[str, Any]] = []
        self.names: set[str] = set()
        self._by_node: dict[int, str] = {}
        self._strategies: set[str] = set()
        self._mixes = 0

    def group_of(self, node: Node) -> str:
        """The group serving ``node``, created on first use."""
        if id(node) in self._by_node:
            return self._by_node[id(node)]
        if isinstance(node, Leaf):
            name = node.name
            self._deploy(name, [(node, None)])
        elif isinstance(node, Mix):
            self._mixes += 1
            name = node.name or f"balance-{self._mixes}"
            self._deploy(name, _weighted(node))
            self._strategies.add(_STRATEGIES.get(node.strategy, "simple-shuffle"))
        else:  # chains were flattened by chain_members
            raise ConfigError("a fallback chain cannot be a member of a balance node in LiteLLM")
        self._by_node[id(node)] = name
        return name

    def add_route(self, name: str, first: Node, task: str) -> None:
        """The ``task-<type>`` group: the route's first target, tagged with the task type."""
        if isinstance(first, Mix):
            self._strategies.add(_STRATEGIES.get(first.strategy, "simple-shuffle"))
            self._deploy(name, _weighted(first), tags=[task])
        else:
            self._deploy(name, [(first, None)], tags=[task])  # type: ignore[list-item]

    def strategy(self) -> str:
        # LiteLLM has one strategy per router: the balance nodes' own, when they agree.
        return self._strategies.pop() if len(self._strategies) == 1 else "simple-shuffle"

    def _deploy(self, name: str, members: list[tuple[Leaf, float | None]], tags: list[str] | None = None) -> None:
        self.names.add(name)
        for leaf, weight in members:
            params = litellm_params(leaf)
            if weight is not None:
                params["weight"] = weight
            if tags:
                params["tags"] = list(tags)
            entry: dict[str, Any] = {"model_name": name, "litellm_params": params}
            info = _model_info(leaf)
            if info:
                entry["model_info"] = info
            self.model_list.append(entry)


def _weighted(mix: Mix) -> list[tuple[Leaf, float | None]]:
    if not all(isinstance(m, Leaf) for m in mix.members):
        raise ConfigError("LiteLLM balances deployments only: a balance node's members must be targets")
    weights = mix.weights or (None,) * len(mix.members)
    return list(zip(mix.members, weights))  # type: ignore[arg-type]


def litellm_params(leaf: Leaf) -> dict[str, Any]:
    """``litellm_params`` for one target: model, key and endpoint by reference, timeout and limits."""
    target = leaf.target
    params: dict[str, Any] = {"model": f"{LITELLM_PROVIDERS[leaf.provider]}/{leaf.model}"}
    if leaf.key_env:
        params["api_key"] = f"os.environ/{leaf.key_env}"
    base = _api_base(leaf)
    if base:
        params["api_base"] = base
    if leaf.provider == "azure":
        from ..providers.vendors import VENDORS

        params["api_version"] = target.options.get("api_version") or VENDORS["azure"].chat.api_version
    deadlines = target.deadlines
    total = deadlines.total_timeout_s if deadlines is not None else None
    if total is not None or target.timeout_s is not None:
        params["timeout"] = total if total is not None else target.timeout_s  # LiteLLM's: the whole response
    if deadlines is not None and deadlines.ttft_timeout_s is not None:
        params["stream_timeout"] = deadlines.ttft_timeout_s  # LiteLLM's: the wait for a stream's first chunk
    for key in ("rpm", "tpm"):
        value = getattr(target.limits, key, None)
        if value is not None:
            params[key] = int(value)
    return params


def _api_base(leaf: Leaf) -> str | None:
    if leaf.provider == "azure" and not (leaf.target.base_url or leaf.target.base_url_env):
        return "os.environ/AZURE_OPENAI_ENDPOINT"
    return leaf.gateway_base_url(lambda name: f"os.environ/{name}")


def _model_info(leaf: Leaf) -> dict[str, Any]:
    """Context window and prices LiteLLM would not know for self-hosted or renamed models."""
    target = leaf.target
    info: dict[str, Any] = {}
    if target.context_window:
        info["max_input_tokens"] = target.context_window
    for ours, theirs in (("input", "input_cost_per_token"), ("output", "output_cost_per_token"),
                         ("cached_input", "cache_read_input_token_cost")):
        price = getattr(target.prices, ours, None)
        if price is not None:
            info[theirs] = float(price) / 1_000_000  # config prices are USD per 1M tokens
    return info
