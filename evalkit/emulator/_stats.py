"""What the emulator served: counters per model and a summary of the last requests.

Credentials never reach the summary: auth headers and ``?key=`` values are
replaced by ``[redacted]`` before anything is stored.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._json import loads_checked

__all__ = ["RequestRecord", "Stats", "redact_headers", "redact_query", "summarise_body"]

_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "x-goog-api-key",
        "api-key",
        "cookie",
    }
)
_SECRET_PARAMS = frozenset({"key", "api_key", "api-key"})
_REDACTED = "[redacted]"
_MAX_STRING = 200
_MAX_ITEMS = 50


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers, lower-cased, with credential values replaced."""
    return {k.lower(): (_REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


def redact_query(params: Mapping[str, str]) -> dict[str, str]:
    """Query parameters with credential values replaced."""
    return {k: (_REDACTED if k.lower() in _SECRET_PARAMS else v) for k, v in params.items()}


def summarise_body(raw: bytes, decoded: Any = None) -> Any:
    """The JSON body (``decoded``, if the caller parsed it already) with long strings and lists
    shortened, or a prefix of a body that is not JSON."""
    if decoded is None:
        try:
            decoded = loads_checked(raw)
        except ValueError:  # not JSON, or past the limits (JSONLimitError)
            return {"raw": raw[:_MAX_STRING].decode("utf-8", "replace"), "bytes": len(raw)}
    return _shorten(decoded)


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_STRING:
        return value[:_MAX_STRING] + f"...[+{len(value) - _MAX_STRING} chars]"
    if isinstance(value, list):
        items = [_shorten(v) for v in value[:_MAX_ITEMS]]
        return items + ([f"...[+{len(value) - _MAX_ITEMS} items]"] if len(value) > _MAX_ITEMS else [])
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    return value


@dataclass(slots=True)
class RequestRecord:
    """One request as the stats see it; filled in as the request is handled."""

    wire: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    model: str = ""
    stream: bool = False
    status: str = ""
    fault: str | None = None
    rate_limited: str | None = None
    """The enforced budget that refused the call (``requests``, ``tokens``, ``too_large``), else None."""
    answer: str | None = None
    item_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    prefill_chars: int | None = None
    """Characters of the request's trailing assistant turn (a prefill); None when it has none."""
    scheduled: dict[str, float] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def as_dict(self, seq: int) -> dict[str, Any]:
        """The record as stored in ``recent``, numbered ``seq``."""
        return {"seq": seq, **{name: getattr(self, name) for name in self.__slots__}}  # type: ignore[attr-defined]


class Stats:
    """Thread-safe counters; the server records, tests read snapshots."""

    def __init__(self, recent: int = 100) -> None:
        self._lock = threading.Lock()
        self._recent_size = recent
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        with self._lock:
            self._models: dict[str, dict[str, Any]] = {}
            self._recent: deque[dict[str, Any]] = deque(maxlen=self._recent_size)
            self._seq = 0

    def record(self, rec: RequestRecord) -> None:
        """Count one finished request decision."""
        with self._lock:
            self._seq += 1
            m = self._models.setdefault(
                rec.model or "(none)",
                {
                    "requests": 0,
                    "by_status": {},
                    "by_wire": {},
                    "faults": {},
                    "rate_limited": {},
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cached_tokens": 0,
                    "streamed": 0,
                    "answers": {},
                },
            )
            m["requests"] += 1
            _bump(m["by_status"], rec.status)
            _bump(m["by_wire"], rec.wire)
            if rec.fault:
                _bump(m["faults"], rec.fault)
            if rec.rate_limited:
                _bump(m["rate_limited"], rec.rate_limited)
            if rec.answer:
                _bump(m["answers"], rec.answer)
            m["prompt_tokens"] += rec.prompt_tokens
            m["completion_tokens"] += rec.completion_tokens
            m["cached_tokens"] += rec.cached_tokens
            m["streamed"] += int(rec.stream)
            self._recent.append(rec.as_dict(self._seq))

    def snapshot(self) -> dict[str, Any]:
        """A deep copy: ``{"total_requests", "models": {...}, "recent": [oldest..newest]}``."""
        with self._lock:
            return json.loads(
                json.dumps(
                    {
                        "total_requests": self._seq,
                        "models": self._models,
                        "recent": list(self._recent),
                    }
                )
            )


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1
