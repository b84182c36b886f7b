"""Export a routing config to the formats production gateways load.

``export_config(config, "litellm")`` turns an evalkit YAML routing config (a
path or a parsed mapping, e.g. ``RoutingTable.to_config()``) into:

* ``evalkit``: the YAML routing config itself (a file's text is kept as is,
  comments included);
* ``litellm``: a LiteLLM proxy ``config.yaml`` (see :mod:`evalkit.export.litellm`);
* ``portkey``: a Portkey gateway config, JSON (see :mod:`evalkit.export.portkey`).

API keys are only ever referenced: ``os.environ/OPENAI_API_KEY`` for
LiteLLM, virtual-key placeholders for Portkey. A config holding an
``api_key`` field is refused. Every format is checked by the same validator as
``Router.from_config`` (:func:`evalkit.router.config.parse_routing_config`);
the gateway formats also refuse what a gateway cannot express (``cost`` and
``hedge`` nodes, a ``budget``) instead of dropping it.

**The task classifier does not travel.** A gateway routes on what the caller
names; it cannot run evalkit's task classifier (a learned model file or the
keyword rules), which names the task of a request that arrives without one.
When the config's root is a task node, a gateway export says so, naming the
classifier (a learned file with its cross-validated accuracy) and what the
gateway does instead: in the LiteLLM file's header comment, and, since
Portkey's JSON has no comments, only in the notes (a top-level note key would
be stripped by Portkey's gateway, whose config schema drops unknown keys, and
it is refused outright when named ``options``). Notes come back from
:func:`export_with_notes` (``evalkit export`` prints them on stderr), and
:func:`export_config` issues each as a :class:`GatewayExportWarning`.

**Streams and failover settings travel where the gateway has a setting**
(LiteLLM: ``ttft_timeout_s`` as ``stream_timeout``, ``total_timeout_s`` as
``timeout``; Portkey: ``total_timeout_s`` as ``request_timeout``); the rest
(the other deadlines, ``prefill``, ``mid_stream``, a fallback node's
``breaker``, the content-filter rule) is named in a note, with its YAML path
(:mod:`evalkit.export._failover_notes`). The ``evalkit`` format keeps them all.

**Shared state** (``state: {backend: redis, ...}``) travels to LiteLLM as the
Redis its proxy instances share (``router_settings`` ``redis_*`` as
``os.environ/NAME`` references, never a value); Portkey, a gateway every
replica sends through, keeps its own state, and the export notes it
(:mod:`evalkit.export._state`). The ``evalkit`` format keeps the block as written.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping, NamedTuple

__all__ = ["FORMATS", "Export", "GatewayExportWarning", "export_config", "export_with_notes"]

FORMATS = ("evalkit", "litellm", "portkey")


class GatewayExportWarning(UserWarning):
    """Part of the routing config that the exported gateway config cannot carry (its text says which and why)."""


class Export(NamedTuple):
    """An exported config: its ``text``, and ``notes`` on what it does not carry (one sentence or more each)."""

    text: str
    notes: tuple[str, ...]


def export_config(config: str | Path | Mapping[str, Any], fmt: str = "evalkit", *,
                  virtual_keys: Mapping[str, str] | None = None) -> str:
    """``config`` as text in ``fmt`` (``evalkit`` | ``litellm`` | ``portkey``).

    ``virtual_keys`` (Portkey only) maps env var names or target names to the
    slugs of your Portkey virtual keys; unmapped keys stay ``<ENV_NAME>`` placeholders.
    Each note of :func:`export_with_notes` is issued as a :class:`GatewayExportWarning`.
    """
    import warnings

    exported = export_with_notes(config, fmt, virtual_keys=virtual_keys)
    for note in exported.notes:
        warnings.warn(note, GatewayExportWarning, stacklevel=2)
    return exported.text


def export_with_notes(config: str | Path | Mapping[str, Any], fmt: str = "evalkit", *,
                      virtual_keys: Mapping[str, str] | None = None) -> Export:
    """:func:`export_config`'s text and, instead of warnings, its notes (what ``evalkit export`` prints)."""
    from ..errors import ConfigError
    from ..router.config import parse_routing_config
    from ._failover_notes import failover_notes
    from ._notes import classifier_notes
    from ._plan import plan_of
    from ._state import state_notes

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", field="--format")
    spec = parse_routing_config(config)  # the validator Router.from_config uses: no keys needed
    if fmt == "evalkit":
        from .evalkit_yaml import to_evalkit_yaml

        if isinstance(config, Mapping):
            return Export(to_evalkit_yaml(config), ())
        return Export(Path(config).read_text(encoding="utf-8"), ())  # the file as written, comments included
    plan = plan_of(spec)
    notes = classifier_notes(spec, fmt, config) + failover_notes(spec, fmt) + state_notes(spec, fmt)
    if fmt == "litellm":
        import yaml

        from .litellm import to_litellm

        header = ("# LiteLLM proxy config exported by evalkit. Pick a task route with model=\"task-<type>\"\n"
                  "# (model=\"default\" for the rest); keys are os.environ/ references, set them in the proxy's env.\n")
        # Whole words per line: a file path in a note stays in one piece.
        lines = [line for note in notes
                 for line in textwrap.wrap(note, 106, break_long_words=False, break_on_hyphens=False)]
        header += "".join(f"# {line}\n" for line in lines)
        return Export(header + yaml.safe_dump(to_litellm(plan), sort_keys=False, allow_unicode=True), notes)
    import json

    from .portkey import to_portkey

    return Export(json.dumps(to_portkey(plan, virtual_keys), indent=2) + "\n", notes)
