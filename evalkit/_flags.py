"""Argparse types shared by every ``evalkit`` subcommand: a bad value is one line, exit code 2.

``float("nan")`` passes every ``<`` check and ``inf`` overflows every sleep and
product, so a flag that reads a number goes through :func:`number`, which
refuses both along with anything out of the flag's range, before the command
does anything.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["blank_refused", "number"]


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
