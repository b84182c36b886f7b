"""A provider emulator: one HTTP server on 127.0.0.1 speaking the OpenAI, Anthropic and Gemini wire formats.

It serves a fleet of simulated models (see ``FLEET.md``), answers dataset
prompts right or wrong according to each model's skill, paces streams by a
latency model and injects faults on demand::

    from evalkit.emulator import Emulator
    with Emulator(seed=0, time_scale=0.0) as emu:
        emu.openai_base_url, emu.anthropic_base_url, emu.gemini_base_url
        emu.base_url_for("llamacpp")  # .../llamacpp/v1: llama-cpp-python's server (also vllm, ollama, fastapi)

Inside an event loop, ``async with Emulator(...) as emu`` starts it without blocking the loop.
:class:`WireURLs` derives those per-wire URLs from a ``base_url``, for anything else that stands in
for an emulator (a replay of recorded answers).

It is as strict as the real servers: a body not sent as JSON, a missing or
misplaced key, a missing ``anthropic-version``, a field of the wrong type are
refused with the vendor's status and error body (``_request_checks``). The
OpenAI-compatible self-hosted servers are served under a path prefix each,
with their own reading of a request and their own error bodies (``_compat``).

``evalkit emulate`` runs the same server from the command line. Importing this
package is cheap: the HTTP server (starlette, uvicorn) loads on first use of
:class:`Emulator`, and :mod:`evalkit.emulator.fleet` never loads it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._urls import WireURLs
    from .answers import AnswerBook, Registration
    from .faults import FAULT_KINDS
    from .fleet import Fleet, ModelSpec, Price, default_fleet, load_fleet
    from .server import Emulator

__all__ = [
    "FAULT_KINDS",
    "AnswerBook",
    "Emulator",
    "Fleet",
    "ModelSpec",
    "Price",
    "Registration",
    "WireURLs",
    "default_fleet",
    "load_fleet",
]

_LAZY = {
    "Emulator": ".server",
    "AnswerBook": ".answers",
    "Registration": ".answers",
    "WireURLs": "._urls",
    "FAULT_KINDS": ".faults",
    "Fleet": ".fleet",
    "ModelSpec": ".fleet",
    "Price": ".fleet",
    "default_fleet": ".fleet",
    "load_fleet": ".fleet",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit.emulator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
