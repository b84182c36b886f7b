"""The runner's memory against the number of cells: a new run and a resume, at 10k, 100k and 1M cells.

Run: ``python benchmarks/runner_memory.py [--cells 10000,100000,1000000] [--fresh-max 1000000]``.

Every plan is the same 1,000 items × 10 targets (custom targets answering at once, in
process: the runner's machinery is what is measured), with ``repeats`` giving the cell
count, so the dataset is the same size in every row and only the cells grow. Each
measurement runs in its own interpreter (a clean peak RSS):

* **new run**: ``run_cells`` asks every cell of the plan, grading and writing each row.
* **resume**: a run whose cells are all written but the last 100 (Parquet parts of
  20,000 rows, as the store compacts them) is resumed: ``run_cells`` reads what is
  done, plans, and asks the 100 missing cells.

For each: peak RSS above the interpreter's RSS just before ``run_cells`` (imports, the
dataset, the targets and polars: the **baseline**, measured in the same interpreter), and
the peak of Python's own allocations during the call (``tracemalloc``, a second
interpreter). The last line compares the largest size with the smallest: flat memory
is a ratio near 1. For scale, the same run prints what a Python set of the finished
keys of the largest resume takes (what a resume held before issue 17).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N_ITEMS, N_TARGETS, MISSING = 1_000, 10, 100


def _rss_mb() -> float:
    """This process's resident memory now, in MB (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


def _dataset() -> Any:
    from evalkit.datasets import Dataset, Item
    from evalkit.types import Message

    items = tuple(Item(id=f"q{i}", task_type="math", messages=(Message("user", f"What is 2 + 2? ({i})"),),
                       reference=4, grader={"type": "numeric"}) for i in range(N_ITEMS))
    return Dataset("generated", Path("generated.jsonl"), items, "0" * 64)


class _Answering:
    """A target answering every cell right at once (the Provider protocol)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def complete(self, request: Any, on_delta: Any = None) -> Any:
        from evalkit.types import ChatResponse, FinishReason, Usage

        return ChatResponse(text="Answer: 4", finish_reason=FinishReason.STOP, model=self.name,
                            usage=Usage(input_tokens=5, output_tokens=2), provider=self.name)

    def stream(self, request: Any) -> Any:
        raise NotImplementedError


def _targets() -> list[str]:
    return [f"custom:m{t}" for t in range(N_TARGETS)]


def _write_finished(path: Path, repeats: int) -> None:
    """Every cell of the plan written but the last ``MISSING``, as compacted Parquet parts of the stored schema."""
    import polars as pl

    from evalkit.runner.schema import result_schema
    from evalkit.runner.store import write_parquet

    schema, targets = result_schema(), _targets()
    written = N_ITEMS * N_TARGETS * repeats - MISSING
    for part, start in enumerate(range(0, written, 20_000)):
        position = pl.int_range(start, min(written, start + 20_000), eager=True)
        frame = pl.DataFrame({"item_id": "q" + (position // N_TARGETS % N_ITEMS).cast(pl.String),
                              "target": pl.Series(targets).gather(position % N_TARGETS),
                              "repeat": position // N_TARGETS // N_ITEMS}).with_columns(
            run_id=pl.lit("bench"), task_type=pl.lit("math"), status=pl.lit("ok"), passed=pl.lit(True),
            n_attempts=pl.lit(1), output=pl.lit("Answer: 4"))
        frame = frame.with_columns(pl.lit(None).alias(k) for k in schema if k not in frame.columns)
        write_parquet(frame.select(list(schema)).cast(schema), path / "results" / f"part-{part:04d}.parquet")


def _child(mode: str, cells: int, traced: bool, run_dir: str) -> dict[str, Any]:
    """One measurement, in this (fresh) interpreter."""
    import tracemalloc

    import polars  # noqa: F401 - the store reads with it: imported in the baseline, not counted as the cells'

    from evalkit.runner import RunOptions, RunStore, run_cells

    repeats = cells // (N_ITEMS * N_TARGETS)
    dataset, targets = _dataset(), [_Answering(name) for name in _targets()]
    options = RunOptions(repeats=repeats, concurrency=16, max_tokens=8)
    baseline = _rss_mb()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    totals = asyncio.run(run_cells(dataset, targets, RunStore(run_dir), options, run_id="bench"))
    seconds = time.perf_counter() - started
    python_peak = tracemalloc.get_traced_memory()[1] / 1e6 if traced else None
    expected_done = cells if mode == "new" else MISSING
    assert totals.done == expected_done and totals.skipped == cells - expected_done, totals
    return {"baseline_mb": baseline, "peak_mb": _peak_rss_mb(), "python_peak_mb": python_peak, "seconds": seconds}


def _measure(mode: str, cells: int) -> dict[str, Any]:
    """RSS (untraced) and Python allocations (traced) of one mode and size, each in its own interpreter."""
    results: dict[str, Any] = {}
    for traced in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            if mode == "resume":
                _write_finished(run_dir, cells // (N_ITEMS * N_TARGETS))
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(cells), str(int(traced)),
                                  str(run_dir)], check=True, capture_output=True, text=True).stdout
            measured = json.loads(out.splitlines()[-1])
        if traced:
            results["python_peak_mb"] = measured["python_peak_mb"]
        else:
            results.update(measured, extra_mb=measured["peak_mb"] - measured["baseline_mb"])
    return results


def _set_of_keys_mb(cells: int) -> float:
    """What holding every finished key of ``cells`` cells as a Python set takes (the old resume)."""
    import tracemalloc

    targets = _targets()
    tracemalloc.start()
    keys = {(f"q{p // N_TARGETS % N_ITEMS}", str(targets[p % N_TARGETS]), p // N_TARGETS // N_ITEMS)
            for p in range(cells - MISSING)}
    size = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    del keys
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="10000,100000,1000000",
                        help="comma-separated cell counts (multiples of 10,000)")
    parser.add_argument("--fresh-max", type=int, default=1_000_000,
                        help="largest new run to ask in full (asked twice, once traced: ~8 minutes at a million cells)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, cells, traced, run_dir = args.child
        print(json.dumps(_child(mode, int(cells), traced == "1", run_dir)))
        return
    sizes = [int(c) for c in args.cells.split(",")]
    if any(size % (N_ITEMS * N_TARGETS) or size < N_ITEMS * N_TARGETS for size in sizes):
        parser.error(f"--cells: each a positive multiple of {N_ITEMS * N_TARGETS:,}")
    print(f"plan: {N_ITEMS:,} items x {N_TARGETS} targets x repeats; custom targets answering at once\n")
    print(f"{'mode':<7} {'cells':>10} {'baseline RSS':>13} {'peak RSS':>9} {'peak - baseline':>16} "
          f"{'Python peak':>12} {'time':>7}")
    extra: dict[str, list[tuple[int, float, float]]] = {}
    for mode in ("new", "resume"):
        for cells in sizes:
            if mode == "new" and cells > args.fresh_max:
                continue
            m = _measure(mode, cells)
            extra.setdefault(mode, []).append((cells, m["extra_mb"], m["python_peak_mb"]))
            print(f"{mode:<7} {cells:>10,} {m['baseline_mb']:>10.1f} MB {m['peak_mb']:>6.1f} MB "
                  f"{m['extra_mb']:>13.1f} MB {m['python_peak_mb']:>9.1f} MB {m['seconds']:>6.1f}s", flush=True)
    print()
    for mode, rows in extra.items():
        (low, low_rss, low_py), (high, high_rss, high_py) = rows[0], rows[-1]
        print(f"{mode}: {high // low}x the cells -> peak - baseline {high_rss / max(low_rss, 0.1):.2f}x "
              f"({low_rss:.1f} -> {high_rss:.1f} MB), Python peak {high_py / max(low_py, 0.01):.2f}x "
              f"({low_py:.1f} -> {high_py:.1f} MB)")
    print(f"for scale: a Python set of the {max(sizes) - MISSING:,} finished keys of the largest resume takes "
          f"{_set_of_keys_mb(max(sizes)):.0f} MB")


if __name__ == "__main__":
    main()
