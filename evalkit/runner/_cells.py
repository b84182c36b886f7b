"""Cells: one (item, target, repeat) each, in a stable order, optionally one shard of them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

from ..errors import ConfigError

__all__ = ["Cell", "Shard", "iter_cells", "parse_shard", "repeat_seed"]


@dataclass(frozen=True, slots=True)
class Cell:
    """One unit of work: ask ``target`` about ``item`` for the ``repeat``-th time."""

    item: int
    target: int
    repeat: int


@dataclass(frozen=True, slots=True)
class Shard:
    """Slice ``index`` (1-based) of ``count``: every ``count``-th cell of the stable order."""

    index: int = 1
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"k/N"`` → :class:`Shard`; anything else is a :class:`~evalkit.ConfigError` on ``--shard``."""
    k, sep, n = text.partition("/")
    try:
        shard = Shard(int(k), int(n)) if sep else None
    except ValueError:
        shard = None
    if shard is None or not 1 <= shard.index <= shard.count:
        raise ConfigError(f"expected k/N with 1 <= k <= N, got {text!r}", field="--shard")
    return shard


def iter_cells(n_items: int, n_targets: int, repeats: int, shard: Shard = Shard()) -> Iterator[Cell]:
    """Every cell in a stable order, repeat by repeat and item by item, targets interleaved.

    Interleaving targets spreads load over providers from the first second; the
    order never depends on anything but the three counts, so shards are
    deterministic across machines.
    """
    position = 0
    for repeat in range(repeats):
        for item in range(n_items):
            for target in range(n_targets):
                if position % shard.count == shard.index - 1:
                    yield Cell(item, target, repeat)
                position += 1


def repeat_seed(run_seed: int, item_id: str, repeat: int) -> int:
    """The sampling seed sent for one repeat: distinct per repeat, stable across resumes."""
    digest = hashlib.blake2b(f"{run_seed}\x00{item_id}\x00{repeat}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF
