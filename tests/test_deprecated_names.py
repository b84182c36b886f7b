"""The error names that shadowed Python's built-ins still work for one release, with a warning."""

from __future__ import annotations

import builtins

import pytest

import evalkit
import evalkit.errors


@pytest.mark.parametrize(("old", "new"), [("TimeoutError", "ProviderTimeoutError"),
                                          ("ConnectionError", "ProviderConnectionError")])
def test_old_names_warn_and_mean_the_new_class(old: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"evalkit.{new}"):
        assert getattr(evalkit, old) is getattr(evalkit, new)
    with pytest.warns(DeprecationWarning, match=f"evalkit.{new}"):
        assert getattr(evalkit.errors, old) is getattr(evalkit.errors, new)


def test_new_names_do_not_shadow_builtins() -> None:
    # `from evalkit import *` and `from evalkit.errors import *` leave Python's own exceptions alone.
    for module in (evalkit, evalkit.errors):
        namespace: dict[str, object] = {}
        exec(f"from {module.__name__} import *", namespace)
        shadowed = {name for name in namespace if name != "__builtins__" and hasattr(builtins, name)}
        assert shadowed == set()


def test_catching_the_new_name_catches_a_timeout() -> None:
    with pytest.raises(evalkit.ProviderTimeoutError):
        raise evalkit.errors.provider_error("timeout", "no answer within 1s")
    assert not issubclass(evalkit.ProviderTimeoutError, builtins.TimeoutError)
