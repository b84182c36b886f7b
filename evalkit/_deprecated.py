"""Names kept for one release after a rename, each with a :class:`DeprecationWarning` naming its successor.

``evalkit.TimeoutError`` and ``evalkit.ConnectionError`` shadowed Python's built-ins under
``from evalkit import *``; they are now ``ProviderTimeoutError`` and ``ProviderConnectionError``.
Both ``evalkit`` and ``evalkit.errors`` resolve the old names here, from their module ``__getattr__``.
"""

from __future__ import annotations

import warnings

from . import errors

__all__ = ["deprecated_alias"]

_RENAMED = {"TimeoutError": "ProviderTimeoutError", "ConnectionError": "ProviderConnectionError"}


def deprecated_alias(name: str) -> type[errors.ProviderError] | None:
    """The class an old error name stands for, with a warning; ``None`` if ``name`` is not an old name."""
    new = _RENAMED.get(name)
    if new is None:
        return None
    warnings.warn(f"evalkit.{name} is deprecated (it shadowed the built-in {name}); use evalkit.{new}",
                  DeprecationWarning, stacklevel=3)
    cls: type[errors.ProviderError] = getattr(errors, new)
    return cls
