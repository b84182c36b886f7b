"""Deterministic randomness: every draw is a pure function of the seed and named parts.

The emulator never uses a shared, advancing RNG for anything a test may check,
because concurrent requests would then see draws in arrival order. Instead each
decision (is this answer right? how long is the TTFT? does this attempt fail?)
gets its own generator keyed by what the decision is about.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["rng_for", "stable_digest", "unit_draw"]


def stable_digest(*parts: object, size: int = 16) -> str:
    """A hex digest of ``parts`` that is the same in every process and Python version."""
    h = hashlib.blake2b(digest_size=size)
    for part in parts:
        h.update(str(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")  # separator, so ("ab", "c") and ("a", "bc") differ
    return h.hexdigest()


def rng_for(seed: int, *parts: object) -> random.Random:
    """A generator seeded by ``seed`` and ``parts`` alone."""
    return random.Random(int(stable_digest(seed, *parts, size=8), 16))


def unit_draw(seed: int, *parts: object) -> float:
    """One uniform draw in [0, 1) keyed by ``seed`` and ``parts`` (cheaper than :func:`rng_for`)."""
    return int(stable_digest(seed, *parts, size=7), 16) / float(1 << 56)
