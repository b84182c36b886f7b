"""JSON on the hot paths: orjson when installed (several times faster), the standard library otherwise.

Request bodies are still encoded by the standard library everywhere, so the
bytes on the wire (and in cassettes) do not depend on which one is present.
"""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["dumps_line", "loads"]

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
