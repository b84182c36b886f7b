"""Fixtures of the export tests."""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest


@pytest.fixture(scope="session")
def litellm_module() -> Any:
    """LiteLLM itself (a dev dependency), to load what the export writes; it never fetches its price map."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="pydantic")  # litellm's own types
        import litellm

    return litellm
