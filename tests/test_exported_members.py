"""The public surface is exactly ``evalkit.__all__``, and every name in it resolves."""

from __future__ import annotations

import inspect

import evalkit


def test_all_exports_resolve_and_are_documented() -> None:
    for name in evalkit.__all__:
        member = getattr(evalkit, name)
        if name != "__version__":
            assert member.__doc__, f"evalkit.{name} has no docstring"


def test_no_public_name_outside_all() -> None:
    public = {n for n, v in vars(evalkit).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public - {"annotations", "TYPE_CHECKING", "Any"} <= set(evalkit.__all__)


def test_dir_lists_the_public_surface() -> None:
    assert dir(evalkit) == sorted(evalkit.__all__)
