"""Simulated prompt caching: a long prompt prefix seen before for a model is reported as cached.

Like the real services, only prefixes of at least 1024 tokens count, in steps
of 128 tokens. Memory is bounded: the oldest prefixes are forgotten first.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["PromptCache"]

MIN_PREFIX_TOKENS = 1024
BLOCK_TOKENS = 128


class PromptCache:
    """Which long prompt prefixes each model has seen."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def observe(self, model: str, tokens: Sequence[str]) -> tuple[int, int]:
        """Record the prompt ``tokens``; return ``(cached, written)`` token counts.

        ``cached`` is the longest block-aligned prefix seen before, ``written`` the
        tokens of new blocks stored by this call.
        """
        if len(tokens) < MIN_PREFIX_TOKENS:
            return 0, 0
        text = "".join(tokens)
        offsets = list(itertools.accumulate(len(t) for t in tokens))
        digest, done, cached, longest = hashlib.blake2b(digest_size=16), 0, 0, 0
        keys = []
        for boundary in range(MIN_PREFIX_TOKENS, len(tokens) + 1, BLOCK_TOKENS):
            end = offsets[boundary - 1]
            digest.update(text[done:end].encode("utf-8", "surrogatepass"))
            done = end
            keys.append(((model, digest.hexdigest()), boundary))
            longest = boundary
        with self._lock:
            for key, boundary in keys:
                if key in self._seen:
                    cached = boundary
                    self._seen.move_to_end(key)
                else:
                    self._seen[key] = None
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
        return cached, longest - cached

    def clear(self) -> None:
        """Forget every prefix."""
        with self._lock:
            self._seen.clear()
