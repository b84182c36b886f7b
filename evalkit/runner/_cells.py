"""Cells: one (item, target, repeat) each, in a stable order, optionally one shard of them.

A cell's *position* is its place in that order, ``(repeat * n_items + item) * n_targets + target``:
shards are taken by position, and a resumed run marks its finished cells by position
(:class:`~evalkit.runner._done.DoneCells`), so no cell is ever held in a list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Cell", "Plan", "Shard", "iter_cells", "parse_shard", "repeat_seed", "shard_size"]


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


def iter_cells(n_items: int, n_targets: int, repeats: int, shard: Shard = Shard(), *,
               target: int | None = None) -> Iterator[Cell]:
    """Every cell in a stable order, repeat by repeat and item by item, targets interleaved.

    Interleaving targets spreads load over providers from the first second; the
    order never depends on anything but the three counts, so shards are
    deterministic across machines. ``target`` (an index) yields only that
    target's cells, in the same order and of the same shard.
    """
    return _walk(n_items, n_targets, repeats, shard, range(n_targets) if target is None else (target,), ())


def _walk(n_items: int, n_targets: int, repeats: int, shard: Shard, targets: Sequence[int],
          done: Container[int]) -> Iterator[Cell]:
    """The cells of ``targets`` in the stable order, of ``shard``, whose position is not in ``done``."""
    for repeat in range(repeats):
        for item in range(n_items):
            base = (repeat * n_items + item) * n_targets
            for t in targets:
                position = base + t
                if position % shard.count == shard.index - 1 and position not in done:
                    yield Cell(item, t, repeat)


@dataclass(frozen=True, slots=True)
class Plan:
    """The cells a run has: its first ``n_items`` items × ``targets`` (their names) × ``repeats``, one shard.

    Nothing here is held per cell: the cells are walked (:meth:`pending`) and counted
    (:attr:`size`) from the four numbers.
    """

    n_items: int
    targets: tuple[str, ...]
    repeats: int
    shard: Shard = Shard()

    @property
    def size(self) -> int:
        """How many cells the plan has (its shard's), without walking them."""
        return shard_size(self.n_items, len(self.targets), self.repeats, self.shard)

    def pending(self, target: int, done: Container[int] = ()) -> Iterator[Cell]:
        """``target``'s cells (an index), lazily, in the stable order, skipping the positions in ``done``."""
        return _walk(self.n_items, len(self.targets), self.repeats, self.shard, (target,), done)


def shard_size(n_items: int, n_targets: int, repeats: int, shard: Shard = Shard()) -> int:
    """How many cells :func:`iter_cells` yields for these counts (without iterating them)."""
    return len(range(shard.index - 1, n_items * n_targets * repeats, shard.count))


def repeat_seed(run_seed: int, item_id: str, repeat: int) -> int:
    """The sampling seed sent for one repeat: distinct per repeat, stable across resumes."""
    digest = hashlib.blake2b(f"{run_seed}\x00{item_id}\x00{repeat}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF
