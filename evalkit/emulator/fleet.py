"""The fleet: the simulated models the emulator serves, and their prices.

A fleet comes from a YAML or TOML file (see ``FLEET.md`` beside this module for
the format and where the default numbers come from) or from the built-in
``default_fleet.yaml``. The rest of evalkit reads prices from here to price
simulated models::

    from evalkit.emulator.fleet import default_fleet
    price = default_fleet().model("sim-large").price   # Decimal USD per 1M tokens
    price.input, price.cached_input, price.output
    price.as_prices()                                   # an evalkit.pricing.Prices

Importing this module does not import the HTTP server.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .._yaml import read_bounded
from ._fleet_parse import parse_fleet_text
from ._specs import TASK_TYPES, WIRES, FaultPlan, Fleet, Latency, ModelSpec, Price, RateLimits, Spread

__all__ = [
    "TASK_TYPES",
    "WIRES",
    "FaultPlan",
    "Fleet",
    "Latency",
    "ModelSpec",
    "Price",
    "RateLimits",
    "Spread",
    "default_fleet",
    "load_fleet",
    "parse_fleet_text",
]

_DEFAULT_FILE = "default_fleet.yaml"
_default_cache: list[Fleet] = []


def load_fleet(path: str | Path | None = None) -> Fleet:
    """The fleet in ``path`` (``.yaml``/``.yml``/``.toml``), or the built-in one for None.

    Raises :class:`~evalkit.errors.ConfigError` naming the file, line and field
    of the first problem.
    """
    if path is None:
        return default_fleet()
    path = Path(path)
    data = read_bounded(path, what="fleet file")
    return parse_fleet_text(data, source=str(path), toml=path.suffix.lower() == ".toml")


def default_fleet() -> Fleet:
    """The built-in fleet (``default_fleet.yaml``), parsed once per process."""
    if not _default_cache:
        text = resources.files(__package__).joinpath(_DEFAULT_FILE).read_text(encoding="utf-8")
        _default_cache.append(parse_fleet_text(text, source=None))
    return _default_cache[0]
