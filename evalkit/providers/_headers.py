"""Rate-limit and retry headers, parsed once for every vendor.

Vendors say "wait" in several dialects:

* ``Retry-After``: delta-seconds (``"19"``) or an HTTP-date (RFC 9110);
* ``retry-after-ms``: milliseconds (OpenAI, Azure);
* ``x-ratelimit-reset-requests`` / ``-tokens``: Go-style durations (``"1s"``,
  ``"6m0s"``, ``"20ms"``, ``"8.64s"``) at OpenAI, plain seconds at Azure;
* ``anthropic-ratelimit-*-reset``: an RFC 3339 timestamp.

:func:`retry_after_seconds` takes the most specific one present.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping, NamedTuple

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_RATE_LIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")
_RAW_PREFIXES = tuple(p.encode() for p in _RATE_LIMIT_PREFIXES)


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration (``"6m0s"``, ``"20ms"``) or a plain number."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date."""
    value = value.strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)


def parse_rfc3339_reset(value: str, now: float | None = None) -> float | None:
    """Seconds until an RFC 3339 instant (``2024-06-11T08:54:41Z``)."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long the vendor asked us to wait, from whichever header it sent."""
    h = {k.lower(): v for k, v in headers.items()}
    if (ms := h.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    if (ra := h.get("retry-after")) is not None and (s := parse_retry_after(ra, now)) is not None:
        return s
    resets = [
        parse_duration(h[name])
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if name in h and _is_exhausted(h, name.replace("reset", "remaining"))
    ]
    resets += [
        parse_rfc3339_reset(h[name], now)
        for name in ("anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
                     "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset")
        if name in h and _is_exhausted(h, name.replace("reset", "remaining"))
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def _is_exhausted(headers: Mapping[str, str], remaining_name: str) -> bool:
    # A reset time only says "wait" for the budget that ran out; when the vendor
    # did not send the matching remaining count, trust the reset as it is.
    value = headers.get(remaining_name)
    if value is None:
        return True
    try:
        return float(value) <= 0
    except ValueError:
        return True


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The vendor's rate-limit headers, lower-cased, as received."""
    raw = getattr(headers, "raw", None)
    if raw is not None:  # httpx.Headers: scan the raw bytes instead of decoding every header
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw
                if k[:1] in b"xXaArR" and k.lower().startswith(_RAW_PREFIXES)}
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(_RATE_LIMIT_PREFIXES)}



# Each vendor's rate-limit budgets as (remaining, limit, reset) header names, lower-cased as
# ChatResponse.rate_limits holds them; the request budget first. OpenAI's reset is a duration,
# Anthropic's an instant.
_OPENAI_BUDGETS = tuple((f"x-ratelimit-remaining-{b}", f"x-ratelimit-limit-{b}", f"x-ratelimit-reset-{b}")
                        for b in ("requests", "tokens"))
_ANTHROPIC_BUDGETS = tuple((f"anthropic-ratelimit-{b}-remaining", f"anthropic-ratelimit-{b}-limit",
                            f"anthropic-ratelimit-{b}-reset")
                           for b in ("requests", "tokens", "input-tokens", "output-tokens"))
_NO_BUDGET = float("inf")


def remaining_fraction(headers: Mapping[str, str]) -> float | None:
    """The smallest ``remaining / limit`` over the vendor's rate-limit budgets; ``None`` when none is given.

    Reads OpenAI's ``x-ratelimit-remaining-*`` / ``x-ratelimit-limit-*`` (also
    sent by OpenAI-compatible vendors) or Anthropic's
    ``anthropic-ratelimit-*-remaining`` / ``-limit``. A budget whose values do
    not parse, or whose limit is not positive, is left out.
    """
    # One membership test picks the vendor's budgets: this runs after every successful call.
    budgets = _OPENAI_BUDGETS if "x-ratelimit-remaining-requests" in headers or \
        "x-ratelimit-remaining-tokens" in headers else _ANTHROPIC_BUDGETS
    lowest = _NO_BUDGET
    for remaining_name, limit_name, _ in budgets:
        remaining = headers.get(remaining_name)
        if remaining is None:
            continue
        limit = headers.get(limit_name)
        if limit is None:
            continue
        try:
            whole = float(limit)
            left = float(remaining)
        except ValueError:
            continue
        if whole > 0.0:
            fraction = left / whole
            if fraction < lowest:  # False for NaN: a value that says nothing changes nothing
                lowest = fraction
    return None if lowest == _NO_BUDGET else lowest


class RequestBudget(NamedTuple):
    """What a vendor's headers say of its request budget: requests left, and seconds per request refilled."""

    remaining: float
    refill_interval_s: float


def request_budget(headers: Mapping[str, str], now: float | None = None) -> RequestBudget | None:
    """The request budget in a response's rate-limit headers; ``None`` when they don't say.

    From the remaining count, the limit and the time until the budget is full
    again: OpenAI's ``x-ratelimit-reset-requests`` (a duration) or Anthropic's
    ``anthropic-ratelimit-requests-reset`` (an instant). ``limit - remaining``
    requests come back in that time, so one comes back every
    ``reset / (limit - remaining)`` seconds.
    """
    for (remaining_name, limit_name, reset_name), instant in ((_OPENAI_BUDGETS[0], False),
                                                              (_ANTHROPIC_BUDGETS[0], True)):
        reset_text = headers.get(reset_name)
        if reset_text is None:
            continue
        try:
            remaining = float(headers[remaining_name])
            used = float(headers[limit_name]) - remaining
        except (KeyError, ValueError):
            return None
        reset = parse_rfc3339_reset(reset_text, now) if instant else parse_duration(reset_text)
        if reset is None or reset <= 0 or not used >= 1:
            return None
        return RequestBudget(remaining, reset / used)
    return None
