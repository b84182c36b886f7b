"""What a gateway export leaves behind of evalkit's failover settings, said in words (notes, like the classifier's).

A gateway config carries what the gateway has a setting for. Of a target's
deadlines, LiteLLM has ``stream_timeout`` (its documented meaning: the longest
wait for a stream's first chunk, so ``ttft_timeout_s``) and ``timeout`` (the
whole response: ``total_timeout_s``, else the target's ``timeout_s`` as
before); Portkey has ``request_timeout`` (the whole request:
``total_timeout_s``, else ``timeout_s``). Everything else of the streams and
failover settings has no equivalent in either file, and each export says
which, where it is in the config, and what applies instead:

* the other deadlines (``connect_timeout_s``, ``headers_timeout_s``,
  ``stall_timeout_s``, and ``ttft_timeout_s`` for Portkey);
* a target's ``prefill`` (only evalkit's mid-stream continuation reads it);
* a node's ``mid_stream`` (what happens when a stream breaks after its first
  chunk: the gateway's own behaviour applies);
* a fallback node's ``breaker`` (the gateway's own cooldown or circuit breaker
  applies, with its own counting);
* the content-filter rule: evalkit's fallback nodes stop on a content-filter
  rejection unless ``retry.actions.content_filter: next`` opts in; the exported
  fallbacks carry no per-error rule, so whether the gateway routes around a
  rejection is the gateway's setting. Noted for every chain of two or more
  targets whose ``content_filter`` action is ``stop``, since routing around a
  safety filter is what that default exists to prevent.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Iterator

from ..errors import ErrorKind
from ..router import Action
from ..router.config import BalanceSpec, FallbackSpec, NodeSpec, RoutingSpec, TargetSpec, TaskSpec

__all__ = ["EXPORTED_DEADLINES", "failover_notes"]

EXPORTED_DEADLINES = {"litellm": ("ttft_timeout_s", "total_timeout_s"), "portkey": ("total_timeout_s",)}
"""The deadline fields each gateway format carries (see the exporters)."""


_GATEWAY = {
    "litellm": {
        "name": "LiteLLM",
        "deadlines": "its timeout carries total_timeout_s (else timeout_s) and its stream_timeout ttft_timeout_s",
        "breaker": "LiteLLM's own deployment cooldowns apply instead (router_settings allowed_fails and "
                   "cooldown_time)",
    },
    "portkey": {
        "name": "Portkey",
        "deadlines": "its request_timeout carries total_timeout_s (else timeout_s)",
        "breaker": "Portkey's circuit breaker (a strategy's cb_config) counts failures its own way and is left "
                   "unset",
    },
}


def failover_notes(spec: RoutingSpec, fmt: str) -> tuple[str, ...]:
    """The notes of exporting ``spec`` to the gateway format ``fmt``: one per kind of setting left behind."""
    if fmt not in _GATEWAY:
        return ()
    gateway = _GATEWAY[fmt]
    name = gateway["name"]
    targets, nodes = _parts(spec)
    notes = []
    deadlines = _deadlines_left(targets, fmt)
    if deadlines:
        notes.append(f"Not exported: {', '.join(deadlines)}. {name} has no such per-target deadline; "
                     f"{gateway['deadlines']}.")
    prefill = [f"{t.path}.prefill ({str(t.prefill).lower()})" for t in targets if t.prefill is not None]
    if prefill:
        notes.append(f"Not exported: {', '.join(prefill)}. It tells evalkit's routers whether a target can continue "
                     f"another's partial answer; {name} has no such setting.")
    modes = [f"{n.path}.mid_stream ({n.mid_stream})" for n in nodes if n.mid_stream is not None]
    if modes:
        notes.append(f"Not exported: {', '.join(modes)}. {name}'s config has no setting for what happens when a "
                     f"stream breaks after its first chunk; {name}'s own behaviour applies.")
    breakers = [f"{n.path}.breaker ({'off' if n.breaker_off else 'settings'})" for n in nodes
                if isinstance(n, FallbackSpec) and (n.breaker_off or n.breaker is not None)]
    if breakers:
        notes.append(f"Not exported: {', '.join(breakers)}. {gateway['breaker']}.")
    balance_rules = [f"{n.path}.retry.actions" for n in nodes if isinstance(n, BalanceSpec) and n.retry is not None]
    if balance_rules:
        notes.append(f"Not exported: {', '.join(balance_rules)}. It says which errors end a call to evalkit's "
                     f"balancer instead of moving to another member; {name}'s load balancing has no per-error "
                     f"rule, so {name}'s own behaviour applies.")
    stopping = [n.path for n in nodes if isinstance(n, FallbackSpec) and len(n.targets) > 1
                and n.retry.actions.get(ErrorKind.CONTENT_FILTER) is Action.STOP]
    if stopping:
        notes.append(f"Content-filter rejections: evalkit's fallback nodes stop on one rather than send the "
                     f"request to the next target (retry.actions.content_filter: stop, the default, at "
                     f"{', '.join(stopping)}; routing around a safety filter is opt-in). The exported fallbacks "
                     f"carry no per-error rule: whether {name} routes around such a rejection is {name}'s own "
                     f"setting.")
    return tuple(notes)


def _deadlines_left(targets: list[TargetSpec], fmt: str) -> list[str]:
    """``path.field`` of every deadline the format drops (and of a ``timeout_s`` that total_timeout_s replaces)."""
    left = []
    for target in targets:
        if target.deadlines is None:
            continue
        # Each field of evalkit.Deadlines is a YAML key of its own on a target.
        left += [f"{target.path}.{f.name}" for f in fields(target.deadlines)
                 if getattr(target.deadlines, f.name) is not None and f.name not in EXPORTED_DEADLINES[fmt]]
        if target.timeout_s is not None and target.deadlines.total_timeout_s is not None:
            left.append(f"{target.path}.timeout_s (total_timeout_s is exported in its place)")
    return left


def _parts(spec: RoutingSpec) -> tuple[list[TargetSpec], list[NodeSpec]]:
    """Every target (named ones first, then those written inline) and every node of the tree, each once."""
    targets: dict[int, TargetSpec] = {id(t): t for t in spec.targets.values()}
    nodes: dict[int, NodeSpec] = {}
    for node in _walk(spec.router):
        (targets if isinstance(node, TargetSpec) else nodes).setdefault(id(node), node)  # type: ignore[arg-type]
    return list(targets.values()), list(nodes.values())


def _walk(node: NodeSpec) -> Iterator[NodeSpec]:
    # Gateway exports refuse every other node kind before notes are made (export/_plan.py).
    yield node
    if isinstance(node, TaskSpec):
        for child in (*node.routes.values(), node.default):
            yield from _walk(child)
    elif isinstance(node, (FallbackSpec, BalanceSpec)):
        for child in node.targets:
            yield from _walk(child)
