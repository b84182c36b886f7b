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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

__all__ = ["FORMATS", "export_config"]

FORMATS = ("evalkit", "litellm", "portkey")


def export_config(config: str | Path | Mapping[str, Any], fmt: str = "evalkit", *,
                  virtual_keys: Mapping[str, str] | None = None) -> str:
    """``config`` as text in ``fmt`` (``evalkit`` | ``litellm`` | ``portkey``).

    ``virtual_keys`` (Portkey only) maps env var names or target names to the
    slugs of your Portkey virtual keys; unmapped keys stay ``<ENV_NAME>`` placeholders.
    """
    from ..errors import ConfigError
    from ..router.config import parse_routing_config
    from ._plan import plan_of

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", field="--format")
    spec = parse_routing_config(config)  # the validator Router.from_config uses: no keys needed
    if fmt == "evalkit":
        from .evalkit_yaml import to_evalkit_yaml

        if isinstance(config, Mapping):
            return to_evalkit_yaml(config)
        return Path(config).read_text(encoding="utf-8")  # the file as written, comments included
    plan = plan_of(spec)
    if fmt == "litellm":
        import yaml

        from .litellm import to_litellm

        header = ("# LiteLLM proxy config exported by evalkit. Pick a task route with model=\"task-<type>\"\n"
                  "# (model=\"default\" for the rest); keys are os.environ/ references, set them in the proxy's env.\n")
        return header + yaml.safe_dump(to_litellm(plan), sort_keys=False, allow_unicode=True)
    import json

    from .portkey import to_portkey

    return json.dumps(to_portkey(plan, virtual_keys), indent=2) + "\n"
