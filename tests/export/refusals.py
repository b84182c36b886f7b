"""One check shared by the export tests: a bad config is refused by every export exactly as by ``Router.from_config``."""

from __future__ import annotations

from typing import Any

import pytest

import evalkit
from evalkit.errors import ConfigError
from evalkit.export import export_config


def assert_refused_alike(bad: Any, message: str) -> None:
    """``Router.from_config(bad)`` raises a ConfigError containing ``message``; every export raises the same one."""
    with pytest.raises(ConfigError) as from_config:
        evalkit.Router.from_config(bad)
    assert message in str(from_config.value)
    for fmt in ("evalkit", "litellm", "portkey"):
        with pytest.raises(ConfigError) as exported:
            export_config(bad, fmt)
        assert str(exported.value) == str(from_config.value), fmt
