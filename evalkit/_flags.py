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

__all__ = ["blank_refused", "fraction", "latency_ms", "number", "success_rate", "usd"]


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


def fraction(text: str) -> float:
    """A fraction in [0, 1], or a percentage written with ``%`` (``95%`` is 0.95).

    A number above 1 is refused with the two ways to write what was probably
    meant: ``--min-success 95`` read as a fraction would be 9500 %.
    """
    stripped = text.strip()
    if stripped.endswith("%"):
        value = _finite(stripped[:-1], text)
        if not 0.0 <= value <= 100.0:
            raise argparse.ArgumentTypeError(f"a percentage must be in [0%, 100%], got {text!r}")
        return value / 100.0
    value = _finite(stripped, text)
    if not 0.0 <= value <= 1.0:
        hint = f"; for {value:g} % write {value / 100:g} or {value:g}%" if 1.0 < value <= 100.0 else ""
        raise argparse.ArgumentTypeError(
            f"must be a fraction in [0, 1] or a percentage like 95%{hint}, got {text!r}")
    return value


success_rate = fraction  # the name recommend's --min-success has always used

_DURATION = re.compile(r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?|[+-]?(?:infinity|inf|nan))"
                       r"\s*(?P<unit>[^\d\s.+-]\S*)?", re.IGNORECASE)
_MS_PER_UNIT = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "m": 60_000.0, "min": 60_000.0}


def latency_ms(text: str) -> float:
    """Milliseconds from a duration with its unit: ``800ms``, ``5s``, ``2min``.

    A bare number is refused: ``5`` could be 5 ms or 5 s, and guessing either
    silently changes what the flag selects.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration with its unit, e.g. 800ms, 5s or 2min; got {text!r}")
    number_text, unit = match.group("number"), match.group("unit")
    if not 0 < float(number_text) < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive, finite duration, got {text!r}")
    if unit is None:
        raise argparse.ArgumentTypeError(
            f"a bare number has no unit: write {number_text}ms, {number_text}s or {number_text}min; got {text!r}")
    if unit.lower() not in _MS_PER_UNIT:
        raise argparse.ArgumentTypeError(
            f"unknown unit {unit!r}: use ms, s or min (e.g. 800ms, 5s, 2min); got {text!r}")
    value = float(number_text) * _MS_PER_UNIT[unit.lower()]
    if value == math.inf:  # 1e307min
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


def _finite(text: str, given: str) -> float:
    """``text`` as a finite float; errors quote ``given``, what the user wrote."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {given!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {given!r}")
    return value
