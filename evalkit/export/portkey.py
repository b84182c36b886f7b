"""An evalkit routing config as a Portkey gateway config (JSON).

Shape (Portkey's config object):

* a ``task`` router becomes ``strategy: {mode: "conditional", conditions:
  [{query: {"metadata.task_type": {"$eq": "code"}}, then: "route-code"}],
  default: "route-default"}`` with one named target per route;
* a ``fallback`` node becomes ``strategy: {mode: "fallback"}`` with nested
  ``targets``; a ``balance`` node becomes ``strategy: {mode: "loadbalance"}``
  whose targets carry ``weight``;
* a leaf is ``{provider, virtual_key, override_params: {model}}``, plus
  ``custom_host`` for self-hosted servers or a ``base_url``, ``retry:
  {attempts}`` from the chain's ``retries_per_target`` and ``request_timeout``
  (ms) from ``total_timeout_s``, else ``timeout_s`` (the other deadlines,
  ``prefill``, ``mid_stream`` and ``breaker`` have no Portkey setting: the
  export's notes name them).

**Keys.** A Portkey config holds no environment references: keys live in
Portkey as *virtual keys* that you create. Each leaf therefore carries a
placeholder, ``"virtual_key": "<OPENAI_API_KEY>"`` (the variable evalkit reads),
to replace with the slug of the virtual key holding that secret; pass
``virtual_keys={"OPENAI_API_KEY": "openai-prod"}`` (by env var or by target
name) to fill them in. Keyless self-hosted servers get no virtual key.

**Task routes.** Clients send the task type as Portkey metadata, header
``x-portkey-metadata: {"task_type": "code"}``; requests without it go to the
default route. Portkey cannot run evalkit's task classifier (a learned model
file or the keyword rules), so nothing names the task of a request that
arrives without one. The JSON cannot say so (no comments; Portkey's gateway
validates a config with a schema that drops keys it does not know, and
refuses a top-level ``options``), so the export's note does:
:func:`evalkit.export.export_with_notes` returns it, ``evalkit export`` prints
it and :func:`~evalkit.export.export_config` issues it as a warning. Provider names follow Portkey's: gemini→google,
azure→azure-openai, mistral→mistral-ai, together→together-ai,
fireworks→fireworks-ai; vLLM and llama.cpp are ``openai`` with a ``custom_host``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ._plan import Chain, Leaf, Mix, Node, Plan

__all__ = ["PORTKEY_PROVIDERS", "to_portkey"]

PORTKEY_PROVIDERS: Mapping[str, str] = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "google", "azure": "azure-openai", "groq": "groq",
    "mistral": "mistral-ai", "deepseek": "deepseek", "openrouter": "openrouter", "together": "together-ai",
    "fireworks": "fireworks-ai", "cerebras": "cerebras", "ollama": "ollama", "vllm": "openai",
    "llamacpp": "openai",
}
"""evalkit provider → Portkey provider slug."""



def to_portkey(plan: Plan, virtual_keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Portkey config for ``plan``; ``virtual_keys`` maps env var or target names to virtual key slugs."""
    render = _Renderer(dict(virtual_keys or {}))
    if not plan.routes:
        return render.node(plan.default, retries=None)
    routes = {**{f"route-{task}": node for task, node in plan.routes.items()}, "route-default": plan.default}
    return {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.task_type": {"$eq": task}}, "then": f"route-{task}"}
                           for task in plan.routes],
            "default": "route-default",
        },
        "targets": [{"name": name, **render.node(node, retries=None)} for name, node in routes.items()],
    }


class _Renderer:
    def __init__(self, virtual_keys: dict[str, str]) -> None:
        self.virtual_keys = virtual_keys

    def node(self, node: Node, retries: int | None) -> dict[str, Any]:
        if isinstance(node, Leaf):
            return self.leaf(node, retries)
        if isinstance(node, Chain):
            inner = node.retry.retries_per_target
            return {"strategy": {"mode": "fallback"},
                    "targets": [self.node(m, inner) for m in node.members]}
        assert isinstance(node, Mix)
        weights = node.weights or (1.0,) * len(node.members)
        return {"strategy": {"mode": "loadbalance"},
                "targets": [{**self.node(m, retries), "weight": w} for m, w in zip(node.members, weights)]}

    def leaf(self, leaf: Leaf, retries: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": PORTKEY_PROVIDERS[leaf.provider]}
        if leaf.key_env:
            out["virtual_key"] = self.virtual_keys.get(leaf.name) or self.virtual_keys.get(leaf.key_env) \
                or f"<{leaf.key_env}>"
        out["override_params"] = {"model": leaf.model}
        host = _custom_host(leaf)
        if host:
            out["custom_host"] = host
        if retries:
            out["retry"] = {"attempts": int(retries)}
        deadlines = leaf.target.deadlines
        total = deadlines.total_timeout_s if deadlines is not None else None
        seconds = total if total is not None else leaf.target.timeout_s
        if seconds is not None:
            out["request_timeout"] = max(1, round(seconds * 1000))  # milliseconds; 0 would mean none
        return out


def _custom_host(leaf: Leaf) -> str | None:
    # Portkey configs cannot read the environment: a variable becomes a placeholder to fill in.
    return leaf.gateway_base_url(lambda name: f"<{name}>")

