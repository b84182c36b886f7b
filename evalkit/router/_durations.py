"""Durations a user writes in a routing config: a monitor's ``window``, as seconds or ``"24h"``."""

from __future__ import annotations

__all__ = ["parse_window"]

_WINDOW_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_window(window: str | float) -> float:
    """Seconds in ``window``: a number of seconds or ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``, ``"2w"``."""
    if isinstance(window, (int, float)) and not isinstance(window, bool):
        seconds = float(window)
    elif isinstance(window, str):
        text = window.strip().lower()
        unit = _WINDOW_UNITS.get(text[-1:]) if text else None
        try:
            seconds = float(text[:-1]) * unit if unit is not None else float(text)
        except ValueError:
            raise ValueError(f"bad window {window!r}: use seconds or a number with s/m/h/d/w") from None
    else:
        raise TypeError(f"window must be seconds or a string like '24h', not {type(window).__name__}")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"window must be a positive, finite duration, not {window!r}")
    return seconds
