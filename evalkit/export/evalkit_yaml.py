"""evalkit's own format: the YAML routing config that ``evalkit.Router.from_config`` loads."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["to_evalkit_yaml"]


def to_evalkit_yaml(config: Mapping[str, Any]) -> str:
    """``config`` as YAML text, keys in their given order."""
    import yaml

    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)
