"""Argparse types for every ``evalkit`` subcommand: a bad value is one line, exit code 2.

argparse reports a type's ``ArgumentTypeError`` as ``argument --flag: message``
and exits 2 before the command does anything. ``float("nan")`` passes every
``<`` check and ``inf`` overflows every sleep and product, so every type here
refuses both, along with anything out of the flag's range.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

__all__ = ["blank_refused", "latency_ms", "number", "success_rate", "usd"]


def number(low: float = -math.inf, high: float = math.inf, *, whole: bool = False,
           low_exclusive: bool = False) -> Callable[[str], int | float]:
    """An argparse type: a finite number in ``[low, high]`` (``(low, high]`` with ``low_exclusive``)."""
    kind = "whole number" if whole else "finite number"
    if high == math.inf:
        bounds = f"{'>' if low_exclusive else '>='} {low:g}"
    else:
        bounds = f"from {low:g} to {high:g}" + (f" (not {low:g})" if low_exclusive else "")

    def parse(text: str) -> int | float:
        try:
            value: int | float = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.removeprefix('finite ')}, got {text!r}") from None
        inside = low < value if low_exclusive else low <= value
        if not (math.isfinite(value) and inside and value <= high):
            raise argparse.ArgumentTypeError(f"must be a {kind} {bounds}, got {text!r}")
        return value

    return parse


def blank_refused(text: str) -> str:
    """An argparse type: a value that is not blank (``--targets ""`` would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a value, got {text!r}")
    return text


def success_rate(text: str) -> float:
    """A fraction in [0, 1], or a percentage written with ``%`` (``95%`` is 0.95)."""
    stripped = text.strip()
    if stripped.endswith("%"):
        value = _finite(stripped[:-1])
        if not 0.0 <= value <= 100.0:
            raise argparse.ArgumentTypeError(f"a percentage must be in [0%, 100%], got {text}")
        return value / 100.0
    value = _finite(stripped)
    if not 0.0 <= value <= 1.0:
        hint = f"; for a percentage write {stripped}%" if 1.0 < value <= 100.0 else ""
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1]{hint}, got {text}")
    return value


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|m|min)", re.IGNORECASE)
_MS_PER_UNIT = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "m": 60_000.0, "min": 60_000.0}


def latency_ms(text: str) -> float:
    """Milliseconds from a duration with its unit: ``800ms``, ``5s``, ``2min`` (a bare number is refused)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration with its unit, e.g. 800ms, 5s or 2min; got {text!r}")
    value = float(match.group(1)) * _MS_PER_UNIT[match.group(2).lower()]
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive, finite duration, got {text!r}")
    return value


def usd(text: str) -> Decimal:
    """A finite amount of USD >= 0, exact (a Decimal)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected an amount of USD, got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite amount >= 0, got {text!r}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value
