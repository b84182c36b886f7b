"""A run holds no list of its cells: they are read as they are asked, and a resume does not hold the keys of
every finished cell (issue 17: the docstring promised flat memory; a resume of a million cells took 600 MB)."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, SupportsIndex, overload

import polars as pl

from evalkit.datasets import Dataset, Item
from evalkit.runner import RunOptions, RunStore, Shard, results_df, run_cells
from evalkit.runner.schema import result_schema
from evalkit.runner.store import write_parquet
from evalkit.types import ChatRequest, ChatResponse, FinishReason, Message, Usage


class Answering:
    """A custom target (the Provider protocol) answering every item right at once; calls ``on_call`` first."""

    def __init__(self, name: str, on_call: Callable[[], None] = lambda: None) -> None:
        self.name, self.on_call = name, on_call

    async def complete(self, request: ChatRequest, on_delta: Callable[[str], None] | None = None) -> ChatResponse:
        self.on_call()
        return ChatResponse(text="Answer: 4", finish_reason=FinishReason.STOP, model=self.name,
                            usage=Usage(input_tokens=5, output_tokens=2), provider=self.name)

    def stream(self, request: ChatRequest) -> Any:
        raise NotImplementedError


class ReadItems(tuple[Item, ...]):
    """A dataset's items that remember the furthest one read (by index, slice or iteration)."""

    furthest = -1

    @overload
    def __getitem__(self, index: SupportsIndex) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Item, ...]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Item | tuple[Item, ...]:
        last = len(range(len(self))[index]) - 1 if isinstance(index, slice) else int(index)
        type(self).furthest = max(type(self).furthest, last)
        return tuple.__getitem__(self, index)

    def __iter__(self) -> Iterator[Item]:
        for i in range(len(self)):
            yield self[i]


def dataset(n: int, items: type[tuple[Item, ...]] = tuple) -> Dataset:
    made = (Item(id=f"q{i}", task_type="math", messages=(Message("user", f"What is 2 + 2? ({i})"),), reference=4,
                 grader={"type": "numeric"}) for i in range(n))
    return Dataset("generated", Path("generated.jsonl"), items(made), "0" * 64)


def test_a_run_reads_its_cells_as_it_asks_them(tmp_path: Path) -> None:
    ReadItems.furthest = -1
    read_at_first_call: list[int] = []

    def first_call() -> None:
        if not read_at_first_call:
            read_at_first_call.append(ReadItems.furthest)

    data = dataset(5_000, ReadItems)
    options = RunOptions(concurrency=4, limit=4_000, max_tokens=8)
    totals = asyncio.run(run_cells(data, [Answering("custom:a", first_call), Answering("custom:b", first_call)],
                                   RunStore(tmp_path / "run"), options, run_id="run"))
    assert totals.done == totals.total == 8_000
    assert read_at_first_call[0] < options.concurrency, \
        f"item {read_at_first_call[0]} was read before the first cell was asked: the cells are not lazy"
    assert ReadItems.furthest == 3_999, "--limit: the 4,000 first items are asked, none after"
    RunStore(tmp_path / "run").compact()
    rows = results_df(tmp_path / "run")
    assert rows.height == 8_000 and rows["passed"].all()


def finished_run(path: Path, n_items: int, targets: list[str], repeats: int, missing: int) -> None:
    """A run of ``n_items × targets × repeats`` cells, all written but the last ``missing`` of the stable order.

    Written as the store writes them (Parquet parts of 20,000 rows of the stored schema), in the order asked.
    """
    schema = result_schema()
    written = n_items * len(targets) * repeats - missing
    for part, start in enumerate(range(0, written, 20_000)):
        position = pl.int_range(start, min(written, start + 20_000), eager=True)
        keys = pl.DataFrame({"item_id": "q" + (position // len(targets) % n_items).cast(pl.String),
                             "target": pl.Series(targets).gather(position % len(targets)),
                             "repeat": position // len(targets) // n_items})
        frame = keys.with_columns(run_id=pl.lit("run"), task_type=pl.lit("math"), status=pl.lit("ok"),
                                  passed=pl.lit(True), n_attempts=pl.lit(1))
        write_parquet(frame.with_columns(pl.lit(None).alias(k) for k in schema if k not in frame.columns)
                      .select(list(schema)).cast(schema), path / "results" / f"part-{part:04d}.parquet")


def resume_peak(tmp_path: Path, repeats: int, shard: Shard | None = None) -> tuple[int, Any]:
    """Peak traced memory of resuming a run of 100 items × 2 targets × ``repeats`` with its last 10 cells missing."""
    targets = ["custom:a", "custom:b"]
    path = tmp_path / f"run-{repeats}"
    finished_run(path, 100, targets, repeats, missing=10)
    data = dataset(100)
    tracemalloc.start()
    try:
        totals = asyncio.run(run_cells(data, [Answering(t) for t in targets], RunStore(path),
                                       RunOptions(repeats=repeats, concurrency=4, max_tokens=8,
                                                  shard=shard or Shard()),
                                       run_id="run"))
        return tracemalloc.get_traced_memory()[1], totals
    finally:
        tracemalloc.stop()


def test_resuming_does_not_hold_the_keys_of_every_finished_cell(tmp_path: Path) -> None:
    small_peak, small = resume_peak(tmp_path, repeats=100)     # 20,000 cells
    large_peak, large = resume_peak(tmp_path, repeats=1_000)   # 200,000 cells
    assert (small.skipped, small.done, small.total) == (19_990, 10, 10)
    assert (large.skipped, large.done, large.total) == (199_990, 10, 10)
    # At 240 bytes a finished cell, 180,000 more of them held 43 MB more; a byte a cell is 0.2 MB.
    assert large_peak - small_peak < 2_000_000, \
        f"resume peak grew by {(large_peak - small_peak) / 1e6:.1f} MB for 180,000 more finished cells"
    rows = results_df(tmp_path / "run-1000")
    asked = rows.filter(pl.col("output").is_not_null())
    assert asked.select("item_id", "target", "repeat").sort("repeat", "item_id", "target").rows() == [
        (f"q{i}", t, 999) for i in range(95, 100) for t in ("custom:a", "custom:b")], "exactly the missing cells"


def test_a_resumed_shard_asks_only_its_missing_cells(tmp_path: Path) -> None:
    _, totals = resume_peak(tmp_path, repeats=3, shard=Shard(2, 3))
    # 600 cells, 200 in shard 2/3 (position % 3 == 1); of the last 10 (590..599), 592, 595 and 598 are.
    assert (totals.skipped, totals.done, totals.total) == (197, 3, 3)
