"""Which cells of a run's plan are already written: what a resume skips.

A resumed run must know every finished cell before it asks the first one (a cell
may be finished in any part). Holding their keys as Python tuples cost about 240
bytes a cell (240 MB for a million). Here the store's keys are read one part at a
time (at most 20,000 rows, :mod:`.store`), turned into positions of the stable
order by polars (:class:`~evalkit.runner._cells.Plan`) and marked in a byte array
with one byte per cell of the plan (of its shard): 1 MB per million cells, allocated
only when the run has finished cells. Keys outside the plan (other targets, items past
``--limit``, other shards) are not kept at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ._cells import Plan

if TYPE_CHECKING:
    import polars as pl

    from ..datasets import Item
    from .store import Key, RunStore

__all__ = ["DoneCells"]


class DoneCells:
    """The finished cells of ``plan``, by position: ``position in done``; ``len(done)`` counts them."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        # One byte per cell of the plan, allocated when the first is marked. The shard's cells are
        # every ``count``-th position from ``index - 1``: cell ``position // count`` of the shard.
        self._marks = bytearray()
        self._step = plan.shard.count
        self._count = 0

    @classmethod
    def of(cls, store: RunStore, plan: Plan, items: Sequence[Item], again: Iterable[Key] = ()) -> DoneCells:
        """The cells of ``plan`` that ``store`` holds a row for, except those of ``again`` (to ask again)."""
        done = cls(plan)
        frames = store.key_frames()
        first = next(frames, None)
        if first is None:  # a new run: nothing to read, polars not even imported
            return done
        positions = _Positions(plan, items)
        for keys in itertools.chain((first,), frames):
            done._mark(positions.of(keys))
        for position in positions.of(_key_frame(list(again))):
            done._unmark(position)
        return done

    def __contains__(self, position: object) -> bool:
        """Whether the cell at ``position`` (one of the plan's shard) is finished."""
        marks = self._marks
        return bool(marks) and isinstance(position, int) and bool(marks[position // self._step])

    def __len__(self) -> int:
        return self._count

    def _mark(self, positions: Sequence[int]) -> None:
        if not positions:
            return
        if not self._marks:
            self._marks = bytearray(self.plan.size)
        marks, step = self._marks, self._step
        for position in positions:
            if not marks[position // step]:
                marks[position // step] = 1
                self._count += 1

    def _unmark(self, position: int) -> None:
        if self._marks and self._marks[position // self._step]:
            self._marks[position // self._step] = 0
            self._count -= 1


class _Positions:
    """Keys (item id, target name, repeat) to positions of a plan's cells; other keys are dropped."""

    def __init__(self, plan: Plan, items: Sequence[Item]) -> None:
        import polars as pl

        self.plan = plan
        # The item ids as one polars column (a few bytes each), not a Python dict of the dataset.
        self._items = pl.DataFrame({"item_id": pl.Series([items[i].id for i in range(plan.n_items)],
                                                         dtype=pl.String),
                                    "_item": pl.int_range(plan.n_items, eager=True, dtype=pl.Int64)})
        self._targets = pl.DataFrame({"target": pl.Series(plan.targets, dtype=pl.String),
                                      "_target": pl.int_range(len(plan.targets), eager=True, dtype=pl.Int64)})

    def of(self, keys: pl.DataFrame) -> list[int]:
        """The positions of the plan's cells (its shard's) among ``keys`` (columns item_id, target, repeat)."""
        import polars as pl

        plan = self.plan
        position = ((pl.col("repeat") * plan.n_items + pl.col("_item")) * len(plan.targets)
                    + pl.col("_target")).alias("position")
        found = (keys.lazy().filter(pl.col("repeat") < plan.repeats)
                 .join(self._items.lazy(), on="item_id").join(self._targets.lazy(), on="target")
                 .select(position).filter(pl.col("position") % plan.shard.count == plan.shard.index - 1)
                 .collect())
        return list(found["position"])


def _key_frame(keys: Sequence[Key]) -> pl.DataFrame:
    """``keys`` as the frame :meth:`_Positions.of` reads (the cells asked again: a few, held anyway)."""
    import polars as pl

    return pl.DataFrame(keys, schema={"item_id": pl.String, "target": pl.String, "repeat": pl.Int64},
                        orient="row")

