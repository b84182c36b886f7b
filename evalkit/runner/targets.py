"""Turn target specs (what a user types, what a manifest stores) into providers and routers.

A spec is one of:

* ``provider:model`` — a real provider (keys from the environment);
* a path to a routing YAML (``*.yaml``/``*.yml``) — the router it describes;
* ``emulator:MODEL`` — a model of the in-process provider emulator, asked over
  its first wire format and priced at the fleet's prices.

Specs are strings so a manifest can store them and a resume can rebuild them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError

if TYPE_CHECKING:
    import httpx

    from ..emulator import Fleet, ModelSpec
    from ..providers import Provider

__all__ = ["EMULATOR_PREFIX", "EmulatorEndpoints", "emulator_specs", "resolve_targets"]

EMULATOR_PREFIX = "emulator:"
_WIRE_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}


class EmulatorEndpoints(Protocol):
    """What ``emulator:MODEL`` specs resolve against: an :class:`~evalkit.emulator.Emulator`, or a
    replay's stand-in (:class:`~evalkit.runner.cassettes.ReplayEmulator`: the fleet, no server)."""

    @property
    def fleet(self) -> Fleet:
        """The models served, with their prices and context windows."""

    def base_url_for(self, wire: str) -> str:
        """The base URL of a wire format (``openai``, ``anthropic``, ``gemini``)."""


def emulator_specs(fleet: Iterable[ModelSpec]) -> list[str]:
    """One spec per model of an emulator fleet."""
    return [f"{EMULATOR_PREFIX}{spec.name}" for spec in fleet]


def resolve_targets(specs: Sequence[str], *, emulator: EmulatorEndpoints | None = None, timeout_s: float = 60.0,
                    transport: httpx.AsyncBaseTransport | None = None) -> list[Provider]:
    """Providers/routers for ``specs``; a bad spec is a :class:`~evalkit.ConfigError` on ``--targets``.

    ``transport`` (an ``httpx.AsyncBaseTransport``, e.g. a cassette's) is given to
    every provider built, those of a routing config included. They all share it,
    so it must outlive any one of them closing (a cassette's does); the caller
    closes what is behind it once the providers are closed.
    """
    if not specs:
        raise ConfigError("no targets given", field="--targets")
    # Only set when given: a provider given no transport picks its own default.
    options: dict[str, Any] = {} if transport is None else {"transport": transport}
    targets: list[Provider] = []
    for spec in specs:
        spec = spec.strip()
        if spec.startswith(EMULATOR_PREFIX):
            targets.append(_emulated(spec[len(EMULATOR_PREFIX):], emulator, timeout_s, options))
        elif spec.endswith((".yaml", ".yml")):
            from ..router.config import load_router_config  # what Router.from_config builds, with options

            if not Path(spec).is_file():
                raise ConfigError("routing config not found", file=spec, field="--targets")
            router = load_router_config(spec, provider_options=options)
            router.name = f"config:{Path(spec).stem}"
            targets.append(router)
        else:
            from ..providers import get_provider

            targets.append(get_provider(spec, timeout=timeout_s, **options))
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"target listed twice: {', '.join(duplicates)}", field="--targets")
    return targets


def _emulated(model: str, emulator: EmulatorEndpoints | None, timeout_s: float,
              options: dict[str, Any]) -> Provider:
    from ..providers import get_provider

    if emulator is None:
        raise ConfigError(f"{EMULATOR_PREFIX}{model} needs the embedded emulator", field="--targets")
    spec = emulator.fleet.get(model)
    if spec is None:
        known = ", ".join(emulator.fleet.names())
        raise ConfigError(f"the emulator fleet has no model {model!r}; it has {known}", field="--targets")
    wire = spec.wires[0]
    base_url = emulator.base_url_for(wire)
    return get_provider(f"{_WIRE_PROVIDER[wire]}:{model}", api_key="emulator-key", base_url=base_url,
                        prices=spec.price.as_prices(), context_window=spec.context_window, timeout=timeout_s,
                        **options)
