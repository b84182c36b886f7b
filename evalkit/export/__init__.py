"""Export a routing config to the formats production gateways load.

``export_config(config, "litellm")`` turns an evalkit YAML routing config (a
path or a parsed mapping, e.g. ``RoutingTable.to_config()``) into:

* ``evalkit``: the YAML routing config itself (a file's text is kept as is,
  comments included);
* ``litellm``: a LiteLLM proxy ``config.yaml`` (see :mod:`evalkit.export.litellm`);
* ``portkey``: a Portkey gateway config, JSON (see :mod:`evalkit.export.portkey`).

API keys are only ever referenced: ``os.environ/OPENAI_API_KEY`` for
LiteLLM, virtual-key placeholders for Portkey. A config holding an
``api_key`` field is refused.
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
    from ._plan import load_config, parse_plan

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", field="--format")
    data = load_config(config)
    file = str(config) if isinstance(config, (str, Path)) else None
    try:
        plan = parse_plan(data)  # validates every format, evalkit's too: no inline keys, known providers
    except ConfigError as exc:
        raise ConfigError(str(exc).split(": ", 1)[-1] if exc.field else str(exc), file=file,
                          field=exc.field) from None
    if fmt == "evalkit":
        from .evalkit_yaml import to_evalkit_yaml

        return Path(config).read_text() if file else to_evalkit_yaml(data)
    if fmt == "litellm":
        import yaml

        from .litellm import to_litellm

        header = ("# LiteLLM proxy config exported by evalkit. Pick a task route with model=\"task-<type>\"\n"
                  "# (model=\"default\" for the rest); keys are os.environ/ references, set them in the proxy's env.\n")
        return header + yaml.safe_dump(to_litellm(plan), sort_keys=False, allow_unicode=True)
    import json

    from .portkey import to_portkey

    return json.dumps(to_portkey(plan, virtual_keys), indent=2) + "\n"
