"""JSON on the hot paths: orjson when installed (several times faster), the standard library otherwise.

Request bodies are still encoded by the standard library everywhere, so the
bytes on the wire (and in cassettes) do not depend on which one is present.

:func:`loads_checked` reads JSON that comes from outside (dataset rows, request
bodies sent to the emulator) with limits: nesting deeper than
:data:`MAX_DEPTH` levels, integers longer than :data:`MAX_INT_DIGITS` digits
and ``NaN``/``Infinity`` are a :class:`JSONLimitError` (a ``ValueError``)
saying so, never a ``RecursionError`` or Python's integer-conversion error.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "JSONLimitError", "check_depth", "dumps_line", "loads",
           "loads_checked"]

MAX_DEPTH = 100
"""Nesting levels accepted from outside (orjson writes at most 255; real requests and rows use < 20)."""
MAX_INT_DIGITS = 1000
"""Digits an integer from outside may have (Python itself refuses to convert more than 4,300)."""

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; this keeps a bare install working
    orjson = None  # type: ignore[assignment]

loads: Callable[[str | bytes], Any] = orjson.loads if orjson is not None else json.loads
"""Parse JSON text or bytes; raises a ``ValueError`` subclass on bad input."""


def dumps_line(value: Any) -> bytes:
    """``value`` as one compact JSON line (newline included); unknown types become strings."""
    if orjson is not None:
        return orjson.dumps(value, default=str) + b"\n"
    return (json.dumps(value, separators=(",", ":"), default=str) + "\n").encode()


class JSONLimitError(ValueError):
    """JSON that is well-formed but past a limit (nesting, integer length) or holds NaN/Infinity."""


def loads_checked(text: str | bytes) -> Any:
    """Parse JSON from outside; bad input is a ``json.JSONDecodeError`` or a :class:`JSONLimitError`.

    Depth has two guards because they cover different ranges: the C parser
    itself only fails at Python's recursion limit (~1,000 levels, caught
    here), and :func:`check_depth` holds everything it did parse to
    :data:`MAX_DEPTH`, so later recursive walks of the value stay far from
    that limit. The walk is skipped when the text has too few ``[``/``{`` to
    nest that deep (almost every request body and dataset row).
    """
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant)
    except RecursionError:
        raise JSONLimitError(f"nested deeper than {MAX_DEPTH} levels") from None
    if isinstance(text, str):
        openers = text.count("[") + text.count("{")
    else:
        openers = text.count(b"[") + text.count(b"{")
    if openers > MAX_DEPTH:
        check_depth(value)
    return value


def _parse_int(digits: str) -> int:
    if len(digits) - digits.startswith("-") > MAX_INT_DIGITS:
        raise JSONLimitError(f"an integer of {len(digits)} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(digits)


def _parse_float(digits: str) -> float:
    number = float(digits)
    if not math.isfinite(number):
        raise JSONLimitError(f"{digits} is too large for a number")
    return number


def _no_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not valid JSON (numbers must be finite)")


def check_depth(value: Any) -> None:
    """:class:`JSONLimitError` if lists/dicts in ``value`` nest past :data:`MAX_DEPTH` (walked, not recursed)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise JSONLimitError(f"nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)
