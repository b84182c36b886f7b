"""Located checks of raw YAML values: the primitives the routing-config parser is written in.

:class:`ConfigFields` reads one value at a YAML path (``router.routes.code.targets[1]``)
and returns it typed, or raises a :class:`~evalkit.ConfigError` naming the
file, the line and that path. Numbers are finite numbers in their field's
range, never strings, booleans, NaN or infinity; money is a Decimal from a
number or a numeric string; mappings refuse unknown keys, so a typo never
falls back to a default.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Sequence, TypeVar

from .._yaml import YamlDocument
from ..errors import ConfigError

__all__ = ["ConfigFields"]

_Choice = TypeVar("_Choice", bound=str)


class ConfigFields:
    """Typed reads of one document's raw values; each failure is a ConfigError at the value's path."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc

    def fail(self, path: str, message: str) -> ConfigError:
        """The error to raise about the value at ``path``."""
        return self.doc.error(path, message)

    def mapping(self, value: Any, path: str, keys: set[str] | None, required: tuple[str, ...] | set[str] = ()
                ) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path or "config", f"expected a mapping, got {_shown_type(value)}")
        if keys is not None:
            unknown = sorted((str(k) for k in value if k not in keys))
            if unknown:
                expected = ", ".join(sorted(keys))
                raise self.fail(_join(path, unknown[0]), f"unknown field; expected one of {expected}")
        for key in sorted(required):
            if key not in value:
                what = "the routing tree" if key == "router" else "required"
                raise self.fail(_join(path, key), f"missing: {what}")
        return value

    def number(self, value: Any, path: str, *, positive: bool = False,
               high: float | None = None) -> float | int:
        """A finite number >= 0 (> 0 if ``positive``, <= ``high``); never a string, bool, NaN or infinity."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected a number, got {_shown(value)}")
        try:
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            raise self.fail(path, f"must be a finite number, got {value!r}")
        if value < 0 or (positive and value == 0) or (high is not None and value > high):
            bound = f"between 0 and {high:g}" if high is not None else ("> 0" if positive else ">= 0")
            raise self.fail(path, f"must be {bound}, got {value!r}")
        return value

    def integer(self, value: Any, path: str, *, low: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected a whole number, got {_shown(value)}")
        if value < low:
            raise self.fail(path, f"must be >= {low}, got {value}")
        if value > 10**15:
            raise self.fail(path, f"is too large: {value}")
        return value

    def money(self, value: Any, path: str, unit: str) -> Decimal:
        """A finite Decimal >= 0 from a number or a numeric string (``"0.10"`` keeps its cents exactly)."""
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise self.fail(path, f"expected a number ({unit}), got {_shown(value)}")
        try:
            amount = Decimal(value.strip() if isinstance(value, str) else str(value))
        except (InvalidOperation, ValueError):
            raise self.fail(path, f"expected a number ({unit}), got {value!r}") from None
        if not amount.is_finite() or amount < 0 or amount.adjusted() > 15:
            raise self.fail(path, f"must be a finite number >= 0 ({unit}), got {value!r}")
        return amount

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {_shown(value)}")
        return value

    def key(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"names must be non-empty strings, got {_shown(value)}")
        return value

    def flag(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_shown(value)}")
        return value

    def choice(self, value: Any, path: str, options: Sequence[_Choice], what: str = "value") -> _Choice:
        """The option ``value`` is (typed as the options are: a tuple of Literals gives that Literal)."""
        for option in options:
            if isinstance(value, str) and value == option:
                return option
        raise self.fail(path, f"unknown {what} {value!r}; expected one of {', '.join(options)}")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _shown(value: Any) -> str:
    return f"{_shown_type(value)} {value!r}" if not isinstance(value, (dict, list)) else _shown_type(value)


def _shown_type(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing",
             int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)
