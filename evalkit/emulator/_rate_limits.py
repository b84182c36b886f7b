"""Per-model rate limits: continuous-refill token buckets on the emulator's clock.

Each model has two buckets, requests and tokens, each holding at most its
per-minute limit and refilling continuously at that limit per emulator minute
(OpenAI: "your rate limit is replenished continuously"; Anthropic: "the token
bucket algorithm ... capacity is continuously replenished up to your maximum
limit"). A full bucket therefore allows a burst of a whole minute's budget, then
the limit's steady rate.

An emulator minute lasts ``60 * time_scale`` real seconds, like every other
simulated duration, so a 600-RPM limit at ``time_scale=0.02`` refills 600
requests every 1.2 s. At ``time_scale=0`` (no simulated delays) a minute lasts
60 real seconds: a limit that vanished there would be a setting that silently
does nothing.

A call is metered before it runs, as OpenAI meters it: one request, and its
prompt tokens plus its output cap (``max_tokens``, else the model's
``max_output_tokens``) from the tokens bucket; nothing is refunded when the
answer is shorter. With ``enforce``, a call the buckets have no room for is
refused and charged nothing, and its Retry-After is the time until both have
room for it: a client that waits that long, alone, gets in. A call larger than
the whole tokens budget can never fit (OpenAI's "Request too large"): it is
refused with no Retry-After. Without ``enforce`` the buckets only feed the
headers and stop at empty.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._simulate import ChatCall
from ._specs import ModelSpec
from ._wire_common import RateSnapshot

__all__ = ["Admission", "RateBuckets", "metered_tokens", "minute_seconds"]

_MINUTE_S = 60.0
_EPSILON = 1e-9  # float refill arithmetic must not refuse a client that waited exactly its Retry-After


def minute_seconds(time_scale: float) -> float:
    """Real seconds in one emulator minute: ``60 * time_scale``, or 60 at time scale 0."""
    return _MINUTE_S * time_scale if time_scale > 0 else _MINUTE_S


def metered_tokens(prompt_tokens: int, call: ChatCall, spec: ModelSpec) -> int:
    """What a call takes from the tokens budget: its prompt and the most it may generate."""
    cap = call.max_tokens if call.max_tokens is not None else spec.max_output_tokens
    return prompt_tokens + cap


@dataclass(frozen=True, slots=True)
class Admission:
    """The buckets' answer to one call.

    ``refused`` is None for an admitted call, else the budget that had no room:
    ``requests``, ``tokens``, or ``too_large`` (more tokens than the whole
    budget). ``retry_after_s`` is the real time until there is room (None when
    there never will be). ``snapshot`` is the budget left after the call.
    """

    snapshot: RateSnapshot
    tokens: int
    refused: str | None = None
    retry_after_s: float | None = None


class _Levels:
    """One model's two bucket levels at ``at`` (monotonic seconds)."""

    __slots__ = ("at", "requests", "tokens")

    def __init__(self, requests: float, tokens: float, at: float) -> None:
        self.requests, self.tokens, self.at = requests, tokens, at


class RateBuckets:
    """The token buckets of every model of one emulator; thread-safe.

    ``clock`` returns monotonic seconds (tests pass a fake one).
    """

    def __init__(self, time_scale: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.minute_s = minute_seconds(time_scale)
        self._clock = clock
        self._lock = threading.Lock()
        self._levels: dict[str, _Levels] = {}

    def take(self, spec: ModelSpec, tokens: int) -> Admission:
        """Meter one call of ``tokens`` to ``spec``: admitted (and charged) or refused (charged nothing)."""
        limits = spec.rate_limits
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        now = self._clock()
        with self._lock:
            levels = self._refilled(spec.name, rpm, tpm, now)
            refused, wait = None, None
            if limits.enforce:
                refused, wait = self._shortfall(levels, rpm, tpm, tokens)
            if refused is None:
                levels.requests = max(levels.requests - 1, 0.0)
                levels.tokens = max(levels.tokens - tokens, 0.0)
            requests_left, tokens_left = levels.requests, levels.tokens
        snapshot = RateSnapshot(
            limit_requests=rpm,
            limit_tokens=tpm,
            remaining_requests=math.floor(requests_left + _EPSILON),
            remaining_tokens=math.floor(tokens_left + _EPSILON),
            # OpenAI's and Anthropic's reset: when the budget is fully replenished.
            reset_requests_s=(rpm - requests_left) * self.minute_s / rpm,
            reset_tokens_s=(tpm - tokens_left) * self.minute_s / tpm,
        )
        return Admission(snapshot, tokens, refused, wait)

    def _refilled(self, model: str, rpm: int, tpm: int, now: float) -> _Levels:
        levels = self._levels.get(model)
        if levels is None:
            levels = self._levels[model] = _Levels(float(rpm), float(tpm), now)
            return levels
        elapsed = max(now - levels.at, 0.0)
        levels.at = now
        levels.requests = min(float(rpm), levels.requests + elapsed * rpm / self.minute_s)
        levels.tokens = min(float(tpm), levels.tokens + elapsed * tpm / self.minute_s)
        return levels

    def _shortfall(self, levels: _Levels, rpm: int, tpm: int, tokens: int) -> tuple[str | None, float | None]:
        """The budget short of room for the call and the seconds until both have room, or (None, None)."""
        if tokens > tpm:
            return "too_large", None
        wait_requests = max(1.0 - levels.requests - _EPSILON, 0.0) * self.minute_s / rpm
        wait_tokens = max(tokens - levels.tokens - _EPSILON, 0.0) * self.minute_s / tpm
        if wait_requests <= 0 and wait_tokens <= 0:
            return None, None
        budget = "requests" if wait_requests >= wait_tokens else "tokens"
        return budget, max(wait_requests, wait_tokens)

    def reset(self) -> None:
        """Every bucket full again."""
        with self._lock:
            self._levels.clear()
